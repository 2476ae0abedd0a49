// zeroshot.c: lm-evaluation-harness log-likelihood scoring of zero-shot tasks (see zeroshot.h for the
// protocol). Two stages: tokenize every request (so that bad items fail before any compute and the KV cache
// can be sized to the longest request), then feed the requests either whole, 8 at a time as the lockstep
// sequences of one run, or one at a time through one KV-cached run that keeps the prefix they share.
#include "zeroshot.h"

#include <math.h>
#include <string.h>


enum {
    CHUNK_TOKENS = 256, // tokens per nt_forward_hidden call (bounds the attention scratch at long contexts)
    BATCH_SEQS = 8,     // requests scored together (score_batch): up to 8 x 256 rows per call
};
// A forward call's fixed cost in token rows, for choosing between batches and shared prefixes: OpenBLAS packs
// every linear's weights on every call (SmolLM2's 106M block weights: ~0.06 s a call on two cores, against
// ~1.6 ms a token row at 140 GFLOP/s). Chosen so the rule picks what measured faster on SmolLM2's tasks
// (batches for LAMBADA, PIQA, HellaSwag, ARC, OpenBookQA, WinoGrande; shared prefixes for BoolQ's passages).
enum { CALL_ROWS = 40 };

bool nt_zeroshot_task_known(const char *task) { return nt_zs_task_find(task) != NULL; }

// One request's tokens: ids = context tokens then continuation tokens.
typedef struct {
    int32_t *ids; // (n_ctx + n_cont)
    int n_ctx, n_cont;
    int dup_of;   // index (within the item) of an identical earlier request, or -1
} request;

static int encode(const nt_tokenizer *tok, const char *s, size_t n, bool add_special, int32_t **ids, size_t *n_ids,
                  nt_err *err) {
    return nt_tokenizer_encode(tok, s, n, add_special, ids, n_ids, err);
}

// HFLM._encode_pair (and the empty-context rule of HFLM.loglikelihood). ctx_ids/n_ctx_ids: the tokens of the
// previous request's context when its stripped context string was prev_ctx (reused), else NULL.
// Returns 0, -1 on a tokenizer error, or 1 when lm-eval could not score it (message in err).
static int tokenize_request(const nt_tokenizer *tok, bool add_special, int32_t prefix_id, const char *ctx,
                            const char *cont, request *rq, nt_err *err) {
    size_t nc = strlen(ctx), nn = strlen(cont);
    int32_t *cids = NULL, *wids = NULL;
    size_t ncids = 0, nwids = 0;
    if (nc == 0) {
        if (prefix_id < 0) return nt_fail(err, "empty context and the tokenizer has neither BOS nor EOS"), 1;
        if (encode(tok, cont, nn, add_special, &wids, &nwids, err)) return -1;
        cids = malloc(sizeof(int32_t));
        if (!cids) return free(wids), nt_fail(err, "out of memory");
        cids[0] = prefix_id;
        ncids = 1;
    } else {
        size_t sp = nt_zs_trailing_space(ctx, nc);
        nc -= sp; // the context's trailing whitespace now starts the continuation: whole string unchanged
        if (encode(tok, ctx, nc, add_special, &cids, &ncids, err)) return -1;
        char *whole = malloc(strlen(ctx) + nn + 1);
        if (!whole) return free(cids), nt_fail(err, "out of memory");
        memcpy(whole, ctx, strlen(ctx));
        memcpy(whole + strlen(ctx), cont, nn + 1);
        int rc = encode(tok, whole, strlen(ctx) + nn, add_special, &wids, &nwids, err);
        free(whole);
        if (rc) return free(cids), -1;
        // continuation = whole[len(context tokens):]
        if (nwids <= ncids) {
            free(cids);
            free(wids);
            return nt_fail(err, "the continuation \"%.40s\" has no tokens of its own", cont), 1;
        }
        memmove(wids, wids + ncids, (nwids - ncids) * sizeof(int32_t));
        nwids -= ncids;
    }
    rq->ids = malloc((ncids + nwids) * sizeof(int32_t));
    if (!rq->ids) return free(cids), free(wids), nt_fail(err, "out of memory");
    memcpy(rq->ids, cids, ncids * sizeof(int32_t));
    memcpy(rq->ids + ncids, wids, nwids * sizeof(int32_t));
    rq->n_ctx = (int)ncids;
    rq->n_cont = (int)nwids;
    free(cids);
    free(wids);
    return 0;
}

