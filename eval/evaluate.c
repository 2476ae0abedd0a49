// evaluate.c: see evaluate.h.
#define _POSIX_C_SOURCE 200809L
#include "evaluate.h"

#include <string.h>

#include "datasets.h"
#include "perplexity.h"
#include "tokenizer.h"
#include "transformer.h"

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

int nt_evaluate(const nt_eval_opts *o, nt_eval_rows *out, nt_err *err) {
    memset(out, 0, sizeof(*out));
    char *names[MAX_TASKS];
    nt_windows w[MAX_TASKS];
    size_t n_tasks = 0;
    char *tasks_copy = strdup(o->tasks ? o->tasks : "");
    int rc = -1;
    nt_model *m = NULL;
    nt_tokenizer *tok = NULL;
    // the task list, checked before anything is loaded
    for (char *save = NULL, *t = strtok_r(tasks_copy, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        if (!nt_ppl_task_known(t)) {
            nt_fail(err, "usage: unknown task '%s' (expected wikitext2, ptb, ptb-new, c4, c4-new or a .txt file)", t);
            goto done;
        }
        if (n_tasks == MAX_TASKS) {
            nt_fail(err, "usage: too many tasks (at most %d)", MAX_TASKS);
            goto done;
        }
        memset(&w[n_tasks], 0, sizeof(nt_windows));
        names[n_tasks++] = t;
    }
    if (n_tasks == 0) {
        nt_fail(err, "usage: no tasks given");
        goto done;
    }
    out->rows = calloc(n_tasks, sizeof(nt_result_row));
    if (!out->rows) {
        nt_fail(err, "out of memory");
        goto done;
    }
    if (nt_model_load(&m, o->model_dir, err) || nt_tokenizer_load_dir(&tok, o->model_dir, err)) goto done;
    int seqlen = o->seqlen ? o->seqlen : (m->cfg.max_pos < 2048 ? m->cfg.max_pos : 2048);
    if (seqlen > m->cfg.max_pos) {
        nt_fail(err, "--seqlen %d exceeds the maximum context of %s (%d tokens, config.json)", seqlen, o->model_dir,
                m->cfg.max_pos);
        goto done;
    }
    if (seqlen < 2) {
        nt_fail(err, "usage: --seqlen must be at least 2");
        goto done;
    }
    // every task's windows first: bad data fails before any compute and before any row is written
    for (size_t i = 0; i < n_tasks; i++)
        if (nt_ppl_windows(names[i], o->data_dir, tok, (size_t)seqlen, &w[i], err)) goto done;

    for (size_t i = 0; i < n_tasks; i++) {
        nt_ppl_result res;
        if (nt_perplexity(m, &w[i], (size_t)o->limit, names[i], &res, err)) goto done;
        char opts[64] = "";
        if (o->limit && (size_t)o->limit < w[i].n_windows) snprintf(opts, sizeof(opts), "limit=%ld", o->limit);
        nt_result_row *r = &out->rows[out->n];
        *r = (nt_result_row){.model = keep(out, m->name), .method = "fp", .wbits = 16, .group_size = 0,
                             .task = keep(out, names[i]), .metric = "ppl", .value = res.ppl,
                             .stderr_ = res.ppl_stderr, .n = (long)res.n_scored, .seqlen = seqlen,
                             .seconds = res.seconds, .calib = "", .options = keep(out, opts), .device = "cpu"};
        if (!r->model || !r->task || !r->options) {
            nt_fail(err, "out of memory");
            goto done;
        }
        out->n++;
        if (o->print_ppl)
            fprintf(stderr, "%s: PPL = %.4f +/- %.4f (%zu windows, %zu tokens, %.1f s, %.0f tokens/s)\n", names[i],
                    res.ppl, res.ppl_stderr, res.n_windows, res.n_windows * (size_t)seqlen, res.seconds,
                    (double)(res.n_windows * (size_t)seqlen) / res.seconds);
        if (o->out && nt_results_append(o->out, r, 1, err)) goto done;
    }
    rc = 0;
done:
    for (size_t i = 0; i < n_tasks; i++) nt_windows_free(&w[i]);
    free(tasks_copy);
    nt_tokenizer_free(&tok);
    nt_model_free(&m);
    return rc;
}
