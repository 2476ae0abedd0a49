// test_tokenizer_gguf.c: tokenizers from GGUF metadata (nt_tokenizer_from_spec, nt_tokenizer_load_gguf) against HF
// `tokenizers`:
//   - the SmolLM2 GGUF (models/SmolLM2-135M-Instruct.Q4_1.gguf, installed by .ci/install-deps; the test fails
//     without it) on the golden texts of its tokenizer.json, and on every evaluation document the harness builds
//     (WikiText-2, PTB, C4 validation, and every context and continuation of the eight zero-shot tasks), the
//     GGUF's tokenizer and tokenizer.json both against hashes of HF's ids (make_tokenizer_doc_goldens.py);
//   - specs built at test time from real vocabularies: GPT-2's encoder.json + vocab.bpe under the pre-tokenizers
//     gpt-2, llama-bpe and qwen2, and Llama 2's tokenizer.model (tokens, scores, types) as a SentencePiece
//     tokenizer, directly and through GGUF files written here, on the goldens HF made for the same tokenizers
//     (make_tokenizer_goldens.py);
//   - bad specs and bad GGUF tokenizer metadata: one-line errors naming the file.
#define _POSIX_C_SOURCE 200809L
#include <criterion/criterion.h>
#include <math.h>
#include <string.h>
#include <sys/stat.h>

#include "datasets.h"
#include "gguf.h"
#include "jsonl.h"
#include "tasks.h"
#include "testutil.h"
#include "tokenizer.h"

static char *g_dir; // a fresh temporary directory per test

static void setup(void) {
    g_dir = tu_tmpdir();
    cr_assert(g_dir != NULL, "cannot make a temporary directory");
}

static void teardown(void) {
    tu_rmtree(g_dir);
    free(g_dir);
    g_dir = NULL;
}

TestSuite(gguf_tok, .init = setup, .fini = teardown, .timeout = 1500);

static const char *SMOLLM2 = "SmolLM2-135M-Instruct.Q4_1.gguf";

// The SmolLM2 GGUF: $NT_MODELS_DIR/<name>, else <source>/models/<name>. Missing is a failure, not a skip.
static char *smollm2_path(void) {
    const char *dir = getenv("NT_MODELS_DIR");
    char rel[256];
    snprintf(rel, sizeof(rel), "models/%s", SMOLLM2);
    char *path = dir && *dir ? nt_path_join(dir, SMOLLM2) : tu_source(rel);
    cr_assert(nt_file_exists(path), "%s is missing: run .ci/install-deps (it installs the SmolLM2 GGUF into models/) "
                                    "or point NT_MODELS_DIR at a folder holding it", path);
    return path;
}

static nt_tokenizer *load_gguf(const char *path) {
    nt_tokenizer *tok = NULL;
    nt_err err = {0};
    cr_assert_eq(nt_tokenizer_load_gguf(&tok, path, &err), 0, "%s", err.msg);
    return tok;
}

static nt_tokenizer *load_json(const char *path) {
    nt_tokenizer *tok = NULL;
    nt_err err = {0};
    cr_assert_eq(nt_tokenizer_load_json(&tok, path, &err), 0, "%s", err.msg);
    return tok;
}

static bool same_ids(const nt_tokenizer *a, const nt_tokenizer *b, const char *s, size_t n, bool add_special) {
    int32_t *x = NULL, *y = NULL;
    size_t nx = 0, ny = 0;
    nt_err err = {0};
    cr_assert_eq(nt_tokenizer_encode(a, s, n, add_special, &x, &nx, &err), 0, "%s", err.msg);
    cr_assert_eq(nt_tokenizer_encode(b, s, n, add_special, &y, &ny, &err), 0, "%s", err.msg);
    bool same = nx == ny && memcmp(x, y, nx * sizeof(int32_t)) == 0;
    free(x);
    free(y);
    return same;
}

// ---------------------------------------------------------------------------------------------- specs from files

// A spec and the memory behind it.
typedef struct {
    nt_tokenizer_spec sp;
    char **tokens, **merges;
    float *scores;
    int32_t *types;
} spec_buf;

static void spec_buf_free(spec_buf *b) {
    for (int32_t i = 0; b->tokens && i < b->sp.n_tokens; i++) free(b->tokens[i]);
    for (int32_t i = 0; b->merges && i < b->sp.n_merges; i++) free(b->merges[i]);
    free(b->tokens);
    free(b->merges);
    free(b->scores);
    free(b->types);
    memset(b, 0, sizeof(*b));
}

// GPT-2's encoder.json + vocab.bpe as a gpt2 spec with pre-tokenizer `pre`: "<|endoftext|>" (50256) is the one
// CONTROL token and BOS/EOS, as in GPT-2's and tiny-opt's tokenizer.json.
static void gpt2_spec(spec_buf *b, const char *pre, bool add_bos) {
    memset(b, 0, sizeof(*b));
    char *vpath = tu_shared("tokenizers/gpt2-bpe/encoder.json"), *mpath = tu_shared("tokenizers/gpt2-bpe/vocab.bpe");
    cJSON *enc = tu_read_json(vpath);
    int32_t n = cJSON_GetArraySize(enc);
    b->tokens = calloc((size_t)n, sizeof(char *));
    b->types = malloc((size_t)n * sizeof(int32_t));
    cr_assert(b->tokens && b->types);
    for (const cJSON *e = enc->child; e; e = e->next) {
        int id = e->valueint;
        cr_assert(id >= 0 && id < n && !b->tokens[id], "%s: bad id %d", vpath, id);
        b->tokens[id] = strdup(e->string);
        b->types[id] = NT_TOKEN_NORMAL;
    }
    b->types[50256] = NT_TOKEN_CONTROL;
    cr_assert_str_eq(b->tokens[50256], "<|endoftext|>");
    nt_err err = {0};
    size_t len;
    char *txt = nt_read_file(mpath, &len, &err);
    cr_assert(txt != NULL, "%s", err.msg);
    b->merges = malloc(60000 * sizeof(char *));
    int32_t m = 0;
    for (char *line = txt, *nl; line && *line; line = nl ? nl + 1 : NULL) {
        nl = strchr(line, '\n');
        if (nl) *nl = '\0';
        if (*line && strncmp(line, "#version", 8) != 0) {
            cr_assert(m < 60000);
            b->merges[m++] = strdup(line);
        }
    }
    cr_assert_eq(m, 50000);
    b->sp = (nt_tokenizer_spec){.model = "gpt2", .pre = pre, .n_tokens = n, .tokens = (const char *const *)b->tokens,
                                .n_merges = m, .merges = (const char *const *)b->merges, .token_types = b->types,
                                .bos_id = 50256, .eos_id = 50256, .unk_id = -1, .pad_id = -1, .add_bos = add_bos};
    free(txt);
    cJSON_Delete(enc);
    free(vpath);
    free(mpath);
}

