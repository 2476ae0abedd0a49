// plot.h: charts through gnuplot (run as a subprocess on a generated script; the script is kept beside the
// image, DIR/NAME.gp, so a figure can be restyled by hand). No gnuplot: a one-line error, never a crash.
#pragma once
#include "csv_read.h"

// The gnuplot binary: $NT_GNUPLOT, else "gnuplot" on PATH. Returns 0 when it is there, else -1 with a hint.
int nt_gnuplot_find(char *path, size_t size, nt_err *err);

// Quality vs bits: one chart per model x task x metric, DIR/MODEL_TASK_METRIC.FORMAT: the metric against the
// weight bits, one line per quantized method and group size (norm tweaking solid, its base dashed in the same
// color), the float model as a horizontal dashed line. ppl on a log axis when it spans more than 5x; acc in %.
// Rows with metric "error" are left out; duplicates: the latest (as `table`). format: "png" or "svg".
// Appends each file written to *files (malloc'd strings; free with nt_plot_files_free).
int nt_plot_quality(const nt_results_set *s, const char *out_dir, const char *format, char ***files, size_t *n_files,
                    nt_err *err);

// Kernel speedup vs M from a benchmark CSV, with its columns named by the caller: x (e.g. "M"), y (e.g.
// "speedup"), series (comma-separated columns whose values label a line, e.g. "bits,group_size") and panel (a
// column such as "layer" or "shape": one chart per value, DIR/speedup_VALUE.FORMAT; NULL or "": one chart,
// DIR/speedup.FORMAT). x on a log2 axis when it spans 8x or more; a dashed line at 1x (the dense baseline).
typedef struct {
    const char *x, *y, *series, *panel;
} nt_plot_columns;
int nt_plot_speedup(const nt_csv *c, const nt_plot_columns *cols, const char *out_dir, const char *format,
                    char ***files, size_t *n_files, nt_err *err);

void nt_plot_files_free(char ***files, size_t *n_files);
