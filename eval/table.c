// table.c: comparison tables from results CSVs in the paper's layout (table.h; `normtweak table`).
//
// Rows are model x wbits (x abits: when some row quantizes activations, the bits read W8A8, W4A16, W4A8, W4A4,
// high to low as the paper lays them out, under a "W/A" header) x group x method (x options, x seqlen, x calib: each a column only when it tells cells
// apart: rows with different options are different experiments; the dimensions left after the pivot; every cell
// of cell.h lands in a place of its own), columns the pivot's values
// (tasks by default, one column per task and metric; the metric joins the header only when a task has
// several). Within a model the float row (method fp) comes first, then bits high to low, per-channel before
// groups, groups large to small, and methods rtn, rtn+nt, gptq, gptq+nt, others: norm tweaking ("+nt") always
// right after its base method. Models and tasks keep the order they first appear in (perplexity tasks first).
//
// After the values comes a delta table, same layout plus a `vs` column: for every quantized row a line
// "vs fp" (value - the float model's value on the same model and task) and for every "+nt" row a line
// "vs <base>" (value - its base method's value at the same bits and group): what a reader of a norm tweaking
// paper looks for, how far from float and how much the tweak recovers. Markdown shows ppl with 2 decimals and
// accuracies in % (deltas in percentage points); the CSV keeps the stored units (acc as fractions 0..1).
// With tasks as columns (the default pivot) a limit ("limit=N": the first N windows or items) belongs to the
// task's column, "wikitext2 ppl (limit 8)", not to the row, so one experiment that scored its perplexity tasks on
// N windows and its zero-shot tasks on M items stays one row; deltas compare cells of the same limit only.
// Missing cells: "—" in Markdown, empty in the CSV. Duplicate rows for one cell: the latest by timestamp wins
// and a note on stderr says so. Rows with metric "error" (failed cells of `normtweak run`) are left out.
#define _GNU_SOURCE
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <string.h>

#include <utf8proc.h>

#include "csv_read.h"
#include "method.h"
#include "table.h"

// options: the cell's normalized options (e.g. "act_order;limit=40"); a column only when some row has options;
// seqlen and calib: columns only when they tell cells apart (several seqlens; a method with several calibrations)
enum dim { D_MODEL, D_TASK, D_WBITS, D_GROUP, D_METHOD, D_OPTIONS, D_SEQLEN, D_CALIB, N_DIMS };
static const char *const dim_names[N_DIMS] = {"model", "task", "wbits", "group_size", "method", "options",
                                              "seqlen", "calib"};

typedef struct {
    const nt_result_rec *rep; // a record with these keys (for labels)
    long key[N_DIMS];         // sort keys of its dimensions (row: the non-pivot ones; column: the pivot's)
} line_key;

typedef struct {
    enum dim pivot;
    const nt_result_rec **cells; // deduplicated, no error rows (pivot task: copies in own, options without limit)
    nt_result_rec *own;
    size_t n_cells;
    long (*keys)[N_DIMS];        // (n_cells) sort key of each cell per dimension
    line_key *rows, *cols;
    size_t n_rows, n_cols;
    const nt_result_rec **grid;  // (n_rows * n_cols), NULL: missing
    const nt_result_rec **tasks; // one record per distinct task+metric, in column order
    size_t n_tasks;
    bool show_options;           // some row has options: an options column
    bool show_seqlen, show_calib; // they tell cells apart: a column each
    bool show_abits;             // some row quantizes activations: bits read "W4A8" (header "W/A")
} table;

static bool is_error_row(const nt_result_rec *x) { return strcmp(x->r.metric, "error") == 0; }

// The method of a row in the method table, or NULL (a method normtweak does not know: shown after the others).
static const nt_method *method_of(const nt_result_rec *x) { return nt_method_find(x->r.method); }
// The base method a tweaked row is compared with ("gptq" for "gptq+nt"), or NULL.
static const char *base_of(const nt_result_rec *x) {
    const nt_method *m = method_of(x);
    return m && m->tweak ? m->base : NULL;
}

static bool is_fp(const nt_result_rec *x) { return strcmp(x->r.method, "fp") == 0; }

// Order of first appearance of a string among the cells (by a field picker).
static long appearance(const table *t, const char *(*field)(const nt_result_rec *), const char *s) {
    for (size_t i = 0; i < t->n_cells; i++)
        if (strcmp(field(t->cells[i]), s) == 0) return (long)i;
    return (long)t->n_cells;
}
static const char *f_model(const nt_result_rec *x) { return x->r.model; }
static const char *f_options(const nt_result_rec *x) { return x->cell.options; }
static const char *f_calib(const nt_result_rec *x) { return x->r.calib; }
static const char *f_method(const nt_result_rec *x) { return x->r.method; }