// SentencePiece's ModelProto in protobuf wire format, read for the three fields a spec needs: `repeated
// SentencePiece pieces = 1` with piece = 1 (string), score = 2 (float), type = 3 (enum, NORMAL = 1 when absent;
// SentencePiece numbers its types as GGUF does). Other fields are skipped by their wire type. Test code: the
// library never reads .model files; this stands in for a GGUF converter.
static uint64_t pb_varint(const uint8_t *p, size_t n, size_t *i) {
    uint64_t v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
        cr_assert(*i < n, "tokenizer.model: truncated varint");
        uint8_t c = p[(*i)++];
        v |= (uint64_t)(c & 0x7F) << shift;
        if (!(c & 0x80)) return v;
    }
    cr_assert_fail("tokenizer.model: varint too long");
    return 0;
}

// Skips the value of a field of wire type wt at p[*i].
static void pb_skip(const uint8_t *p, size_t n, size_t *i, int wt) {
    if (wt == 0) pb_varint(p, n, i);
    else if (wt == 1) *i += 8;
    else if (wt == 5) *i += 4;
    else if (wt == 2) *i += pb_varint(p, n, i);
    else cr_assert_fail("tokenizer.model: wire type %d", wt);
    cr_assert(*i <= n, "tokenizer.model: field runs past the end");
}

static void llama2_spec(spec_buf *b) {
    memset(b, 0, sizeof(*b));
    char *path = tu_shared("tokenizers/llama2-sp32000/tokenizer.model");
    nt_err err = {0};
    size_t n;
    uint8_t *p = (uint8_t *)nt_read_file(path, &n, &err);
    cr_assert(p != NULL, "%s", err.msg);
    size_t cap = 1024, i = 0;
    int32_t k = 0;
    b->tokens = malloc(cap * sizeof(char *));
    b->scores = malloc(cap * sizeof(float));
    b->types = malloc(cap * sizeof(int32_t));
    while (i < n) {
        uint64_t key = pb_varint(p, n, &i);
        if (key >> 3 != 1 || (key & 7) != 2) {
            pb_skip(p, n, &i, (int)(key & 7));
            continue;
        }
        size_t end = i + pb_varint(p, n, &i);
        cr_assert(end <= n);
        if ((size_t)k == cap) {
            cap *= 2;
            b->tokens = realloc(b->tokens, cap * sizeof(char *));
            b->scores = realloc(b->scores, cap * sizeof(float));
            b->types = realloc(b->types, cap * sizeof(int32_t));
        }
        b->tokens[k] = NULL, b->scores[k] = 0.0f, b->types[k] = NT_TOKEN_NORMAL;
        while (i < end) {
            uint64_t fk = pb_varint(p, end, &i);
            int field = (int)(fk >> 3), wt = (int)(fk & 7);
            if (field == 1 && wt == 2) {
                size_t len = pb_varint(p, end, &i);
                cr_assert(i + len <= end);
                b->tokens[k] = strndup((const char *)p + i, len);
                i += len;
            } else if (field == 2 && wt == 5) {
                memcpy(&b->scores[k], p + i, 4);
                i += 4;
            } else if (field == 3 && wt == 0) {
                b->types[k] = (int32_t)pb_varint(p, end, &i);
            } else {
                pb_skip(p, end, &i, wt);
            }
        }
        cr_assert(b->tokens[k] != NULL, "%s: piece %d has no string", path, (int)k);
        k++;
    }
    cr_assert_eq(k, 32000, "%s: %d pieces", path, (int)k);
    cr_assert_str_eq(b->tokens[1], "<s>");
    cr_assert_eq(b->types[0], NT_TOKEN_UNKNOWN);
    cr_assert_eq(b->types[1], NT_TOKEN_CONTROL);
    cr_assert_eq(b->types[3], NT_TOKEN_BYTE);
    b->sp = (nt_tokenizer_spec){.model = "llama", .pre = "default", .n_tokens = k,
                                .tokens = (const char *const *)b->tokens, .scores = b->scores, .token_types = b->types,
                                .bos_id = 1, .eos_id = 2, .unk_id = 0, .pad_id = -1, .add_bos = true,
                                .add_space_prefix = true};
    free(p);
    free(path);
}

static nt_tokenizer *from_spec(const nt_tokenizer_spec *sp) {
    nt_tokenizer *tok = NULL;
    nt_err err = {0};
    cr_assert_eq(nt_tokenizer_from_spec(&tok, sp, "test spec", &err), 0, "%s", err.msg);
    return tok;
}

// ---------------------------------------------------------------------------------------------- GGUF files

static void kv_head(tu_buf *b, const char *key, nt_gguf_vtype t) {
    tu_buf_gstr(b, key);
    tu_buf_u32(b, (uint32_t)t);
}

static void arr_head(tu_buf *b, const char *key, nt_gguf_vtype elem, uint64_t n) {
    kv_head(b, key, NT_GGUF_ARRAY);
    tu_buf_u32(b, (uint32_t)elem);
    tu_buf_u64(b, n);
}

