// cmd_gate.c: `normtweak gate`: a regression gate between two results CSVs, for CI and before a commit.
//
// Rows match on the cell (nt_result_same_cell: model, method, wbits, group_size, task, metric, seqlen, calib and
// the normalized options; duplicates within a file: the latest by timestamp, with a note), so every cell `table`
// shows is compared on its own and rows that differ only in options (plain and act_order) never stand in for each
// other. For each matching pair:
//   ppl-like metrics ("ppl", "ppl_*"): fail when the candidate is more than --max-ppl-rise percent above the
//     baseline, relative: (cand - base) / base * 100 > max (default 2%);
//   acc-like metrics ("acc", "acc_norm", ...; stored as fractions 0..1): fail when the candidate is more than
//     --max-acc-drop percentage points below: (base - cand) * 100 > max (default 0.5, i.e. 0.5 points, so
//     0.700 -> 0.694 passes and 0.700 -> 0.690 fails);
//   other metrics are not gated; rows with metric "error" (failed grid cells) are ignored.
// A missing candidate value (NaN) fails. Rows without a partner on the other side are listed one by one
// ("missing:" baseline rows, "new:" candidate rows); missing rows fail the gate only with --require-all. Exit status: 0 all pass, 1 a metric regressed (or a row is missing with
// --require-all), 2 unusable input: unreadable or malformed CSV, bad threshold, or no matching row at all.
#define _GNU_SOURCE
#include <getopt.h>
#include <math.h>
#include <string.h>

#include "cli.h"
#include "csv_read.h"

static bool is_error_row(const nt_result_rec *x) { return strcmp(x->r.metric, "error") == 0; }

// A non-negative finite number with an optional unit suffix (one of `units`, NULL-terminated list).
static int parse_threshold(const char *opt, const char *s, const char *const *units, const char *hint, double *out) {
    char *end = NULL;
    double v = strtod(s, &end);
    bool ok = end != s && isfinite(v) && v >= 0.0;
    if (ok && *end) {
        ok = false;
        for (const char *const *u = units; *u; u++) ok |= strcmp(end, *u) == 0;
    }
    if (!ok) {
        fprintf(stderr, "normtweak gate: %s '%s': expected %s\n", opt, s, hint);
        return -1;
    }
    *out = v;
    return 0;
}

static int read_side(const char *what, const char *path, nt_results_set *s, const nt_result_rec ***kept, size_t *n) {
    nt_err err = {0};
    const char *paths[1] = {path};
    if (nt_results_read(paths, 1, s, &err)) {
        fprintf(stderr, "normtweak gate: %s: %s\n", what, err.msg);
        return -1;
    }
    *kept = nt_results_latest(s, nt_result_same_cell, is_error_row, stderr, "normtweak gate", n);
    if (!*kept) {
        fprintf(stderr, "normtweak gate: out of memory\n");
        return -1;
    }
    return 0;
}

static void gate_usage(FILE *f) {
    fprintf(f,
            "usage: normtweak gate --baseline A.csv --candidate B.csv [--max-ppl-rise P%%] [--max-acc-drop D] "
            "[--require-all]\n"
            "  --max-ppl-rise P%%   allowed perplexity rise, percent of the baseline value (default 2%%)\n"
            "  --max-acc-drop D    allowed accuracy drop in percentage points (default 0.5: 70.0%% -> 69.5%% passes);\n"
            "                      the CSVs store accuracy as a fraction 0..1\n"
            "  --require-all       a baseline row without a candidate row fails the gate (default: listed only)\n"
            "rows match on model, method, wbits, group_size, task, metric, seqlen, calib and options (sorted);\n"
            "rows without a partner are listed (missing: baseline only, new: candidate only).\n"
            "exit status: 0 pass, 1 a metric regressed, 2 unusable input (bad CSV or option, no matching rows)\n");
}

