// gate.c: the accuracy gate between two results CSVs (gate.h), for CI and before a commit.
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
// ("missing:" baseline rows, "new:" candidate rows); missing rows fail the gate only with require_all. Exit status: 0 all pass, 1 a metric regressed (or a row is missing with
// --require-all), 2 unusable input: unreadable or malformed CSV, bad threshold, or no matching row at all.
#define _POSIX_C_SOURCE 200809L
#include "gate.h"

#include <math.h>
#include <string.h>

#include "csv_read.h"

static bool is_error_row(const nt_result_rec *x) { return strcmp(x->r.metric, "error") == 0; }

static int read_side(const char *what, const char *path, nt_results_set *s, const nt_result_rec ***kept, size_t *n,
                     FILE *notes, nt_err *err) {
    const char *paths[1] = {path};
    if (nt_results_read(paths, 1, s, err)) return nt_fail(err, "%s: %s", what, err->msg);
    *kept = nt_results_latest(s, nt_result_same_cell, is_error_row, notes, "normtweak gate", n);
    if (!*kept) return nt_fail(err, "out of memory");
    return 0;
}

nt_gate_opts nt_gate_opts_default(void) { return (nt_gate_opts){.max_ppl_rise = 2.0, .max_acc_drop = 0.5}; }

int nt_gate(const char *base_path, const char *cand_path, const nt_gate_opts *o, FILE *out, nt_gate_result *res,
            nt_err *err) {
    memset(res, 0, sizeof(*res));
    double max_rise = o->max_ppl_rise, max_drop = o->max_acc_drop;
    bool require_all = o->require_all;
    FILE *notes = o->notes ? o->notes : stderr;
    FILE *devnull = NULL;
    if (!out) out = devnull = fopen("/dev/null", "w");
    if (!out) return nt_fail(err, "/dev/null: cannot open");
    nt_results_set bs = {0}, cs = {0};
    const nt_result_rec **b = NULL, **k = NULL;
    size_t nb = 0, nc = 0;
    int rc = -1;
    if (read_side("baseline", base_path, &bs, &b, &nb, notes, err) ||
        read_side("candidate", cand_path, &cs, &k, &nc, notes, err)) goto done;
    fprintf(out, "gate: baseline %s, candidate %s; ppl may rise %g%% at most, acc may drop %g points at most\n", base_path,
           cand_path, max_rise, max_drop);
    size_t n_cmp = 0, n_fail = 0, n_missing = 0, n_ungated = 0, n_matched = 0;
    for (size_t i = 0; i < nb; i++) {
        const nt_result_rec *x = b[i], *y = NULL;
        for (size_t j = 0; j < nc && !y; j++)
            if (nt_result_same_cell(x, k[j])) y = k[j];
        char d[600];
        nt_result_rec_describe(x, true, d, sizeof(d));
        if (!y) {
            fprintf(out, "missing: %s: baseline %.6g, no candidate row\n", d, x->r.value);
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
        fprintf(out, "%s %s: baseline %.6g, candidate %.6g: %s\n", fail ? "FAIL" : "ok  ", d, bv, cv, what);
    }
    size_t n_new = 0;
    for (size_t j = 0; j < nc; j++) {
        bool found = false;
        for (size_t i = 0; i < nb && !found; i++) found = nt_result_same_cell(b[i], k[j]);
        if (found) continue;
        char d[600];
        nt_result_rec_describe(k[j], true, d, sizeof(d));
        fprintf(out, "new: %s: candidate %.6g, no baseline row\n", d, k[j]->r.value);
        n_new++;
    }
    if (n_matched == 0) {
        nt_fail(err, "no candidate row matches a baseline row (key: model, method, wbits, group_size, task, metric, "
                "seqlen, calib, options)");
        goto done;
    }
    if (n_cmp == 0) {
        nt_fail(err, "no ppl or acc metric to compare among the %zu matching rows", n_matched);
        goto done;
    }
    bool failed = n_fail > 0 || (require_all && n_missing > 0);
    fprintf(out, "gate: %s: %zu compared, %zu failed, %zu baseline rows without candidate%s", failed ? "FAIL" : "PASS",
           n_cmp, n_fail, n_missing, require_all && n_missing ? " (--require-all)" : "");
    if (n_ungated) fprintf(out, ", %zu not gated (metric not ppl/acc)", n_ungated);
    if (n_new) fprintf(out, ", %zu candidate rows without baseline", n_new);
    fprintf(out, "\n");
    *res = (nt_gate_result){.compared = n_cmp, .failed = n_fail, .missing = n_missing, .unmatched = n_new,
                            .ungated = n_ungated, .pass = !failed};
    rc = 0;
done:
    free(b);
    free(k);
    nt_results_set_free(&bs);
    nt_results_set_free(&cs);
    if (devnull) fclose(devnull);
    return rc;
}
