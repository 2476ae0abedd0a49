// qcheckpoint.c: writing normtweak's quantized checkpoints (see qcheckpoint.h); reading them is part of
// model/checkpoint.c's loader.
#define _POSIX_C_SOURCE 200809L
#include "qcheckpoint.h"

#include <stdlib.h>
#include <string.h>

#include "gguf.h"
#include "gguf_model.h"
#include "qdir.h"
#include "qtensors.h"

// ----------------------------------------------------------------------------
// which model parameter a source tensor name is

typedef enum { P_OTHER, P_LINEAR, P_BLOOM_QKV, P_NORM_W, P_NORM_B, P_LINEAR_B, P_BLOOM_QKV_B } param_kind;
typedef struct {
    const char *fmt; // with one %d for the layer
    param_kind kind;
    int id;          // nt_lin_id for P_LINEAR; 0 attention norm / 1 MLP norm for norms
} param_pattern;

static const param_pattern opt_params[] = {
    {"decoder.layers.%d.self_attn.q_proj.weight", P_LINEAR, NT_LIN_Q},
    {"decoder.layers.%d.self_attn.k_proj.weight", P_LINEAR, NT_LIN_K},
    {"decoder.layers.%d.self_attn.v_proj.weight", P_LINEAR, NT_LIN_V},
    {"decoder.layers.%d.self_attn.out_proj.weight", P_LINEAR, NT_LIN_O},
    {"decoder.layers.%d.fc1.weight", P_LINEAR, NT_LIN_UP},
    {"decoder.layers.%d.fc2.weight", P_LINEAR, NT_LIN_DOWN},
    {"decoder.layers.%d.self_attn_layer_norm.weight", P_NORM_W, 0},
    {"decoder.layers.%d.self_attn_layer_norm.bias", P_NORM_B, 0},
    {"decoder.layers.%d.final_layer_norm.weight", P_NORM_W, 1},
    {"decoder.layers.%d.final_layer_norm.bias", P_NORM_B, 1},
    {"decoder.layers.%d.self_attn.q_proj.bias", P_LINEAR_B, NT_LIN_Q},
    {"decoder.layers.%d.self_attn.k_proj.bias", P_LINEAR_B, NT_LIN_K},
    {"decoder.layers.%d.self_attn.v_proj.bias", P_LINEAR_B, NT_LIN_V},
    {"decoder.layers.%d.self_attn.out_proj.bias", P_LINEAR_B, NT_LIN_O},
    {"decoder.layers.%d.fc1.bias", P_LINEAR_B, NT_LIN_UP},
    {"decoder.layers.%d.fc2.bias", P_LINEAR_B, NT_LIN_DOWN},
    {NULL, P_OTHER, 0}};
static const param_pattern llama_params[] = {
    {"layers.%d.self_attn.q_proj.weight", P_LINEAR, NT_LIN_Q},
    {"layers.%d.self_attn.k_proj.weight", P_LINEAR, NT_LIN_K},
    {"layers.%d.self_attn.v_proj.weight", P_LINEAR, NT_LIN_V},
    {"layers.%d.self_attn.o_proj.weight", P_LINEAR, NT_LIN_O},
    {"layers.%d.mlp.gate_proj.weight", P_LINEAR, NT_LIN_GATE},
    {"layers.%d.mlp.up_proj.weight", P_LINEAR, NT_LIN_UP},
    {"layers.%d.mlp.down_proj.weight", P_LINEAR, NT_LIN_DOWN},
    {"layers.%d.input_layernorm.weight", P_NORM_W, 0},
    {"layers.%d.post_attention_layernorm.weight", P_NORM_W, 1},
    {"layers.%d.self_attn.q_proj.bias", P_LINEAR_B, NT_LIN_Q},
    {"layers.%d.self_attn.k_proj.bias", P_LINEAR_B, NT_LIN_K},
    {"layers.%d.self_attn.v_proj.bias", P_LINEAR_B, NT_LIN_V},
    {"layers.%d.self_attn.o_proj.bias", P_LINEAR_B, NT_LIN_O},
    {"layers.%d.mlp.gate_proj.bias", P_LINEAR_B, NT_LIN_GATE},
    {"layers.%d.mlp.up_proj.bias", P_LINEAR_B, NT_LIN_UP},
    {"layers.%d.mlp.down_proj.bias", P_LINEAR_B, NT_LIN_DOWN},
    {NULL, P_OTHER, 0}};
