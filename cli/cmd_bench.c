// cmd_bench.c: `normtweak bench kernels`: the quantized matrix-product kernels of kernels/ against the dense
// cuBLASLt fp16 GEMM on real layer shapes (LLaMA-7B/13B/70B, OPT-66B, BLOOM-176B) x bits x group size x M, as a
// table on stdout and a CSV for `normtweak plot --kind speedup`.
//
// Each cell: a random quantized linear in qformat.h's format (random codes, fp16 scales, zero points) is uploaded
// once per shape x bits x group; the dense fp16 weights of the baseline are its dequantization on the device, so
// the two products compute the same function and their outputs are compared (max_rel_err). Times are medians of
// --reps repetitions between CUDA events after --warmup untimed calls, the L2 flushed before each repetition
// (a memset of twice the L2). The device's copy bandwidth (a device-to-device cudaMemcpy of 1 GiB, read + write
// bytes) is measured once per run and is the 100% of pct_copy_bw.
#define _GNU_SOURCE
#include <getopt.h>
#include <math.h>
#include <string.h>

#include "cli.h"
#include "gpu.h"

typedef struct {
    const char *model, *layer;
    int N, K; // out, in
} bench_shape;

// W (out=N, in=K) of each distinct linear shape of a transformer block.
static const bench_shape g_shapes[] = {
    {"llama7b", "qkvo", 4096, 4096},      {"llama7b", "gate_up", 11008, 4096},  {"llama7b", "down", 4096, 11008},
    {"llama13b", "qkvo", 5120, 5120},     {"llama13b", "gate_up", 13824, 5120}, {"llama13b", "down", 5120, 13824},
    {"llama70b", "qo", 8192, 8192},       {"llama70b", "kv", 1024, 8192},       {"llama70b", "gate_up", 28672, 8192},
    {"llama70b", "down", 8192, 28672},    {"opt66b", "qkvo", 9216, 9216},       {"opt66b", "fc1", 36864, 9216},
    {"opt66b", "fc2", 9216, 36864},       {"bloom176b", "qkvo", 14336, 14336},  {"bloom176b", "fc1", 57344, 14336},
    {"bloom176b", "fc2", 14336, 57344},
};
#define N_SHAPES ((int)(sizeof g_shapes / sizeof g_shapes[0]))
static const char *const g_models[] = {"llama7b", "llama13b", "llama70b", "opt66b", "bloom176b"};
#define N_MODELS 5
#define MAX_LIST 32

static void bench_usage(FILE *f) {
    fprintf(f,
            "usage: normtweak bench kernels [--shapes MODELS] [--bits B,...] [--group G,...] [--m M,...]\n"
            "                               [--kernel auto|gemv|mma] [--reps N] [--warmup N] [--device I] [--out FILE.csv]\n"
            "  times Y = X . dequant(W)^T (fp16 X, packed W) against the cuBLASLt fp16 GEMM on real layer shapes\n"
            "  --shapes  models, comma-separated: llama7b,llama13b,llama70b,opt66b,bloom176b (default: all)\n"
            "  --bits    2,3,4,8 (default 2,3,4)     --group  32,64,128,-1 (default 128,-1; -1 = per channel)\n"
            "  --m       rows of X (default 1,2,4,8,16,32,64,128,256,1024)\n"
            "  --kernel  auto (default: GEMV for M <= 8, MMA above), or force gemv (M <= 8) or mma\n"
            "  --reps    timed repetitions, the median is reported (default 50); --warmup untimed calls (default 5)\n"
            "  --out     CSV file (overwritten), one row per layer x bits x group x M, columns:\n"
            "    gpu, sm_count, sm_clock_mhz, mem_clock_mhz (peak clocks, cudaDeviceGetAttribute), copy_gbps (measured\n"
            "    device-to-device copy bandwidth, read + write), commit (normtweak build), model, layer (model.proj),\n"
            "    N (out), K (in), bits, group_size (-1 per channel), M, kernel (gemv|mma), us (median microseconds),\n"
            "    tflops (2*M*N*K / time), gbps ((packed weights + scales + zeros + X + Y bytes) / time), pct_copy_bw\n"
            "    (gbps / copy_gbps * 100), cublas_us, cublas_tflops (dense fp16 cuBLASLt, fp32 compute), speedup\n"
            "    (cublas_us / us), max_rel_err (max |Y - Y_cublas| / max |Y_cublas|)\n"
            "  plot: normtweak plot FILE.csv --kind speedup --x M --y speedup --series bits,group_size --panel layer\n"
            "without a CUDA device: exits 1 with \"normtweak bench: no CUDA device (...)\"\n");
}

