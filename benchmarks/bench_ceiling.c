// bench_ceiling.c: how close normtweak's CPU forward is to what this machine's sgemm allows, in one run.
// Times OpenBLAS sgemm on the very products one perplexity window of the model makes (block 0's linears with
// their real weights, the lm_head, rows = the window's tokens; cblas_sgemm as transformer.c calls it: x . W^T),
// adds the causal attention's FLOPs at the best rate any sgemm here reached (a large square product
// included: the most optimistic rate, so the ceiling is an upper bound), and compares the resulting
// ceiling (the window if everything but the GEMM work were free) with normtweak's own forward of one window
// (nt_forward_hidden, then the lm_head), timed in the same process. Every time is the minimum of --reps runs.
//
// usage: bench_ceiling [--model PATH] [--seqlen N] [--reps R] [--peer-tps X]
//   --peer-tps: the peer's tokens/s for the peer_x3 row (default 215.9: transformers fp32 on SmolLM2 at 2 threads,
//   results/bench_peers_cpu.csv)
// Prints CSV on stdout, one row per part:
//   part      square (a 2048^3 sgemm: the BLAS at its best shape, not part of the window),
//             q|k|v|o|gate|up|down (one block's linear; x n_layers in the window), lm_head, attention (FLOPs
//             only: its time is flops / the best GEMM rate), ceiling (the sum: the window's GEMM-bound time),
//             forward (normtweak: nt_forward_hidden of the window + the lm_head), peer_x3 (a rate of
//             --peer-tps x 3 tokens/s, the "3x transformers" target, as a time per window)
//   m,n,k     the sgemm's shape (rows, outputs, inputs); empty for the sums
//   count     how many times a window runs it (n_layers for a block linear)
//   gflop     FLOPs per window / 1e9 (2mnk x count; attention: 2 x 2 x heads x head_dim x T(T+1)/2 x layers)
//   seconds   per window (a block linear: one call x count)
//   gflops    gflop / seconds
//   tokens_per_s  seqlen / seconds (sums only)
//   threads, cpu, commit
// Run on otherwise idle cores: the rates are wall-clock.
#define _GNU_SOURCE
#include <cblas.h>
#include <getopt.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "evaluate.h"
#include "transformer.h"

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

// Minimum over reps of one x (m, k) . w^T (n, k) product, after one untimed call (OpenBLAS's buffers, the pages).
static double time_sgemm(const float *x, const float *w, float *y, int m, int n, int k, int reps) {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, m, n, k, 1.0f, x, k, w, k, 0.0f, y, n);
    double best = 1e30;
    for (int r = 0; r < reps; r++) {
        double t0 = now_s();
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, m, n, k, 1.0f, x, k, w, k, 0.0f, y, n);
        double dt = now_s() - t0;
        if (dt < best) best = dt;
    }
    return best;
}

static void cpu_name(char *buf, size_t size) {
    snprintf(buf, size, "unknown");
    FILE *f = fopen("/proc/cpuinfo", "r");
    char line[512];
    while (f && fgets(line, sizeof line, f)) {
        if (strncmp(line, "model name", 10) == 0) {
            char *c = strchr(line, ':');
            if (c) {
                c += 1 + (c[1] == ' ');
                c[strcspn(c, "\n")] = 0;
                for (char *p = c; *p; p++)
                    if (*p == ',') *p = ' ';
                snprintf(buf, size, "%s", c);
            }
            break;
        }
    }
    if (f) fclose(f);
}

// tail: the trailing columns (threads, cpu, commit).
static void row(const char *tail, const char *part, int m, int n, int k, int count, double gflop, double s, int seqlen,
                bool sum) {
    if (m > 0) printf("%s,%d,%d,%d,%d,", part, m, n, k, count);
    else printf("%s,,,,%d,", part, count);
    printf("%.4f,%.6f,%.2f,", gflop, s, s > 0 ? gflop / s : 0.0);
    if (sum) printf("%.1f,", (double)seqlen / s);
    else printf(",");
    printf("%s\n", tail);
}

static int pos_int(const char *name, const char *s, int *out) {
    char *end = NULL;
    long v = strtol(s, &end, 10);
    if (!*s || *end || v < 1 || v > 1 << 20) {
        fprintf(stderr, "bench_ceiling: %s needs a positive integer, got '%s'\n", name, s);
        return -1;
    }
    *out = (int)v;
    return 0;
}

