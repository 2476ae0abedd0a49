// kernels_ref.c: the CPU side of kernels/gpu.h, reference version (scalar, plain, built with or without CUDA):
// the scalar references the CUDA kernels are tested against, the load-time layout the kernels read (K reordered
// by group and padded to packs, for act-order) and a CPU emulation of the kernels' arithmetic over that layout.
#include <math.h>
#include <string.h>

#include "gpu.h"
#include "qinterleave.h"

// ------------------------------------------------------------------------------------------ scalar reads
// Code of column n, input k, read straight from qformat.h's description: pack c = k / 32 of column n is the bit
// stream qweight[c*bits + 0][n] | qweight[c*bits + 1][n] << 32 | ..., value j = k % 32 at bit bits*j.
static int ref_code(const uint32_t *qweight, int N, int bits, int n, int k) {
    int c = k / NT_QPACK, j = k % NT_QPACK, bit = bits * j, w = bit / 32, off = bit % 32;
    uint64_t lo = qweight[((size_t)c * bits + w) * N + n];
    if (off + bits > 32) lo |= (uint64_t)qweight[((size_t)c * bits + w + 1) * N + n] << 32;
    return (int)((lo >> off) & ((1u << bits) - 1));
}

static float ref_weight(const nt_qlinear *q, int n, int k, int sym_zero) {
    size_t gi = (size_t)q->g_idx[k] * q->out + n;
    float zero = q->zeros ? (float)q->zeros[gi] : (float)sym_zero;
    float scale = nt_f16_to_f32(q->scales[gi]);
    return scale * ((float)ref_code(q->qweight, q->out, q->bits, n, k) - zero); // qformat.h's formula, in fp32
}

void nt_ref_qgemm_f32(const nt_qlinear *q, const float *X, int M, bool w_f16, float *Y) {
    const int N = q->out, K = q->in, sym_zero = 1 << (q->bits - 1);
#pragma omp parallel
    {
        float *w = malloc((size_t)K * sizeof *w); // (K) one dequantized row of W
        NT_ASSERT(w != NULL);
#pragma omp for schedule(static)
        for (int n = 0; n < N; n++) {
            for (int k = 0; k < K; k++) {
                w[k] = ref_weight(q, n, k, sym_zero);
                if (w_f16) w[k] = nt_f16_to_f32(nt_f32_to_f16(w[k]));
            }
            for (int m = 0; m < M; m++) {
                double acc = 0.0;
                for (int k = 0; k < K; k++) acc += (double)X[(size_t)m * K + k] * w[k];
                Y[(size_t)m * N + n] = (float)acc;
            }
        }
        free(w);
    }
}

void nt_ref_qgemm(const nt_qlinear *q, const uint16_t *X, int M, bool w_f16, float *Y) {
    size_t n = (size_t)M * q->in;
    float *x = malloc(n * sizeof *x);
    NT_ASSERT(x != NULL);
    for (size_t i = 0; i < n; i++) x[i] = nt_f16_to_f32(X[i]);
    nt_ref_qgemm_f32(q, x, M, w_f16, Y);
    free(x);
}

void nt_ref_gemm_f16(const uint16_t *X, const uint16_t *W, int M, int N, int K, float *Y) {
#pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++)
        for (int m = 0; m < M; m++) {
            double acc = 0.0;
            for (int k = 0; k < K; k++)
                acc += (double)nt_f16_to_f32(X[(size_t)m * K + k]) * nt_f16_to_f32(W[(size_t)n * K + k]);
            Y[(size_t)m * N + n] = (float)acc;
        }
}

void nt_ref_gemm_i8(const int8_t *Xq, const int8_t *Wq, const float *sx, const float *sw, int M, int N, int K,
                    float *Y) {
#pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++)
        for (int m = 0; m < M; m++) {
            int64_t acc = 0;
            for (int k = 0; k < K; k++) acc += (int64_t)Xq[(size_t)m * K + k] * Wq[(size_t)n * K + k];
            NT_ASSERT(acc >= INT32_MIN && acc <= INT32_MAX);
            Y[(size_t)m * N + n] = (sx[m] * sw[n]) * (float)(int32_t)acc;
        }
}

// ------------------------------------------------------------------------------------------ kernel choice

