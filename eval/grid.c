// grid.c: an experiment grid (grid.h; `normtweak run EXPERIMENT.json`), evaluated cell by cell into one
// results CSV.
//
// The JSON (every key optional except out, which --out may give instead; unknown keys are errors):
//   "models":      [NT_DEFAULT_MODEL]               model directories or .gguf files (evaluate.h)
//   "methods":     ["fp"]                          fp, rtn, gptq, rtn+nt, gptq+nt, ...
//   "wbits":       [4]                             weight bits of the quantized methods
//   "group_sizes": [128]                           -1: per channel
//   "tasks":       ["wikitext2"]
//   "options":     [""]                            method options, each "key[=value];..." named as the
//                                                  quantization flags of `normtweak eval` ("act-order;sym",
//                                                  "percdamp=0.1", "abits=8;act-scheme=static"); a grid dimension
//                                                  like the others (the activation bits land in the abits column)
//   "calib":       ""                              calibration spec of the quantized methods ("" default)
//   "limit_items": 0                               zero-shot tasks: the first N items (0: "limit" applies to them)
//   "seqlen": 0, "limit": 0, "data_dir": "../shared/datasets", "out": "results/grid.csv"
//   "kld":         []                              perplexity tasks (of "tasks") that also get kld and top1 rows
//                                                  against the float model (evaluate.h's kld); a cell of such a
//                                                  task is done only when its kld row is in the CSV too
//   "log_samples": ""                              a folder: each evaluation's zero-shot items go to
//                                                  FOLDER/MODEL_METHOD_wBITS_gGROUP[_OPTIONS]/TASK.jsonl
// Relative paths are relative to the working directory (run from the repository root).
//
// Cells are models x methods x wbits x group_sizes x options x tasks; method fp is one cell per model x task
// (wbits 16, group 0, no options). The cells of one model x method x bits x group x options are evaluated by
// one nt_evaluate call (one load and one quantization for all their tasks), each task's row appended to the
// CSV as it finishes (atomically), so a killed run loses at most the task in progress.
//
// Resume: a cell whose row is already in the CSV is skipped. The check is nt_cell_matches (cell.h), the one
// definition of a cell with the fields the grid leaves open: model (directory name), method, wbits, group_size,
// task, seqlen (when the grid sets one), calib (when set) and the normalized options (the "limit=N" that
// evaluation adds is matched against the grid's limit).
// A failed cell (e.g. a method nt_evaluate does not know) is recorded as a row with metric "error", no value,
// and the message as the last option "error=MESSAGE" (';' in it replaced by ','); the run goes on. Error rows
// never count as done, so a rerun retries failed cells (older error rows stay as a log; `table` and `gate`
// ignore them). The run ends by printing the table (table.h) of the CSV.
#define _POSIX_C_SOURCE 200809L
#include "grid.h"

#include <cjson/cJSON.h>
#include <ctype.h>
#include <errno.h>
#include <sys/stat.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "csv_read.h"
#include "evaluate.h"
#include "json.h"
#include "table.h"
#include "zeroshot.h"

typedef struct {
    char **s;
    size_t n;
} strlist;

typedef struct {
    int *v;
    size_t n;
} intlist;

typedef struct {
    strlist models, methods, tasks, options, kld;
    intlist wbits, groups;
    char *calib, *data_dir, *out, *log_samples;
    int seqlen;
    long limit, limit_items;
} grid;

// One evaluation call: the cells of a model x method x bits x group x options, over the grid's tasks.
typedef struct {
    const char *model_dir;
    char model[256]; // its directory name, as the rows name it
    const char *method;
    int wbits, group_size;
    const char *options; // the grid's option string ("" for fp)
    int abits;           // activation bits its options ask for (16: none; fp: 16)
    const char *calib;   // the grid's calib when the method (or static activation scales) calibrates, else ""
} conf;

static void strlist_free(strlist *l) {
    for (size_t i = 0; i < l->n; i++) free(l->s[i]);
    free(l->s);
    memset(l, 0, sizeof(*l));
}

