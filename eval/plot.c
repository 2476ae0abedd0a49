// plot.c: see plot.h (the `normtweak plot` command is cli/cmd_plot.c). Each chart is a gnuplot script with its data inline (datablocks),
// written to DIR/NAME.gp and run with `gnuplot DIR/NAME.gp`.
#define _GNU_SOURCE
#include "plot.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <spawn.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "method.h"

// Runs prog with args (argv[0] included), searching PATH as the shell does (posix_spawnp); quiet: its output to
// /dev/null. *status gets its exit status (-1 when killed). Returns the spawn error (0 when it ran).
static int spawn_wait(const char *prog, char *const *args, bool quiet, int *status) {
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    if (quiet) {
        posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
        posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
    }
    pid_t pid;
    extern char **environ;
    int e = posix_spawnp(&pid, prog, &fa, NULL, args, environ);
    posix_spawn_file_actions_destroy(&fa);
    if (e) return e;
    int st = 0;
    while (waitpid(pid, &st, 0) < 0)
        if (errno != EINTR) return errno;
    *status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
    return 0;
}

int nt_gnuplot_find(char *path, size_t size, nt_err *err) {
    const char *name = getenv("NT_GNUPLOT");
    if (!name || !*name) name = "gnuplot";
    snprintf(path, size, "%s", name);
    char *args[] = {path, "--version", NULL};
    int st = -1;
    if (spawn_wait(path, args, true, &st) == 0 && st == 0) return 0;
    return nt_fail(err, "gnuplot not found %s%s: install the Debian package gnuplot-nox%s",
                   strchr(name, '/') ? "at " : "on PATH", strchr(name, '/') ? name : "",
                   strchr(name, '/') ? "" : " (or set NT_GNUPLOT)");
}

static int run_gnuplot(const char *gnuplot, const char *script, nt_err *err) {
    char *args[] = {(char *)gnuplot, (char *)script, NULL};
    int st = -1, e = spawn_wait(gnuplot, args, false, &st);
    if (e) return nt_fail(err, "cannot start %s: %s", gnuplot, strerror(e));
    if (st != 0) return nt_fail(err, "%s: gnuplot failed (exit %d); its messages are above", script, st);
    return 0;
}

void nt_plot_files_free(char ***files, size_t *n_files) {
    for (size_t i = 0; i < *n_files; i++) free((*files)[i]);
    free(*files);
    *files = NULL;
    *n_files = 0;
}

// A file-name-safe copy of s ("../data/x.txt" -> ".._data_x.txt").
static void safe_name(const char *s, char *out, size_t size) {
    size_t k = 0;
    for (; *s && k + 1 < size; s++) {
        char c = *s;
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
                  c == '-' || c == '+' || c == '_';
        out[k++] = ok ? c : '_';
    }
    out[k] = '\0';
}

// Opens DIR/BASE.gp for writing and fills `image` with DIR/BASE.FORMAT.
static FILE *open_script(const char *dir, const char *base, const char *format, char *script, char *image,
                         size_t size, nt_err *err) {
    snprintf(script, size, "%s/%s.gp", dir, base);
    snprintf(image, size, "%s/%s.%s", dir, base, format);
    FILE *f = fopen(script, "w");
    if (!f) nt_fail(err, "%s: cannot write: %s", script, strerror(errno));
    return f;
}

// gnuplot string literal: single quotes, a quote doubled.
static void put_quoted(FILE *f, const char *s) {
    fputc('\'', f);
    for (; *s; s++) {
        if (*s == '\'') fputc('\'', f);
        fputc(*s, f);
    }
    fputc('\'', f);
}

// The canvas: 800 x 560, wider where the longest legend entry (longest characters) would not fit across it (gnuplot
// reckons about 10 pixels a character at the SVG's font, and 120 for the sample line and the box; a key wider
// than the canvas is gnuplot's "difficulty fitting plot titles into key"), and 24 pixels taller for each legend
// entry past 6, as the legend below the chart takes a line each and would squeeze it.
static void put_header(FILE *f, const char *format, const char *image, const char *title, size_t n_keys,
                       size_t longest) {
    int width = 800, height = 560 + (n_keys > 6 ? 24 * (int)(n_keys - 6) : 0);
    if (longest > 68 && longest < 1000) width = 120 + 10 * (int)longest;
    if (strcmp(format, "svg") == 0)
        fprintf(f, "set terminal svg size %d,%d noenhanced font 'sans,13' background 'white'\n", width, height);
    else fprintf(f, "set terminal pngcairo size %d,%d noenhanced font 'sans,11'\n", width, height);
    fputs("set output ", f);
    put_quoted(f, image);
    fputs("\nset title ", f);
    put_quoted(f, title);
    fputs("\nset grid\nset key below box\nset datafile missing '?'\n", f);
}