// "1,2,4" into out[]; each value checked by ok(); returns the count or -1 (message printed).
static int parse_list(const char *opt, const char *s, int *out, bool (*ok)(int), const char *hint) {
    int n = 0;
    char buf[512];
    snprintf(buf, sizeof buf, "%s", s);
    for (char *save = NULL, *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        char *end = NULL;
        long v = strtol(t, &end, 10);
        if (end == t || *end || v < -1000000 || v > 1000000 || !ok((int)v) || n >= MAX_LIST) {
            fprintf(stderr, "normtweak bench: %s '%s': expected %s\n", opt, s, hint);
            return -1;
        }
        out[n++] = (int)v;
    }
    if (n == 0) {
        fprintf(stderr, "normtweak bench: %s is empty\n", opt);
        return -1;
    }
    return n;
}
static bool ok_bits(int v) { return v == 2 || v == 3 || v == 4 || v == 8; }
static bool ok_group(int v) { return v == -1 || v == 32 || v == 64 || v == 128; }
static bool ok_m(int v) { return v >= 1 && v <= 65536; }

// A CSV field, quoted when it holds a comma, a quote or a newline.
static void csv_str(FILE *f, const char *s) {
    if (!strpbrk(s, ",\"\n")) {
        fputs(s, f);
        return;
    }
    fputc('"', f);
    for (; *s; s++) {
        if (*s == '"') fputc('"', f);
        fputc(*s, f);
    }
    fputc('"', f);
}

static uint64_t g_rng = 0x9e3779b97f4a7c15ull;
static uint32_t rnd_u32(void) {
    g_rng ^= g_rng >> 12;
    g_rng ^= g_rng << 25;
    g_rng ^= g_rng >> 27;
    return (uint32_t)((g_rng * 0x2545f4914f6cdd1dull) >> 32);
}
static float rnd_unif(void) { return ((float)(rnd_u32() >> 8) + 0.5f) / 16777216.0f; }

// A random quantized linear: every bit pattern of qweight is a valid code stream, so random words will do.
static nt_qlinear *random_qlinear(int N, int K, int bits, int group, nt_err *err) {
    nt_qlinear *q = NULL;
    if (nt_qlinear_alloc(&q, N, K, bits, group, false, false, err)) return NULL;
    size_t nw = (size_t)nt_qpacks(K) * bits * N, ng = (size_t)q->n_groups * N;
    for (size_t i = 0; i < nw; i++) q->qweight[i] = rnd_u32();
    int maxq = (1 << bits) - 1;
    for (size_t i = 0; i < ng; i++) {
        q->scales[i] = nt_f32_to_f16(0.005f + 0.015f * rnd_unif());
        q->zeros[i] = (uint8_t)(rnd_u32() % (uint32_t)(maxq + 1));
    }
    return q;
}

typedef struct {
    nt_gpu_ctx *ctx;
    const nt_gpu_qlinear *w;
    const uint16_t *X;
    uint16_t *Y;
    int M;
    nt_qkernel kernel;
} qarg;
static int launch_q(void *arg, nt_err *err) {
    qarg *a = arg;
    return nt_gpu_qgemm(a->ctx, a->w, a->X, a->Y, a->M, a->kernel, err);
}

typedef struct {
    nt_gpu_ctx *ctx;
    const uint16_t *X, *W;
    uint16_t *Y;
    int M, N, K;
} darg;
static int launch_d(void *arg, nt_err *err) {
    darg *a = arg;
    return nt_gpu_gemm_f16(a->ctx, a->X, a->W, a->Y, a->M, a->N, a->K, err);
}

// max |a - b| / max |b| over n fp16 values.
static double rel_err(const uint16_t *a, const uint16_t *b, size_t n) {
    double maxd = 0.0, maxb = 0.0;
    for (size_t i = 0; i < n; i++) {
        double x = nt_f16_to_f32(a[i]), y = nt_f16_to_f32(b[i]);
        maxd = isfinite(x) ? fmax(maxd, fabs(x - y)) : INFINITY;
        maxb = fmax(maxb, fabs(y));
    }
    return maxb > 0.0 ? maxd / maxb : maxd;
}