static void grid_free(grid *g) {
    strlist_free(&g->models);
    strlist_free(&g->methods);
    strlist_free(&g->tasks);
    strlist_free(&g->options);
    strlist_free(&g->kld);
    free(g->log_samples);
    free(g->wbits.v);
    free(g->groups.v);
    free(g->calib);
    free(g->data_dir);
    free(g->out);
    memset(g, 0, sizeof(*g));
}

// ---- the experiment file ----

static int get_strs(const cJSON *root, const char *key, const char *dflt, bool allow_empty, strlist *out,
                    const char *path, nt_err *err) {
    const cJSON *a = cJSON_GetObjectItemCaseSensitive(root, key);
    if (!a) {
        out->s = malloc(sizeof(char *));
        if (!out->s || !(out->s[0] = strdup(dflt))) return nt_fail(err, "out of memory");
        out->n = 1;
        return 0;
    }
    if (!cJSON_IsArray(a) || cJSON_GetArraySize(a) == 0)
        return nt_fail(err, "%s: \"%s\" must be a non-empty array of strings", path, key);
    out->s = calloc((size_t)cJSON_GetArraySize(a), sizeof(char *));
    if (!out->s) return nt_fail(err, "out of memory");
    const cJSON *e;
    cJSON_ArrayForEach(e, a) {
        if (!cJSON_IsString(e) || (!allow_empty && !e->valuestring[0]))
            return nt_fail(err, "%s: \"%s\" must be an array of %sstrings", path, key, allow_empty ? "" : "non-empty ");
        if (!(out->s[out->n++] = strdup(e->valuestring))) return nt_fail(err, "out of memory");
    }
    return 0;
}

static int get_ints(const cJSON *root, const char *key, int dflt, intlist *out, const char *path, nt_err *err) {
    const cJSON *a = cJSON_GetObjectItemCaseSensitive(root, key);
    int n = a ? cJSON_GetArraySize(a) : 1;
    if (a && (!cJSON_IsArray(a) || n == 0)) return nt_fail(err, "%s: \"%s\" must be a non-empty array of integers", path, key);
    out->v = calloc((size_t)n, sizeof(int));
    if (!out->v) return nt_fail(err, "out of memory");
    if (!a) {
        out->v[0] = dflt;
        out->n = 1;
        return 0;
    }
    const cJSON *e;
    cJSON_ArrayForEach(e, a) {
        if (!cJSON_IsNumber(e) || e->valuedouble != (double)(int)e->valuedouble)
            return nt_fail(err, "%s: \"%s\" must be an array of integers", path, key);
        out->v[out->n++] = (int)e->valuedouble;
    }
    return 0;
}

static int get_str(const cJSON *root, const char *key, const char *dflt, char **out, const char *path, nt_err *err) {
    const cJSON *e = cJSON_GetObjectItemCaseSensitive(root, key);
    if (e && !cJSON_IsString(e)) return nt_fail(err, "%s: \"%s\" must be a string", path, key);
    *out = strdup(e ? e->valuestring : dflt);
    return *out ? 0 : nt_fail(err, "out of memory");
}

static int get_num(const cJSON *root, const char *key, long max, long *out, const char *path, nt_err *err) {
    const cJSON *e = cJSON_GetObjectItemCaseSensitive(root, key);
    *out = 0;
    if (!e) return 0;
    if (!cJSON_IsNumber(e) || e->valuedouble < 0 || e->valuedouble > (double)max ||
        e->valuedouble != (double)(long)e->valuedouble)
        return nt_fail(err, "%s: \"%s\" must be an integer from 0 to %ld", path, key, max);
    *out = (long)e->valuedouble;
    return 0;
}

