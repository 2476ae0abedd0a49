// pack.c: the packed weight format of quant.h, reference version: the traits table (pack/unpack of one 32-value
// pack per bit width), format checks, nt_qlinear alloc/free/validate, pack/unpack of whole matrices and
// dequantization. Scalar and plain; the CUDA kernels are the fast readers of this layout.
#include <string.h>

#include "qformat.h"

// ----------------------------------------------------------------------------------------- one pack of 32
// Value j of a pack sits at bit bits*j of the little-endian stream w[0] | w[stride] << 32 | ...; with bits a
// compile-time constant in each wrapper below, the compiler resolves the word/offset arithmetic and the straddle
// test (only 3 bits ever straddles: values 10 and 21).
static inline void pack_stream(const uint8_t *q, uint32_t *w, size_t stride, int bits) {
    uint32_t words[NT_QBITS_MAX] = {0};
    for (int j = 0; j < NT_QPACK; j++) {
        int bit = bits * j, wi = bit / 32, off = bit % 32;
        words[wi] |= (uint32_t)q[j] << off;
        if (off + bits > 32) words[wi + 1] |= (uint32_t)q[j] >> (32 - off);
    }
    for (int i = 0; i < bits; i++) w[i * stride] = words[i];
}

static inline void unpack_stream(const uint32_t *w, size_t stride, uint8_t *q, int bits) {
    uint32_t words[NT_QBITS_MAX + 1] = {0};
    for (int i = 0; i < bits; i++) words[i] = w[i * stride];
    uint32_t mask = (1u << bits) - 1;
    for (int j = 0; j < NT_QPACK; j++) {
        int bit = bits * j, wi = bit / 32, off = bit % 32;
        uint32_t v = words[wi] >> off;
        if (off + bits > 32) v |= words[wi + 1] << (32 - off);
        q[j] = (uint8_t)(v & mask);
    }
}

#define NT_PACK_FNS(b)                                                                                         \
    static void pack_##b(const uint8_t *q, uint32_t *w, size_t stride) { pack_stream(q, w, stride, b); }      \
    static void unpack_##b(const uint32_t *w, size_t stride, uint8_t *q) { unpack_stream(w, stride, q, b); }
NT_PACK_FNS(2)
NT_PACK_FNS(3)
NT_PACK_FNS(4)
NT_PACK_FNS(8)
#undef NT_PACK_FNS

static const nt_qtraits g_traits[] = {
    {2, 3, 2, 16, 2, pack_2, unpack_2},
    {3, 7, 3, 0, 4, pack_3, unpack_3},
    {4, 15, 4, 8, 8, pack_4, unpack_4},
    {8, 255, 8, 4, 128, pack_8, unpack_8},
};

const nt_qtraits *nt_qtraits_get(int bits) {
    for (size_t i = 0; i < sizeof g_traits / sizeof g_traits[0]; i++)
        if (g_traits[i].bits == bits) return &g_traits[i];
    return NULL;
}

// ------------------------------------------------------------------------------------------------- checks
int nt_qformat_check(int out, int in, int bits, int group_size, nt_err *err) {
    if (!nt_qtraits_get(bits)) return nt_fail(err, "unsupported bit width %d (supported: 2, 3, 4, 8)", bits);
    if (group_size != -1 && group_size != 32 && group_size != 64 && group_size != 128)
        return nt_fail(err, "unsupported group size %d (supported: 32, 64, 128, or -1 for per channel)", group_size);
    if (out < 1 || in < 1) return nt_fail(err, "empty weight matrix (%d x %d)", out, in);
    return 0;
}

