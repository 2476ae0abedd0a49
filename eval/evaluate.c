// evaluate.c: see evaluate.h.
#define _POSIX_C_SOURCE 200809L
#include "evaluate.h"

#include <string.h>

#include "datasets.h"
#include "perplexity.h"
#include "samples.h"
#include "tokenizer.h"
#include "transformer.h"
#include "zeroshot.h"

enum { MAX_TASKS = 64 };

static char *keep(nt_eval_rows *r, const char *s) {
    char **grown = realloc(r->strings, (r->n_strings + 1) * sizeof(char *));
    if (!grown) return NULL;
    r->strings = grown;
    return r->strings[r->n_strings++] = strdup(s);
}

void nt_eval_rows_free(nt_eval_rows *r) {
    for (size_t i = 0; i < r->n_strings; i++) free(r->strings[i]);
    free(r->strings);
    free(r->rows);
    memset(r, 0, sizeof(*r));
}

// Scores one loaded zero-shot task and appends a row per metric (acc, acc_norm, perplexity).
static int zeroshot_rows(const nt_model *m, const nt_tokenizer *tok, const nt_eval_opts *o, const char *task,
                         const nt_zs_task *t, nt_eval_rows *out, nt_err *err) {
    nt_zs_result res;
    if (nt_zeroshot_score(m, tok, t, 0, o->skip_bad_items, &res, err)) return -1;
    const nt_model_quant *mq = &m->quant;
    char opts[512];
    snprintf(opts, sizeof(opts), "%s", mq->options);
    long limit = nt_eval_item_limit(o);
    if (limit) {
        size_t k = strlen(opts);
        snprintf(opts + k, sizeof(opts) - k, "%slimit=%ld", k ? ";" : "", limit);
    }
    if (o->skip_bad_items) {
        size_t k = strlen(opts);
        snprintf(opts + k, sizeof(opts) - k, "%sskipped=%ld", k ? ";" : "", res.n_skipped);
    }
    size_t first = out->n;
    int rc = 0;
    char device[128]; // zero-shot scoring runs on the CPU whatever --device says
    nt_cpu_device(device, sizeof device);
    for (int j = 0; j < res.n_metrics; j++) {
        nt_result_row *r = &out->rows[out->n];
        *r = (nt_result_row){.model = keep(out, m->name), .method = keep(out, mq->method), .wbits = mq->wbits, .abits = mq->abits,
                             .group_size = mq->group_size, .task = keep(out, task),
                             .metric = keep(out, res.metrics[j].name), .value = res.metrics[j].value,
                             .stderr_ = res.metrics[j].stderr_, .n = res.n_items, .seqlen = res.max_length,
                             .seconds = res.seconds, .calib = keep(out, mq->calib), .options = keep(out, opts),
                             .device = keep(out, device)};
        if (!r->model || !r->method || !r->task || !r->metric || !r->calib || !r->options || !r->device) {
            rc = nt_fail(err, "out of memory");
            break;
        }
        out->n++;
        if (o->print_ppl)
            fprintf(stderr, "%s: %s = %.4f +/- %.4f (%ld items, %.1f s)\n", task, res.metrics[j].name,
                    res.metrics[j].value, res.metrics[j].stderr_, res.n_items, res.seconds);
    }
    if (rc == 0 && o->log_samples && o->log_samples[0]) rc = nt_samples_write(o->log_samples, task, t, &res, err);
    if (rc == 0 && o->out) rc = nt_results_append(o->out, out->rows + first, out->n - first, err);
    nt_zs_result_free(&res);
    return rc;
}

// "cpu" / NULL -> -1, "cuda" -> 0, "cuda:N" -> N; -2 for anything else.
static int parse_device(const char *d) {
    if (!d || strcmp(d, "cpu") == 0) return -1;
    if (strcmp(d, "cuda") == 0) return 0;
    if (strncmp(d, "cuda:", 5) != 0 || !d[5]) return -2;
    char *end = NULL;
    long v = strtol(d + 5, &end, 10);
    return (*end || v < 0 || v > 1024) ? -2 : (int)v;
}

