// gpu_common.cuh: what the .cu files of kernels/ share: error checks that return an nt_err (library code never
// exits), the context struct behind gpu.h's nt_gpu_ctx, and the device copy of a quantized linear.
#pragma once
#include <stdint.h>
#ifdef NT_CUDA_EMU
#include "cuda_emu.h" // the CPU emulator (tests): the same source, run without a GPU
#else
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#endif

#include "gpu.h"

// Fails the calling function (which has an `nt_err *err` and returns int) with file, line, call and CUDA's
// message: "kernels/qgemm.cu:412: cudaMalloc(...): out of memory".
#define NT_CUDA_TRY(call)                                                                                   \
    do {                                                                                                    \
        cudaError_t e_ = (call);                                                                            \
        if (e_ != cudaSuccess)                                                                              \
            return nt_fail(err, "%s:%d: %s: %s", __FILE__, __LINE__, #call, cudaGetErrorString(e_));        \
    } while (0)

// After a kernel launch: launch-configuration errors now, execution errors at the next synchronization.
#define NT_CUDA_LAUNCHED(what)                                                                              \
    do {                                                                                                    \
        cudaError_t e_ = cudaGetLastError();                                                                \
        if (e_ != cudaSuccess)                                                                              \
            return nt_fail(err, "%s:%d: launching %s: %s", __FILE__, __LINE__, what, cudaGetErrorString(e_)); \
    } while (0)

#ifndef NT_CUDA_EMU
// Kernel launches go through nt_launch (the emulator replaces it): nt_launch(kernel, grid, block, smem, stream,
// args...) is kernel<<<grid, block, smem, stream>>>(args...). Kernels declare dynamic shared memory with
// NT_DYN_SMEM(type, name).
template <typename... P, typename... A>
static inline void nt_launch(void (*kernel)(P...), dim3 grid, dim3 block, size_t smem, cudaStream_t stream,
                             A... args) {
    kernel<<<grid, block, smem, stream>>>(args...);
}
#define NT_DYN_SMEM(T, name) extern __shared__ T name[]
#endif

// n rounded up to a multiple of 256: where a workspace slice may start (cudaMalloc's own alignment).
static inline size_t nt_align256(size_t n) { return (n + 255) & ~(size_t)255; }

struct nt_gpu_ctx {
    int device;
    nt_gpu_info info;
    cudaStream_t stream;    // the legacy default stream (0)
    void *ws;               // scratch: split-K partials, gathered X, dequantized weights (grows, never shrinks)
    size_t ws_bytes;
    int *counters;          // split-K arrival counters, zero between launches (each launch leaves them zero)
    size_t n_counters;
    cudaEvent_t ev[2];
    struct nt_lt_state *lt; // cuBLASLt (cublaslt.cu), created on first use
};

// Grows ctx->ws to at least bytes (synchronizes the device when it reallocates).
int nt_gpu_ws_reserve(nt_gpu_ctx *ctx, size_t bytes, nt_err *err);
// Grows ctx->counters to at least n zeroed counters.
int nt_gpu_counters_reserve(nt_gpu_ctx *ctx, size_t n, nt_err *err);
// Frees the cuBLASLt state (cublaslt.cu).
void nt_gpu_lt_free(nt_gpu_ctx *ctx);

// The device copy of an nt_qgemm_layout (gpu.h; the arrays in codec/qinterleave.h's order).
struct nt_gpu_qlinear {
    int N, K, Kp, npacks, tiles, bits, group_size, n_groups, sym_zero, spp;
    uint32_t *qi;        // (npacks, tiles, 32*bits)
    __half *qs;          // (n_groups, tiles, 8, 4)
    uint8_t *qz;         // (n_groups, tiles, 8, 4)
    int32_t *pack_group; // (npacks)
    int32_t *kmap;       // (Kp) or NULL
};