// log_softmax(row)[target] and whether target is the row's argmax (first maximum, as torch.argmax). The sum of
// exponentials is accumulated in double: a float sum over a 50k vocabulary drifts by ~1e-5 per token, which a
// 100-token continuation turns into ~1e-3 of loglik.
static double token_logprob(const float *row, int n, int target, bool *is_argmax) {
    float mx = row[0];
#pragma omp simd reduction(max : mx)
    for (int j = 0; j < n; j++) mx = row[j] > mx ? row[j] : mx;
    int best = 0;
    while (row[best] != mx) best++; // the first maximum
    double s = 0.0;
    for (int j0 = 0; j0 < n; j0 += 64) { // float sums of 64 terms (<= 64 ulp), added in double
        int j1 = j0 + 64 < n ? j0 + 64 : n;
        float b = 0.0f;
        for (int j = j0; j < j1; j++) b += expf(row[j] - mx);
        s += (double)b;
    }
    *is_argmax = best == target;
    return (double)(row[target] - mx) - log(s);
}

// The scoring run: a KV cache and the tokens it holds, and the hidden rows waiting for the lm_head. The
// lm_head is one GEMM over many continuation rows of many requests: OpenBLAS packs the whole (vocab, emb_dim)
// matrix on every call, which costs more than the product itself when a call has only a few rows.
typedef struct {
    const nt_model *m;
    nt_run *r;
    int32_t *cached; // (max_ctx) the tokens at cache positions 0..r->len-1
    int max_rows;    // rows per lm_head call
    int n_rows;      // rows pending
    float *hidden;   // (max_rows, emb_dim) pending hidden states
    int32_t *target; // (max_rows) the token each pending row predicts
    long *req;       // (max_rows) the output request each row adds to
    float *logits;   // (max_rows, vocab)
    double *part;    // (max_rows)
    bool *top;       // (max_rows)
    double *loglik;  // (n_requests) accumulated here
    bool *greedy;    // (n_requests)
} scorer;

// Runs the lm_head over the pending rows and adds their log-probs to their requests.
static void flush_rows(scorer *S) {
    int n = S->n_rows, V = S->m->cfg.vocab;
    if (n == 0) return;
    nt_logits(S->m, S->hidden, n, S->logits);
#pragma omp parallel for if (n > 1)
    for (int t = 0; t < n; t++) S->part[t] = token_logprob(S->logits + (size_t)t * V, V, S->target[t], &S->top[t]);
    for (int t = 0; t < n; t++) {
        S->loglik[S->req[t]] += S->part[t];
        S->greedy[S->req[t]] = S->greedy[S->req[t]] && S->top[t];
    }
    S->n_rows = 0;
}

// Queues n hidden rows (emb_dim each) predicting targets[0..n) for output request q.
static void queue_rows(scorer *S, const float *hidden, const int32_t *targets, int n, long q) {
    int E = S->m->cfg.emb_dim;
    while (n > 0) {
        if (S->n_rows == S->max_rows) flush_rows(S);
        int k = S->max_rows - S->n_rows < n ? S->max_rows - S->n_rows : n;
        memcpy(S->hidden + (size_t)S->n_rows * E, hidden, (size_t)k * E * sizeof(float));
        for (int t = 0; t < k; t++) {
            S->target[S->n_rows + t] = targets[t];
            S->req[S->n_rows + t] = q;
        }
        S->n_rows += k;
        hidden += (size_t)k * E;
        targets += k;
        n -= k;
    }
}

// The tokens a request feeds: (ids)[-(max_len+1):][:-1], i.e. ids + *skip, *fed_n of them (the last
// continuation token is only predicted); the rows *fed_n - n_cont .. *fed_n - 1 predict the continuation.
static const int32_t *fed_tokens(const request *rq, int max_len, int *skip, int *fed_n) {
    int L = rq->n_ctx + rq->n_cont;
    *skip = L - 1 > max_len ? L - 1 - max_len : 0; // left truncation
    *fed_n = L - 1 - *skip;
    return rq->ids + *skip;
}

