// csv_read.c: see csv_read.h. libcsv does the parsing (quotes, embedded commas and newlines, CRLF); this
// file only collects fields into rows and checks that every row has as many fields as the header.
#define _POSIX_C_SOURCE 200809L
#include "csv_read.h"

#include <csv.h>
#include <errno.h>
#include <stdarg.h>
#include <math.h>
#include <string.h>

typedef struct {
    nt_csv *c;
    char **row;       // fields of the row being read
    size_t n_row, cap_row;
    size_t cap_cells; // capacity of c->cells, in fields
    long n_data;      // data rows seen, good or bad
    long bad_row;     // the first data row (1-based) whose field count differs from the header's; 0: none
    size_t bad_fields;
    bool oom;
} reader;

static void on_field(void *s, size_t len, void *data) {
    reader *rd = data;
    if (rd->oom) return;
    if (rd->n_row == rd->cap_row) {
        size_t cap = rd->cap_row ? 2 * rd->cap_row : 16;
        char **g = realloc(rd->row, cap * sizeof(char *));
        if (!g) {
            rd->oom = true;
            return;
        }
        rd->row = g;
        rd->cap_row = cap;
    }
    char *f = malloc(len + 1);
    if (!f) {
        rd->oom = true;
        return;
    }
    if (len) memcpy(f, s, len);
    f[len] = '\0';
    rd->row[rd->n_row++] = f;
}

static void drop_row(reader *rd) {
    for (size_t i = 0; i < rd->n_row; i++) free(rd->row[i]);
    rd->n_row = 0;
}

static void on_row(int ch, void *data) {
    (void)ch;
    reader *rd = data;
    nt_csv *c = rd->c;
    if (rd->oom) return drop_row(rd);
    if (!c->header) { // the first row is the header
        c->header = rd->row;
        c->n_cols = rd->n_row;
        rd->row = NULL;
        rd->n_row = rd->cap_row = 0;
        return;
    }
    rd->n_data++;
    if (rd->n_row != c->n_cols) {
        if (!rd->bad_row) {
            rd->bad_row = rd->n_data;
            rd->bad_fields = rd->n_row;
        }
        return drop_row(rd);
    }
    if ((c->n_rows + 1) * c->n_cols > rd->cap_cells) {
        size_t cap = rd->cap_cells ? 2 * rd->cap_cells : 64 * c->n_cols;
        char **g = realloc(c->cells, cap * sizeof(char *));
        if (!g) {
            rd->oom = true;
            return drop_row(rd);
        }
        c->cells = g;
        rd->cap_cells = cap;
    }
    memcpy(c->cells + c->n_rows * c->n_cols, rd->row, c->n_cols * sizeof(char *));
    c->n_rows++;
    rd->n_row = 0;
}

int nt_csv_read(const char *path, nt_csv *out, nt_err *err) {
    memset(out, 0, sizeof(*out));
    size_t len = 0;
    char *text = nt_read_file(path, &len, err);
    if (!text) return -1;
    out->path = strdup(path);
    struct csv_parser p;
    if (csv_init(&p, CSV_STRICT | CSV_STRICT_FINI | CSV_APPEND_NULL) != 0) {
        free(text);
        return nt_fail(err, "%s: cannot start the CSV parser", path);
    }
    reader rd = {.c = out};
    int rc = 0;
    if (csv_parse(&p, text, len, on_field, on_row, &rd) != len || csv_fini(&p, on_field, on_row, &rd) != 0) {
        rc = nt_fail(err, "%s: malformed CSV: %s", path, csv_strerror(csv_error(&p)));
    } else if (rd.oom || !out->path) {
        rc = nt_fail(err, "%s: out of memory", path);
    } else if (!out->header || out->n_cols == 0) {
        rc = nt_fail(err, "%s: empty file (no header line)", path);
    } else if (rd.bad_row) {
        rc = nt_fail(err, "%s: malformed CSV: data row %ld has %zu fields, the header has %zu", path, rd.bad_row,
                     rd.bad_fields, out->n_cols);
    }
    drop_row(&rd);
    free(rd.row);
    csv_free(&p);
    free(text);
    if (rc) nt_csv_free(out);
    return rc;
}

