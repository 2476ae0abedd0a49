// test_gguf_model.c: models from GGUF files (model/gguf_model.c).
//
// 1. The tiny HF fixtures (llama: GQA, untied; llama tied with attention biases; qwen2 with q/k/v biases)
//    converted here to GGUF the way llama.cpp's converter does it (names, reversed dims, Q/K rows permuted for
//    `llama` only), then loaded through nt_model_load: the same weights bit for bit and the same logits as the
//    safetensors checkpoint. The converter is written from the format's definition, so the loader's inverse
//    permutation is checked against an independent forward one.
// 2. Configs that do not add up and files that lack something: one line naming the file, through the library
//    and through `normtweak eval` (exit 1, no CSV).
// 3. SmolLM2-135M-Instruct Q4_1 (models/, put there by .ci/install-deps): every tensor's dequantization against
//    gguf-py (checksums and rows), its config, and its float log-probabilities against transformers'
//    (tests/golden/gguf, made by tests/golden/make_gguf_goldens.py).
#define _POSIX_C_SOURCE 200809L
#include <cjson/cJSON.h>
#include <criterion/criterion.h>
#include <math.h>
#include <string.h>

#include "gguf.h"
#include "gguf_model.h"
#include "qcheckpoint.h"
#include "safetensors.h"
#include "testutil.h"
#include "transformer.h"

// ---------------------------------------------------------------------------------------------- a GGUF writer

typedef struct {
    char name[96];
    uint32_t type;
    int n_dims;
    uint64_t dims[4];
    const void *data;
    size_t nbytes;
} w_tensor;

typedef struct {
    tu_buf kv;
    uint64_t n_kv;
    w_tensor t[64];
    int n_t;
} gguf_w;

static void w_key(gguf_w *w, const char *key, nt_gguf_vtype type) {
    tu_buf_gstr(&w->kv, key);
    tu_buf_u32(&w->kv, (uint32_t)type);
    w->n_kv++;
}
static void w_str(gguf_w *w, const char *key, const char *v) {
    w_key(w, key, NT_GGUF_STRING);
    tu_buf_gstr(&w->kv, v);
}
static void w_u32(gguf_w *w, const char *key, uint32_t v) {
    w_key(w, key, NT_GGUF_UINT32);
    tu_buf_u32(&w->kv, v);
}
static void w_f32(gguf_w *w, const char *key, float v) {
    w_key(w, key, NT_GGUF_FLOAT32);
    tu_buf_f32(&w->kv, v);
}
static void w_tensor_add(gguf_w *w, const char *name, uint32_t type, int n_dims, const uint64_t *dims, const void *data,
                         size_t nbytes) {
    cr_assert(w->n_t < 64);
    w_tensor *t = &w->t[w->n_t++];
    snprintf(t->name, sizeof(t->name), "%s", name);
    t->type = type;
    t->n_dims = n_dims;
    for (int d = 0; d < n_dims; d++) t->dims[d] = dims[d];
    t->data = data;
    t->nbytes = nbytes;
}

static void w_write(gguf_w *w, const char *path) {
    tu_buf b = {0};
    tu_buf_bytes(&b, "GGUF", 4);
    tu_buf_u32(&b, 3);
    tu_buf_u64(&b, (uint64_t)w->n_t);
    tu_buf_u64(&b, w->n_kv);
    tu_buf_bytes(&b, w->kv.b, w->kv.n);
    uint64_t off = 0;
    for (int i = 0; i < w->n_t; i++) {
        tu_buf_gstr(&b, w->t[i].name);
        tu_buf_u32(&b, (uint32_t)w->t[i].n_dims);
        for (int d = 0; d < w->t[i].n_dims; d++) tu_buf_u64(&b, w->t[i].dims[d]);
        tu_buf_u32(&b, w->t[i].type);
        tu_buf_u64(&b, off);
        off += (w->t[i].nbytes + 31) / 32 * 32;
    }
    for (int i = 0; i < w->n_t; i++) {
        tu_buf_pad(&b, 32);
        tu_buf_bytes(&b, w->t[i].data, w->t[i].nbytes);
    }
    cr_assert_eq(tu_write_file(path, b.b, b.n), 0);
    tu_buf_free(&b);
    tu_buf_free(&w->kv);
}

// ---------------------------------------------------------------------------------------------- HF -> GGUF

// How to spoil a conversion (all zero: a faithful one).
typedef struct {
    const char *arch;          // general.architecture (default: the fixture's model_type)
    const char *skip_key;      // a metadata key left out (without the "ARCH." prefix)
    const char *skip_tensor;   // a tensor left out (GGUF name)
    const char *extra_tensor;  // an extra (dim) F32 tensor
    const char *swap_dims;     // a 2-D tensor written with its dims swapped
    const char *as_iq2;        // a tensor written as IQ2_XS (a type normtweak cannot dequantize)
    int block_count, head_count, head_count_kv, key_length; // overrides (0: the real value)
    bool head_count_str;       // head_count as a STRING
    bool no_permute;           // skip the Q/K permutation (for `llama`)
    uint32_t n_tokens;         // a tokenizer.ggml.tokens array of this many tokens (0: none)
    const char *rope_scaling;  // ARCH.rope.scaling.type
    uint32_t experts;          // ARCH.expert_count
} spoil;