static int finish(FILE *f, const char *gnuplot, const char *script, const char *image, char ***files, size_t *n_files,
                  nt_err *err) {
    if (fclose(f) != 0) return nt_fail(err, "%s: write failed", script);
    if (run_gnuplot(gnuplot, script, err)) return -1;
    char **g = realloc(*files, (*n_files + 1) * sizeof(char *));
    if (!g) return nt_fail(err, "out of memory");
    *files = g;
    if (!((*files)[*n_files] = strdup(image))) return nt_fail(err, "out of memory");
    (*n_files)++;
    return 0;
}

static int make_dir(const char *dir, nt_err *err) {
    if (mkdir(dir, 0777) != 0 && errno != EEXIST) return nt_fail(err, "%s: cannot create: %s", dir, strerror(errno));
    struct stat st;
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode)) return nt_fail(err, "%s: not a directory", dir);
    return 0;
}

// ---- quality vs bits ----

// A calibration as a legend names it: a file's name without its folder and ".safetensors" (and the ":NxL" the
// row adds), else the spec as written ("c4:32x512:seed0"); "none" for none.
static void calib_label(const char *calib, char *buf, size_t size) {
    if (!calib[0] || strcmp(calib, "-") == 0) {
        snprintf(buf, size, "none");
        return;
    }
    const char *slash = strrchr(calib, '/');
    if (!slash) {
        snprintf(buf, size, "%s", calib);
        return;
    }
    snprintf(buf, size, "%s", slash + 1);
    char *dot = strstr(buf, ".safetensors");
    if (dot) *dot = '\0';
}

static bool is_error_row(const nt_result_rec *x) { return strcmp(x->r.metric, "error") == 0; }
// A chart per model x task x metric x seqlen x limit (a perplexity on 8 windows and one on all of them are not
// one scale: the float line is of the chart's own limit); a series per the rest of the cell but the bits
// (method, group, options, calibration), so every cell (cell.h) is a point of its own.
static bool same_chart(const nt_result_rec *a, const nt_result_rec *b) {
    return strcmp(a->r.model, b->r.model) == 0 && strcmp(a->r.task, b->r.task) == 0 &&
           strcmp(a->r.metric, b->r.metric) == 0 && a->r.seqlen == b->r.seqlen && a->cell.limit == b->cell.limit;
}
static bool same_series(const nt_result_rec *a, const nt_result_rec *b) {
    return strcmp(a->r.method, b->r.method) == 0 && a->r.group_size == b->r.group_size &&
           strcmp(a->cell.options, b->cell.options) == 0 && strcmp(a->r.calib, b->r.calib) == 0;
}
// The method table's row of a method (its base for a tweak), for ordering and colors; unknown methods last.
static size_t method_rank(const char *name) {
    const nt_method *m = nt_method_find(name);
    const char *base = m && m->tweak ? m->base : name;
    for (size_t i = 0; i < nt_method_count(); i++)
        if (strcmp(nt_method_at(i)->name, base) == 0) return i;
    return nt_method_count();
}
static bool is_nt(const char *name) {
    const nt_method *m = nt_method_find(name);
    return m && m->tweak;
}
static bool same_base(const nt_result_rec *a, const nt_result_rec *b) {
    size_t ra = method_rank(a->r.method);
    return ra == method_rank(b->r.method) && (ra < nt_method_count() || strcmp(a->r.method, b->r.method) == 0);
}

