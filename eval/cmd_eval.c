// cmd_eval.c: `normtweak eval`: perplexity of a model on one or more tasks, printed as a table and
// appended to a results CSV.
#define _GNU_SOURCE
#include <cblas.h>
#include <getopt.h>
#include <math.h>
#include <omp.h>
#include <string.h>

#include "cli.h"
#include "datasets.h"
#include "perplexity.h"
#include "results.h"
#include "tokenizer.h"
#include "transformer.h"

#define DEFAULT_MODEL "../shared/models/tiny-opt"
#define DEFAULT_DATA "../shared/datasets"

void nt_set_threads(int n) {
    if (n <= 0) return;
    openblas_set_num_threads(n);
    omp_set_num_threads(n);
}

static void eval_usage(FILE *f) {
    fprintf(f,
            "usage: normtweak eval [--model DIR] [--tasks T1,T2,...] [--seqlen N] [--data-dir DIR] [--out FILE.csv]\n"
            "                      [--limit N] [--threads N]\n"
            "  --model DIR     Hugging Face model directory (default " DEFAULT_MODEL ")\n"
            "  --tasks LIST    wikitext2, ptb, ptb-new, c4, c4-new or a .txt file (default wikitext2)\n"
            "  --seqlen N      window length (default min(2048, the model's maximum))\n"
            "  --data-dir DIR  the datasets folder (default " DEFAULT_DATA ")\n"
            "  --out FILE.csv  append result rows to this CSV (columns: results/README.md)\n"
            "  --limit N       score only the first N windows of each task (stated in the row's options)\n"
            "  --threads N     CPU threads (default: all cores)\n");
}

static int parse_pos_int(const char *opt, const char *s, long max, long *out) {
    char *end = NULL;
    long v = strtol(s, &end, 10);
    if (!*s || *end || v <= 0 || v > max) {
        fprintf(stderr, "normtweak eval: %s needs a positive integer, got '%s'\n", opt, s);
        return -1;
    }
    *out = v;
    return 0;
}

typedef struct {
    char *name;
    nt_windows w;
} task_windows;

int nt_cmd_eval(int argc, char **argv) {
    const char *model_dir = DEFAULT_MODEL, *tasks_arg = "wikitext2", *data_dir = DEFAULT_DATA, *out = NULL;
    long seqlen = 0, limit = 0, threads = 0;
    static const struct option opts[] = {{"model", required_argument, 0, 'm'},  {"tasks", required_argument, 0, 't'},
                                         {"seqlen", required_argument, 0, 's'}, {"data-dir", required_argument, 0, 'd'},
                                         {"out", required_argument, 0, 'o'},    {"limit", required_argument, 0, 'l'},
                                         {"threads", required_argument, 0, 'j'}, {"help", no_argument, 0, 'h'},
                                         {0, 0, 0, 0}};
    optind = 1;
    int c;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'm': model_dir = optarg; break;
        case 't': tasks_arg = optarg; break;
        case 'd': data_dir = optarg; break;
        case 'o': out = optarg; break;
        case 's': if (parse_pos_int("--seqlen", optarg, 1L << 20, &seqlen)) return 2; break;
        case 'l': if (parse_pos_int("--limit", optarg, 1L << 30, &limit)) return 2; break;
        case 'j': if (parse_pos_int("--threads", optarg, 4096, &threads)) return 2; break;
        case 'h': eval_usage(stdout); return 0;
        default: eval_usage(stderr); return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "normtweak eval: unexpected argument '%s'\n", argv[optind]);
        return 2;
    }
    nt_set_threads((int)threads);

    // the task list, checked before anything is loaded
    char *tasks_copy = strdup(tasks_arg);
    task_windows tw[32];
    size_t n_tasks = 0;
    int status = 1;
    for (char *save = NULL, *tok = strtok_r(tasks_copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        if (!nt_ppl_task_known(tok)) {
            fprintf(stderr, "normtweak eval: unknown task '%s' (expected wikitext2, ptb, ptb-new, c4, c4-new or a .txt file)\n", tok);
            free(tasks_copy);
            return 2;
        }
        if (n_tasks == sizeof(tw) / sizeof(tw[0])) {
            fprintf(stderr, "normtweak eval: too many tasks (at most 32)\n");
            free(tasks_copy);
            return 2;
        }
        tw[n_tasks].name = tok;
        memset(&tw[n_tasks].w, 0, sizeof(nt_windows));
        n_tasks++;
    }
    if (n_tasks == 0) {
        fprintf(stderr, "normtweak eval: --tasks is empty\n");
        free(tasks_copy);
        return 2;
    }

    nt_err err = {0};
    nt_model *m = NULL;
    nt_tokenizer *tok = NULL;
    nt_result_row *rows = calloc(n_tasks, sizeof(nt_result_row));
    char (*opt_strs)[64] = calloc(n_tasks, 64);
    size_t n_rows = 0;
    if (nt_model_load(&m, model_dir, &err) || nt_tokenizer_load_dir(&tok, model_dir, &err)) goto fail;
    if (seqlen == 0) seqlen = m->cfg.max_pos < 2048 ? m->cfg.max_pos : 2048;
    if (seqlen > m->cfg.max_pos) {
        nt_fail(&err, "--seqlen %ld exceeds the maximum context of %s (%d tokens, config.json)", seqlen, model_dir,
                m->cfg.max_pos);
        goto fail;
    }
    if (seqlen < 2) {
        nt_fail(&err, "--seqlen must be at least 2");
        goto fail;
    }
    // every task's windows first: bad data fails before any compute and before any row is written
    for (size_t i = 0; i < n_tasks; i++)
        if (nt_ppl_windows(tw[i].name, data_dir, tok, (size_t)seqlen, &tw[i].w, &err)) goto fail;

    for (size_t i = 0; i < n_tasks; i++) {
        nt_ppl_result res;
        if (nt_perplexity(m, &tw[i].w, (size_t)limit, tw[i].name, &res, &err)) goto fail;
        if (limit && (size_t)limit < tw[i].w.n_windows) snprintf(opt_strs[i], 64, "limit=%ld", limit);
        nt_result_row *r = &rows[n_rows++];
        *r = (nt_result_row){.model = m->name, .method = "fp", .wbits = 16, .group_size = 0, .task = tw[i].name,
                             .metric = "ppl", .value = res.ppl, .stderr_ = res.ppl_stderr, .n = (long)res.n_scored,
                             .seqlen = (int)seqlen, .seconds = res.seconds, .calib = "", .options = opt_strs[i],
                             .device = "cpu"};
        fprintf(stderr, "%s: PPL = %.4f +/- %.4f (%zu windows, %zu tokens, %.1f s, %.0f tokens/s)\n", tw[i].name,
                res.ppl, res.ppl_stderr, res.n_windows, res.n_windows * (size_t)seqlen, res.seconds,
                (double)(res.n_windows * (size_t)seqlen) / res.seconds);
        if (out && nt_results_append(out, r, 1, &err)) goto fail;
    }
    nt_results_print(stdout, rows, n_rows);
    status = 0;
    goto done;
fail:
    fprintf(stderr, "normtweak eval: %s\n", err.msg);
done:
    for (size_t i = 0; i < n_tasks; i++) nt_windows_free(&tw[i].w);
    free(rows);
    free(opt_strs);
    free(tasks_copy);
    nt_tokenizer_free(&tok);
    nt_model_free(&m);
    return status;
}
