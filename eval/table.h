// table.h: comparison tables of results CSVs in the layout of a quantization paper (`normtweak table`): rows model
// x bits x group x method (norm tweaking right after its base method), columns the tasks (or another pivot),
// then a table of deltas against the float model and against each tweak's base method. Markdown for people, CSV
// for tools. The layout rules are in table.c's header.
#pragma once
#include <stdio.h>

#include "nt.h"

// The dimension that pivot names (task, wbits, group_size or group, method, model, options, seqlen, calib), or
// -1 with a usage error.
int nt_table_pivot_check(const char *pivot, nt_err *err);

typedef struct {
    const char *pivot;   // the dimension that makes the columns; NULL: "task"
    FILE *md;            // the Markdown tables (NULL: none)
    const char *out_csv; // also the same tables as CSV into this file (NULL: none); written atomically
    FILE *notes;         // notes on duplicate and failed-cell rows (NULL: stderr)
} nt_table_opts;

// Reads the results CSVs (later rows of a cell win, with a note; failed-cell rows are left out) and writes the
// tables. Returns -1 with a message on a bad pivot (a usage error), an unreadable or malformed CSV, no rows, or a
// write failure.
int nt_table_write(const char *const *paths, size_t n_paths, const nt_table_opts *o, nt_err *err);
