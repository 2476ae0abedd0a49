// tokenizer.h: Hugging Face tokenizers in C: a BPE model from tokenizer.json, byte-level (GPT-2, OPT,
// BLOOM, SmolLM, Qwen) or SentencePiece-style (Llama: "▁" normalization, byte fallback), from
// vocab.json + merges.txt, or from a GGUF file's tokenizer metadata. Encoded ids equal HF `tokenizers`' ids
// exactly (tests/test_tokenizer.c, tests/test_tokenizer_gguf.c).
#pragma once
#include "nt.h"

typedef struct nt_tokenizer nt_tokenizer;

// Loads the tokenizer of a model directory: tokenizer.json if present, else vocab.json + merges.txt;
// BOS/EOS rules from the post-processor and tokenizer_config.json.
int nt_tokenizer_load_dir(nt_tokenizer **out, const char *dir, nt_err *err);
// Loads one tokenizer.json file (tokenizer_config.json beside it is read too when present).
int nt_tokenizer_load_json(nt_tokenizer **out, const char *path, nt_err *err);
// Loads a GPT-2 byte-level BPE from a vocabulary (vocab.json / encoder.json) and a merges file (merges.txt /
// vocab.bpe) as GPT2TokenizerFast(vocab_file, merges_file) does: "<|endoftext|>" is the special BOS/EOS/unk
// token and no BOS is added.
int nt_tokenizer_load_bpe_files(nt_tokenizer **out, const char *vocab_path, const char *merges_path, nt_err *err);
// Loads the tokenizer of a model path: a directory (nt_tokenizer_load_dir; or its tokenizer.gguf, the metadata a
// checkpoint quantized from a GGUF model keeps, when it has neither tokenizer.json nor vocab.json) or a GGUF file
// (nt_tokenizer_load_gguf).
int nt_tokenizer_load_model(nt_tokenizer **out, const char *model_path, nt_err *err);
void nt_tokenizer_free(nt_tokenizer **tok);

// A tokenizer described by plain arrays, as GGUF's tokenizer.ggml.* metadata holds it. The result encodes as
// Hugging Face `tokenizers` does with the tokenizer.json that HF's converters make for the same model (the
// comment above nt_tokenizer_from_spec in tokenizer.c says which, for each model and pre).
typedef enum { // GGUF's token types (tokenizer.ggml.token_type)
    NT_TOKEN_UNDEFINED = 0,
    NT_TOKEN_NORMAL = 1,
    NT_TOKEN_UNKNOWN = 2,      // special added token
    NT_TOKEN_CONTROL = 3,      // special added token (BOS, EOS, <|im_start|>, ...)
    NT_TOKEN_USER_DEFINED = 4, // non-special added token
    NT_TOKEN_UNUSED = 5,
    NT_TOKEN_BYTE = 6,         // "<0xXX>", for byte fallback
} nt_token_type;

typedef struct {
    const char *model;          // "gpt2": byte-level BPE from tokens + merges; "llama": SentencePiece BPE from
                                // tokens + scores, with byte fallback
    const char *pre;            // gpt2: "gpt-2", "smollm", "llama-bpe" or "qwen2" (tokenizer.ggml.pre);
                                // llama: NULL or "default"
    int32_t n_tokens;
    const char *const *tokens;  // (n_tokens) UTF-8; token i has id i
    const size_t *token_lens;   // (n_tokens) byte lengths, or NULL when the tokens are NUL-terminated
    int32_t n_merges;           // gpt2 only
    const char *const *merges;  // (n_merges) "left right", rank = index
    const size_t *merge_lens;   // (n_merges) or NULL (NUL-terminated)
    const float *scores;        // (n_tokens) llama only (required there)
    const int32_t *token_types; // (n_tokens) nt_token_type values, or NULL: all NT_TOKEN_NORMAL
    int32_t bos_id, eos_id, unk_id, pad_id; // -1 for none
    bool add_bos, add_eos;      // the post-processor: BOS before, EOS after the text
    bool add_space_prefix;      // llama: a "▁" before the text (tokenizer.ggml.add_space_prefix)
} nt_tokenizer_spec;

// Builds a tokenizer from a spec; name (a file, for messages) may be NULL. Inconsistent input (a repeated,
// empty or non-UTF-8 token, a merge of unknown tokens, an id outside the vocabulary, an unknown model or
// pre-tokenizer) is a one-line error naming `name`.
int nt_tokenizer_from_spec(nt_tokenizer **out, const nt_tokenizer_spec *spec, const char *name, nt_err *err);

// The tokenizer of a GGUF file from its tokenizer.ggml.* keys (model, pre, tokens, merges, scores,
// token_type, bos/eos/unknown/padding_token_id, add_bos_token, add_eos_token, add_space_prefix). Missing
// optional keys: no merges/scores/types/ids; add_bos_token true for llama and false for gpt2 (HF's
// LlamaTokenizerFast and GPT2TokenizerFast defaults), add_eos_token false, add_space_prefix true.
int nt_tokenizer_load_gguf(nt_tokenizer **out, const char *gguf_path, nt_err *err);
typedef struct nt_gguf nt_gguf;
// The same from an open GGUF handle (base/gguf.h).
int nt_tokenizer_from_gguf(nt_tokenizer **out, const nt_gguf *g, nt_err *err);

// Encodes len bytes of UTF-8 text. add_special applies the post-processor (BOS/EOS), as HF's
// `tokenizer(text)` does (add_special_tokens=True). *ids is malloc'd; the caller frees it.
int nt_tokenizer_encode(const nt_tokenizer *tok, const char *text, size_t len, bool add_special, int32_t **ids,
                        size_t *n_ids, nt_err *err);
// Decodes ids to a malloc'd NUL-terminated string, as HF's decode(ids, skip_special_tokens=skip_special).
int nt_tokenizer_decode(const nt_tokenizer *tok, const int32_t *ids, size_t n, bool skip_special, char **text,
                        nt_err *err);

int32_t nt_tokenizer_vocab_size(const nt_tokenizer *tok); // largest id + 1, added tokens included
int32_t nt_tokenizer_bos_id(const nt_tokenizer *tok);     // -1 when there is none
int32_t nt_tokenizer_eos_id(const nt_tokenizer *tok);     // -1 when there is none
// The vocabulary string of an id as stored in the model (e.g. "Ġthe", "▁the", "<0x0A>"), or NULL.
const char *nt_tokenizer_piece(const nt_tokenizer *tok, int32_t id);
bool nt_tokenizer_is_special(const nt_tokenizer *tok, int32_t id);