// Methods in table order (each tweak right after its base), then unknown ones by name; per method, groups
// per-channel first then large to small; then options and calibration as text.
static int series_cmp(const nt_result_rec *a, const nt_result_rec *b) {
    size_t ra = method_rank(a->r.method), rb = method_rank(b->r.method);
    if (ra != rb) return ra < rb ? -1 : 1;
    if (!same_base(a, b)) return strcmp(a->r.method, b->r.method);
    if (a->r.group_size != b->r.group_size) {
        long ka = a->r.group_size == -1 ? -(1L << 40) : -(long)a->r.group_size;
        long kb = b->r.group_size == -1 ? -(1L << 40) : -(long)b->r.group_size;
        return ka < kb ? -1 : 1;
    }
    if (is_nt(a->r.method) != is_nt(b->r.method)) return (int)is_nt(a->r.method) - (int)is_nt(b->r.method);
    int c = strcmp(a->cell.options, b->cell.options);
    return c ? c : strcmp(a->r.calib, b->r.calib);
}

// The legend of series[s]: method, group, the options as the row gives them ("iters=1", not their normalized
// identity "iters"), and the calibration where another series differs from this one only by it.
static void legend_label(const nt_result_rec **series, size_t n_series, size_t s, char *label, size_t size) {
    const nt_result_rec *x = series[s];
    char g[32];
    if (x->r.group_size == -1) snprintf(g, sizeof(g), "per-channel");
    else snprintf(g, sizeof(g), "g%d", x->r.group_size);
    bool by_calib = false;
    for (size_t u = 0; u < n_series && !by_calib; u++)
        by_calib = u != s && strcmp(series[u]->r.method, x->r.method) == 0 && series[u]->r.group_size == x->r.group_size &&
                   strcmp(series[u]->cell.options, x->cell.options) == 0;
    char cal[300] = "";
    if (by_calib) calib_label(x->r.calib, cal, sizeof(cal));
    snprintf(label, size, "%s %s%s%s%s%s", x->r.method, g, x->r.options[0] ? " " : "", x->r.options,
             cal[0] ? " calib=" : "", cal);
}

