// zeroshot.h: zero-shot accuracy scored as lm-evaluation-harness v0.4.5 scores it with its HF causal-LM
// backend (HFLM, batch size 1, no chat template, no few-shot), on the tasks of datasets/tasks.h:
// lambada_openai (acc, perplexity), hellaswag, piqa, arc_easy, arc_challenge, openbookqa (acc, acc_norm),
// winogrande (partial scoring, acc), boolq (acc).
//
// Per request (context, continuation), as HFLM.loglikelihood does it:
//   - whitespace that ends the context moves to the front of the continuation;
//   - context tokens = encode(context), continuation tokens = encode(context + continuation)[len(context
//     tokens):] (the pair is tokenized whole, so a merge across the boundary lands in the continuation);
//     encode adds no BOS/EOS (HFLM's add_special_tokens=False for causal models; Gemma: True);
//     an empty context becomes the single token BOS (EOS when the tokenizer has no BOS);
//   - the model sees (context + continuation)[-(max_length+1):][:-1], max_length = the model's
//     max_position_embeddings, and the last len(continuation) positions are scored:
//     loglik = sum of log_softmax(logits)[token], greedy = every token is its row's argmax (first maximum).
// Metrics: acc (argmax of loglik over choices, first maximum), acc_norm (argmax of loglik / characters of the
// choice string), lambada acc = greedy, perplexity = exp(-mean loglik). Standard errors: lm-eval's
// mean_stderr, sqrt(sum (x - mean)^2 / (n - 1)) / sqrt(n); for perplexity lm-eval bootstraps (random), this
// reports the delta-method value ppl * mean_stderr(loglik) instead.
//
// Speed: requests go whole, up to 8 at a time, as the lockstep sequences of one run (longest first, each
// padded on the right to the batch's longest: padding is never seen by a scored position), so that every
// linear multiplies up to 8x the rows (OpenBLAS repacks a linear's weights on every call, most of the time of
// a call with a choice's few tokens). Where the choices' shared context would save more than batching (BoolQ's
// long passages; zeroshot.c's choose_shared counts a call as 40 token rows), requests go one at a time instead:
// each rewinds the KV cache to the longest prefix it shares with what the cache holds (never past its last
// context token, whose logits are needed) and feeds only the rest. Either way the rows are those of feeding
// every request alone, to fp32 rounding. The hidden states that predict continuation tokens are queued across
// requests and items and go through the lm_head up to 256 rows per GEMM (one small GEMM per request spent most
// of its time packing the vocab x dim matrix).
#pragma once
#include "tasks.h"
#include "tokenizer.h"
#include "transformer.h"

typedef struct {
    char name[16];  // "acc", "acc_norm", "perplexity"
    double value;
    double stderr_; // NAN when undefined (one item)
} nt_zs_metric;

typedef struct {
    char task[32];
    nt_zs_metric metrics[3];
    int n_metrics;
    long n_items;   // items scored
    long n_skipped; // malformed items left out (skip_bad_items)
    long n_requests;
    int max_length; // the model context the requests were truncated to
    double seconds; // tokenizing, forward passes and scoring (not reading the task file)
    int batch;      // requests fed together: > 1 for one-request tasks (LAMBADA) in batches, else 1
    // Per item, in file order:
    size_t *item_line; // (n_items) line of the task file where the item starts
    size_t *item_index; // (n_items) the item's index in the task (nt_zs_task.items), i.e. its document number
    int *gold;         // (n_items)
    int *pred;         // (n_items) argmax of loglik (lambada: 0)
    int *pred_norm;    // (n_items) argmax of loglik / choice characters
    size_t *req_start; // (n_items + 1) the requests of item i are req_start[i] .. req_start[i+1]-1
    // Per request (item by item, choice by choice):
    double *loglik;     // (n_requests) sum of continuation token log-probs (nats)
    bool *greedy;       // (n_requests)
    int *n_cont_tokens; // (n_requests)
    int *n_ctx_tokens;  // (n_requests) context tokens the model saw (after left truncation)
} nt_zs_result;

// True if task is one of the zero-shot tasks above.
bool nt_zeroshot_task_known(const char *task);

// Loads the first `limit` items of a task (limit <= 0: all; see nt_zs_task_load) from data_dir and scores
// them. A malformed item is an error "FILE:LINE: problem" unless skip_bad_items, which leaves it out and counts
// it in res->n_skipped; so are items lm-eval cannot score (a continuation with no tokens of its own, or longer
// than the model's context). Progress on stderr. Free res with nt_zs_result_free.
int nt_zeroshot_eval(const nt_model *m, const nt_tokenizer *tok, const char *task, const char *data_dir, long limit,
                     bool skip_bad_items, nt_zs_result *res, nt_err *err);

// Scores already loaded items (tests use it on hand-made tasks). max_length <= 0: the model's maximum
// (cfg.max_pos); a smaller value truncates as lm-eval's max_length would.
int nt_zeroshot_score(const nt_model *m, const nt_tokenizer *tok, const nt_zs_task *t, int max_length,
                      bool skip_bad_items, nt_zs_result *res, nt_err *err);
// The same with a choice of how: max_batch 1 scores one request at a time, each continuing the longest prefix
// the previous one left in the KV cache (a context shared by an item's choices is fed once); max_batch 2..8
// feeds that many whole requests together as lockstep sequences (the same rows, through larger products);
// 0 (nt_zeroshot_score) batches 8 unless the shared prefixes save more (zeroshot.c: choose_shared; BoolQ's
// long passages). res->batch says which ran.
int nt_zeroshot_score_batch(const nt_model *m, const nt_tokenizer *tok, const nt_zs_task *t, int max_length,
                            bool skip_bad_items, int max_batch, nt_zs_result *res, nt_err *err);

// The metric named name in res, or NULL.
const nt_zs_metric *nt_zs_result_metric(const nt_zs_result *res, const char *name);
void nt_zs_result_free(nt_zs_result *res);
