// cmd_bench.c: `normtweak bench kernels`: the quantized matrix-product kernels of kernels/ against the dense
// cuBLASLt fp16 GEMM on real layer shapes (LLaMA-7B/13B/70B, OPT-66B, BLOOM-176B) x bits x group size x variant
// (asymmetric, symmetric, act-order) x M, as a table on stdout and a CSV (libcsv) for `normtweak plot --kind
// speedup`.
//
// Each cell: a random quantized linear in qformat.h's format (random codes, fp16 scales, zero points; act-order:
// a random permutation and its groups) is uploaded once per shape x bits x group x variant; the dense fp16
// weights of the baseline are its dequantization on the device, so the two products compute the same function
// and their outputs are compared (max_rel_err). Timing (nt_gpu_time): at least 100 ms of warm-up, then batches of
// calls of ~0.5 ms each between CUDA events, the median (and the fastest and slowest batch) per call. The calls
// rotate through copies of the weights whose total exceeds twice the L2, so no call finds its weights cached
// (X and Y stay: activations are hot in a real forward pass). The clocks the SMs and the memory actually ran at
// are read from NVML right after each kernel's timing. The device's copy bandwidth (a streaming copy kernel over
// 1 GiB, read + write bytes) is measured once per run and is the 100% of pct_copy_bw. The CSV is written whole or not at all (the table on stdout shows every row as it is
// measured).
#define _GNU_SOURCE
#include <csv.h>
#include <errno.h>
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
            "                               [--variants asym,sym,act] [--kernel auto|gemv|mma|dense] [--batches N]\n"
            "                               [--abits 16|8|16,8] [--warmup-ms MS] [--device I] [--out FILE.csv]\n"
            "  times Y = X . dequant(W)^T (fp16 X, packed W) against the cuBLASLt fp16 GEMM on real layer shapes\n"
            "  --shapes    models, comma-separated: llama7b,llama13b,llama70b,opt66b,bloom176b (default: all)\n"
            "  --bits      2,3,4,8 (default 2,3,4)     --group  32,64,128,-1 (default 128,-1; -1 = per channel)\n"
            "  --m         rows of X (default 1,2,4,8,16,32,64,128,256,512,1024,4096)\n"
            "  --variants  asym (zero points), sym (symmetric), act (act-order: permuted groups) (default all)\n"
            "  --abits     16 (default: weight-only, fp16 X), 8 (W8A8: int8 X and W, per-token and per-channel\n"
            "              scales, the cuBLASLt IMMA product; kernel imma, bits 8, group -1), or 16,8\n"
            "  --kernel    auto (default: GEMV for M <= 8, MMA below 512, DENSE from 512), or force one\n"
            "  --batches   timed batches (~0.5 ms of calls each), the median is reported (default 20)\n"
            "  --warmup-ms warm-up before each timing (default 100)\n"
            "  --out       CSV file (overwritten), one row per layer x bits x group x variant x M, columns:\n"
            "    gpu, sm_count, peak_sm_clock_mhz, peak_mem_clock_mhz (cudaDeviceGetAttribute), sm_clock_mhz,\n"
            "    mem_clock_mhz (the clocks NVML reports right after the kernel's timing; empty without NVML),\n"
            "    copy_gbps (measured copy-kernel bandwidth, read + write), commit, model, layer (model.proj), N (out),\n"
            "    K (in), bits, abits (16: fp16 X; 8: W8A8), group_size (-1 per channel), sym (0/1), act_order (0/1), M, kernel\n"
            "    (gemv|mma|dense|imma), us (median microseconds per call), us_min, us_max (fastest, slowest batch),\n"
            "    batch (calls per batch), copies (weight copies rotated), tflops (2*M*N*K / time), gbps ((packed\n"
            "    weights + scales + zeros + X + Y bytes) / time), pct_copy_bw (gbps / copy_gbps * 100), cublas_us,\n"
            "    cublas_us_min, cublas_us_max, cublas_tflops (dense fp16 cuBLASLt, fp32 compute), speedup\n"
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
static bool ok_abits(int v) { return v == 16 || v == 8; }
static bool ok_m(int v) { return v >= 1 && v <= 65536; }