// Methods in the method table's order (each tweak right after its base), unknown ones after them.
static long method_key(const table *t, const nt_result_rec *x) {
    for (size_t i = 0; i < nt_method_count(); i++)
        if (strcmp(nt_method_at(i)->name, x->r.method) == 0) return (long)i;
    return (long)nt_method_count() + appearance(t, f_method, x->r.method);
}

static long task_key(const table *t, const nt_result_rec *x) {
    for (size_t i = 0; i < t->n_tasks; i++)
        if (strcmp(t->tasks[i]->r.task, x->r.task) == 0 && strcmp(t->tasks[i]->r.metric, x->r.metric) == 0 &&
            t->tasks[i]->cell.limit == x->cell.limit)
            return (long)i;
    return (long)t->n_tasks;
}

static int cmp_keys(const long *a, const long *b, enum dim skip_or_only, bool only) {
    for (int d = 0; d < N_DIMS; d++) {
        if (only ? d != (int)skip_or_only : d == (int)skip_or_only) continue;
        if (a[d] != b[d]) return a[d] < b[d] ? -1 : 1;
    }
    return 0;
}

static enum dim g_pivot; // for the qsort comparators
static int cmp_rows(const void *a, const void *b) {
    return cmp_keys(((const line_key *)a)->key, ((const line_key *)b)->key, g_pivot, false);
}
static int cmp_cols(const void *a, const void *b) {
    return cmp_keys(((const line_key *)a)->key, ((const line_key *)b)->key, g_pivot, true);
}

static void table_free(table *t) {
    free(t->cells);
    free(t->own);
    free(t->keys);
    free(t->rows);
    free(t->cols);
    free(t->grid);
    free(t->tasks);
    memset(t, 0, sizeof(*t));
}

// Adds key to the distinct list (rows or columns) unless present; returns its index.
static size_t add_line(line_key *list, size_t *n, const nt_result_rec *rep, const long *key, bool column) {
    for (size_t i = 0; i < *n; i++)
        if (cmp_keys(list[i].key, key, g_pivot, column) == 0) return i;
    list[*n].rep = rep;
    memcpy(list[*n].key, key, sizeof(list[*n].key));
    return (*n)++;
}