// Edits that make a GGUF file's tokenizer metadata wrong.
typedef struct {
    const char *skip;      // a key left out
    int extra_scores;      // entries added to (or, negative, taken from) the scores / token types
    int extra_types;
    const char *pre, *model; // replacements (NULL: the spec's)
    bool tokens_as_ints;   // tokenizer.ggml.tokens written as an INT32 array
} gguf_edit;

// Writes the spec as a GGUF file (no tensors) with the tokenizer.ggml.* keys a converter writes.
static char *write_gguf(const char *name, const nt_tokenizer_spec *sp, const gguf_edit *ed) {
    gguf_edit none = {0};
    if (!ed) ed = &none;
    const char *model = ed->model ? ed->model : sp->model, *pre = ed->pre ? ed->pre : sp->pre;
    tu_buf kv = {0};
    uint64_t n_kv = 0;
#define SKIP(k) (ed->skip && strcmp(ed->skip, k) == 0)
    kv_head(&kv, "general.architecture", NT_GGUF_STRING), tu_buf_gstr(&kv, "llama"), n_kv++;
    if (!SKIP("tokenizer.ggml.model")) kv_head(&kv, "tokenizer.ggml.model", NT_GGUF_STRING), tu_buf_gstr(&kv, model), n_kv++;
    if (pre && !SKIP("tokenizer.ggml.pre")) kv_head(&kv, "tokenizer.ggml.pre", NT_GGUF_STRING), tu_buf_gstr(&kv, pre), n_kv++;
    if (!SKIP("tokenizer.ggml.tokens")) {
        if (ed->tokens_as_ints) {
            arr_head(&kv, "tokenizer.ggml.tokens", NT_GGUF_INT32, (uint64_t)sp->n_tokens);
            for (int32_t i = 0; i < sp->n_tokens; i++) tu_buf_u32(&kv, (uint32_t)i);
        } else {
            arr_head(&kv, "tokenizer.ggml.tokens", NT_GGUF_STRING, (uint64_t)sp->n_tokens);
            for (int32_t i = 0; i < sp->n_tokens; i++) tu_buf_gstr(&kv, sp->tokens[i]);
        }
        n_kv++;
    }
    if (sp->n_merges && !SKIP("tokenizer.ggml.merges")) {
        arr_head(&kv, "tokenizer.ggml.merges", NT_GGUF_STRING, (uint64_t)sp->n_merges);
        for (int32_t i = 0; i < sp->n_merges; i++) tu_buf_gstr(&kv, sp->merges[i]);
        n_kv++;
    }
    if (sp->scores && !SKIP("tokenizer.ggml.scores")) {
        int32_t n = sp->n_tokens + ed->extra_scores;
        arr_head(&kv, "tokenizer.ggml.scores", NT_GGUF_FLOAT32, (uint64_t)n);
        for (int32_t i = 0; i < n; i++) tu_buf_f32(&kv, i < sp->n_tokens ? sp->scores[i] : 0.0f);
        n_kv++;
    }
    if (sp->token_types && !SKIP("tokenizer.ggml.token_type")) {
        int32_t n = sp->n_tokens + ed->extra_types;
        arr_head(&kv, "tokenizer.ggml.token_type", NT_GGUF_INT32, (uint64_t)n);
        for (int32_t i = 0; i < n; i++) tu_buf_u32(&kv, (uint32_t)(i < sp->n_tokens ? sp->token_types[i] : 1));
        n_kv++;
    }
    const char *id_keys[] = {"tokenizer.ggml.bos_token_id", "tokenizer.ggml.eos_token_id",
                             "tokenizer.ggml.unknown_token_id", "tokenizer.ggml.padding_token_id"};
    const int32_t ids[] = {sp->bos_id, sp->eos_id, sp->unk_id, sp->pad_id};
    for (int k = 0; k < 4; k++)
        if (ids[k] >= 0 && !SKIP(id_keys[k])) kv_head(&kv, id_keys[k], NT_GGUF_UINT32), tu_buf_u32(&kv, (uint32_t)ids[k]), n_kv++;
    const char *bool_keys[] = {"tokenizer.ggml.add_bos_token", "tokenizer.ggml.add_eos_token",
                               "tokenizer.ggml.add_space_prefix"};
    const bool bools[] = {sp->add_bos, sp->add_eos, sp->add_space_prefix};
    for (int k = 0; k < 3; k++)
        if (!SKIP(bool_keys[k])) kv_head(&kv, bool_keys[k], NT_GGUF_BOOL), tu_buf_u8(&kv, bools[k]), n_kv++;
#undef SKIP
    tu_buf f = {0};
    tu_buf_bytes(&f, "GGUF", 4);
    tu_buf_u32(&f, 3);
    tu_buf_u64(&f, 0);
    tu_buf_u64(&f, n_kv);
    tu_buf_bytes(&f, kv.b, kv.n);
    tu_buf_pad(&f, 32);
    char *path = nt_path_join(g_dir, name);
    cr_assert_eq(tu_write_file(path, f.b, f.n), 0);
    tu_buf_free(&kv);
    tu_buf_free(&f);
    return path;
}

// ---------------------------------------------------------------------------------------------- SmolLM2

Test(gguf_tok, smollm2_gguf_golden) {
    char *path = smollm2_path();
    nt_tokenizer *tok = load_gguf(path);
    cr_assert_eq(nt_tokenizer_vocab_size(tok), 49152);
    cr_assert_eq(nt_tokenizer_bos_id(tok), 1); // <|im_start|>, as the model's tokenizer_config.json has it
    cr_assert_eq(nt_tokenizer_eos_id(tok), 2);
    cr_assert_str_eq(nt_tokenizer_piece(tok, 0), "<|endoftext|>");
    cr_assert(nt_tokenizer_is_special(tok, 0) && nt_tokenizer_is_special(tok, 16) && !nt_tokenizer_is_special(tok, 17));
    tu_tok_check_golden(tok, "smollm2"); // no BOS: add_bos_token is false
    // nt_tokenizer_load_model takes the GGUF file as well as a model directory
    nt_tokenizer *tok2 = NULL;
    nt_err err = {0};
    cr_assert_eq(nt_tokenizer_load_model(&tok2, path, &err), 0, "%s", err.msg);
    const char s[] = "SmolLM2 from a GGUF: 12345 tokens\n\n  ok";
    cr_assert(same_ids(tok, tok2, s, sizeof(s) - 1, true));
    nt_tokenizer_free(&tok2);
    nt_tokenizer_free(&tok);
    free(path);
}