int main(int argc, char **argv) {
    nt_tune_runtime(argv); // may re-execute once (nt.h): passive OpenMP waits, the OpenBLAS core
    const char *model = nt_default_model();
    int seqlen = 2048, reps = 3;
    double peer_tps = 215.9; // results/bench_peers_cpu.csv: transformers fp32 on this model, 2 threads
    static const struct option opts[] = {{"model", required_argument, 0, 'm'},
                                         {"seqlen", required_argument, 0, 's'},
                                         {"reps", required_argument, 0, 'r'},
                                         {"peer-tps", required_argument, 0, 'p'},
                                         {0, 0, 0, 0}};
    int c;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 'm': model = optarg; break;
        case 's': if (pos_int("--seqlen", optarg, &seqlen)) return 2; break;
        case 'r': if (pos_int("--reps", optarg, &reps)) return 2; break;
        case 'p': peer_tps = strtod(optarg, NULL); if (!(peer_tps > 0)) { fprintf(stderr, "bench_ceiling: --peer-tps needs a positive number\n"); return 2; } break;
        default: fprintf(stderr, "usage: bench_ceiling [--model PATH] [--seqlen N] [--reps R] [--peer-tps X]\n"); return 2;
        }
    }
    nt_err err;
    nt_model *m = NULL;
    if (nt_model_load(&m, model, &err)) {
        fprintf(stderr, "bench_ceiling: %s\n", err.msg);
        return 1;
    }
    const nt_config *cf = &m->cfg;
    if (cf->max_pos > 0 && seqlen > cf->max_pos) seqlen = cf->max_pos;
    int widest = cf->ffn_dim > cf->vocab ? cf->ffn_dim : cf->vocab;
    size_t xsz = (size_t)seqlen * (size_t)(cf->ffn_dim > cf->dim ? cf->ffn_dim : cf->dim);
    float *x = malloc(xsz * sizeof(float)), *y = malloc((size_t)seqlen * (size_t)widest * sizeof(float));
    int32_t *ids = malloc((size_t)seqlen * sizeof(int32_t));
    nt_run *r = NULL;
    int rc = 1;
    if (!x || !y || !ids || nt_run_init(&r, m, seqlen, seqlen, &err)) {
        fprintf(stderr, "bench_ceiling: %s\n", x && y && ids ? err.msg : "out of memory");
        goto done;
    }
    srand(1);
    for (size_t i = 0; i < xsz; i++) x[i] = (float)rand() / (float)RAND_MAX - 0.5f;
    for (int t = 0; t < seqlen; t++) ids[t] = (int32_t)(rand() % cf->vocab);

    char cpu[256], tail[512];
    cpu_name(cpu, sizeof cpu);
    snprintf(tail, sizeof tail, "%d,%s,%s", omp_get_max_threads(), cpu, nt_build_commit());
    printf("part,m,n,k,count,gflop,seconds,gflops,tokens_per_s,threads,cpu,commit\n");

    nt_layer *ly = &m->layers[0];
    double ceil_s = 0.0, ceil_gflop = 0.0, best_rate = 0.0;
    {
        enum { SQ = 2048 };
        float *a = malloc((size_t)SQ * SQ * sizeof(float)), *b = malloc((size_t)SQ * SQ * sizeof(float)),
              *o = malloc((size_t)SQ * SQ * sizeof(float));
        if (!a || !b || !o) {
            free(a), free(b), free(o);
            fprintf(stderr, "bench_ceiling: out of memory\n");
            goto done;
        }
        for (size_t i = 0; i < (size_t)SQ * SQ; i++) a[i] = b[i] = (float)(i % 7) * 0.125f - 0.375f;
        double s = time_sgemm(a, b, o, SQ, SQ, SQ, reps), g = 2.0 * SQ * SQ * (double)SQ * 1e-9;
        best_rate = g / s;
        row(tail, "square", SQ, SQ, SQ, 1, g, s, seqlen, false);
        free(a), free(b), free(o);
    }
    for (int w = 0; w < NT_LIN_COUNT; w++) {
        const nt_linear *l = nt_layer_linear(ly, (nt_lin_id)w);
        if (!l->w) continue;
        double s = time_sgemm(x, l->w, y, seqlen, l->out, l->in, reps);
        double g = 2.0 * seqlen * l->out * (double)l->in * 1e-9;
        if (g / s > best_rate) best_rate = g / s;
        row(tail, nt_lin_name((nt_lin_id)w), seqlen, l->out, l->in, cf->n_layers, g * cf->n_layers, s * cf->n_layers,
            seqlen, false);
        ceil_s += s * cf->n_layers;
        ceil_gflop += g * cf->n_layers;
    }
    double s_head = time_sgemm(x, m->lm_head, y, seqlen, cf->vocab, cf->emb_dim, reps);
    double g_head = 2.0 * seqlen * cf->vocab * (double)cf->emb_dim * 1e-9;
    if (g_head / s_head > best_rate) best_rate = g_head / s_head;
    row(tail, "lm_head", seqlen, cf->vocab, cf->emb_dim, 1, g_head, s_head, seqlen, false);
    double g_att = 2.0 * 2.0 * cf->n_heads * cf->head_dim * 0.5 * seqlen * (seqlen + 1.0) * cf->n_layers * 1e-9;
    double s_att = g_att / best_rate;
    row(tail, "attention", 0, 0, 0, cf->n_layers, g_att, s_att, seqlen, false);
    ceil_s += s_head + s_att;
    ceil_gflop += g_head + g_att;
    row(tail, "ceiling", 0, 0, 0, 1, ceil_gflop, ceil_s, seqlen, true);

    double best_fwd = 1e30;
    for (int k = -1; k < reps; k++) { // k = -1: untimed (first touch of the run's buffers)
        nt_run_reset(r);
        double t0 = now_s();
        if (nt_forward_hidden(m, r, ids, seqlen, &err)) {
            fprintf(stderr, "bench_ceiling: %s\n", err.msg);
            goto done;
        }
        double dt = now_s() - t0;
        if (k >= 0 && dt < best_fwd) best_fwd = dt;
    }
    row(tail, "forward", 0, 0, 0, 1, ceil_gflop, best_fwd + s_head, seqlen, true);
    row(tail, "peer_x3", 0, 0, 0, 1, ceil_gflop, (double)seqlen / (3.0 * peer_tps), seqlen, true);
    rc = 0;
done:
    nt_run_free(&r);
    free(x);
    free(y);
    free(ids);
    nt_model_free(&m);
    return rc;
}