// llama.cpp's converter: HF row h*hd + s*hd/2 + i goes to GGUF row h*hd + 2i + s (s < 2, i < hd/2).
static float *permute_rows(const float *src, int n_heads, int hd, int cols) {
    float *out = malloc((size_t)n_heads * hd * cols * sizeof(float));
    for (int h = 0; h < n_heads; h++)
        for (int s = 0; s < 2; s++)
            for (int i = 0; i < hd / 2; i++)
                memcpy(out + ((size_t)h * hd + 2 * i + s) * cols, src + ((size_t)h * hd + s * (hd / 2) + i) * cols,
                       (size_t)cols * sizeof(float));
    return out;
}

// The GGUF name of an HF tensor name (NULL: not a tensor GGUF keeps).
static bool gguf_name(const char *hf, char *out, size_t size) {
    static const char *const map[][2] = {{"self_attn.q_proj", "attn_q"},   {"self_attn.k_proj", "attn_k"},
                                         {"self_attn.v_proj", "attn_v"},   {"self_attn.o_proj", "attn_output"},
                                         {"mlp.gate_proj", "ffn_gate"},    {"mlp.up_proj", "ffn_up"},
                                         {"mlp.down_proj", "ffn_down"},    {"input_layernorm", "attn_norm"},
                                         {"post_attention_layernorm", "ffn_norm"}};
    if (strcmp(hf, "model.embed_tokens.weight") == 0) return snprintf(out, size, "token_embd.weight"), true;
    if (strcmp(hf, "model.norm.weight") == 0) return snprintf(out, size, "output_norm.weight"), true;
    if (strcmp(hf, "lm_head.weight") == 0) return snprintf(out, size, "output.weight"), true;
    int layer, n = 0;
    if (sscanf(hf, "model.layers.%d.%n", &layer, &n) != 1 || n == 0) return false;
    for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++) {
        size_t k = strlen(map[i][0]);
        if (strncmp(hf + n, map[i][0], k) == 0 && hf[n + k] == '.')
            return snprintf(out, size, "blk.%d.%s%s", layer, map[i][1], hf + n + k), true;
    }
    return false;
}

typedef struct {
    nt_safetensors *st;
    float *owned[64];
    int n_owned;
    char *tokens; // for the token list
} conv_state;

// Writes fixture `fixture` (tests/fixtures/NAME, float32) as a GGUF at path.
static void convert(const char *fixture, const char *path, const spoil *sp, conv_state *cs) {
    char rel[256];
    snprintf(rel, sizeof(rel), "tests/fixtures/%s", fixture);
    char *dir = tu_source(rel), *cfg_path = nt_path_join(dir, "config.json");
    nt_config c;
    nt_err err = {0};
    cr_assert_eq(nt_config_load(&c, cfg_path, &err), 0, "%s", err.msg);
    cr_assert_eq(nt_st_open_dir(&cs->st, dir, &err), 0, "%s", err.msg);
    const char *arch = sp->arch ? sp->arch : c.model_type;
    bool permute = strcmp(c.model_type, "llama") == 0 && !sp->no_permute;
    gguf_w w = {0};
    w_str(&w, "general.architecture", arch);
    w_str(&w, "general.name", fixture);
    const struct {
        const char *key;
        uint32_t v;
    } ints[] = {{"block_count", sp->block_count ? (uint32_t)sp->block_count : (uint32_t)c.n_layers},
                {"embedding_length", (uint32_t)c.dim},
                {"feed_forward_length", (uint32_t)c.ffn_dim},
                {"attention.head_count", sp->head_count ? (uint32_t)sp->head_count : (uint32_t)c.n_heads},
                {"attention.head_count_kv", sp->head_count_kv ? (uint32_t)sp->head_count_kv : (uint32_t)c.n_kv_heads},
                {"context_length", (uint32_t)c.max_pos},
                {"rope.dimension_count", (uint32_t)c.head_dim}};
    char key[128];
    for (size_t i = 0; i < sizeof(ints) / sizeof(ints[0]); i++) {
        if (sp->skip_key && strcmp(sp->skip_key, ints[i].key) == 0) continue;
        snprintf(key, sizeof(key), "%s.%s", arch, ints[i].key);
        if (sp->head_count_str && strcmp(ints[i].key, "attention.head_count") == 0) w_str(&w, key, "4");
        else w_u32(&w, key, ints[i].v);
    }
    if (sp->key_length) {
        snprintf(key, sizeof(key), "%s.attention.key_length", arch);
        w_u32(&w, key, (uint32_t)sp->key_length);
    }
    if (!(sp->skip_key && strcmp(sp->skip_key, "attention.layer_norm_rms_epsilon") == 0)) {
        snprintf(key, sizeof(key), "%s.attention.layer_norm_rms_epsilon", arch);
        w_f32(&w, key, c.norm_eps);
    }
    snprintf(key, sizeof(key), "%s.rope.freq_base", arch);
    w_f32(&w, key, c.rope_theta);
    if (sp->rope_scaling) {
        snprintf(key, sizeof(key), "%s.rope.scaling.type", arch);
        w_str(&w, key, sp->rope_scaling);
    }
    if (sp->experts) {
        snprintf(key, sizeof(key), "%s.expert_count", arch);
        w_u32(&w, key, sp->experts);
    }
    if (sp->n_tokens) {
        w_key(&w, "tokenizer.ggml.tokens", NT_GGUF_ARRAY);
        tu_buf_u32(&w.kv, NT_GGUF_STRING);
        tu_buf_u64(&w.kv, sp->n_tokens);
        for (uint32_t i = 0; i < sp->n_tokens; i++) {
            char tok[16];
            snprintf(tok, sizeof(tok), "t%u", i);
            tu_buf_gstr(&w.kv, tok);
        }
    }
    for (size_t i = 0; i < nt_st_count(cs->st); i++) {
        const nt_st_tensor *t = nt_st_at(cs->st, i);
        char name[96];
        cr_assert(gguf_name(t->name, name, sizeof(name)), "no GGUF name for %s", t->name);
        cr_assert_eq(t->dtype, NT_DT_F32, "%s", t->name);
        if (sp->skip_tensor && strcmp(sp->skip_tensor, name) == 0) continue;
        uint64_t dims[2] = {0, 0};
        for (int d = 0; d < t->ndim; d++) dims[d] = (uint64_t)t->shape[t->ndim - 1 - d]; // GGML order
        const void *data = t->data;
        bool is_q = strstr(name, ".attn_q.") != NULL, is_k = strstr(name, ".attn_k.") != NULL;
        if (permute && (is_q || is_k)) {
            int heads = is_q ? c.n_heads : c.n_kv_heads;
            float *p = permute_rows(t->data, heads, c.head_dim, t->ndim == 2 ? (int)t->shape[1] : 1);
            cs->owned[cs->n_owned++] = p;
            data = p;
        }
        if (sp->swap_dims && strcmp(sp->swap_dims, name) == 0) {
            uint64_t x = dims[0];
            dims[0] = dims[1];
            dims[1] = x;
        }
        if (sp->as_iq2 && strcmp(sp->as_iq2, name) == 0) {
            cr_assert(t->ndim == 1 && t->nbytes >= 74);
            const uint64_t d256[1] = {256};
            w_tensor_add(&w, name, NT_GGML_IQ2_XS, 1, d256, data, 74);
            continue;
        }
        w_tensor_add(&w, name, NT_GGML_F32, t->ndim, dims, data, t->nbytes);
    }
    if (sp->extra_tensor) {
        static float zeros[1024];
        const uint64_t d[1] = {(uint64_t)c.dim};
        w_tensor_add(&w, sp->extra_tensor, NT_GGML_F32, 1, d, zeros, (size_t)c.dim * sizeof(float));
    }
    w_write(&w, path);
    free(dir);
    free(cfg_path);
}

