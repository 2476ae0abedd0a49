// test_run.c: experiment grids (nt_grid_run, eval/grid.h, called as a function; the kill and the exit statuses
// through the `normtweak run` binary): a small grid on the shared tiny models (ptb and ptb-new, 2
// windows each) run straight through, then run again into another CSV, killed with SIGKILL after its first
// row, and resumed: the resumed CSV has the same cells, each once, with the same values. Also failed cells
// (an unknown method: an "error" row, the run goes on, exit 1) and unusable experiment files (exit 2).
#define _POSIX_C_SOURCE 200809L
#include <criterion/criterion.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "csv_read.h"
#include "grid.h"

const char *openblas_get_corename(void); // OpenBLAS (linked through libnt)
#include "testutil.h"

typedef struct {
    char *dir, *json;
} grid_env;

static grid_env make_grid(const char *extra) {
    grid_env g = {.dir = tu_tmpdir()};
    char *opt = tu_shared("models/tiny-opt"), *llama = tu_shared("models/tiny-llama"), *data = tu_shared("datasets");
    char text[4096];
    snprintf(text, sizeof(text),
             "{\"models\": [\"%s\", \"%s\"], \"methods\": [\"fp\"%s], \"tasks\": [\"ptb\", \"ptb-new\"],\n"
             " \"limit\": 2, \"data_dir\": \"%s\", \"out\": \"default.csv\"}\n",
             opt, llama, extra, data);
    g.json = nt_path_join(g.dir, "grid.json");
    cr_assert_eq(tu_write_file(g.json, text, strlen(text)), 0);
    free(opt);
    free(llama);
    free(data);
    return g;
}

static void free_grid(grid_env *g) {
    tu_rmtree(g->dir);
    free(g->dir);
    free(g->json);
}

