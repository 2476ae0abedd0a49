// gguf_model.c: a GGUF file -> nt_model (see gguf_model.h). Reads ARCH.* metadata into nt_config, finds each
// tensor under its llama.cpp name (token_embd, blk.N.attn_q, ..., output_norm, output), checks its shape against
// the config, dequantizes it to fp32 (base/gguf.c) and, for `llama`, undoes the converter's Q/K row permutation.
//
// GGUF stores a (out, in) matrix with dims {in, out}: its rows are already nt_linear's row-major (out, in).
#define _POSIX_C_SOURCE 200809L
#include "gguf_model.h"

#include <string.h>
#include <sys/stat.h>

#include "gguf.h"

bool nt_gguf_model_path(const char *path) {
    size_t n = strlen(path);
    struct stat sb;
    bool is_dir = stat(path, &sb) == 0 && S_ISDIR(sb.st_mode);
    if (n >= 5 && strcmp(path + n - 5, ".gguf") == 0 && !is_dir) return true;
    return nt_gguf_is_gguf(path);
}

typedef struct {
    nt_gguf *g;
    const char *path;
    const char *arch; // "llama" or "qwen2"
    bool *used;       // (tensor count) consumed by the model
} loader;

// ARCH.suffix into buf.
static const char *akey(const loader *L, const char *suffix, char *buf, size_t size) {
    snprintf(buf, size, "%s.%s", L->arch, suffix);
    return buf;
}

static int get_int(const loader *L, const char *suffix, int64_t lo, int64_t hi, int def, int *out, nt_err *err) {
    char k[128];
    akey(L, suffix, k, sizeof(k));
    if (def >= 0 && !nt_gguf_has(L->g, k)) {
        *out = def;
        return 0;
    }
    int64_t v;
    if (nt_gguf_get_int_range(L->g, k, lo, hi, &v, err)) return -1;
    *out = (int)v;
    return 0;
}

static int get_float(const loader *L, const char *suffix, double def, bool required, float *out, nt_err *err) {
    char k[128];
    akey(L, suffix, k, sizeof(k));
    if (!required && !nt_gguf_has(L->g, k)) {
        *out = (float)def;
        return 0;
    }
    double v;
    if (nt_gguf_get_float(L->g, k, &v, err)) return -1;
    *out = (float)v;
    return 0;
}

// The shape as "[d0, d1]" (GGUF order) for messages.
static void dims_str(const int64_t *d, int n, char *buf, size_t size) {
    size_t k = (size_t)snprintf(buf, size, "[");
    for (int i = 0; i < n && k < size; i++) k += (size_t)snprintf(buf + k, size - k, "%s%lld", i ? ", " : "", (long long)d[i]);
    if (k < size) snprintf(buf + k, size - k, "]");
}

// Tensor `name` with n_dims nd and dims {d0, d1} (GGUF order: d0 = row length), dequantized into a new
// (d1, d0) float array; an absent optional tensor leaves *out NULL.
static int load(loader *L, const char *name, int nd, int64_t d0, int64_t d1, bool optional, float **out, nt_err *err) {
    *out = NULL;
    const nt_gguf_tensor *t = nt_gguf_find_tensor(L->g, name);
    if (!t) return optional ? 0 : nt_fail(err, "%s: tensor '%s' not found", L->path, name);
    L->used[t - nt_gguf_tensor_at(L->g, 0)] = true;
    int64_t want[2] = {d0, d1};
    if (t->n_dims != nd || t->dims[0] != d0 || (nd == 2 && t->dims[1] != d1)) {
        char got[96], exp[96];
        dims_str(t->dims, t->n_dims, got, sizeof(got));
        dims_str(want, nd, exp, sizeof(exp));
        return nt_fail(err, "%s: tensor '%s' has dims %s, the %s config implies %s", L->path, name, got, L->arch, exp);
    }
    return nt_gguf_dequantize(t, out, err);
}

