// gpu.cu: device discovery, the context, device memory helpers, event timing of gpu.h and the copy kernel that
// measures the device's copy bandwidth.
#include <math.h>
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
    NT_CUDA_TRY(cudaDeviceGetPCIBusId(info->pci_bus_id, (int)sizeof info->pci_bus_id, device));
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
    if (c->counters) cudaFree(c->counters);
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

int nt_gpu_counters_reserve(nt_gpu_ctx *ctx, size_t n, nt_err *err) {
    if (n <= ctx->n_counters) return 0;
    if (ctx->counters) {
        NT_CUDA_TRY(cudaDeviceSynchronize());
        cudaFree(ctx->counters);
        ctx->counters = NULL;
        ctx->n_counters = 0;
    }
    size_t want = n < 4096 ? 4096 : n;
    NT_CUDA_TRY(cudaMalloc(&ctx->counters, want * sizeof(int)));
    NT_CUDA_TRY(cudaMemset(ctx->counters, 0, want * sizeof(int)));
    ctx->n_counters = want;
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

// Elapsed milliseconds of n calls (copies rotating from *next), between two events.
static int time_calls(nt_gpu_ctx *ctx, nt_gpu_launch_fn launch, void *arg, int copies, int *next, int n, double *ms,
                      nt_err *err) {
    NT_CUDA_TRY(cudaEventRecord(ctx->ev[0], ctx->stream));
    for (int i = 0; i < n; i++) {
        if (launch(arg, *next, err)) return -1;
        *next = (*next + 1) % copies;
    }
    NT_CUDA_TRY(cudaEventRecord(ctx->ev[1], ctx->stream));
    NT_CUDA_TRY(cudaEventSynchronize(ctx->ev[1]));
    float f = 0.0f;
    NT_CUDA_TRY(cudaEventElapsedTime(&f, ctx->ev[0], ctx->ev[1]));
    *ms = f;
    return 0;
}

int nt_gpu_time(nt_gpu_ctx *ctx, nt_gpu_launch_fn launch, void *arg, int copies, double warmup_ms, int batches,
                nt_gpu_timing *out, nt_err *err) {
    memset(out, 0, sizeof *out);
    out->us = out->us_min = out->us_max = NAN;
    if (copies < 1 || batches < 1) return nt_fail(err, "timing needs at least one copy and one batch");
    int next = 0, n = 1;
    double ms = 0.0, spent = 0.0, per_call = 0.0;
    // Warm-up: doubling runs until warmup_ms have passed (clocks up, caches and plans made); the last run gives
    // the estimate of one call.
    do {
        if (time_calls(ctx, launch, arg, copies, &next, n, &ms, err)) return -1;
        spent += ms;
        per_call = ms / n;
        if (n < (1 << 20)) n *= 2;
    } while (spent < warmup_ms);
    // Batches of at least ~0.5 ms: an event pair's resolution and launch gaps are then below 1% of a batch.
    int batch = per_call > 0.0 ? (int)ceil(0.5 / per_call) : 1000;
    if (batch < 1) batch = 1;
    if (batch > 100000) batch = 100000;
    double *t = (double *)malloc((size_t)batches * sizeof *t);
    if (!t) return nt_fail(err, "out of memory");
    for (int b = 0; b < batches; b++) {
        if (time_calls(ctx, launch, arg, copies, &next, batch, &ms, err)) {
            free(t);
            return -1;
        }
        t[b] = ms * 1e3 / batch;
    }
    qsort(t, (size_t)batches, sizeof *t, cmp_double);
    out->us = batches % 2 ? t[batches / 2] : 0.5 * (t[batches / 2 - 1] + t[batches / 2]);
    out->us_min = t[0];
    out->us_max = t[batches - 1];
    out->batch = batch;
    out->batches = batches;
    out->warmup_ms = spent;
    free(t);
    return 0;
}

// dst = src, 16 bytes per thread per step (the bandwidth a streaming kernel can reach).
__global__ void copy_kernel(const uint4 *__restrict__ src, uint4 *__restrict__ dst, size_t n) {
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x)
        dst[i] = src[i];
}

typedef struct {
    nt_gpu_ctx *ctx;
    void *dst;
    const void *src;
    size_t bytes;
} copy_arg;

static int launch_copy(void *arg, int copy, nt_err *err) {
    (void)copy;
    copy_arg *a = (copy_arg *)arg;
    const int sms = a->ctx->info.sm_count > 0 ? a->ctx->info.sm_count : 1;
    nt_launch(copy_kernel, sms * 8, 256, 0, a->ctx->stream, (const uint4 *)a->src, (uint4 *)a->dst, a->bytes / 16);
    NT_CUDA_LAUNCHED("copy_kernel");
    return 0;
}

int nt_gpu_copy_gbps(nt_gpu_ctx *ctx, size_t bytes, int batches, double *gbps, nt_err *err) {
    *gbps = NAN;
    bytes &= ~(size_t)15;
    copy_arg a = {ctx, NULL, NULL, bytes};
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
    nt_gpu_timing t;
    int rc = nt_gpu_time(ctx, launch_copy, &a, 1, 100.0, batches, &t, err);
    cudaFree(src);
    cudaFree(a.dst);
    if (rc) return -1;
    *gbps = 2.0 * (double)bytes / (t.us * 1e-6) / 1e9;
    return 0;
}
