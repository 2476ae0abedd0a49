// checkpoint.c: a Hugging Face model directory -> nt_model. Parses config.json for the three supported
// families (OPT, LLaMA/Qwen2, BLOOM), finds each tensor under its Hugging Face name, checks its shape
// against the config and converts it to fp32 once.
#define _POSIX_C_SOURCE 200809L
#include <cjson/cJSON.h>
#include <math.h>
#include <string.h>

#include "gguf_model.h"
#include "gptq_format.h"
#include "qcheckpoint.h"
#include "safetensors.h"
#include "transformer.h"

// ----------------------------------------------------------------------------
// config.json

static const cJSON *cfg_item(const cJSON *root, const char *key) {
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(root, key);
    return (it && !cJSON_IsNull(it)) ? it : NULL;
}

// An integer field: the first of the given keys that is present, else def (def < 0: required).
static int cfg_int(const cJSON *root, const char *path, const char *const *keys, int def, int *out, nt_err *err) {
    for (int i = 0; keys[i]; i++) {
        const cJSON *it = cfg_item(root, keys[i]);
        if (!it) continue;
        if (!cJSON_IsNumber(it) || it->valuedouble != floor(it->valuedouble) || it->valuedouble < 0 ||
            it->valuedouble > 1e9)
            return nt_fail(err, "%s: '%s' must be a non-negative integer", path, keys[i]);
        *out = (int)it->valuedouble;
        return 0;
    }
    if (def < 0) return nt_fail(err, "%s: missing '%s'", path, keys[0]);
    *out = def;
    return 0;
}

static int cfg_float(const cJSON *root, const char *path, const char *key, double def, float *out, nt_err *err) {
    const cJSON *it = cfg_item(root, key);
    if (!it) {
        *out = (float)def;
        return 0;
    }
    if (!cJSON_IsNumber(it)) return nt_fail(err, "%s: '%s' must be a number", path, key);
    *out = (float)it->valuedouble;
    return 0;
}

static int cfg_bool(const cJSON *root, const char *path, const char *key, bool def, bool *out, nt_err *err) {
    const cJSON *it = cfg_item(root, key);
    if (!it) {
        *out = def;
        return 0;
    }
    if (!cJSON_IsBool(it)) return nt_fail(err, "%s: '%s' must be true or false", path, key);
    *out = cJSON_IsTrue(it);
    return 0;
}

static int parse_act(const char *name, const char *path, nt_act *act, nt_err *err) {
    if (strcmp(name, "relu") == 0) *act = NT_ACT_RELU;
    else if (strcmp(name, "silu") == 0 || strcmp(name, "swish") == 0) *act = NT_ACT_SILU;
    else if (strcmp(name, "gelu") == 0) *act = NT_ACT_GELU;
    else if (strcmp(name, "gelu_new") == 0 || strcmp(name, "gelu_pytorch_tanh") == 0) *act = NT_ACT_GELU_TANH;
    else return nt_fail(err, "%s: unsupported activation '%s'", path, name);
    return 0;
}