// A text field of the CSV, quoted by libcsv (always: the names are free text), then a comma.
static void csv_text(FILE *f, const char *s) {
    csv_fwrite(f, s, strlen(s));
    fputc(',', f);
}

static uint64_t g_rng = 0x9e3779b97f4a7c15ull;
static uint32_t rnd_u32(void) {
    g_rng ^= g_rng >> 12;
    g_rng ^= g_rng << 25;
    g_rng ^= g_rng >> 27;
    return (uint32_t)((g_rng * 0x2545f4914f6cdd1dull) >> 32);
}
static float rnd_unif(void) { return ((float)(rnd_u32() >> 8) + 0.5f) / 16777216.0f; }

enum { VAR_ASYM, VAR_SYM, VAR_ACT, N_VARIANTS };
static const char *const g_variants[N_VARIANTS] = {"asym", "sym", "act"};

// A random quantized linear: every bit pattern of qweight is a valid code stream, so random words will do. act:
// asymmetric, columns quantized in a random order, groups formed in that order (g_idx[perm[j]] = j / group).
static nt_qlinear *random_qlinear(int N, int K, int bits, int group, int variant, nt_err *err) {
    nt_qlinear *q = NULL;
    bool sym = variant == VAR_SYM, act = variant == VAR_ACT;
    if (nt_qlinear_alloc(&q, N, K, bits, group, sym, act, err)) return NULL;
    size_t nw = (size_t)nt_qpacks(K) * bits * N, ng = (size_t)q->n_groups * N;
    for (size_t i = 0; i < nw; i++) q->qweight[i] = rnd_u32();
    int maxq = (1 << bits) - 1;
    for (size_t i = 0; i < ng; i++) {
        q->scales[i] = nt_f32_to_f16(0.005f + 0.015f * rnd_unif());
        if (q->zeros) q->zeros[i] = (uint8_t)(rnd_u32() % (uint32_t)(maxq + 1));
    }
    if (act) {
        for (int i = K - 1; i > 0; i--) {
            int j = (int)(rnd_u32() % (uint32_t)(i + 1)), t = q->perm[i];
            q->perm[i] = q->perm[j];
            q->perm[j] = t;
        }
        for (int j = 0; j < K; j++) q->g_idx[q->perm[j]] = group > 0 ? j / group : 0;
    }
    return q;
}

typedef struct {
    nt_gpu_ctx *ctx;
    nt_gpu_qlinear **w; // (copies)
    const uint16_t *X;
    uint16_t *Y;
    int M;
    nt_qkernel kernel;
} qarg;
static int launch_q(void *arg, int copy, nt_err *err) {
    qarg *a = arg;
    return nt_gpu_qgemm(a->ctx, a->w[copy], a->X, a->Y, a->M, a->kernel, err);
}

typedef struct {
    nt_gpu_ctx *ctx;
    void **W; // (copies) (N, K) fp16
    const uint16_t *X;
    uint16_t *Y;
    int M, N, K;
} darg;
static int launch_d(void *arg, int copy, nt_err *err) {
    darg *a = arg;
    return nt_gpu_gemm_f16(a->ctx, a->X, a->W[copy], a->Y, a->M, a->N, a->K, err);
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
    int bits[MAX_LIST], n_bits, groups[MAX_LIST], n_groups, ms[MAX_LIST], n_ms, abits[2], n_abits;
    bool model_on[N_MODELS], variant_on[N_VARIANTS];
    nt_qkernel kernel;
    int batches, device;
    double warmup_ms;
    const char *out;
} bench_opts;