// llama.cpp's converter reorders the rows of each head of Q and K (weights and biases) for its interleaved
// RoPE: GGUF row h*hd + 2i + s holds Hugging Face row h*hd + s*hd/2 + i (s = 0, 1; i < hd/2). The transformer
// rotates halves as HF does, so put the rows back. w is (n_heads * hd, cols).
static int unpermute(float *w, int n_heads, int hd, int cols, nt_err *err) {
    if (!w) return 0;
    size_t head = (size_t)hd * cols;
    float *tmp = malloc(head * sizeof(float));
    if (!tmp) return nt_fail(err, "out of memory");
    for (int h = 0; h < n_heads; h++) {
        float *base = w + (size_t)h * head;
        memcpy(tmp, base, head * sizeof(float));
        for (int i = 0; i < hd / 2; i++)
            for (int s = 0; s < 2; s++)
                memcpy(base + ((size_t)s * (hd / 2) + i) * cols, tmp + ((size_t)2 * i + s) * cols,
                       (size_t)cols * sizeof(float));
    }
    free(tmp);
    return 0;
}

static int load_linear(loader *L, const char *name, int out_dim, int in_dim, bool bias, nt_linear *lin, nt_err *err) {
    char buf[192]; // name is at most 160 bytes
    lin->in = in_dim;
    lin->out = out_dim;
    snprintf(buf, sizeof(buf), "%s.weight", name);
    if (load(L, buf, 2, in_dim, out_dim, false, &lin->w, err)) return -1;
    if (!bias) return 0;
    snprintf(buf, sizeof(buf), "%s.bias", name);
    return load(L, buf, 1, out_dim, 1, false, &lin->b, err);
}

