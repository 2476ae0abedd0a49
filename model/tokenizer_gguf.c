// tokenizer_gguf.c: a GGUF file's tokenizer.ggml.* metadata read into an nt_tokenizer_spec (tokenizer.h) and
// built by nt_tokenizer_from_spec; and the loader that takes a model directory or a GGUF file. The strings
// point into the GGUF's mapping, which stays open only while the tokenizer is built (it copies them).
#define _POSIX_C_SOURCE 200809L
#include <string.h>
#include <sys/stat.h>

#include "gguf.h"
#include "tokenizer.h"

// An optional id key: -1 when absent.
static int opt_id(const nt_gguf *g, const char *key, int32_t n_tokens, int32_t *out, nt_err *err) {
    *out = -1;
    if (!nt_gguf_has(g, key)) return 0;
    int64_t v;
    if (nt_gguf_get_int_range(g, key, 0, (int64_t)n_tokens - 1, &v, err)) return -1;
    *out = (int32_t)v;
    return 0;
}

static int opt_bool(const nt_gguf *g, const char *key, bool dflt, bool *out, nt_err *err) {
    *out = dflt;
    return nt_gguf_has(g, key) ? nt_gguf_get_bool(g, key, out, err) : 0;
}

// The strings of a string-array key: (*n) pointers and lengths into the mapping, malloc'd.
static int str_array(const nt_gguf *g, const char *key, const char ***s, size_t **lens, int32_t *n, nt_err *err) {
    const char *file = nt_gguf_path(g);
    nt_gguf_vtype elem;
    uint64_t count;
    if (nt_gguf_get_arr(g, key, &elem, &count, err)) return -1;
    if (elem != NT_GGUF_STRING)
        return nt_fail(err, "%s: metadata key '%s' is an array of %s, expected strings", file, key,
                       nt_gguf_vtype_name(elem));
    if (count > (uint64_t)INT32_MAX) return nt_fail(err, "%s: %s has %llu entries, too many", file, key,
                                                    (unsigned long long)count);
    *n = (int32_t)count;
    *s = malloc((count ? count : 1) * sizeof(**s));
    *lens = malloc((count ? count : 1) * sizeof(**lens));
    if (!*s || !*lens) return nt_fail(err, "%s: out of memory", file);
    for (uint64_t i = 0; i < count; i++)
        if (nt_gguf_get_arr_str(g, key, i, &(*s)[i], &(*lens)[i], err)) return -1;
    return 0;
}