static int table_build(table *t, const nt_results_set *s, enum dim pivot, FILE *notes, nt_err *err) {
    memset(t, 0, sizeof(*t));
    t->pivot = pivot;
    g_pivot = pivot;
    size_t n_err = 0;
    for (size_t i = 0; i < s->n; i++) n_err += is_error_row(&s->recs[i]);
    if (n_err) fprintf(notes, "normtweak table: note: %zu rows with metric \"error\" (failed cells) left out\n", n_err);
    t->cells = nt_results_latest(s, nt_result_same_cell, is_error_row, notes, "normtweak table", &t->n_cells);
    if (!t->cells) return nt_fail(err, "out of memory");
    if (t->n_cells == 0) return nt_fail(err, "no result rows to tabulate");
    size_t n = t->n_cells;
    if (pivot == D_TASK) { // the limit moves from the row's options to the task's column
        t->own = calloc(n, sizeof(*t->own));
        if (!t->own) return nt_fail(err, "out of memory");
        for (size_t i = 0; i < n; i++) {
            t->own[i] = *t->cells[i];
            nt_options_without_limit(t->cells[i]->cell.options, t->own[i].cell.options);
            t->cells[i] = &t->own[i];
        }
    }
    t->keys = calloc(n, sizeof(*t->keys));
    t->rows = calloc(n, sizeof(line_key));
    t->cols = calloc(n, sizeof(line_key));
    t->tasks = calloc(n, sizeof(*t->tasks));
    if (!t->keys || !t->rows || !t->cols || !t->tasks) return nt_fail(err, "out of memory");
    // distinct tasks (task+metric): perplexity first, then in order of appearance
    for (int pass = 0; pass < 2; pass++)
        for (size_t i = 0; i < n; i++) {
            const nt_result_rec *x = t->cells[i];
            if (nt_metric_is_ppl(x->r.metric) != (pass == 0)) continue;
            if (task_key(t, x) == (long)t->n_tasks) t->tasks[t->n_tasks++] = x;
        }
    // seqlen and calib become columns when they tell apart cells that agree on everything else
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < i; j++) {
            const nt_result_rec *x = t->cells[i], *y = t->cells[j];
            bool rest = strcmp(x->r.model, y->r.model) == 0 && strcmp(x->r.method, y->r.method) == 0 &&
                        x->r.wbits == y->r.wbits && x->cell.abits == y->cell.abits &&
                        x->r.group_size == y->r.group_size &&
                        strcmp(x->r.task, y->r.task) == 0 && strcmp(x->r.metric, y->r.metric) == 0 &&
                        strcmp(x->cell.options, y->cell.options) == 0 && x->cell.limit == y->cell.limit;
            t->show_seqlen |= rest && x->r.seqlen != y->r.seqlen;
            t->show_calib |= rest && x->r.seqlen == y->r.seqlen && strcmp(x->r.calib, y->r.calib) != 0;
        }
    // the float row first within a model: fold "is not fp" into the bits and group keys when method is a row
    const long not_fp = pivot != D_METHOD ? 1L << 40 : 0;
    for (size_t i = 0; i < n; i++) t->show_abits |= t->cells[i]->cell.abits < 16;
    for (size_t i = 0; i < n; i++) {
        const nt_result_rec *x = t->cells[i];
        long *k = t->keys[i];
        long g = x->r.group_size;
        k[D_MODEL] = appearance(t, f_model, x->r.model);
        k[D_TASK] = task_key(t, x);
        k[D_WBITS] = (is_fp(x) ? 0 : not_fp) - (64L * x->r.wbits + x->cell.abits); // W8A8, W8A16?, W4A16, W4A8, W4A4
        k[D_GROUP] = (is_fp(x) ? 0 : not_fp) + (g == 0 ? 0 : g == -1 ? 1 : 2 + (long)INT_MAX - g);
        k[D_METHOD] = method_key(t, x);
        k[D_OPTIONS] = x->cell.options[0] ? 1 + appearance(t, f_options, x->cell.options) : 0;
        k[D_SEQLEN] = t->show_seqlen || pivot == D_SEQLEN ? x->r.seqlen : 0;
        k[D_CALIB] = t->show_calib || pivot == D_CALIB ? appearance(t, f_calib, x->r.calib) : 0;
        t->show_options |= x->cell.options[0] != '\0';
        add_line(t->rows, &t->n_rows, x, k, false);
        add_line(t->cols, &t->n_cols, x, k, true);
    }
    qsort(t->rows, t->n_rows, sizeof(line_key), cmp_rows);
    qsort(t->cols, t->n_cols, sizeof(line_key), cmp_cols);
    t->grid = calloc(t->n_rows * t->n_cols, sizeof(*t->grid));
    if (!t->grid) return nt_fail(err, "out of memory");
    for (size_t i = 0; i < n; i++) {
        size_t r = 0, c = 0;
        while (cmp_keys(t->rows[r].key, t->keys[i], pivot, false) != 0) r++;
        while (cmp_keys(t->cols[c].key, t->keys[i], pivot, true) != 0) c++;
        t->grid[r * t->n_cols + c] = t->cells[i];
    }
    return 0;
}

// The float cell for x (same model, task, metric and seqlen), and x's base method cell (same bits, group and
// seqlen; the same options when there is one, else the first).
static const nt_result_rec *ref_fp(const table *t, const nt_result_rec *x) {
    for (size_t i = 0; i < t->n_cells; i++) {
        const nt_result_rec *y = t->cells[i];
        if (is_fp(y) && strcmp(y->r.model, x->r.model) == 0 && strcmp(y->r.task, x->r.task) == 0 &&
            strcmp(y->r.metric, x->r.metric) == 0 && y->r.seqlen == x->r.seqlen && y->cell.limit == x->cell.limit)
            return y;
    }
    return NULL;
}

static const nt_result_rec *ref_base(const table *t, const nt_result_rec *x) {
    const char *base = base_of(x);
    if (!base) return NULL;
    const nt_result_rec *any = NULL; // the base with other options, when none has the same
    for (size_t i = 0; i < t->n_cells; i++) {
        const nt_result_rec *y = t->cells[i];
        if (strcmp(y->r.method, base) == 0 && strcmp(y->r.model, x->r.model) == 0 && y->r.wbits == x->r.wbits &&
            y->cell.abits == x->cell.abits &&
            y->r.group_size == x->r.group_size && strcmp(y->r.task, x->r.task) == 0 &&
            strcmp(y->r.metric, x->r.metric) == 0 && y->r.seqlen == x->r.seqlen && y->cell.limit == x->cell.limit) {
            if (strcmp(y->cell.options, x->cell.options) == 0) return y;
            if (!any) any = y;
        }
    }
    return any;
}

