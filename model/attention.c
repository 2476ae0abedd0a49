// attention.c: causal softmax attention on the CPU (see attention.h).
//
// The softmax's exponential is attn_exp below, not libm's expf: plain float arithmetic that the compiler
// vectorizes (libm's expf is a call per element, ~20% of a long-context forward), and that gives the same
// value for an element wherever it falls in a row (a vectorized libm call and its scalar tail would not), so
// probabilities do not depend on a row's length or alignment: prefill and decode, and the training pass's
// recomputation, agree. Its error is within 2 ulp of exp on the softmax's range (x <= 0). Each row's max is
// taken over its own keys and its sum is accumulated in double in a fixed order (8 lanes by key index).
#include "attention.h"

#include <cblas.h>
#include <math.h>
#include <omp.h>
#include <stdint.h>

// e^x for x <= 0 (the softmax's exponent, score - row max): x = k ln2 + r, |r| <= ln2 / 2, e^r by its Taylor
// series to r^7 (truncation < 6e-9 relative, below float's 6e-8), times 2^k put in the exponent bits. Below
// -87 (e^x < 2^-125, nothing next to the row's maximum term 1) the result is e^-87.
static inline float attn_exp(float x) {
    x = x < -87.0f ? -87.0f : x;
    const float shift = 12582912.0f;                // 1.5 * 2^23: adding it rounds to an integer
    float kf = (x * 1.44269504088896341f + shift) - shift; // round(x / ln2)
    float r = x - kf * 0.693145751953125f;           // ln2 split in a part exact in float and the rest
    r = r - kf * 1.4286068202862268e-06f;
    float p = 1.0f / 5040.0f;
    p = p * r + 1.0f / 720.0f;
    p = p * r + 1.0f / 120.0f;
    p = p * r + 1.0f / 24.0f;
    p = p * r + 1.0f / 6.0f;
    p = p * r + 0.5f;
    p = p * r + 1.0f;
    p = p * r + 1.0f;
    union {
        int32_t i;
        float f;
    } scale = {.i = ((int32_t)kf + 127) << 23}; // 2^k, k in -126..0
    return p * scale.f;
}

size_t nt_attn_scratch_floats(int max_ctx, int n_threads) {
    return (size_t)(n_threads > 0 ? n_threads : 1) * NT_ATTN_BLOCK * (size_t)(max_ctx > 0 ? max_ctx : 1);
}

void nt_attn_probs(const nt_attn_dims *d, int h, const float *q, int ldq, const float *k, int ldk, int t0, int t1,
                   int pos0, float *P, int ldp, bool save, float *smax, float *sinv) {
    int hd = d->head_dim, kh = h / (d->n_heads / d->n_kv_heads), e = pos0 + t1;
    float scale = 1.0f / sqrtf((float)hd);
    // scores of keys 0..e-1 only: the causal triangle plus the block's own diagonal
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, t1 - t0, e, hd, scale, q + (size_t)t0 * ldq + (size_t)h * hd,
                ldq, k + (size_t)kh * hd, ldk, 0.0f, P, ldp);
    float slope = d->alibi ? d->alibi[h] : 0.0f;
    for (int t = t0; t < t1; t++) {
        float *row = P + (size_t)(t - t0) * ldp;
        int last = pos0 + t; // keys 0..last
        if (d->alibi) {
#pragma omp simd
            for (int j = 0; j <= last; j++) row[j] += slope * (float)(j - last);
        }
        float mx = row[0];
        if (save) {
#pragma omp simd reduction(max : mx)
            for (int j = 0; j <= last; j++) mx = row[j] > mx ? row[j] : mx;
        } else {
            mx = smax[t];
        }
#pragma omp simd
        for (int j = 0; j <= last; j++) row[j] = attn_exp(row[j] - mx);
        float inv;
        if (save) {
            double lane[8] = {0};
            int j = 0;
            for (; j + 8 <= last + 1; j += 8)
                for (int u = 0; u < 8; u++) lane[u] += (double)row[j + u];
            for (; j <= last; j++) lane[j % 8] += (double)row[j];
            double sum = ((lane[0] + lane[4]) + (lane[1] + lane[5])) + ((lane[2] + lane[6]) + (lane[3] + lane[7]));
            inv = (float)(1.0 / sum);
            if (smax) smax[t] = mx;
            if (sinv) sinv[t] = inv;
        } else {
            inv = sinv[t];
        }
        for (int j = 0; j <= last; j++) row[j] *= inv;
        for (int j = last + 1; j < e; j++) row[j] = 0.0f;
    }
}

void nt_attn_forward(const nt_attn_dims *d, const float *q, const float *k, const float *v, int n, int n_seq,
                     int pos0, float *out, float *scratch, int n_threads, float *smax, float *sinv) {
    int H = d->n_heads, hd = d->head_dim, qd = H * hd, kvd = d->n_kv_heads * hd, group = H / d->n_kv_heads;
    int nb = (n + NT_ATTN_BLOCK - 1) / NT_ATTN_BLOCK, ldq = n_seq * qd, ldk = n_seq * kvd;
    long sh = (long)n_seq * H, tasks = sh * nb;
    size_t per = (size_t)NT_ATTN_BLOCK * (size_t)(pos0 + n);
    // multiply-adds: a decoded token against a short context is too little work to wake threads for
    double work = (double)sh * n * (pos0 + 0.5 * n) * hd * 2.0;
    int nt = work < 2e5 || tasks < 2 ? 1 : (n_threads < tasks ? n_threads : (int)tasks);
#pragma omp parallel num_threads(nt) if (nt > 1)
    {
        float *P = scratch + (size_t)omp_get_thread_num() * per;
        // the largest blocks (the last queries, the most keys) first: dynamic scheduling then balances the tail
#pragma omp for schedule(dynamic, 1)
        for (long task = 0; task < tasks; task++) {
            int blk = nb - 1 - (int)(task / sh), rest = (int)(task % sh), b = rest / H, h = rest % H;
            int t0 = blk * NT_ATTN_BLOCK, t1 = t0 + NT_ATTN_BLOCK < n ? t0 + NT_ATTN_BLOCK : n, e = pos0 + t1;
            const float *qb = q + (size_t)b * qd, *kb = k + (size_t)b * kvd, *vb = v + (size_t)b * kvd;
            nt_attn_probs(d, h, qb, ldq, kb, ldk, t0, t1, pos0, P, e, true, smax ? smax + (size_t)h * n : NULL,
                          sinv ? sinv + (size_t)h * n : NULL);
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, t1 - t0, hd, e, 1.0f, P, e,
                        vb + (size_t)(h / group) * hd, ldk, 0.0f, out + (size_t)b * qd + (size_t)t0 * ldq + (size_t)h * hd,
                        ldq);
        }
    }
}
