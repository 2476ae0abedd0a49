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