// The evaluation documents, built by the harness's own code (datasets/), as lists of strings.
typedef struct {
    const char *name;
    bool add_special;
    size_t n_docs, n_str;
    size_t *first;      // (n_docs + 1) index of each document's first string
    const char **s;     // (n_str)
    size_t *len;        // (n_str)
    size_t *line;       // (n_docs) the document's line in its file (0: a whole-file text)
    char *file;
    char **owned;       // strings this set allocated
    size_t n_owned;
    nt_zs_task task;
} docset;

static void ds_push(docset *d, const char *s, size_t len, size_t *cap) {
    if (d->n_str == *cap) {
        *cap = *cap ? 2 * *cap : 1024;
        d->s = realloc(d->s, *cap * sizeof(*d->s));
        d->len = realloc(d->len, *cap * sizeof(*d->len));
        d->owned = realloc(d->owned, *cap * sizeof(*d->owned));
        cr_assert(d->s && d->len && d->owned);
    }
    d->s[d->n_str] = s;
    d->len[d->n_str++] = len;
}

static void ds_doc(docset *d, size_t line, size_t *dcap) {
    if (d->n_docs + 1 >= *dcap) {
        *dcap = *dcap ? 2 * *dcap : 1024;
        d->first = realloc(d->first, *dcap * sizeof(*d->first));
        d->line = realloc(d->line, *dcap * sizeof(*d->line));
        cr_assert(d->first && d->line);
    }
    d->first[d->n_docs] = d->n_str;
    d->line[d->n_docs++] = line;
}

typedef struct {
    docset *d;
    size_t *cap, *dcap;
} c4_ctx;

static int c4_doc(const cJSON *obj, size_t lineno, void *ctx, nt_err *err) {
    c4_ctx *c = ctx;
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(obj, "text");
    if (!cJSON_IsString(t)) return nt_fail(err, "no \"text\"");
    char *s = strdup(t->valuestring);
    ds_doc(c->d, lineno, c->dcap);
    ds_push(c->d, s, strlen(s), c->cap);
    c->d->owned[c->d->n_owned++] = s;
    return 0;
}

static void docset_build(docset *d, const char *name, bool add_special) {
    memset(d, 0, sizeof(*d));
    d->name = name;
    d->add_special = add_special;
    char *data = tu_shared("datasets");
    nt_err err = {0};
    size_t cap = 0, dcap = 0;
    if (strcmp(name, "c4") == 0) {
        d->file = nt_path_join(data, "c4/c4_validation_2k.jsonl");
        c4_ctx c = {d, &cap, &dcap};
        cr_assert_eq(nt_jsonl_foreach(d->file, c4_doc, &c, NULL, &err), 0, "%s", err.msg);
    } else if (nt_ppl_task_known(name)) {
        char *text = NULL;
        size_t len = 0;
        cr_assert_eq(nt_ppl_text(name, data, &text, &len, &err), 0, "%s", err.msg);
        d->file = nt_path_join(data, nt_ppl_task_file(name));
        ds_doc(d, 0, &dcap);
        ds_push(d, text, len, &cap);
        d->owned[d->n_owned++] = text;
    } else {
        cr_assert_eq(nt_zs_task_load(name, data, 0, false, &d->task, &err), 0, "%s", err.msg);
        d->file = strdup(d->task.path);
        for (size_t i = 0; i < d->task.n_items; i++) {
            const nt_zs_item *it = &d->task.items[i];
            ds_doc(d, it->line, &dcap);
            for (int c = 0; c < it->n_choices; c++) {
                size_t nc = strlen(it->contexts[c]), nn = strlen(it->continuations[c]);
                char *whole = malloc(nc + nn + 1);
                memcpy(whole, it->contexts[c], nc);
                memcpy(whole + nc, it->continuations[c], nn + 1);
                ds_push(d, it->contexts[c], nc, &cap);
                ds_push(d, it->continuations[c], nn, &cap);
                ds_push(d, whole, nc + nn, &cap);
                d->owned[d->n_owned++] = whole;
            }
        }
    }
    ds_doc(d, 0, &dcap); // the end marker
    d->n_docs--;
    free(data);
}

static void docset_free(docset *d) {
    for (size_t i = 0; i < d->n_owned; i++) free(d->owned[i]);
    free(d->owned);
    free(d->s);
    free(d->len);
    free(d->first);
    free(d->line);
    free(d->file);
    if (d->task.items) nt_zs_task_free(&d->task);
    memset(d, 0, sizeof(*d));
}

#define FNV_OFFSET 0xCBF29CE484222325ull
static uint64_t fnv32(uint64_t h, uint32_t v) { return (h ^ v) * 0x100000001B3ull; }

typedef struct {
    uint64_t all;
    uint64_t *blocks; // (n_blocks)
    size_t n_ids, bytes;
    double secs;
} set_hash;

