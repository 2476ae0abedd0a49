// test_kld_samples.c: the KL-divergence and top-1 metrics (perplexity.h, nll.h) and the per-item zero-shot output
// (samples.h) with its item-by-item comparison (gate.h):
// - the per-row KL divergence and argmax agreement against a double-precision computation;
// - a model against a separately loaded copy of itself: KL exactly 0, top-1 exactly 1, the same perplexity;
// - the KL divergence grows and the top-1 agreement falls from W4 to W2 (RTN) on tiny-llama and on SmolLM2's
//   first windows, by more than their standard errors;
// - `--log-samples` lines re-add to the reported acc and acc_norm, their pred is the argmax of their logliks;
// - gate names the items that flipped, and their count each way adds up to the change in accuracy;
// - bad --kld / --kld-base use and corrupt sample files: one-line errors.
#define _POSIX_C_SOURCE 200809L
#include <cjson/cJSON.h>
#include <criterion/criterion.h>
#include <math.h>
#include <string.h>

#include "csv_read.h"
#include "evaluate.h"
#include "gate.h"
#include "nll.h"
#include "perplexity.h"
#include "qcheckpoint.h"
#include "samples.h"
#include "testutil.h"
#include "tokenizer.h"

// ------------------------------------------------------------------------------------------------ the math

// KL(softmax(r) || softmax(x)) in double.
static double kld_ref(const float *r, const float *x, int V) {
    double mr = r[0], mx = x[0], sr = 0, sx = 0;
    for (int j = 0; j < V; j++) mr = fmax(mr, r[j]), mx = fmax(mx, x[j]);
    for (int j = 0; j < V; j++) sr += exp(r[j] - mr), sx += exp(x[j] - mx);
    double k = 0;
    for (int j = 0; j < V; j++) {
        double lp = r[j] - mr - log(sr), lq = x[j] - mx - log(sx);
        k += exp(lp) * (lp - lq);
    }
    return k;
}

Test(kld, rows_match_double_precision) {
    enum { V = 5000, N = 12 };
    uint64_t st = 3;
    float *r = malloc(N * V * sizeof(float)), *x = malloc(N * V * sizeof(float));
    for (int t = 0; t < N; t++)
        for (int j = 0; j < V; j++) {
            float a = 4.0f * tu_rnd_normal(&st);
            r[t * V + j] = a;
            // row t: a perturbation of growing size (t = 0: the same row; t = 11: an unrelated one)
            x[t * V + j] = t == N - 1 ? 4.0f * tu_rnd_normal(&st) : a + 0.05f * (float)t * tu_rnd_normal(&st);
        }
    x[3 * V + 17] = r[3 * V + 17] = 40.0f; // a shared clear maximum in row 3
    double k[N];
    bool top[N];
    nt_kld_from_logits(r, x, N, V, k, top);
    cr_assert_eq(k[0], 0.0, "a row against itself: %g", k[0]);
    cr_assert(top[0] && top[3]);
    for (int t = 0; t < N; t++) {
        double ref = kld_ref(r + t * V, x + t * V, V);
        // each term p_j d_j (d_j = log p_j - log q_j) is a float product of a float exp (libmvec, a few ulp) and a
        // float difference: ~3e-7 relative; the terms cancel to first order (the KL is second order in d), so the
        // error is measured against sum |p_j d_j| (<= 0.05 for rows 1..10, 1.1e-8 off measured): 1e-6 of it, 5e-8
        cr_assert(fabs(k[t] - ref) <= 5e-8 + 1e-5 * ref, "row %d: %.9g vs %.9g", t, k[t], ref);
        int br = 0, bx = 0;
        for (int j = 1; j < V; j++) {
            if (r[t * V + j] > r[t * V + br]) br = j;
            if (x[t * V + j] > x[t * V + bx]) bx = j;
        }
        cr_assert_eq(top[t], br == bx, "row %d: argmax %d vs %d", t, br, bx);
    }
    cr_assert(k[N - 1] > 1.0, "unrelated rows: %g", k[N - 1]);
    free(r);
    free(x);
}

// ------------------------------------------------------------------------------------------------ models