static void conv_done(conv_state *cs) {
    for (int i = 0; i < cs->n_owned; i++) free(cs->owned[i]);
    nt_st_close(&cs->st);
    memset(cs, 0, sizeof(*cs));
}

static bool same_floats(const float *a, const float *b, size_t n) {
    if (!a || !b) return a == b;
    return memcmp(a, b, n * sizeof(float)) == 0;
}

// The fixture through GGUF: every weight bit-identical to the safetensors load, identical logits.
static void check_fixture(const char *fixture) {
    char *tmp = tu_tmpdir(), file[128];
    snprintf(file, sizeof(file), "%s.gguf", fixture);
    char *path = nt_path_join(tmp, file);
    conv_state cs = {0};
    spoil none = {0};
    convert(fixture, path, &none, &cs);
    conv_done(&cs);
    char rel[256];
    snprintf(rel, sizeof(rel), "tests/fixtures/%s", fixture);
    char *dir = tu_source(rel);
    nt_model *a = NULL, *b = NULL;
    nt_err err = {0};
    cr_assert_eq(nt_model_load(&a, dir, &err), 0, "%s", err.msg);
    cr_assert_eq(nt_model_load(&b, path, &err), 0, "%s", err.msg);
    cr_expect_str_eq(b->name, fixture, "the name is the file name without .gguf");
    cr_expect_str_eq(b->dir, path);
    const nt_config *ca = &a->cfg, *cb = &b->cfg;
    cr_expect(ca->vocab == cb->vocab && ca->dim == cb->dim && ca->n_layers == cb->n_layers &&
              ca->n_heads == cb->n_heads && ca->n_kv_heads == cb->n_kv_heads && ca->head_dim == cb->head_dim &&
              ca->ffn_dim == cb->ffn_dim && ca->max_pos == cb->max_pos && ca->norm_eps == cb->norm_eps &&
              ca->rope_theta == cb->rope_theta && ca->tied == cb->tied && ca->qkv_bias == cb->qkv_bias &&
              ca->o_bias == cb->o_bias && ca->mlp_bias == cb->mlp_bias && cb->arch == NT_ARCH_LLAMA && cb->rms_norm,
              "%s: configs differ", fixture);
    cr_expect_str_eq(cb->model_type, ca->model_type);
    int D = ca->dim;
    cr_expect(same_floats(a->tok_emb, b->tok_emb, (size_t)ca->vocab * D), "token embeddings");
    cr_expect(same_floats(a->lm_head, b->lm_head, (size_t)ca->vocab * D), "lm_head");
    cr_expect((b->lm_head == b->tok_emb) == cb->tied);
    cr_expect(same_floats(a->final_norm.w, b->final_norm.w, (size_t)D));
    for (int l = 0; l < ca->n_layers; l++) {
        nt_layer *x = &a->layers[l], *y = &b->layers[l];
        for (int j = 0; j < NT_LIN_COUNT; j++) {
            const nt_linear *p = nt_layer_linear(x, (nt_lin_id)j), *q = nt_layer_linear(y, (nt_lin_id)j);
            cr_expect(p->in == q->in && p->out == q->out, "layer %d %s shape", l, nt_lin_name((nt_lin_id)j));
            cr_expect(same_floats(p->w, q->w, (size_t)p->in * p->out), "%s: layer %d %s weights differ", fixture, l,
                      nt_lin_name((nt_lin_id)j));
            cr_expect(same_floats(p->b, q->b, (size_t)p->out), "%s: layer %d %s bias differs", fixture, l,
                      nt_lin_name((nt_lin_id)j));
        }
        cr_expect(same_floats(x->attn_norm.w, y->attn_norm.w, (size_t)D) &&
                  same_floats(x->mlp_norm.w, y->mlp_norm.w, (size_t)D));
    }
    // the same weights: the same forward, bit for bit
    const int T = 12;
    int32_t ids[12];
    uint64_t rs = 99;
    for (int i = 0; i < T; i++) ids[i] = (int32_t)(tu_rnd_u32(&rs) % (uint32_t)ca->vocab);
    nt_run *ra = NULL, *rb = NULL;
    cr_assert_eq(nt_run_init(&ra, a, T, T, &err), 0, "%s", err.msg);
    cr_assert_eq(nt_run_init(&rb, b, T, T, &err), 0, "%s", err.msg);
    float *la = malloc((size_t)T * ca->vocab * sizeof(float)), *lb = malloc((size_t)T * ca->vocab * sizeof(float));
    cr_assert_eq(nt_forward(a, ra, ids, T, la, &err), 0, "%s", err.msg);
    cr_assert_eq(nt_forward(b, rb, ids, T, lb, &err), 0, "%s", err.msg);
    cr_expect(same_floats(la, lb, (size_t)T * ca->vocab), "%s: logits differ", fixture);
    free(la);
    free(lb);
    nt_run_free(&ra);
    nt_run_free(&rb);
    nt_model_free(&a);
    nt_model_free(&b);
    free(dir);
    free(path);
    tu_rmtree(tmp);
    free(tmp);
}