static int quality_chart(const nt_result_rec **cells, size_t n, const nt_result_rec *first, const char *gnuplot,
                         const char *out_dir, const char *format, char ***files, size_t *n_files, nt_err *err) {
    const nt_result_rec **series = malloc((n + 1) * sizeof(*series)), *fp = NULL;
    if (!series) return nt_fail(err, "out of memory");
    size_t n_series = 0;
    int bits[64], n_bits = 0;
    bool acc = nt_metric_is_acc(first->r.metric), ppl = nt_metric_is_ppl(first->r.metric);
    double scale = acc ? 100.0 : 1.0, lo = INFINITY, hi = -INFINITY;
    for (size_t i = 0; i < n; i++) {
        const nt_result_rec *x = cells[i];
        if (!same_chart(x, first) || isnan(x->r.value)) continue;
        lo = fmin(lo, x->r.value * scale);
        hi = fmax(hi, x->r.value * scale);
        if (strcmp(x->r.method, "fp") == 0) {
            if (!fp) fp = x;
            continue;
        }
        size_t j = 0;
        while (j < n_series && !same_series(series[j], x)) j++;
        if (j == n_series) series[n_series++] = x;
        int b = 0;
        while (b < n_bits && bits[b] != x->r.wbits) b++;
        if (b == n_bits && n_bits < 64) bits[n_bits++] = x->r.wbits;
    }
    for (size_t i = 1; i < n_series; i++) // insertion sort: a handful of series
        for (size_t j = i; j > 0 && series_cmp(series[j - 1], series[j]) > 0; j--) {
            const nt_result_rec *t = series[j];
            series[j] = series[j - 1];
            series[j - 1] = t;
        }
    for (int i = 1; i < n_bits; i++)
        for (int j = i; j > 0 && bits[j - 1] > bits[j]; j--) {
            int t = bits[j];
            bits[j] = bits[j - 1];
            bits[j - 1] = t;
        }
    char m[256], t[256], me[64], base[800], script[1200], image[1200], title[800];
    safe_name(first->r.model, m, sizeof(m));
    safe_name(first->r.task, t, sizeof(t));
    safe_name(first->r.metric, me, sizeof(me));
    // charts of one model x task x metric at other seqlens, or of its seqlen at other limits: the name says which
    // ("_seqlen256", "_limit8", "_all")
    bool several_seqlens = false, several_limits = false;
    for (size_t i = 0; i < n; i++) {
        const nt_result_rec *x = cells[i];
        if (strcmp(x->r.model, first->r.model) != 0 || strcmp(x->r.task, first->r.task) != 0 ||
            strcmp(x->r.metric, first->r.metric) != 0)
            continue;
        several_seqlens |= x->r.seqlen != first->r.seqlen;
        several_limits |= x->r.seqlen == first->r.seqlen && x->cell.limit != first->cell.limit;
    }
    char lim[40] = "";
    if (several_limits) {
        if (first->cell.limit) snprintf(lim, sizeof(lim), "_limit%ld", first->cell.limit);
        else snprintf(lim, sizeof(lim), "_all");
    }
    if (several_seqlens) snprintf(base, sizeof(base), "%s_%s_%s_seqlen%d%s", m, t, me, first->r.seqlen, lim);
    else snprintf(base, sizeof(base), "%s_%s_%s%s", m, t, me, lim);
    FILE *f = open_script(out_dir, base, format, script, image, sizeof(script), err);
    if (!f) {
        free(series);
        return -1;
    }
    char scope[64] = "";
    bool windows = strcmp(first->r.metric, "ppl") == 0 || strcmp(first->r.metric, "kld") == 0 ||
                   strcmp(first->r.metric, "top1") == 0; // a perplexity task's rows; the others' limit counts items
    if (first->cell.limit)
        snprintf(scope, sizeof(scope), " (first %ld %s)", first->cell.limit, windows ? "windows" : "items");
    else if (several_limits) snprintf(scope, sizeof(scope), " (all %s)", windows ? "windows" : "items");
    snprintf(title, sizeof(title), "%s: %s %s vs weight bits%s", first->r.model, first->r.task,
             ppl ? "perplexity" : acc ? "accuracy" : first->r.metric, scope);
    size_t longest = fp ? strlen("fp (float)") : 0;
    for (size_t s = 0; s < n_series; s++) {
        char label[900];
        legend_label(series, n_series, s, label, sizeof(label));
        if (strlen(label) > longest) longest = strlen(label);
    }
    put_header(f, format, image, title, n_series + (fp ? 1 : 0), longest);
    // the bits as the tics say them ("W3"), no x label: a legend below the chart would cover it
    fprintf(f, "set ylabel '%s'\n",
            ppl ? "perplexity (lower is better)" : acc ? "accuracy, % (higher is better)" : first->r.metric);
    if (ppl && lo > 0 && hi / lo > 5.0) fputs("set logscale y\n", f);
    int xb_lo = n_bits ? bits[0] : 2, xb_hi = n_bits ? bits[n_bits - 1] : 8;
    fprintf(f, "set xrange [%g:%g]\nset xtics (", xb_lo - 0.5, xb_hi + 0.5);
    if (n_bits == 0) fputs("'W2' 2, 'W3' 3, 'W4' 4, 'W8' 8", f);
    for (int i = 0; i < n_bits; i++) fprintf(f, "%s'W%d' %d", i ? ", " : "", bits[i], bits[i]);
    fputs(")\n", f);
    for (size_t s = 0; s < n_series; s++) {
        fprintf(f, "$s%zu << EOD\n", s);
        for (int b = 0; b < n_bits; b++)
            for (size_t i = 0; i < n; i++) {
                const nt_result_rec *x = cells[i];
                if (same_chart(x, first) && same_series(x, series[s]) && x->r.wbits == bits[b] && !isnan(x->r.value))
                    fprintf(f, "%d %.10g\n", bits[b], x->r.value * scale);
            }
        fputs("EOD\n", f);
    }
    // one color per base method x group, norm tweaking solid and its base dashed
    fputs("plot ", f);
    size_t color = 0;
    for (size_t s = 0; s < n_series; s++) {
        const nt_result_rec *x = series[s];
        if (s > 0 && !(same_base(x, series[s - 1]) && x->r.group_size == series[s - 1]->r.group_size))
            color++;
        char label[900];
        legend_label(series, n_series, s, label, sizeof(label));
        fprintf(f, "%s$s%zu using 1:2 with linespoints lw 2 pt %d ps 1.3 lc %zu dt %d title ", s ? ", \\\n     " : "", s,
                is_nt(x->r.method) ? 7 : 6, color + 1, is_nt(x->r.method) ? 1 : 2);
        put_quoted(f, label);
    }
    if (fp) fprintf(f, "%s%.10g with lines lw 2 dt 3 lc rgb 'black' title 'fp (float)'", n_series ? ", \\\n     " : "",
                    fp->r.value * scale);
    if (!n_series && !fp) fputs("NaN notitle", f);
    fputs("\n", f);
    free(series);
    return finish(f, gnuplot, script, image, files, n_files, err);
}

