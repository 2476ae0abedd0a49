// gate.h: the accuracy gate (`normtweak gate`): compares every cell (cell.h) of a candidate results CSV with the
// same cell of a baseline, so a release can be held back when perplexity rises or accuracy drops.
#pragma once
#include <stdbool.h>
#include <stdio.h>

#include "nt.h"

typedef struct {
    double max_ppl_rise; // percent of the baseline value a perplexity-like metric may rise (2)
    double max_acc_drop; // percentage points an accuracy (a fraction 0..1 in the CSV) may drop (0.5)
    bool require_all;    // a baseline row without a candidate row fails the gate
    FILE *notes;         // notes on duplicate rows (NULL: stderr)
} nt_gate_opts;
nt_gate_opts nt_gate_opts_default(void);

typedef struct {
    size_t compared;  // cells with a ppl or acc metric on both sides
    size_t failed;    // of those, the ones that regressed beyond the thresholds (or have no value)
    size_t missing;   // baseline cells without a candidate row
    size_t unmatched; // candidate cells without a baseline row
    size_t ungated;   // matched cells whose metric is neither ppl-like nor acc-like
    bool pass;
} nt_gate_result;

// Reads both CSVs, prints one line per cell ("ok", "FAIL", "missing:", "new:") and a summary to out (NULL: no
// report), fills res. Returns 0 when the gate could decide (res->pass says how), -1 with a message on unusable
// input: an unreadable or malformed CSV, no candidate row matching any baseline row, or nothing to compare.
int nt_gate(const char *baseline, const char *candidate, const nt_gate_opts *o, FILE *out, nt_gate_result *res,
            nt_err *err);

// Item by item (samples.h): which zero-shot items two runs scored differently.
typedef struct {
    size_t tasks;     // task files present in both folders
    size_t items;     // items matched by doc_id
    size_t to_wrong[2]; // items whose acc ([0]) or acc_norm ([1]) went 1 -> 0, over every task
    size_t to_right[2]; // 0 -> 1
    size_t unmatched; // items on one side only
} nt_samples_diff;

// For every TASK.jsonl in both base_dir and cand_dir (written by `eval --log-samples`): the items matched by doc_id
// (their requests must be the same strings, else an error: the runs scored different items), one line per item whose
// acc or acc_norm differs ("flip: TASK doc 17 (line 18): acc 1 -> 0 (gold 2, pred 2 -> 1)"), and a summary line per
// task with the count each way and the change in points it makes, to out (NULL: none). An unreadable folder or
// file, a malformed line, or no task file in common is an error.
int nt_gate_samples(const char *base_dir, const char *cand_dir, FILE *out, nt_samples_diff *res, nt_err *err);