void nt_csv_free(nt_csv *c) {
    if (c->header)
        for (size_t i = 0; i < c->n_cols; i++) free(c->header[i]);
    for (size_t i = 0; i < c->n_rows * c->n_cols; i++) free(c->cells[i]);
    free(c->header);
    free(c->cells);
    free(c->path);
    memset(c, 0, sizeof(*c));
}

int nt_csv_col(const nt_csv *c, const char *name) {
    for (size_t i = 0; i < c->n_cols; i++)
        if (strcmp(c->header[i], name) == 0) return (int)i;
    return -1;
}

const char *nt_csv_cell(const nt_csv *c, size_t row, int col) {
    NT_ASSERT(row < c->n_rows && col >= 0 && (size_t)col < c->n_cols);
    return c->cells[row * c->n_cols + (size_t)col];
}

void nt_csv_put(FILE *f, const char *s, bool last) {
    if (!s) s = "";
    size_t len = strlen(s);
    bool quote = len > 0 && (strpbrk(s, ",\"\r\n") != NULL || s[0] == ' ' || s[len - 1] == ' ');
    if (quote) csv_fwrite(f, s, len);
    else fputs(s, f);
    fputc(last ? '\n' : ',', f);
}

void nt_csv_putf(FILE *f, bool last, const char *fmt, ...) {
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    nt_csv_put(f, buf, last);
}

// ---- results CSVs ----

// The required columns first (C_MODEL .. C_VALUE), then the optional ones (abits: 16 when absent, as in files from
// before it).
enum { C_MODEL, C_METHOD, C_WBITS, C_GROUP, C_TASK, C_METRIC, C_VALUE, C_STDERR, C_N, C_SEQLEN, C_SECONDS,
       C_CALIB, C_OPTIONS, C_DEVICE, C_COMMIT, C_TIMESTAMP, C_ABITS, N_COLS, N_REQUIRED = C_VALUE + 1 };
static const char *const col_names[N_COLS] = {"model",  "method",  "wbits",   "group_size", "task",   "metric",
                                              "value",  "stderr",  "n",       "seqlen",     "seconds", "calib",
                                              "options", "device", "commit",  "timestamp", "abits"};

static int get_long(const nt_csv *c, size_t row, int col, long *v, nt_err *err) {
    *v = 0;
    if (col < 0) return 0;
    const char *s = nt_csv_cell(c, row, col);
    if (!*s) return 0;
    char *end = NULL;
    errno = 0;
    *v = strtol(s, &end, 10);
    if (*end || errno) return nt_fail(err, "%s: data row %zu: %s '%s' is not an integer", c->path, row + 1, c->header[col], s);
    return 0;
}

static int get_double(const nt_csv *c, size_t row, int col, double *v, nt_err *err) {
    *v = NAN;
    if (col < 0) return 0;
    const char *s = nt_csv_cell(c, row, col);
    if (!*s) return 0;
    char *end = NULL;
    *v = strtod(s, &end);
    if (*end) return nt_fail(err, "%s: data row %zu: %s '%s' is not a number", c->path, row + 1, c->header[col], s);
    return 0;
}

static int read_one(nt_csv *c, nt_results_set *s, nt_err *err) {
    int col[N_COLS];
    for (int i = 0; i < N_COLS; i++) {
        col[i] = nt_csv_col(c, col_names[i]);
        if (i < N_REQUIRED && col[i] < 0)
            return nt_fail(err, "%s: not a results CSV: no '%s' column (see results/README.md)", c->path, col_names[i]);
    }
    nt_result_rec *g = realloc(s->recs, (s->n + c->n_rows + 1) * sizeof(nt_result_rec));
    if (!g) return nt_fail(err, "%s: out of memory", c->path);
    s->recs = g;
    for (size_t i = 0; i < c->n_rows; i++) {
#define STR(k) (col[k] >= 0 ? nt_csv_cell(c, i, col[k]) : "")
        nt_result_rec *x = &s->recs[s->n];
        long wbits, abits, group, n, seqlen;
        double value, se, seconds;
        if (get_long(c, i, col[C_WBITS], &wbits, err) || get_long(c, i, col[C_GROUP], &group, err) ||
            get_long(c, i, col[C_ABITS], &abits, err) ||
            get_long(c, i, col[C_N], &n, err) || get_long(c, i, col[C_SEQLEN], &seqlen, err) ||
            get_double(c, i, col[C_VALUE], &value, err) || get_double(c, i, col[C_STDERR], &se, err) ||
            get_double(c, i, col[C_SECONDS], &seconds, err))
            return -1;
        *x = (nt_result_rec){
            .r = {.model = STR(C_MODEL), .method = STR(C_METHOD), .wbits = (int)wbits, .abits = abits ? (int)abits : 16,
                  .group_size = (int)group,
                  .task = STR(C_TASK), .metric = STR(C_METRIC), .value = value, .stderr_ = se, .n = n,
                  .seqlen = (int)seqlen, .seconds = seconds, .calib = STR(C_CALIB), .options = STR(C_OPTIONS),
                  .device = STR(C_DEVICE)},
            .commit = STR(C_COMMIT), .timestamp = STR(C_TIMESTAMP), .file = c->path, .line = (long)i + 1,
            .order = s->n};
#undef STR
        nt_cell_of_row(&x->r, &x->cell);
        s->n++;
    }
    return 0;
}

