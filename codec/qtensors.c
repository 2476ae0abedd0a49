// qtensors.c: reading and writing the tensors of quantized linears in normtweak's and GPTQ's formats (qtensors.h).
#define _POSIX_C_SOURCE 200809L
#include "qtensors.h"

#include <stdlib.h>
#include <string.h>

// ----------------------------------------------------------------------------------------------- bit streams
// Field i of a row of `bits`-bit fields stored as one little-endian bit stream (field i at bit bits*i): GPTQ's
// qzeros along N for every bit width.
static uint32_t stream_get(const uint32_t *w, int bits, long i) {
    long bit = (long)bits * i, wi = bit / 32;
    int off = (int)(bit % 32);
    uint64_t v = w[wi] >> off;
    if (off + bits > 32) v |= (uint64_t)w[wi + 1] << (32 - off);
    return (uint32_t)v & ((1u << bits) - 1);
}

static void stream_set(uint32_t *w, int bits, long i, uint32_t v) { // the row starts zeroed
    long bit = (long)bits * i, wi = bit / 32;
    int off = (int)(bit % 32);
    w[wi] |= v << off;
    if (off + bits > 32) w[wi + 1] |= v >> (32 - off);
}

// ---------------------------------------------------------------------------------------------------- import
typedef struct {
    const nt_safetensors *st;
    const char *base;
    const char *file; // the qweight's file, for messages
    char what[96];    // "4-bit, 32 output channels": what the expected shapes follow from
} reader;

static void shape_str(char *buf, size_t cap, int ndim, const int64_t *shape) {
    size_t n = (size_t)snprintf(buf, cap, "[");
    for (int i = 0; i < ndim && n < cap; i++)
        n += (size_t)snprintf(buf + n, cap - n, i ? ", %lld" : "%lld", (long long)shape[i]);
    if (n < cap) snprintf(buf + n, cap - n, "]");
}

// The tensor base.suffix, which must be dt with shape (d0) or (d0, d1); NULL (optional and absent), or NULL with
// *failed set and a message.
static const nt_st_tensor *get(reader *R, const char *suffix, nt_dtype dt, int ndim, int64_t d0, int64_t d1,
                               bool optional, bool *failed, nt_err *err) {
    char full[320];
    snprintf(full, sizeof(full), "%s.%s", R->base, suffix);
    const nt_st_tensor *t = nt_st_find(R->st, full);
    if (!t) {
        if (!optional) {
            *failed = true;
            nt_fail(err, "%s: quantized tensor '%s' not found", R->file, full);
        }
        return NULL;
    }
    int64_t want[2] = {d0, d1};
    if (t->dtype != dt || t->ndim != ndim || t->shape[0] != d0 || (ndim == 2 && t->shape[1] != d1)) {
        char has[96], exp[64];
        shape_str(has, sizeof(has), t->ndim, t->shape);
        shape_str(exp, sizeof(exp), ndim, want);
        *failed = true;
        nt_fail(err, "%s: tensor '%s' is %s %s, expected %s %s (quantize_config.json implies %s)", t->file, full,
                nt_dtype_name(t->dtype), has, nt_dtype_name(dt), exp, R->what);
        return NULL;
    }
    return t;
}

// Our perm from g_idx: the columns sorted by group, stable (a counting sort; g_idx validated).
static void perm_from_g_idx(nt_qlinear *q) {
    int *start = calloc((size_t)q->n_groups + 1, sizeof(int));
    NT_ASSERT(start != NULL);
    for (int k = 0; k < q->in; k++) start[q->g_idx[k] + 1]++;
    for (int g = 0; g < q->n_groups; g++) start[g + 1] += start[g];
    for (int k = 0; k < q->in; k++) q->perm[start[q->g_idx[k]]++] = k;
    free(start);
}

static int finish(reader *R, nt_qlinear *q, nt_qlinear **out, nt_err *err) {
    nt_err e2;
    if (nt_qlinear_validate(q, &e2)) {
        nt_qlinear_free(&q);
        return nt_fail(err, "%s: quantized linear '%s': %s", R->file, R->base, e2.msg);
    }
    *out = q;
    return 0;
}

