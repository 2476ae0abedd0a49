// perplexity.c: GPTQ-protocol perplexity over token windows (see perplexity.h). The lm_head runs in chunks
// of rows so that big vocabularies at long seqlen do not need a (seqlen, vocab) logits buffer.
#include "perplexity.h"

#include <math.h>
#include <string.h>

// rows of logits per lm_head call: one call covers a whole window up to 512 tokens (the lm_head is then
// packed once per window), and bounds the buffer at long seqlen
enum { LOGIT_ROWS = 512 };

// The windows loop of both devices: sums, progress, the result's statistics.
int nt_ppl_score_windows(nt_window_nll_fn score, void *arg, const nt_windows *w, size_t max_windows,
                         const char *label, nt_ppl_result *res, nt_err *err) {
    memset(res, 0, sizeof(*res));
    int S = (int)w->seqlen;
    size_t nw = (max_windows && max_windows < w->n_windows) ? max_windows : w->n_windows;
    if (nw == 0 || S < 2) return nt_fail(err, "%s: nothing to score (%zu windows of %d tokens)", label, nw, S);
    double *nll = malloc((size_t)S * sizeof(double));
    if (!nll) return nt_fail(err, "%s: out of memory", label);
    double sum = 0.0, sumsq = 0.0, t0 = nt_time();
    nt_progress prog;
    nt_progress_begin(&prog, label, (long)nw);
    int rc = 0;
    for (size_t i = 0; i < nw && rc == 0; i++) {
        rc = score(arg, w->ids + i * w->seqlen, S, nll, err);
        for (int t = 0; t < S - 1 && rc == 0; t++) {
            sum += nll[t];
            sumsq += nll[t] * nll[t];
        }
        nt_progress_update(&prog, (long)(i + 1));
    }
    nt_progress_end(&prog);
    free(nll);
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

typedef struct {
    const nt_model *m;
    nt_run *r;
    float *logits; // (LOGIT_ROWS, vocab)
} cpu_scorer;

static int cpu_window(void *arg, const int32_t *ids, int S, double *nll, nt_err *err) {
    cpu_scorer *c = arg;
    const nt_model *m = c->m;
    nt_run_reset(c->r);
    if (nt_forward_hidden(m, c->r, ids, S, err)) return -1;
    // positions 0..S-2 predict tokens 1..S-1
    for (int t0r = 0; t0r < S - 1; t0r += LOGIT_ROWS) {
        int rows = S - 1 - t0r < LOGIT_ROWS ? S - 1 - t0r : LOGIT_ROWS;
        nt_logits(m, c->r->x + (size_t)t0r * m->cfg.emb_dim, rows, c->logits);
        // rows+1 tokens starting at t0r give rows targets
        nt_nll_from_logits(c->logits, ids + t0r, rows + 1, m->cfg.vocab, nll + t0r);
    }
    return 0;
}

int nt_perplexity(const nt_model *m, const nt_windows *w, size_t max_windows, const char *label, nt_ppl_result *res,
                  nt_err *err) {
    memset(res, 0, sizeof(*res));
    int S = (int)w->seqlen;
    cpu_scorer c = {m, NULL, NULL};
    if (S >= 2 && nt_run_init(&c.r, m, S, S, err)) return -1;
    c.logits = malloc((size_t)LOGIT_ROWS * m->cfg.vocab * sizeof(float));
    int rc = c.logits ? nt_ppl_score_windows(cpu_window, &c, w, max_windows, label, res, err)
                      : nt_fail(err, "%s: out of memory for logits", label);
    free(c.logits);
    nt_run_free(&c.r);
    return rc;
}