// Encodes every string of the set, hashing as make_tokenizer_doc_goldens.py does.
static void hash_set(const nt_tokenizer *tok, const docset *d, size_t block, set_hash *out) {
    size_t n_blocks = (d->n_docs + block - 1) / block;
    memset(out, 0, sizeof(*out));
    out->blocks = calloc(n_blocks ? n_blocks : 1, sizeof(uint64_t));
    out->all = FNV_OFFSET;
    uint64_t bh = FNV_OFFSET;
    double t0 = nt_time();
    for (size_t i = 0; i < d->n_docs; i++) {
        if (i % block == 0) bh = FNV_OFFSET;
        for (size_t k = d->first[i]; k < d->first[i + 1]; k++) {
            int32_t *ids = NULL;
            size_t n = 0;
            nt_err err = {0};
            cr_assert_eq(nt_tokenizer_encode(tok, d->s[k], d->len[k], d->add_special, &ids, &n, &err), 0, "%s", err.msg);
            out->all = fnv32(out->all, (uint32_t)n);
            bh = fnv32(bh, (uint32_t)n);
            for (size_t j = 0; j < n; j++) {
                out->all = fnv32(out->all, (uint32_t)ids[j]);
                bh = fnv32(bh, (uint32_t)ids[j]);
            }
            out->n_ids += n;
            out->bytes += d->len[k];
            free(ids);
        }
        if (i % block == block - 1 || i + 1 == d->n_docs) out->blocks[i / block] = bh;
    }
    out->secs = nt_time() - t0;
}

// "FILE:LINE" of document i (just FILE for a whole-file text), and the first 80 bytes of a string on one line.
static void doc_where(const docset *d, size_t i, char *out, size_t cap) {
    if (d->line[i]) snprintf(out, cap, "%s:%zu", d->file, d->line[i]);
    else snprintf(out, cap, "%s", d->file);
}

static void preview(const char *s, size_t len, char out[81]) {
    size_t n = len < 80 ? len : 80;
    for (size_t i = 0; i < n; i++) out[i] = s[i] == '\n' || s[i] == '\r' || s[i] == '\t' ? ' ' : s[i];
    out[n] = '\0';
}

// Says which document of block b differs: the first one where tok and other disagree, when they do there.
static void report_block(const char *who, const nt_tokenizer *tok, const nt_tokenizer *other, const docset *d,
                         size_t block, size_t b) {
    size_t lo = b * block, hi = lo + block < d->n_docs ? lo + block : d->n_docs;
    char where[512], pv[81];
    for (size_t i = lo; i < hi; i++)
        for (size_t k = d->first[i]; k < d->first[i + 1]; k++)
            if (!same_ids(tok, other, d->s[k], d->len[k], d->add_special)) {
                doc_where(d, i, where, sizeof(where));
                preview(d->s[k], d->len[k], pv);
                fprintf(stderr, "%s: %s: document %zu (%s), string %zu \"%s\": ids differ from HF's\n", who, d->name,
                        i, where, k - d->first[i], pv);
                return;
            }
    doc_where(d, lo, where, sizeof(where));
    fprintf(stderr, "%s: %s: documents %zu..%zu (from %s) differ from HF's (the other tokenizer agrees: the bug is "
            "common to both)\n", who, d->name, lo, hi - 1, where);
}

// Every evaluation document through the SmolLM2 GGUF's tokenizer and through its tokenizer.json, against HF.
Test(gguf_tok, smollm2_documents) {
    char *gpath = smollm2_path();
    char *jpath = tu_shared("tokenizers/smollm2/tokenizer.json");
    nt_tokenizer *toks[2] = {load_gguf(gpath), load_json(jpath)};
    const char *who[2] = {"SmolLM2 GGUF", "smollm2/tokenizer.json"};
    char *hpath = tu_tok_golden("smollm2-docs.json");
    cJSON *g = tu_read_json(hpath);
    size_t block = (size_t)tu_json_int(g, "block");
    const char *names[] = {"wikitext2", "ptb", "ptb-new", "c4-new", "c4", "lambada_openai", "hellaswag", "piqa",
                           "arc_easy", "arc_challenge", "winogrande", "boolq", "openbookqa"};
    const int n_sets = (int)(sizeof(names) / sizeof(names[0]));
    const cJSON *sets = cJSON_GetObjectItem(g, "sets");
    cr_assert_eq(cJSON_GetArraySize(sets), n_sets, "%s: a different list of document sets", hpath);
    int bad = 0;
    double secs[2] = {0, 0};
    size_t bytes = 0, docs = 0, strings = 0;
    for (int si = 0; si < n_sets; si++) {
        const cJSON *want = cJSON_GetObjectItem(sets, names[si]);
        cr_assert(want != NULL, "%s: no set %s", hpath, names[si]);
        docset d;
        docset_build(&d, names[si], tu_json_bool(want, "add_special"));
        cr_assert_eq(d.n_docs, (size_t)tu_json_int(want, "docs"), "%s: %zu documents, HF's script built %d", names[si],
                     d.n_docs, tu_json_int(want, "docs"));
        cr_assert_eq(d.n_str, (size_t)tu_json_int(want, "strings"), "%s: %zu strings", names[si], d.n_str);
        const cJSON *blocks = cJSON_GetObjectItem(want, "blocks");
        cr_assert_eq((size_t)cJSON_GetArraySize(blocks), (d.n_docs + block - 1) / block);
        for (int k = 0; k < 2; k++) {
            set_hash h;
            hash_set(toks[k], &d, block, &h);
            secs[k] += h.secs;
            char hex[17];
            snprintf(hex, sizeof(hex), "%016llx", (unsigned long long)h.all);
            bool ok = strcmp(hex, tu_json_str(want, "fnv1a64")) == 0 && h.n_ids == (size_t)tu_json_int(want, "ids");
            if (k == 0) {
                bytes += h.bytes;
                docs += d.n_docs;
                strings += d.n_str;
                if (si == 0)
                    fprintf(stderr, "%s: WikiText-2 test string, %zu bytes -> %zu ids in %.3f s (%.1f MB/s)\n", who[0],
                            h.bytes, h.n_ids, h.secs, (double)h.bytes / h.secs / 1e6);
            }
            if (!ok) {
                bad++;
                size_t b = 0;
                for (const cJSON *x = blocks->child; x; x = x->next, b++) {
                    snprintf(hex, sizeof(hex), "%016llx", (unsigned long long)h.blocks[b]);
                    if (strcmp(hex, x->valuestring) != 0) break;
                }
                if (b * block < d.n_docs) report_block(who[k], toks[k], toks[1 - k], &d, block, b);
                else fprintf(stderr, "%s: %s: %zu ids, HF %d\n", who[k], d.name, h.n_ids, tu_json_int(want, "ids"));
            }
            free(h.blocks);
        }
        docset_free(&d);
    }
    fprintf(stderr, "%d document sets, %zu documents, %zu strings, %.1f MB: GGUF tokenizer %.2f s (%.1f MB/s), "
            "tokenizer.json %.2f s\n", n_sets, docs, strings, (double)bytes / 1e6, secs[0], (double)bytes / secs[0] / 1e6,
            secs[1]);
    cr_assert_eq(bad, 0, "%d (tokenizer, document set) pairs differ from HF (see stderr)", bad);
    nt_tokenizer_free(&toks[0]);
    nt_tokenizer_free(&toks[1]);
    cJSON_Delete(g);
    free(hpath);
    free(jpath);
    free(gpath);
}