static const param_pattern bloom_params[] = {
    {"h.%d.self_attention.query_key_value.weight", P_BLOOM_QKV, 0},
    {"h.%d.self_attention.dense.weight", P_LINEAR, NT_LIN_O},
    {"h.%d.mlp.dense_h_to_4h.weight", P_LINEAR, NT_LIN_UP},
    {"h.%d.mlp.dense_4h_to_h.weight", P_LINEAR, NT_LIN_DOWN},
    {"h.%d.input_layernorm.weight", P_NORM_W, 0},
    {"h.%d.input_layernorm.bias", P_NORM_B, 0},
    {"h.%d.post_attention_layernorm.weight", P_NORM_W, 1},
    {"h.%d.post_attention_layernorm.bias", P_NORM_B, 1},
    {"h.%d.self_attention.query_key_value.bias", P_BLOOM_QKV_B, 0},
    {"h.%d.self_attention.dense.bias", P_LINEAR_B, NT_LIN_O},
    {"h.%d.mlp.dense_h_to_4h.bias", P_LINEAR_B, NT_LIN_UP},
    {"h.%d.mlp.dense_4h_to_h.bias", P_LINEAR_B, NT_LIN_DOWN},
    {NULL, P_OTHER, 0}};

static param_kind classify(const nt_model *m, const char *name, int *layer, int *id) {
    const param_pattern *p = m->cfg.arch == NT_ARCH_OPT ? opt_params
                             : m->cfg.arch == NT_ARCH_LLAMA ? llama_params
                                                           : bloom_params;
    // tensors may sit under "model." / "transformer." prefixes: try the name from each '.'-boundary
    for (const char *s = name; s;) {
        for (int i = 0; p[i].fmt; i++) {
            int l = -1;
            char full[200];
            if (sscanf(s, p[i].fmt, &l) != 1 || l < 0 || l >= m->cfg.n_layers) continue;
            snprintf(full, sizeof(full), p[i].fmt, l);
            if (strcmp(full, s) == 0) {
                *layer = l;
                *id = p[i].id;
                return p[i].kind;
            }
        }
        const char *dot = strchr(s, '.');
        s = dot ? dot + 1 : NULL;
    }
    return P_OTHER;
}

// ----------------------------------------------------------------------------
// building the tensor list

typedef struct {
    nt_st_list list;
    void **owned; // nt_qlinears to free
    size_t n_owned;
    void **plain; // malloc'd buffers to free
    size_t n_plain;
} tensor_list;

static void *own_plain(tensor_list *L, void *p) {
    void **o = p ? realloc(L->plain, (L->n_plain + 1) * sizeof(void *)) : NULL;
    if (!o) {
        free(p);
        return NULL;
    }
    L->plain = o;
    return L->plain[L->n_plain++] = p;
}

static void tensor_list_free(tensor_list *L) {
    for (size_t i = 0; i < L->n_owned; i++) nt_qlinear_free((nt_qlinear **)&L->owned[i]);
    for (size_t i = 0; i < L->n_plain; i++) free(L->plain[i]);
    free(L->owned);
    free(L->plain);
    nt_st_list_free(&L->list);
}

static void *own(tensor_list *L, void *p) {
    void **o = realloc(L->owned, (L->n_owned + 1) * sizeof(void *));
    if (!o || !p) {
        free(p);
        return NULL;
    }
    L->owned = o;
    return L->owned[L->n_owned++] = p;
}

// BLOOM's fused (n_heads * 3 * head_dim) rows: row h*3*hd + j*hd + d is row h*hd + d of q (j=0), k, v.
static nt_qlinear *fuse_bloom_qkv(const nt_model *m, const nt_layer *ly, nt_err *err) {
    int H = m->cfg.n_heads, hd = m->cfg.head_dim, n = 3 * H * hd;
    int *src = malloc((size_t)n * sizeof(int)), *rows = malloc((size_t)n * sizeof(int));
    nt_qlinear *q = NULL;
    if (src && rows) {
        for (int h = 0; h < H; h++)
            for (int j = 0; j < 3; j++)
                for (int d = 0; d < hd; d++) {
                    int i = h * 3 * hd + j * hd + d;
                    src[i] = j;
                    rows[i] = h * hd + d;
                }
        const nt_qlinear *srcs[3] = {ly->q.q, ly->k.q, ly->v.q};
        nt_qlinear_gather(&q, srcs, src, rows, n, err);
    } else {
        nt_fail(err, "out of memory");
    }
    free(src);
    free(rows);
    return q;
}