Test(gguf_model, tiny_llama_gqa_untied_same_as_safetensors) { check_fixture("tiny-random-llama"); }
Test(gguf_model, tiny_llama_tied_attention_bias_same_as_safetensors) { check_fixture("tiny-random-llama-tied-bias"); }
Test(gguf_model, tiny_qwen2_biases_not_permuted_same_as_safetensors) { check_fixture("tiny-random-qwen2"); }

// Forgetting to undo the permutation must show: the converter's layout really differs from HF's.
Test(gguf_model, unpermuted_q_k_would_differ) {
    char *tmp = tu_tmpdir(), *path = nt_path_join(tmp, "np.gguf");
    conv_state cs = {0};
    spoil sp = {.no_permute = true};
    convert("tiny-random-llama", path, &sp, &cs);
    conv_done(&cs);
    char *dir = tu_source("tests/fixtures/tiny-random-llama");
    nt_model *a = NULL, *b = NULL;
    nt_err err = {0};
    cr_assert_eq(nt_model_load(&a, dir, &err), 0, "%s", err.msg);
    cr_assert_eq(nt_model_load(&b, path, &err), 0, "%s", err.msg);
    size_t nq = (size_t)a->layers[0].q.in * a->layers[0].q.out;
    cr_expect(!same_floats(a->layers[0].q.w, b->layers[0].q.w, nq), "unpermuted Q loads differently");
    cr_expect(same_floats(a->layers[0].v.w, b->layers[0].v.w, (size_t)a->layers[0].v.in * a->layers[0].v.out),
              "V is never permuted");
    nt_model_free(&a);
    nt_model_free(&b);
    free(dir);
    free(path);
    tu_rmtree(tmp);
    free(tmp);
}

