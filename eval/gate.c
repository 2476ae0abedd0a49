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
// Compared rows whose device column differs (another thread count or BLAS kernel set: cpu:2 threads:Haswell
// against cpu:1 threads:SkylakeX) get one note on the notes stream; they are still compared.
// A missing candidate value (NaN) fails. Rows without a partner on the other side are listed one by one
// ("missing:" baseline rows, "new:" candidate rows); missing rows fail the gate only with require_all. Exit status: 0 all pass, 1 a metric regressed (or a row is missing with
// --require-all), 2 unusable input: unreadable or malformed CSV, bad threshold, or no matching row at all.
#define _POSIX_C_SOURCE 200809L
#include "gate.h"

#include <dirent.h>
#include <math.h>
#include <string.h>

#include "csv_read.h"
#include "samples.h"

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
    size_t n_cmp = 0, n_fail = 0, n_missing = 0, n_ungated = 0, n_matched = 0, n_other_device = 0;
    const nt_result_rec *other_device = NULL, *other_cand = NULL; // the first compared pair on different devices
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
        if (strcmp(x->r.device, y->r.device) != 0 && !n_other_device++)
            other_device = x, other_cand = y;
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
    if (n_other_device)
        fprintf(notes, "normtweak gate: note: %zu of the %zu compared rows ran on another device than their baseline "
                "(first: baseline %s, candidate %s); GPTQ and norm tweaking move at rounding level with the thread "
                "count and BLAS kernels, so a tight threshold is only meaningful on the same device\n",
                n_other_device, n_cmp, other_device->r.device, other_cand->r.device);
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

// ------------------------------------------------------------------------------------------------ item by item

