// perplexity.c: GPTQ-protocol perplexity over token windows (see perplexity.h). The lm_head runs in chunks
// of rows so that big vocabularies at long seqlen do not need a (seqlen, vocab) logits buffer.
#include "perplexity.h"

#include <math.h>
#include <string.h>

// rows of logits per lm_head call: one call covers a whole window up to 512 tokens (the lm_head is then
// packed once per window), and bounds the buffer at long seqlen
enum { LOGIT_ROWS = 512 };

int nt_perplexity(const nt_model *m, const nt_windows *w, size_t max_windows, const char *label, nt_ppl_result *res,
                  nt_err *err) {
    memset(res, 0, sizeof(*res));
    int S = (int)w->seqlen, V = m->cfg.vocab;
    size_t nw = (max_windows && max_windows < w->n_windows) ? max_windows : w->n_windows;
    if (nw == 0 || S < 2) return nt_fail(err, "%s: nothing to score (%zu windows of %d tokens)", label, nw, S);
    nt_run *r = NULL;
    if (nt_run_init(&r, m, S, S, err)) return -1;
    float *logits = malloc((size_t)LOGIT_ROWS * V * sizeof(float));
    double *nll = malloc((size_t)S * sizeof(double));
    if (!logits || !nll) {
        free(logits);
        free(nll);
        nt_run_free(&r);
        return nt_fail(err, "%s: out of memory for logits", label);
    }
    double sum = 0.0, sumsq = 0.0, t0 = nt_time();
    nt_progress prog;
    nt_progress_begin(&prog, label, (long)nw);
    int rc = 0;
    for (size_t i = 0; i < nw && rc == 0; i++) {
        const int32_t *ids = w->ids + i * w->seqlen;
        nt_run_reset(r);
        if (nt_forward_hidden(m, r, ids, S, err)) {
            rc = -1;
            break;
        }
        // positions 0..S-2 predict tokens 1..S-1
        for (int t0r = 0; t0r < S - 1; t0r += LOGIT_ROWS) {
            int rows = S - 1 - t0r < LOGIT_ROWS ? S - 1 - t0r : LOGIT_ROWS;
            nt_logits(m, r->x + (size_t)t0r * m->cfg.emb_dim, rows, logits);
            // rows+1 tokens starting at t0r give rows targets
            nt_nll_from_logits(logits, ids + t0r, rows + 1, V, nll + t0r);
        }
        for (int t = 0; t < S - 1; t++) {
            sum += nll[t];
            sumsq += nll[t] * nll[t];
        }
        nt_progress_update(&prog, (long)(i + 1));
    }
    nt_progress_end(&prog);
    free(logits);
    free(nll);
    nt_run_free(&r);
    if (rc) return rc;
    size_t N = nw * (size_t)(S - 1);
    res->n_windows = nw;
    res->n_scored = N;
    res->nll_sum = sum;
    res->nll_mean = sum / (double)N;
    double var = N > 1 ? (sumsq - sum * sum / (double)N) / (double)(N - 1) : 0.0;
    res->nll_stderr = sqrt(var > 0 ? var / (double)N : 0.0);
    res->ppl = exp(res->nll_mean);
    res->ppl_stderr = res->ppl * res->nll_stderr;
    res->seconds = nt_time() - t0;
    return 0;
}