// ---------------------------------------------------------------------------------------------- lifecycle
int nt_qlinear_alloc(nt_qlinear **out_q, int out, int in, int bits, int group_size, bool sym, bool act_order,
                     nt_err *err) {
    *out_q = NULL;
    if (nt_qformat_check(out, in, bits, group_size, err)) return -1;
    nt_qlinear *q = calloc(1, sizeof *q);
    if (!q) return nt_fail(err, "out of memory for a %d x %d quantized linear", out, in);
    q->out = out;
    q->in = in;
    q->bits = bits;
    q->group_size = group_size;
    q->n_groups = nt_qgroups(in, group_size);
    q->sym = sym;
    size_t nw = (size_t)nt_qpacks(in) * bits * out, ng = (size_t)q->n_groups * out;
    q->qweight = calloc(nw, sizeof *q->qweight);
    q->scales = calloc(ng, sizeof *q->scales);
    q->zeros = sym ? NULL : calloc(ng, 1);
    q->g_idx = malloc((size_t)in * sizeof *q->g_idx);
    q->perm = act_order ? malloc((size_t)in * sizeof *q->perm) : NULL;
    if (!q->qweight || !q->scales || (!sym && !q->zeros) || !q->g_idx || (act_order && !q->perm)) {
        nt_qlinear_free(&q);
        return nt_fail(err, "out of memory for a %d x %d quantized linear", out, in);
    }
    for (int k = 0; k < in; k++) {
        q->g_idx[k] = group_size > 0 ? k / group_size : 0;
        if (q->perm) q->perm[k] = k;
    }
    *out_q = q;
    return 0;
}

void nt_qlinear_free(nt_qlinear **q) {
    if (!q || !*q) return;
    free((*q)->qweight);
    free((*q)->scales);
    free((*q)->zeros);
    free((*q)->g_idx);
    free((*q)->perm);
    free(*q);
    *q = NULL;
}

int nt_qlinear_validate(const nt_qlinear *q, nt_err *err) {
    if (nt_qformat_check(q->out, q->in, q->bits, q->group_size, err)) return -1;
    int ng = nt_qgroups(q->in, q->group_size);
    if (q->n_groups != ng) return nt_fail(err, "n_groups %d, expected %d", q->n_groups, ng);
    if (!q->qweight || !q->scales || !q->g_idx || (q->sym != (q->zeros == NULL)))
        return nt_fail(err, "quantized linear is missing an array (or has zeros although symmetric)");
    int maxq = nt_qtraits_get(q->bits)->maxq;
    size_t n = (size_t)q->n_groups * q->out;
    for (size_t i = 0; i < n; i++) {
        float s = nt_f16_to_f32(q->scales[i]);
        if (!isfinite(s) || s == 0.0f)
            return nt_fail(err, "scale %zu (group %zu, channel %zu) is %g", i, i / q->out, i % q->out, s);
        if (q->zeros && q->zeros[i] > maxq)
            return nt_fail(err, "zero point %d of group %zu, channel %zu exceeds %d", q->zeros[i], i / q->out,
                           i % q->out, maxq);
    }
    for (int k = 0; k < q->in; k++)
        if (q->g_idx[k] < 0 || q->g_idx[k] >= q->n_groups)
            return nt_fail(err, "g_idx[%d] = %d is outside 0..%d", k, q->g_idx[k], q->n_groups - 1);
    if (q->perm) {
        uint8_t *seen = calloc((size_t)q->in, 1);
        if (!seen) return nt_fail(err, "out of memory");
        int bad = -1;
        for (int k = 0; k < q->in && bad < 0; k++) {
            int p = q->perm[k];
            if (p < 0 || p >= q->in || seen[p]) bad = k;
            else seen[p] = 1;
        }
        free(seen);
        if (bad >= 0) return nt_fail(err, "perm is not a permutation of 0..%d (entry %d)", q->in - 1, bad);
    }
    return 0;
}

size_t nt_qlinear_bytes(const nt_qlinear *q) {
    size_t ng = (size_t)q->n_groups * q->out;
    return (size_t)nt_qpacks(q->in) * q->bits * q->out * 4 + ng * 2 + (q->zeros ? ng : 0) + (size_t)q->in * 4;
}