// ---- rendering: a matrix of strings, then Markdown or CSV ----

typedef struct {
    char **s; // (n_lines * n_cols) malloc'd strings; NULL: missing
    size_t n_lines, n_cols, cap;
    bool *right; // (n_cols) right-aligned (numbers)
} strtab;

static char *dupf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static char *dupf(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    char *s = NULL;
    if (vasprintf(&s, fmt, ap) < 0) s = NULL;
    va_end(ap);
    return s;
}

static char **strtab_line(strtab *st) {
    if (st->n_lines == st->cap) {
        size_t cap = st->cap ? 2 * st->cap : 16;
        char **g = realloc(st->s, cap * st->n_cols * sizeof(char *));
        if (!g) return NULL;
        st->s = g;
        st->cap = cap;
    }
    char **line = st->s + st->n_lines++ * st->n_cols;
    memset(line, 0, st->n_cols * sizeof(char *));
    return line;
}

static void strtab_free(strtab *st) {
    for (size_t i = 0; i < st->n_lines * st->n_cols; i++) free(st->s[i]);
    free(st->s);
    free(st->right);
    memset(st, 0, sizeof(*st));
}

static bool shown(const table *t, int d) {
    if (d == (int)t->pivot) return false;
    return d == D_OPTIONS ? t->show_options : d == D_SEQLEN ? t->show_seqlen : d == D_CALIB ? t->show_calib : true;
}

static size_t n_row_fields(const table *t) {
    size_t k = 0;
    for (int d = 0; d < N_DIMS; d++)
        if (shown(t, d)) k += d == D_TASK ? 2 : 1; // task and metric
    return k;
}

// The row-dimension fields of x (markdown: groups as "per-channel"/"n/a") into line[0..].
static size_t put_row_fields(char **line, const nt_result_rec *x, const table *t, bool md) {
    size_t k = 0;
    for (int d = 0; d < N_DIMS; d++) {
        if (!shown(t, d)) continue;
        switch (d) {
        case D_MODEL: line[k++] = strdup(x->r.model); break;
        case D_TASK:
            line[k++] = strdup(x->r.task);
            line[k++] = strdup(x->r.metric);
            break;
        case D_WBITS:
            line[k++] = t->show_abits ? dupf("W%dA%d", x->r.wbits, x->cell.abits) : dupf("%d", x->r.wbits);
            break;
        case D_GROUP:
            if (md && x->r.group_size == -1) line[k++] = strdup("per-channel");
            else if (md && x->r.group_size == 0) line[k++] = strdup("n/a");
            else line[k++] = dupf("%d", x->r.group_size);
            break;
        case D_METHOD: line[k++] = strdup(x->r.method); break;
        case D_OPTIONS: { // as written (the key is normalized); with tasks as columns, without the limit
            char o[NT_CELL_OPTIONS_MAX];
            if (t->pivot == D_TASK) nt_options_without_limit(x->r.options, o);
            line[k++] = strdup(t->pivot == D_TASK ? o : x->r.options);
            break;
        }
        case D_SEQLEN: line[k++] = dupf("%d", x->r.seqlen); break;
        case D_CALIB: line[k++] = strdup(x->r.calib[0] ? x->r.calib : "-"); break;
        }
    }
    return k;
}

static bool task_has_one_metric(const table *t, const nt_result_rec *x) { // (whatever the limits)
    for (size_t i = 0; i < t->n_tasks; i++)
        if (strcmp(t->tasks[i]->r.task, x->r.task) == 0 && strcmp(t->tasks[i]->r.metric, x->r.metric) != 0) return false;
    return true;
}

static char *col_label(const table *t, const nt_result_rec *x) {
    switch (t->pivot) {
    case D_MODEL: return strdup(x->r.model);
    case D_TASK: {
        char lim[40] = "";
        if (x->cell.limit) snprintf(lim, sizeof(lim), " (limit %ld)", x->cell.limit);
        return task_has_one_metric(t, x) ? dupf("%s%s", x->r.task, lim)
                                                 : dupf("%s %s%s", x->r.task, x->r.metric, lim);
    }
    case D_WBITS: return t->show_abits ? dupf("W%dA%d", x->r.wbits, x->cell.abits) : dupf("W%d", x->r.wbits);
    case D_GROUP:
        return x->r.group_size == -1 ? strdup("per-channel") : x->r.group_size == 0 ? strdup("no group")
                                                                                     : dupf("g%d", x->r.group_size);
    case D_METHOD: return strdup(x->r.method);
    case D_OPTIONS: return strdup(x->r.options[0] ? x->r.options : "no options");
    case D_SEQLEN: return dupf("seqlen %d", x->r.seqlen);
    case D_CALIB: return strdup(x->r.calib[0] ? x->r.calib : "no calibration");
    default: return NULL;
    }
}

