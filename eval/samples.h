// samples.h: per-item output of zero-shot scoring (`eval --log-samples DIR`), as lm-eval's --log_samples writes
// it, so that two runs can be compared item by item (`gate --baseline-samples A --candidate-samples B`, gate.h).
//
// DIR/TASK.jsonl, one JSON object per scored item, in task order:
//   {"doc_id": 17, "line": 18, "gold": 2, "pred": 1, "pred_norm": 2, "acc": 0, "acc_norm": 1,
//    "requests": [{"context": "...", "continuation": " ...", "loglik": -12.25, "greedy": false,
//                  "n_ctx_tokens": 41, "n_cont_tokens": 9}, ...]}
// doc_id: the item's index in the task file (skipped items keep their numbers, so --limit N matches lm-eval's
// doc_ids); line: where it starts in the file; pred / pred_norm: the argmax of loglik and of loglik per character;
// acc, acc_norm: 0 or 1 as the metric scores the item (acc_norm only for tasks that report it; LAMBADA: acc is
// the greedy flag of its one request, pred and pred_norm are absent). The mean of acc over the lines is the
// reported acc. A file is written whole (temporary name, then renamed) or not at all.
#pragma once
#include <stdio.h>

#include "tasks.h"
#include "zeroshot.h"

// Writes DIR/TASK.jsonl for the result res of scoring t (DIR is created when missing, one level).
int nt_samples_write(const char *dir, const char *task, const nt_zs_task *t, const nt_zs_result *res, nt_err *err);

// One item as read back.
typedef struct {
    long doc_id;
    long line;
    int gold, pred;  // pred -1 when absent
    int acc;         // 0 / 1
    int acc_norm;    // 0 / 1, -1 when absent
    char *requests;  // the requests' context and continuation strings joined (to check that two runs scored the
                     // same item), malloc'd
} nt_sample;

typedef struct {
    char *path;
    nt_sample *items;
    size_t n;
} nt_samples;

// Reads a JSONL file written by nt_samples_write; a malformed line is an error "PATH:LINE: problem".
int nt_samples_read(const char *path, nt_samples *out, nt_err *err);
void nt_samples_free(nt_samples *s);
