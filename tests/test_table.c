// test_table.c: the comparison tables (nt_table_write, eval/table.h, called as a function; the command line's
// options and exit statuses through the binary) on small results CSVs written here: the paper layout (float row first,
// norm tweaking beside its base, deltas vs fp and vs the base), exact Markdown and CSV text, the pivot, duplicate
// rows (latest wins, with a note), missing cells, bad input; and `normtweak plot` when gnuplot is installed.
#define _POSIX_C_SOURCE 200809L
#include <criterion/criterion.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "table.h"
#include "testutil.h"

#define HEADER "model,method,wbits,group_size,task,metric,value,stderr,n,seqlen,seconds,calib,options,device,commit,timestamp\n"

// Out of order on purpose; gptq w4 wikitext2 twice (the later, 11.25, wins); a failed cell (metric error).
static const char *fixture =
    HEADER
    "m1,gptq+nt,4,128,wikitext2,ppl,10.5,,1,256,1,c4,,cpu,x,2024-01-01T00:00:00Z\n"
    "m1,rtn,4,128,wikitext2,ppl,12,,1,256,1,,,cpu,x,2024-01-01T00:00:00Z\n"
    "m1,fp,16,0,wikitext2,ppl,10,,1,256,1,,,cpu,x,2024-01-01T00:00:00Z\n"
    "m1,gptq,4,128,wikitext2,ppl,11,,1,256,1,c4,,cpu,x,2024-01-01T00:00:00Z\n"
    "m1,rtn+nt,4,128,wikitext2,ppl,11.5,,1,256,1,,,cpu,x,2024-01-01T00:00:00Z\n"
    "m1,gptq,3,-1,wikitext2,ppl,20,,1,256,1,c4,,cpu,x,2024-01-01T00:00:00Z\n"
    "m1,fp,16,0,hellaswag,acc,0.5,,1,0,1,,,cpu,x,2024-01-01T00:00:00Z\n"
    "m1,fp,16,0,hellaswag,acc_norm,0.6,,1,0,1,,,cpu,x,2024-01-01T00:00:00Z\n"
    "m1,gptq,4,128,hellaswag,acc,0.49,,1,0,1,c4,,cpu,x,2024-01-01T00:00:00Z\n"
    "m1,gptq,4,128,wikitext2,ppl,11.25,,1,256,1,c4,,cpu,x,2024-01-02T00:00:00Z\n"
    "m1,gptq,4,128,ptb,error,,,0,256,1,c4,\"error=boom, really\",cpu,x,2024-01-02T00:00:00Z\n";

static const char *expected_md =
    "| model | wbits | group_size  | method  | wikitext2 | hellaswag acc | hellaswag acc_norm |\n"
    "|-------|------:|-------------|---------|----------:|--------------:|-------------------:|\n"
    "| m1    |    16 | n/a         | fp      |     10.00 |         50.00 |              60.00 |\n"
    "| m1    |     4 | 128         | rtn     |     12.00 |             — |                  — |\n"
    "| m1    |     4 | 128         | rtn+nt  |     11.50 |             — |                  — |\n"
    "| m1    |     4 | 128         | gptq    |     11.25 |         49.00 |                  — |\n"
    "| m1    |     4 | 128         | gptq+nt |     10.50 |             — |                  — |\n"
    "| m1    |     3 | per-channel | gptq    |     20.00 |             — |                  — |\n"
    "\n"
    "ppl: perplexity, lower is better. acc: accuracy in %, higher is better.\n"
    "\n"
    "Deltas:\n"
    "\n"
    "| model | wbits | group_size  | method  | vs   | wikitext2 | hellaswag acc | hellaswag acc_norm |\n"
    "|-------|------:|-------------|---------|------|----------:|--------------:|-------------------:|\n"
    "| m1    |     4 | 128         | rtn     | fp   |     +2.00 |             — |                  — |\n"
    "| m1    |     4 | 128         | rtn+nt  | fp   |     +1.50 |             — |                  — |\n"
    "| m1    |     4 | 128         | rtn+nt  | rtn  |     -0.50 |             — |                  — |\n"
    "| m1    |     4 | 128         | gptq    | fp   |     +1.25 |         -1.00 |                  — |\n"
    "| m1    |     4 | 128         | gptq+nt | fp   |     +0.50 |             — |                  — |\n"
    "| m1    |     4 | 128         | gptq+nt | gptq |     -0.75 |             — |                  — |\n"
    "| m1    |     3 | per-channel | gptq    | fp   |    +10.00 |             — |                  — |\n"
    "\n"
    "ppl: perplexity, lower is better; deltas in perplexity points. acc: accuracy in %, higher is better; deltas in percentage points. vs fp: minus the float model; vs <method>: norm tweaking minus its base method.\n";