// Scores request rq into output request q: feeds its tokens after the longest prefix already in the cache and
// queues the rows that predict the continuation.
static int score_request(scorer *S, const request *rq, int max_len, long q, int *n_ctx_seen, nt_err *err) {
    const nt_model *m = S->m;
    nt_run *r = S->r;
    int E = m->cfg.emb_dim, s, F;
    const int32_t *fed = fed_tokens(rq, max_len, &s, &F);
    int first = F - rq->n_cont; // the last context token's row
    int p = 0;
    while (p < r->len && p < first && S->cached[p] == fed[p]) p++;
    r->len = p; // keys/values past p are overwritten below
    S->loglik[q] = 0.0;
    S->greedy[q] = true;
    for (int c0 = p; c0 < F; c0 += CHUNK_TOKENS) {
        int n = F - c0 < CHUNK_TOKENS ? F - c0 : CHUNK_TOKENS;
        if (nt_forward_hidden(m, r, fed + c0, n, err)) return -1;
        memcpy(S->cached + c0, fed + c0, (size_t)n * sizeof(int32_t));
        int j0 = c0 > first ? c0 : first; // first scored row in this chunk (fed index)
        // row j predicts fed[j + 1] (the last row: the last continuation token, fed[F] = ids[L-1])
        if (j0 < c0 + n) queue_rows(S, r->x + (size_t)(j0 - c0) * E, fed + j0 + 1, c0 + n - j0, q);
    }
    *n_ctx_seen = rq->n_ctx - s;
    return 0;
}

static int argmax_d(const double *x, int n) {
    int best = 0;
    for (int i = 1; i < n; i++)
        if (x[i] > x[best]) best = i; // numpy.argmax: the first maximum
    return best;
}

// lm-eval's mean and mean_stderr of per-item values.
static void mean_stderr(const double *x, long n, double *mean, double *se) {
    double s = 0.0;
    for (long i = 0; i < n; i++) s += x[i];
    double mu = n > 0 ? s / (double)n : NAN, ss = 0.0;
    for (long i = 0; i < n; i++) ss += (x[i] - mu) * (x[i] - mu);
    *mean = mu;
    *se = n > 1 ? sqrt(ss / (double)(n - 1)) / sqrt((double)n) : NAN;
}

static void add_metric(nt_zs_result *res, const char *name, double value, double se) {
    NT_ASSERT(res->n_metrics < (int)(sizeof(res->metrics) / sizeof(res->metrics[0])));
    nt_zs_metric *mt = &res->metrics[res->n_metrics++];
    snprintf(mt->name, sizeof(mt->name), "%s", name);
    mt->value = value;
    mt->stderr_ = se;
}

static int result_alloc(nt_zs_result *res, size_t n_items, size_t n_req) {
    size_t ni = n_items ? n_items : 1, nr = n_req ? n_req : 1;
    res->item_line = malloc(ni * sizeof(size_t));
    res->item_index = malloc(ni * sizeof(size_t));
    res->gold = malloc(ni * sizeof(int));
    res->pred = malloc(ni * sizeof(int));
    res->pred_norm = malloc(ni * sizeof(int));
    res->req_start = malloc((ni + 1) * sizeof(size_t));
    res->loglik = malloc(nr * sizeof(double));
    res->greedy = malloc(nr * sizeof(bool));
    res->n_cont_tokens = malloc(nr * sizeof(int));
    res->n_ctx_tokens = malloc(nr * sizeof(int));
    return res->item_line && res->item_index && res->gold && res->pred && res->pred_norm && res->req_start && res->loglik &&
                   res->greedy && res->n_cont_tokens && res->n_ctx_tokens
               ? 0
               : -1;
}

static void requests_free(request *rq, size_t n) {
    for (size_t i = 0; rq && i < n; i++) free(rq[i].ids);
    free(rq);
}

// One request waiting for score_batch: the request, its output index and how many tokens it feeds.
typedef struct {
    const request *rq;
    long out;
    int fed_n;
} pending;

// Longest first; equal lengths in output order (deterministic batches).
static int pending_cmp(const void *a, const void *b) {
    const pending *x = a, *y = b;
    if (x->fed_n != y->fed_n) return x->fed_n > y->fed_n ? -1 : 1;
    return x->out < y->out ? -1 : x->out > y->out;
}