int nt_tokenizer_from_gguf(nt_tokenizer **out, const nt_gguf *g, nt_err *err) {
    *out = NULL;
    const char *file = nt_gguf_path(g);
    nt_tokenizer_spec sp = {0};
    const char **tokens = NULL, **merges = NULL;
    size_t *token_lens = NULL, *merge_lens = NULL;
    float *scores = NULL;
    int32_t *types = NULL;
    const char *model = NULL, *pre = NULL;
    int rc = nt_gguf_get_str(g, "tokenizer.ggml.model", &model, NULL, err);
    if (!rc && nt_gguf_has(g, "tokenizer.ggml.pre")) rc = nt_gguf_get_str(g, "tokenizer.ggml.pre", &pre, NULL, err);
    if (!rc) rc = str_array(g, "tokenizer.ggml.tokens", &tokens, &token_lens, &sp.n_tokens, err);
    if (!rc && sp.n_tokens == 0) rc = nt_fail(err, "%s: tokenizer.ggml.tokens is empty", file);
    if (!rc && nt_gguf_has(g, "tokenizer.ggml.merges"))
        rc = str_array(g, "tokenizer.ggml.merges", &merges, &merge_lens, &sp.n_merges, err);
    if (!rc && nt_gguf_has(g, "tokenizer.ggml.scores")) {
        uint64_t n;
        rc = nt_gguf_get_arr_f32(g, "tokenizer.ggml.scores", &scores, &n, err);
        if (!rc && n != (uint64_t)sp.n_tokens)
            rc = nt_fail(err, "%s: tokenizer.ggml.scores has %llu entries, tokenizer.ggml.tokens %d", file,
                         (unsigned long long)n, (int)sp.n_tokens);
    }
    if (!rc && nt_gguf_has(g, "tokenizer.ggml.token_type")) {
        uint64_t n;
        rc = nt_gguf_get_arr_i32(g, "tokenizer.ggml.token_type", &types, &n, err);
        if (!rc && n != (uint64_t)sp.n_tokens)
            rc = nt_fail(err, "%s: tokenizer.ggml.token_type has %llu entries, tokenizer.ggml.tokens %d", file,
                         (unsigned long long)n, (int)sp.n_tokens);
    }
    bool llama = model && strcmp(model, "llama") == 0;
    if (!rc) rc = opt_id(g, "tokenizer.ggml.bos_token_id", sp.n_tokens, &sp.bos_id, err);
    if (!rc) rc = opt_id(g, "tokenizer.ggml.eos_token_id", sp.n_tokens, &sp.eos_id, err);
    if (!rc) rc = opt_id(g, "tokenizer.ggml.unknown_token_id", sp.n_tokens, &sp.unk_id, err);
    if (!rc) rc = opt_id(g, "tokenizer.ggml.padding_token_id", sp.n_tokens, &sp.pad_id, err);
    if (!rc) rc = opt_bool(g, "tokenizer.ggml.add_bos_token", llama, &sp.add_bos, err);
    if (!rc) rc = opt_bool(g, "tokenizer.ggml.add_eos_token", false, &sp.add_eos, err);
    if (!rc) rc = opt_bool(g, "tokenizer.ggml.add_space_prefix", true, &sp.add_space_prefix, err);
    if (!rc && !llama && sp.n_merges == 0 && strcmp(model, "gpt2") == 0)
        rc = nt_fail(err, "%s: tokenizer.ggml.model is gpt2 but tokenizer.ggml.merges is missing or empty", file);
    if (!rc && llama && !scores) rc = nt_fail(err, "%s: tokenizer.ggml.model is llama but tokenizer.ggml.scores is missing", file);
    if (!rc) {
        sp.model = model;
        sp.pre = pre;
        sp.tokens = tokens;
        sp.token_lens = token_lens;
        sp.merges = llama ? NULL : merges; // SentencePiece ranks come from the scores
        sp.merge_lens = merge_lens;
        sp.n_merges = llama ? 0 : sp.n_merges;
        sp.scores = scores;
        sp.token_types = types;
        rc = nt_tokenizer_from_spec(out, &sp, file, err);
    }
    free(tokens);
    free(token_lens);
    free(merges);
    free(merge_lens);
    free(scores);
    free(types);
    return rc;
}

int nt_tokenizer_load_gguf(nt_tokenizer **out, const char *gguf_path, nt_err *err) {
    *out = NULL;
    nt_gguf *g = NULL;
    if (nt_gguf_open(&g, gguf_path, err)) return -1;
    int rc = nt_tokenizer_from_gguf(out, g, err);
    nt_gguf_close(&g);
    return rc;
}

int nt_tokenizer_load_model(nt_tokenizer **out, const char *model_path, nt_err *err) {
    *out = NULL;
    if (nt_gguf_is_gguf(model_path)) return nt_tokenizer_load_gguf(out, model_path, err);
    struct stat st;
    if (stat(model_path, &st) == 0 && S_ISREG(st.st_mode))
        return nt_fail(err, "%s: neither a model directory nor a GGUF file (no GGUF magic)", model_path);
    // a checkpoint quantized from a GGUF model carries the source's tokenizer metadata as tokenizer.gguf (and
    // no tokenizer.json or vocab.json + merges.txt, which nt_tokenizer_load_dir would read first)
    char *tj = nt_path_join(model_path, "tokenizer.json"), *vj = nt_path_join(model_path, "vocab.json"),
         *tg = nt_path_join(model_path, "tokenizer.gguf");
    int rc;
    if (!tj || !vj || !tg) rc = nt_fail(err, "%s: out of memory", model_path);
    else if (!nt_file_exists(tj) && !nt_file_exists(vj) && nt_file_exists(tg)) rc = nt_tokenizer_load_gguf(out, tg, err);
    else rc = nt_tokenizer_load_dir(out, model_path, err);
    free(tj);
    free(vj);
    free(tg);
    return rc;
}
