// bench_zeroshot.c: zero-shot scoring throughput (items per second) of the C scorer (eval/zeroshot.c) on the
// first N items of each task, to set beside benchmarks/zeroshot_torch.py (the PyTorch reference on the same
// items). Times tokenizing + forward passes + scoring, not loading the model or reading the task file.
//
// usage: bench_zeroshot MODEL_DIR DATA_DIR [--limit N] [--dump] TASK...
//   --dump: also print every request's loglik and greedy flag (item line, choice, loglik, greedy).
// Output: one line per task: task, items, requests, seconds, items/s, and the metrics.
#include <stdio.h>
#include <string.h>

#include "zeroshot.h"

int main(int argc, char **argv) {
    if (argc < 4) {
        fprintf(stderr, "usage: %s MODEL_DIR DATA_DIR [--limit N] [--dump] TASK...\n", argv[0]);
        return 2;
    }
    long limit = 0;
    bool dump = false;
    nt_err err;
    nt_model *m = NULL;
    nt_tokenizer *tok = NULL;
    if (nt_model_load(&m, argv[1], &err) || nt_tokenizer_load_dir(&tok, argv[1], &err)) {
        fprintf(stderr, "bench_zeroshot: %s\n", err.msg);
        nt_model_free(&m);
        return 1;
    }
    int rc = 0;
    for (int a = 3; a < argc && rc == 0; a++) {
        if (strcmp(argv[a], "--limit") == 0 && a + 1 < argc) {
            limit = atol(argv[++a]);
            continue;
        }
        if (strcmp(argv[a], "--dump") == 0) {
            dump = true;
            continue;
        }
        nt_zs_result res;
        if (nt_zeroshot_eval(m, tok, argv[a], argv[2], limit, false, &res, &err)) {
            fprintf(stderr, "bench_zeroshot: %s\n", err.msg);
            rc = 1;
            break;
        }
        printf("%-15s items %5ld  requests %6ld  %8.2f s  %8.2f items/s ", res.task, res.n_items, res.n_requests,
               res.seconds, (double)res.n_items / res.seconds);
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