static int config_from_gguf(nt_config *c, loader *L, nt_err *err) {
    memset(c, 0, sizeof(*c));
    snprintf(c->model_type, sizeof(c->model_type), "%s", L->arch);
    c->arch = NT_ARCH_LLAMA;
    bool qwen = strcmp(L->arch, "qwen2") == 0;
    char k[128];
    int experts = 0, rope_dims = 0, key_len = 0, value_len = 0;
    if (get_int(L, "block_count", 1, 100000, -1, &c->n_layers, err) ||
        get_int(L, "embedding_length", 1, 1 << 20, -1, &c->dim, err) ||
        get_int(L, "feed_forward_length", 1, 1 << 22, -1, &c->ffn_dim, err) ||
        get_int(L, "attention.head_count", 1, 1 << 16, -1, &c->n_heads, err) ||
        get_int(L, "attention.head_count_kv", 1, 1 << 16, c->n_heads, &c->n_kv_heads, err) ||
        get_int(L, "context_length", 1, 1 << 26, -1, &c->max_pos, err) ||
        get_int(L, "attention.key_length", 1, 1 << 16, 0, &key_len, err) ||
        get_int(L, "attention.value_length", 1, 1 << 16, 0, &value_len, err) ||
        get_int(L, "rope.dimension_count", 0, 1 << 16, 0, &rope_dims, err) ||
        get_int(L, "expert_count", 0, 1 << 16, 0, &experts, err) ||
        get_float(L, "attention.layer_norm_rms_epsilon", 0, true, &c->norm_eps, err) ||
        get_float(L, "rope.freq_base", 10000.0, false, &c->rope_theta, err))
        return -1;
    if (experts > 0)
        return nt_fail(err, "%s: a mixture-of-experts model (%s = %d), which normtweak does not support", L->path,
                       akey(L, "expert_count", k, sizeof(k)), experts);
    akey(L, "rope.scaling.type", k, sizeof(k));
    if (nt_gguf_has(L->g, k)) {
        const char *s;
        if (nt_gguf_get_str(L->g, k, &s, NULL, err)) return -1;
        if (strcmp(s, "none") != 0)
            return nt_fail(err, "%s: RoPE scaling '%s' (%s) is not supported yet", L->path, s, k);
    }
    if (nt_gguf_find_tensor(L->g, "rope_freqs.weight"))
        return nt_fail(err, "%s: per-frequency RoPE scaling (tensor 'rope_freqs.weight', Llama 3.1 style) is not "
                            "supported yet", L->path);
    if (c->dim % c->n_heads != 0 && key_len == 0)
        return nt_fail(err, "%s: embedding_length %d is not divisible by %d attention heads", L->path, c->dim,
                       c->n_heads);
    c->head_dim = key_len ? key_len : c->dim / c->n_heads;
    if (value_len && value_len != c->head_dim)
        return nt_fail(err, "%s: attention key_length %d and value_length %d differ, which normtweak does not support",
                       L->path, c->head_dim, value_len);
    if (c->n_kv_heads > c->n_heads || c->n_heads % c->n_kv_heads != 0)
        return nt_fail(err, "%s: %d attention heads are not a multiple of %d key/value heads", L->path, c->n_heads,
                       c->n_kv_heads);
    if (c->head_dim % 2 != 0) return nt_fail(err, "%s: RoPE needs an even head dim (%d)", L->path, c->head_dim);
    if (rope_dims && rope_dims != c->head_dim)
        return nt_fail(err, "%s: rope.dimension_count %d differs from the head dim %d (partial RoPE is not supported)",
                       L->path, rope_dims, c->head_dim);
    if (!(c->norm_eps > 0))
        return nt_fail(err, "%s: %s must be positive", L->path, akey(L, "attention.layer_norm_rms_epsilon", k, sizeof(k)));
    if (!(c->rope_theta > 0)) return nt_fail(err, "%s: %s must be positive", L->path, akey(L, "rope.freq_base", k, sizeof(k)));

    // the vocabulary: token_embd's rows, which the tokenizer's token list and ARCH.vocab_size must agree with
    const nt_gguf_tensor *emb = nt_gguf_find_tensor(L->g, "token_embd.weight");
    if (!emb) return nt_fail(err, "%s: tensor 'token_embd.weight' not found", L->path);
    if (emb->n_dims != 2 || emb->dims[1] > (1 << 24))
        return nt_fail(err, "%s: tensor 'token_embd.weight' has %d dims, expected 2 [embedding_length, vocab] with a "
                            "vocab of at most 2^24", L->path, emb->n_dims);
    c->vocab = (int)emb->dims[1];
    nt_gguf_vtype et;
    uint64_t n_tok = 0;
    if (nt_gguf_has(L->g, "tokenizer.ggml.tokens")) {
        if (nt_gguf_get_arr(L->g, "tokenizer.ggml.tokens", &et, &n_tok, err)) return -1;
        if (n_tok != (uint64_t)c->vocab)
            return nt_fail(err, "%s: tokenizer.ggml.tokens has %llu tokens but token_embd.weight has %d rows", L->path,
                           (unsigned long long)n_tok, c->vocab);
    }
    int vs = 0;
    if (get_int(L, "vocab_size", 1, 1 << 24, 0, &vs, err)) return -1;
    if (vs && vs != c->vocab)
        return nt_fail(err, "%s: %s is %d but token_embd.weight has %d rows", L->path, akey(L, "vocab_size", k, sizeof(k)),
                       vs, c->vocab);

    c->act = NT_ACT_SILU;
    c->emb_dim = c->dim;
    c->rms_norm = c->pre_norm = c->final_norm = true;
    c->tied = nt_gguf_find_tensor(L->g, "output.weight") == NULL;
    c->qkv_bias = nt_gguf_find_tensor(L->g, "blk.0.attn_q.bias") != NULL;
    c->o_bias = nt_gguf_find_tensor(L->g, "blk.0.attn_output.bias") != NULL;
    c->mlp_bias = nt_gguf_find_tensor(L->g, "blk.0.ffn_up.bias") != NULL;
    if (qwen && !c->qkv_bias) return nt_fail(err, "%s: tensor 'blk.0.attn_q.bias' not found (qwen2 has q/k/v biases)", L->path);
    return 0;
}