static int grid_load(const char *path, grid *g, nt_err *err) {
    memset(g, 0, sizeof(*g));
    cJSON *root = nt_json_read_file(path, err);
    if (!root) return -1;
    if (!cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return nt_fail(err, "%s: not a JSON object", path);
    }
    static const char *const known[] = {"models", "methods", "wbits", "group_sizes", "tasks", "options", "calib",
                                        "seqlen", "limit", "limit_items", "data_dir", "out", "comment", "kld",
                                        "log_samples"};
    int rc = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, root) {
        bool ok = false;
        for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++) ok |= strcmp(e->string, known[i]) == 0;
        if (!ok) {
            rc = nt_fail(err, "%s: unknown key \"%s\" (expected models, methods, wbits, group_sizes, tasks, options, "
                              "calib, seqlen, limit, limit_items, data_dir, out, kld, log_samples, comment)", path, e->string);
            break;
        }
    }
    long seqlen = 0;
    if (!rc)
        rc = get_strs(root, "models", nt_default_model(), false, &g->models, path, err) ||
             get_strs(root, "methods", "fp", false, &g->methods, path, err) ||
             get_ints(root, "wbits", 4, &g->wbits, path, err) || get_ints(root, "group_sizes", 128, &g->groups, path, err) ||
             get_strs(root, "tasks", "wikitext2", false, &g->tasks, path, err) ||
             get_strs(root, "options", "", true, &g->options, path, err) ||
             get_str(root, "calib", "", &g->calib, path, err) ||
             get_str(root, "data_dir", NT_DEFAULT_DATA, &g->data_dir, path, err) ||
             get_str(root, "out", "", &g->out, path, err) || get_num(root, "seqlen", 1L << 20, &seqlen, path, err) ||
             get_num(root, "limit", 1L << 30, &g->limit, path, err) ||
             get_num(root, "limit_items", 1L << 30, &g->limit_items, path, err) ||
             get_str(root, "log_samples", "", &g->log_samples, path, err) ||
             (cJSON_GetObjectItemCaseSensitive(root, "kld") && get_strs(root, "kld", "", false, &g->kld, path, err));
    g->seqlen = (int)seqlen;
    for (size_t i = 0; !rc && i < g->tasks.n; i++)
        if (strchr(g->tasks.s[i], ',')) rc = nt_fail(err, "%s: task \"%s\": one task per entry", path, g->tasks.s[i]);
    for (size_t i = 0; !rc && i < g->kld.n; i++) {
        bool in_tasks = false;
        for (size_t k = 0; k < g->tasks.n; k++) in_tasks |= strcmp(g->tasks.s[k], g->kld.s[i]) == 0;
        if (!in_tasks) rc = nt_fail(err, "%s: kld task \"%s\" is not one of \"tasks\"", path, g->kld.s[i]);
    }
    cJSON_Delete(root);
    return rc ? -1 : 0;
}

// ---- cells and the resume key ----

static bool is_fp_method(const char *m) { return strcmp(m, "fp") == 0; }

// The limit a task's rows state: limit_items for a zero-shot task when the grid sets it, else limit.
static long task_limit(const grid *g, const char *task) {
    return g->limit_items && nt_zeroshot_task_known(task) ? g->limit_items : g->limit;
}

// The cell a grid asks for, as a pattern (nt_cell_matches): seqlen, calib and the limit as the grid gives them.
static int quant_opts_of(const conf *c, const char *calib, nt_quant_opts *q, nt_err *err);

// The options are those the method's rows record (nt_quant_opts_describe of the grid's option string), not the
// string itself: "act-order" becomes "act_order", and norm tweaking's settings are there with their defaults.
static void cell_pattern(const grid *g, const conf *c, const char *task, nt_cell *p) {
    char opts[NT_CELL_OPTIONS_MAX] = "";
    nt_quant_opts q;
    nt_err err = {0};
    if (!is_fp_method(c->method) && quant_opts_of(c, g->calib, &q, &err) == 0) // checked before any cell ran
        nt_quant_opts_describe(&q, opts, sizeof(opts));
    nt_result_row r = {.model = c->model, .method = c->method, .wbits = c->wbits, .abits = c->abits,
                       .group_size = c->group_size,
                       .task = task, .seqlen = g->seqlen, .calib = c->calib,
                       .options = opts};
    nt_cell_of_row(&r, p);
    p->metric = NULL; // any metric of the task
    p->limit = task_limit(g, task);
}