const char *nt_qkernel_name(nt_qkernel k) {
    switch (k) {
    case NT_QKERNEL_AUTO: return "auto";
    case NT_QKERNEL_GEMV: return "gemv";
    case NT_QKERNEL_MMA: return "mma";
    case NT_QKERNEL_DENSE: return "dense";
    }
    return "?";
}

nt_qkernel nt_qkernel_pick(int M) {
    return M <= NT_QGEMV_MAX_M ? NT_QKERNEL_GEMV : M < NT_QDENSE_MIN_M ? NT_QKERNEL_MMA : NT_QKERNEL_DENSE;
}

// ---------------------------------------------------------------------------------------- load-time layout

void nt_qgemm_layout_free(nt_qgemm_layout *lay) {
    if (!lay) return;
    free(lay->pack_group);
    free(lay->kmap);
    free(lay->qi);
    free(lay->qs);
    free(lay->qz);
    memset(lay, 0, sizeof *lay);
}

int nt_qgemm_layout_make(nt_qgemm_layout *lay, const nt_qlinear *q, nt_err *err) {
    memset(lay, 0, sizeof *lay);
    if (nt_qlinear_validate(q, err)) return -1;
    return nt_qgemm_layout_build(lay, q, err);
}

// The largest of 4, 2, 1 packs that divides every pack index where the group changes.
static int scale_step(const int32_t *pack_group, int npacks) {
    int spp = 4;
    for (int p = 1; p < npacks; p++)
        while (pack_group[p] != pack_group[p - 1] && p % spp) spp /= 2;
    return spp;
}

// Canonical codes of q with K in kernel order (kmap; NULL: as is): (npacks * bits, N), padding code 0.
static uint32_t *reorder_k(const nt_qlinear *q, const int32_t *kmap, int npacks) {
    const nt_qtraits *t = nt_qtraits_get(q->bits);
    const int N = q->out, K = q->in;
    uint32_t *out = calloc((size_t)npacks * q->bits * N, sizeof *out);
    if (!out) return NULL;
    if (!kmap) {
        memcpy(out, q->qweight, (size_t)nt_qpacks(K) * q->bits * N * sizeof *out);
        return out;
    }
    int ok = 1;
#pragma omp parallel
    {
        uint8_t *col = malloc((size_t)nt_qpacks(K) * NT_QPACK), pack[NT_QPACK];
        if (!col) {
#pragma omp atomic write
            ok = 0;
        }
#pragma omp for schedule(static)
        for (int n = 0; n < N; n++) {
            if (!col) continue;
            for (int c = 0; c < nt_qpacks(K); c++)
                t->unpack(q->qweight + (size_t)c * q->bits * N + n, (size_t)N, col + (size_t)c * NT_QPACK);
            for (int p = 0; p < npacks; p++) {
                for (int j = 0; j < NT_QPACK; j++) {
                    int k = kmap[p * NT_QPACK + j];
                    pack[j] = k >= 0 ? col[k] : 0; // padding: code 0, meeting a zero activation
                }
                t->pack(pack, out + (size_t)p * q->bits * N + n, (size_t)N);
            }
        }
        free(col);
    }
    if (!ok) {
        free(out);
        return NULL;
    }
    return out;
}

