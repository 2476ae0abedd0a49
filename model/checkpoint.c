// checkpoint.c: a Hugging Face model directory -> nt_model. Parses config.json for the three supported
// families (OPT, LLaMA/Qwen2, BLOOM), finds each tensor under its Hugging Face name, checks its shape
// against the config and converts it to fp32 once.
#define _POSIX_C_SOURCE 200809L
#include <cjson/cJSON.h>
#include <math.h>
#include <string.h>

#include "gguf_model.h"
#include "json.h"
#include "qtensors.h"
#include "safetensors.h"
#include "transformer.h"

// ----------------------------------------------------------------------------
// config.json

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
    const cJSON *mt = nt_json_item(root, "model_type");
    if (!mt || !cJSON_IsString(mt)) return nt_fail(err, "%s: missing 'model_type'", path);
    snprintf(c->model_type, sizeof(c->model_type), "%s", mt->valuestring);
    const char *type = mt->valuestring;
    bool ok = true;
    if (strcmp(type, "opt") == 0) {
        c->arch = NT_ARCH_OPT;
        ok = nt_json_int(root, path, (const char *[]){"vocab_size", NULL}, -1, &c->vocab, err) == 0 &&
             nt_json_int(root, path, (const char *[]){"hidden_size", NULL}, -1, &c->dim, err) == 0 &&
             nt_json_int(root, path, (const char *[]){"num_hidden_layers", NULL}, -1, &c->n_layers, err) == 0 &&
             nt_json_int(root, path, (const char *[]){"num_attention_heads", NULL}, -1, &c->n_heads, err) == 0 &&
             nt_json_int(root, path, (const char *[]){"ffn_dim", NULL}, -1, &c->ffn_dim, err) == 0 &&
             nt_json_int(root, path, (const char *[]){"max_position_embeddings", NULL}, -1, &c->max_pos, err) == 0 &&
             nt_json_int(root, path, (const char *[]){"word_embed_proj_dim", NULL}, 0, &c->emb_dim, err) == 0 &&
             nt_json_bool(root, path, "do_layer_norm_before", true, &c->pre_norm, err) == 0 &&
             nt_json_bool(root, path, "tie_word_embeddings", true, &c->tied, err) == 0;
        if (!ok) return -1;
        bool remove_final = false, affine = true, bias = true;
        if (nt_json_bool(root, path, "_remove_final_layer_norm", false, &remove_final, err) ||
            nt_json_bool(root, path, "layer_norm_elementwise_affine", true, &affine, err) ||
            nt_json_bool(root, path, "enable_bias", true, &bias, err))
            return -1;
        if (!affine || !bias) return nt_fail(err, "%s: OPT without LayerNorm affine or linear biases is not supported", path);
        const cJSON *act = nt_json_item(root, "activation_function");
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
        ok = nt_json_int(root, path, (const char *[]){"vocab_size", NULL}, -1, &c->vocab, err) == 0 &&
             nt_json_int(root, path, (const char *[]){"hidden_size", NULL}, -1, &c->dim, err) == 0 &&
             nt_json_int(root, path, (const char *[]){"num_hidden_layers", NULL}, -1, &c->n_layers, err) == 0 &&
             nt_json_int(root, path, (const char *[]){"num_attention_heads", NULL}, -1, &c->n_heads, err) == 0 &&
             nt_json_int(root, path, (const char *[]){"num_key_value_heads", NULL}, 0, &c->n_kv_heads, err) == 0 &&
             nt_json_int(root, path, (const char *[]){"intermediate_size", NULL}, -1, &c->ffn_dim, err) == 0 &&
             nt_json_int(root, path, (const char *[]){"max_position_embeddings", NULL}, 2048, &c->max_pos, err) == 0 &&
             nt_json_int(root, path, (const char *[]){"head_dim", NULL}, 0, &c->head_dim, err) == 0 &&
             nt_json_float(root, path, "rms_norm_eps", 1e-6, &c->norm_eps, err) == 0 &&
             nt_json_float(root, path, "rope_theta", 10000.0, &c->rope_theta, err) == 0 &&
             nt_json_bool(root, path, "tie_word_embeddings", false, &c->tied, err) == 0;
        if (!ok) return -1;
        const cJSON *act = nt_json_item(root, "hidden_act");
        if (parse_act(act && cJSON_IsString(act) ? act->valuestring : "silu", path, &c->act, err)) return -1;
        if (c->act != NT_ACT_SILU) return nt_fail(err, "%s: LLaMA-family models with hidden_act other than silu are not supported", path);
        const cJSON *rs = nt_json_item(root, "rope_scaling");
        if (rs) return nt_fail(err, "%s: 'rope_scaling' is not supported yet", path);
        if (c->n_kv_heads == 0) c->n_kv_heads = c->n_heads;
        bool attn_bias = false;
        if (nt_json_bool(root, path, "attention_bias", false, &attn_bias, err) ||
            nt_json_bool(root, path, "mlp_bias", false, &c->mlp_bias, err))
            return -1;
        c->qkv_bias = qwen || attn_bias; // Qwen2: q/k/v biases, no o bias
        c->o_bias = !qwen && attn_bias;
        c->emb_dim = c->dim;
        c->rms_norm = true;
        c->pre_norm = true;
        c->final_norm = true;
    } else if (strcmp(type, "bloom") == 0) {
        c->arch = NT_ARCH_BLOOM;
        ok = nt_json_int(root, path, (const char *[]){"vocab_size", NULL}, -1, &c->vocab, err) == 0 &&
             nt_json_int(root, path, (const char *[]){"hidden_size", "n_embed", NULL}, -1, &c->dim, err) == 0 &&
             nt_json_int(root, path, (const char *[]){"n_layer", "num_hidden_layers", NULL}, -1, &c->n_layers, err) == 0 &&
             nt_json_int(root, path, (const char *[]){"n_head", "num_attention_heads", NULL}, -1, &c->n_heads, err) == 0 &&
             nt_json_int(root, path, (const char *[]){"seq_length", "max_position_embeddings", NULL}, 2048, &c->max_pos, err) == 0 &&
             nt_json_float(root, path, "layer_norm_epsilon", 1e-5, &c->norm_eps, err) == 0 &&
             nt_json_bool(root, path, "apply_residual_connection_post_layernorm", false, &c->residual_post_norm, err) == 0 &&
             nt_json_bool(root, path, "tie_word_embeddings", true, &c->tied, err) == 0;
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
    cJSON *root = nt_json_read_file(path, err);
    if (!root) return -1;
    int rc = config_from_json(cfg, root, path, err);
    cJSON_Delete(root);
    return rc;
}