typedef struct {
    int bits[MAX_LIST], n_bits, groups[MAX_LIST], n_groups, ms[MAX_LIST], n_ms;
    bool model_on[N_MODELS];
    nt_qkernel kernel;
    int reps, warmup, device;
    const char *out;
} bench_opts;

// One shape x bits x group: upload, then every M. Returns 0, or -1 with err (the run stops).
static int bench_cell(nt_gpu_ctx *ctx, const bench_opts *o, const bench_shape *sh, int bits, int group,
                      double copy_gbps, FILE *csv, nt_err *err) {
    const nt_gpu_info *info = nt_gpu_ctx_info(ctx);
    int mmax = 0;
    for (int i = 0; i < o->n_ms; i++) mmax = o->ms[i] > mmax ? o->ms[i] : mmax;
    const int N = sh->N, K = sh->K;
    nt_qlinear *q = random_qlinear(N, K, bits, group, err);
    if (!q) return -1;
    nt_gpu_qlinear *dw = NULL;
    void *dX = NULL, *dW = NULL, *dYq = NULL, *dYd = NULL;
    uint16_t *X = malloc((size_t)mmax * K * 2), *Yq = malloc((size_t)mmax * N * 2), *Yd = malloc((size_t)mmax * N * 2);
    int rc = -1;
    if (!X || !Yq || !Yd) {
        nt_fail(err, "out of memory");
        goto done;
    }
    for (size_t i = 0; i < (size_t)mmax * K; i++) X[i] = nt_f32_to_f16(2.0f * rnd_unif() - 1.0f);
    if (nt_gpu_qlinear_upload(&dw, q, err) || nt_gpu_malloc(&dX, (size_t)mmax * K * 2, err) ||
        nt_gpu_malloc(&dW, (size_t)N * K * 2, err) || nt_gpu_malloc(&dYq, (size_t)mmax * N * 2, err) ||
        nt_gpu_malloc(&dYd, (size_t)mmax * N * 2, err) || nt_gpu_upload(dX, X, (size_t)mmax * K * 2, err) ||
        nt_gpu_qdequantize(ctx, dw, dW, err) || nt_gpu_sync(err))
        goto done;
    for (int i = 0; i < o->n_ms; i++) {
        const int M = o->ms[i];
        nt_qkernel kernel = o->kernel == NT_QKERNEL_AUTO ? nt_qkernel_pick(M) : o->kernel;
        if (kernel == NT_QKERNEL_GEMV && M > NT_QGEMV_MAX_M) continue; // forced GEMV: only its rows
        qarg qa = {ctx, dw, dX, dYq, M, kernel};
        darg da = {ctx, dX, dW, dYd, M, N, K};
        double us = NAN, cus = NAN;
        if (nt_gpu_time(ctx, launch_q, &qa, o->warmup, o->reps, true, &us, err) ||
            nt_gpu_time(ctx, launch_d, &da, o->warmup, o->reps, true, &cus, err) ||
            nt_gpu_download(Yq, dYq, (size_t)M * N * 2, err) || nt_gpu_download(Yd, dYd, (size_t)M * N * 2, err))
            goto done;
        double flop = 2.0 * M * N * K;
        double bytes = (double)nt_gpu_qlinear_weight_bytes(dw) + 2.0 * M * K + 2.0 * M * N;
        double tflops = flop / (us * 1e-6) / 1e12, gbps = bytes / (us * 1e-6) / 1e9;
        double ctflops = flop / (cus * 1e-6) / 1e12, speedup = cus / us, err_rel = rel_err(Yq, Yd, (size_t)M * N);
        char layer[64];
        snprintf(layer, sizeof layer, "%s.%s", sh->model, sh->layer);
        printf("%-18s %6d %6d %2d %5d %5d %-4s %10.2f %7.2f %8.1f %6.1f%% %10.2f %7.2f %6.2fx %9.2e\n", layer, N, K,
               bits, group, M, nt_qkernel_name(kernel), us, tflops, gbps, 100.0 * gbps / copy_gbps, cus, ctflops,
               speedup, err_rel);
        fflush(stdout);
        if (csv) {
            csv_str(csv, info->name);
            fprintf(csv, ",%d,%d,%d,%.1f,", info->sm_count, info->sm_clock_mhz, info->mem_clock_mhz, copy_gbps);
            csv_str(csv, nt_build_commit());
            fprintf(csv, ",%s,%s,%d,%d,%d,%d,%d,%s,%.3f,%.4f,%.2f,%.2f,%.3f,%.4f,%.4f,%.3g\n", sh->model, layer, N, K,
                    bits, group, M, nt_qkernel_name(kernel), us, tflops, gbps, 100.0 * gbps / copy_gbps, cus, ctflops,
                    speedup, err_rel);
            fflush(csv);
        }
    }
    rc = 0;
done:
    nt_gpu_free(&dX);
    nt_gpu_free(&dW);
    nt_gpu_free(&dYq);
    nt_gpu_free(&dYd);
    nt_gpu_qlinear_free(&dw);
    nt_qlinear_free(&q);
    free(X);
    free(Yq);
    free(Yd);
    return rc;
}

