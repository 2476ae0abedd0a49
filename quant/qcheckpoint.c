// qcheckpoint.c: writing normtweak's quantized checkpoints (see qcheckpoint.h); reading them is part of
// model/checkpoint.c's loader.
#define _POSIX_C_SOURCE 200809L
#include "qcheckpoint.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "safetensors.h"

int nt_qlinear_gather(nt_qlinear **out, const nt_qlinear *const *srcs, const int *src, const int *rows, int n,
                      nt_err *err) {
    const nt_qlinear *a = srcs[src[0]];
    *out = NULL;
    for (int i = 0; i < n; i++) {
        const nt_qlinear *s = srcs[src[i]];
        if (s->bits != a->bits || s->group_size != a->group_size || s->sym != a->sym || s->in != a->in ||
            (s->perm == NULL) != (a->perm == NULL) || rows[i] < 0 || rows[i] >= s->out ||
            memcmp(s->g_idx, a->g_idx, (size_t)a->in * sizeof(int32_t)) != 0 ||
            (s->perm && memcmp(s->perm, a->perm, (size_t)a->in * sizeof(int32_t)) != 0))
            return nt_fail(err, "quantized linears to fuse disagree in format or act-order");
    }
    nt_qlinear *q = NULL;
    if (nt_qlinear_alloc(&q, n, a->in, a->bits, a->group_size, a->sym, a->perm != NULL, err)) return -1;
    size_t words = (size_t)nt_qpacks(a->in) * a->bits;
    for (int i = 0; i < n; i++) {
        const nt_qlinear *s = srcs[src[i]];
        int r = rows[i];
        for (size_t w = 0; w < words; w++) q->qweight[w * n + i] = s->qweight[w * s->out + r];
        for (int g = 0; g < a->n_groups; g++) {
            q->scales[(size_t)g * n + i] = s->scales[(size_t)g * s->out + r];
            if (q->zeros) q->zeros[(size_t)g * n + i] = s->zeros[(size_t)g * s->out + r];
        }
    }
    memcpy(q->g_idx, a->g_idx, (size_t)a->in * sizeof(int32_t));
    if (q->perm) memcpy(q->perm, a->perm, (size_t)a->in * sizeof(int32_t));
    *out = q;
    return 0;
}

// ----------------------------------------------------------------------------
// which model parameter a source tensor name is

typedef enum { P_OTHER, P_LINEAR, P_BLOOM_QKV, P_NORM_W, P_NORM_B } param_kind;
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
    void **owned; // buffers to free
    size_t n_owned;
} tensor_list;

static int add_tensor(tensor_list *L, const char *name, nt_dtype dt, int ndim, const int64_t *shape,
                      const void *data, size_t nbytes) {
    return nt_st_list_add(&L->list, name, dt, ndim, shape, data, nbytes);
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

static int add_qlinear(tensor_list *L, const char *base, const nt_qlinear *q) {
    char nm[300];
    int64_t K = q->in, N = q->out, G = q->n_groups;
    int64_t sw[2] = {(int64_t)nt_qpacks(q->in) * q->bits, N}, sg[2] = {G, N}, sk[1] = {K};
    snprintf(nm, sizeof(nm), "%s.qweight", base);
    if (add_tensor(L, nm, NT_DT_I32, 2, sw, q->qweight, (size_t)(sw[0] * N) * 4)) return -1;
    snprintf(nm, sizeof(nm), "%s.scales", base);
    if (add_tensor(L, nm, NT_DT_F16, 2, sg, q->scales, (size_t)(G * N) * 2)) return -1;
    if (q->zeros) {
        snprintf(nm, sizeof(nm), "%s.zeros", base);
        if (add_tensor(L, nm, NT_DT_U8, 2, sg, q->zeros, (size_t)(G * N))) return -1;
    }
    snprintf(nm, sizeof(nm), "%s.g_idx", base);
    if (add_tensor(L, nm, NT_DT_I32, 1, sk, q->g_idx, (size_t)K * 4)) return -1;
    if (q->perm) {
        snprintf(nm, sizeof(nm), "%s.perm", base);
        if (add_tensor(L, nm, NT_DT_I32, 1, sk, q->perm, (size_t)K * 4)) return -1;
    }
    return 0;
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

// quantize_config.json's text (malloc'd), or NULL when out of memory.
static char *quantize_config_text(const nt_model *m) {
    const nt_model_quant *mq = &m->quant;
    cJSON *root = cJSON_CreateObject();
    cJSON_AddStringToObject(root, "checkpoint_format", "normtweak");
    cJSON_AddNumberToObject(root, "bits", mq->wbits);
    cJSON_AddNumberToObject(root, "group_size", mq->group_size);
    cJSON_AddBoolToObject(root, "sym", mq->sym);
    cJSON_AddBoolToObject(root, "desc_act", mq->act_order);
    cJSON_AddBoolToObject(root, "static_groups", mq->static_groups);
    cJSON_AddStringToObject(root, "method", mq->method);
    cJSON_AddStringToObject(root, "calib", mq->calib);
    cJSON_AddStringToObject(root, "options", mq->options);
    cJSON_AddStringToObject(root, "source", m->name);
    cJSON_AddStringToObject(root, "normtweak_commit", nt_build_commit());
    char *text = cJSON_Print(root);
    cJSON_Delete(root);
    return text;
}

static int write_text(const char *path, const char *text, nt_err *err) {
    FILE *f = fopen(path, "wb");
    int ok = f && fputs(text, f) >= 0 && fputc('\n', f) != EOF;
    ok = f && fclose(f) == 0 && ok;
    return ok ? 0 : nt_fail(err, "%s: cannot write: %s", path, strerror(errno));
}

static int copy_file(const char *from, const char *to, nt_err *err) {
    size_t len;
    char *buf = nt_read_file(from, &len, err);
    if (!buf) return -1;
    FILE *f = fopen(to, "wb");
    int ok = f && fwrite(buf, 1, len, f) == len;
    ok = f && fclose(f) == 0 && ok;
    free(buf);
    return ok ? 0 : nt_fail(err, "%s: cannot write: %s", to, strerror(errno));
}

static int dir_is_empty_or_absent(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return errno == ENOENT;
    struct dirent *e;
    int empty = 1;
    while ((e = readdir(d)))
        if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0) empty = 0;
    closedir(d);
    return empty;
}

static void remove_tree(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
        char *p = nt_path_join(dir, e->d_name);
        if (p) unlink(p);
        free(p);
    }
    closedir(d);
    rmdir(dir);
}