int nt_qlinear_set_params(nt_qlinear *q, const float *scale, const float *zero, nt_err *err) {
    int maxq = nt_qtraits_get(q->bits)->maxq;
    size_t n = (size_t)q->n_groups * q->out;
    for (size_t i = 0; i < n; i++) {
        uint16_t h = nt_f32_to_f16(scale[i]);
        float back = nt_f16_to_f32(h);
        if (!isfinite(back) || back == 0.0f)
            return nt_fail(err, "scale %g of group %zu, channel %zu does not fit fp16", scale[i], i / q->out,
                           i % q->out);
        q->scales[i] = h;
        if (q->zeros) {
            float z = zero[i];
            if (!(z >= 0.0f && z <= (float)maxq && z == rintf(z)))
                return nt_fail(err, "zero point %g of group %zu, channel %zu is not an integer in 0..%d", z,
                               i / q->out, i % q->out, maxq);
            q->zeros[i] = (uint8_t)z;
        }
    }
    return 0;
}

// ----------------------------------------------------------------------------------------- whole matrices
void nt_qlinear_pack(nt_qlinear *q, const uint8_t *codes) {
    const nt_qtraits *t = nt_qtraits_get(q->bits);
    NT_ASSERT(t != NULL);
    const int N = q->out, K = q->in, npack = nt_qpacks(K);
#pragma omp parallel for schedule(static) if ((size_t)N * K >= (1u << 20))
    for (int n = 0; n < N; n++) {
        const uint8_t *row = codes + (size_t)n * K;
        for (int c = 0; c < npack; c++) {
            uint8_t pack[NT_QPACK] = {0}; // a last, partial pack is padded with zero codes
            int len = K - c * NT_QPACK < NT_QPACK ? K - c * NT_QPACK : NT_QPACK;
            for (int j = 0; j < len; j++) NT_ASSERT(row[c * NT_QPACK + j] <= t->maxq);
            memcpy(pack, row + (size_t)c * NT_QPACK, (size_t)len);
            t->pack(pack, q->qweight + (size_t)c * t->words_per_pack * N + n, (size_t)N);
        }
    }
}

void nt_qlinear_unpack(const nt_qlinear *q, uint8_t *codes) {
    const nt_qtraits *t = nt_qtraits_get(q->bits);
    NT_ASSERT(t != NULL);
    const int N = q->out, K = q->in, npack = nt_qpacks(K);
#pragma omp parallel for schedule(static) if ((size_t)N * K >= (1u << 20))
    for (int n = 0; n < N; n++)
        for (int c = 0; c < npack; c++) {
            uint8_t pack[NT_QPACK];
            int len = K - c * NT_QPACK < NT_QPACK ? K - c * NT_QPACK : NT_QPACK;
            t->unpack(q->qweight + (size_t)c * t->words_per_pack * N + n, (size_t)N, pack);
            memcpy(codes + (size_t)n * K + (size_t)c * NT_QPACK, pack, (size_t)len);
        }
}

void nt_qlinear_dequantize(const nt_qlinear *q, float *W) {
    const nt_qtraits *t = nt_qtraits_get(q->bits);
    NT_ASSERT(t != NULL);
    const int N = q->out, K = q->in, npack = nt_qpacks(K);
#pragma omp parallel for schedule(static) if ((size_t)N * K >= (1u << 20))
    for (int n = 0; n < N; n++) {
        uint8_t codes[NT_QPACK];
        float *row = W + (size_t)n * K;
        for (int c = 0; c < npack; c++) {
            t->unpack(q->qweight + (size_t)c * t->words_per_pack * N + n, (size_t)N, codes);
            for (int j = 0; j < NT_QPACK && c * NT_QPACK + j < K; j++) {
                int k = c * NT_QPACK + j;
                size_t gi = (size_t)q->g_idx[k] * N + n;
                float zero = q->zeros ? (float)q->zeros[gi] : (float)t->sym_zero;
                row[k] = nt_quant_dequant(codes[j], nt_f16_to_f32(q->scales[gi]), zero);
            }
        }
    }
}