// ---------------------------------------------------------------------------------------------- other tokenizers

// GPT-2's vocabulary under three pre-tokenizers, each against HF's tokenizer for it: gpt-2 = GPT2TokenizerFast,
// llama-bpe = Llama 3's Split + ByteLevel + ignore_merges (the gpt2-split variant, BOS from tiny-opt's template),
// qwen2 = Qwen2Converter (NFC). Directly from the spec, and through a GGUF file.
Test(gguf_tok, gpt2_vocab_pre_tokenizers) {
    const struct {
        const char *pre, *golden;
        bool add_bos;
    } cases[] = {{"gpt-2", "gpt2-bpe", false}, {"llama-bpe", "gpt2-split", true}, {"qwen2", "gpt2-qwen2", false}};
    for (int c = 0; c < 3; c++) {
        spec_buf b;
        gpt2_spec(&b, cases[c].pre, cases[c].add_bos);
        nt_tokenizer *tok = from_spec(&b.sp);
        cr_assert_eq(nt_tokenizer_bos_id(tok), 50256);
        tu_tok_check_golden(tok, cases[c].golden);
        char name[64];
        snprintf(name, sizeof(name), "gpt2-%s.gguf", cases[c].pre);
        char *path = write_gguf(name, &b.sp, NULL);
        nt_tokenizer *tg = load_gguf(path);
        tu_tok_check_golden(tg, cases[c].golden);
        nt_tokenizer_free(&tg);
        nt_tokenizer_free(&tok);
        free(path);
        spec_buf_free(&b);
    }
}

// Llama 2's tokenizer.model as a llama (SentencePiece) spec: merges from the scores as transformers' converter
// makes them; against HF's LlamaTokenizerFast goldens, directly and through a GGUF file; and on the whole
// WikiText-2 test string, id for id with the converted tokenizer.json.
Test(gguf_tok, llama2_sentencepiece) {
    spec_buf b;
    llama2_spec(&b);
    nt_tokenizer *tok = from_spec(&b.sp);
    cr_assert_eq(nt_tokenizer_vocab_size(tok), 32000);
    cr_assert_eq(nt_tokenizer_bos_id(tok), 1);
    cr_assert_str_eq(nt_tokenizer_piece(tok, 13), "<0x0A>");
    tu_tok_check_golden(tok, "llama2");
    char *path = write_gguf("llama2.gguf", &b.sp, NULL);
    nt_tokenizer *tg = load_gguf(path);
    tu_tok_check_golden(tg, "llama2");
    char *jdir = tu_tok_golden("llama2");
    nt_tokenizer *tj = NULL;
    nt_err err = {0};
    cr_assert_eq(nt_tokenizer_load_dir(&tj, jdir, &err), 0, "%s", err.msg);
    char *text = NULL;
    size_t len = 0;
    char *data = tu_shared("datasets");
    cr_assert_eq(nt_ppl_text("wikitext2", data, &text, &len, &err), 0, "%s", err.msg);
    double t0 = nt_time();
    cr_assert(same_ids(tg, tj, text, len, true), "the WikiText-2 ids differ from llama2/tokenizer.json's");
    fprintf(stderr, "llama2 GGUF and tokenizer.json: the WikiText-2 test string (%zu bytes) twice in %.2f s\n", len,
            nt_time() - t0);
    // without add_space_prefix: no "▁" before the text, and no Strip when decoding
    b.sp.add_space_prefix = false;
    nt_tokenizer *np = from_spec(&b.sp);
    int32_t *ids = NULL;
    size_t n = 0;
    cr_assert_eq(nt_tokenizer_encode(np, "Hello", 5, false, &ids, &n, &err), 0, "%s", err.msg);
    cr_assert(n >= 1 && strncmp(nt_tokenizer_piece(np, ids[0]), "\xE2\x96\x81", 3) != 0, "%s",
              nt_tokenizer_piece(np, ids[0]));
    free(ids);
    nt_tokenizer_free(&np);
    free(text);
    free(data);
    nt_tokenizer_free(&tj);
    free(jdir);
    nt_tokenizer_free(&tg);
    nt_tokenizer_free(&tok);
    free(path);
    spec_buf_free(&b);
}