int nt_qcheckpoint_write_dir(const char *out_dir, const char *src_dir, const nt_st_tensor *tensors, size_t n,
                             const char *const *meta_kv, size_t n_meta, const nt_qcheckpoint_text *texts,
                             size_t n_texts, nt_err *err) {
    if (!dir_is_empty_or_absent(out_dir))
        return nt_fail(err, "%s: exists and is not empty; choose a new --out directory", out_dir);
    int rc = -1;
    size_t tl = strlen(out_dir) + 32;
    char *tmp = malloc(tl);
    if (!tmp) return nt_fail(err, "out of memory writing %s", out_dir);
    snprintf(tmp, tl, "%s.tmp.%ld", out_dir, (long)getpid());
    remove_tree(tmp);
    if (mkdir(tmp, 0755) != 0) {
        nt_fail(err, "%s: cannot create: %s", tmp, strerror(errno));
        free(tmp);
        return -1;
    }
    char *p = nt_path_join(tmp, "model.safetensors");
    int r2 = nt_st_write(p, tensors, n, meta_kv, n_meta, err);
    free(p);
    for (size_t i = 0; i < n_texts && r2 == 0; i++) {
        p = nt_path_join(tmp, texts[i].name);
        r2 = write_text(p, texts[i].text, err);
        free(p);
    }
    const char *copies[] = {"config.json", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
                            "vocab.json", "merges.txt", "tokenizer.model", "generation_config.json"};
    for (size_t i = 0; i < sizeof(copies) / sizeof(copies[0]) && r2 == 0; i++) {
        bool given = false;
        for (size_t j = 0; j < n_texts; j++) given = given || strcmp(texts[j].name, copies[i]) == 0;
        if (given) continue;
        char *from = nt_path_join(src_dir, copies[i]), *to = nt_path_join(tmp, copies[i]);
        r2 = nt_file_exists(from) ? copy_file(from, to, err) : 0;
        free(from);
        free(to);
    }
    if (r2) goto done;
    rmdir(out_dir); // empty or absent
    if (rename(tmp, out_dir) != 0) {
        nt_fail(err, "%s: cannot rename into place: %s", out_dir, strerror(errno));
        goto done;
    }
    rc = 0;
done:
    if (rc) remove_tree(tmp);
    free(tmp);
    return rc;
}

int nt_qcheckpoint_save(const nt_model *m, const char *out_dir, nt_err *err) {
    if (strcmp(m->quant.method, "fp") == 0) return nt_fail(err, "%s: the model is not quantized", m->name);
    if (!dir_is_empty_or_absent(out_dir))
        return nt_fail(err, "%s: exists and is not empty; choose a new --out directory", out_dir);
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
            if (add_qlinear(&L, base, q)) goto oom;
        } else if (k == P_NORM_W || k == P_NORM_B) { // the model's current norms (norm tweaking changes them)
            const nt_norm *nm = id == 0 ? &ly->attn_norm : &ly->mlp_norm;
            const float *v = k == P_NORM_W ? nm->w : nm->b;
            if (!v) goto verbatim;
            int64_t shape[1] = {m->cfg.dim};
            if (add_tensor(&L, t->name, NT_DT_F32, 1, shape, v, (size_t)m->cfg.dim * 4)) goto oom;
        } else {
        verbatim:
            if (add_tensor(&L, t->name, t->dtype, t->ndim, t->shape, t->data, t->nbytes)) goto oom;
        }
    }
    {
        const char *meta[] = {"format", "pt", "normtweak", "quantized"};
        char *qc = quantize_config_text(m);
        if (!qc) goto oom;
        nt_qcheckpoint_text texts[1] = {{"quantize_config.json", qc}};
        int r2 = nt_qcheckpoint_write_dir(out_dir, m->dir, L.list.t, L.list.n, meta, 2, texts, 1, err);
        free(qc);
        if (r2) goto done;
    }
    rc = 0;
    goto done;
oom:
    nt_fail(err, "out of memory writing %s", out_dir);
done:
    for (size_t i = 0; i < L.n_owned; i++) nt_qlinear_free((nt_qlinear **)&L.owned[i]);
    free(L.owned);
    nt_st_list_free(&L.list);
    nt_st_close(&st);
    return rc;
}
