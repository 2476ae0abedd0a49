// cell.h: the identity of a result cell, the one definition `table`, `gate`, `plot` and `run` share. A results
// row (results.h) is one value of one cell; two rows are the same cell when model, method, wbits, abits, group_size,
// task, metric, seqlen, calib and the normalized options (the limit among them) are equal. What a cell holds
// (value, stderr, n, seconds, device, commit, timestamp) is not part of what it is.
#pragma once
#include <stdbool.h>

#include "results.h"

// Options "k=v;k=v" as a canonical set: items trimmed, empty items and "error=..." (the message of a failed grid
// cell) dropped; keys in lower case with '-' as '_'; "k=1" and "k=true" as "k"; "no_k" as "k=0"; sorted and
// joined with ';'. So "Act-Order; sym=1;no-true-sequential" is "act_order;sym;true_sequential=0". The
// "limit=N" that evaluation adds when it scored only N windows or items stays an item (it is part of the cell)
// and is also returned in *limit (0: none).
#define NT_CELL_OPTIONS_MAX 512
void nt_options_normalize(const char *options, char out[NT_CELL_OPTIONS_MAX], long *limit);
// Normalized options without their "limit=N" item (table: the limit goes with the task's column).
void nt_options_without_limit(const char *options, char out[NT_CELL_OPTIONS_MAX]);

typedef struct {
    const char *model, *method;
    int wbits, abits, group_size; // abits 16: activations not quantized
    const char *task, *metric;
    int seqlen;
    const char *calib;
    char options[NT_CELL_OPTIONS_MAX]; // normalized ("" when none), the limit included
    long limit;                        // the row's "limit=N" (0: the whole task)
} nt_cell;

// The cell of a row (its strings point into the row).
void nt_cell_of_row(const nt_result_row *r, nt_cell *c);
bool nt_cell_same(const nt_cell *a, const nt_cell *b);

// Whether row is a cell that a grid asks for, given as a pattern that leaves some fields open: metric NULL (any),
// seqlen 0 (the model's default), calib "" (the method's default) or a source without the ":NxL:seedS" that
// evaluation adds ("c4" matches "c4:128x2048:seed0"; ":32x512", the method's own source, matches "gen:32x512:seed0"),
// and limit: the grid's limit, which a row without a limit
// also satisfies (evaluation names a limit only when it cut the task). Everything else must be equal.
bool nt_cell_matches(const nt_cell *pattern, const nt_cell *row);

// "model method wWBITS[aABITS] gGROUP task metric" (aABITS when abits < 16) (plus " seqlen=N calib=C options=O", the rest of the cell, when
// with_run is true) into buf.
void nt_cell_describe(const nt_cell *c, bool with_run, char *buf, size_t size);
