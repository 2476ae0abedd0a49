// nll.c: per-position negative log-likelihood from logits, the hot loop of perplexity and zero-shot
// scoring. Built with -ffast-math (CMakeLists.txt) so that expf vectorizes through glibc's libmvec; the
// logits are finite and each row's sum of exp(logit - max) is accumulated per SIMD lane, so the result
// agrees with a double-precision log-softmax to ~1e-6.
#include <math.h>

#include "nll.h"

static double row_logsumexp(const float *row, int vocab) {
    float mx = row[0];
#pragma omp simd reduction(max : mx)
    for (int j = 0; j < vocab; j++) mx = row[j] > mx ? row[j] : mx;
    float s = 0.0f;
#pragma omp simd reduction(+ : s)
    for (int j = 0; j < vocab; j++) s += expf(row[j] - mx);
    return (double)mx + log((double)s);
}

void nt_nll_from_logits(const float *logits, const int32_t *tokens, int n, int vocab, double *nll) {
#pragma omp parallel for if (n > 4)
    for (int t = 0; t < n - 1; t++) {
        const float *row = logits + (size_t)t * vocab;
        nll[t] = row_logsumexp(row, vocab) - (double)row[tokens[t + 1]];
    }
}

// KL(p || q) of one row: sum_j p_j (log p_j - log q_j) with log p_j - log q_j = (r_j - x_j) - (lse_r - lse_x), the
// logit difference first (exact when the two logits are close), so identical rows give exactly 0 in every term.
// no reassociation here: it would turn (r - x) - c into r - (x + c), whose rounding (~ulp of a logit) does not cancel
__attribute__((optimize("no-associative-math"))) static double row_kld(const float *r, const float *x, int vocab,
                                                                        bool *same_top) {
    float mr = r[0], mq = x[0];
#pragma omp simd reduction(max : mr, mq)
    for (int j = 0; j < vocab; j++) {
        mr = r[j] > mr ? r[j] : mr;
        mq = x[j] > mq ? x[j] : mq;
    }
    int br = 0, bq = 0;
    while (r[br] != mr) br++; // the first maximum, as torch.argmax
    while (x[bq] != mq) bq++;
    *same_top = br == bq;
    // the normalizers in double: an error in log(sum) shifts every log-ratio alike, i.e. adds to the KL directly
    double sr = 0.0, sq = 0.0;
#pragma omp simd reduction(+ : sr, sq)
    for (int j = 0; j < vocab; j++) {
        sr += (double)expf(r[j] - mr);
        sq += (double)expf(x[j] - mq);
    }
    double lse_r = (double)mr + log(sr), lse_q = (double)mq + log(sq);
    float c = (float)(lse_r - lse_q), lr = (float)lse_r;
    // in double: the first-order terms p_j d_j cancel (sum_j p_j (log p_j - log q_j) is second order in d when the
    // models are close), and a float sum would leave ~1e-7 of sum |p_j d_j| behind
    double k = 0.0;
#pragma omp simd reduction(+ : k)
    for (int j = 0; j < vocab; j++) k += (double)(expf(r[j] - lr) * ((r[j] - x[j]) - c));
    return k;
}

void nt_kld_from_logits(const float *ref, const float *logits, int n, int vocab, double *kld, bool *same_top) {
#pragma omp parallel for if (n > 4)
    for (int t = 0; t < n; t++)
        kld[t] = row_kld(ref + (size_t)t * vocab, logits + (size_t)t * vocab, vocab, &same_top[t]);
}