static int read_normtweak(reader *R, const nt_st_tensor *tw, const nt_qfmt_spec *s, int N, int K, nt_qlinear **out,
                          nt_err *err) {
    bool failed = false;
    char perm_name[320];
    snprintf(perm_name, sizeof(perm_name), "%s.perm", R->base);
    nt_qlinear *q = NULL;
    nt_err e2;
    if (nt_qlinear_alloc(&q, N, K, s->bits, s->group_size, s->sym, nt_st_find(R->st, perm_name) != NULL, &e2))
        return nt_fail(err, "%s: quantized linear '%s': %s", R->file, R->base, e2.msg);
    int64_t G = q->n_groups;
    const nt_st_tensor *ts = get(R, "scales", NT_DT_F16, 2, G, N, false, &failed, err);
    const nt_st_tensor *tz = failed ? NULL : get(R, "zeros", NT_DT_U8, 2, G, N, s->sym, &failed, err);
    const nt_st_tensor *tg = failed ? NULL : get(R, "g_idx", NT_DT_I32, 1, K, 0, false, &failed, err);
    const nt_st_tensor *tp = failed || !q->perm ? NULL : get(R, "perm", NT_DT_I32, 1, K, 0, false, &failed, err);
    if (!failed && s->sym && tz) {
        failed = true;
        nt_fail(err, "%s: tensor '%s.zeros' exists although quantize_config.json says sym", tz->file, R->base);
    }
    if (failed) {
        nt_qlinear_free(&q);
        return -1;
    }
    memcpy(q->qweight, tw->data, tw->nbytes);
    memcpy(q->scales, ts->data, ts->nbytes);
    if (q->zeros) memcpy(q->zeros, tz->data, tz->nbytes);
    memcpy(q->g_idx, tg->data, tg->nbytes);
    if (q->perm) memcpy(q->perm, tp->data, tp->nbytes);
    return finish(R, q, out, err);
}

static int read_gptq(reader *R, const nt_st_tensor *tw, const nt_qfmt_spec *s, int N, int K, nt_qlinear **out,
                     nt_err *err) {
    const nt_qtraits *tr = nt_qtraits_get(s->bits);
    nt_err e2;
    if (nt_qformat_check(N, K, s->bits, s->group_size, &e2))
        return nt_fail(err, "%s: quantized linear '%s': %s", R->file, R->base, e2.msg);
    if ((long)N * s->bits % 32 != 0)
        return nt_fail(err, "%s: quantized linear '%s': %d output channels of %d bits do not fill whole qzeros words",
                       R->file, R->base, N, s->bits);
    int G = nt_qgroups(K, s->group_size), zw = (int)((long)N * s->bits / 32);
    bool failed = false;
    const nt_st_tensor *tz = get(R, "qzeros", NT_DT_I32, 2, G, zw, false, &failed, err);
    const nt_st_tensor *ts = failed ? NULL : get(R, "scales", NT_DT_F16, 2, G, N, false, &failed, err);
    const nt_st_tensor *tg = failed ? NULL : get(R, "g_idx", NT_DT_I32, 1, K, 0, true, &failed, err);
    if (failed) return -1;
    // zero points first: whether the linear is symmetric depends on them
    uint8_t *zeros = malloc((size_t)G * N);
    if (!zeros) return nt_fail(err, "out of memory reading '%s'", R->base);
    const uint32_t *qz = tz->data;
    bool all_sym = true;
    for (int g = 0; g < G; g++)
        for (int n = 0; n < N; n++) {
            uint32_t f = stream_get(qz + (size_t)g * zw, s->bits, n), z = s->fmt == NT_QFMT_GPTQ ? f + 1 : f;
            if (z > (uint32_t)tr->maxq) {
                free(zeros);
                return nt_fail(err,
                               "%s: tensor '%s.qzeros' (group %d, channel %d) holds zero point %u, outside 0..%d "
                               "(checkpoint_format %s%s)",
                               tz->file, R->base, g, n, z, tr->maxq, nt_qfmt_name(s->fmt),
                               s->fmt == NT_QFMT_GPTQ ? " stores zero-1" : "");
            }
            zeros[(size_t)g * N + n] = (uint8_t)z;
            all_sym = all_sym && (int)z == tr->sym_zero;
        }
    bool trivial = true; // g_idx[k] == k / group_size: no act-order permutation to keep
    const int32_t *gi = tg ? tg->data : NULL;
    for (int k = 0; gi && k < K && trivial; k++) trivial = gi[k] == (s->group_size > 0 ? k / s->group_size : 0);
    nt_qlinear *q = NULL;
    if (nt_qlinear_alloc(&q, N, K, s->bits, s->group_size, s->sym && all_sym, s->desc_act || !trivial, &e2)) {
        free(zeros);
        return nt_fail(err, "%s: quantized linear '%s': %s", R->file, R->base, e2.msg);
    }
    memcpy(q->qweight, tw->data, tw->nbytes); // K % 32 == 0: the same words, rows and bits as qformat.h's layout
    memcpy(q->scales, ts->data, ts->nbytes);
    if (q->zeros) memcpy(q->zeros, zeros, (size_t)G * N);
    free(zeros);
    if (gi) memcpy(q->g_idx, gi, (size_t)K * sizeof(int32_t));
    nt_qlinear *ok = NULL;
    if (finish(R, q, &ok, err)) return -1; // g_idx checked before the perm is built from it
    if (ok->perm) perm_from_g_idx(ok);
    *out = ok;
    return 0;
}