// `normtweak quantize` from a GGUF source: the checkpoint (tensors from the model, config.json from its config)
// loads back as the same quantized model as one made from the safetensors fixture: every weight, logits bitwise.
static void check_quantize_from_gguf(const char *fixture) {
    char *tmp = tu_tmpdir(), file[128];
    snprintf(file, sizeof(file), "%s.gguf", fixture);
    char *path = nt_path_join(tmp, file), *qa = nt_path_join(tmp, "q_st"), *qb = nt_path_join(tmp, "q_gguf");
    conv_state cs = {0};
    spoil none = {0};
    convert(fixture, path, &none, &cs);
    conv_done(&cs);
    char rel[256];
    snprintf(rel, sizeof(rel), "tests/fixtures/%s", fixture);
    char *dir = tu_source(rel);
    nt_quant_opts o = nt_quant_opts_make("rtn", 4, -1);
    nt_err err = {0};
    cr_assert_eq(nt_quantize_checkpoint(dir, NULL, &o, qa, NULL, NULL, &err), 0, "%s", err.msg);
    cr_assert_eq(nt_quantize_checkpoint(path, NULL, &o, qb, NULL, NULL, &err), 0, "%s", err.msg);
    nt_model *a = NULL, *b = NULL;
    cr_assert_eq(nt_model_load(&a, qa, &err), 0, "%s", err.msg);
    cr_assert_eq(nt_model_load(&b, qb, &err), 0, "%s", err.msg);
    cr_expect_str_eq(a->name, fixture);
    cr_expect_str_eq(b->name, fixture, "rows of the checkpoint name the GGUF model as its own rows do");
    cr_expect(strcmp(b->quant.method, "rtn") == 0 && b->quant.wbits == 4 && b->quant.group_size == -1);
    cr_expect(a->cfg.tied == b->cfg.tied && a->cfg.qkv_bias == b->cfg.qkv_bias && a->cfg.o_bias == b->cfg.o_bias &&
              a->cfg.norm_eps == b->cfg.norm_eps && a->cfg.rope_theta == b->cfg.rope_theta &&
              a->cfg.max_pos == b->cfg.max_pos && a->cfg.n_kv_heads == b->cfg.n_kv_heads);
    cr_expect_str_eq(b->cfg.model_type, a->cfg.model_type);
    for (int l = 0; l < a->cfg.n_layers; l++)
        for (int j = 0; j < NT_LIN_COUNT; j++) {
            const nt_linear *p = nt_layer_linear(&a->layers[l], (nt_lin_id)j),
                            *q = nt_layer_linear(&b->layers[l], (nt_lin_id)j);
            cr_expect(q->q && same_floats(p->w, q->w, (size_t)p->in * p->out) && same_floats(p->b, q->b, (size_t)p->out),
                      "%s: layer %d %s", fixture, l, nt_lin_name((nt_lin_id)j));
        }
    const int T = 9, V = a->cfg.vocab;
    int32_t ids[9] = {1, 5, 9, 77, 3, 127, 64, 0, 12};
    nt_run *ra = NULL, *rb = NULL;
    float *la = malloc((size_t)T * V * sizeof(float)), *lb = malloc((size_t)T * V * sizeof(float));
    cr_assert(nt_run_init(&ra, a, T, T, &err) == 0 && nt_run_init(&rb, b, T, T, &err) == 0, "%s", err.msg);
    cr_assert(nt_forward(a, ra, ids, T, la, &err) == 0 && nt_forward(b, rb, ids, T, lb, &err) == 0, "%s", err.msg);
    cr_expect(same_floats(la, lb, (size_t)T * V), "%s: quantized logits differ", fixture);
    free(la);
    free(lb);
    nt_run_free(&ra);
    nt_run_free(&rb);
    nt_model_free(&a);
    nt_model_free(&b);
    free(dir);
    free(path);
    free(qa);
    free(qb);
    tu_rmtree(tmp);
    free(tmp);
}

Test(gguf_model, quantize_from_gguf_tied_bias) { check_quantize_from_gguf("tiny-random-llama-tied-bias"); }
Test(gguf_model, quantize_from_gguf_qwen2) { check_quantize_from_gguf("tiny-random-qwen2"); }

// ---------------------------------------------------------------------------------------------- bad configs

typedef struct {
    const char *name;
    const char *fixture;
    spoil sp;
    const char *needle;
} bad_model;

static const bad_model bad_models[] = {
    {"arch_gpt2", "tiny-random-llama", {.arch = "gpt2"}, "unsupported architecture 'gpt2' (supported: llama, qwen2)"},
    {"no_block_count", "tiny-random-llama", {.skip_key = "block_count"}, "metadata key 'llama.block_count' is missing"},
    {"no_eps", "tiny-random-llama", {.skip_key = "attention.layer_norm_rms_epsilon"},
     "metadata key 'llama.attention.layer_norm_rms_epsilon' is missing"},
    {"no_context", "tiny-random-qwen2", {.skip_key = "context_length"}, "metadata key 'qwen2.context_length' is missing"},
    {"head_count_string", "tiny-random-llama", {.head_count_str = true},
     "metadata key 'llama.attention.head_count' is STRING, expected an integer"},
    {"blocks_more_than_tensors", "tiny-random-llama", {.block_count = 3}, "tensor 'blk.2.attn_q.weight' not found"},
    {"blocks_fewer_than_tensors", "tiny-random-llama", {.block_count = 1},
     "tensor 'blk.1.attn_norm.weight' is not part of a 1-block llama model"},
    {"heads_do_not_divide", "tiny-random-llama", {.head_count = 5}, "embedding_length 32 is not divisible by 5 attention heads"},
    {"kv_heads_do_not_divide", "tiny-random-llama", {.head_count_kv = 3},
     "4 attention heads are not a multiple of 3 key/value heads"},
    {"wrong_q_shape", "tiny-random-llama", {.head_count = 2},
     "rope.dimension_count 8 differs from the head dim 16"},
    {"wrong_shape_key_length", "tiny-random-llama", {.key_length = 4, .skip_key = "rope.dimension_count"},
     "tensor 'blk.0.attn_q.weight' has dims [32, 32], the llama config implies [32, 16]"},
    {"swapped_dims", "tiny-random-llama", {.swap_dims = "blk.1.ffn_down.weight"},
     "tensor 'blk.1.ffn_down.weight' has dims [32, 48], the llama config implies [48, 32]"},
    {"missing_tensor", "tiny-random-llama", {.skip_tensor = "blk.1.ffn_up.weight"}, "tensor 'blk.1.ffn_up.weight' not found"},
    {"missing_norm", "tiny-random-qwen2", {.skip_tensor = "output_norm.weight"}, "tensor 'output_norm.weight' not found"},
    {"missing_embedding", "tiny-random-llama", {.skip_tensor = "token_embd.weight"}, "tensor 'token_embd.weight' not found"},
    {"qwen2_no_bias", "tiny-random-qwen2", {.skip_tensor = "blk.0.attn_q.bias"},
     "tensor 'blk.0.attn_q.bias' not found (qwen2 has q/k/v biases)"},
    {"qwen2_missing_bias", "tiny-random-qwen2", {.skip_tensor = "blk.1.attn_v.bias"}, "tensor 'blk.1.attn_v.bias' not found"},
    {"extra_tensor", "tiny-random-llama", {.extra_tensor = "blk.0.attn_q_norm.weight"},
     "tensor 'blk.0.attn_q_norm.weight' is not part of a 2-block llama model"},
    {"tokens_vs_embedding", "tiny-random-llama", {.n_tokens = 100},
     "tokenizer.ggml.tokens has 100 tokens but token_embd.weight has 128 rows"},
    {"iq2_norm", "tiny-random-llama", {.as_iq2 = "blk.0.attn_norm.weight"},
     "tensor 'blk.0.attn_norm.weight' has dims [256], the llama config implies [32]"},
    {"rope_scaling", "tiny-random-llama", {.rope_scaling = "yarn"}, "RoPE scaling 'yarn' (llama.rope.scaling.type) is not supported"},
    {"rope_freqs", "tiny-random-llama", {.extra_tensor = "rope_freqs.weight"}, "tensor 'rope_freqs.weight', Llama 3.1 style"},
    {"moe", "tiny-random-llama", {.experts = 8}, "a mixture-of-experts model (llama.expert_count = 8)"},
};
#define N_BAD_MODELS (sizeof(bad_models) / sizeof(bad_models[0]))