int nt_qgemm_layout_build(nt_qgemm_layout *lay, const nt_qlinear *q, nt_err *err) {
    memset(lay, 0, sizeof *lay);
    const nt_qtraits *t = nt_qtraits_get(q->bits);
    NT_ASSERT(t != NULL);
    const int N = q->out, K = q->in, G = q->n_groups;
    lay->N = N;
    lay->K = K;
    lay->tiles = nt_qi_tiles(N);
    lay->bits = q->bits;
    lay->group_size = q->group_size;
    lay->n_groups = G;
    lay->sym_zero = t->sym_zero;

    // g_idx[k] == k / group_size: packs never straddle groups (group sizes are 32-multiples), nothing moves
    bool trivial = true;
    for (int k = 0; k < K && trivial; k++) trivial = q->g_idx[k] == (q->group_size > 0 ? k / q->group_size : 0);
    if (trivial) {
        lay->npacks = nt_qpacks(K);
        lay->Kp = lay->npacks * NT_QPACK;
        lay->pack_group = malloc((size_t)lay->npacks * sizeof *lay->pack_group);
        if (!lay->pack_group) return nt_fail(err, "out of memory for the kernel layout");
        for (int p = 0; p < lay->npacks; p++)
            lay->pack_group[p] = q->group_size > 0 ? p * NT_QPACK / q->group_size : 0;
    } else {
        // Stable counting sort of the columns by group, each group padded to whole packs.
        int *count = calloc((size_t)G + 1, sizeof *count), *start = calloc((size_t)G + 1, sizeof *start);
        if (!count || !start) {
            free(count);
            free(start);
            return nt_fail(err, "out of memory for the kernel layout");
        }
        for (int k = 0; k < K; k++) count[q->g_idx[k]]++;
        int npacks = 0;
        for (int g = 0; g < G; g++) {
            start[g] = npacks * NT_QPACK;
            npacks += (count[g] + NT_QPACK - 1) / NT_QPACK;
        }
        lay->npacks = npacks;
        lay->Kp = npacks * NT_QPACK;
        lay->kmap = malloc((size_t)lay->Kp * sizeof *lay->kmap);
        lay->pack_group = malloc((size_t)npacks * sizeof *lay->pack_group);
        if (!lay->kmap || !lay->pack_group) {
            free(count);
            free(start);
            nt_qgemm_layout_free(lay);
            return nt_fail(err, "out of memory for the kernel layout (%d packs)", npacks);
        }
        for (int i = 0; i < lay->Kp; i++) lay->kmap[i] = -1;
        for (int g = 0; g < G; g++) {
            for (int p = start[g] / NT_QPACK; p < (start[g] + count[g] + NT_QPACK - 1) / NT_QPACK; p++)
                lay->pack_group[p] = g;
            count[g] = 0; // reused as the fill position
        }
        for (int k = 0; k < K; k++) {
            int g = q->g_idx[k];
            lay->kmap[start[g] + count[g]++] = k;
        }
        free(count);
        free(start);
        // A group with no column owns no pack.
    }
    lay->spp = scale_step(lay->pack_group, lay->npacks);

    // The codes in kernel K order, then interleaved; the scales and zeros in the per-lane order.
    uint32_t *canon = reorder_k(q, lay->kmap, lay->npacks);
    size_t nqi = (size_t)lay->npacks * lay->tiles * 32 * q->bits, nmeta = (size_t)G * lay->tiles * 32;
    lay->qi = malloc(nqi * sizeof *lay->qi);
    lay->qs = malloc(nmeta * sizeof *lay->qs);
    lay->qz = malloc(nmeta);
    if (!canon || !lay->qi || !lay->qs || !lay->qz) {
        free(canon);
        nt_qgemm_layout_free(lay);
        return nt_fail(err, "out of memory for the kernel layout (%d packs x %d columns)", lay->npacks, N);
    }
    nt_qi_interleave(canon, N, lay->npacks, q->bits, lay->qi);
    free(canon);
    nt_qi_meta(q->scales, q->zeros, t->sym_zero, G, N, lay->qs, lay->qz);
    return 0;
}

void nt_ref_qgemm_layout(const nt_qgemm_layout *lay, const uint16_t *X, int M, float *Y) {
    const int N = lay->N, K = lay->K, bits = lay->bits;
    const float magic = 8388608.0f; // 2^23: (2^23 + q) - (2^23 + zero) is q - zero exactly in fp32
#pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++)
        for (int m = 0; m < M; m++) {
            // the channel's entry in the per-lane scale/zero order: [G][tile][g][c], n = 32 tile + g + 8 c
            const int tile = n / NT_QI_TILE_N, g = n % 8, c = (n % NT_QI_TILE_N) / 8;
            float acc = 0.0f;
            for (int p = 0; p < lay->npacks; p++) {
                size_t mi = (((size_t)lay->pack_group[p] * lay->tiles + tile) * 8 + g) * 4 + c;
                float zb = magic + (float)lay->qz[mi];
                float part = 0.0f;
                for (int j = 0; j < NT_QPACK; j++) {
                    int kp = p * NT_QPACK + j, k = lay->kmap ? lay->kmap[kp] : kp;
                    float x = k >= 0 && k < K ? nt_f16_to_f32(X[(size_t)m * K + k]) : 0.0f;
                    float f = (magic + (float)nt_qi_code(lay->qi, N, bits, n, kp)) - zb;
                    part = fmaf(x, f, part);
                }
                acc = fmaf(nt_f16_to_f32(lay->qs[mi]), part, acc);
            }
            Y[(size_t)m * N + n] = acc;
        }
}