static nt_model *load(const char *path) {
    nt_model *m = NULL;
    nt_err err = {0};
    cr_assert_eq(nt_model_load(&m, path, &err), 0, "%s", err.msg);
    return m;
}

static void windows(const char *model, size_t seqlen, size_t n, nt_windows *w) {
    nt_tokenizer *tok = NULL;
    nt_err err = {0};
    char *data = tu_shared("datasets");
    cr_assert_eq(nt_tokenizer_load_model(&tok, model, &err), 0, "%s", err.msg);
    cr_assert_eq(nt_ppl_windows("wikitext2", data, tok, seqlen, w, &err), 0, "%s", err.msg);
    cr_assert_geq(w->n_windows, n);
    w->n_windows = n; // the first n windows
    nt_tokenizer_free(&tok);
    free(data);
}

Test(kld, model_against_itself_is_zero) {
    char *dir = tu_shared("models/tiny-llama");
    nt_model *a = load(dir), *b = load(dir);
    nt_windows w = {0};
    windows(dir, 64, 6, &w);
    nt_ppl_result p0, p1;
    nt_kld_result k;
    nt_err err = {0};
    cr_assert_eq(nt_perplexity(a, &w, 0, "wikitext2", &p0, &err), 0, "%s", err.msg);
    cr_assert_eq(nt_perplexity_kld(a, b, &w, 0, "wikitext2", &p1, &k, &err), 0, "%s", err.msg);
    // the same code on the same weights and tokens: every position's two distributions are bit for bit equal
    cr_assert_eq(k.kld, 0.0, "KL of a model with itself: %g", k.kld);
    cr_assert_eq(k.kld_stderr, 0.0);
    cr_assert_eq(k.top1, 1.0, "top-1 agreement with itself: %g", k.top1);
    cr_assert_eq(k.n, 6u * 63u);
    cr_assert_eq(p0.nll_sum, p1.nll_sum, "the perplexity changed when the reference ran beside it");
    nt_windows_free(&w);
    nt_model_free(&a);
    nt_model_free(&b);
    free(dir);
}

// KL and top-1 of RTN at W4 and W2 (per channel) against the float model on the first n windows of seqlen tokens.
static void kld_w4_w2(const char *path, size_t seqlen, size_t n) {
    nt_model *f = load(path);
    nt_windows w = {0};
    windows(path, seqlen, n, &w);
    nt_kld_result k[2];
    int bits[2] = {4, 2};
    nt_err err = {0};
    for (int i = 0; i < 2; i++) {
        nt_model *q = load(path);
        nt_quant_opts o = nt_quant_opts_make("rtn", bits[i], -1);
        cr_assert_eq(nt_quantize_model(q, NULL, NULL, &o, NULL, &err), 0, "%s", err.msg);
        nt_ppl_result p;
        cr_assert_eq(nt_perplexity_kld(q, f, &w, 0, "wikitext2", &p, &k[i], &err), 0, "%s", err.msg);
        cr_log_info("%s W%d: KL %.5f +/- %.5f, top-1 %.4f +/- %.4f, ppl %.3f", f->name, bits[i], k[i].kld,
                    k[i].kld_stderr, k[i].top1, k[i].top1_stderr, p.ppl);
        nt_model_free(&q);
    }
    cr_assert(k[0].kld > 0.0, "%s W4: KL %g: quantization changed nothing?", f->name, k[0].kld);
    // W2 must be worse by more than 3 standard errors of the difference
    double se = sqrt(k[0].kld_stderr * k[0].kld_stderr + k[1].kld_stderr * k[1].kld_stderr);
    cr_assert(k[1].kld - k[0].kld > 3.0 * se, "%s: KL W4 %.5f, W2 %.5f (+/- %.5f)", f->name, k[0].kld, k[1].kld, se);
    double te = sqrt(k[0].top1_stderr * k[0].top1_stderr + k[1].top1_stderr * k[1].top1_stderr);
    cr_assert(k[0].top1 - k[1].top1 > 3.0 * te, "%s: top-1 W4 %.4f, W2 %.4f (+/- %.4f)", f->name, k[0].top1,
              k[1].top1, te);
    nt_windows_free(&w);
    nt_model_free(&f);
}