static bool cell_done(const nt_results_set *done, const grid *g, const conf *c, const char *task) {
    nt_cell p;
    cell_pattern(g, c, task, &p);
    bool kld = false, any = false, got_kld = false;
    for (size_t i = 0; i < g->kld.n; i++) kld |= strcmp(g->kld.s[i], task) == 0;
    for (size_t i = 0; i < done->n; i++)
        if (strcmp(done->recs[i].r.metric, "error") != 0 && nt_cell_matches(&p, &done->recs[i].cell)) {
            any = true;
            got_kld |= strcmp(done->recs[i].r.metric, "kld") == 0;
        }
    return any && (!kld || got_kld);
}

// The grid's kld tasks among `tasks` (comma-separated) into buf.
static void kld_tasks(const grid *g, const char *tasks, char *buf, size_t cap) {
    buf[0] = '\0';
    size_t k = 0;
    for (size_t i = 0; i < g->kld.n; i++) {
        char list[4100];
        snprintf(list, sizeof(list), ",%s,", tasks);
        char needle[300];
        snprintf(needle, sizeof(needle), ",%s,", g->kld.s[i]);
        if (strstr(list, needle)) k += (size_t)snprintf(buf + k, k < cap ? cap - k : 0, "%s%s", k ? "," : "", g->kld.s[i]);
    }
}

// The grid's option string as quantization options (the flags of `normtweak eval`, without "--").
static int quant_opts_of(const conf *c, const char *calib, nt_quant_opts *q, nt_err *err) {
    *q = nt_quant_opts_make(c->method, c->wbits, c->group_size);
    if (calib[0] && nt_quant_opts_set_calib(q, calib, err)) return -1;
    char buf[1024];
    snprintf(buf, sizeof(buf), "%s", c->options);
    for (char *save = NULL, *t = strtok_r(buf, ";", &save); t; t = strtok_r(NULL, ";", &save)) {
        while (isspace((unsigned char)*t)) t++;
        size_t len = strlen(t);
        while (len && isspace((unsigned char)t[len - 1])) t[--len] = '\0';
        if (!*t) continue;
        char *val = strchr(t, '=');
        if (val) *val++ = '\0';
        for (char *p = t; *p; p++) *p = *p == '_' ? '-' : *p;
        if (strcmp(t, "method") == 0 || strcmp(t, "wbits") == 0 || strcmp(t, "group") == 0)
            return nt_fail_usage(err, "option '%s': not a method option (methods, wbits, group_sizes are grid keys)", t);
        int rc = nt_quant_opts_set(q, t, val, err);
        if (rc > 0) return nt_fail_usage(err, "option '%s': not a method option", t);
        if (rc < 0) return -1;
    }
    return 0;
}

// The one place a grid cell meets nt_evaluate: when nt_eval_opts grows fields, fill them here.
static int eval_conf(const grid *g, const conf *c, const char *tasks, nt_eval_rows *rows, nt_err *err) {
    char kld[1024], samples[1600] = "";
    kld_tasks(g, tasks, kld, sizeof(kld));
    if (g->log_samples[0]) { // one folder per evaluation, named by its cell
        snprintf(samples, sizeof(samples), "%s/%s_%s_w%d_g%d%s%s", g->log_samples, c->model, c->method, c->wbits,
                 c->group_size, c->options[0] ? "_" : "", c->options);
        for (char *p = samples + strlen(g->log_samples) + 1; *p; p++)
            if (!(isalnum((unsigned char)*p) || *p == '-' || *p == '_' || *p == '.')) *p = '_';
        if (mkdir(g->log_samples, 0777) != 0 && errno != EEXIST) {
            memset(rows, 0, sizeof(*rows));
            return nt_fail(err, "%s: cannot create: %s", g->log_samples, strerror(errno));
        }
    }
    nt_eval_opts o = {.model_dir = c->model_dir, .tasks = tasks, .data_dir = g->data_dir, .seqlen = g->seqlen,
                      .limit = g->limit, .limit_items = g->limit_items, .out = g->out, .print_ppl = true, .kld = kld,
                      .log_samples = samples[0] ? samples : NULL};
    nt_quant_opts q;
    if (!is_fp_method(c->method)) {
        if (quant_opts_of(c, g->calib, &q, err)) {
            memset(rows, 0, sizeof(*rows));
            return -1;
        }
        o.quant = &q;
    }
    return nt_evaluate(&o, rows, err);
}