static char *fmt_value(const char *metric, double v, bool md, bool delta) {
    if (isnan(v)) return NULL;
    if (!md) return dupf("%.10g", v);
    if (nt_metric_is_acc(metric)) return dupf(delta ? "%+.2f" : "%.2f", 100.0 * v);
    if (nt_metric_is_ppl(metric)) return dupf(delta ? "%+.2f" : "%.2f", v);
    return dupf(delta ? "%+.4g" : "%.4g", v);
}

// Builds the values (deltas == false) or the delta table as strings.
static int render(const table *t, bool md, bool deltas, strtab *st) {
    size_t nf = n_row_fields(t), with_vs = (deltas || !md) ? 1 : 0;
    memset(st, 0, sizeof(*st));
    st->n_cols = nf + with_vs + t->n_cols;
    st->right = calloc(st->n_cols, sizeof(bool));
    if (!st->right) return -1;
    char **h = strtab_line(st);
    if (!h) return -1;
    size_t k = 0;
    for (int d = 0; d < N_DIMS; d++) {
        if (!shown(t, d)) continue;
        if (d == D_TASK) h[k++] = strdup("task"), h[k++] = strdup("metric");
        else st->right[k] = d == D_WBITS, h[k++] = strdup(d == D_WBITS && t->show_abits ? "W/A" : dim_names[d]);
    }
    if (with_vs) h[k++] = strdup("vs");
    for (size_t c = 0; c < t->n_cols; c++) st->right[k] = true, h[k++] = col_label(t, t->cols[c].rep);
    for (size_t r = 0; r < t->n_rows; r++) {
        const nt_result_rec **g = t->grid + r * t->n_cols;
        for (int which = deltas ? 0 : -1; which < (deltas ? 2 : 0); which++) { // -1 values, 0 vs fp, 1 vs base
            bool any = false;
            for (size_t c = 0; c < t->n_cols && !any; c++)
                any = g[c] && (which < 0 || (which == 0 ? !is_fp(g[c]) && ref_fp(t, g[c]) : ref_base(t, g[c]) != NULL));
            if (!any) continue;
            char **line = strtab_line(st);
            if (!line) return -1;
            k = put_row_fields(line, t->rows[r].rep, t, md);
            if (with_vs) {
                const char *base = t->pivot != D_METHOD ? base_of(t->rows[r].rep) : NULL;
                line[k++] = strdup(which < 0 ? "" : which == 0 ? "fp" : base ? base : "base");
            }
            for (size_t c = 0; c < t->n_cols; c++, k++) {
                const nt_result_rec *x = g[c];
                if (!x) continue;
                const nt_result_rec *ref = which < 0 ? NULL : which == 0 ? (is_fp(x) ? NULL : ref_fp(t, x)) : ref_base(t, x);
                if (which >= 0 && !ref) continue;
                line[k] = fmt_value(x->r.metric, which < 0 ? x->r.value : x->r.value - ref->r.value, md, which >= 0);
            }
        }
    }
    return 0;
}

// Terminal columns of a UTF-8 string (utf8proc's East Asian width: "—" is 1, CJK 2, combining marks 0); an
// invalid byte counts as one column.
static size_t display_width(const char *s) {
    const utf8proc_uint8_t *p = (const utf8proc_uint8_t *)s;
    size_t w = 0;
    for (utf8proc_int32_t cp; *p;) {
        utf8proc_ssize_t n = utf8proc_iterate(p, -1, &cp);
        if (n <= 0) {
            w++, p++;
            continue;
        }
        w += (size_t)utf8proc_charwidth(cp);
        p += n;
    }
    return w;
}