int nt_plot_quality(const nt_results_set *s, const char *out_dir, const char *format, char ***files, size_t *n_files,
                    nt_err *err) {
    char gnuplot[4096];
    if (nt_gnuplot_find(gnuplot, sizeof(gnuplot), err) || make_dir(out_dir, err)) return -1;
    size_t n = 0;
    const nt_result_rec **cells = nt_results_latest(s, nt_result_same_cell, is_error_row, stderr, "normtweak plot", &n);
    if (!cells) return nt_fail(err, "out of memory");
    int rc = n ? 0 : nt_fail(err, "no result rows to plot");
    for (size_t i = 0; !rc && i < n; i++) {
        bool seen = false;
        for (size_t j = 0; j < i && !seen; j++) seen = same_chart(cells[j], cells[i]);
        if (!seen) rc = quality_chart(cells, n, cells[i], gnuplot, out_dir, format, files, n_files, err);
    }
    free(cells);
    return rc;
}

// ---- kernel speedup vs M ----

static int need_col(const nt_csv *c, const char *name, const char *flag, nt_err *err) {
    int k = nt_csv_col(c, name);
    if (k >= 0) return k;
    char cols[1024];
    size_t n = 0;
    cols[0] = '\0';
    for (size_t i = 0; i < c->n_cols && n < sizeof(cols); i++)
        n += (size_t)snprintf(cols + n, sizeof(cols) - n, "%s%s", i ? ", " : "", c->header[i]);
    nt_fail(err, "%s: no column '%s' (choose with %s; columns: %s)", c->path, name, flag, cols);
    return -1;
}

static double cell_num(const nt_csv *c, size_t r, int col, bool *ok) {
    const char *s = nt_csv_cell(c, r, col);
    char *end = NULL;
    double v = strtod(s, &end);
    *ok = *s && !*end && isfinite(v);
    return v;
}

// The legend label of row r: "bits=4 group_size=128".
static void series_label(const nt_csv *c, size_t r, const int *cols, size_t n_cols, char *out, size_t size) {
    size_t k = 0;
    out[0] = '\0';
    for (size_t i = 0; i < n_cols && k < size; i++)
        k += (size_t)snprintf(out + k, size - k, "%s%s=%s", i ? " " : "", c->header[cols[i]], nt_csv_cell(c, r, cols[i]));
}

typedef struct {
    double x, y;
} pt;
static int pt_cmp(const void *a, const void *b) {
    double x = ((const pt *)a)->x, y = ((const pt *)b)->x;
    return (x > y) - (x < y);
}