static int config_from_json(nt_config *c, const cJSON *root, const char *path, nt_err *err) {
    memset(c, 0, sizeof(*c));
    if (!cJSON_IsObject(root)) return nt_fail(err, "%s: not a JSON object", path);
    const cJSON *mt = cfg_item(root, "model_type");
    if (!mt || !cJSON_IsString(mt)) return nt_fail(err, "%s: missing 'model_type'", path);
    snprintf(c->model_type, sizeof(c->model_type), "%s", mt->valuestring);
    const char *type = mt->valuestring;
    bool ok = true;
    if (strcmp(type, "opt") == 0) {
        c->arch = NT_ARCH_OPT;
        ok = cfg_int(root, path, (const char *[]){"vocab_size", NULL}, -1, &c->vocab, err) == 0 &&
             cfg_int(root, path, (const char *[]){"hidden_size", NULL}, -1, &c->dim, err) == 0 &&
             cfg_int(root, path, (const char *[]){"num_hidden_layers", NULL}, -1, &c->n_layers, err) == 0 &&
             cfg_int(root, path, (const char *[]){"num_attention_heads", NULL}, -1, &c->n_heads, err) == 0 &&
             cfg_int(root, path, (const char *[]){"ffn_dim", NULL}, -1, &c->ffn_dim, err) == 0 &&
             cfg_int(root, path, (const char *[]){"max_position_embeddings", NULL}, -1, &c->max_pos, err) == 0 &&
             cfg_int(root, path, (const char *[]){"word_embed_proj_dim", NULL}, 0, &c->emb_dim, err) == 0 &&
             cfg_bool(root, path, "do_layer_norm_before", true, &c->pre_norm, err) == 0 &&
             cfg_bool(root, path, "tie_word_embeddings", true, &c->tied, err) == 0;
        if (!ok) return -1;
        bool remove_final = false, affine = true, bias = true;
        if (cfg_bool(root, path, "_remove_final_layer_norm", false, &remove_final, err) ||
            cfg_bool(root, path, "layer_norm_elementwise_affine", true, &affine, err) ||
            cfg_bool(root, path, "enable_bias", true, &bias, err))
            return -1;
        if (!affine || !bias) return nt_fail(err, "%s: OPT without LayerNorm affine or linear biases is not supported", path);
        const cJSON *act = cfg_item(root, "activation_function");
        if (parse_act(act && cJSON_IsString(act) ? act->valuestring : "relu", path, &c->act, err)) return -1;
        if (c->emb_dim == 0) c->emb_dim = c->dim;
        c->n_kv_heads = c->n_heads;
        c->norm_eps = 1e-5f;
        c->final_norm = c->pre_norm && !remove_final;
        c->pos_offset = 2;
        c->qkv_bias = c->o_bias = c->mlp_bias = true;
    } else if (strcmp(type, "llama") == 0 || strcmp(type, "qwen2") == 0) {
        c->arch = NT_ARCH_LLAMA;
        bool qwen = strcmp(type, "qwen2") == 0;
        ok = cfg_int(root, path, (const char *[]){"vocab_size", NULL}, -1, &c->vocab, err) == 0 &&
             cfg_int(root, path, (const char *[]){"hidden_size", NULL}, -1, &c->dim, err) == 0 &&
             cfg_int(root, path, (const char *[]){"num_hidden_layers", NULL}, -1, &c->n_layers, err) == 0 &&
             cfg_int(root, path, (const char *[]){"num_attention_heads", NULL}, -1, &c->n_heads, err) == 0 &&
             cfg_int(root, path, (const char *[]){"num_key_value_heads", NULL}, 0, &c->n_kv_heads, err) == 0 &&
             cfg_int(root, path, (const char *[]){"intermediate_size", NULL}, -1, &c->ffn_dim, err) == 0 &&
             cfg_int(root, path, (const char *[]){"max_position_embeddings", NULL}, 2048, &c->max_pos, err) == 0 &&
             cfg_int(root, path, (const char *[]){"head_dim", NULL}, 0, &c->head_dim, err) == 0 &&
             cfg_float(root, path, "rms_norm_eps", 1e-6, &c->norm_eps, err) == 0 &&
             cfg_float(root, path, "rope_theta", 10000.0, &c->rope_theta, err) == 0 &&
             cfg_bool(root, path, "tie_word_embeddings", false, &c->tied, err) == 0;
        if (!ok) return -1;
        const cJSON *act = cfg_item(root, "hidden_act");
        if (parse_act(act && cJSON_IsString(act) ? act->valuestring : "silu", path, &c->act, err)) return -1;
        if (c->act != NT_ACT_SILU) return nt_fail(err, "%s: LLaMA-family models with hidden_act other than silu are not supported", path);
        const cJSON *rs = cfg_item(root, "rope_scaling");
        if (rs) return nt_fail(err, "%s: 'rope_scaling' is not supported yet", path);
        if (c->n_kv_heads == 0) c->n_kv_heads = c->n_heads;
        bool attn_bias = false;
        if (cfg_bool(root, path, "attention_bias", false, &attn_bias, err) ||
            cfg_bool(root, path, "mlp_bias", false, &c->mlp_bias, err))
            return -1;
        c->qkv_bias = qwen || attn_bias; // Qwen2: q/k/v biases, no o bias
        c->o_bias = !qwen && attn_bias;
        c->emb_dim = c->dim;
        c->rms_norm = true;
        c->pre_norm = true;
        c->final_norm = true;
    } else if (strcmp(type, "bloom") == 0) {
        c->arch = NT_ARCH_BLOOM;
        ok = cfg_int(root, path, (const char *[]){"vocab_size", NULL}, -1, &c->vocab, err) == 0 &&
             cfg_int(root, path, (const char *[]){"hidden_size", "n_embed", NULL}, -1, &c->dim, err) == 0 &&
             cfg_int(root, path, (const char *[]){"n_layer", "num_hidden_layers", NULL}, -1, &c->n_layers, err) == 0 &&
             cfg_int(root, path, (const char *[]){"n_head", "num_attention_heads", NULL}, -1, &c->n_heads, err) == 0 &&
             cfg_int(root, path, (const char *[]){"seq_length", "max_position_embeddings", NULL}, 2048, &c->max_pos, err) == 0 &&
             cfg_float(root, path, "layer_norm_epsilon", 1e-5, &c->norm_eps, err) == 0 &&
             cfg_bool(root, path, "apply_residual_connection_post_layernorm", false, &c->residual_post_norm, err) == 0 &&
             cfg_bool(root, path, "tie_word_embeddings", true, &c->tied, err) == 0;
        if (!ok) return -1;
        c->n_kv_heads = c->n_heads;
        c->ffn_dim = 4 * c->dim;
        c->emb_dim = c->dim;
        c->act = NT_ACT_GELU_TANH;
        c->qkv_bias = c->o_bias = c->mlp_bias = true;
        c->pre_norm = true;
        c->final_norm = true;
    } else {
        return nt_fail(err, "%s: unsupported model_type '%s' (supported: opt, llama, qwen2, bloom)", path, type);
    }
    if (c->head_dim == 0 && c->n_heads > 0) c->head_dim = c->dim / c->n_heads;
    if (c->vocab <= 0 || c->dim <= 0 || c->n_layers <= 0 || c->n_heads <= 0 || c->ffn_dim <= 0 || c->max_pos <= 0 ||
        c->head_dim <= 0 || c->emb_dim <= 0)
        return nt_fail(err, "%s: sizes must be positive", path);
    if (c->head_dim * c->n_heads != c->dim && c->arch != NT_ARCH_LLAMA)
        return nt_fail(err, "%s: hidden_size %d is not divisible by %d heads", path, c->dim, c->n_heads);
    if (c->n_heads % c->n_kv_heads != 0)
        return nt_fail(err, "%s: %d attention heads are not a multiple of %d key/value heads", path, c->n_heads,
                       c->n_kv_heads);
    if (c->arch == NT_ARCH_LLAMA && c->head_dim % 2 != 0) return nt_fail(err, "%s: RoPE needs an even head_dim", path);
    if (!(c->norm_eps > 0)) return nt_fail(err, "%s: the norm epsilon must be positive", path);
    return 0;
}