// Copies of `bytes` each that together exceed twice the L2 (so a rotation never finds its data cached), at least
// one, at most 64, and at most a quarter of the device memory.
static int rotation(const nt_gpu_info *info, size_t bytes) {
    size_t n = 2 * info->l2_bytes / (bytes ? bytes : 1) + 1;
    size_t cap = bytes ? info->mem_bytes / 4 / bytes : 64;
    if (n > cap) n = cap;
    if (n > 64) n = 64;
    return n < 1 ? 1 : (int)n;
}

// A number field then a comma (an empty field for NaN / negative "unknown").
static void csv_num(FILE *f, const char *fmt, double v) {
    if (!isnan(v)) fprintf(f, fmt, v);
    fputc(',', f);
}

// One measured row: the table line on stdout and, with csv, the CSV line.
typedef struct {
    const bench_shape *sh;
    int N, K, bits, abits, group, variant, M;
    const char *kernel;
    const nt_gpu_timing *t; // the kernel's timing
    int copies;
    double bytes;           // the bytes one call moves (weights, scales, zeros, X, Y)
    const nt_gpu_timing *d; // the dense fp16 baseline's
    double rel_err;
    int sm_mhz, mem_mhz;    // -1: unknown
} bench_row;

static void put_row(const nt_gpu_info *info, double copy_gbps, const bench_row *r, FILE *csv) {
    double flop = 2.0 * r->M * r->N * r->K;
    double tflops = flop / (r->t->us * 1e-6) / 1e12, gbps = r->bytes / (r->t->us * 1e-6) / 1e9;
    double ctflops = flop / (r->d->us * 1e-6) / 1e12, speedup = r->d->us / r->t->us;
    char layer[64], bits[16];
    snprintf(layer, sizeof layer, "%s.%s", r->sh->model, r->sh->layer);
    if (r->abits < 16) snprintf(bits, sizeof bits, "%da%d", r->bits, r->abits);
    else snprintf(bits, sizeof bits, "%d", r->bits);
    printf("%-18s %6d %6d %4s %5d %-4s %5d %-5s %10.2f %7.2f %8.1f %6.1f%% %10.2f %7.2f %6.2fx %9.2e\n", layer, r->N,
           r->K, bits, r->group, g_variants[r->variant], r->M, r->kernel, r->t->us, tflops, gbps,
           100.0 * gbps / copy_gbps, r->d->us, ctflops, speedup, r->rel_err);
    fflush(stdout);
    if (!csv) return;
    csv_text(csv, info->name);
    fprintf(csv, "%d,%d,%d,", info->sm_count, info->sm_clock_mhz, info->mem_clock_mhz);
    csv_num(csv, "%.0f", r->sm_mhz >= 0 ? r->sm_mhz : NAN);
    csv_num(csv, "%.0f", r->mem_mhz >= 0 ? r->mem_mhz : NAN);
    csv_num(csv, "%.1f", copy_gbps);
    csv_text(csv, nt_build_commit());
    csv_text(csv, r->sh->model);
    csv_text(csv, layer);
    fprintf(csv, "%d,%d,%d,%d,%d,%d,%d,%d,", r->N, r->K, r->bits, r->abits, r->group, r->variant == VAR_SYM,
            r->variant == VAR_ACT, r->M);
    csv_text(csv, r->kernel);
    fprintf(csv, "%.3f,%.3f,%.3f,%d,%d,%.4f,%.2f,%.2f,%.3f,%.3f,%.3f,%.4f,%.4f,%.3g\n", r->t->us, r->t->us_min,
            r->t->us_max, r->t->batch, r->copies, tflops, gbps, 100.0 * gbps / copy_gbps, r->d->us, r->d->us_min,
            r->d->us_max, ctflops, speedup, r->rel_err);
    fflush(csv);
}

