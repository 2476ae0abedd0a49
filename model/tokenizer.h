// tokenizer.h: Hugging Face tokenizers in C: a BPE model from tokenizer.json, byte-level (GPT-2, OPT,
// BLOOM, SmolLM, Qwen) or SentencePiece-style (Llama: "▁" normalization, byte fallback), or from
// vocab.json + merges.txt. Encoded ids equal HF `tokenizers`' ids exactly (tests/test_tokenizer.c).
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
void nt_tokenizer_free(nt_tokenizer **tok);

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