int nt_config_load(nt_config *cfg, const char *path, nt_err *err) {
    char *text = nt_read_file(path, NULL, err);
    if (!text) return -1;
    cJSON *root = cJSON_Parse(text);
    free(text);
    if (!root) return nt_fail(err, "%s: malformed JSON", path);
    int rc = config_from_json(cfg, root, path, err);
    cJSON_Delete(root);
    return rc;
}

// ----------------------------------------------------------------------------
// weights

typedef struct {
    const nt_safetensors *st;
    const char *prefix; // "model." / "" / "transformer." as the checkpoint spells it
    char *cfg_path;
    const nt_model_quant *quant; // a quantized checkpoint's format (method "fp" otherwise)
    nt_qfmt qfmt;                // its tensors' layout: normtweak's, or GPTQ's (gptq_format.h)
} loader;

// Reads NAME.qweight/.scales/.zeros/.g_idx/.perm of a quantized checkpoint into a new nt_qlinear.
static int load_qlinear(loader *L, const char *name, int out_dim, int in_dim, nt_qlinear **out, nt_err *err) {
    const nt_model_quant *mq = L->quant;
    char full[300];
    if (L->qfmt != NT_QFMT_NORMTWEAK) { // GPTQ's qweight/qzeros/scales/g_idx
        nt_qfmt_spec spec = {L->qfmt, mq->wbits, mq->group_size, mq->sym, mq->act_order};
        snprintf(full, sizeof(full), "%s%s", L->prefix, name);
        return nt_qfmt_read_qlinear(L->st, full, &spec, out_dim, in_dim, out, err);
    }
    snprintf(full, sizeof(full), "%s%s.perm", L->prefix, name);
    bool act = nt_st_find(L->st, full) != NULL;
    nt_qlinear *q = NULL;
    nt_err e2;
    if (nt_qlinear_alloc(&q, out_dim, in_dim, mq->wbits, mq->group_size, mq->sym, act, &e2))
        return nt_fail(err, "%s: %s: %s", L->cfg_path, name, e2.msg);
    struct {
        const char *suffix;
        void *dst;
        nt_dtype dt;
        int64_t d0, d1;
        int ndim;
    } parts[5] = {{"qweight", q->qweight, NT_DT_I32, (int64_t)nt_qpacks(in_dim) * mq->wbits, out_dim, 2},
                  {"scales", q->scales, NT_DT_F16, q->n_groups, out_dim, 2},
                  {"zeros", q->zeros, NT_DT_U8, q->n_groups, out_dim, 2},
                  {"g_idx", q->g_idx, NT_DT_I32, in_dim, 0, 1},
                  {"perm", q->perm, NT_DT_I32, in_dim, 0, 1}};
    for (int i = 0; i < 5; i++) {
        if (!parts[i].dst) continue;
        snprintf(full, sizeof(full), "%s%s.%s", L->prefix, name, parts[i].suffix);
        const nt_st_tensor *t = nt_st_find(L->st, full);
        if (!t) {
            nt_qlinear_free(&q);
            return nt_fail(err, "%s: quantized tensor '%s' not found", L->cfg_path, full);
        }
        bool shape_ok = t->ndim == parts[i].ndim && t->shape[0] == parts[i].d0 && (parts[i].ndim == 1 || t->shape[1] == parts[i].d1);
        if (t->dtype != parts[i].dt || !shape_ok) {
            nt_qlinear_free(&q);
            return nt_fail(err, "%s: tensor '%s' is %s with %d dims, quantize_config.json implies %s [%lld, %lld]",
                           t->file, full, nt_dtype_name(t->dtype), t->ndim, nt_dtype_name(parts[i].dt),
                           (long long)parts[i].d0, (long long)parts[i].d1);
        }
        memcpy(parts[i].dst, t->data, t->nbytes);
    }
    if (nt_qlinear_validate(q, &e2)) {
        nt_qlinear_free(&q);
        return nt_fail(err, "%s: %s: %s", L->cfg_path, name, e2.msg);
    }
    *out = q;
    return 0;
}