// The static activation scales as one tensor (NT_ACT_SCALES_TENSOR, transformer.h), when the model has them.
static int add_act_scales(const nt_model *m, tensor_list *L, nt_err *err) {
    if (!(m->quant.abits < 16 && m->quant.act_static)) return 0;
    size_t n = (size_t)m->cfg.n_layers * NT_LIN_COUNT;
    float *sc = own_plain(L, calloc(n, sizeof(float)));
    if (!sc) return nt_fail(err, "out of memory");
    for (int l = 0; l < m->cfg.n_layers; l++)
        for (int j = 0; j < NT_LIN_COUNT; j++) {
            const nt_linear *lin = nt_layer_linear(&m->layers[l], (nt_lin_id)j);
            if (lin->aq) sc[(size_t)l * NT_LIN_COUNT + j] = lin->aq->scale;
        }
    int64_t shape[2] = {m->cfg.n_layers, NT_LIN_COUNT};
    return nt_st_list_add(&L->list, NT_ACT_SCALES_TENSOR, NT_DT_F32, 2, shape, sc, n * sizeof(float))
               ? nt_fail(err, "out of memory")
               : 0;
}

// BLOOM's fused q/k/v bias (rows as fuse_bloom_qkv orders them), malloc'd.
static float *fuse_bloom_qkv_bias(const nt_model *m, const nt_layer *ly) {
    int H = m->cfg.n_heads, hd = m->cfg.head_dim;
    float *b = malloc((size_t)3 * H * hd * sizeof(float));
    const float *src[3] = {ly->q.b, ly->k.b, ly->v.b};
    for (int h = 0; b && h < H; h++)
        for (int j = 0; j < 3; j++)
            for (int d = 0; d < hd; d++) b[h * 3 * hd + j * hd + d] = src[j] ? src[j][h * hd + d] : 0.0f;
    return b;
}

// A model loaded from a GGUF file has no safetensors to copy from: its tensors come from the model itself, in
// fp32 under the Hugging Face names the loader reads back (LLaMA family), the block linears packed.
static int list_from_model(const nt_model *m, tensor_list *L, nt_err *err) {
    const nt_config *c = &m->cfg;
    int64_t emb[2] = {c->vocab, c->dim}, vec[1] = {c->dim};
    size_t emb_bytes = (size_t)c->vocab * c->dim * sizeof(float), vec_bytes = (size_t)c->dim * sizeof(float);
    if (nt_st_list_add(&L->list, "model.embed_tokens.weight", NT_DT_F32, 2, emb, m->tok_emb, emb_bytes) ||
        nt_st_list_add(&L->list, "model.norm.weight", NT_DT_F32, 1, vec, m->final_norm.w, vec_bytes) ||
        (!c->tied && nt_st_list_add(&L->list, "lm_head.weight", NT_DT_F32, 2, emb, m->lm_head, emb_bytes)))
        return nt_fail(err, "out of memory");
    static const char *const names[NT_LIN_COUNT] = {
        [NT_LIN_Q] = "self_attn.q_proj", [NT_LIN_K] = "self_attn.k_proj", [NT_LIN_V] = "self_attn.v_proj",
        [NT_LIN_O] = "self_attn.o_proj", [NT_LIN_UP] = "mlp.up_proj",     [NT_LIN_GATE] = "mlp.gate_proj",
        [NT_LIN_DOWN] = "mlp.down_proj"};
    char n[200];
    for (int l = 0; l < c->n_layers; l++) {
        nt_layer *ly = &m->layers[l];
        for (int j = 0; j < NT_LIN_COUNT; j++) {
            const nt_linear *lin = nt_layer_linear(ly, (nt_lin_id)j);
            if (!lin->q) return nt_fail(err, "%s: layer %d %s is not quantized", m->name, l, nt_lin_name((nt_lin_id)j));
            snprintf(n, sizeof(n), "model.layers.%d.%s", l, names[j]);
            if (nt_qlinear_list_add(&L->list, n, lin->q)) return nt_fail(err, "out of memory");
            int64_t bs[1] = {lin->out};
            snprintf(n, sizeof(n), "model.layers.%d.%s.bias", l, names[j]);
            if (lin->b && nt_st_list_add(&L->list, n, NT_DT_F32, 1, bs, lin->b, (size_t)lin->out * sizeof(float)))
                return nt_fail(err, "out of memory");
        }
        snprintf(n, sizeof(n), "model.layers.%d.input_layernorm.weight", l);
        if (nt_st_list_add(&L->list, n, NT_DT_F32, 1, vec, ly->attn_norm.w, vec_bytes)) return nt_fail(err, "out of memory");
        snprintf(n, sizeof(n), "model.layers.%d.post_attention_layernorm.weight", l);
        if (nt_st_list_add(&L->list, n, NT_DT_F32, 1, vec, ly->mlp_norm.w, vec_bytes)) return nt_fail(err, "out of memory");
    }
    return add_act_scales(m, L, err);
}