static void write_bad_model(const char *dir, const bad_model *bm, char **path) {
    char file[128];
    snprintf(file, sizeof(file), "%s.gguf", bm->name);
    *path = nt_path_join(dir, file);
    conv_state cs = {0};
    convert(bm->fixture, *path, &bm->sp, &cs);
    conv_done(&cs);
}

Test(gguf_model, bad_configs_library) {
    char *tmp = tu_tmpdir();
    for (size_t i = 0; i < N_BAD_MODELS; i++) {
        char *path;
        write_bad_model(tmp, &bad_models[i], &path);
        nt_model *m = (nt_model *)&path;
        nt_err err = {0};
        int rc = nt_model_load(&m, path, &err);
        cr_expect_eq(rc, -1, "%s: loaded", bad_models[i].name);
        cr_expect_null(m, "%s", bad_models[i].name);
        cr_expect(strncmp(err.msg, path, strlen(path)) == 0 && err.msg[strlen(path)] == ':' &&
                      strstr(err.msg, bad_models[i].needle) && !strchr(err.msg, '\n'),
                  "%s: '%s' lacks '%s'", bad_models[i].name, err.msg, bad_models[i].needle);
        if (rc == 0) nt_model_free(&m);
        free(path);
    }
    tu_rmtree(tmp);
    free(tmp);
}

// Runs `normtweak eval --model FILE` on a bad file: exit 1, one line naming the file and the problem, no CSV.
static void expect_cli_failure(const char *tmp, const char *model, const char *needle, const char *what) {
    char *out = nt_path_join(tmp, "out.csv"), *data = tu_shared("datasets");
    char args[2048];
    snprintf(args, sizeof(args), "eval --model '%s' --tasks wikitext2 --data-dir '%s' --out '%s'", model, data, out);
    char *err = NULL;
    int st = tu_run_cli(args, &err);
    cr_expect_eq(st, 1, "%s: exit %d, stderr: %s", what, st, err ? err : "");
    cr_expect(err && strstr(err, model) && strstr(err, needle), "%s: stderr '%s' lacks '%s'", what, err ? err : "",
              needle);
    char *nl = err ? strchr(err, '\n') : NULL;
    cr_expect(nl && nl[1] == '\0', "%s: not exactly one line: '%s'", what, err ? err : "");
    cr_expect(!nt_file_exists(out), "%s: a CSV was written", what);
    free(err);
    free(out);
    free(data);
}

Test(gguf_model, bad_configs_cli) {
    char *tmp = tu_tmpdir();
    for (size_t i = 0; i < N_BAD_MODELS; i++) {
        char *path;
        write_bad_model(tmp, &bad_models[i], &path);
        expect_cli_failure(tmp, path, bad_models[i].needle, bad_models[i].name);
        free(path);
    }
    // a .gguf path that does not exist, and a directory passed where a file is expected
    char *missing = nt_path_join(tmp, "missing.gguf");
    expect_cli_failure(tmp, missing, "cannot open: No such file", "missing");
    free(missing);
    tu_rmtree(tmp);
    free(tmp);
}

// ---------------------------------------------------------------------------------------------- SmolLM2

// models/SmolLM2-135M-Instruct.Q4_1.gguf, where .ci/install-deps puts it ($NT_MODELS_DIR, else the repo's
// models/): absent fails the test, saying how to get it.
static char *smollm2_path(void) {
    const char *dir = getenv("NT_MODELS_DIR");
    char *src = tu_source("models");
    char *path = nt_path_join(dir && *dir ? dir : src, "SmolLM2-135M-Instruct.Q4_1.gguf");
    free(src);
    cr_assert(nt_file_exists(path), "%s is missing: run .ci/install-deps (it fetches the test models)", path);
    return path;
}

// bits(x[i]) * (2i + 1) summed mod 2^64, as make_gguf_goldens.py computes it
static uint64_t checksum(const float *x, int64_t n) {
    uint64_t h = 0;
    for (int64_t i = 0; i < n; i++) {
        uint32_t b;
        memcpy(&b, &x[i], 4);
        h += (uint64_t)b * (uint64_t)(2 * i + 1);
    }
    return h;
}