// A quantized linear's dequantized weights, which the CPU forward pass uses.
static int dequantize_into(nt_linear *lin, nt_err *err) {
    lin->w = malloc((size_t)lin->out * lin->in * sizeof(float));
    if (!lin->w) return nt_fail(err, "out of memory dequantizing a %dx%d linear", lin->out, lin->in);
    nt_qlinear_dequantize(lin->q, lin->w);
    return 0;
}

// Loads prefix+name with the given shape; absent optional tensors leave *out NULL.
static int load(loader *L, const char *name, int ndim, int64_t d0, int64_t d1, bool optional, float **out,
                nt_err *err) {
    char full[256];
    snprintf(full, sizeof(full), "%s%s", L->prefix, name);
    *out = NULL;
    if (!nt_st_find(L->st, full)) {
        if (optional) return 0;
    }
    int64_t shape[2] = {d0, d1};
    return nt_st_load_f32(L->st, full, ndim, shape, out, err);
}

static int load_linear(loader *L, const char *name, int out_dim, int in_dim, bool bias, nt_linear *lin, nt_err *err) {
    char buf[256];
    lin->in = in_dim;
    lin->out = out_dim;
    snprintf(buf, sizeof(buf), "%s%s.qweight", L->prefix, name);
    if (nt_st_find(L->st, buf)) {
        if (load_qlinear(L, name, out_dim, in_dim, &lin->q, err) || dequantize_into(lin, err)) return -1;
    } else {
        snprintf(buf, sizeof(buf), "%s.weight", name);
        if (load(L, buf, 2, out_dim, in_dim, false, &lin->w, err)) return -1;
    }
    if (!bias) return 0;
    snprintf(buf, sizeof(buf), "%s.bias", name);
    return load(L, buf, 1, out_dim, 0, false, &lin->b, err);
}

