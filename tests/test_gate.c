// test_gate.c: the gate's decisions (nt_gate, eval/gate.h, called as a function; the command line's own
// threshold parsing and exit statuses through the binary): pass; fail on a ppl rise (relative %) and on an acc drop
// (absolute percentage points of fractions stored 0..1); baseline rows without a candidate listed (and failing
// with --require-all); every key column of a cell (nt_result_same_cell) keeps rows apart, options included;
// no matching rows, missing or malformed CSVs, bad thresholds: exit 2.
#define _POSIX_C_SOURCE 200809L
#include <criterion/criterion.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "gate.h"
#include "testutil.h"

#define HEADER "model,method,wbits,group_size,task,metric,value,stderr,n,seqlen,seconds,calib,options,device,commit,timestamp\n"

static const char *baseline = HEADER
    "m,fp,16,0,wikitext2,ppl,20.0,,1,256,1,,,cpu,x,2024-01-01T00:00:00Z\n"
    "m,gptq,4,128,wikitext2,ppl,25.0,,1,256,1,c4,,cpu,x,2024-01-01T00:00:00Z\n"
    "m,gptq,4,128,piqa,acc,0.700,,1,0,1,c4,,cpu,x,2024-01-01T00:00:00Z\n";

typedef struct {
    char *dir;
    int status; // what `normtweak gate` exits with: 0 pass, 1 fail, 2 unusable input
    char *out, *err;
} result;