// Ties in generate_merges' order: "zw" and "xyz" score the same, and the longer left part ("xy" + "z") ranks
// first. Want: HF tokenizers' BPE over transformers' generate_merges for this vocabulary (python3 with
// transformers 4.46.3: generate_merges(vocab, pieces) = [(x, y), (xy, z), (z, w)]; "xyzw" -> [9, 6],
// "zwxyz" -> [8, 9], "xyzxyzw" -> [9, 9, 6]).
Test(gguf_tok, sentencepiece_merge_ties) {
    const char *tokens[] = {"<unk>", "<s>", "</s>", "x", "y", "z", "w", "xy", "zw", "xyz"};
    float scores[] = {0, 0, 0, -10, -10, -10, -10, 0, -1, -1};
    int32_t types[] = {2, 3, 3, 1, 1, 1, 1, 1, 1, 1};
    nt_tokenizer_spec sp = {.model = "llama", .n_tokens = 10, .tokens = tokens, .scores = scores, .token_types = types,
                            .bos_id = 1, .eos_id = 2, .unk_id = 0, .pad_id = -1};
    nt_tokenizer *tok = from_spec(&sp);
    const struct {
        const char *text;
        int32_t want[3];
        size_t n;
    } cases[] = {{"xyzw", {9, 6}, 2}, {"zwxyz", {8, 9}, 2}, {"xyzxyzw", {9, 9, 6}, 3}};
    for (int c = 0; c < 3; c++) {
        int32_t *ids = NULL;
        size_t n = 0;
        nt_err err = {0};
        cr_assert_eq(nt_tokenizer_encode(tok, cases[c].text, strlen(cases[c].text), false, &ids, &n, &err), 0, "%s",
                     err.msg);
        cr_assert(n == cases[c].n && memcmp(ids, cases[c].want, n * sizeof(int32_t)) == 0, "%s: %zu ids, first %d",
                  cases[c].text, n, n ? ids[0] : -1);
        free(ids);
    }
    nt_tokenizer_free(&tok);
}

// ---------------------------------------------------------------------------------------------- bad input

static void expect_fail(int rc, nt_tokenizer *tok, const nt_err *err, const char *file, const char *word) {
    cr_assert_eq(rc, -1, "loaded but should not have (expected '%s')", word);
    cr_assert(tok == NULL);
    cr_assert(strstr(err->msg, file) != NULL, "message does not name %s: %s", file, err->msg);
    cr_assert(strstr(err->msg, word) != NULL, "message does not say '%s': %s", word, err->msg);
    cr_assert(strchr(err->msg, '\n') == NULL);
}

static void spec_fails(const nt_tokenizer_spec *sp, const char *word) {
    nt_tokenizer *tok = (nt_tokenizer *)1;
    nt_err err = {0};
    int rc = nt_tokenizer_from_spec(&tok, sp, "bad.gguf", &err);
    expect_fail(rc, tok, &err, "bad.gguf", word);
}

Test(gguf_tok, bad_specs) {
    const char *tokens[] = {"a", "b", "ab", "<s>", "c"};
    const char *merges[] = {"a b"};
    int32_t types[] = {1, 1, 1, 3, 1};
    float scores[] = {0, -1, -2, 0, -3};
    nt_tokenizer_spec ok = {.model = "gpt2", .pre = "gpt-2", .n_tokens = 5, .tokens = tokens, .n_merges = 1,
                            .merges = merges, .token_types = types, .bos_id = 3, .eos_id = -1, .unk_id = -1,
                            .pad_id = -1};
    nt_tokenizer *tok = from_spec(&ok);
    int32_t *ids = NULL;
    size_t n = 0;
    nt_err err = {0};
    cr_assert_eq(nt_tokenizer_encode(tok, "ab<s>c", 6, true, &ids, &n, &err), 0, "%s", err.msg);
    cr_assert(n == 3 && ids[0] == 2 && ids[1] == 3 && ids[2] == 4, "%zu ids", n);
    free(ids);
    nt_tokenizer_free(&tok);

    nt_tokenizer_spec s = ok;
    s.pre = "mystery-pre";
    spec_fails(&s, "pre-tokenizer 'mystery-pre' is not one normtweak knows");
    s.pre = NULL;
    spec_fails(&s, "pre-tokenizer '(none)'");
    s = ok, s.model = "bert";
    spec_fails(&s, "tokenizer model 'bert' is not supported");
    s = ok, s.model = "llama", s.pre = NULL;
    spec_fails(&s, "needs token scores");
    s.scores = scores, s.pre = "qwen2";
    spec_fails(&s, "pre-tokenizer 'qwen2' is not one normtweak knows for model llama");
    s = ok, s.n_merges = 0;
    spec_fails(&s, "needs merges");
    const char *bad_merge[] = {"a x"};
    s = ok, s.merges = bad_merge;
    spec_fails(&s, "merge 1: token 'x' is not in the vocabulary");
    const char *bad_merge2[] = {"b a"};
    s = ok, s.merges = bad_merge2;
    spec_fails(&s, "merge 1: 'ba' is not in the vocabulary");
    const char *no_space[] = {"ab"};
    s = ok, s.merges = no_space;
    spec_fails(&s, "is not two tokens separated by a space");
    const char *dup[] = {"a", "b", "ab", "<s>", "a"};
    s = ok, s.tokens = dup;
    spec_fails(&s, "token 4 'a' repeats token 0");
    const char *empty[] = {"a", "b", "ab", "", "c"};
    s = ok, s.tokens = empty;
    spec_fails(&s, "token 3 is empty");
    const char *bad_utf8[] = {"a", "b", "ab", "\xff", "c"};
    s = ok, s.tokens = bad_utf8;
    spec_fails(&s, "token 3 is not valid UTF-8");
    int32_t bad_types[] = {1, 1, 9, 3, 1};
    s = ok, s.token_types = bad_types;
    spec_fails(&s, "token 2 has type 9");
    s = ok, s.bos_id = 5;
    spec_fails(&s, "bos_token_id 5 is not a token id");
    s = ok, s.eos_id = -2;
    spec_fails(&s, "eos_token_id -2");
    s = ok, s.add_eos = true;
    spec_fails(&s, "add_eos_token is set but there is no eos_token_id");
    s = ok, s.n_tokens = 0;
    spec_fails(&s, "has no tokens");
    float nan_scores[] = {0, -1, NAN, 0, -3};
    s = ok, s.model = "llama", s.pre = NULL, s.scores = nan_scores;
    spec_fails(&s, "token 2 has a NaN score");
}