static int load_norm(loader *L, const char *name, int dim, bool bias, nt_norm *n, nt_err *err) {
    char buf[256];
    snprintf(buf, sizeof(buf), "%s.weight", name);
    if (load(L, buf, 1, dim, 0, false, &n->w, err)) return -1;
    if (!bias) return 0;
    snprintf(buf, sizeof(buf), "%s.bias", name);
    return load(L, buf, 1, dim, 0, false, &n->b, err);
}

// BLOOM fuses q, k and v into one (n_heads * 3 * head_dim, dim) matrix, interleaved per head: split it.
static int load_bloom_qkv(loader *L, const char *name, const nt_config *c, nt_layer *ly, nt_err *err) {
    nt_linear fused = {0};
    if (load_linear(L, name, 3 * c->dim, c->dim, true, &fused, err)) return -1;
    nt_linear *dst[3] = {&ly->q, &ly->k, &ly->v};
    int hd = c->head_dim, D = c->dim;
    if (fused.q) { // split the packed rows the same way as the float ones below
        int *src = malloc((size_t)D * sizeof(int)), *rows = malloc((size_t)D * sizeof(int));
        int rc = src && rows ? 0 : nt_fail(err, "out of memory");
        for (int j = 0; j < 3 && rc == 0; j++) {
            for (int h = 0; h < c->n_heads; h++)
                for (int d = 0; d < hd; d++) src[h * hd + d] = 0, rows[h * hd + d] = h * 3 * hd + j * hd + d;
            const nt_qlinear *srcs[1] = {fused.q};
            rc = nt_qlinear_gather(&dst[j]->q, srcs, src, rows, D, err);
        }
        free(src);
        free(rows);
        nt_qlinear_free(&fused.q);
        if (rc) {
            free(fused.w);
            free(fused.b);
            return -1;
        }
    }
    for (int j = 0; j < 3; j++) {
        dst[j]->in = D;
        dst[j]->out = D;
        dst[j]->w = malloc((size_t)D * D * sizeof(float));
        dst[j]->b = malloc((size_t)D * sizeof(float));
        if (!dst[j]->w || !dst[j]->b) {
            free(fused.w);
            free(fused.b);
            return nt_fail(err, "%s: out of memory", L->cfg_path);
        }
        for (int h = 0; h < c->n_heads; h++)
            for (int d = 0; d < hd; d++) {
                size_t src = (size_t)h * 3 * hd + (size_t)j * hd + d, row = (size_t)h * hd + d;
                memcpy(dst[j]->w + row * D, fused.w + src * D, (size_t)D * sizeof(float));
                dst[j]->b[row] = fused.b[src];
            }
    }
    free(fused.w);
    free(fused.b);
    return 0;
}

static void alibi_slopes(int n_heads, float *out) {
    int cp = 1;
    while (cp * 2 <= n_heads) cp *= 2;
    double base = pow(2.0, -pow(2.0, -(log2((double)cp) - 3.0)));
    for (int i = 0; i < cp; i++) out[i] = (float)pow(base, i + 1);
    if (cp != n_heads) {
        double extra = pow(2.0, -pow(2.0, -(log2(2.0 * cp) - 3.0)));
        int rem = n_heads - cp < cp ? n_heads - cp : cp;
        for (int i = 0; i < rem; i++) out[cp + i] = (float)pow(extra, 2 * i + 1);
    }
}