char *nt_config_json(const nt_config *c) {
    bool qwen = strcmp(c->model_type, "qwen2") == 0;
    if (c->arch != NT_ARCH_LLAMA || c->mlp_bias || (qwen ? (!c->qkv_bias || c->o_bias) : c->qkv_bias != c->o_bias))
        return NULL; // not one config.json can say
    cJSON *o = cJSON_CreateObject();
    cJSON *archs = cJSON_AddArrayToObject(o, "architectures");
    cJSON_AddItemToArray(archs, cJSON_CreateString(qwen ? "Qwen2ForCausalLM" : "LlamaForCausalLM"));
    cJSON_AddStringToObject(o, "model_type", qwen ? "qwen2" : "llama");
    cJSON_AddNumberToObject(o, "vocab_size", c->vocab);
    cJSON_AddNumberToObject(o, "hidden_size", c->dim);
    cJSON_AddNumberToObject(o, "num_hidden_layers", c->n_layers);
    cJSON_AddNumberToObject(o, "num_attention_heads", c->n_heads);
    cJSON_AddNumberToObject(o, "num_key_value_heads", c->n_kv_heads);
    cJSON_AddNumberToObject(o, "head_dim", c->head_dim);
    cJSON_AddNumberToObject(o, "intermediate_size", c->ffn_dim);
    cJSON_AddNumberToObject(o, "max_position_embeddings", c->max_pos);
    cJSON_AddNumberToObject(o, "rms_norm_eps", (double)c->norm_eps); // a float's exact value: reads back the same
    cJSON_AddNumberToObject(o, "rope_theta", (double)c->rope_theta);
    cJSON_AddStringToObject(o, "hidden_act", "silu");
    cJSON_AddBoolToObject(o, "tie_word_embeddings", c->tied);
    if (!qwen) cJSON_AddBoolToObject(o, "attention_bias", c->qkv_bias);
    cJSON_AddStringToObject(o, "torch_dtype", "float32");
    char *text = cJSON_Print(o);
    cJSON_Delete(o);
    return text;
}

