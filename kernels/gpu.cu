// gpu.cu: device discovery, the context, device memory helpers and event timing of gpu.h (no kernels here).
#include <string.h>

#include "gpu_common.cuh"

int nt_gpu_device_count(nt_err *err) {
    int n = 0;
    cudaError_t e = cudaGetDeviceCount(&n);
    if (e != cudaSuccess) {
        cudaGetLastError(); // clear the sticky "no device" error for later calls
        return nt_fail(err, "cudaGetDeviceCount: %s", cudaGetErrorString(e));
    }
    if (n <= 0) return nt_fail(err, "no CUDA device found");
    return n;
}

int nt_gpu_info_get(int device, nt_gpu_info *info, nt_err *err) {
    memset(info, 0, sizeof *info);
    cudaDeviceProp p;
    NT_CUDA_TRY(cudaGetDeviceProperties(&p, device));
    snprintf(info->name, sizeof info->name, "%s", p.name);
    info->device = device;
    info->cc_major = p.major;
    info->cc_minor = p.minor;
    info->sm_count = p.multiProcessorCount;
    info->l2_bytes = (size_t)p.l2CacheSize;
    info->mem_bytes = p.totalGlobalMem;
    info->smem_optin_bytes = p.sharedMemPerBlockOptin;
    info->mem_bus_bits = p.memoryBusWidth;
    int khz = 0;
    // CUDA 13 dropped clockRate from cudaDeviceProp; the attributes remain (peak clocks, kHz).
    NT_CUDA_TRY(cudaDeviceGetAttribute(&khz, cudaDevAttrClockRate, device));
    info->sm_clock_mhz = khz / 1000;
    NT_CUDA_TRY(cudaDeviceGetAttribute(&khz, cudaDevAttrMemoryClockRate, device));
    info->mem_clock_mhz = khz / 1000;
    return 0;
}

int nt_gpu_ctx_create(nt_gpu_ctx **out, int device, nt_err *err) {
    *out = NULL;
    if (nt_gpu_device_count(err) < 0) return -1;
    nt_gpu_ctx *ctx = (nt_gpu_ctx *)calloc(1, sizeof *ctx);
    if (!ctx) return nt_fail(err, "out of memory");
    ctx->device = device;
    ctx->stream = 0;
    int rc = -1;
    do {
        if (nt_gpu_info_get(device, &ctx->info, err)) break;
        cudaError_t e = cudaSetDevice(device);
        if (e == cudaSuccess) e = cudaEventCreate(&ctx->ev[0]);
        if (e == cudaSuccess) e = cudaEventCreate(&ctx->ev[1]);
        if (e != cudaSuccess) {
            nt_fail(err, "device %d: %s", device, cudaGetErrorString(e));
            break;
        }
        rc = 0;
    } while (0);
    if (rc) {
        nt_gpu_ctx_free(&ctx);
        return -1;
    }
    *out = ctx;
    return 0;
}

void nt_gpu_ctx_free(nt_gpu_ctx **ctx) {
    if (!ctx || !*ctx) return;
    nt_gpu_ctx *c = *ctx;
    nt_gpu_lt_free(c);
    if (c->ws) cudaFree(c->ws);
    if (c->flush) cudaFree(c->flush);
    if (c->ev[0]) cudaEventDestroy(c->ev[0]);
    if (c->ev[1]) cudaEventDestroy(c->ev[1]);
    free(c);
    *ctx = NULL;
}

const nt_gpu_info *nt_gpu_ctx_info(const nt_gpu_ctx *ctx) { return &ctx->info; }

int nt_gpu_ws_reserve(nt_gpu_ctx *ctx, size_t bytes, nt_err *err) {
    if (bytes <= ctx->ws_bytes) return 0;
    if (ctx->ws) {
        NT_CUDA_TRY(cudaDeviceSynchronize()); // earlier work may still read the old scratch
        cudaFree(ctx->ws);
        ctx->ws = NULL;
        ctx->ws_bytes = 0;
    }
    size_t want = bytes + bytes / 4; // some headroom: the benchmark walks M upwards
    NT_CUDA_TRY(cudaMalloc(&ctx->ws, want));
    ctx->ws_bytes = want;
    return 0;
}