int nt_cmd_bench(int argc, char **argv) {
    bench_opts o = {.bits = {2, 3, 4}, .n_bits = 3, .groups = {128, -1}, .n_groups = 2,
                    .ms = {1, 2, 4, 8, 16, 32, 64, 128, 256, 1024}, .n_ms = 10,
                    .kernel = NT_QKERNEL_AUTO, .reps = 50, .warmup = 5, .device = 0, .out = NULL};
    for (int i = 0; i < N_MODELS; i++) o.model_on[i] = true;
    static const struct option longopts[] = {
        {"shapes", required_argument, 0, 's'}, {"bits", required_argument, 0, 'b'},
        {"group", required_argument, 0, 'g'},  {"m", required_argument, 0, 'm'},
        {"kernel", required_argument, 0, 'k'}, {"reps", required_argument, 0, 'r'},
        {"warmup", required_argument, 0, 'w'}, {"device", required_argument, 0, 'd'},
        {"out", required_argument, 0, 'o'},    {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0}};
    optind = 1;
    opterr = 0;
    int c;
    while ((c = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
        char *end = NULL;
        long v = 0;
        switch (c) {
        case 's': {
            for (int i = 0; i < N_MODELS; i++) o.model_on[i] = false;
            char buf[512];
            snprintf(buf, sizeof buf, "%s", optarg);
            for (char *save = NULL, *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
                int found = -1;
                for (int i = 0; i < N_MODELS; i++)
                    if (strcmp(t, g_models[i]) == 0) found = i;
                if (found < 0) {
                    fprintf(stderr, "normtweak bench: --shapes: unknown model '%s' (llama7b, llama13b, llama70b, "
                                    "opt66b, bloom176b)\n", t);
                    return 2;
                }
                o.model_on[found] = true;
            }
            break;
        }
        case 'b':
            if ((o.n_bits = parse_list("--bits", optarg, o.bits, ok_bits, "bit widths among 2,3,4,8")) < 0) return 2;
            break;
        case 'g':
            if ((o.n_groups = parse_list("--group", optarg, o.groups, ok_group, "group sizes among 32,64,128,-1")) < 0)
                return 2;
            break;
        case 'm':
            if ((o.n_ms = parse_list("--m", optarg, o.ms, ok_m, "row counts 1..65536")) < 0) return 2;
            break;
        case 'k':
            if (strcmp(optarg, "auto") == 0) o.kernel = NT_QKERNEL_AUTO;
            else if (strcmp(optarg, "gemv") == 0) o.kernel = NT_QKERNEL_GEMV;
            else if (strcmp(optarg, "mma") == 0) o.kernel = NT_QKERNEL_MMA;
            else {
                fprintf(stderr, "normtweak bench: --kernel %s: expected auto, gemv or mma\n", optarg);
                return 2;
            }
            break;
        case 'r':
        case 'w':
        case 'd':
            v = strtol(optarg, &end, 10);
            if (end == optarg || *end || v < (c == 'r') || v > 100000) {
                fprintf(stderr, "normtweak bench: --%s '%s': expected a whole number%s\n",
                        c == 'r' ? "reps" : c == 'w' ? "warmup" : "device", optarg, c == 'r' ? " >= 1" : " >= 0");
                return 2;
            }
            if (c == 'r') o.reps = (int)v;
            else if (c == 'w') o.warmup = (int)v;
            else o.device = (int)v;
            break;
        case 'o': o.out = optarg; break;
        case 'h': bench_usage(stdout); return 0;
        case ':': fprintf(stderr, "normtweak bench: %s needs a value\n", argv[optind - 1]); return 2;
        default:
            fprintf(stderr, "normtweak bench: unknown option '%s'\n", argv[optind - 1]);
            bench_usage(stderr);
            return 2;
        }
    }
    if (optind >= argc) {
        fprintf(stderr, "normtweak bench: what to benchmark? (normtweak bench kernels)\n");
        bench_usage(stderr);
        return 2;
    }
    if (strcmp(argv[optind], "kernels") != 0 || optind + 1 < argc) {
        fprintf(stderr, "normtweak bench: unknown benchmark '%s' (there is: kernels)\n", argv[optind + (strcmp(argv[optind], "kernels") == 0)]);
        return 2;
    }

    nt_err err = {0};
    int n_dev = nt_gpu_device_count(&err);
    if (n_dev < 0) {
        fprintf(stderr, "normtweak bench: no CUDA device (%s)\n", err.msg);
        return 1;
    }
    if (o.device >= n_dev) {
        fprintf(stderr, "normtweak bench: --device %d: there are %d devices\n", o.device, n_dev);
        return 2;
    }
    nt_gpu_ctx *ctx = NULL;
    if (nt_gpu_ctx_create(&ctx, o.device, &err)) {
        fprintf(stderr, "normtweak bench: %s\n", err.msg);
        return 1;
    }
    const nt_gpu_info *info = nt_gpu_ctx_info(ctx);
    double copy_gbps = NAN;
    size_t copy_bytes = (size_t)1 << 30;
    if (copy_bytes > info->mem_bytes / 8) copy_bytes = info->mem_bytes / 8;
    if (nt_gpu_copy_gbps(ctx, copy_bytes, 20, &copy_gbps, &err)) {
        fprintf(stderr, "normtweak bench: %s\n", err.msg);
        nt_gpu_ctx_free(&ctx);
        return 1;
    }
    printf("# %s: %d SMs, SM clock %d MHz, memory clock %d MHz, L2 %zu MiB, copy bandwidth %.0f GB/s; normtweak %s\n",
           info->name, info->sm_count, info->sm_clock_mhz, info->mem_clock_mhz, info->l2_bytes >> 20, copy_gbps,
           nt_build_commit());
    printf("%-18s %6s %6s %2s %5s %5s %-4s %10s %7s %8s %7s %10s %7s %7s %9s\n", "layer", "N", "K", "b", "group", "M",
           "kern", "us", "TFLOP/s", "GB/s", "%copy", "cublas_us", "TFLOP/s", "speedup", "rel_err");
    FILE *csv = NULL;
    if (o.out) {
        csv = fopen(o.out, "w");
        if (!csv) {
            fprintf(stderr, "normtweak bench: %s: cannot write\n", o.out);
            nt_gpu_ctx_free(&ctx);
            return 1;
        }
        fputs("gpu,sm_count,sm_clock_mhz,mem_clock_mhz,copy_gbps,commit,model,layer,N,K,bits,group_size,M,kernel,us,"
              "tflops,gbps,pct_copy_bw,cublas_us,cublas_tflops,speedup,max_rel_err\n",
              csv);
    }
    int rc = 0;
    for (int s = 0; s < N_SHAPES && !rc; s++) {
        bool on = false;
        for (int i = 0; i < N_MODELS; i++) on |= o.model_on[i] && strcmp(g_models[i], g_shapes[s].model) == 0;
        if (!on) continue;
        for (int b = 0; b < o.n_bits && !rc; b++)
            for (int g = 0; g < o.n_groups && !rc; g++)
                if (bench_cell(ctx, &o, &g_shapes[s], o.bits[b], o.groups[g], copy_gbps, csv, &err)) {
                    fprintf(stderr, "normtweak bench: %s.%s %d-bit group %d: %s\n", g_shapes[s].model,
                            g_shapes[s].layer, o.bits[b], o.groups[g], err.msg);
                    rc = 1;
                }
    }
    if (csv && fclose(csv) != 0 && !rc) {
        fprintf(stderr, "normtweak bench: %s: write failed\n", o.out);
        rc = 1;
    }
    nt_gpu_ctx_free(&ctx);
    return rc;
}