Test(kld, grows_from_w4_to_w2_tiny_llama) {
    char *dir = tu_shared("models/tiny-llama");
    kld_w4_w2(dir, 128, 8);
    free(dir);
}

// SmolLM2 (models/, put there by .ci/install-deps): its first 2 windows of 256 tokens
Test(kld, grows_from_w4_to_w2_smollm2, .timeout = 600) {
    const char *dir = getenv("NT_MODELS_DIR");
    char *src = tu_source("models");
    char *path = nt_path_join(dir && *dir ? dir : src, "SmolLM2-135M-Instruct.Q4_1.gguf");
    free(src);
    cr_assert(nt_file_exists(path), "%s is missing: run .ci/install-deps (it fetches the test models)", path);
    kld_w4_w2(path, 256, 2);
    free(path);
}

// ------------------------------------------------------------------------------------------------ samples

typedef struct {
    double acc, acc_norm;
    long n;
} task_rows;

static task_rows rows_of(const nt_eval_rows *rows, const char *task) {
    task_rows t = {NAN, NAN, 0};
    for (size_t i = 0; i < rows->n; i++) {
        if (strcmp(rows->rows[i].task, task) != 0) continue;
        if (strcmp(rows->rows[i].metric, "acc") == 0) t.acc = rows->rows[i].value, t.n = rows->rows[i].n;
        if (strcmp(rows->rows[i].metric, "acc_norm") == 0) t.acc_norm = rows->rows[i].value;
    }
    return t;
}

static void eval_samples(const char *model, const char *method, int wbits, const char *tasks, long limit,
                         const char *dir, nt_eval_rows *rows) {
    char *data = tu_shared("datasets");
    nt_quant_opts q = nt_quant_opts_make(method, wbits, -1);
    nt_eval_opts o = {.model_dir = model, .tasks = tasks, .data_dir = data, .limit = limit, .log_samples = dir,
                      .quant = strcmp(method, "fp") ? &q : NULL};
    nt_err err = {0};
    cr_assert_eq(nt_evaluate(&o, rows, &err), 0, "%s", err.msg);
    free(data);
}

// Re-reads DIR/TASK.jsonl and checks it against the reported rows.
static void check_readds(const char *dir, const char *task, const nt_eval_rows *rows) {
    char name[64];
    snprintf(name, sizeof(name), "%s.jsonl", task);
    char *path = nt_path_join(dir, name), *text = nt_read_file(path, NULL, NULL);
    cr_assert_not_null(text, "%s not written", path);
    task_rows t = rows_of(rows, task);
    long n = 0, acc = 0, accn = 0, prev_doc = -1;
    for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
        cJSON *o = cJSON_Parse(line);
        cr_assert_not_null(o, "%s: line %ld is not JSON", path, n + 1);
        long doc = (long)cJSON_GetObjectItem(o, "doc_id")->valuedouble;
        cr_assert_gt(doc, prev_doc, "%s: doc_ids not increasing", path);
        prev_doc = doc;
        acc += (long)cJSON_GetObjectItem(o, "acc")->valuedouble;
        const cJSON *an = cJSON_GetObjectItem(o, "acc_norm"), *pred = cJSON_GetObjectItem(o, "pred");
        if (an) accn += (long)an->valuedouble;
        const cJSON *reqs = cJSON_GetObjectItem(o, "requests");
        cr_assert(cJSON_GetArraySize(reqs) >= 1);
        if (pred) { // pred = the first argmax of the logliks written on the line
            int best = 0, c = 0;
            double bl = -INFINITY;
            const cJSON *r;
            cJSON_ArrayForEach(r, reqs) {
                double ll = cJSON_GetObjectItem(r, "loglik")->valuedouble;
                if (ll > bl) bl = ll, best = c;
                c++;
            }
            cr_assert_eq((int)pred->valuedouble, best, "%s doc %ld: pred %d, argmax of logliks %d", path, doc,
                         (int)pred->valuedouble, best);
            int gold = (int)cJSON_GetObjectItem(o, "gold")->valuedouble;
            cr_assert_eq((long)cJSON_GetObjectItem(o, "acc")->valuedouble, best == gold);
        } else { // LAMBADA: acc is the greedy flag of its one request
            cr_assert_eq((long)cJSON_GetObjectItem(o, "acc")->valuedouble,
                         cJSON_IsTrue(cJSON_GetObjectItem(cJSON_GetArrayItem(reqs, 0), "greedy")) ? 1 : 0);
        }
        cJSON_Delete(o);
        n++;
    }
    cr_assert_eq(n, t.n, "%s: %ld lines for %ld items", path, n, t.n);
    // the reported acc is the mean of 0/1 values: n * acc is an integer up to rounding
    cr_assert(fabs((double)acc - t.acc * (double)n) < 1e-9, "%s: the lines add to %ld of %ld, the row says %.6f", path,
              acc, n, t.acc);
    if (!isnan(t.acc_norm))
        cr_assert(fabs((double)accn - t.acc_norm * (double)n) < 1e-9, "%s: acc_norm lines add to %ld of %ld, row %.6f",
                  path, accn, n, t.acc_norm);
    free(text);
    free(path);
}