// ------------------------------------------------------------------------------------------------ memory
int nt_gpu_malloc(void **p, size_t bytes, nt_err *err) {
    *p = NULL;
    NT_CUDA_TRY(cudaMalloc(p, bytes ? bytes : 1));
    return 0;
}
void nt_gpu_free(void **p) {
    if (!p || !*p) return;
    cudaFree(*p);
    *p = NULL;
}
int nt_gpu_upload(void *dst, const void *src, size_t bytes, nt_err *err) {
    NT_CUDA_TRY(cudaMemcpy(dst, src, bytes, cudaMemcpyHostToDevice));
    return 0;
}
int nt_gpu_download(void *dst, const void *src, size_t bytes, nt_err *err) {
    NT_CUDA_TRY(cudaMemcpy(dst, src, bytes, cudaMemcpyDeviceToHost));
    return 0;
}
int nt_gpu_memset(void *dst, int value, size_t bytes, nt_err *err) {
    NT_CUDA_TRY(cudaMemsetAsync(dst, value, bytes, 0));
    return 0;
}
int nt_gpu_sync(nt_err *err) {
    NT_CUDA_TRY(cudaDeviceSynchronize());
    return 0;
}

// ------------------------------------------------------------------------------------------------ timing
static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int nt_gpu_time(nt_gpu_ctx *ctx, nt_gpu_launch_fn launch, void *arg, int warmup, int reps, bool flush_l2,
                double *median_us, nt_err *err) {
    *median_us = NAN;
    if (reps < 1) return nt_fail(err, "timing needs at least one repetition");
    if (flush_l2 && !ctx->flush) {
        // Twice the L2 (at least 64 MiB): writing it evicts every line the timed call could find in the cache.
        size_t want = ctx->info.l2_bytes * 2 > ((size_t)64 << 20) ? ctx->info.l2_bytes * 2 : ((size_t)64 << 20);
        NT_CUDA_TRY(cudaMalloc(&ctx->flush, want));
        ctx->flush_bytes = want;
    }
    for (int i = 0; i < warmup; i++)
        if (launch(arg, err)) return -1;
    NT_CUDA_TRY(cudaDeviceSynchronize());
    double *t = (double *)malloc((size_t)reps * sizeof *t);
    if (!t) return nt_fail(err, "out of memory");
    for (int i = 0; i < reps; i++) {
        float ms = 0.0f;
        cudaError_t e = cudaSuccess;
        if (flush_l2) e = cudaMemsetAsync(ctx->flush, i & 0xff, ctx->flush_bytes, ctx->stream);
        if (e == cudaSuccess) e = cudaEventRecord(ctx->ev[0], ctx->stream);
        if (e == cudaSuccess && launch(arg, err)) {
            free(t);
            return -1;
        }
        if (e == cudaSuccess) e = cudaEventRecord(ctx->ev[1], ctx->stream);
        if (e == cudaSuccess) e = cudaEventSynchronize(ctx->ev[1]);
        if (e == cudaSuccess) e = cudaEventElapsedTime(&ms, ctx->ev[0], ctx->ev[1]);
        if (e != cudaSuccess) {
            free(t);
            return nt_fail(err, "%s:%d: timing repetition %d: %s", __FILE__, __LINE__, i, cudaGetErrorString(e));
        }
        t[i] = ms * 1e3;
    }
    qsort(t, (size_t)reps, sizeof *t, cmp_double);
    *median_us = reps % 2 ? t[reps / 2] : 0.5 * (t[reps / 2 - 1] + t[reps / 2]);
    free(t);
    return 0;
}

typedef struct {
    void *dst;
    const void *src;
    size_t bytes;
} copy_arg;

static int launch_copy(void *arg, nt_err *err) {
    copy_arg *a = (copy_arg *)arg;
    NT_CUDA_TRY(cudaMemcpyAsync(a->dst, a->src, a->bytes, cudaMemcpyDeviceToDevice, 0));
    return 0;
}

int nt_gpu_copy_gbps(nt_gpu_ctx *ctx, size_t bytes, int reps, double *gbps, nt_err *err) {
    *gbps = NAN;
    copy_arg a = {NULL, NULL, bytes};
    void *src = NULL;
    NT_CUDA_TRY(cudaMalloc(&src, bytes));
    cudaError_t e = cudaMalloc(&a.dst, bytes);
    if (e == cudaSuccess) e = cudaMemset(src, 0x3c, bytes); // not zeros: some paths compress zeros
    if (e != cudaSuccess) {
        cudaFree(src);
        if (a.dst) cudaFree(a.dst);
        return nt_fail(err, "%s:%d: copy bandwidth buffers (%zu bytes): %s", __FILE__, __LINE__, bytes,
                       cudaGetErrorString(e));
    }
    a.src = src;
    double us = NAN;
    int rc = nt_gpu_time(ctx, launch_copy, &a, 3, reps, false, &us, err);
    cudaFree(src);
    cudaFree(a.dst);
    if (rc) return -1;
    *gbps = 2.0 * (double)bytes / (us * 1e-6) / 1e9;
    return 0;
}
