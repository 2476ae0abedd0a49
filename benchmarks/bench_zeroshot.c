// bench_zeroshot.c: zero-shot scoring throughput (items per second) of the C scorer (eval/zeroshot.c) on the
// first N items of each task, to set beside benchmarks/zeroshot_torch.py (the PyTorch reference on the same
// items). Times tokenizing + forward passes + scoring, not loading the model or reading the task file.
//
// usage: bench_zeroshot [--limit N] [--batch B] [--dump] MODEL_DIR DATA_DIR TASK...
//   --batch: one-request items (LAMBADA) fed B at a time (default 0: the scorer's own choice, 8; 1: one at a
//   time, as before batching); --dump: also print every request's loglik and greedy flag (item line, choice,
//   loglik, greedy).
// Output: one line per task: task, items, requests, seconds, items/s, and the metrics.
#define _GNU_SOURCE
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "zeroshot.h"

int main(int argc, char **argv) {
    nt_tune_runtime(argv); // may re-execute once (nt.h): passive OpenMP waits, the OpenBLAS core
    long limit = 0, batch = 0;
    bool dump = false;
    static const struct option opts[] = {{"limit", required_argument, 0, 'l'}, {"batch", required_argument, 0, 'b'},
                                         {"dump", no_argument, 0, 'd'}, {0, 0, 0, 0}};
    int c;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        char *end = NULL;
        switch (c) {
        case 'l':
            limit = strtol(optarg, &end, 10);
            if (!*optarg || *end || limit < 0) {
                fprintf(stderr, "bench_zeroshot: --limit needs a non-negative integer, got '%s'\n", optarg);
                return 2;
            }
            break;
        case 'b':
            batch = strtol(optarg, &end, 10);
            if (!*optarg || *end || batch < 0 || batch > 64) {
                fprintf(stderr, "bench_zeroshot: --batch needs an integer 0..64, got '%s'\n", optarg);
                return 2;
            }
            break;
        case 'd': dump = true; break;
        default: return 2;
        }
    }
    if (argc - optind < 3) {
        fprintf(stderr, "usage: %s [--limit N] [--batch B] [--dump] MODEL_DIR DATA_DIR TASK...\n", argv[0]);
        return 2;
    }
    const char *model_dir = argv[optind], *data_dir = argv[optind + 1];
    nt_err err;
    nt_model *m = NULL;
    nt_tokenizer *tok = NULL;
    if (nt_model_load(&m, model_dir, &err) || nt_tokenizer_load_model(&tok, model_dir, &err)) {
        fprintf(stderr, "bench_zeroshot: %s\n", err.msg);
        nt_model_free(&m);
        return 1;
    }
    int rc = 0;
    for (int a = optind + 2; a < argc && rc == 0; a++) {
        nt_zs_result res;
        nt_zs_task t;
        if (nt_zs_task_load(argv[a], data_dir, limit, false, &t, &err)) {
            fprintf(stderr, "bench_zeroshot: %s\n", err.msg);
            rc = 1;
            break;
        }
        int src = nt_zeroshot_score_batch(m, tok, &t, 0, false, (int)batch, &res, &err);
        nt_zs_task_free(&t);
        if (src) {
            fprintf(stderr, "bench_zeroshot: %s\n", err.msg);
            rc = 1;
            break;
        }
        printf("%-15s items %5ld  requests %6ld  %8.2f s  %8.2f items/s  batch %d ", res.task, res.n_items,
               res.n_requests, res.seconds, (double)res.n_items / res.seconds, res.batch);
        for (int i = 0; i < res.n_metrics; i++)
            printf(" %s %.4f +/- %.4f", res.metrics[i].name, res.metrics[i].value, res.metrics[i].stderr_);
        printf("\n");
        if (dump)
            for (long i = 0; i < res.n_items; i++)
                for (size_t q = res.req_start[i]; q < res.req_start[i + 1]; q++)
                    printf("%zu %zu %.6f %d\n", res.item_line[i], q - res.req_start[i], res.loglik[q],
                           (int)res.greedy[q]);
        fflush(stdout);
        nt_zs_result_free(&res);
    }
    nt_tokenizer_free(&tok);
    nt_model_free(&m);
    return rc;
}