static void print_markdown(FILE *f, const strtab *st) {
    size_t *w = calloc(st->n_cols, sizeof(size_t));
    if (!w) return;
    for (size_t i = 0; i < st->n_lines * st->n_cols; i++) {
        size_t dw = st->s[i] ? display_width(st->s[i]) : 1;
        if (dw > w[i % st->n_cols]) w[i % st->n_cols] = dw;
    }
    for (size_t c = 0; c < st->n_cols; c++) w[c] = w[c] < 3 ? 3 : w[c];
    for (size_t l = 0; l < st->n_lines; l++) {
        for (size_t c = 0; c < st->n_cols; c++) {
            const char *s = st->s[l * st->n_cols + c];
            if (!s) s = "—";
            size_t pad = w[c] - display_width(s);
            fprintf(f, "| %*s%s%*s ", st->right[c] ? (int)pad : 0, "", s, st->right[c] ? 0 : (int)pad, "");
        }
        fputs("|\n", f);
        if (l == 0) {
            for (size_t c = 0; c < st->n_cols; c++) {
                fputs("|", f);
                for (size_t i = 0; i < w[c] + 1; i++) fputc('-', f);
                fputc(st->right[c] ? ':' : '-', f);
            }
            fputs("|\n", f);
        }
    }
    free(w);
}

static void print_csv(FILE *f, const strtab *st, size_t skip_header) {
    for (size_t l = skip_header; l < st->n_lines; l++)
        for (size_t c = 0; c < st->n_cols; c++) nt_csv_put(f, st->s[l * st->n_cols + c], c + 1 == st->n_cols);
}

static void print_legend(FILE *f, const table *t, bool deltas) {
    bool ppl = false, acc = false;
    for (size_t i = 0; i < t->n_tasks; i++) {
        ppl |= nt_metric_is_ppl(t->tasks[i]->r.metric);
        acc |= nt_metric_is_acc(t->tasks[i]->r.metric);
    }
    const char *sep = "";
    if (ppl) fprintf(f, "ppl: perplexity, lower is better%s.", deltas ? "; deltas in perplexity points" : ""), sep = " ";
    if (acc) fprintf(f, "%sacc: accuracy in %%, higher is better%s.", sep, deltas ? "; deltas in percentage points" : ""), sep = " ";
    if (deltas) fprintf(f, "%svs fp: minus the float model; vs <method>: norm tweaking minus its base method.", sep);
    fputs("\n", f);
}

static int write_outputs(const table *t, FILE *md, const char *csv_path, nt_err *err) {
    strtab vals = {0}, dels = {0};
    int rc = 0;
    if (md) {
        if (render(t, true, false, &vals) || render(t, true, true, &dels)) {
            rc = nt_fail(err, "out of memory");
            goto done;
        }
        print_markdown(md, &vals);
        fputc('\n', md);
        print_legend(md, t, false);
        if (dels.n_lines > 1) {
            fputs("\nDeltas:\n\n", md);
            print_markdown(md, &dels);
            fputc('\n', md);
            print_legend(md, t, true);
        }
        strtab_free(&vals);
        strtab_free(&dels);
    }
    if (csv_path) {
        if (render(t, false, false, &vals) || render(t, false, true, &dels)) {
            rc = nt_fail(err, "out of memory");
            goto done;
        }
        nt_atomic_file af;
        if (nt_atomic_open(&af, csv_path, err)) {
            rc = -1;
            goto done;
        }
        print_csv(af.f, &vals, 0);
        print_csv(af.f, &dels, 1);
        rc = nt_atomic_close(&af, true, err);
    }
done:
    strtab_free(&vals);
    strtab_free(&dels);
    return rc;
}

int nt_table_pivot_check(const char *pivot, nt_err *err) {
    for (int d = 0; d < N_DIMS; d++)
        if (strcmp(pivot, dim_names[d]) == 0) return d;
    if (strcmp(pivot, "group") == 0) return D_GROUP;
    return nt_fail_usage(err, "--pivot %s: expected task, wbits, group_size, method, model, options, seqlen or calib",
                         pivot);
}

int nt_table_write(const char *const *paths, size_t n_paths, const nt_table_opts *o, nt_err *err) {
    int pivot = nt_table_pivot_check(o->pivot ? o->pivot : "task", err);
    if (pivot < 0) return -1;
    if (n_paths == 0) return nt_fail_usage(err, "no results CSV given");
    nt_results_set s;
    if (nt_results_read(paths, n_paths, &s, err)) return -1;
    table t;
    int rc = table_build(&t, &s, (enum dim)pivot, o->notes ? o->notes : stderr, err);
    if (!rc) rc = write_outputs(&t, o->md, o->out_csv, err);
    table_free(&t);
    nt_results_set_free(&s);
    return rc;
}