static char *read_stream(FILE *f) {
    fflush(f);
    long n = ftell(f);
    char *s = calloc((size_t)(n > 0 ? n : 0) + 1, 1);
    rewind(f);
    if (n > 0) cr_assert_eq(fread(s, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    return s;
}

// Writes A.csv (baseline) and B.csv (candidate) and calls nt_gate on them; the report is r.out, the notes and
// the error message r.err.
static result gate_with(const char *a, const char *b, nt_gate_opts o) {
    result r = {.dir = tu_tmpdir()};
    char pa[1024], pb[1024];
    snprintf(pa, sizeof(pa), "%s/A.csv", r.dir);
    if (a) cr_assert_eq(tu_write_file(pa, a, strlen(a)), 0);
    snprintf(pb, sizeof(pb), "%s/B.csv", r.dir);
    if (b) cr_assert_eq(tu_write_file(pb, b, strlen(b)), 0);
    FILE *out = tmpfile(), *notes = tmpfile();
    cr_assert(out && notes);
    o.notes = notes;
    nt_gate_result res;
    nt_err err = {0};
    char cwd[4096];
    cr_assert(getcwd(cwd, sizeof(cwd)));
    cr_assert_eq(chdir(r.dir), 0); // relative names, as a user types them (messages name A.csv, B.csv)
    int rc = nt_gate("A.csv", "B.csv", &o, out, &res, &err);
    cr_assert_eq(chdir(cwd), 0);
    r.status = rc ? 2 : res.pass ? 0 : 1;
    if (rc) fprintf(notes, "%s\n", err.msg);
    r.out = read_stream(out);
    r.err = read_stream(notes);
    return r;
}

static result gate(const char *a, const char *b) { return gate_with(a, b, nt_gate_opts_default()); }

// `normtweak gate --baseline A.csv --candidate B.csv EXTRA` in a fresh directory (the command line's part).
static result gate_cli(const char *a, const char *b, const char *extra) {
    result r = {.dir = tu_tmpdir()};
    char p[1024];
    snprintf(p, sizeof(p), "%s/A.csv", r.dir);
    if (a) cr_assert_eq(tu_write_file(p, a, strlen(a)), 0);
    snprintf(p, sizeof(p), "%s/B.csv", r.dir);
    if (b) cr_assert_eq(tu_write_file(p, b, strlen(b)), 0);
    const char *bin = getenv("NT_BINARY_DIR");
    char cmd[4096];
    snprintf(cmd, sizeof(cmd), "cd '%s' && '%s/normtweak' gate --baseline A.csv --candidate B.csv %s >out.txt 2>err.txt",
             r.dir, bin ? bin : ".", extra);
    int st = system(cmd);
    r.status = (st != -1 && WIFEXITED(st)) ? WEXITSTATUS(st) : -1;
    snprintf(p, sizeof(p), "%s/out.txt", r.dir);
    r.out = nt_read_file(p, NULL, NULL);
    snprintf(p, sizeof(p), "%s/err.txt", r.dir);
    r.err = nt_read_file(p, NULL, NULL);
    return r;
}

static void done(result *r) {
    tu_rmtree(r->dir);
    free(r->dir);
    free(r->out);
    free(r->err);
}

static void expect(result *r, int status, const char *needle, const char *where) {
    cr_assert_eq(r->status, status, "exit %d, want %d\nstdout: %s\nstderr: %s", r->status, status, r->out, r->err);
    const char *text = strcmp(where, "err") == 0 ? r->err : r->out;
    if (needle) cr_assert(text && strstr(text, needle), "%s lacks '%s':\n%s", where, needle, text ? text : "");
}

Test(gate, pass_within_thresholds) {
    // ppl +1.9% (<= 2%), acc -0.4 points (<= 0.5)
    result r = gate(baseline, HEADER
                    "m,fp,16,0,wikitext2,ppl,20.0,,1,256,1,,,cpu,x,t\n"
                    "m,gptq,4,128,wikitext2,ppl,25.475,,1,256,1,c4,,cpu,x,t\n"
                    "m,gptq,4,128,piqa,acc,0.696,,1,0,1,c4,,cpu,x,t\n");
    expect(&r, 0, "gate: PASS: 3 compared, 0 failed, 0 baseline rows without candidate", "out");
    cr_assert_null(strstr(r.out, "FAIL"));
    done(&r);
}

// Rows computed on another device (thread count, BLAS kernels) are compared as usual, with one note saying so;
// the same device says nothing.
Test(gate, other_device_noted) {
    const char *a = HEADER "m,gptq,3,128,wikitext2,ppl,70.0,,1,256,1,c4,,cpu:2 threads:Haswell,x,t\n"
                           "m,gptq,3,128,ptb,ppl,90.0,,1,256,1,c4,,cpu:2 threads:Haswell,x,t\n";
    result r = gate(a, HEADER "m,gptq,3,128,wikitext2,ppl,70.5,,1,256,1,c4,,cpu:1 threads:SkylakeX,x,t\n"
                              "m,gptq,3,128,ptb,ppl,90.0,,1,256,1,c4,,cpu:2 threads:Haswell,x,t\n");
    expect(&r, 0, "gate: PASS: 2 compared, 0 failed", "out");
    expect(&r, 0, "note: 1 of the 2 compared rows ran on another device than their baseline (first: baseline cpu:2 "
                  "threads:Haswell, candidate cpu:1 threads:SkylakeX)", "err");
    done(&r);
    r = gate(a, a);
    expect(&r, 0, "gate: PASS: 2 compared", "out");
    cr_assert_null(strstr(r.err, "device"), "%s", r.err);
    done(&r);
}

Test(gate, fail_on_ppl_rise) {
    result r = gate(baseline, HEADER
                    "m,fp,16,0,wikitext2,ppl,20.0,,1,256,1,,,cpu,x,t\n"
                    "m,gptq,4,128,wikitext2,ppl,25.6,,1,256,1,c4,,cpu,x,t\n"
                    "m,gptq,4,128,piqa,acc,0.700,,1,0,1,c4,,cpu,x,t\n");
    expect(&r, 1, "FAIL m gptq w4 g128 wikitext2 ppl seqlen=256 calib=c4 options=-: baseline 25, candidate 25.6: +2.400% > max +2%",
           "out");
    expect(&r, 1, "gate: FAIL: 3 compared, 1 failed", "out");
    done(&r);
    // the same rise passes a looser threshold, given as "3%" or "3"
    r = gate_with(baseline, HEADER "m,gptq,4,128,wikitext2,ppl,25.6,,1,256,1,c4,,cpu,x,t\n",
                  (nt_gate_opts){.max_ppl_rise = 3.0, .max_acc_drop = 0.5});
    expect(&r, 0, "gate: PASS: 1 compared, 0 failed, 2 baseline rows without candidate", "out");
    done(&r);
    r = gate_cli(baseline, HEADER "m,gptq,4,128,wikitext2,ppl,25.6,,1,256,1,c4,,cpu,x,t\n", "--max-ppl-rise=3");
    expect(&r, 0, NULL, "out");
    done(&r);
}

Test(gate, fail_on_acc_drop_in_points) {
    // 0.700 -> 0.694: 0.6 points, over the default 0.5
    result r = gate(baseline, HEADER "m,gptq,4,128,piqa,acc,0.694,,1,0,1,c4,,cpu,x,t\n");
    expect(&r, 1, "FAIL m gptq w4 g128 piqa acc seqlen=0 calib=c4 options=-: baseline 0.7, candidate 0.694: -0.600 points < max -0.5 points",
           "out");
    done(&r);
    r = gate_cli(baseline, HEADER "m,gptq,4,128,piqa,acc,0.694,,1,0,1,c4,,cpu,x,t\n", "--max-acc-drop 1pp");
    expect(&r, 0, NULL, "out");
    done(&r);
    // an accuracy rise always passes
    r = gate_with(baseline, HEADER "m,gptq,4,128,piqa,acc,0.9,,1,0,1,c4,,cpu,x,t\n",
                  (nt_gate_opts){.max_ppl_rise = 2.0, .max_acc_drop = 0.0});
    expect(&r, 0, NULL, "out");
    done(&r);
}

Test(gate, missing_rows) {
    // listed, not failing by default; failing with --require-all
    result r = gate(baseline, HEADER "m,fp,16,0,wikitext2,ppl,20.0,,1,256,1,,,cpu,x,t\n");
    expect(&r, 0, "missing: m gptq w4 g128 wikitext2 ppl seqlen=256 calib=c4 options=-: baseline 25, no candidate row", "out");
    expect(&r, 0, "missing: m gptq w4 g128 piqa acc seqlen=0 calib=c4 options=-", "out");
    done(&r);
    r = gate_with(baseline, HEADER "m,fp,16,0,wikitext2,ppl,20.0,,1,256,1,,,cpu,x,t\n",
                  (nt_gate_opts){.max_ppl_rise = 2.0, .max_acc_drop = 0.5, .require_all = true});
    expect(&r, 1, "gate: FAIL: 1 compared, 0 failed, 2 baseline rows without candidate (--require-all)", "out");
    done(&r);
    // no row matches (another seqlen is another key): unusable, not a pass
    r = gate(baseline, HEADER "m,fp,16,0,wikitext2,ppl,20.0,,1,2048,1,,,cpu,x,t\n");
    expect(&r, 2, "no candidate row matches a baseline row", "err");
    done(&r);
    r = gate(baseline, HEADER);
    expect(&r, 2, "no candidate row matches a baseline row", "err");
    done(&r);
}

Test(gate, unusable_input) {
    result r = gate(baseline, NULL);
    expect(&r, 2, "candidate: B.csv: No such file", "err");
    done(&r);
    r = gate(baseline, HEADER "m,fp,16,0,wikitext2,ppl\n");
    expect(&r, 2, "B.csv: malformed CSV: data row 1 has 6 fields, the header has 16", "err");
    done(&r);
    r = gate(baseline, HEADER "m,fp,16,0,wikitext2,ppl,\"20\"x,,1,256,1,,,cpu,x,t\n");
    expect(&r, 2, "B.csv: malformed CSV", "err");
    done(&r);
    r = gate(baseline, HEADER "m,fp,16,0,wikitext2,ppl,twenty,,1,256,1,,,cpu,x,t\n");
    expect(&r, 2, "B.csv: data row 1: value 'twenty' is not a number", "err");
    done(&r);
    r = gate("", baseline);
    expect(&r, 2, "A.csv: empty file", "err");
    done(&r);
}

Test(gate, threshold_parsing) {
    struct {
        const char *args;
        int status;
        const char *needle;
    } cases[] = {
        {"--max-ppl-rise 2%", 0, NULL},
        {"--max-ppl-rise 0.5", 0, NULL},
        {"--max-ppl-rise 0%", 0, NULL},
        {"--max-ppl-rise abc", 2, "--max-ppl-rise 'abc': expected a percentage"},
        {"--max-ppl-rise -1%", 2, "--max-ppl-rise '-1%'"},
        {"--max-ppl-rise 2%%", 2, "--max-ppl-rise '2%%'"},
        {"--max-ppl-rise ''", 2, "--max-ppl-rise ''"},
        {"--max-ppl-rise inf", 2, "--max-ppl-rise 'inf'"},
        {"--max-acc-drop 0.5", 0, NULL},
        {"--max-acc-drop 0.5pp", 0, NULL},
        {"--max-acc-drop 0.5%", 2, "'%' would be ambiguous"},
        {"--max-acc-drop x", 2, "--max-acc-drop 'x'"},
        {"--bogus", 2, NULL},
        {"extra", 2, "unexpected argument 'extra'"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        result r = gate_cli(baseline, baseline, cases[i].args);
        cr_expect_eq(r.status, cases[i].status, "%s: exit %d, want %d: %s", cases[i].args, r.status, cases[i].status,
                     r.err);
        if (cases[i].needle)
            cr_expect(strstr(r.err, cases[i].needle), "%s: stderr '%s' lacks '%s'", cases[i].args, r.err, cases[i].needle);
        done(&r);
    }
}

Test(gate, duplicates_latest_wins_and_errors_ignored) {
    // the candidate ran twice: the later row (a pass) counts; a failed-cell row is not a metric
    result r = gate(baseline, HEADER
                    "m,gptq,4,128,wikitext2,ppl,40,,1,256,1,c4,,cpu,x,2024-01-01T00:00:00Z\n"
                    "m,gptq,4,128,wikitext2,ppl,25,,1,256,1,c4,,cpu,x,2024-01-02T00:00:00Z\n"
                    "m,rtn,4,128,wikitext2,error,,,0,256,1,,error=boom,cpu,x,2024-01-02T00:00:00Z\n");
    expect(&r, 0, "ok   m gptq w4 g128 wikitext2 ppl", "out");
    expect(&r, 0, "2 rows for m gptq w4 g128 wikitext2 ppl; kept the latest (2024-01-02T00:00:00Z, B.csv row 2)", "err");
    done(&r);
}

// The regression that once passed: two GPTQ W4 g128 WikiText-2 baseline rows that differ only in options
// (plain and act_order); the candidate's plain row rose from 25 to 40 (+60%). Keyed without options, the gate
// kept one row per (model..calib) and compared the act_order row with the act_order row: exit 0.
Test(gate, options_are_part_of_the_cell) {
    const char *base = HEADER "m,gptq,4,128,wikitext2,ppl,25.0,,1,2048,1,c4,,cpu,x,2024-01-01T00:00:00Z\n"
                              "m,gptq,4,128,wikitext2,ppl,24.0,,1,2048,1,c4,act_order,cpu,x,2024-01-01T00:00:01Z\n";
    const char *cand = HEADER "m,gptq,4,128,wikitext2,ppl,40.0,,1,2048,1,c4,,cpu,x,2024-02-01T00:00:00Z\n"
                              "m,gptq,4,128,wikitext2,ppl,24.0,,1,2048,1,c4,act_order,cpu,x,2024-02-01T00:00:01Z\n";
    result r = gate(base, cand);
    expect(&r, 1, "FAIL m gptq w4 g128 wikitext2 ppl seqlen=2048 calib=c4 options=-: baseline 25, candidate 40: +60.000%",
           "out");
    expect(&r, 1, "ok   m gptq w4 g128 wikitext2 ppl seqlen=2048 calib=c4 options=act_order: baseline 24, candidate 24",
           "out");
    expect(&r, 1, "gate: FAIL: 2 compared, 1 failed, 0 baseline rows without candidate", "out");
    done(&r);
    // a candidate equal to its baseline passes
    r = gate(base, base);
    expect(&r, 0, "gate: PASS: 2 compared, 0 failed, 0 baseline rows without candidate", "out");
    done(&r);
    // options are normalized: order and blanks do not make another cell
    r = gate(HEADER "m,gptq,4,128,wikitext2,ppl,25.0,,1,2048,1,c4,act_order;mse,cpu,x,t\n",
             HEADER "m,gptq,4,128,wikitext2,ppl,40.0,,1,2048,1,c4, mse ;act_order;,cpu,x,t\n");
    expect(&r, 1, "FAIL m gptq w4 g128 wikitext2 ppl seqlen=2048 calib=c4 options=act_order;mse", "out");
    done(&r);
}

// One case per key column: a candidate row that differs from the baseline row in that column alone is another
// cell: it is not compared (the rise it carries does not count), both rows are listed, and the gate, with no
// matching row left, refuses the input (exit 2) instead of passing.
Test(gate, every_key_column_separates_cells) {
    static const char *const base_row = "m,gptq,4,128,wikitext2,ppl,25.0,,1,2048,1,c4,mse,cpu,x,t\n";
    struct {
        const char *column, *row;
    } cases[] = {
        {"model", "m2,gptq,4,128,wikitext2,ppl,40.0,,1,2048,1,c4,mse,cpu,x,t\n"},
        {"method", "m,rtn,4,128,wikitext2,ppl,40.0,,1,2048,1,c4,mse,cpu,x,t\n"},
        {"wbits", "m,gptq,3,128,wikitext2,ppl,40.0,,1,2048,1,c4,mse,cpu,x,t\n"},
        {"group_size", "m,gptq,4,64,wikitext2,ppl,40.0,,1,2048,1,c4,mse,cpu,x,t\n"},
        {"task", "m,gptq,4,128,ptb,ppl,40.0,,1,2048,1,c4,mse,cpu,x,t\n"},
        {"metric", "m,gptq,4,128,wikitext2,ppl_x,40.0,,1,2048,1,c4,mse,cpu,x,t\n"},
        {"seqlen", "m,gptq,4,128,wikitext2,ppl,40.0,,1,1024,1,c4,mse,cpu,x,t\n"},
        {"calib", "m,gptq,4,128,wikitext2,ppl,40.0,,1,2048,1,wikitext2,mse,cpu,x,t\n"},
        {"options", "m,gptq,4,128,wikitext2,ppl,40.0,,1,2048,1,c4,mse;act_order,cpu,x,t\n"},
    };
    char base[512], cand[512];
    snprintf(base, sizeof(base), "%s%s", HEADER, base_row);
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        snprintf(cand, sizeof(cand), "%s%s", HEADER, cases[i].row);
        result r = gate(base, cand);
        cr_expect_eq(r.status, 2, "%s: exit %d, want 2 (no matching row)\n%s%s", cases[i].column, r.status, r.out, r.err);
        cr_expect(r.out && strstr(r.out, "missing: m gptq w4 g128 wikitext2 ppl seqlen=2048 calib=c4 options=mse"),
                  "%s: the baseline row is not listed as missing:\n%s", cases[i].column, r.out);
        cr_expect(r.out && strstr(r.out, "new: ") && strstr(r.out, "candidate 40, no baseline row"),
                  "%s: the candidate row is not listed as new:\n%s", cases[i].column, r.out);
        cr_expect(r.err && strstr(r.err, "no candidate row matches a baseline row"), "%s: %s", cases[i].column, r.err);
        done(&r);
        // and with a matching row beside it, the gate compares only that one
        char cand2[1024];
        snprintf(cand2, sizeof(cand2), "%s%s%s", HEADER, cases[i].row, base_row);
        r = gate(base, cand2);
        expect(&r, 0, "gate: PASS: 1 compared, 0 failed, 0 baseline rows without candidate, 1 candidate rows without baseline",
               "out");
        done(&r);
    }
}
