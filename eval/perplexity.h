// perplexity.h: perplexity of a model over the token windows of a task (GPTQ protocol, PROTOCOLS.md):
// each window scored from a fresh context, NLL of tokens 2..seqlen given their prefix.
#pragma once
#include "datasets.h"
#include "gpu.h"
#include "nll.h"
#include "transformer.h"

typedef struct {
    size_t n_windows;  // windows scored
    size_t n_scored;   // tokens scored: n_windows * (seqlen - 1)
    double nll_sum;    // sum of per-token negative log-likelihoods (nats)
    double nll_mean;
    double nll_stderr; // standard error of the mean per-token NLL
    double ppl;        // exp(nll_mean)
    double ppl_stderr; // ppl * nll_stderr (delta method, as llama.cpp reports it)
    double seconds;    // forward passes and scoring, not loading or tokenizing
} nt_ppl_result;

// Scores the first max_windows windows of w (0: all). label names the task in the progress line.
int nt_perplexity(const nt_model *m, const nt_windows *w, size_t max_windows, const char *label, nt_ppl_result *res,
                  nt_err *err);

// How far a model's next-token distributions are from a reference model's (the float model's) over the same
// positions, as llama.cpp's perplexity tool reports them: the mean KL divergence KL(p_ref || p_model) in nats per
// position and the fraction of positions whose most likely token (the first maximum) is the same, each with the
// standard error of its mean over positions (positions are treated as independent, as llama.cpp does: within a
// window they are not, so the error is optimistic). Positions: the perplexity's, every position 1..seqlen-1 of
// every window (llama.cpp scores the second half of each window only).
typedef struct {
    size_t n;           // positions
    double kld, kld_stderr;
    double top1, top1_stderr; // a fraction; stderr sqrt(p (1 - p) / (n - 1))
} nt_kld_result;

// nt_perplexity of m and, in the same pass, its KL divergence and top-1 agreement against ref (same vocabulary:
// else an error) into kres. Both models run every window: the reference's distribution is computed on the fly,
// never stored (its cost: one more forward pass; memory: both models and two logits buffers).
int nt_perplexity_kld(const nt_model *m, const nt_model *ref, const nt_windows *w, size_t max_windows,
                      const char *label, nt_ppl_result *res, nt_kld_result *kres, nt_err *err);

// The same on the device: g uploaded with max_tokens >= the windows' seqlen (eval --device cuda). In
// perplexity_gpu.c (the emulator's tests build it a second time, see there).
int nt_perplexity_gpu(nt_gpu_ctx *ctx, nt_gpu_model *g, const nt_windows *w, size_t max_windows, const char *label,
                      nt_ppl_result *res, nt_err *err);

// The windows loop of both: score(arg, ids, S, nll, kld, top, err) fills nll[0..S-2] for one window of S tokens
// (and, when kld is not NULL, kld[t] and top[t] against the reference model); the sums, progress and statistics
// of *res (and of *kres when not NULL) as above.
typedef int (*nt_window_nll_fn)(void *arg, const int32_t *ids, int S, double *nll, double *kld, bool *top,
                                nt_err *err);
int nt_ppl_score_windows(nt_window_nll_fn score, void *arg, const nt_windows *w, size_t max_windows,
                         const char *label, nt_ppl_result *res, nt_kld_result *kres, nt_err *err);