// Scores b <= run->n_seq whole requests pd[0..b) together, as lockstep sequences of the run br from position
// 0, each padded on the right to the longest: a padded position is seen only by later positions of its own
// sequence, none of them scored, so each request gets the rows it would get alone, while every linear
// multiplies up to n_seq times the rows. (OpenBLAS packs a linear's weights on every call; at LAMBADA's ~80
// tokens a request that packing took a fifth of the time, at a choice's few tokens most of it.) Sequences
// b..n_seq-1, if any, repeat the last request and are not scored. n_ctx_seen: indexed by output request.
// tok: (CHUNK_TOKENS * n_seq) scratch.
static int score_batch(scorer *S, nt_run *br, const pending *pd, int b, int max_len, int *n_ctx_seen, int32_t *tok,
                       nt_err *err) {
    const nt_model *m = S->m;
    int B = br->n_seq, E = m->cfg.emb_dim, Fmax = 0;
    const int32_t *fed[BATCH_SEQS];
    int F[BATCH_SEQS], first[BATCH_SEQS];
    NT_ASSERT(b >= 1 && b <= B && B <= BATCH_SEQS);
    for (int k = 0; k < b; k++) {
        int skip;
        const request *rq = pd[k].rq;
        fed[k] = fed_tokens(rq, max_len, &skip, &F[k]);
        first[k] = F[k] - rq->n_cont;
        n_ctx_seen[pd[k].out] = rq->n_ctx - skip;
        Fmax = F[k] > Fmax ? F[k] : Fmax;
        S->loglik[pd[k].out] = 0.0;
        S->greedy[pd[k].out] = true;
    }
    nt_run_reset(br);
    for (int c0 = 0; c0 < Fmax; c0 += CHUNK_TOKENS) {
        int n = Fmax - c0 < CHUNK_TOKENS ? Fmax - c0 : CHUNK_TOKENS;
        for (int t = 0; t < n; t++)
            for (int k = 0; k < B; k++) {
                int src = k < b ? k : b - 1, j = c0 + t;
                tok[(size_t)t * B + k] = fed[src][j < F[src] ? j : F[src] - 1];
            }
        if (nt_forward_hidden(m, br, tok, n, err)) return -1;
        for (int k = 0; k < b; k++) {
            int j0 = c0 > first[k] ? c0 : first[k], j1 = c0 + n < F[k] ? c0 + n : F[k];
            for (int j = j0; j < j1; j++) // row (j - c0) * B + k predicts fed[k][j + 1]
                queue_rows(S, br->x + ((size_t)(j - c0) * B + k) * E, fed[k] + j + 1, 1, pd[k].out);
        }
    }
    return 0;
}

// Scores the pending requests n_batch at a time (score_batch), longest first.
static int score_pending(scorer *S, pending *pd, size_t n, int n_batch, int max_len, int longest, int *n_ctx_seen,
                         nt_progress *prog, nt_err *err) {
    qsort(pd, n, sizeof(pending), pending_cmp);
    nt_run *br = NULL;
    int32_t *tok = malloc((size_t)CHUNK_TOKENS * n_batch * sizeof(int32_t));
    if (!tok) return nt_fail(err, "zero-shot batch: out of memory");
    int rc = nt_run_init_seqs(&br, S->m, n_batch, longest < CHUNK_TOKENS ? longest : CHUNK_TOKENS, longest, err);
    for (size_t i = 0; i < n && rc == 0; i += (size_t)n_batch) {
        int b = n - i < (size_t)n_batch ? (int)(n - i) : n_batch;
        rc = score_batch(S, br, pd + i, b, max_len, n_ctx_seen, tok, err);
        nt_progress_update(prog, (long)(i + (size_t)b));
    }
    nt_run_free(&br);
    free(tok);
    return rc;
}

static int int_desc(const void *a, const void *b) {
    int x = *(const int *)a, y = *(const int *)b;
    return (x < y) - (x > y);
}