// One shape x bits x group x variant: upload (and the rotation's copies), then every M. Returns 0, or -1 with err.
static int bench_cell(nt_gpu_ctx *ctx, const bench_opts *o, const bench_shape *sh, int bits, int group, int variant,
                      double copy_gbps, FILE *csv, nt_err *err) {
    const nt_gpu_info *info = nt_gpu_ctx_info(ctx);
    int mmax = 0;
    for (int i = 0; i < o->n_ms; i++) mmax = o->ms[i] > mmax ? o->ms[i] : mmax;
    const int N = sh->N, K = sh->K;
    nt_qlinear *q = random_qlinear(N, K, bits, group, variant, err);
    if (!q) return -1;
    nt_gpu_qlinear *qw[64] = {NULL};
    void *dw[64] = {NULL}, *dX = NULL, *dYq = NULL, *dYd = NULL;
    int nq = 0, nd = 0, rc = -1;
    uint16_t *X = malloc((size_t)mmax * K * 2), *Yq = malloc((size_t)mmax * N * 2), *Yd = malloc((size_t)mmax * N * 2);
    if (!X || !Yq || !Yd) {
        nt_fail(err, "out of memory");
        goto done;
    }
    for (size_t i = 0; i < (size_t)mmax * K; i++) X[i] = nt_f32_to_f16(2.0f * rnd_unif() - 1.0f);
    if (nt_gpu_qlinear_upload(&qw[0], q, err)) goto done;
    nq = 1;
    const int want_q = rotation(info, nt_gpu_qlinear_weight_bytes(qw[0]));
    const int want_d = rotation(info, (size_t)N * K * 2);
    for (; nq < want_q; nq++)
        if (nt_gpu_qlinear_clone(&qw[nq], qw[0], err)) goto done;
    for (; nd < want_d; nd++) // the dense weights of each copy: its own dequantization
        if (nt_gpu_malloc(&dw[nd], (size_t)N * K * 2, err) || nt_gpu_qdequantize(ctx, qw[nd % nq], dw[nd], err))
            goto done;
    if (nt_gpu_malloc(&dX, (size_t)mmax * K * 2, err) || nt_gpu_malloc(&dYq, (size_t)mmax * N * 2, err) ||
        nt_gpu_malloc(&dYd, (size_t)mmax * N * 2, err) || nt_gpu_upload(dX, X, (size_t)mmax * K * 2, err) ||
        nt_gpu_sync(err))
        goto done;
    for (int i = 0; i < o->n_ms; i++) {
        const int M = o->ms[i];
        nt_qkernel kernel = o->kernel == NT_QKERNEL_AUTO ? nt_qkernel_pick(M) : o->kernel;
        if (kernel == NT_QKERNEL_GEMV && M > NT_QGEMV_MAX_M) continue; // forced GEMV: only its rows
        qarg qa = {ctx, qw, dX, dYq, M, kernel};
        darg da = {ctx, dw, dX, dYd, M, N, K};
        nt_gpu_timing tq, td;
        int sm_mhz = -1, mem_mhz = -1;
        nt_err clk_err = {0};
        if (nt_gpu_time(ctx, launch_q, &qa, nq, o->warmup_ms, o->batches, &tq, err)) goto done;
        nt_gpu_clocks_now(info, &sm_mhz, &mem_mhz, &clk_err); // -1 without NVML: an empty field
        if (nt_gpu_time(ctx, launch_d, &da, nd, o->warmup_ms, o->batches, &td, err) ||
            nt_gpu_download(Yq, dYq, (size_t)M * N * 2, err) || nt_gpu_download(Yd, dYd, (size_t)M * N * 2, err))
            goto done;
        double bytes = (double)nt_gpu_qlinear_weight_bytes(qw[0]) + 2.0 * M * K + 2.0 * M * N;
        bench_row row = {sh, N, K, bits, 16, group, variant, M, nt_qkernel_name(kernel), &tq, nq, bytes, &td,
                         rel_err(Yq, Yd, (size_t)M * N), sm_mhz, mem_mhz};
        put_row(info, copy_gbps, &row, csv);
    }
    rc = 0;
done:
    nt_gpu_free(&dX);
    nt_gpu_free(&dYq);
    nt_gpu_free(&dYd);
    for (int i = 0; i < 64; i++) {
        nt_gpu_qlinear_free(&qw[i]);
        nt_gpu_free(&dw[i]);
    }
    nt_qlinear_free(&q);
    free(X);
    free(Yq);
    free(Yd);
    return rc;
}

