// grid.h: experiment grids (`normtweak run EXPERIMENT.json`): models x methods x bits x groups x options x tasks,
// evaluated cell by cell into one results CSV, resuming after a kill; the JSON keys are in grid.c's header.
#pragma once
#include <stdbool.h>
#include <stdio.h>

#include "nt.h"

typedef struct {
    const char *out;    // the results CSV; NULL: the file's "out"
    bool dry_run;       // list the cells (to listing) and whether each is done; evaluate nothing
    FILE *listing;      // where a dry run lists the cells (stdout)
    FILE *table;        // when not NULL, the table (table.h) of the whole CSV is printed here at the end
    FILE *log;          // progress: the cells started, failed, the summary (NULL: stderr)
} nt_grid_opts;

typedef struct {
    size_t cells;       // in the grid
    size_t done_before; // already in the CSV: skipped
    size_t evaluated;   // rows written by this run
    size_t failed;      // cells that failed in this run (recorded as rows with metric "error")
} nt_grid_result;

// Runs the grid. Returns -1 with a message on an unusable experiment file (a usage error: unknown key, bad
// value, an option no method knows) or when the results CSV cannot be read or written; a failed cell is no error
// here (res->failed counts it, its row says why).
int nt_grid_run(const char *path, const nt_grid_opts *o, nt_grid_result *res, nt_err *err);