// Whether scoring the kept requests one at a time after shared prefixes costs fewer token rows (a forward call
// counting CALL_ROWS) than whole in batches of n_batch, longest first, each padded to its longest.
static bool choose_shared(const nt_zs_task *t, const request *rq, const bool *keep, int max_len, int n_batch) {
    size_t n = 0;
    for (size_t i = 0; i < t->n_items; i++) n += (size_t)t->items[i].n_choices;
    int *fn = malloc((n ? n : 1) * sizeof(int));
    if (!fn) return true; // either way scores the same; this one needs no more memory
    double shared = 0.0, batched = 0.0;
    const int32_t *prev = NULL;
    int prev_n = 0;
    size_t m = 0;
    for (size_t k = 0, i = 0; i < t->n_items; i++)
        for (int c = 0; c < t->items[i].n_choices; c++, k++) {
            if (!keep[i] || rq[k].dup_of >= 0) continue;
            int skip, F;
            const int32_t *fed = fed_tokens(&rq[k], max_len, &skip, &F);
            int p = 0, first = F - rq[k].n_cont;
            while (prev && p < prev_n && p < first && prev[p] == fed[p]) p++;
            shared += (F - p) + CALL_ROWS * (double)((F - p + CHUNK_TOKENS - 1) / CHUNK_TOKENS);
            prev = fed;
            prev_n = F;
            fn[m++] = F;
        }
    qsort(fn, m, sizeof(int), int_desc);
    for (size_t i = 0; i < m; i += (size_t)n_batch) // a batch: n_batch sequences of its longest request
        batched += (double)n_batch * fn[i] + CALL_ROWS * (double)((fn[i] + CHUNK_TOKENS - 1) / CHUNK_TOKENS);
    free(fn);
    return shared < batched;
}

int nt_zeroshot_score(const nt_model *m, const nt_tokenizer *tok, const nt_zs_task *t, int max_length,
                      bool skip_bad_items, nt_zs_result *res, nt_err *err) {
    return nt_zeroshot_score_batch(m, tok, t, max_length, skip_bad_items, 0, res, err);
}