int nt_qfmt_read_qlinear(const nt_safetensors *st, const char *base, const nt_qfmt_spec *spec, int out, int in,
                         nt_qlinear **q, nt_err *err) {
    *q = NULL;
    reader R = {st, base, "checkpoint", ""};
    char name[320];
    snprintf(name, sizeof(name), "%s.qweight", base);
    const nt_st_tensor *tw = nt_st_find(st, name);
    if (!tw) return nt_fail(err, "quantized tensor '%s' not found", name);
    R.file = tw->file;
    const nt_qtraits *tr = nt_qtraits_get(spec->bits);
    if (!tr) return nt_fail(err, "%s: '%s': unsupported bit width %d", R.file, base, spec->bits);
    if (tw->dtype != NT_DT_I32 || tw->ndim != 2)
        return nt_fail(err, "%s: tensor '%s' is %s with %d dims, expected I32 (in/32*bits, out)", R.file, name,
                       nt_dtype_name(tw->dtype), tw->ndim);
    int N = out >= 0 ? out : (int)tw->shape[1], K = in;
    if (K < 0) { // from g_idx, or else from the qweight rows
        snprintf(name, sizeof(name), "%s.g_idx", base);
        const nt_st_tensor *tg = nt_st_find(st, name);
        K = tg && tg->ndim == 1 ? (int)tg->shape[0] : (int)(tw->shape[0] / spec->bits * 32);
    }
    bool gptq = spec->fmt != NT_QFMT_NORMTWEAK;
    if (gptq && K % 32 != 0)
        return nt_fail(err, "%s: quantized linear '%s': input dimension %d is not a multiple of 32, which GPTQ's "
                       "qweight (in/32*bits rows) needs", R.file, base, K);
    snprintf(R.what, sizeof(R.what), "%d-bit, group size %d, %d x %d", spec->bits, spec->group_size, N, K);
    bool failed = false;
    tw = get(&R, "qweight", NT_DT_I32, 2, (int64_t)nt_qpacks(K) * spec->bits, N, false, &failed, err);
    if (failed) return -1;
    return gptq ? read_gptq(&R, tw, spec, N, K, q, err) : read_normtweak(&R, tw, spec, N, K, q, err);
}

// ---------------------------------------------------------------------------------------------------- export
void nt_gptq_linear_free(nt_gptq_linear *g) {
    free(g->qweight);
    free(g->qzeros);
    free(g->scales);
    free(g->g_idx);
    memset(g, 0, sizeof(*g));
}

int nt_gptq_from_qlinear(nt_gptq_linear *g, const nt_qlinear *q, nt_qfmt fmt, nt_err *err) {
    memset(g, 0, sizeof(*g));
    if (fmt != NT_QFMT_GPTQ && fmt != NT_QFMT_GPTQ_V2) return nt_fail(err, "not a GPTQ format: %s", nt_qfmt_name(fmt));
    if (q->in % 32 != 0)
        return nt_fail(err, "input dimension %d is not a multiple of 32, which GPTQ's qweight (in/32*bits rows) "
                       "needs (AutoGPTQ, transformers and vLLM cannot load it)", q->in);
    if (q->out % 32 != 0)
        return nt_fail(err, "output dimension %d is not a multiple of 32, which GPTQ's qzeros (out/32*bits words "
                       "per group, as AutoGPTQ allocates them) need", q->out);
    const nt_qtraits *tr = nt_qtraits_get(q->bits);
    int N = q->out, K = q->in, G = q->n_groups, zw = N / 32 * q->bits;
    g->out = N, g->in = K, g->bits = q->bits, g->n_groups = G;
    size_t nw = (size_t)K / 32 * q->bits * N;
    g->qweight = malloc(nw * sizeof(int32_t));
    g->qzeros = calloc((size_t)G * zw, sizeof(int32_t));
    g->scales = malloc((size_t)G * N * sizeof(uint16_t));
    g->g_idx = malloc((size_t)K * sizeof(int32_t));
    if (!g->qweight || !g->qzeros || !g->scales || !g->g_idx) {
        nt_gptq_linear_free(g);
        return nt_fail(err, "out of memory for a %d x %d GPTQ linear", N, K);
    }
    memcpy(g->qweight, q->qweight, nw * sizeof(int32_t)); // K % 32 == 0: no padded pack, identical layout
    memcpy(g->scales, q->scales, (size_t)G * N * sizeof(uint16_t));
    memcpy(g->g_idx, q->g_idx, (size_t)K * sizeof(int32_t));
    for (int gr = 0; gr < G; gr++)
        for (int n = 0; n < N; n++) {
            int z = q->zeros ? q->zeros[(size_t)gr * N + n] : tr->sym_zero;
            if (fmt == NT_QFMT_GPTQ && z == 0) {
                nt_gptq_linear_free(g);
                return nt_fail(err, "zero point 0 (group %d, channel %d) cannot be stored in checkpoint_format gptq, "
                               "which stores zero-1; export with --format gptq_v2", gr, n);
            }
            stream_set((uint32_t *)g->qzeros + (size_t)gr * zw, q->bits, n,
                       (uint32_t)(fmt == NT_QFMT_GPTQ ? z - 1 : z));
        }
    return 0;
}