Test(samples, lines_readd_to_the_reported_accuracy_and_gate_names_the_flips, .timeout = 600) {
    char *model = tu_shared("models/tiny-llama"), *tmp = tu_tmpdir();
    char *a = nt_path_join(tmp, "fp"), *b = nt_path_join(tmp, "w2");
    const char *tasks = "hellaswag,piqa,lambada_openai,arc_easy";
    nt_eval_rows ra, rb;
    eval_samples(model, "fp", 16, tasks, 40, a, &ra);
    eval_samples(model, "rtn", 2, tasks, 40, b, &rb);
    const char *names[] = {"hellaswag", "piqa", "lambada_openai", "arc_easy"};
    for (int i = 0; i < 4; i++) {
        check_readds(a, names[i], &ra);
        check_readds(b, names[i], &rb);
    }
    // item by item: the flips each way add up to the change in accuracy of every task
    char *rep = nt_path_join(tmp, "report.txt");
    FILE *f = fopen(rep, "w");
    nt_samples_diff d;
    nt_err err = {0};
    cr_assert_eq(nt_gate_samples(a, b, f, &d, &err), 0, "%s", err.msg);
    fclose(f);
    cr_assert_eq(d.tasks, 4u);
    cr_assert_eq(d.items, 160u);
    long net = 0, netn = 0;
    for (int i = 0; i < 4; i++) {
        task_rows x = rows_of(&ra, names[i]), y = rows_of(&rb, names[i]);
        net += lround((y.acc - x.acc) * (double)x.n);
        if (!isnan(x.acc_norm)) netn += lround((y.acc_norm - x.acc_norm) * (double)x.n);
    }
    cr_assert_eq((long)d.to_right[0] - (long)d.to_wrong[0], net, "acc flips %zu/%zu vs net change %ld", d.to_right[0],
                 d.to_wrong[0], net);
    cr_assert_eq((long)d.to_right[1] - (long)d.to_wrong[1], netn);
    cr_assert_gt(d.to_wrong[0] + d.to_right[0] + d.to_wrong[1] + d.to_right[1], 0u, "W2 flipped nothing at all?");
    char *report = nt_read_file(rep, NULL, NULL);
    size_t flips = 0;
    for (const char *p = report; (p = strstr(p, "flip: ")); p++) flips++;
    cr_assert_eq(flips, d.to_wrong[0] + d.to_right[0] + d.to_wrong[1] + d.to_right[1]);
    free(report);

    // a hand-flipped line is named, doc and all
    char *pa = nt_path_join(a, "piqa.jsonl"), *text = nt_read_file(pa, NULL, NULL);
    char *p2 = strstr(strchr(text, '\n') + 1, "\"acc\":"); // the second item's acc
    cr_assert_not_null(p2);
    p2[6] = p2[6] == '1' ? '0' : '1';
    char *c = nt_path_join(tmp, "edit");
    char cmd[1024];
    snprintf(cmd, sizeof(cmd), "mkdir -p '%s'", c);
    cr_assert_eq(system(cmd), 0);
    char *pc = nt_path_join(c, "piqa.jsonl");
    cr_assert_eq(tu_write_file(pc, text, strlen(text)), 0);
    f = fopen(rep, "w");
    cr_assert_eq(nt_gate_samples(a, c, f, &d, &err), 0, "%s", err.msg);
    fclose(f);
    report = nt_read_file(rep, NULL, NULL);
    cr_assert_not_null(strstr(report, "flip: piqa doc 1 (line 2): acc "), "%s", report);
    cr_assert_eq(d.to_wrong[0] + d.to_right[0], 1u);
    free(report);
    // another item under the same doc_id: an error, not a silent comparison
    char *q = strstr(text, "Question:");
    cr_assert_not_null(q);
    q[0] = 'q';
    cr_assert_eq(tu_write_file(pc, text, strlen(text)), 0);
    cr_assert_eq(nt_gate_samples(a, c, NULL, &d, &err), -1);
    cr_assert(strstr(err.msg, "different requests"), "%s", err.msg);
    // a corrupt line: the file and line named
    cr_assert_eq(tu_write_file(pc, "{\"doc_id\": 0}\n", 14), 0);
    cr_assert_eq(nt_gate_samples(a, c, NULL, &d, &err), -1);
    cr_assert(strstr(err.msg, "piqa.jsonl:1:"), "%s", err.msg);
    free(text);
    free(pa);
    free(pc);
    free(c);
    nt_eval_rows_free(&ra);
    nt_eval_rows_free(&rb);
    tu_rmtree(tmp);
    free(tmp);
    free(a);
    free(b);
    free(rep);
    free(model);
}