static const char *expected_csv =
    "model,wbits,group_size,method,vs,wikitext2,hellaswag acc,hellaswag acc_norm\n"
    "m1,16,0,fp,,10,0.5,0.6\n"
    "m1,4,128,rtn,,12,,\n"
    "m1,4,128,rtn+nt,,11.5,,\n"
    "m1,4,128,gptq,,11.25,0.49,\n"
    "m1,4,128,gptq+nt,,10.5,,\n"
    "m1,3,-1,gptq,,20,,\n"
    "m1,4,128,rtn,fp,2,,\n"
    "m1,4,128,rtn+nt,fp,1.5,,\n"
    "m1,4,128,rtn+nt,rtn,-0.5,,\n"
    "m1,4,128,gptq,fp,1.25,-0.01,\n"
    "m1,4,128,gptq+nt,fp,0.5,,\n"
    "m1,4,128,gptq+nt,gptq,-0.75,,\n"
    "m1,3,-1,gptq,fp,10,,\n";

// Runs `normtweak ARGS` in dir, stdout and stderr into malloc'd strings; returns the exit status.
static int run_in(const char *dir, const char *args, char **out, char **err) {
    const char *bin = getenv("NT_BINARY_DIR");
    char cmd[8192];
    snprintf(cmd, sizeof(cmd), "cd '%s' && NT_PROGRESS=0 '%s/normtweak' %s >stdout.txt 2>stderr.txt", dir,
             bin ? bin : ".", args);
    int st = system(cmd);
    char p[1024];
    snprintf(p, sizeof(p), "%s/stdout.txt", dir);
    if (out) *out = nt_read_file(p, NULL, NULL);
    snprintf(p, sizeof(p), "%s/stderr.txt", dir);
    if (err) *err = nt_read_file(p, NULL, NULL);
    return (st != -1 && WIFEXITED(st)) ? WEXITSTATUS(st) : -1;
}