int nt_plot_speedup(const nt_csv *c, const nt_plot_columns *cols, const char *out_dir, const char *format,
                    char ***files, size_t *n_files, nt_err *err) {
    char gnuplot[4096];
    if (nt_gnuplot_find(gnuplot, sizeof(gnuplot), err)) return -1;
    int xc = need_col(c, cols->x, "--x", err), yc = xc < 0 ? -1 : need_col(c, cols->y, "--y", err), pc = -1;
    if (xc < 0 || yc < 0) return -1;
    if (cols->panel && *cols->panel && (pc = need_col(c, cols->panel, "--panel", err)) < 0) return -1;
    int sc[16];
    size_t n_sc = 0;
    char sbuf[512];
    snprintf(sbuf, sizeof(sbuf), "%s", cols->series ? cols->series : "");
    for (char *save = NULL, *t = strtok_r(sbuf, ",", &save); t && n_sc < 16; t = strtok_r(NULL, ",", &save))
        if ((sc[n_sc++] = need_col(c, t, "--series", err)) < 0) return -1;
    if (c->n_rows == 0) return nt_fail(err, "%s: no data rows", c->path);
    for (size_t r = 0; r < c->n_rows; r++) {
        bool okx, oky;
        cell_num(c, r, xc, &okx);
        cell_num(c, r, yc, &oky);
        if (!okx || !oky)
            return nt_fail(err, "%s: data row %zu: %s '%s' / %s '%s' is not a number", c->path, r + 1, cols->x,
                           nt_csv_cell(c, r, xc), cols->y, nt_csv_cell(c, r, yc));
    }
    if (make_dir(out_dir, err)) return -1;
    pt *pts = malloc(c->n_rows * sizeof(pt));
    size_t *series_first = malloc(c->n_rows * sizeof(size_t)); // the first row of each series of a chart
    if (!pts || !series_first) {
        free(pts);
        free(series_first);
        return nt_fail(err, "out of memory");
    }
    int rc = 0;
    for (size_t p = 0; !rc && p < c->n_rows; p++) { // one chart per distinct panel value (first occurrence)
        const char *panel = pc >= 0 ? nt_csv_cell(c, p, pc) : NULL;
        bool seen = false;
        for (size_t q = 0; q < p && !seen && pc >= 0; q++) seen = strcmp(nt_csv_cell(c, q, pc), panel) == 0;
        if (seen || (pc < 0 && p > 0)) continue;
        char base[600], script[1200], image[1200], title[800], safe[512];
        if (panel) {
            safe_name(panel, safe, sizeof(safe));
            snprintf(base, sizeof(base), "speedup_%s", safe);
            snprintf(title, sizeof(title), "kernel speedup vs %s: %s %s", cols->x, cols->panel, panel);
        } else {
            snprintf(base, sizeof(base), "speedup");
            snprintf(title, sizeof(title), "kernel speedup vs %s", cols->x);
        }
        FILE *f = open_script(out_dir, base, format, script, image, sizeof(script), err);
        if (!f) {
            rc = -1;
            break;
        }
        put_header(f, format, image, title, 0, 0);
        double lo = INFINITY, hi = -INFINITY;
        bool dummy;
        for (size_t r = 0; r < c->n_rows; r++) {
            if (panel && strcmp(nt_csv_cell(c, r, pc), panel) != 0) continue;
            double x = cell_num(c, r, xc, &dummy);
            lo = fmin(lo, x);
            hi = fmax(hi, x);
        }
        fprintf(f, "set xlabel '%s'\nset ylabel '%s (x, above 1 = faster than dense)'\n", cols->x, cols->y);
        if (lo > 0 && hi / lo >= 8) fputs("set logscale x 2\n", f);
        // one datablock per series, points sorted by x (all datablocks before the plot command)
        size_t n_series = 0;
        char label[512], other[512];
        for (size_t r = 0; r < c->n_rows; r++) {
            if (panel && strcmp(nt_csv_cell(c, r, pc), panel) != 0) continue;
            series_label(c, r, sc, n_sc, label, sizeof(label));
            bool dup = false;
            for (size_t q = 0; q < r && !dup; q++) {
                if (panel && strcmp(nt_csv_cell(c, q, pc), panel) != 0) continue;
                series_label(c, q, sc, n_sc, other, sizeof(other));
                dup = strcmp(label, other) == 0;
            }
            if (dup) continue;
            size_t np = 0;
            for (size_t q = r; q < c->n_rows; q++) {
                if (panel && strcmp(nt_csv_cell(c, q, pc), panel) != 0) continue;
                series_label(c, q, sc, n_sc, other, sizeof(other));
                if (strcmp(label, other) != 0) continue;
                pts[np].x = cell_num(c, q, xc, &dummy);
                pts[np++].y = cell_num(c, q, yc, &dummy);
            }
            qsort(pts, np, sizeof(pt), pt_cmp);
            fprintf(f, "# %s\n$s%zu << EOD\n", label, n_series);
            for (size_t i = 0; i < np; i++) fprintf(f, "%.10g %.10g\n", pts[i].x, pts[i].y);
            fputs("EOD\n", f);
            series_first[n_series++] = r;
        }
        for (size_t i = 0; i < n_series; i++) {
            series_label(c, series_first[i], sc, n_sc, label, sizeof(label));
            fprintf(f, "%s$s%zu using 1:2 with linespoints lw 2 pt 7 title ", i == 0 ? "plot " : ", \\\n     ", i);
            put_quoted(f, n_sc ? label : cols->y);
        }
        fprintf(f, ", \\\n     1 with lines dt 2 lw 1.5 lc rgb 'black' title 'dense (1x)'\n");
        rc = finish(f, gnuplot, script, image, files, n_files, err);
    }
    free(pts);
    free(series_first);
    return rc;
}

