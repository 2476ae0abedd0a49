// test_attention.c: the causal attention kernel (model/attention.c) against the computation it replaced:
// scores for every key of the context, the upper triangle masked, softmax, times the values — written here
// in double, one query at a time. Shapes cover multi-head and grouped-query heads, ALiBi, a block of queries
// that is not a multiple of the kernel's 64-row blocks, a cached prefix (pos0 > 0), decoding (n = 1) and
// sequences batched in lockstep. Also: the result does not depend on the thread count, and the training
// pass's recomputation (nt_attn_probs from the saved max and 1/sum) gives the forward's probabilities bit for
// bit.
#include <criterion/criterion.h>
#include <math.h>
#include <omp.h>
#include <string.h>

#include "attention.h"
#include "testutil.h"

// Tolerance |a - b| <= ATOL + RTOL |ref| on an output element. The kernel is fp32: a score is a dot product of
// head_dim <= 32 terms of size ~1 (rounding ~sqrt(32) * 6e-8 = 3e-7 typical), the exponential is within 2 ulp,
// the sum of exponentials is in double, and an output is a fp32 sum of <= 230 products p_j v_j with sum p_j = 1,
// |v| <~ 3, whose rounding errors add up like a random walk: ~sqrt(230) * 6e-8 * 3 = 3e-6 (4e-7 measured).
// 1e-5 leaves a margin of 3 over that; a key let through or dropped at the causal edge moves an output by ~1/L
// >= 4e-3.
#define ATOL 1e-5
#define RTOL 1e-5

typedef struct {
    int H, KV, hd, n, pos0, n_seq;
    bool alibi;
} shape;

// The old path, in double: for query (t, b) at position pos0 + t, the scores of ALL keys 0..pos0+n-1, those past
// the query's position masked to -inf, softmax, then the weighted sum of values.
static void reference(const shape *s, const float *alibi, const float *q, const float *k, const float *v, double *out) {
    int qd = s->H * s->hd, kvd = s->KV * s->hd, L = s->pos0 + s->n, group = s->H / s->KV;
    double *sc = malloc((size_t)L * sizeof(double));
    for (int t = 0; t < s->n; t++)
        for (int b = 0; b < s->n_seq; b++)
            for (int h = 0; h < s->H; h++) {
                const float *qr = q + ((size_t)t * s->n_seq + b) * qd + (size_t)h * s->hd;
                int last = s->pos0 + t;
                double mx = -INFINITY;
                for (int j = 0; j < L; j++) {
                    const float *kr = k + ((size_t)j * s->n_seq + b) * kvd + (size_t)(h / group) * s->hd;
                    double d = 0.0;
                    for (int i = 0; i < s->hd; i++) d += (double)qr[i] * kr[i];
                    d /= sqrt((double)s->hd);
                    if (alibi) d += (double)alibi[h] * (j - last);
                    sc[j] = j <= last ? d : -INFINITY;
                    if (sc[j] > mx) mx = sc[j];
                }
                double sum = 0.0;
                for (int j = 0; j < L; j++) sum += sc[j] = exp(sc[j] - mx);
                double *o = out + ((size_t)t * s->n_seq + b) * qd + (size_t)h * s->hd;
                for (int i = 0; i < s->hd; i++) {
                    double a = 0.0;
                    for (int j = 0; j < L; j++)
                        a += sc[j] / sum * v[((size_t)j * s->n_seq + b) * kvd + (size_t)(h / group) * s->hd + i];
                    o[i] = a;
                }
            }
    free(sc);
}

static float *randn(uint64_t *st, size_t n) {
    float *x = malloc(n * sizeof(float));
    for (size_t i = 0; i < n; i++) x[i] = tu_rnd_normal(st);
    return x;
}