static int record_error(const grid *g, const conf *c, const char *task, const char *msg, double seconds, nt_err *err) {
    char opts[1400], m[1024];
    snprintf(m, sizeof(m), "%s", msg);
    for (char *p = m; *p; p++)
        if (*p == ';' || *p == '\n' || *p == '\r') *p = ',';
    char lim[40] = "";
    if (task_limit(g, task)) snprintf(lim, sizeof(lim), "limit=%ld;", task_limit(g, task));
    snprintf(opts, sizeof(opts), "%s%s%serror=%s", c->options, c->options[0] ? ";" : "", lim, m);
    char device[128];
    nt_cpu_device(device, sizeof device);
    nt_result_row r = {.model = c->model, .method = c->method, .wbits = c->wbits, .abits = c->abits,
                       .group_size = c->group_size, .task = task, .metric = "error", .value = NAN, .stderr_ = NAN, .n = 0, .seqlen = g->seqlen,
                       .seconds = seconds, .calib = c->calib, .options = opts,
                       .device = device};
    return nt_results_append(g->out, &r, 1, err);
}

int nt_grid_run(const char *path, const nt_grid_opts *go, nt_grid_result *res, nt_err *err) {
    memset(res, 0, sizeof(*res));
    bool dry = go->dry_run;
    FILE *log = go->log ? go->log : stderr;
    grid g;
    if (grid_load(path, &g, err)) {
        err->kind = NT_ERR_USAGE;
        grid_free(&g);
        return -1;
    }
    if (go->out) {
        free(g.out);
        g.out = strdup(go->out);
    }
    if (!g.out || !g.out[0]) {
        grid_free(&g);
        return nt_fail_usage(err, "%s: no \"out\" results CSV (or --out)", path);
    }
    // the evaluation calls: fp once per model, quantized methods per bits x group x options
    size_t max_confs = g.models.n * g.methods.n * g.wbits.n * g.groups.n * g.options.n;
    conf *confs = calloc(max_confs, sizeof(conf));
    size_t n_confs = 0;
    int rc = 0;
    for (size_t a = 0; confs && a < g.models.n; a++)
        for (size_t b = 0; b < g.methods.n; b++)
            for (size_t w = 0; w < g.wbits.n; w++)
                for (size_t k = 0; k < g.groups.n; k++)
                    for (size_t o = 0; o < g.options.n; o++) {
                        bool fp = is_fp_method(g.methods.s[b]);
                        if (fp && (w || k || o)) continue;
                        conf *c = &confs[n_confs++];
                        c->model_dir = g.models.s[a];
                        nt_model_name_of_path(c->model_dir, c->model, sizeof(c->model));
                        c->method = g.methods.s[b];
                        c->wbits = fp ? 16 : g.wbits.v[w];
                        c->group_size = fp ? 0 : g.groups.v[k];
                        c->options = fp ? "" : g.options.s[o];
                        nt_quant_opts q;
                        c->abits = 16;
                        c->calib = "";
                        if (!fp && quant_opts_of(c, g.calib, &q, err)) { // bad options: before any work
                            nt_fail_usage(err, "%s: %s", path, err->msg);
                            rc = -1;
                            goto done;
                        }
                        if (!fp) c->abits = q.abits;
                        if (!fp && nt_quant_opts_calibrates(&q)) c->calib = g.calib;
                    }
    if (!confs) {
        rc = nt_fail(err, "out of memory");
        goto done;
    }
    size_t n_cells = n_confs * g.tasks.n, n_skip = 0, n_ok = 0, n_failed = 0, idx = 0, n_eval_cells = 0;
    double t_run = nt_time();
    for (size_t i = 0; i < n_confs; i++) {
        const conf *c = &confs[i];
        nt_results_set done = {0};
        if (nt_file_exists(g.out)) {
            const char *p[1] = {g.out};
            if (nt_results_read(p, 1, &done, err)) {
                rc = -1;
                goto done;
            }
        }
        char tasks[4096] = "";
        size_t k = 0, n_todo = 0;
        for (size_t t = 0; t < g.tasks.n; t++) {
            idx++;
            if (cell_done(&done, &g, c, g.tasks.s[t])) {
                n_skip++;
                if (dry) fprintf(go->listing, "done     [%zu/%zu] %s %s w%d g%d {%s} %s\n", idx, n_cells, c->model, c->method,
                                c->wbits, c->group_size, c->options, g.tasks.s[t]);
                continue;
            }
            if (dry) fprintf(go->listing, "pending  [%zu/%zu] %s %s w%d g%d {%s} %s\n", idx, n_cells, c->model, c->method,
                            c->wbits, c->group_size, c->options, g.tasks.s[t]);
            k += (size_t)snprintf(tasks + k, sizeof(tasks) - k, "%s%s", n_todo++ ? "," : "", g.tasks.s[t]);
        }
        nt_results_set_free(&done);
        if (dry || n_todo == 0) continue;
        // ETA: the mean time of the cells evaluated so far in this run, times the cells not yet visited (some of which
        // may turn out to be done already: an upper estimate)
        char eta[96] = "";
        if (n_eval_cells > 0) {
            char e[32], left[32];
            double el = nt_time() - t_run;
            nt_format_seconds(el, e, sizeof(e));
            nt_format_seconds(el / (double)n_eval_cells * (double)(n_cells - (idx - n_todo)), left, sizeof(left));
            snprintf(eta, sizeof(eta), " (%s elapsed, ETA <= %s)", e, left);
        }
        fprintf(log, "normtweak run: [cells %zu-%zu of %zu] %s %s w%d g%d%s%s: %s%s\n", idx - g.tasks.n + 1, idx, n_cells,
                c->model, c->method, c->wbits, c->group_size, c->options[0] ? " " : "", c->options, tasks, eta);
        n_eval_cells += n_todo;
        nt_eval_rows rows;
        double t0 = nt_time();
        nt_err cell_err = {0};
        if (eval_conf(&g, c, tasks, &rows, &cell_err) == 0) {
            n_ok += n_todo; // cells (tasks), not rows: a zero-shot task writes several (acc, acc_norm)
            nt_eval_rows_free(&rows);
            continue;
        }
        // the tasks without a row failed (those before the failure were appended as they finished)
        fprintf(log, "normtweak run: cell failed: %s\n", cell_err.msg);
        const char *msg = cell_err.msg;
        char *save = NULL;
        for (char *t = strtok_r(tasks, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
            bool got = false;
            for (size_t r = 0; r < rows.n && !got; r++) got = strcmp(rows.rows[r].task, t) == 0;
            if (got) {
                n_ok++;
                continue;
            }
            n_failed++;
            if (record_error(&g, c, t, msg, nt_time() - t0, err)) {
                nt_eval_rows_free(&rows);
                rc = -1;
                goto done;
            }
        }
        nt_eval_rows_free(&rows);
    }
    if (dry) {
        *res = (nt_grid_result){.cells = n_cells, .done_before = n_skip};
        goto done;
    }
    fprintf(log, "normtweak run: %zu cells: %zu already done, %zu evaluated, %zu failed (rows with metric "
                    "\"error\" in %s)\n", n_cells, n_skip, n_ok, n_failed, g.out);
    *res = (nt_grid_result){.cells = n_cells, .done_before = n_skip, .evaluated = n_ok, .failed = n_failed};
    if (go->table && nt_file_exists(g.out)) {
        fflush(stdout);
        const char *paths[1] = {g.out};
        nt_table_opts to = {.md = go->table, .notes = log};
        if (nt_table_write(paths, 1, &to, err)) {
            rc = -1;
            goto done;
        }
    }
done:
    free(confs);
    grid_free(&g);
    return rc;
}