static int load_weights(nt_model *m, loader *L, nt_err *err) {
    const nt_config *c = &m->cfg;
    int D = c->dim, F = c->ffn_dim, qd = c->n_heads * c->head_dim, kvd = c->n_kv_heads * c->head_dim;
    char n[160];
    m->layers = calloc((size_t)c->n_layers, sizeof(nt_layer));
    if (!m->layers) return nt_fail(err, "%s: out of memory", L->cfg_path);
    if (c->arch == NT_ARCH_OPT) {
        if (load(L, "decoder.embed_tokens.weight", 2, c->vocab, c->emb_dim, false, &m->tok_emb, err) ||
            load(L, "decoder.embed_positions.weight", 2, c->max_pos + c->pos_offset, D, false, &m->pos_emb, err))
            return -1;
        if (c->emb_dim != D) {
            if (load_linear(L, "decoder.project_in", D, c->emb_dim, false, &m->proj_in, err) ||
                load_linear(L, "decoder.project_out", c->emb_dim, D, false, &m->proj_out, err))
                return -1;
        }
        if (c->final_norm && load_norm(L, "decoder.final_layer_norm", D, true, &m->final_norm, err)) return -1;
        for (int l = 0; l < c->n_layers; l++) {
            nt_layer *ly = &m->layers[l];
            const char *sub[4] = {"q_proj", "k_proj", "v_proj", "out_proj"};
            nt_linear *dst[4] = {&ly->q, &ly->k, &ly->v, &ly->o};
            for (int j = 0; j < 4; j++) {
                snprintf(n, sizeof(n), "decoder.layers.%d.self_attn.%s", l, sub[j]);
                if (load_linear(L, n, D, D, true, dst[j], err)) return -1;
            }
            snprintf(n, sizeof(n), "decoder.layers.%d.self_attn_layer_norm", l);
            if (load_norm(L, n, D, true, &ly->attn_norm, err)) return -1;
            snprintf(n, sizeof(n), "decoder.layers.%d.final_layer_norm", l);
            if (load_norm(L, n, D, true, &ly->mlp_norm, err)) return -1;
            snprintf(n, sizeof(n), "decoder.layers.%d.fc1", l);
            if (load_linear(L, n, F, D, true, &ly->up, err)) return -1;
            snprintf(n, sizeof(n), "decoder.layers.%d.fc2", l);
            if (load_linear(L, n, D, F, true, &ly->down, err)) return -1;
        }
    } else if (c->arch == NT_ARCH_LLAMA) {
        if (load(L, "embed_tokens.weight", 2, c->vocab, D, false, &m->tok_emb, err) ||
            load_norm(L, "norm", D, false, &m->final_norm, err))
            return -1;
        for (int l = 0; l < c->n_layers; l++) {
            nt_layer *ly = &m->layers[l];
            const char *sub[4] = {"q_proj", "k_proj", "v_proj", "o_proj"};
            nt_linear *dst[4] = {&ly->q, &ly->k, &ly->v, &ly->o};
            int outs[4] = {qd, kvd, kvd, D}, ins[4] = {D, D, D, qd};
            for (int j = 0; j < 4; j++) {
                bool bias = j < 3 ? c->qkv_bias : c->o_bias;
                snprintf(n, sizeof(n), "layers.%d.self_attn.%s", l, sub[j]);
                if (load_linear(L, n, outs[j], ins[j], bias, dst[j], err)) return -1;
            }
            snprintf(n, sizeof(n), "layers.%d.input_layernorm", l);
            if (load_norm(L, n, D, false, &ly->attn_norm, err)) return -1;
            snprintf(n, sizeof(n), "layers.%d.post_attention_layernorm", l);
            if (load_norm(L, n, D, false, &ly->mlp_norm, err)) return -1;
            snprintf(n, sizeof(n), "layers.%d.mlp.gate_proj", l);
            if (load_linear(L, n, F, D, c->mlp_bias, &ly->gate, err)) return -1;
            snprintf(n, sizeof(n), "layers.%d.mlp.up_proj", l);
            if (load_linear(L, n, F, D, c->mlp_bias, &ly->up, err)) return -1;
            snprintf(n, sizeof(n), "layers.%d.mlp.down_proj", l);
            if (load_linear(L, n, D, F, c->mlp_bias, &ly->down, err)) return -1;
        }
    } else { // BLOOM
        if (load(L, "word_embeddings.weight", 2, c->vocab, D, false, &m->tok_emb, err) ||
            load_norm(L, "word_embeddings_layernorm", D, true, &m->emb_norm, err) ||
            load_norm(L, "ln_f", D, true, &m->final_norm, err))
            return -1;
        for (int l = 0; l < c->n_layers; l++) {
            nt_layer *ly = &m->layers[l];
            snprintf(n, sizeof(n), "h.%d.self_attention.query_key_value", l);
            if (load_bloom_qkv(L, n, c, ly, err)) return -1;
            snprintf(n, sizeof(n), "h.%d.self_attention.dense", l);
            if (load_linear(L, n, D, D, true, &ly->o, err)) return -1;
            snprintf(n, sizeof(n), "h.%d.input_layernorm", l);
            if (load_norm(L, n, D, true, &ly->attn_norm, err)) return -1;
            snprintf(n, sizeof(n), "h.%d.post_attention_layernorm", l);
            if (load_norm(L, n, D, true, &ly->mlp_norm, err)) return -1;
            snprintf(n, sizeof(n), "h.%d.mlp.dense_h_to_4h", l);
            if (load_linear(L, n, F, D, true, &ly->up, err)) return -1;
            snprintf(n, sizeof(n), "h.%d.mlp.dense_4h_to_h", l);
            if (load_linear(L, n, D, F, true, &ly->down, err)) return -1;
        }
        m->alibi = malloc((size_t)c->n_heads * sizeof(float));
        if (!m->alibi) return nt_fail(err, "%s: out of memory", L->cfg_path);
        alibi_slopes(c->n_heads, m->alibi);
    }
    if (c->tied) {
        m->lm_head = m->tok_emb;
    } else {
        // lm_head lives outside the base-model prefix
        loader top = *L;
        top.prefix = "";
        if (load(&top, "lm_head.weight", 2, c->vocab, c->emb_dim, false, &m->lm_head, err)) return -1;
    }
    return 0;
}