// The tokenizer goes along as tokenizer.gguf: the source's tokenizer.* metadata (and its architecture) without
// the weights, which nt_tokenizer_load_dir reads as it reads the GGUF itself.
static int save_from_gguf(const nt_model *m, const char *out_dir, nt_err *err) {
    tensor_list L = {0};
    char *cfg = nt_config_json(&m->cfg);
    char *qc = nt_quantize_config_text(&m->quant, NT_QFMT_NORMTWEAK, m->name);
    uint8_t *tok = NULL;
    size_t tok_len = 0;
    nt_gguf *g = NULL;
    static const char *const keep[] = {"general.architecture", "tokenizer."};
    int rc = -1;
    if (!cfg) nt_fail(err, "%s: no config.json can describe this model", m->dir);
    else if (!qc) nt_fail(err, "out of memory writing %s", out_dir);
    else if (nt_gguf_open(&g, m->dir, err) == 0 && nt_gguf_metadata_image(g, keep, 2, &tok, &tok_len, err) == 0 &&
             list_from_model(m, &L, err) == 0) {
        const char *meta[] = {"format", "pt", "normtweak", "quantized"};
        nt_qcheckpoint_text texts[3] = {{"config.json", cfg, 0}, {"quantize_config.json", qc, 0},
                                        {"tokenizer.gguf", (const char *)tok, tok_len}};
        rc = nt_qcheckpoint_write_dir(out_dir, m->dir, L.list.t, L.list.n, meta, 2, texts, 3, err);
    }
    nt_gguf_close(&g);
    free(tok);
    free(cfg);
    free(qc);
    tensor_list_free(&L);
    return rc;
}