typedef struct {
    nt_gpu_ctx *ctx;
    void **W; // (copies) (N, K) int8
    const int8_t *X;
    const float *sx, *sw;
    float *Y;
    int M, N, K;
} iarg;
static int launch_i8(void *arg, int copy, nt_err *err) {
    iarg *a = arg;
    return nt_gpu_gemm_i8(a->ctx, a->X, a->W[copy], a->sx, a->sw, a->Y, a->M, a->N, a->K, err);
}

// One shape at W8A8 (abits 8): the int8 x int8 -> int32 IMMA product with its dequantizing kernel
// (nt_gpu_gemm_i8: per-token scales sx, per-channel scales sw, fp32 Y) against the dense fp16 GEMM of the same
// function. Codes are random in -127..127 and every scale 1/128, so X = sx Xq and W = sw Wq are exact in fp16 and
// the dense product differs only by its fp32 accumulation and fp16 output. Returns 0, or -1 with err.
static int bench_cell_i8(nt_gpu_ctx *ctx, const bench_opts *o, const bench_shape *sh, double copy_gbps, FILE *csv,
                         nt_err *err) {
    const nt_gpu_info *info = nt_gpu_ctx_info(ctx);
    int mmax = 0;
    for (int i = 0; i < o->n_ms; i++) mmax = o->ms[i] > mmax ? o->ms[i] : mmax;
    const int N = sh->N, K = sh->K;
    void *wi[64] = {NULL}, *wd[64] = {NULL}, *dXq = NULL, *dX = NULL, *dsx = NULL, *dsw = NULL, *dYi = NULL, *dYd = NULL;
    int rc = -1;
    const int n_i = rotation(info, (size_t)N * K), n_d = rotation(info, (size_t)N * K * 2);
    int8_t *Wq = malloc((size_t)N * K), *Xq = malloc((size_t)mmax * K);
    uint16_t *W16 = malloc((size_t)N * K * 2), *X16 = malloc((size_t)mmax * K * 2), *Yd = malloc((size_t)mmax * N * 2),
             *Yi16 = malloc((size_t)mmax * N * 2);
    float *sx = malloc((size_t)mmax * sizeof(float)), *sw = malloc((size_t)N * sizeof(float)),
          *Yi = malloc((size_t)mmax * N * sizeof(float));
    if (!Wq || !Xq || !W16 || !X16 || !Yd || !Yi16 || !sx || !sw || !Yi) {
        nt_fail(err, "out of memory");
        goto done;
    }
    for (size_t i = 0; i < (size_t)N * K; i++) {
        Wq[i] = (int8_t)((int)(rnd_u32() % 255) - 127);
        W16[i] = nt_f32_to_f16((float)Wq[i] / 128.0f);
    }
    for (size_t i = 0; i < (size_t)mmax * K; i++) {
        Xq[i] = (int8_t)((int)(rnd_u32() % 255) - 127);
        X16[i] = nt_f32_to_f16((float)Xq[i] / 128.0f);
    }
    for (int i = 0; i < mmax; i++) sx[i] = 1.0f / 128.0f;
    for (int i = 0; i < N; i++) sw[i] = 1.0f / 128.0f;
    for (int c = 0; c < n_i; c++)
        if (nt_gpu_malloc(&wi[c], (size_t)N * K, err) || nt_gpu_upload(wi[c], Wq, (size_t)N * K, err)) goto done;
    for (int c = 0; c < n_d; c++)
        if (nt_gpu_malloc(&wd[c], (size_t)N * K * 2, err) || nt_gpu_upload(wd[c], W16, (size_t)N * K * 2, err))
            goto done;
    if (nt_gpu_malloc(&dXq, (size_t)mmax * K, err) || nt_gpu_malloc(&dX, (size_t)mmax * K * 2, err) ||
        nt_gpu_malloc(&dsx, (size_t)mmax * 4, err) || nt_gpu_malloc(&dsw, (size_t)N * 4, err) ||
        nt_gpu_malloc(&dYi, (size_t)mmax * N * 4, err) || nt_gpu_malloc(&dYd, (size_t)mmax * N * 2, err) ||
        nt_gpu_upload(dXq, Xq, (size_t)mmax * K, err) || nt_gpu_upload(dX, X16, (size_t)mmax * K * 2, err) ||
        nt_gpu_upload(dsx, sx, (size_t)mmax * 4, err) || nt_gpu_upload(dsw, sw, (size_t)N * 4, err) || nt_gpu_sync(err))
        goto done;
    for (int i = 0; i < o->n_ms; i++) {
        const int M = o->ms[i];
        iarg ia = {ctx, wi, dXq, dsx, dsw, dYi, M, N, K};
        darg da = {ctx, wd, dX, dYd, M, N, K};
        nt_gpu_timing ti, td;
        int sm_mhz = -1, mem_mhz = -1;
        nt_err clk_err = {0};
        if (nt_gpu_time(ctx, launch_i8, &ia, n_i, o->warmup_ms, o->batches, &ti, err)) goto done;
        nt_gpu_clocks_now(info, &sm_mhz, &mem_mhz, &clk_err);
        if (nt_gpu_time(ctx, launch_d, &da, n_d, o->warmup_ms, o->batches, &td, err) ||
            nt_gpu_download(Yi, dYi, (size_t)M * N * 4, err) || nt_gpu_download(Yd, dYd, (size_t)M * N * 2, err))
            goto done;
        for (size_t k = 0; k < (size_t)M * N; k++) Yi16[k] = nt_f32_to_f16(Yi[k]);
        // int8 W and X, fp32 scales of W's rows and X's rows, fp32 Y
        double bytes = (double)N * K + 4.0 * N + (double)M * K + 4.0 * M + 4.0 * M * N;
        bench_row row = {sh, N, K, 8, 8, -1, VAR_SYM, M, "imma", &ti, n_i, bytes, &td,
                         rel_err(Yi16, Yd, (size_t)M * N), sm_mhz, mem_mhz};
        put_row(info, copy_gbps, &row, csv);
    }
    rc = 0;
done:
    for (int c = 0; c < 64; c++) {
        nt_gpu_free(&wi[c]);
        nt_gpu_free(&wd[c]);
    }
    void **bufs[] = {&dXq, &dX, &dsx, &dsw, &dYi, &dYd};
    for (size_t b = 0; b < sizeof bufs / sizeof bufs[0]; b++) nt_gpu_free(bufs[b]);
    free(Wq);
    free(Xq);
    free(W16);
    free(X16);
    free(Yd);
    free(Yi16);
    free(sx);
    free(sw);
    free(Yi);
    return rc;
}