Test(kld, bad_use_is_a_usage_error) {
    char *model = tu_shared("models/tiny-opt"), *data = tu_shared("datasets");
    nt_eval_rows rows;
    nt_err err = {0};
    nt_eval_opts o = {.model_dir = model, .tasks = "wikitext2,piqa", .data_dir = data, .limit = 2, .kld = "piqa"};
    cr_assert_eq(nt_evaluate(&o, &rows, &err), -1);
    cr_assert_eq(err.kind, NT_ERR_USAGE);
    cr_assert(strstr(err.msg, "--kld piqa"), "%s", err.msg);
    nt_eval_rows_free(&rows);
    o.kld = "ptb";
    cr_assert_eq(nt_evaluate(&o, &rows, &err), -1);
    cr_assert(strstr(err.msg, "--kld ptb"), "%s", err.msg);
    nt_eval_rows_free(&rows);
    o.kld = "wikitext2";
    o.kld_base = "/nonexistent/model";
    cr_assert_eq(nt_evaluate(&o, &rows, &err), -1);
    cr_assert(strstr(err.msg, "/nonexistent/model"), "%s", err.msg);
    nt_eval_rows_free(&rows);
    // a quantized checkpoint does not know its float model: it has to be named
    nt_model *m = load(model);
    nt_quant_opts q = nt_quant_opts_make("rtn", 4, -1);
    cr_assert_eq(nt_quantize_model(m, NULL, NULL, &q, NULL, &err), 0, "%s", err.msg);
    char *tmp = tu_tmpdir(), *qdir = nt_path_join(tmp, "q");
    cr_assert_eq(nt_qcheckpoint_save(m, qdir, &err), 0, "%s", err.msg);
    nt_model_free(&m);
    o.model_dir = qdir;
    o.kld_base = NULL;
    cr_assert_eq(nt_evaluate(&o, &rows, &err), -1);
    cr_assert_eq(err.kind, NT_ERR_USAGE);
    cr_assert(strstr(err.msg, "--kld-base"), "%s", err.msg);
    nt_eval_rows_free(&rows);
    o.kld_base = model; // named: it runs, and the rows say which base
    cr_assert_eq(nt_evaluate(&o, &rows, &err), 0, "%s", err.msg);
    bool seen = false;
    for (size_t i = 0; i < rows.n; i++)
        if (strcmp(rows.rows[i].metric, "kld") == 0) {
            seen = true;
            cr_assert(rows.rows[i].value > 0.0);
            cr_assert(strstr(rows.rows[i].options, "kld_base=tiny-opt"), "%s", rows.rows[i].options);
        }
    cr_assert(seen);
    nt_eval_rows_free(&rows);
    tu_rmtree(tmp);
    free(tmp);
    free(qdir);
    free(model);
    free(data);
}