static cJSON *read_json_golden(const char *name, const char *hint) {
    char *text = tu_read_golden("gguf", name, 0, hint);
    cJSON *j = cJSON_Parse(text);
    free(text);
    cr_assert_not_null(j, "%s: malformed JSON", name);
    return j;
}

// Every tensor of the file dequantized bit for bit as gguf-py does (full-tensor checksums, a few rows in full).
Test(gguf_model, smollm2_every_tensor_vs_gguf_py) {
    const char *hint = "tests/golden/make_gguf_goldens.py model";
    char *path = smollm2_path();
    cJSON *j = read_json_golden("smollm2_tensors.json", hint);
    nt_gguf *g = NULL;
    nt_err err = {0};
    cr_assert_eq(nt_gguf_open(&g, path, &err), 0, "%s", err.msg);
    const cJSON *ts = cJSON_GetObjectItem(j, "tensors");
    cr_assert_eq(nt_gguf_tensor_count(g), (size_t)cJSON_GetArraySize(ts));
    cr_expect_eq(nt_gguf_version(g), 3);
    int i = 0, n_q41 = 0, n_q80 = 0, n_f32 = 0;
    for (const cJSON *e = ts->child; e; e = e->next, i++) {
        const nt_gguf_tensor *t = nt_gguf_tensor_at(g, (size_t)i);
        cr_assert_str_eq(t->name, tu_json_str(e, "name"));
        cr_expect_eq((int)t->type, tu_json_int(e, "type"), "%s", t->name);
        const cJSON *dims = cJSON_GetObjectItem(e, "dims");
        cr_assert_eq(t->n_dims, cJSON_GetArraySize(dims), "%s", t->name);
        for (int d = 0; d < t->n_dims; d++) cr_expect_eq(t->dims[d], cJSON_GetArrayItem(dims, d)->valueint);
        float *x = NULL;
        cr_assert_eq(nt_gguf_dequantize(t, &x, &err), 0, "%s", err.msg);
        uint64_t want = strtoull(tu_json_str(e, "checksum"), NULL, 10);
        cr_expect_eq(checksum(x, t->n_elements), want, "%s (%s): dequantization differs from gguf-py", t->name,
                     nt_ggml_type_name(t->type));
        free(x);
        n_q41 += t->type == NT_GGML_Q4_1;
        n_q80 += t->type == NT_GGML_Q8_0;
        n_f32 += t->type == NT_GGML_F32;
    }
    cr_expect(n_q41 == 210 && n_q80 == 1 && n_f32 == 61, "the file's types: %d Q4_1, %d Q8_0, %d F32", n_q41, n_q80,
              n_f32);
    // rows in full: token_embd (Q8_0), two Q4_1 linears, two F32 norms
    size_t total = 0;
    const cJSON *rows = cJSON_GetObjectItem(j, "rows");
    for (const cJSON *e = rows->child; e; e = e->next)
        total += (size_t)cJSON_GetArraySize(cJSON_GetObjectItem(e, "rows")) *
                 (size_t)nt_gguf_find_tensor(g, tu_json_str(e, "name"))->dims[0];
    float *want = tu_read_golden("gguf", "smollm2_rows.f32", total * sizeof(float), hint), *w = want;
    for (const cJSON *e = rows->child; e; e = e->next) {
        const nt_gguf_tensor *t = nt_gguf_find_tensor(g, tu_json_str(e, "name"));
        float *row = malloc((size_t)t->dims[0] * sizeof(float));
        for (const cJSON *r = cJSON_GetObjectItem(e, "rows")->child; r; r = r->next, w += t->dims[0]) {
            cr_assert_eq(nt_gguf_dequantize_rows(t, r->valueint, 1, row, &err), 0, "%s", err.msg);
            cr_expect(memcmp(row, w, (size_t)t->dims[0] * sizeof(float)) == 0, "%s row %d differs from gguf-py",
                      t->name, r->valueint);
        }
        free(row);
    }
    free(want);
    nt_gguf_close(&g);
    cJSON_Delete(j);
    free(path);
}

// The config from the metadata, the name, and the Q/K rows put back in HF order.
Test(gguf_model, smollm2_config_and_unpermuted_q_k) {
    char *path = smollm2_path();
    nt_model *m = NULL;
    nt_err err = {0};
    double t0 = nt_time();
    cr_assert_eq(nt_model_load(&m, path, &err), 0, "%s", err.msg);
    fprintf(stderr, "SmolLM2-135M-Instruct Q4_1: loaded and dequantized in %.2f s\n", nt_time() - t0);
    const nt_config *c = &m->cfg;
    cr_expect_str_eq(m->name, "SmolLM2-135M-Instruct.Q4_1");
    cr_expect_str_eq(c->model_type, "llama");
    cr_expect(c->arch == NT_ARCH_LLAMA && c->vocab == 49152 && c->dim == 576 && c->n_layers == 30 && c->n_heads == 9 &&
              c->n_kv_heads == 3 && c->head_dim == 64 && c->ffn_dim == 1536 && c->max_pos == 8192 &&
              c->norm_eps == 1e-5f && c->rope_theta == 100000.0f && c->tied && !c->qkv_bias && !c->o_bias &&
              c->rms_norm && c->act == NT_ACT_SILU && m->lm_head == m->tok_emb);
    cr_expect_str_eq(m->quant.method, "fp");
    // HF row h*64 + s*32 + i is GGUF row h*64 + 2i + s
    nt_gguf *g = NULL;
    cr_assert_eq(nt_gguf_open(&g, path, &err), 0, "%s", err.msg);
    const char *names[2] = {"blk.7.attn_q.weight", "blk.7.attn_k.weight"};
    const nt_linear *lins[2] = {&m->layers[7].q, &m->layers[7].k};
    for (int j = 0; j < 2; j++) {
        float *x = NULL;
        cr_assert_eq(nt_gguf_dequantize(nt_gguf_find_tensor(g, names[j]), &x, &err), 0, "%s", err.msg);
        int heads = j == 0 ? 9 : 3, bad = 0;
        for (int h = 0; h < heads; h++)
            for (int s = 0; s < 2; s++)
                for (int i = 0; i < 32; i++)
                    bad += memcmp(lins[j]->w + (size_t)(h * 64 + s * 32 + i) * 576, x + (size_t)(h * 64 + 2 * i + s) * 576,
                                  576 * sizeof(float)) != 0;
        cr_expect_eq(bad, 0, "%s: %d rows are not where HF has them", names[j], bad);
        free(x);
    }
    nt_gguf_close(&g);
    nt_model_free(&m);
    free(path);
}