static char *read_stream(FILE *f) {
    fflush(f);
    long n = ftell(f);
    char *s = calloc((size_t)(n > 0 ? n : 0) + 1, 1);
    rewind(f);
    if (n > 0) cr_assert_eq(fread(s, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    return s;
}

// nt_table_write in dir on the n CSVs paths (relative names, as a user gives them): the Markdown into *out, the
// notes and the error message into *err (either may be NULL); returns the exit status `normtweak table` gives.
static int table_in(const char *dir, const char *pivot, const char *const *paths, size_t n, const char *out_csv,
                    char **out, char **err) {
    char cwd[4096];
    cr_assert(getcwd(cwd, sizeof(cwd)));
    cr_assert_eq(chdir(dir), 0);
    FILE *md = tmpfile(), *notes = tmpfile();
    cr_assert(md && notes);
    nt_table_opts o = {.pivot = pivot, .md = md, .out_csv = out_csv, .notes = notes};
    nt_err e = {0};
    int rc = nt_table_write(paths, n, &o, &e);
    cr_assert_eq(chdir(cwd), 0);
    if (rc) fprintf(notes, "%s\n", e.msg);
    char *m = read_stream(md), *t = read_stream(notes);
    if (out) *out = m;
    else free(m);
    if (err) *err = t;
    else free(t);
    return rc ? nt_err_exit_status(&e) : 0;
}

static char *put(const char *dir, const char *name, const char *text) {
    char *p = nt_path_join(dir, name);
    cr_assert_eq(tu_write_file(p, text, strlen(text)), 0);
    return p;
}

static char *slurp(const char *dir, const char *name) {
    char *p = nt_path_join(dir, name);
    char *s = nt_read_file(p, NULL, NULL);
    free(p);
    cr_assert_not_null(s, "%s/%s was not written", dir, name);
    return s;
}

Test(table, paper_layout_markdown_and_csv) {
    char *d = tu_tmpdir();
    free(put(d, "r.csv", fixture));
    char *out = NULL, *err = NULL;
    const char *r_csv[] = {"r.csv"};
    int st = table_in(d, NULL, r_csv, 1, "t.csv", &out, &err);
    cr_assert_eq(st, 0, "exit %d: %s", st, err);
    cr_assert_str_eq(out, expected_md);
    char *csv = slurp(d, "t.csv");
    cr_assert_str_eq(csv, expected_csv);
    // the duplicate and the failed cell are reported, one note each
    cr_assert(strstr(err, "2 rows for m1 gptq w4 g128 wikitext2 ppl; kept the latest (2024-01-02T00:00:00Z, r.csv row 10)"),
              "%s", err);
    cr_assert(strstr(err, "1 rows with metric \"error\""), "%s", err);
    // --out-md: the same Markdown into a file, nothing on stdout
    free(out);
    st = run_in(d, "table r.csv --out-md t.md", &out, NULL);
    cr_assert_eq(st, 0);
    cr_assert_str_eq(out, "");
    char *md = slurp(d, "t.md");
    cr_assert_str_eq(md, expected_md);
    free(md);
    free(csv);
    free(out);
    free(err);
    tu_rmtree(d);
    free(d);
}

Test(table, pivot_wbits) {
    char *d = tu_tmpdir();
    free(put(d, "r.csv", HEADER
                         "m,rtn,3,128,ptb,ppl,30,,1,256,1,,,cpu,x,t\n"
                         "m,fp,16,0,ptb,ppl,10,,1,256,1,,,cpu,x,t\n"
                         "m,rtn,4,128,ptb,ppl,20,,1,256,1,,,cpu,x,t\n"
                         "m,rtn+nt,4,128,ptb,ppl,15,,1,256,1,,,cpu,x,t\n"));
    char *out = NULL;
    const char *r_csv[] = {"r.csv"};
    int st = table_in(d, "wbits", r_csv, 1, "t.csv", &out, NULL);
    cr_assert_eq(st, 0);
    cr_assert_str_eq(out,
                     "| model | task | metric | group_size | method |   W16 |    W4 |    W3 |\n"
                     "|-------|------|--------|------------|--------|------:|------:|------:|\n"
                     "| m     | ptb  | ppl    | n/a        | fp     | 10.00 |     — |     — |\n"
                     "| m     | ptb  | ppl    | 128        | rtn    |     — | 20.00 | 30.00 |\n"
                     "| m     | ptb  | ppl    | 128        | rtn+nt |     — | 15.00 |     — |\n"
                     "\n"
                     "ppl: perplexity, lower is better.\n"
                     "\n"
                     "Deltas:\n"
                     "\n"
                     "| model | task | metric | group_size | method | vs  | W16 |     W4 |     W3 |\n"
                     "|-------|------|--------|------------|--------|-----|----:|-------:|-------:|\n"
                     "| m     | ptb  | ppl    | 128        | rtn    | fp  |   — | +10.00 | +20.00 |\n"
                     "| m     | ptb  | ppl    | 128        | rtn+nt | fp  |   — |  +5.00 |      — |\n"
                     "| m     | ptb  | ppl    | 128        | rtn+nt | rtn |   — |  -5.00 |      — |\n"
                     "\n"
                     "ppl: perplexity, lower is better; deltas in perplexity points. vs fp: minus the float model; "
                     "vs <method>: norm tweaking minus its base method.\n");
    char *csv = slurp(d, "t.csv");
    cr_assert_str_eq(csv, "model,task,metric,group_size,method,vs,W16,W4,W3\n"
                          "m,ptb,ppl,0,fp,,10,,\n"
                          "m,ptb,ppl,128,rtn,,,20,30\n"
                          "m,ptb,ppl,128,rtn+nt,,,15,\n"
                          "m,ptb,ppl,128,rtn,fp,,10,20\n"
                          "m,ptb,ppl,128,rtn+nt,fp,,5,\n"
                          "m,ptb,ppl,128,rtn+nt,rtn,,-5,\n");
    free(csv);
    free(out);
    tu_rmtree(d);
    free(d);
}

Test(table, two_files_quoted_fields_and_options) {
    // options set: an options column (rows with other options are other experiments)
    char *d = tu_tmpdir();
    free(put(d, "a.csv", HEADER "\"m, one\",fp,16,0,ptb,ppl,10,,1,256,1,,,cpu,x,t\n"));
    free(put(d, "b.csv", HEADER "\"m, one\",rtn,4,-1,ptb,ppl,12.5,,1,256,1,,\"a=1;b=2\",cpu,x,t\r\n"));
    char *out = NULL;
    const char *ab[] = {"a.csv", "b.csv"};
    cr_assert_eq(table_in(d, NULL, ab, 2, "t.csv", &out, NULL), 0);
    cr_assert(strstr(out, "| model  | wbits | group_size  | method | options |   ptb |\n"
                          "|--------|------:|-------------|--------|---------|------:|\n"
                          "| m, one |    16 | n/a         | fp     |         | 10.00 |\n"
                          "| m, one |     4 | per-channel | rtn    | a=1;b=2 | 12.50 |\n"),
              "%s", out);
    char *csv = slurp(d, "t.csv");
    cr_assert_str_eq(csv, "model,wbits,group_size,method,options,vs,ptb\n"
                          "\"m, one\",16,0,fp,,,10\n"
                          "\"m, one\",4,-1,rtn,a=1;b=2,,12.5\n"
                          "\"m, one\",4,-1,rtn,a=1;b=2,fp,2.5\n");
    free(csv);
    free(out);
    tu_rmtree(d);
    free(d);
}

Test(table, bad_input) {
    char *d = tu_tmpdir();
    free(put(d, "r.csv", fixture));
    free(put(d, "bad.csv", HEADER "m,fp,16,0,ptb,ppl,10\n"));
    free(put(d, "nan.csv", HEADER "m,fp,sixteen,0,ptb,ppl,10,,1,256,1,,,cpu,x,t\n"));
    free(put(d, "quote.csv", HEADER "m,fp,16,0,\"ptb,ppl,10,,1,256,1,,,cpu,x,t\n"));
    free(put(d, "other.csv", "a,b\n1,2\n"));
    struct {
        const char *args;
        int status;
        const char *needle;
    } cases[] = {
        {"table r.csv --pivot colour", 2, "--pivot colour"},
        {"table", 2, "no results CSV"},
        {"table missing.csv", 1, "missing.csv"},
        {"table bad.csv", 1, "bad.csv: malformed CSV: data row 1 has 7 fields, the header has 16"},
        {"table nan.csv", 1, "nan.csv: data row 1: wbits 'sixteen' is not an integer"},
        {"table quote.csv", 1, "quote.csv: malformed CSV"},
        {"table other.csv", 1, "other.csv: not a results CSV: no 'model' column"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char *err = NULL;
        // the two usage errors are the command line's; the rest the library's, called as the command calls it
        const char *file = strncmp(cases[i].args, "table ", 6) == 0 && !strstr(cases[i].args, "--") ? cases[i].args + 6 : NULL;
        int st = file ? table_in(d, NULL, &file, 1, NULL, NULL, &err) : run_in(d, cases[i].args, NULL, &err);
        cr_expect_eq(st, cases[i].status, "%s: exit %d, want %d", cases[i].args, st, cases[i].status);
        cr_expect(err && strstr(err, cases[i].needle), "%s: stderr '%s' lacks '%s'", cases[i].args, err, cases[i].needle);
        free(err);
    }
    tu_rmtree(d);
    free(d);
}

// ---- plot ----

static bool have_gnuplot(void) { return system("command -v gnuplot >/dev/null 2>&1") == 0; }

static void expect_png(const char *dir, const char *name) {
    char *p = nt_path_join(dir, name);
    size_t len = 0;
    char *s = nt_read_file(p, &len, NULL);
    cr_assert_not_null(s, "%s was not written", p);
    cr_assert(len > 1000 && memcmp(s, "\x89PNG", 4) == 0, "%s is not a PNG (%zu bytes)", p, len);
    free(s);
    free(p);
}

// `normtweak plot ARGS` in dir must exit 0 (stderr in the message otherwise); its stdout and stderr go to *out and
// *err, or are freed where those are NULL.
static void plot_ok(const char *dir, const char *args, char **out, char **err) {
    char *o = NULL, *e = NULL, cmd[1024];
    snprintf(cmd, sizeof(cmd), "plot %s", args);
    int st = run_in(dir, cmd, &o, &e);
    cr_assert_eq(st, 0, "plot %s: exit %d: %s", args, st, e);
    if (out) *out = o;
    else free(o);
    if (err) *err = e;
    else free(e);
}

Test(plot, quality_and_speedup) {
    if (!have_gnuplot()) cr_skip_test("gnuplot is not installed (Debian: gnuplot-nox): plot not tested");
    char *d = tu_tmpdir();
    free(put(d, "r.csv", fixture));
    free(put(d, "k.csv", "layer,bits,group_size,M,speedup\n"
                         "q_proj,4,128,1,3.2\nq_proj,4,128,16,2.9\nq_proj,4,128,256,1.1\nq_proj,4,128,1024,0.9\n"
                         "q_proj,3,128,1,3.9\nq_proj,3,128,1024,0.8\nfc1,4,128,1,3.5\nfc1,4,128,1024,1.0\n"));
    char *out = NULL, *err = NULL;
    plot_ok(d, "r.csv --out-dir plots", &out, NULL);
    expect_png(d, "plots/m1_wikitext2_ppl.png");
    expect_png(d, "plots/m1_hellaswag_acc.png");
    expect_png(d, "plots/m1_hellaswag_acc_norm.png");
    cr_assert(strstr(out, "plots/m1_wikitext2_ppl.png\n"), "%s", out);
    free(out);
    // a legend names a series by its options as the rows give them (a count of 1 stays "iters=1"), below the chart
    free(put(d, "nt.csv", HEADER "m2,gptq+nt,3,128,wikitext2,ppl,30,,1,256,1,gen,loss=dist;iters=1;limit=8,cpu,x,"
                                 "2024-01-01T00:00:00Z\n"));
    plot_ok(d, "nt.csv --out-dir plots", NULL, NULL);
    char *gp = slurp(d, "plots/m2_wikitext2_ppl.gp");
    cr_assert(strstr(gp, "title 'gptq+nt g128 loss=dist;iters=1;limit=8'") && strstr(gp, "set key below"),
              "%s", gp);
    free(gp);
    // two series that differ only by their calibration: each legend names its own (a file by its name)
    free(put(d, "cal.csv", HEADER "m3,gptq+nt,3,128,wikitext2,ppl,30,,1,256,1,c4:32x512:seed0,iters=1,cpu,x,"
                                  "2024-01-01T00:00:00Z\n"
                                  "m3,gptq+nt,3,128,wikitext2,ppl,31,,1,256,1,results/calib/g-seed0.safetensors:32x512,"
                                  "iters=1,cpu,x,2024-01-01T00:00:00Z\n"));
    plot_ok(d, "cal.csv --out-dir plots", NULL, NULL);
    gp = slurp(d, "plots/m3_wikitext2_ppl.gp");
    cr_assert(strstr(gp, "title 'gptq+nt g128 iters=1 calib=c4:32x512:seed0'") &&
                  strstr(gp, "title 'gptq+nt g128 iters=1 calib=g-seed0'"),
              "%s", gp);
    free(gp);
    // a crowded legend (an fp line and 12 series of 80-character titles, as SmolLM2's WikiText-2 chart has) gets
    // a wider and taller canvas, so gnuplot fits it without its "difficulty fitting plot titles into key" warning
    // (seen on an 800-pixel SVG); a short legend keeps 800 x 560
    {
        char *csv = strdup(HEADER);
        for (int i = 0; i <= 12; i++) {
            char row[512];
            snprintf(row, sizeof(row), "m4,%s,3,128,wikitext2,ppl,%d,,1,256,1,c,loss=mean-std;lr=1e-05;iters=%d;limit=8;"
                     "percdamp=0.01;act-order;sym,cpu,x,2024-01-01T00:00:00Z\n", i ? "gptq+nt" : "fp", 30 + i, i);
            csv = realloc(csv, strlen(csv) + strlen(row) + 1);
            strcat(csv, row);
        }
        free(put(d, "crowd.csv", csv));
        free(csv);
        plot_ok(d, "crowd.csv --out-dir plots --format svg", NULL, &err);
        cr_assert(!strstr(err, "difficulty fitting"), "gnuplot: %s", err);
        free(err);
        gp = slurp(d, "plots/m4_wikitext2_ppl.gp");
        cr_assert(strstr(gp, "size 920,728 "), "%s", gp); // 120 + 10 x 80, 560 + 24 x (13 - 6)
        free(gp);
        gp = slurp(d, "plots/m3_wikitext2_ppl.gp");
        cr_assert(strstr(gp, "size 800,560 "), "%s", gp);
        free(gp);
    }
    // rows of one task at two limits (8 windows, all of them) are two charts, each with its own float line
    free(put(d, "lim.csv", HEADER "m5,fp,16,0,ptb,ppl,36.4,,1,256,1,,limit=8,cpu,x,2024-01-01T00:00:00Z\n"
                                  "m5,fp,16,0,ptb,ppl,39.4,,1,256,1,,,cpu,x,2024-01-01T00:00:00Z\n"
                                  "m5,gptq,3,128,ptb,ppl,127.6,,1,256,1,c4,limit=8,cpu,x,2024-01-01T00:00:00Z\n"
                                  "m5,gptq,3,128,ptb,ppl,131.9,,1,256,1,c4,,cpu,x,2024-01-01T00:00:00Z\n"));
    plot_ok(d, "lim.csv --out-dir plots", &out, NULL);
    cr_assert(strstr(out, "plots/m5_ptb_ppl_limit8.png\n") && strstr(out, "plots/m5_ptb_ppl_all.png\n"), "%s", out);
    free(out);
    const char *lims[2][4] = {{"plots/m5_ptb_ppl_limit8.gp", "36.4 with lines", "3 127.6\n", "(first 8 windows)"},
                              {"plots/m5_ptb_ppl_all.gp", "39.4 with lines", "3 131.9\n", "(all windows)"}};
    for (int i = 0; i < 2; i++) {
        gp = slurp(d, lims[i][0]);
        cr_assert(strstr(gp, lims[i][1]) && strstr(gp, lims[i][2]) && strstr(gp, lims[i][3]) &&
                      !strstr(gp, lims[1 - i][1]) && !strstr(gp, lims[1 - i][2]),
                  "%s", gp);
        free(gp);
    }
    plot_ok(d, "k.csv --kind speedup --out-dir plots", NULL, NULL);
    expect_png(d, "plots/speedup_q_proj.png");
    expect_png(d, "plots/speedup_fc1.png");
    // columns are named by the caller: a wrong one is a one-line error listing the columns
    int st = run_in(d, "plot k.csv --kind speedup --x batch --out-dir plots", NULL, &err);
    cr_assert_eq(st, 1);
    cr_assert(strstr(err, "no column 'batch' (choose with --x; columns: layer, bits, group_size, M, speedup)"), "%s", err);
    free(err);
    tu_rmtree(d);
    free(d);
}

Test(plot, without_gnuplot_one_line_error) {
    char *d = tu_tmpdir();
    free(put(d, "r.csv", fixture));
    // NT_GNUPLOT points at a binary that is not there: as if gnuplot were absent
    const char *bin = getenv("NT_BINARY_DIR");
    char cmd[4096];
    snprintf(cmd, sizeof(cmd), "cd '%s' && NT_GNUPLOT=/nonexistent/gnuplot '%s/normtweak' plot r.csv --out-dir p 2>e.txt",
             d, bin ? bin : ".");
    int st = system(cmd);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 1);
    char *err = slurp(d, "e.txt");
    cr_assert(strstr(err, "gnuplot not found") && strstr(err, "gnuplot-nox"), "%s", err);
    char *nl = strchr(err, '\n');
    cr_assert(nl && nl[1] == '\0', "not one line: %s", err);
    free(err);
    tu_rmtree(d);
    free(d);
}

// With tasks as columns, a limit goes with the task's column: an experiment that scored perplexity on 8 windows
// and a zero-shot task on 200 items is one row, not two; a float row on another limit is another column, and a
// delta compares cells of the same limit only.
Test(table, limits_go_with_the_task_column) {
    char *d = tu_tmpdir();
    free(put(d, "a.csv", HEADER "m,fp,16,0,ptb,ppl,10,,1,256,1,,limit=8,cpu,x,t\n"
                                "m,fp,16,0,ptb,ppl,11,,1,256,1,,limit=40,cpu,x,t\n"
                                "m,fp,16,0,piqa,acc,0.6,,1,256,1,,limit=200,cpu,x,t\n"
                                "m,rtn,4,128,ptb,ppl,12.5,,1,256,1,,limit=8,cpu,x,t\n"
                                "m,rtn,4,128,piqa,acc,0.55,,1,256,1,,sym;limit=200,cpu,x,t\n"
                                "m,rtn,4,128,ptb,ppl,13,,1,256,1,,sym;limit=8,cpu,x,t\n"));
    char *out = NULL;
    const char *a[] = {"a.csv"};
    cr_assert_eq(table_in(d, NULL, a, 1, NULL, &out, NULL), 0);
    cr_assert(strstr(out, "| model | wbits | group_size | method | options | ptb (limit 8) | ptb (limit 40) | piqa (limit 200) |\n"
                          "|-------|------:|------------|--------|---------|--------------:|---------------:|-----------------:|\n"
                          "| m     |    16 | n/a        | fp     |         |         10.00 |          11.00 |            60.00 |\n"
                          "| m     |     4 | 128        | rtn    |         |         12.50 |              — |                — |\n"
                          "| m     |     4 | 128        | rtn    | sym     |         13.00 |              — |            55.00 |\n"),
              "%s", out);
    // the deltas: against the float row of the same limit (10, not 11)
    cr_assert(strstr(out, "| m     |     4 | 128        | rtn    |         | fp  |         +2.50 |              — |                — |\n"),
              "%s", out);
    cr_assert(strstr(out, "| m     |     4 | 128        | rtn    | sym     | fp  |         +3.00 |              — |            -5.00 |\n"),
              "%s", out);
    free(out);
    tu_rmtree(d);
    free(d);
}