// A quantized checkpoint's quantize_config.json (absent: a float checkpoint, m->quant stays "fp").
// source_name (source_cap bytes) gets the name of the float model it was made from, for result rows.
static int read_quantize_config(const char *dir, nt_model_quant *mq, nt_qfmt *qfmt, char *source_name,
                                size_t source_cap, nt_err *err) {
    char *path = nt_path_join(dir, "quantize_config.json");
    bool hf = !nt_file_exists(path); // transformers' GPTQ checkpoints: config.json's quantization_config only
    if (hf) {
        free(path);
        path = nt_path_join(dir, "config.json");
    }
    char *text = nt_read_file(path, NULL, err);
    cJSON *root = NULL;
    int rc = -1;
    if (!text) goto done;
    root = cJSON_Parse(text);
    free(text);
    if (!root) {
        nt_fail(err, "%s: malformed JSON", path);
        goto done;
    }
    if (hf) {
        cJSON *qc = cJSON_DetachItemFromObjectCaseSensitive(root, "quantization_config");
        cJSON_Delete(root);
        root = qc;
        rc = root ? -1 : 0; // none: a float checkpoint
        if (!root) goto done;
    }
    if (nt_qfmt_from_json(root, path, qfmt, err)) goto done; // normtweak's, or GPTQ's (v1, v2)
    int bits = 0, group = 0;
    bool sym = false, act = false, stat = false;
    if (cfg_int(root, path, (const char *[]){"bits", NULL}, -1, &bits, err)) goto done;
    const cJSON *g = cfg_item(root, "group_size");
    if (!g || !cJSON_IsNumber(g) || (g->valueint != -1 && g->valueint <= 0)) {
        nt_fail(err, "%s: 'group_size' must be -1 or a positive integer", path);
        goto done;
    }
    group = g->valueint;
    bool sym_default = *qfmt != NT_QFMT_NORMTWEAK; // AutoGPTQ's default is sym
    if (cfg_bool(root, path, "sym", sym_default, &sym, err) || cfg_bool(root, path, "desc_act", false, &act, err) ||
        cfg_bool(root, path, "static_groups", false, &stat, err))
        goto done;
    nt_err e2;
    if (nt_qformat_check(32, 32 * (group > 0 ? group : 1), bits, group, &e2)) {
        nt_fail(err, "%s: %s", path, e2.msg);
        goto done;
    }
    const cJSON *method = cfg_item(root, "method"), *calib = cfg_item(root, "calib"), *opts = cfg_item(root, "options");
    snprintf(mq->method, sizeof(mq->method), "%s", method && cJSON_IsString(method) ? method->valuestring : "gptq");
    snprintf(mq->calib, sizeof(mq->calib), "%s", calib && cJSON_IsString(calib) ? calib->valuestring : "");
    snprintf(mq->options, sizeof(mq->options), "%s", opts && cJSON_IsString(opts) ? opts->valuestring : "");
    const cJSON *source = cfg_item(root, "source");
    if (source && cJSON_IsString(source) && source->valuestring[0] && !strchr(source->valuestring, '/'))
        snprintf(source_name, source_cap, "%s", source->valuestring);
    mq->wbits = bits;
    mq->group_size = group;
    mq->sym = sym;
    mq->act_order = act;
    mq->static_groups = stat;
    rc = 0;
done:
    cJSON_Delete(root);
    free(path);
    return rc;
}

