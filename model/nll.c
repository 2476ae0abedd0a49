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
