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

// Reads the results CSVs (later rows of a cell win, with a note on stderr; failed-cell rows are left out) and
// writes the Markdown tables to md (NULL: none) and, when out_csv is not NULL, the same tables as CSV to that
// file. pivot NULL is "task". Returns -1 with a message on a bad pivot (a usage error), an unreadable or
// malformed CSV, no rows, or a write failure.
int nt_table_write(const char *const *paths, size_t n_paths, const char *pivot, FILE *md, const char *out_csv,
                   nt_err *err);