// The prefix under which this checkpoint stores the base model's tensors.
static const char *find_prefix(const nt_safetensors *st, const nt_config *c) {
    const char *probe = c->arch == NT_ARCH_OPT ? "decoder.embed_tokens.weight"
                        : c->arch == NT_ARCH_LLAMA ? "embed_tokens.weight"
                                                   : "word_embeddings.weight";
    const char *prefixes[] = {"model.", "transformer.", ""};
    for (int i = 0; i < 3; i++) {
        char full[160];
        snprintf(full, sizeof(full), "%s%s", prefixes[i], probe);
        if (nt_st_find(st, full)) return prefixes[i];
    }
    return c->arch == NT_ARCH_BLOOM ? "transformer." : "model."; // the error will name the expected tensor
}

int nt_model_load(nt_model **out, const char *dir, nt_err *err) {
    if (nt_gguf_model_path(dir)) return nt_gguf_model_load(out, dir, err); // a .gguf file, not a directory
    *out = NULL;
    nt_model *m = calloc(1, sizeof(nt_model));
    if (!m) return nt_fail(err, "%s: out of memory", dir);
    loader L = {0};
    nt_safetensors *st = NULL;
    cJSON *root = NULL;
    int rc = -1;
    m->dir = strdup(dir);
    m->name = strdup(dir);
    if (!m->dir || !m->name) {
        nt_fail(err, "%s: out of memory", dir);
        goto done;
    }
    { // the name is the directory's last component
        size_t k = strlen(m->name);
        while (k > 1 && m->name[k - 1] == '/') m->name[--k] = '\0';
        char *slash = strrchr(m->name, '/');
        if (slash && slash[1]) memmove(m->name, slash + 1, strlen(slash + 1) + 1);
    }
    L.cfg_path = nt_path_join(dir, "config.json");
    char *text = nt_read_file(L.cfg_path, NULL, err);
    if (!text) goto done;
    root = cJSON_Parse(text);
    free(text);
    if (!root) {
        nt_fail(err, "%s: malformed JSON", L.cfg_path);
        goto done;
    }
    if (config_from_json(&m->cfg, root, L.cfg_path, err)) goto done;
    snprintf(m->quant.method, sizeof(m->quant.method), "fp");
    m->quant.wbits = 16;
    char source[128] = "";
    if (read_quantize_config(dir, &m->quant, &L.qfmt, source, sizeof(source), err)) goto done;
    if (source[0]) { // rows of a quantized checkpoint name the model it was made from
        free(m->name);
        m->name = strdup(source);
    }
    L.quant = &m->quant;
    if (nt_st_open_dir(&st, dir, err)) goto done;
    L.st = st;
    L.prefix = find_prefix(st, &m->cfg);
    if (load_weights(m, &L, err)) goto done;
    rc = 0;
done:
    cJSON_Delete(root);
    nt_st_close(&st);
    free(L.cfg_path);
    if (rc) nt_model_free(&m);
    *out = m;
    return rc;
}

static void free_linear(nt_linear *l) {
    free(l->w);
    free(l->b);
    l->w = l->b = NULL;
    nt_qlinear_free(&l->q);
}

static void free_norm(nt_norm *n) {
    free(n->w);
    free(n->b);
    n->w = n->b = NULL;
}

void nt_model_free(nt_model **mp) {
    nt_model *m = mp ? *mp : NULL;
    if (!m) return;
    if (m->layers) {
        for (int l = 0; l < m->cfg.n_layers; l++) {
            nt_layer *ly = &m->layers[l];
            free_norm(&ly->attn_norm);
            free_norm(&ly->mlp_norm);
            nt_linear *lin[7] = {&ly->q, &ly->k, &ly->v, &ly->o, &ly->up, &ly->gate, &ly->down};
            for (int j = 0; j < 7; j++) free_linear(lin[j]);
        }
    }
    free(m->layers);
    if (m->lm_head != m->tok_emb) free(m->lm_head);
    free(m->tok_emb);
    free(m->pos_emb);
    free_norm(&m->emb_norm);
    free_norm(&m->final_norm);
    free_linear(&m->proj_in);
    free_linear(&m->proj_out);
    free(m->alibi);
    free(m->dir);
    free(m->name);
    free(m);
    *mp = NULL;
}