int nt_qcheckpoint_save(const nt_model *m, const char *out_dir, nt_err *err) {
    if (strcmp(m->quant.method, "fp") == 0) return nt_fail(err, "%s: the model is not quantized", m->name);
    if (nt_qcheckpoint_dir_usable(out_dir, err)) return -1;
    if (nt_gguf_model_path(m->dir)) return save_from_gguf(m, out_dir, err);
    nt_safetensors *st = NULL;
    if (nt_st_open_dir(&st, m->dir, err)) return -1;
    tensor_list L = {0};
    int rc = -1;
    for (size_t i = 0; i < nt_st_count(st); i++) {
        const nt_st_tensor *t = nt_st_at(st, i);
        int layer = -1, id = 0;
        param_kind k = classify(m, t->name, &layer, &id);
        const nt_layer *ly = layer >= 0 ? &m->layers[layer] : NULL;
        char base[256]; // the name without ".weight" (linear patterns all end in it)
        size_t bl = strlen(t->name) >= 7 ? strlen(t->name) - 7 : 0;
        bl = bl < sizeof(base) - 1 ? bl : sizeof(base) - 1;
        memcpy(base, t->name, bl);
        base[bl] = '\0';
        if (k == P_LINEAR || k == P_BLOOM_QKV) {
            const nt_qlinear *q = k == P_LINEAR ? nt_layer_linear((nt_layer *)ly, id)->q : NULL;
            if (k == P_BLOOM_QKV) {
                if (!ly->q.q || !ly->k.q || !ly->v.q) {
                    nt_fail(err, "%s: layer %d q/k/v are not quantized", m->name, layer);
                    goto done;
                }
                q = own(&L, fuse_bloom_qkv(m, ly, err));
                if (!q) goto done;
            }
            if (!q) {
                nt_fail(err, "%s: layer %d %s is not quantized", m->name, layer, nt_lin_name(id));
                goto done;
            }
            if (nt_qlinear_list_add(&L.list, base, q)) goto oom;
        } else if (k == P_LINEAR_B || k == P_BLOOM_QKV_B) { // the model's (SmoothQuant rescales some)
            const float *v = k == P_LINEAR_B ? nt_layer_linear((nt_layer *)ly, id)->b : NULL;
            int64_t shape[1] = {k == P_LINEAR_B ? nt_layer_linear((nt_layer *)ly, id)->out : 3 * m->cfg.dim};
            if (k == P_BLOOM_QKV_B && !(v = own_plain(&L, fuse_bloom_qkv_bias(m, ly)))) goto oom;
            if (!v) goto verbatim;
            if (nt_st_list_add(&L.list, t->name, NT_DT_F32, 1, shape, v, (size_t)shape[0] * 4)) goto oom;
        } else if (k == P_NORM_W || k == P_NORM_B) { // the model's current norms (norm tweaking changes them)
            const nt_norm *nm = id == 0 ? &ly->attn_norm : &ly->mlp_norm;
            const float *v = k == P_NORM_W ? nm->w : nm->b;
            if (!v) goto verbatim;
            int64_t shape[1] = {m->cfg.dim};
            if (nt_st_list_add(&L.list, t->name, NT_DT_F32, 1, shape, v, (size_t)m->cfg.dim * 4)) goto oom;
        } else {
        verbatim:
            if (nt_st_list_add(&L.list, t->name, t->dtype, t->ndim, t->shape, t->data, t->nbytes)) goto oom;
        }
    }
    if (add_act_scales(m, &L, err)) goto done;
    {
        const char *meta[] = {"format", "pt", "normtweak", "quantized"};
        char *qc = nt_quantize_config_text(&m->quant, NT_QFMT_NORMTWEAK, m->name);
        if (!qc) goto oom;
        nt_qcheckpoint_text texts[1] = {{"quantize_config.json", qc, 0}};
        int r2 = nt_qcheckpoint_write_dir(out_dir, m->dir, L.list.t, L.list.n, meta, 2, texts, 1, err);
        free(qc);
        if (r2) goto done;
    }
    rc = 0;
    goto done;
oom:
    nt_fail(err, "out of memory writing %s", out_dir);
done:
    tensor_list_free(&L);
    nt_st_close(&st);
    return rc;
}

int nt_quantize_checkpoint(const char *model_path, const char *data_dir, const nt_quant_opts *o, const char *out_dir,
                           nt_model_quant *mq, nt_quant_stats *stats, nt_err *err) {
    nt_model *m = NULL;
    nt_tokenizer *tok = NULL;
    nt_quant_stats st = {0};
    int rc = -1;
    if (nt_qcheckpoint_dir_usable(out_dir, err) || nt_model_load(&m, model_path, err)) goto done;
    if (strcmp(m->quant.method, "fp") != 0) {
        nt_fail(err, "%s: already quantized (%s W%d)", model_path, m->quant.method, m->quant.wbits);
        goto done;
    }
    if (nt_quant_opts_check(o, m, err)) {
        err->kind = NT_ERR_USAGE;
        goto done;
    }
    // calibration text needs the tokenizer
    if (nt_quant_opts_calibrates(o) && nt_tokenizer_load_model(&tok, model_path, err)) goto done;
    if (nt_quantize_model(m, tok, data_dir, o, &st, err) || nt_qcheckpoint_save(m, out_dir, err)) goto done;
    if (mq) *mq = m->quant;
    rc = 0;
done:
    if (stats && rc == 0) *stats = st;
    else nt_quant_stats_free(&st);
    nt_tokenizer_free(&tok);
    nt_model_free(&m);
    return rc;
}
