// csv_read.h: reading CSV files with libcsv (never by hand): a generic table of strings, and results CSVs
// (results/README.md) as typed rows. `table`, `gate`, `plot` and `run` all read through here, so a
// malformed file gives the same one-line error everywhere. Reference code: files are small.
#pragma once
#include "cell.h"
#include "results.h"

// A whole CSV file: the header and the rows as NUL-terminated strings. Every row has n_cols fields
// (a row with another count is an error naming the file and the row).
typedef struct {
    char *path;
    size_t n_cols;
    char **header; // (n_cols)
    size_t n_rows;
    char **cells;  // (n_rows * n_cols), row-major
} nt_csv;

int nt_csv_read(const char *path, nt_csv *out, nt_err *err);
void nt_csv_free(nt_csv *c);
// Index of the column named `name`, or -1.
int nt_csv_col(const nt_csv *c, const char *name);
const char *nt_csv_cell(const nt_csv *c, size_t row, int col);

// Writes one CSV field followed by ',' or (last) '\n'; quoted with libcsv's csv_fwrite only when needed.
void nt_csv_put(FILE *f, const char *s, bool last);
// The same for a printf-formatted field.
void nt_csv_putf(FILE *f, bool last, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

// One row of a results CSV. The strings point into the nt_results_set that read it.
typedef struct {
    nt_result_row r;       // model ... device; a missing optional column reads as "" / 0 / NAN
    const char *commit;    // "" when absent
    const char *timestamp; // ISO 8601 UTC ("" when absent): sorts as text
    const char *file;      // the CSV it came from
    long line;             // its data row in that file (1 = the first row after the header)
    size_t order;          // position across all files read, in reading order
    nt_cell cell;          // which cell the row is a value of (cell.h)
} nt_result_rec;

typedef struct {
    nt_result_rec *recs; // (n)
    size_t n;
    nt_csv *files;       // (n_files) the storage the records point into
    size_t n_files;
} nt_results_set;

// Reads results CSVs (columns found by name; model, method, wbits, group_size, task, metric and value are
// required, the rest optional). Numbers that do not parse are errors naming the file, row and column; an
// empty value/stderr reads as NAN (the `run` command's error rows have no value).
int nt_results_read(const char *const *paths, size_t n_paths, nt_results_set *out, nt_err *err);
void nt_results_set_free(nt_results_set *s);

// True when a is the later of two rows for the same cell: later timestamp, then later in reading order.
bool nt_result_rec_newer(const nt_result_rec *a, const nt_result_rec *b);

// Duplicate rows: of the records for which `same` holds pairwise, keeps the latest (nt_result_rec_newer) and
// prints one note per duplicated cell to `note` (may be NULL): "<who>: note: N rows for <cell>; kept the
// latest (<timestamp>, <file> row <line>)". Records for which `skip` is true (may be NULL) are left out.
// Returns a malloc'd array of pointers into s (in reading order of each cell's first row) and its length
// in *n_out, or NULL when out of memory.
const nt_result_rec **nt_results_latest(const nt_results_set *s,
                                        bool (*same)(const nt_result_rec *, const nt_result_rec *),
                                        bool (*skip)(const nt_result_rec *), FILE *note, const char *who,
                                        size_t *n_out);
// nt_cell_describe of the row's cell.
void nt_result_rec_describe(const nt_result_rec *x, bool with_run, char *buf, size_t size);

// Whether two rows are values of the same cell (nt_cell_same).
bool nt_result_same_cell(const nt_result_rec *a, const nt_result_rec *b);

// Metric kinds: perplexity-like (lower is better) and accuracy-like (fractions 0..1, higher is better).
bool nt_metric_is_ppl(const char *metric);
bool nt_metric_is_acc(const char *metric);