// Float log-probabilities vs transformers (fp32, the same GGUF) on two 2048-token WikiText-2 windows: the
// log p of every actual next token, and the full log-softmax over 256 ids at four positions.
// Tolerance |a - b| <= 1e-4 (atol; no rtol): both sides are fp32 forwards of identical weights that differ only
// in summation order (OpenBLAS sgemm vs torch's, blocked attention sums); over 30 layers that moves a logit by
// ~1e-5 relative, i.e. ~1e-5..1e-4 absolute on logits of magnitude ~10-20; the log-softmax normalizer is
// computed in double on both sides.
Test(gguf_model, smollm2_logprobs_vs_transformers) {
    const char *hint = "tests/golden/make_gguf_goldens.py logits";
    char *path = smollm2_path();
    cJSON *j = read_json_golden("smollm2_logits.json", hint);
    const int T = tu_json_int(j, "seqlen");
    const cJSON *starts = cJSON_GetObjectItem(j, "window_starts"), *rows = cJSON_GetObjectItem(j, "rows");
    const int W = cJSON_GetArraySize(starts), R = cJSON_GetArraySize(rows), K = 256;
    int32_t *ids = tu_read_golden("gguf", "smollm2_ids.i32", (size_t)W * T * sizeof(int32_t), hint);
    float *want = tu_read_golden("gguf", "smollm2_logp.f32", (size_t)W * (T - 1) * sizeof(float), hint);
    float *want_rows = tu_read_golden("gguf", "smollm2_rowlogp.f32", (size_t)R * K * sizeof(float), hint);
    nt_model *m = NULL;
    nt_run *r = NULL;
    nt_err err = {0};
    cr_assert_eq(nt_model_load(&m, path, &err), 0, "%s", err.msg);
    cr_assert_eq(nt_run_init(&r, m, T, T, &err), 0, "%s", err.msg);
    const int V = m->cfg.vocab, chunk = 128;
    float *logits = malloc((size_t)chunk * V * sizeof(float));
    double *lp = malloc((size_t)V * sizeof(double));
    double worst = 0.0, worst_rows = 0.0;
    long bad = 0;
    for (int w = 0; w < W; w++) {
        nt_run_reset(r);
        cr_assert_eq(nt_forward_hidden(m, r, ids + (size_t)w * T, T, &err), 0, "%s", err.msg);
        for (int p0 = 0; p0 < T; p0 += chunk) {
            int n = T - p0 < chunk ? T - p0 : chunk;
            nt_logits(m, r->x + (size_t)p0 * m->cfg.emb_dim, n, logits);
            for (int i = 0; i < n; i++) {
                int pos = p0 + i;
                tu_log_softmax_row(logits + (size_t)i * V, V, lp);
                if (pos < T - 1) {
                    double d = fabs(lp[ids[(size_t)w * T + pos + 1]] - want[(size_t)w * (T - 1) + pos]);
                    worst = d > worst ? d : worst;
                    bad += d > 1e-4;
                }
                int k = 0;
                for (const cJSON *e = rows->child; e; e = e->next, k++) {
                    if (tu_json_int(e, "window") != w || tu_json_int(e, "pos") != pos) continue;
                    const cJSON *rid = cJSON_GetObjectItem(e, "ids");
                    cr_assert_eq(cJSON_GetArraySize(rid), K);
                    int q = 0;
                    for (const cJSON *x = rid->child; x; x = x->next, q++) {
                        double d = fabs(lp[x->valueint] - want_rows[(size_t)k * K + q]);
                        worst_rows = d > worst_rows ? d : worst_rows;
                        bad += d > 1e-4;
                    }
                }
            }
        }
    }
    fprintf(stderr, "SmolLM2 vs transformers: max |d log p| %.3g over %d next tokens, %.3g over %d full-row entries\n",
            worst, W * (T - 1), worst_rows, R * K);
    cr_expect_eq(bad, 0, "%ld log-probabilities differ by more than 1e-4 (max %.3g, rows %.3g)", bad, worst, worst_rows);
    free(logits);
    free(lp);
    free(ids);
    free(want);
    free(want_rows);
    nt_run_free(&r);
    nt_model_free(&m);
    cJSON_Delete(j);
    free(path);
}