// ----------------------------------------------------------------------------
// weights

typedef struct {
    const nt_safetensors *st;
    const char *prefix; // "model." / "" / "transformer." as the checkpoint spells it
    char *cfg_path;
    const nt_model_quant *quant; // a quantized checkpoint's format (method "fp" otherwise)
    nt_qfmt qfmt;                // its tensors' layout: normtweak's, or GPTQ's (codec/qtensors.h)
} loader;

// Reads the quantized linear NAME (its tensors in the checkpoint's format, codec/qtensors.h) into a new nt_qlinear.
static int load_qlinear(loader *L, const char *name, int out_dim, int in_dim, nt_qlinear **out, nt_err *err) {
    const nt_model_quant *mq = L->quant;
    nt_qfmt_spec spec = {L->qfmt, mq->wbits, mq->group_size, mq->sym, mq->act_order};
    char full[300];
    snprintf(full, sizeof(full), "%s%s", L->prefix, name);
    return nt_qfmt_read_qlinear(L->st, full, &spec, out_dim, in_dim, out, err);
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
    nt_path_basename(dir, m->name, strlen(m->name) + 1); // the name is the directory's last component
    L.cfg_path = nt_path_join(dir, "config.json");
    root = nt_json_read_file(L.cfg_path, err);
    if (!root || config_from_json(&m->cfg, root, L.cfg_path, err)) goto done;
    nt_qcheckpoint_info info;
    if (nt_qcheckpoint_info_read(dir, &info, err)) goto done;
    m->quant = info.q;
    L.qfmt = info.fmt;
    if (info.source[0]) { // rows of a quantized checkpoint name the model it was made from
        free(m->name);
        m->name = strdup(info.source);
        if (!m->name) {
            nt_fail(err, "%s: out of memory", dir);
            goto done;
        }
    }
    L.quant = &m->quant;
    if (nt_st_open_dir(&st, dir, err)) goto done;
    L.st = st;
    L.prefix = find_prefix(st, &m->cfg);
    if (load_weights(m, &L, err)) goto done;
    if (m->quant.abits < 16) { // activation quantization as the checkpoint was made (static: its scales)
        float *scales = NULL;
        if (m->quant.act_static) {
            int64_t shape[2] = {m->cfg.n_layers, NT_LIN_COUNT};
            if (!nt_st_find(st, NT_ACT_SCALES_TENSOR)) {
                nt_fail(err, "%s: act_scheme static but no %s tensor", dir, NT_ACT_SCALES_TENSOR);
                goto done;
            }
            if (nt_st_load_f32(st, NT_ACT_SCALES_TENSOR, 2, shape, &scales, err)) goto done;
        }
        int r2 = nt_model_set_act_quant(m, m->quant.abits, m->quant.act_static, scales, err);
        free(scales);
        if (r2) goto done;
    }
    rc = 0;
done:
    cJSON_Delete(root);
    nt_st_close(&st);
    free(L.cfg_path);
    if (rc) nt_model_free(&m);
    *out = m;
    return rc;
}