int nt_results_read(const char *const *paths, size_t n_paths, nt_results_set *out, nt_err *err) {
    memset(out, 0, sizeof(*out));
    out->files = calloc(n_paths ? n_paths : 1, sizeof(nt_csv));
    if (!out->files) return nt_fail(err, "out of memory");
    for (size_t i = 0; i < n_paths; i++) {
        if (nt_csv_read(paths[i], &out->files[i], err)) goto fail;
        out->n_files++;
        if (read_one(&out->files[i], out, err)) goto fail;
    }
    return 0;
fail:
    nt_results_set_free(out);
    return -1;
}

void nt_results_set_free(nt_results_set *s) {
    for (size_t i = 0; i < s->n_files; i++) nt_csv_free(&s->files[i]);
    free(s->files);
    free(s->recs);
    memset(s, 0, sizeof(*s));
}

bool nt_result_rec_newer(const nt_result_rec *a, const nt_result_rec *b) {
    int c = strcmp(a->timestamp, b->timestamp);
    return c > 0 || (c == 0 && a->order > b->order);
}

void nt_result_rec_describe(const nt_result_rec *x, bool with_run, char *buf, size_t size) {
    nt_cell_describe(&x->cell, with_run, buf, size);
}

const nt_result_rec **nt_results_latest(const nt_results_set *s,
                                        bool (*same)(const nt_result_rec *, const nt_result_rec *),
                                        bool (*skip)(const nt_result_rec *), FILE *note, const char *who,
                                        size_t *n_out) {
    *n_out = 0;
    const nt_result_rec **kept = malloc((s->n + 1) * sizeof(*kept));
    size_t *count = calloc(s->n + 1, sizeof(size_t)); // rows seen per kept cell
    if (!kept || !count) {
        free(kept);
        free(count);
        return NULL;
    }
    size_t n = 0;
    for (size_t i = 0; i < s->n; i++) {
        const nt_result_rec *x = &s->recs[i];
        if (skip && skip(x)) continue;
        size_t j = 0;
        while (j < n && !same(kept[j], x)) j++;
        if (j == n) {
            kept[n] = x;
            count[n++] = 1;
        } else {
            count[j]++;
            if (nt_result_rec_newer(x, kept[j])) kept[j] = x;
        }
    }
    for (size_t j = 0; j < n && note; j++) {
        if (count[j] < 2) continue;
        char d[512];
        nt_result_rec_describe(kept[j], false, d, sizeof(d));
        fprintf(note, "%s: note: %zu rows for %s; kept the latest (%s, %s row %ld)\n", who, count[j], d,
                kept[j]->timestamp[0] ? kept[j]->timestamp : "no timestamp", kept[j]->file, kept[j]->line);
    }
    free(count);
    *n_out = n;
    return kept;
}

bool nt_result_same_cell(const nt_result_rec *a, const nt_result_rec *b) { return nt_cell_same(&a->cell, &b->cell); }

bool nt_metric_is_ppl(const char *metric) { return strcmp(metric, "ppl") == 0 || strncmp(metric, "ppl_", 4) == 0; }
bool nt_metric_is_acc(const char *metric) { return strncmp(metric, "acc", 3) == 0; }