static void gguf_fails(const nt_tokenizer_spec *sp, const gguf_edit *ed, const char *word) {
    char *path = write_gguf("bad.gguf", sp, ed);
    nt_tokenizer *tok = (nt_tokenizer *)1;
    nt_err err = {0};
    int rc = nt_tokenizer_load_gguf(&tok, path, &err);
    expect_fail(rc, tok, &err, path, word);
    free(path);
}

Test(gguf_tok, bad_gguf_metadata) {
    const char *tokens[] = {"a", "b", "ab", "<s>", "c"};
    const char *merges[] = {"a b"};
    int32_t types[] = {1, 1, 1, 3, 1};
    float scores[] = {0, -1, -2, 0, -3};
    nt_tokenizer_spec bpe = {.model = "gpt2", .pre = "smollm", .n_tokens = 5, .tokens = tokens, .n_merges = 1,
                             .merges = merges, .token_types = types, .bos_id = 3, .eos_id = 3, .unk_id = -1,
                             .pad_id = -1};
    nt_tokenizer_spec spm = {.model = "llama", .n_tokens = 5, .tokens = tokens, .scores = scores, .token_types = types,
                             .bos_id = 3, .eos_id = 3, .unk_id = -1, .pad_id = -1, .add_bos = true,
                             .add_space_prefix = true};
    char *path = write_gguf("ok.gguf", &bpe, NULL); // the unedited files load
    nt_tokenizer *tok = load_gguf(path);
    nt_tokenizer_free(&tok);
    free(path);
    path = write_gguf("ok-spm.gguf", &spm, NULL);
    tok = load_gguf(path);
    int32_t *ids = NULL;
    size_t n = 0;
    nt_err err = {0};
    cr_assert_eq(nt_tokenizer_encode(tok, "ab", 2, true, &ids, &n, &err), 0, "%s", err.msg);
    // BOS (add_bos_token), then "ab" merged (the "▁" before it is in no token and there is no unk: dropped)
    cr_assert(n == 2 && ids[0] == 3 && ids[1] == 2, "%zu ids", n);
    free(ids);
    nt_tokenizer_free(&tok);
    free(path);

    gguf_fails(&bpe, &(gguf_edit){.pre = "tekken"}, "pre-tokenizer 'tekken' is not one normtweak knows");
    gguf_fails(&bpe, &(gguf_edit){.skip = "tokenizer.ggml.pre"}, "pre-tokenizer '(none)'");
    gguf_fails(&bpe, &(gguf_edit){.model = "t5"}, "tokenizer model 't5' is not supported");
    gguf_fails(&bpe, &(gguf_edit){.skip = "tokenizer.ggml.model"}, "'tokenizer.ggml.model' is missing");
    gguf_fails(&bpe, &(gguf_edit){.skip = "tokenizer.ggml.tokens"}, "'tokenizer.ggml.tokens' is missing");
    gguf_fails(&bpe, &(gguf_edit){.tokens_as_ints = true}, "expected strings");
    gguf_fails(&bpe, &(gguf_edit){.skip = "tokenizer.ggml.merges"}, "tokenizer.ggml.merges is missing or empty");
    gguf_fails(&bpe, &(gguf_edit){.extra_types = 1}, "tokenizer.ggml.token_type has 6 entries, tokenizer.ggml.tokens 5");
    gguf_fails(&bpe, &(gguf_edit){.extra_types = -2}, "tokenizer.ggml.token_type has 3 entries");
    gguf_fails(&spm, &(gguf_edit){.extra_scores = -1}, "tokenizer.ggml.scores has 4 entries, tokenizer.ggml.tokens 5");
    gguf_fails(&spm, &(gguf_edit){.skip = "tokenizer.ggml.scores"}, "tokenizer.ggml.scores is missing");
    nt_tokenizer_spec s = bpe;
    s.bos_id = 7; // written as is: outside the 5 tokens
    gguf_fails(&s, NULL, "'tokenizer.ggml.bos_token_id' is 7, must be in [0, 4]");
    s = bpe, s.add_bos = true, s.bos_id = -1;
    gguf_fails(&s, NULL, "add_bos_token is set but there is no bos_token_id");

    // not a GGUF file, a missing file, a directory that is neither
    nt_tokenizer *t2 = (nt_tokenizer *)1;
    char *junk = nt_path_join(g_dir, "junk.gguf");
    cr_assert_eq(tu_write_file(junk, "not a gguf file at all", 22), 0);
    int rc = nt_tokenizer_load_gguf(&t2, junk, &err);
    expect_fail(rc, t2, &err, junk, "not a GGUF file");
    t2 = (nt_tokenizer *)1;
    rc = nt_tokenizer_load_model(&t2, junk, &err);
    expect_fail(rc, t2, &err, junk, "neither a model directory nor a GGUF file");
    char *missing = nt_path_join(g_dir, "missing.gguf");
    t2 = (nt_tokenizer *)1;
    rc = nt_tokenizer_load_gguf(&t2, missing, &err);
    expect_fail(rc, t2, &err, missing, "No such file");
    t2 = (nt_tokenizer *)1;
    rc = nt_tokenizer_load_model(&t2, missing, &err);
    expect_fail(rc, t2, &err, missing, "no tokenizer file");
    free(missing);
    free(junk);
}

// nt_tokenizer_load_model: a model directory too
Test(gguf_tok, load_model_directory) {
    char *dir = tu_shared("models/tiny-opt");
    nt_tokenizer *a = NULL, *b = NULL;
    nt_err err = {0};
    cr_assert_eq(nt_tokenizer_load_model(&a, dir, &err), 0, "%s", err.msg);
    cr_assert_eq(nt_tokenizer_load_dir(&b, dir, &err), 0, "%s", err.msg);
    const char s[] = "The same tokenizer either way.";
    cr_assert(same_ids(a, b, s, sizeof(s) - 1, true));
    nt_tokenizer_free(&a);
    nt_tokenizer_free(&b);
    free(dir);
}