int nt_evaluate(const nt_eval_opts *o, nt_eval_rows *out, nt_err *err) {
    memset(out, 0, sizeof(*out));
    const int gpu = parse_device(o->device);
    if (gpu == -2) return nt_fail_usage(err, "unknown device '%s' (expected cpu, cuda or cuda:N)", o->device);
    nt_gpu_ctx *ctx = NULL;
    nt_gpu_model *gm = NULL;
    char device_name[300];
    nt_cpu_device(device_name, sizeof device_name);
    char *names[MAX_TASKS];
    nt_windows w[MAX_TASKS];  // perplexity tasks
    nt_zs_task zs[MAX_TASKS]; // zero-shot tasks
    bool is_zs[MAX_TASKS];
    size_t n_tasks = 0;
    char *tasks_copy = strdup(o->tasks ? o->tasks : ""), *kld_copy = NULL;
    nt_model *ref = NULL; // the KL divergence's reference (float) model, when loaded apart from m
    const nt_model *kref = NULL; // ref, or m itself when m is the float model
    int rc = -1;
    nt_model *m = NULL;
    nt_tokenizer *tok = NULL;
    // the task list, checked before anything is loaded
    for (char *save = NULL, *t = strtok_r(tasks_copy, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        bool zero_shot = nt_zeroshot_task_known(t);
        if (zero_shot && gpu >= 0) {
            nt_fail_usage(err, "--device %s: zero-shot tasks such as '%s' run on the CPU only (evaluate them "
                         "without --device)", o->device, t);
            goto done;
        }
        if (!zero_shot && !nt_ppl_task_known(t)) {
            nt_fail_usage(err,
                    "unknown task '%s' (expected wikitext2, ptb, ptb-new, c4, c4-new, a .txt file, lambada_openai, "
                    "hellaswag, piqa, arc_easy, arc_challenge, winogrande, boolq or openbookqa)",
                    t);
            goto done;
        }
        if (n_tasks == MAX_TASKS) {
            nt_fail_usage(err, "too many tasks (at most %d)", MAX_TASKS);
            goto done;
        }
        memset(&w[n_tasks], 0, sizeof(nt_windows));
        memset(&zs[n_tasks], 0, sizeof(nt_zs_task));
        is_zs[n_tasks] = zero_shot;
        names[n_tasks++] = t;
    }
    if (n_tasks == 0) {
        nt_fail_usage(err, "no tasks given");
        goto done;
    }
    // the perplexity tasks that also get KL divergence rows
    bool kld_of[MAX_TASKS] = {false};
    bool any_kld = false;
    kld_copy = strdup(o->kld ? o->kld : "");
    for (char *save = NULL, *t = strtok_r(kld_copy, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        size_t i = 0;
        while (i < n_tasks && strcmp(names[i], t) != 0) i++;
        if (i == n_tasks || is_zs[i]) {
            nt_fail_usage(err, "--kld %s: not one of the perplexity tasks of --tasks", t);
            goto done;
        }
        kld_of[i] = any_kld = true;
    }
    if (any_kld && gpu >= 0) {
        nt_fail_usage(err, "--kld: the KL divergence runs on the CPU only (evaluate it without --device)");
        goto done;
    }
    out->rows = calloc(3 * n_tasks, sizeof(nt_result_row)); // up to 3 metrics a task
    if (!out->rows) {
        nt_fail(err, "out of memory");
        goto done;
    }
    if (nt_model_load(&m, o->model_dir, err) || nt_tokenizer_load_model(&tok, o->model_dir, err)) goto done;
    if (any_kld) { // the float model: named, or this one before it is quantized, or this one when it is float
        bool float_model = strcmp(m->quant.method, "fp") == 0;
        if (o->kld_base && o->kld_base[0]) {
            if (nt_model_load(&ref, o->kld_base, err)) goto done;
        } else if (o->quant || !float_model) {
            if (!float_model) {
                nt_fail_usage(err, "--kld: %s is a quantized checkpoint: name its float model with --kld-base",
                              o->model_dir);
                goto done;
            }
            if (nt_model_load(&ref, o->model_dir, err)) goto done;
        }
        kref = ref ? ref : m;
    }
    if (o->quant && nt_quantize_model(m, tok, o->data_dir, o->quant, NULL, err)) goto done;
    int seqlen = o->seqlen ? o->seqlen : (m->cfg.max_pos < 2048 ? m->cfg.max_pos : 2048);
    if (seqlen > m->cfg.max_pos) {
        nt_fail(err, "--seqlen %d exceeds the maximum context of %s (%d tokens, config.json)", seqlen, o->model_dir,
                m->cfg.max_pos);
        goto done;
    }
    if (seqlen < 2) {
        nt_fail_usage(err, "--seqlen must be at least 2");
        goto done;
    }
    // every task's windows first: bad data fails before any compute and before any row is written
    for (size_t i = 0; i < n_tasks; i++) {
        int r = is_zs[i] ? nt_zs_task_load(names[i], o->data_dir, nt_eval_item_limit(o), o->skip_bad_items, &zs[i], err)
                         : nt_ppl_windows(names[i], o->data_dir, tok, (size_t)seqlen, &w[i], err);
        if (r) goto done;
    }

    if (gpu >= 0) {
        int n_dev = nt_gpu_device_count(err);
        if (n_dev < 0) {
            nt_fail(err, "--device %s: no CUDA device (%s)", o->device, err->msg);
            goto done;
        }
        if (gpu >= n_dev) {
            nt_fail(err, "--device %s: there are %d CUDA devices", o->device, n_dev);
            goto done;
        }
        if (nt_gpu_ctx_create(&ctx, gpu, err) || nt_gpu_model_upload(ctx, &gm, m, seqlen, err)) {
            nt_fail(err, "--device %s: %s", o->device, err->msg);
            goto done;
        }
        snprintf(device_name, sizeof device_name, "cuda:%s", nt_gpu_ctx_info(ctx)->name);
    }

    const nt_model_quant *mq = &m->quant;
    for (size_t i = 0; i < n_tasks; i++) {
        if (is_zs[i]) {
            if (zeroshot_rows(m, tok, o, names[i], &zs[i], out, err)) goto done;
            continue;
        }
        nt_ppl_result res;
        nt_kld_result kres;
        if (gm ? nt_perplexity_gpu(ctx, gm, &w[i], (size_t)o->limit, names[i], &res, err)
               : nt_perplexity_kld(m, kld_of[i] ? kref : NULL, &w[i], (size_t)o->limit, names[i], &res,
                                   kld_of[i] ? &kres : NULL, err))
            goto done;
        char opts[64] = "";
        if (o->limit && (size_t)o->limit < w[i].n_windows) snprintf(opts, sizeof(opts), "limit=%ld", o->limit);
        nt_result_row *r = &out->rows[out->n];
        char all_opts[512];
        snprintf(all_opts, sizeof(all_opts), "%s%s%s", mq->options, mq->options[0] && opts[0] ? ";" : "", opts);
        *r = (nt_result_row){.model = keep(out, m->name), .method = keep(out, mq->method), .wbits = mq->wbits, .abits = mq->abits,
                             .group_size = mq->group_size, .task = keep(out, names[i]), .metric = "ppl",
                             .value = res.ppl, .stderr_ = res.ppl_stderr, .n = (long)res.n_scored,
                             .seqlen = seqlen, .seconds = res.seconds, .calib = keep(out, mq->calib),
                             .options = keep(out, all_opts), .device = keep(out, device_name)};
        if (!r->model || !r->method || !r->task || !r->calib || !r->options || !r->device) {
            nt_fail(err, "out of memory");
            goto done;
        }
        out->n++;
        if (o->print_ppl)
            fprintf(stderr, "%s: PPL = %.4f +/- %.4f (%zu windows, %zu tokens, %.1f s, %.0f tokens/s)\n", names[i],
                    res.ppl, res.ppl_stderr, res.n_windows, res.n_windows * (size_t)seqlen, res.seconds,
                    (double)(res.n_windows * (size_t)seqlen) / res.seconds);
        size_t n_rows = 1;
        if (kld_of[i]) { // the same cell's KL divergence and top-1 agreement rows
            char kopts[700];
            char base[256] = "";
            if (ref && o->kld_base && o->kld_base[0]) snprintf(base, sizeof(base), "kld_base=%s", ref->name);
            snprintf(kopts, sizeof(kopts), "%s%s%s", all_opts, all_opts[0] && base[0] ? ";" : "", base);
            const char *metric[2] = {"kld", "top1"};
            double v[2] = {kres.kld, kres.top1}, se[2] = {kres.kld_stderr, kres.top1_stderr};
            for (int k = 0; k < 2; k++) {
                nt_result_row *kr = &out->rows[out->n];
                *kr = *r;
                kr->metric = metric[k];
                kr->value = v[k];
                kr->stderr_ = se[k];
                kr->n = (long)kres.n;
                kr->options = keep(out, kopts);
                if (!kr->options) {
                    nt_fail(err, "out of memory");
                    goto done;
                }
                out->n++;
                n_rows++;
            }
            if (o->print_ppl)
                fprintf(stderr, "%s: KLD = %.6f +/- %.6f, same top-1 token %.2f%% +/- %.2f%% (vs %s)\n", names[i],
                        kres.kld, kres.kld_stderr, 100.0 * kres.top1, 100.0 * kres.top1_stderr, kref->name);
        }
        if (o->out && nt_results_append(o->out, out->rows + out->n - n_rows, n_rows, err)) goto done;
    }
    rc = 0;
done:
    for (size_t i = 0; i < n_tasks; i++) {
        nt_windows_free(&w[i]);
        nt_zs_task_free(&zs[i]);
    }
    free(tasks_copy);
    free(kld_copy);
    nt_model_free(&ref);
    nt_gpu_model_free(&gm);
    nt_gpu_ctx_free(&ctx);
    nt_tokenizer_free(&tok);
    nt_model_free(&m);
    return rc;
}

long nt_eval_item_limit(const nt_eval_opts *o) { return o->limit_items ? o->limit_items : o->limit; }

const char *nt_default_model(void) {
    static char path[4096];
    const char *dir = getenv("NT_MODELS_DIR");
    if (!dir || !*dir) return NT_DEFAULT_MODEL;
    snprintf(path, sizeof(path), "%s/%s", dir, NT_DEFAULT_MODEL_FILE);
    return path;
}