static int cmp_doc(const void *a, const void *b) {
    const nt_sample *x = a, *y = b;
    return (x->doc_id > y->doc_id) - (x->doc_id < y->doc_id);
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

// One task: the flips between base and cand (both sorted by doc_id) into out and res.
static int compare_task(const char *task, const nt_samples *b, const nt_samples *c, FILE *out, nt_samples_diff *res,
                        nt_err *err) {
    size_t i = 0, j = 0, matched = 0, to_wrong[2] = {0, 0}, to_right[2] = {0, 0}, unmatched = 0;
    long d_acc = 0, d_accn = 0; // candidate - baseline, in items
    bool has_norm = false;
    while (i < b->n || j < c->n) {
        if (j == c->n || (i < b->n && b->items[i].doc_id < c->items[j].doc_id)) {
            if (out) fprintf(out, "missing: %s doc %ld (line %ld): in the baseline only\n", task, b->items[i].doc_id,
                             b->items[i].line);
            i++, unmatched++;
            continue;
        }
        if (i == b->n || c->items[j].doc_id < b->items[i].doc_id) {
            if (out) fprintf(out, "new: %s doc %ld (line %ld): in the candidate only\n", task, c->items[j].doc_id,
                             c->items[j].line);
            j++, unmatched++;
            continue;
        }
        const nt_sample *x = &b->items[i++], *y = &c->items[j++];
        if (strcmp(x->requests, y->requests) != 0)
            return nt_fail(err, "%s doc %ld: the baseline (%s) and the candidate (%s) scored different requests", task,
                           x->doc_id, b->path, c->path);
        matched++;
        const char *names[2] = {"acc", "acc_norm"};
        int bv[2] = {x->acc, x->acc_norm}, cv[2] = {y->acc, y->acc_norm};
        for (int k = 0; k < 2; k++) {
            if (bv[k] < 0 || cv[k] < 0 || bv[k] == cv[k]) continue;
            if (bv[k]) to_wrong[k]++;
            else to_right[k]++;
            if (k == 0) d_acc += cv[k] - bv[k];
            else d_accn += cv[k] - bv[k];
            if (!out) continue;
            if (x->pred >= 0 && y->pred >= 0 && k == 0)
                fprintf(out, "flip: %s doc %ld (line %ld): %s %d -> %d (gold %d, pred %d -> %d)\n", task, x->doc_id,
                        x->line, names[k], bv[k], cv[k], x->gold, x->pred, y->pred);
            else
                fprintf(out, "flip: %s doc %ld (line %ld): %s %d -> %d\n", task, x->doc_id, x->line, names[k], bv[k],
                        cv[k]);
        }
        has_norm |= x->acc_norm >= 0;
    }
    if (out) {
        fprintf(out, "%s: %zu items matched; acc: %zu flipped right -> wrong, %zu wrong -> right (%+.2f points)", task,
                matched, to_wrong[0], to_right[0], matched ? 100.0 * (double)d_acc / (double)matched : 0.0);
        if (has_norm)
            fprintf(out, "; acc_norm: %zu right -> wrong, %zu wrong -> right (%+.2f points)", to_wrong[1], to_right[1],
                    matched ? 100.0 * (double)d_accn / (double)matched : 0.0);
        if (unmatched) fprintf(out, "; %zu items on one side only", unmatched);
        fprintf(out, "\n");
    }
    res->items += matched;
    for (int k = 0; k < 2; k++) {
        res->to_wrong[k] += to_wrong[k];
        res->to_right[k] += to_right[k];
    }
    res->unmatched += unmatched;
    return 0;
}

int nt_gate_samples(const char *base_dir, const char *cand_dir, FILE *out, nt_samples_diff *res, nt_err *err) {
    memset(res, 0, sizeof(*res));
    DIR *d = opendir(base_dir);
    if (!d) return nt_fail(err, "%s: cannot read the folder", base_dir);
    char **names = NULL;
    size_t n = 0, cap = 0;
    int rc = 0;
    for (struct dirent *e; rc == 0 && (e = readdir(d));) {
        size_t len = strlen(e->d_name);
        if (len < 7 || strcmp(e->d_name + len - 6, ".jsonl") != 0) continue;
        if (n == cap) {
            cap = cap ? 2 * cap : 16;
            char **g = realloc(names, cap * sizeof(char *));
            if (!g) {
                rc = nt_fail(err, "out of memory");
                break;
            }
            names = g;
        }
        if (!(names[n] = strdup(e->d_name))) rc = nt_fail(err, "out of memory");
        else n++;
    }
    closedir(d);
    if (rc == 0 && names) qsort(names, n, sizeof(char *), cmp_str);
    for (size_t k = 0; k < n && rc == 0; k++) {
        char *bp = nt_path_join(base_dir, names[k]), *cp = nt_path_join(cand_dir, names[k]);
        if (!bp || !cp) {
            rc = nt_fail(err, "out of memory");
        } else if (nt_file_exists(cp)) {
            nt_samples b = {0}, c = {0};
            char task[256];
            snprintf(task, sizeof(task), "%.*s", (int)(strlen(names[k]) - 6), names[k]);
            rc = nt_samples_read(bp, &b, err) || nt_samples_read(cp, &c, err) ? -1 : 0;
            if (rc == 0) {
                qsort(b.items, b.n, sizeof(nt_sample), cmp_doc);
                qsort(c.items, c.n, sizeof(nt_sample), cmp_doc);
                rc = compare_task(task, &b, &c, out, res, err);
                res->tasks++;
            }
            nt_samples_free(&b);
            nt_samples_free(&c);
        } else if (out) {
            fprintf(out, "missing: %s: no %s in %s\n", names[k], names[k], cand_dir);
        }
        free(bp);
        free(cp);
    }
    for (size_t k = 0; k < n; k++) free(names[k]);
    free(names);
    if (rc == 0 && res->tasks == 0)
        rc = nt_fail(err, "%s and %s have no task file (TASK.jsonl from eval --log-samples) in common", base_dir, cand_dir);
    if (rc == 0 && out)
        fprintf(out, "samples: %zu tasks, %zu items; acc: %zu flipped right -> wrong, %zu wrong -> right; acc_norm: %zu, %zu\n",
                res->tasks, res->items, res->to_wrong[0], res->to_right[0], res->to_wrong[1], res->to_right[1]);
    return rc;
}