int nt_zeroshot_score_batch(const nt_model *m, const nt_tokenizer *tok, const nt_zs_task *t, int max_length,
                            bool skip_bad_items, int max_batch, nt_zs_result *res, nt_err *err) {
    memset(res, 0, sizeof(*res));
    const nt_zs_task_info *info = t->info;
    snprintf(res->task, sizeof(res->task), "%s", info->name);
    int max_len = max_length > 0 ? max_length : m->cfg.max_pos;
    res->max_length = max_len;
    bool add_special = strstr(m->cfg.model_type, "gemma") != NULL; // HFLM forces a BOS for Gemma only
    int32_t prefix_id = nt_tokenizer_bos_id(tok) >= 0 ? nt_tokenizer_bos_id(tok) : nt_tokenizer_eos_id(tok);
    double t0 = nt_time();

    // Stage 1: tokenize every request.
    size_t n_req = 0;
    for (size_t i = 0; i < t->n_items; i++) n_req += (size_t)t->items[i].n_choices;
    request *rq = calloc(n_req ? n_req : 1, sizeof(request));
    bool *keep = calloc(t->n_items ? t->n_items : 1, sizeof(bool));
    if (!rq || !keep || result_alloc(res, t->n_items, n_req)) {
        free(rq);
        free(keep);
        nt_zs_result_free(res);
        return nt_fail(err, "%s: out of memory", info->name);
    }
    size_t q = 0, n_items = 0, n_kept_req = 0;
    int longest = 1;
    long skipped = 0;
    for (size_t i = 0; i < t->n_items; i++) {
        const nt_zs_item *it = &t->items[i];
        size_t q0 = q;
        int bad = 0;
        for (int c = 0; c < it->n_choices; c++, q++) {
            rq[q].dup_of = -1;
            for (int d = 0; d < c && rq[q].dup_of < 0; d++)
                if (strcmp(it->contexts[c], it->contexts[d]) == 0 &&
                    strcmp(it->continuations[c], it->continuations[d]) == 0)
                    rq[q].dup_of = d; // ARC pads 3-choice items by repeating a choice
            if (bad || rq[q].dup_of >= 0) continue;
            nt_err e2;
            int rc = tokenize_request(tok, add_special, prefix_id, it->contexts[c], it->continuations[c], &rq[q], &e2);
            if (rc == 0 && rq[q].n_cont > max_len) {
                rc = 1;
                nt_fail(&e2, "the continuation has %d tokens, more than the model's context of %d", rq[q].n_cont,
                        max_len);
            }
            if (rc < 0 || (rc > 0 && !skip_bad_items)) {
                requests_free(rq, n_req);
                free(keep);
                nt_zs_result_free(res);
                return nt_fail(err, "%s:%zu: choice %d: %s", t->path, it->line, c, e2.msg);
            }
            if (rc > 0) bad = 1;
        }
        if (bad) {
            skipped++;
            continue;
        }
        keep[i] = true;
        n_items++;
        n_kept_req += q - q0;
        for (size_t k = q0; k < q; k++) {
            if (rq[k].dup_of >= 0) continue;
            int L = rq[k].n_ctx + rq[k].n_cont;
            int F = L - 1 > max_len ? max_len : L - 1;
            longest = F > longest ? F : longest;
        }
    }
    if (n_items == 0) {
        requests_free(rq, n_req);
        free(keep);
        nt_zs_result_free(res);
        return nt_fail(err, "%s: no items to score", t->path);
    }
    // Whole requests in batches (score_batch) or one at a time, each continuing the longest prefix the previous
    // one left in the KV cache (score_request): whichever costs fewer token rows, a call counting CALL_ROWS.
    int n_batch = max_batch == 1 ? 1 : max_batch > 1 && max_batch < BATCH_SEQS ? max_batch : BATCH_SEQS;
    if (max_batch == 0 && n_kept_req > n_items && choose_shared(t, rq, keep, max_len, n_batch)) n_batch = 1;
    size_t n_scored = 0; // requests scored (duplicates are copied)
    for (size_t k = 0, i = 0; i < t->n_items; i++)
        for (int c = 0; c < t->items[i].n_choices; c++, k++) n_scored += keep[i] && rq[k].dup_of < 0;
    n_batch = (size_t)n_batch > n_scored ? (int)n_scored : n_batch;
    res->batch = n_batch;

    // Stage 2: score.
    scorer S = {.m = m, .loglik = res->loglik, .greedy = res->greedy};
    // lm_head rows per call: up to 256, with the logits buffer kept under 64 MiB
    S.max_rows = (1 << 24) / m->cfg.vocab;
    S.max_rows = S.max_rows < 1 ? 1 : S.max_rows > 256 ? 256 : S.max_rows;
    S.cached = malloc((size_t)longest * sizeof(int32_t));
    S.hidden = malloc((size_t)S.max_rows * m->cfg.emb_dim * sizeof(float));
    S.target = malloc((size_t)S.max_rows * sizeof(int32_t));
    S.req = malloc((size_t)S.max_rows * sizeof(long));
    S.logits = malloc((size_t)S.max_rows * m->cfg.vocab * sizeof(float));
    S.part = malloc((size_t)S.max_rows * sizeof(double));
    S.top = malloc((size_t)S.max_rows * sizeof(bool));
    int rc = 0;
    if (!S.cached || !S.hidden || !S.target || !S.req || !S.logits || !S.part || !S.top)
        rc = nt_fail(err, "%s: out of memory", info->name);
    if (rc == 0 && n_batch == 1)
        rc = nt_run_init(&S.r, m, longest < CHUNK_TOKENS ? longest : CHUNK_TOKENS, longest, err);
    pending *pd = n_batch > 1 ? malloc(n_scored * sizeof(pending)) : NULL;
    size_t n_pd = 0;
    if (rc == 0 && n_batch > 1 && !pd) rc = nt_fail(err, "%s: out of memory", info->name);
    double *acc = malloc(n_items * sizeof(double)), *accn = malloc(n_items * sizeof(double));
    double *lls = malloc(n_items * sizeof(double)), *normed = malloc(n_req ? n_req * sizeof(double) : 1);
    if (rc == 0 && (!acc || !accn || !lls || !normed)) rc = nt_fail(err, "%s: out of memory", info->name);
    nt_progress prog;
    nt_progress_begin(&prog, info->name, n_batch > 1 ? (long)n_scored : (long)n_items); // requests or items
    size_t oi = 0, oq = 0;
    q = 0;
    for (size_t i = 0; i < t->n_items && rc == 0; i++) {
        const nt_zs_item *it = &t->items[i];
        size_t q0 = q;
        q += (size_t)it->n_choices;
        if (!keep[i]) continue;
        res->item_line[oi] = it->line;
        res->item_index[oi] = i;
        res->gold[oi] = it->gold;
        res->req_start[oi] = oq;
        for (int c = 0; c < it->n_choices && rc == 0; c++) {
            const request *r = &rq[q0 + (size_t)c];
            size_t o = oq + (size_t)c;
            if (r->dup_of >= 0) continue; // copied below, once its twin is flushed
            res->n_cont_tokens[o] = r->n_cont;
            if (n_batch > 1) {
                int skip;
                pd[n_pd++] = (pending){.rq = r, .out = (long)o};
                fed_tokens(r, max_len, &skip, &pd[n_pd - 1].fed_n);
                continue;
            }
            rc = score_request(&S, r, max_len, (long)o, &res->n_ctx_tokens[o], err);
        }
        oq += (size_t)it->n_choices;
        oi++;
        if (n_batch == 1) nt_progress_update(&prog, (long)oi);
    }
    if (rc == 0 && n_batch > 1)
        rc = score_pending(&S, pd, n_pd, n_batch, max_len, longest, res->n_ctx_tokens, &prog, err);
    free(pd);
    if (rc == 0) flush_rows(&S);
    // Decisions and metrics, item by item.
    q = 0;
    oi = 0;
    for (size_t i = 0; i < t->n_items && rc == 0; i++) {
        const nt_zs_item *it = &t->items[i];
        size_t q0 = q;
        q += (size_t)it->n_choices;
        if (!keep[i]) continue;
        size_t b0 = res->req_start[oi];
        for (int c = 0; c < it->n_choices; c++) {
            int d = rq[q0 + (size_t)c].dup_of;
            if (d < 0) continue;
            res->loglik[b0 + c] = res->loglik[b0 + d];
            res->greedy[b0 + c] = res->greedy[b0 + d];
            res->n_cont_tokens[b0 + c] = res->n_cont_tokens[b0 + d];
            res->n_ctx_tokens[b0 + c] = res->n_ctx_tokens[b0 + d];
        }
        const double *ll = res->loglik + b0;
        for (int c = 0; c < it->n_choices; c++) normed[c] = ll[c] / (double)it->choice_chars[c];
        res->pred[oi] = argmax_d(ll, it->n_choices);
        res->pred_norm[oi] = argmax_d(normed, it->n_choices);
        if (info->kind == NT_ZS_LOGLIK) {
            acc[oi] = res->greedy[b0] ? 1.0 : 0.0;
            lls[oi] = ll[0];
        } else {
            acc[oi] = res->pred[oi] == it->gold ? 1.0 : 0.0;
            accn[oi] = res->pred_norm[oi] == it->gold ? 1.0 : 0.0;
        }
        oi++;
    }
    nt_progress_end(&prog);
    if (rc == 0) {
        res->req_start[n_items] = oq;
        res->n_items = (long)n_items;
        res->n_requests = (long)n_kept_req;
        res->n_skipped = (long)t->n_skipped + skipped;
        double mu, se;
        mean_stderr(acc, (long)n_items, &mu, &se);
        add_metric(res, "acc", mu, se);
        if (info->kind == NT_ZS_CHOICE && info->acc_norm) {
            mean_stderr(accn, (long)n_items, &mu, &se);
            add_metric(res, "acc_norm", mu, se);
        }
        if (info->kind == NT_ZS_LOGLIK) {
            mean_stderr(lls, (long)n_items, &mu, &se);
            add_metric(res, "perplexity", exp(-mu), exp(-mu) * se);
        }
        res->seconds = nt_time() - t0;
    }
    free(acc);
    free(accn);
    free(lls);
    free(normed);
    free(S.cached);
    free(S.hidden);
    free(S.target);
    free(S.req);
    free(S.logits);
    free(S.part);
    free(S.top);
    nt_run_free(&S.r);
    requests_free(rq, n_req);
    free(keep);
    if (rc) nt_zs_result_free(res);
    return rc;
}

int nt_zeroshot_eval(const nt_model *m, const nt_tokenizer *tok, const char *task, const char *data_dir, long limit,
                     bool skip_bad_items, nt_zs_result *res, nt_err *err) {
    memset(res, 0, sizeof(*res));
    nt_zs_task t;
    if (nt_zs_task_load(task, data_dir, limit, skip_bad_items, &t, err)) return -1;
    int rc = nt_zeroshot_score(m, tok, &t, 0, skip_bad_items, res, err);
    nt_zs_task_free(&t);
    return rc;
}

const nt_zs_metric *nt_zs_result_metric(const nt_zs_result *res, const char *name) {
    for (int i = 0; i < res->n_metrics; i++)
        if (strcmp(res->metrics[i].name, name) == 0) return &res->metrics[i];
    return NULL;
}

void nt_zs_result_free(nt_zs_result *res) {
    free(res->item_line);
    free(res->item_index);
    free(res->gold);
    free(res->pred);
    free(res->pred_norm);
    free(res->req_start);
    free(res->loglik);
    free(res->greedy);
    free(res->n_cont_tokens);
    free(res->n_ctx_tokens);
    memset(res, 0, sizeof(*res));
}