int nt_cmd_gate(int argc, char **argv) {
    const char *base_path = NULL, *cand_path = NULL;
    double max_rise = 2.0, max_drop = 0.5;
    bool require_all = false;
    static const char *const pct[] = {"%", NULL}, *const pts[] = {"pp", NULL};
    static const struct option opts[] = {
        {"baseline", required_argument, 0, 'b'},     {"candidate", required_argument, 0, 'c'},
        {"max-ppl-rise", required_argument, 0, 'p'}, {"max-acc-drop", required_argument, 0, 'a'},
        {"require-all", no_argument, 0, 'r'},        {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0}};
    optind = 0;
    int c;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'b': base_path = optarg; break;
        case 'c': cand_path = optarg; break;
        case 'p':
            if (parse_threshold("--max-ppl-rise", optarg, pct, "a percentage >= 0 such as 2% or 0.5%", &max_rise))
                return 2;
            break;
        case 'a':
            if (parse_threshold("--max-acc-drop", optarg, pts,
                                "percentage points >= 0 such as 0.5 or 0.5pp ('%' would be ambiguous)", &max_drop))
                return 2;
            break;
        case 'r': require_all = true; break;
        case 'h': gate_usage(stdout); return 0;
        default: gate_usage(stderr); return 2;
        }
    }
    if (!base_path || !cand_path || optind < argc) {
        if (optind < argc) fprintf(stderr, "normtweak gate: unexpected argument '%s'\n", argv[optind]);
        else fprintf(stderr, "normtweak gate: needs --baseline and --candidate\n");
        return 2;
    }
    nt_results_set bs = {0}, cs = {0};
    const nt_result_rec **b = NULL, **k = NULL;
    size_t nb = 0, nc = 0;
    int rc = 2;
    if (read_side("baseline", base_path, &bs, &b, &nb) || read_side("candidate", cand_path, &cs, &k, &nc)) goto done;
    printf("gate: baseline %s, candidate %s; ppl may rise %g%% at most, acc may drop %g points at most\n", base_path,
           cand_path, max_rise, max_drop);
    size_t n_cmp = 0, n_fail = 0, n_missing = 0, n_ungated = 0, n_matched = 0;
    for (size_t i = 0; i < nb; i++) {
        const nt_result_rec *x = b[i], *y = NULL;
        for (size_t j = 0; j < nc && !y; j++)
            if (nt_result_same_cell(x, k[j])) y = k[j];
        char d[600];
        nt_result_rec_describe(x, true, d, sizeof(d));
        if (!y) {
            printf("missing: %s: baseline %.6g, no candidate row\n", d, x->r.value);
            n_missing++;
            continue;
        }
        n_matched++;
        bool ppl = nt_metric_is_ppl(x->r.metric), acc = nt_metric_is_acc(x->r.metric);
        if (!ppl && !acc) {
            n_ungated++;
            continue;
        }
        n_cmp++;
        double bv = x->r.value, cv = y->r.value;
        bool fail;
        char what[160];
        if (!isfinite(cv) || !isfinite(bv) || (ppl && bv <= 0.0)) {
            fail = true;
            snprintf(what, sizeof(what), "not comparable (a value is missing or not positive)");
        } else if (ppl) {
            double rise = (cv - bv) / bv * 100.0;
            fail = rise > max_rise + 1e-9;
            snprintf(what, sizeof(what), "%+.3f%% %s max +%g%%", rise, fail ? ">" : "<=", max_rise);
        } else {
            double change = (cv - bv) * 100.0; // percentage points
            fail = -change > max_drop + 1e-9;
            snprintf(what, sizeof(what), "%+.3f points %s max -%g points", change, fail ? "<" : ">=", max_drop);
        }
        n_fail += fail;
        printf("%s %s: baseline %.6g, candidate %.6g: %s\n", fail ? "FAIL" : "ok  ", d, bv, cv, what);
    }
    size_t n_new = 0;
    for (size_t j = 0; j < nc; j++) {
        bool found = false;
        for (size_t i = 0; i < nb && !found; i++) found = nt_result_same_cell(b[i], k[j]);
        if (found) continue;
        char d[600];
        nt_result_rec_describe(k[j], true, d, sizeof(d));
        printf("new: %s: candidate %.6g, no baseline row\n", d, k[j]->r.value);
        n_new++;
    }
    if (n_matched == 0) {
        fprintf(stderr,
                "normtweak gate: no candidate row matches a baseline row (key: model, method, wbits, group_size, "
                "task, metric, seqlen, calib, options)\n");
        goto done;
    }
    if (n_cmp == 0) {
        fprintf(stderr, "normtweak gate: no ppl or acc metric to compare among the %zu matching rows\n", n_matched);
        goto done;
    }
    bool failed = n_fail > 0 || (require_all && n_missing > 0);
    printf("gate: %s: %zu compared, %zu failed, %zu baseline rows without candidate%s", failed ? "FAIL" : "PASS",
           n_cmp, n_fail, n_missing, require_all && n_missing ? " (--require-all)" : "");
    if (n_ungated) printf(", %zu not gated (metric not ppl/acc)", n_ungated);
    if (n_new) printf(", %zu candidate rows without baseline", n_new);
    printf("\n");
    rc = failed ? 1 : 0;
done:
    free(b);
    free(k);
    nt_results_set_free(&bs);
    nt_results_set_free(&cs);
    return rc;
}