// ------------------------------------------------------------------------------------------------ tensor lists
static int push(nt_st_list *L, const char *name, nt_dtype dt, int ndim, int64_t d0, int64_t d1, const void *data,
                size_t nbytes) {
    int64_t shape[2] = {d0, d1};
    return nt_st_list_add(L, name, dt, ndim, shape, data, nbytes);
}

int nt_gptq_list_add(nt_st_list *L, const char *base, const nt_gptq_linear *g) {
    char nm[320];
    int64_t N = g->out, G = g->n_groups, rows = (int64_t)g->in / 32 * g->bits, zw = N / 32 * g->bits;
    snprintf(nm, sizeof(nm), "%s.qweight", base);
    if (push(L, nm, NT_DT_I32, 2, rows, N, g->qweight, (size_t)(rows * N) * 4)) return -1;
    snprintf(nm, sizeof(nm), "%s.qzeros", base);
    if (push(L, nm, NT_DT_I32, 2, G, zw, g->qzeros, (size_t)(G * zw) * 4)) return -1;
    snprintf(nm, sizeof(nm), "%s.scales", base);
    if (push(L, nm, NT_DT_F16, 2, G, N, g->scales, (size_t)(G * N) * 2)) return -1;
    snprintf(nm, sizeof(nm), "%s.g_idx", base);
    return push(L, nm, NT_DT_I32, 1, g->in, 0, g->g_idx, (size_t)g->in * 4);
}

int nt_qlinear_list_add(nt_st_list *L, const char *base, const nt_qlinear *q) {
    char nm[300];
    int64_t K = q->in, N = q->out, G = q->n_groups;
    int64_t sw[2] = {(int64_t)nt_qpacks(q->in) * q->bits, N}, sg[2] = {G, N}, sk[1] = {K};
    snprintf(nm, sizeof(nm), "%s.qweight", base);
    if (nt_st_list_add(L, nm, NT_DT_I32, 2, sw, q->qweight, (size_t)(sw[0] * N) * 4)) return -1;
    snprintf(nm, sizeof(nm), "%s.scales", base);
    if (nt_st_list_add(L, nm, NT_DT_F16, 2, sg, q->scales, (size_t)(G * N) * 2)) return -1;
    if (q->zeros) {
        snprintf(nm, sizeof(nm), "%s.zeros", base);
        if (nt_st_list_add(L, nm, NT_DT_U8, 2, sg, q->zeros, (size_t)(G * N))) return -1;
    }
    snprintf(nm, sizeof(nm), "%s.g_idx", base);
    if (nt_st_list_add(L, nm, NT_DT_I32, 1, sk, q->g_idx, (size_t)K * 4)) return -1;
    if (q->perm) {
        snprintf(nm, sizeof(nm), "%s.perm", base);
        if (nt_st_list_add(L, nm, NT_DT_I32, 1, sk, q->perm, (size_t)K * 4)) return -1;
    }
    return 0;
}

bool nt_qtensor_is_part(const nt_safetensors *st, const char *name) {
    const char *dot = strrchr(name, '.');
    if (!dot) return false;
    const char *parts[] = {"scales", "zeros", "qzeros", "g_idx", "perm"};
    bool part = false;
    for (size_t i = 0; i < sizeof(parts) / sizeof(parts[0]); i++) part = part || strcmp(dot + 1, parts[i]) == 0;
    char qw[320];
    snprintf(qw, sizeof(qw), "%.*s.qweight", (int)(dot - name), name);
    return part && nt_st_find(st, qw) != NULL;
}

// ---------------------------------------------------------------------------------------------------- fusing
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