// A positive whole number option (1..max).
static bool parse_count(const char *opt, const char *s, long min, long max, long *out) {
    char *end = NULL;
    long v = strtol(s, &end, 10);
    if (end == s || *end || v < min || v > max) {
        fprintf(stderr, "normtweak bench: %s '%s': expected a whole number in %ld..%ld\n", opt, s, min, max);
        return false;
    }
    *out = v;
    return true;
}

int nt_cmd_bench(int argc, char **argv) {
    bench_opts o = {.bits = {2, 3, 4}, .n_bits = 3, .groups = {128, -1}, .n_groups = 2,
                    .ms = {1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096}, .n_ms = 12,
                    .abits = {16}, .n_abits = 1, .kernel = NT_QKERNEL_AUTO, .batches = 20, .warmup_ms = 100.0, .device = 0, .out = NULL};
    for (int i = 0; i < N_MODELS; i++) o.model_on[i] = true;
    for (int i = 0; i < N_VARIANTS; i++) o.variant_on[i] = true;
    static const struct option longopts[] = {
        {"shapes", required_argument, 0, 's'},   {"bits", required_argument, 0, 'b'},
        {"group", required_argument, 0, 'g'},    {"m", required_argument, 0, 'm'},
        {"variants", required_argument, 0, 'v'}, {"kernel", required_argument, 0, 'k'},
        {"batches", required_argument, 0, 'r'},  {"warmup-ms", required_argument, 0, 'w'},
        {"device", required_argument, 0, 'd'},   {"out", required_argument, 0, 'o'},
        {"abits", required_argument, 0, 'a'},    {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0}};
    optind = 1;
    opterr = 0;
    int c;
    while ((c = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
        long v = 0;
        switch (c) {
        case 's':
        case 'v': {
            const bool models = c == 's';
            const int n = models ? N_MODELS : N_VARIANTS;
            const char *const *names = models ? g_models : g_variants;
            bool *on = models ? o.model_on : o.variant_on;
            for (int i = 0; i < n; i++) on[i] = false;
            char buf[512];
            snprintf(buf, sizeof buf, "%s", optarg);
            int found_any = 0;
            for (char *save = NULL, *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
                int found = -1;
                for (int i = 0; i < n; i++)
                    if (strcmp(t, names[i]) == 0) found = i;
                if (found < 0) {
                    fprintf(stderr, "normtweak bench: --%s: unknown %s '%s' (%s)\n", models ? "shapes" : "variants",
                            models ? "model" : "variant", t,
                            models ? "llama7b, llama13b, llama70b, opt66b, bloom176b" : "asym, sym, act");
                    return 2;
                }
                on[found] = true;
                found_any = 1;
            }
            if (!found_any) {
                fprintf(stderr, "normtweak bench: --%s is empty\n", models ? "shapes" : "variants");
                return 2;
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
        case 'a': {
            int a[MAX_LIST];
            int n = parse_list("--abits", optarg, a, ok_abits, "activation bits among 16,8");
            if (n < 0 || n > 2 || (n == 2 && a[0] == a[1])) {
                if (n >= 0) fprintf(stderr, "normtweak bench: --abits %s: 16, 8 or 16,8\n", optarg);
                return 2;
            }
            o.n_abits = n;
            for (int i = 0; i < n; i++) o.abits[i] = a[i];
            break;
        }
        case 'm':
            if ((o.n_ms = parse_list("--m", optarg, o.ms, ok_m, "row counts 1..65536")) < 0) return 2;
            break;
        case 'k':
            if (strcmp(optarg, "auto") == 0) o.kernel = NT_QKERNEL_AUTO;
            else if (strcmp(optarg, "gemv") == 0) o.kernel = NT_QKERNEL_GEMV;
            else if (strcmp(optarg, "mma") == 0) o.kernel = NT_QKERNEL_MMA;
            else if (strcmp(optarg, "dense") == 0) o.kernel = NT_QKERNEL_DENSE;
            else {
                fprintf(stderr, "normtweak bench: --kernel %s: expected auto, gemv, mma or dense\n", optarg);
                return 2;
            }
            break;
        case 'r':
            if (!parse_count("--batches", optarg, 1, 100000, &v)) return 2;
            o.batches = (int)v;
            break;
        case 'w':
            if (!parse_count("--warmup-ms", optarg, 0, 600000, &v)) return 2;
            o.warmup_ms = (double)v;
            break;
        case 'd':
            if (!parse_count("--device", optarg, 0, 1024, &v)) return 2;
            o.device = (int)v;
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
    if (nt_gpu_copy_gbps(ctx, copy_bytes, o.batches, &copy_gbps, &err)) {
        fprintf(stderr, "normtweak bench: %s\n", err.msg);
        nt_gpu_ctx_free(&ctx);
        return 1;
    }
    int sm_mhz = -1, mem_mhz = -1;
    nt_err clk_err = {0};
    if (nt_gpu_clocks_now(info, &sm_mhz, &mem_mhz, &clk_err)) fprintf(stderr, "normtweak bench: %s\n", clk_err.msg);
    printf("# %s: %d SMs, peak SM clock %d MHz, memory clock %d MHz (now: %d, %d), L2 %zu MiB, copy bandwidth %.0f "
           "GB/s; normtweak %s\n",
           info->name, info->sm_count, info->sm_clock_mhz, info->mem_clock_mhz, sm_mhz, mem_mhz, info->l2_bytes >> 20,
           copy_gbps, nt_build_commit());
    printf("%-18s %6s %6s %4s %5s %-4s %5s %-5s %10s %7s %8s %7s %10s %7s %7s %9s\n", "layer", "N", "K", "b", "group",
           "var", "M", "kern", "us", "TFLOP/s", "GB/s", "%copy", "cublas_us", "TFLOP/s", "speedup", "rel_err");
    FILE *csv = NULL;
    char tmp[4096] = "";
    if (o.out) { // written to OUT.tmp, renamed when complete: never a half-written CSV
        snprintf(tmp, sizeof tmp, "%s.tmp", o.out);
        csv = fopen(tmp, "w");
        if (!csv) {
            fprintf(stderr, "normtweak bench: %s: cannot write\n", o.out);
            nt_gpu_ctx_free(&ctx);
            return 1;
        }
        fputs("gpu,sm_count,peak_sm_clock_mhz,peak_mem_clock_mhz,sm_clock_mhz,mem_clock_mhz,copy_gbps,commit,model,"
              "layer,N,K,bits,abits,group_size,sym,act_order,M,kernel,us,us_min,us_max,batch,copies,tflops,gbps,pct_copy_bw,"
              "cublas_us,cublas_us_min,cublas_us_max,cublas_tflops,speedup,max_rel_err\n",
              csv);
    }
    bool weight_only = false, w8a8 = false; // which kinds of rows --abits asks for
    for (int a = 0; a < o.n_abits; a++) weight_only |= o.abits[a] == 16, w8a8 |= o.abits[a] == 8;
    int rc = 0;
    for (int s = 0; s < N_SHAPES && !rc; s++) {
        bool on = false;
        for (int i = 0; i < N_MODELS; i++) on |= o.model_on[i] && strcmp(g_models[i], g_shapes[s].model) == 0;
        if (!on) continue;
        if (w8a8 && bench_cell_i8(ctx, &o, &g_shapes[s], copy_gbps, csv, &err)) {
            fprintf(stderr, "normtweak bench: %s.%s W8A8: %s\n", g_shapes[s].model, g_shapes[s].layer, err.msg);
            rc = 1;
        }
        for (int b = 0; b < o.n_bits && !rc && weight_only; b++)
            for (int g = 0; g < o.n_groups && !rc; g++)
                for (int v = 0; v < N_VARIANTS && !rc; v++) {
                    if (!o.variant_on[v] || (v == VAR_ACT && o.groups[g] < 0)) continue; // per channel: no groups
                    if (bench_cell(ctx, &o, &g_shapes[s], o.bits[b], o.groups[g], v, copy_gbps, csv, &err)) {
                        fprintf(stderr, "normtweak bench: %s.%s %d-bit group %d %s: %s\n", g_shapes[s].model,
                                g_shapes[s].layer, o.bits[b], o.groups[g], g_variants[v], err.msg);
                        rc = 1;
                    }
                }
    }
    if (csv && fclose(csv) != 0 && !rc) {
        fprintf(stderr, "normtweak bench: %s: write failed\n", o.out);
        rc = 1;
    }
    if (csv && !rc && rename(tmp, o.out) != 0) {
        fprintf(stderr, "normtweak bench: %s: cannot write (rename: %s)\n", o.out, strerror(errno));
        rc = 1;
    }
    if (csv && rc) remove(tmp);
    nt_gpu_ctx_free(&ctx);
    return rc;
}