static int load_weights(nt_model *m, loader *L, nt_err *err) {
    const nt_config *c = &m->cfg;
    int D = c->dim, F = c->ffn_dim, qd = c->n_heads * c->head_dim, kvd = c->n_kv_heads * c->head_dim;
    bool permuted = strcmp(L->arch, "llama") == 0; // qwen2 is stored as Hugging Face has it
    char n[160];
    m->layers = calloc((size_t)c->n_layers, sizeof(nt_layer));
    if (!m->layers) return nt_fail(err, "%s: out of memory", L->path);
    if (load(L, "token_embd.weight", 2, D, c->vocab, false, &m->tok_emb, err) ||
        load(L, "output_norm.weight", 1, D, 1, false, &m->final_norm.w, err))
        return -1;
    for (int l = 0; l < c->n_layers; l++) {
        nt_layer *ly = &m->layers[l];
        const char *sub[4] = {"attn_q", "attn_k", "attn_v", "attn_output"};
        nt_linear *dst[4] = {&ly->q, &ly->k, &ly->v, &ly->o};
        int outs[4] = {qd, kvd, kvd, D}, ins[4] = {D, D, D, qd};
        for (int j = 0; j < 4; j++) {
            snprintf(n, sizeof(n), "blk.%d.%s", l, sub[j]);
            if (load_linear(L, n, outs[j], ins[j], j < 3 ? c->qkv_bias : c->o_bias, dst[j], err)) return -1;
        }
        if (permuted && (unpermute(ly->q.w, c->n_heads, c->head_dim, D, err) ||
                         unpermute(ly->q.b, c->n_heads, c->head_dim, 1, err) ||
                         unpermute(ly->k.w, c->n_kv_heads, c->head_dim, D, err) ||
                         unpermute(ly->k.b, c->n_kv_heads, c->head_dim, 1, err)))
            return nt_fail(err, "%s: %s", L->path, err->msg);
        snprintf(n, sizeof(n), "blk.%d.attn_norm.weight", l);
        if (load(L, n, 1, D, 1, false, &ly->attn_norm.w, err)) return -1;
        snprintf(n, sizeof(n), "blk.%d.ffn_norm.weight", l);
        if (load(L, n, 1, D, 1, false, &ly->mlp_norm.w, err)) return -1;
        snprintf(n, sizeof(n), "blk.%d.ffn_gate", l);
        if (load_linear(L, n, F, D, c->mlp_bias, &ly->gate, err)) return -1;
        snprintf(n, sizeof(n), "blk.%d.ffn_up", l);
        if (load_linear(L, n, F, D, c->mlp_bias, &ly->up, err)) return -1;
        snprintf(n, sizeof(n), "blk.%d.ffn_down", l);
        if (load_linear(L, n, D, F, c->mlp_bias, &ly->down, err)) return -1;
    }
    if (c->tied) {
        m->lm_head = m->tok_emb;
    } else if (load(L, "output.weight", 2, D, c->vocab, false, &m->lm_head, err)) {
        return -1;
    }
    // anything left over is a part of the model normtweak would silently drop: an extra block, a bias, ...
    for (size_t i = 0; i < nt_gguf_tensor_count(L->g); i++)
        if (!L->used[i])
            return nt_fail(err, "%s: tensor '%s' is not part of a %d-block %s model as normtweak reads it", L->path,
                           nt_gguf_tensor_at(L->g, i)->name, c->n_layers, L->arch);
    return 0;
}

int nt_gguf_model_load(nt_model **out, const char *path, nt_err *err) {
    *out = NULL;
    loader L = {.path = path};
    nt_model *m = calloc(1, sizeof(nt_model));
    if (!m) return nt_fail(err, "%s: out of memory", path);
    int rc = -1;
    m->dir = strdup(path);
    m->name = strdup(path); // long enough for its own basename
    if (!m->dir || !m->name) {
        nt_fail(err, "%s: out of memory", path);
        goto done;
    }
    nt_model_name_of_path(path, m->name, strlen(path) + 1); // the file name without ".gguf"
    m->quant = nt_model_quant_fp();

    if (nt_gguf_open(&L.g, path, err)) goto done;
    if (nt_gguf_get_str(L.g, "general.architecture", &L.arch, NULL, err)) goto done;
    if (strcmp(L.arch, "llama") != 0 && strcmp(L.arch, "qwen2") != 0) {
        nt_fail(err, "%s: unsupported architecture '%.64s' (supported: llama, qwen2)", path, L.arch);
        goto done;
    }
    L.used = calloc(nt_gguf_tensor_count(L.g) + 1, sizeof(bool));
    if (!L.used) {
        nt_fail(err, "%s: out of memory", path);
        goto done;
    }
    if (config_from_gguf(&m->cfg, &L, err) || load_weights(m, &L, err)) goto done;
    rc = 0;
done:
    free(L.used);
    nt_gguf_close(&L.g);
    if (rc) nt_model_free(&m);
    *out = m;
    return rc;
}