static char *read_stream(FILE *f) {
    fflush(f);
    long n = ftell(f);
    char *t = calloc((size_t)(n > 0 ? n : 0) + 1, 1);
    rewind(f);
    if (n > 0) cr_assert_eq(fread(t, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    return t;
}

// nt_grid_run(GRID) into DIR/OUT on one thread, no table; its log (and error message) into *log; returns the exit
// status `normtweak run` gives (0 all done, 1 a cell failed, 2 unusable file).
static int run_grid(const grid_env *g, const char *out, nt_grid_result *res, char **log) {
    char path[2048];
    snprintf(path, sizeof(path), "%s/%s", g->dir, out ? out : "");
    FILE *lf = tmpfile();
    cr_assert(lf);
    nt_grid_opts o = {.out = out ? path : NULL, .listing = lf, .log = lf}; // out NULL: the file's "out"
    nt_set_threads(1);
    nt_err err = {0};
    int rc = nt_grid_run(g->json, &o, res, &err);
    if (rc) fprintf(lf, "%s\n", err.msg);
    *log = read_stream(lf);
    return rc ? nt_err_exit_status(&err) : res->failed ? 1 : 0;
}

static size_t count_rows(const char *path) {
    if (!nt_file_exists(path)) return 0;
    nt_csv c;
    if (nt_csv_read(path, &c, NULL)) return 0; // being replaced: try again later
    size_t n = c.n_rows;
    nt_csv_free(&c);
    return n;
}

// The cells of a results CSV as sorted lines "model,method,wbits,group_size,task,metric,seqlen,options:value,stderr,n".
static char *cells_of(const char *path) {
    nt_csv c;
    nt_err err;
    cr_assert_eq(nt_csv_read(path, &c, &err), 0, "%s", err.msg);
    const char *keep[] = {"model", "method", "wbits", "group_size", "task", "metric", "seqlen", "options",
                          "value", "stderr", "n"};
    char **lines = calloc(c.n_rows, sizeof(char *));
    size_t total = 1;
    for (size_t r = 0; r < c.n_rows; r++) {
        char buf[2048];
        size_t k = 0;
        for (size_t i = 0; i < sizeof(keep) / sizeof(keep[0]); i++) {
            int col = nt_csv_col(&c, keep[i]);
            cr_assert(col >= 0);
            k += (size_t)snprintf(buf + k, sizeof(buf) - k, "%s%s", i == 0 ? "" : i == 8 ? " : " : ",",
                                  nt_csv_cell(&c, r, col));
        }
        lines[r] = strdup(buf);
        total += strlen(buf) + 1;
    }
    for (size_t i = 1; i < c.n_rows; i++)
        for (size_t j = i; j > 0 && strcmp(lines[j - 1], lines[j]) > 0; j--) {
            char *t = lines[j];
            lines[j] = lines[j - 1];
            lines[j - 1] = t;
        }
    char *all = calloc(total, 1);
    for (size_t r = 0; r < c.n_rows; r++) {
        strcat(all, lines[r]);
        strcat(all, "\n");
        free(lines[r]);
    }
    free(lines);
    nt_csv_free(&c);
    return all;
}

Test(run, resume_after_kill_gives_the_same_cells) {
    grid_env g = make_grid("");
    char *err = NULL;
    nt_grid_result res;
    // A: straight through
    int st = run_grid(&g, "A.csv", &res, &err);
    cr_assert_eq(st, 0, "exit %d: %s", st, err);
    cr_assert(res.cells == 4 && res.done_before == 0 && res.evaluated == 4 && res.failed == 0, "%s", err);
    free(err);
    char *a_path = nt_path_join(g.dir, "A.csv"), *b_path = nt_path_join(g.dir, "B.csv");
    cr_assert_eq(count_rows(a_path), 4, "2 models x 2 tasks");

    // B: started, killed with SIGKILL as soon as its first row is in the CSV
    const char *bin = getenv("NT_BINARY_DIR");
    char exe[1024];
    snprintf(exe, sizeof(exe), "%s/normtweak", bin ? bin : ".");
    pid_t pid = fork();
    cr_assert(pid >= 0);
    if (pid == 0) {
        int devnull = open("/dev/null", O_WRONLY);
        dup2(devnull, 1);
        dup2(devnull, 2);
        // the values must equal A's exactly: the same OpenBLAS kernels as this process (normtweak would otherwise
        // pick a faster core at start, nt_tune_runtime, and round differently)
        setenv("OPENBLAS_CORETYPE", openblas_get_corename(), 1);
        execl(exe, "normtweak", "run", g.json, "--out", b_path, "--threads", "1", "--no-table", (char *)NULL);
        _exit(127);
    }
    size_t n_before = 0;
    for (int i = 0; i < 60000 && n_before == 0; i++) { // up to 10 minutes (sanitizer builds are slow)
        struct timespec ts = {0, 10 * 1000 * 1000};
        nanosleep(&ts, NULL);
        n_before = count_rows(b_path);
        int ws;
        if (n_before == 0 && waitpid(pid, &ws, WNOHANG) == pid) cr_assert_fail("the run ended before writing a row");
    }
    cr_assert_eq(kill(pid, SIGKILL), 0);
    int ws;
    cr_assert_eq(waitpid(pid, &ws, 0), pid);
    cr_assert(WIFSIGNALED(ws) && WTERMSIG(ws) == SIGKILL, "the run was not killed (it had finished?)");
    size_t n_killed = count_rows(b_path);
    cr_assert(n_killed >= 1 && n_killed < 4, "killed run left %zu rows, want 1..3", n_killed);

    // resumed: the done cells are skipped, the rest evaluated
    st = run_grid(&g, "B.csv", &res, &err);
    cr_assert_eq(st, 0, "exit %d: %s", st, err);
    cr_assert(res.cells == 4 && res.done_before == n_killed && res.evaluated == 4 - n_killed && res.failed == 0);
    char expect[128];
    snprintf(expect, sizeof(expect), "4 cells: %zu already done, %zu evaluated, 0 failed", n_killed, 4 - n_killed);
    cr_assert(strstr(err, expect), "stderr lacks '%s':\n%s", expect, err);
    free(err);

    char *a = cells_of(a_path), *b = cells_of(b_path);
    cr_assert_str_eq(b, a, "resumed cells differ from the uninterrupted run");
    free(a);
    free(b);

    // a third run has nothing to do
    st = run_grid(&g, "B.csv", &res, &err);
    cr_assert_eq(st, 0);
    cr_assert(res.done_before == 4 && res.evaluated == 0);
    cr_assert(strstr(err, "4 cells: 4 already done, 0 evaluated, 0 failed"), "%s", err);
    free(err);
    cr_assert_eq(count_rows(b_path), 4);
    free(a_path);
    free(b_path);
    free_grid(&g);
}

Test(run, failed_cell_recorded_and_run_goes_on) {
    grid_env g = make_grid(", \"nosuch\"");
    char *err = NULL;
    nt_grid_result res;
    int st = run_grid(&g, "R.csv", &res, &err);
    cr_assert_eq(st, 1, "exit %d (want 1: a cell failed): %s", st, err);
    cr_assert(strstr(err, "8 cells: 0 already done, 4 evaluated, 4 failed"), "%s", err);
    free(err);
    char *p = nt_path_join(g.dir, "R.csv");
    nt_results_set s;
    const char *paths[1] = {p};
    nt_err e;
    cr_assert_eq(nt_results_read(paths, 1, &s, &e), 0, "%s", e.msg);
    size_t n_err = 0, n_ppl = 0;
    for (size_t i = 0; i < s.n; i++) {
        const nt_result_rec *x = &s.recs[i];
        if (strcmp(x->r.metric, "error") == 0) {
            n_err++;
            cr_expect_str_eq(x->r.method, "nosuch");
            cr_expect(strstr(x->r.options, "limit=2;error=") == x->r.options && strstr(x->r.options, "nosuch"),
                      "options '%s'", x->r.options);
        } else {
            n_ppl++;
            cr_expect_str_eq(x->r.method, "fp");
        }
    }
    cr_assert_eq(n_err, 4);
    cr_assert_eq(n_ppl, 4);
    nt_results_set_free(&s);
    // a rerun skips the done cells and retries the failed ones
    st = run_grid(&g, "R.csv", &res, &err);
    cr_assert_eq(st, 1);
    cr_assert(res.cells == 8 && res.done_before == 4 && res.failed == 4);
    cr_assert(strstr(err, "8 cells: 4 already done, 0 evaluated, 4 failed"), "%s", err);
    free(err);
    free(p);
    free_grid(&g);
}

Test(run, dry_run_and_table_at_the_end) {
    grid_env g = make_grid("");
    const char *bin = getenv("NT_BINARY_DIR");
    char cmd[4096];
    snprintf(cmd, sizeof(cmd), "cd '%s' && NT_PROGRESS=0 '%s/normtweak' run '%s' --out T.csv --threads 1 >stdout.txt 2>/dev/null",
             g.dir, bin ? bin : ".", g.json);
    cr_assert_eq(system(cmd), 0);
    char *p = nt_path_join(g.dir, "stdout.txt");
    char *out = nt_read_file(p, NULL, NULL);
    cr_assert(out && strstr(out, "| model      | wbits | group_size | method |") && strstr(out, "| tiny-llama |    16 |"),
              "%s", out);
    free(out);
    snprintf(cmd, sizeof(cmd), "cd '%s' && '%s/normtweak' run '%s' --out T.csv --dry-run >stdout.txt 2>/dev/null",
             g.dir, bin ? bin : ".", g.json);
    cr_assert_eq(system(cmd), 0);
    out = nt_read_file(p, NULL, NULL);
    cr_assert(out && strstr(out, "done     [1/4] tiny-opt fp w16 g0 {} ptb\n"), "%s", out);
    free(out);
    free(p);
    free_grid(&g);
}

Test(run, unusable_experiment_files) {
    char *d = tu_tmpdir();
    struct {
        const char *json;
        const char *needle;
    } cases[] = {
        {"{\"models\": [\"x\"], \"out\": \"o.csv\", \"method\": [\"fp\"]}", "unknown key \"method\""},
        {"{\"tasks\": \"ptb\", \"out\": \"o.csv\"}", "\"tasks\" must be a non-empty array of strings"},
        {"{\"wbits\": [4.5], \"out\": \"o.csv\"}", "\"wbits\" must be an array of integers"},
        {"{\"limit\": -1, \"out\": \"o.csv\"}", "\"limit\" must be an integer"},
        {"{\"tasks\": [\"ptb\"]}", "no \"out\" results CSV"},
        {"{\"methods\": [\"rtn\"], \"options\": [\"colour=red\"], \"out\": \"o.csv\"}", "option 'colour'"},
        {"[1, 2]", "not a JSON object"},
        {"{\"out\": ", "malformed JSON"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char *p = nt_path_join(d, "g.json");
        cr_assert_eq(tu_write_file(p, cases[i].json, strlen(cases[i].json)), 0);
        grid_env g = {.dir = d, .json = p};
        char *err = NULL;
        nt_grid_result res;
        int st = run_grid(&g, NULL, &res, &err);
        cr_expect_eq(st, 2, "%s: exit %d: %s", cases[i].json, st, err);
        cr_expect(err && strstr(err, cases[i].needle), "%s: stderr '%s' lacks '%s'", cases[i].json, err, cases[i].needle);
        free(err);
        free(p);
    }
    char *err = NULL;
    cr_expect_eq(tu_run_cli("run /nonexistent/g.json", &err), 2); // the command's exit status for it
    cr_expect(err && strstr(err, "/nonexistent/g.json"));
    free(err);
    tu_rmtree(d);
    free(d);
}

// Cells whose rows record more options than the grid names (norm tweaking's defaults, act_order spelled with '_')
// and a calibration given as ":NxL" (each method's own source) are found again: a rerun evaluates nothing. RTN
// takes no calibration, so its rows record none though the grid names one: they are found too.
Test(run, rerun_finds_tweaked_and_optioned_cells) {
    char *dir = tu_tmpdir(), *opt = tu_shared("models/tiny-opt"), *data = tu_shared("datasets");
    char text[2048];
    snprintf(text, sizeof(text),
             "{\"models\": [\"%s\"], \"methods\": [\"rtn\", \"rtn+nt\", \"gptq\"], \"wbits\": [4], \"group_sizes\": [-1],\n"
             " \"options\": [\"\", \"act-order;sym\"], \"tasks\": [\"ptb\"], \"calib\": \":4x64\", \"limit\": 1,\n"
             " \"data_dir\": \"%s\", \"out\": \"o.csv\"}\n", opt, data);
    grid_env g = {.dir = dir, .json = nt_path_join(dir, "grid.json")};
    cr_assert_eq(tu_write_file(g.json, text, strlen(text)), 0);
    nt_grid_result res;
    char *log = NULL;
    int st = run_grid(&g, "o.csv", &res, &log);
    cr_assert(st == 0 && res.cells == 6 && res.evaluated == 6 && res.failed == 0, "exit %d: %s", st, log);
    free(log);
    st = run_grid(&g, "o.csv", &res, &log);
    cr_assert(st == 0 && res.done_before == 6 && res.evaluated == 0, "rerun: %zu done, %zu evaluated: %s",
              res.done_before, res.evaluated, log);
    free(log);
    free(opt);
    free(data);
    free_grid(&g);
}

// "limit_items" limits the zero-shot tasks separately from the perplexity windows ("limit"): each row states its
// own limit, and a rerun finds both cells done (the resume key uses the task's own limit).
Test(run, zero_shot_item_limit_apart_from_windows) {
    grid_env g = {.dir = tu_tmpdir()};
    char *opt = tu_shared("models/tiny-opt"), *data = tu_shared("datasets");
    char text[4096];
    snprintf(text, sizeof(text),
             "{\"models\": [\"%s\"], \"methods\": [\"fp\"], \"tasks\": [\"ptb\", \"piqa\"],\n"
             " \"limit\": 2, \"limit_items\": 3, \"data_dir\": \"%s\", \"out\": \"items.csv\"}\n",
             opt, data);
    g.json = nt_path_join(g.dir, "grid.json");
    cr_assert_eq(tu_write_file(g.json, text, strlen(text)), 0);
    free(opt);
    free(data);
    nt_grid_result res;
    char *log;
    cr_assert_eq(run_grid(&g, "items.csv", &res, &log), 0, "%s", log);
    free(log);
    cr_assert_eq(res.cells, 2);
    cr_assert_eq(res.evaluated, 2, "evaluated counts cells, not rows (piqa writes acc and acc_norm): %zu", res.evaluated);
    char *path = nt_path_join(g.dir, "items.csv");
    char *cells = cells_of(path);
    cr_assert(strstr(cells, "tiny-opt,fp,16,0,ptb,ppl,") && strstr(cells, "limit=2 : "), "%s", cells);
    cr_assert(strstr(cells, "tiny-opt,fp,16,0,piqa,acc,") && strstr(cells, "limit=3 : ") &&
                  strstr(cells, "piqa,acc,"),
              "%s", cells);
    // the piqa rows count 3 items, the ptb row the tokens of 2 windows (2 x 255 predicted at seqlen 256)
    for (const char *p = cells; (p = strstr(p, ",piqa,")); p++) {
        const char *nl = strchr(p, '\n');
        cr_assert(nl && nl - p > 2 && strncmp(nl - 2, ",3", 2) == 0, "%.*s", (int)(nl - p), p);
    }
    const char *ptb = strstr(cells, ",ptb,ppl,");
    cr_assert(ptb && strncmp(strchr(ptb, '\n') - 4, ",510", 4) == 0, "%s", cells);
    free(cells);
    cr_assert_eq(run_grid(&g, "items.csv", &res, &log), 0, "%s", log);
    free(log);
    cr_assert_eq(res.evaluated, 0, "a rerun must find both cells done");
    cr_assert_eq(res.done_before, 2, "%zu", res.done_before);
    free(path);
    free_grid(&g);
}