static void check_shape(const shape *s, uint64_t seed) {
    uint64_t st = seed;
    int qd = s->H * s->hd, kvd = s->KV * s->hd, L = s->pos0 + s->n, rows = s->n * s->n_seq;
    float *q = randn(&st, (size_t)rows * qd), *k = randn(&st, (size_t)L * s->n_seq * kvd);
    float *v = randn(&st, (size_t)L * s->n_seq * kvd);
    float alibi[16];
    for (int h = 0; h < s->H; h++) alibi[h] = 0.5f / (float)(h + 1);
    nt_attn_dims d = {s->H, s->KV, s->hd, s->alibi ? alibi : NULL};
    float *out1 = malloc((size_t)rows * qd * sizeof(float)), *out2 = malloc((size_t)rows * qd * sizeof(float));
    double *ref = malloc((size_t)rows * qd * sizeof(double));
    float *scratch = malloc(nt_attn_scratch_floats(L, 2) * sizeof(float));
    nt_attn_forward(&d, q, k, v, s->n, s->n_seq, s->pos0, out1, scratch, 1, NULL, NULL);
    nt_attn_forward(&d, q, k, v, s->n, s->n_seq, s->pos0, out2, scratch, 2, NULL, NULL);
    reference(s, d.alibi, q, k, v, ref);
    double maxd = 0.0;
    for (size_t i = 0; i < (size_t)rows * qd; i++) {
        double e = fabs(out1[i] - ref[i]);
        maxd = fmax(maxd, e);
        cr_assert(e <= ATOL + RTOL * fabs(ref[i]),
                  "H %d KV %d hd %d n %d pos0 %d seqs %d alibi %d: element %zu: %.7g vs reference %.7g", s->H, s->KV,
                  s->hd, s->n, s->pos0, s->n_seq, s->alibi, i, out1[i], ref[i]);
    }
    cr_assert_eq(memcmp(out1, out2, (size_t)rows * qd * sizeof(float)), 0,
                 "n %d pos0 %d: the result depends on the thread count", s->n, s->pos0);
    cr_log_info("H %d KV %d hd %d n %d pos0 %d seqs %d alibi %d: max |diff| %.2e", s->H, s->KV, s->hd, s->n, s->pos0,
                s->n_seq, s->alibi, maxd);
    free(q);
    free(k);
    free(v);
    free(out1);
    free(out2);
    free(ref);
    free(scratch);
}

Test(attention, causal_kernel_matches_the_masked_full_computation) {
    const shape shapes[] = {
        {4, 4, 16, 1, 0, 1, false},   {4, 4, 16, 7, 0, 1, false},   {4, 4, 16, 64, 0, 1, false},
        {4, 4, 16, 65, 0, 1, false},  {4, 4, 16, 130, 0, 1, false}, {6, 2, 8, 130, 0, 1, false},
        {6, 2, 8, 1, 100, 1, false},  {6, 2, 8, 70, 100, 1, false}, {4, 4, 16, 30, 5, 1, true},
        {4, 1, 32, 90, 3, 1, true},   {6, 3, 8, 1, 40, 3, false},   {6, 3, 8, 67, 0, 3, true},
        {4, 2, 16, 20, 50, 2, false},
    };
    for (size_t i = 0; i < sizeof(shapes) / sizeof(shapes[0]); i++) check_shape(&shapes[i], 1000 + i);
}

// The backward recomputes probabilities from the saved row max and 1/sum: they must be the forward's exactly.
Test(attention, recomputed_probabilities_are_the_forwards) {
    uint64_t st = 7;
    int H = 4, KV = 2, hd = 16, T = 150, qd = H * hd, kvd = KV * hd;
    float *q = randn(&st, (size_t)T * qd), *k = randn(&st, (size_t)T * kvd);
    nt_attn_dims d = {H, KV, hd, NULL};
    float *smax = malloc((size_t)H * T * sizeof(float)), *sinv = malloc((size_t)H * T * sizeof(float));
    float *P1 = malloc((size_t)NT_ATTN_BLOCK * T * sizeof(float)), *P2 = malloc((size_t)NT_ATTN_BLOCK * T * sizeof(float));
    for (int h = 0; h < H; h++)
        for (int t0 = 0; t0 < T; t0 += NT_ATTN_BLOCK) {
            int t1 = t0 + NT_ATTN_BLOCK < T ? t0 + NT_ATTN_BLOCK : T;
            nt_attn_probs(&d, h, q, qd, k, kvd, t0, t1, 0, P1, t1, true, smax + (size_t)h * T, sinv + (size_t)h * T);
            nt_attn_probs(&d, h, q, qd, k, kvd, t0, t1, 0, P2, T, false, smax + (size_t)h * T, sinv + (size_t)h * T);
            for (int t = t0; t < t1; t++) {
                cr_assert_eq(memcmp(P1 + (size_t)(t - t0) * t1, P2 + (size_t)(t - t0) * T, (size_t)t1 * sizeof(float)),
                             0, "head %d row %d: recomputed probabilities differ", h, t);
                double s = 0.0;
                for (int j = 0; j < t1; j++) {
                    float p = P1[(size_t)(t - t0) * t1 + j];
                    cr_assert(j <= t || p == 0.0f, "head %d row %d: key %d past the query has probability %g", h, t,
                              j, p);
                    s += p;
                }
                cr_assert(fabs(s - 1.0) <= 1e-5, "head %d row %d: probabilities sum to %.8f", h, t, s);
            }
        }
    free(q);
    free(k);
    free(smax);
    free(sinv);
    free(P1);
    free(P2);
}
