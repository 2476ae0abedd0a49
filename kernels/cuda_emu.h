// cuda_emu.h: a CPU emulator for the CUDA subset the kernels of kernels/ use, so that the kernels themselves (not
// a transcription) run and are tested on machines without a GPU, CI included. Test infrastructure, not a fast
// path: a .cu file compiled by g++ with -DNT_CUDA_EMU includes this instead of the CUDA headers
// (gpu_common.cuh picks), and every public symbol of gpu.h is renamed nt_emu_* (gpu_emu_names.h), so the
// emulated build links beside the real one.
//
// Execution model (kernels/cuda_emu.cc): the blocks of a grid run one after another, in a seeded random order;
// inside a block every CUDA thread is a fiber (a hand-rolled context switch on x86-64, ucontext elsewhere) and
// the runnable fibers run, warp by warp in a random order and the lanes of a warp in a random order, until each
// blocks at a synchronization point:
//   - __syncthreads(): released when every thread of the block that has not exited is waiting there;
//   - warp collectives (ldmatrix, mma.sync, shfl): released when all 32 lanes of the warp wait on the same
//     collective, which is then executed once for the warp by the PTX ISA's definition of its register
//     fragments (independent of how a kernel believes the fragments are laid out). A collective with an exited
//     lane, lanes at different collectives, or a block that can no longer progress is a launch failure with a
//     message (cudaGetLastError / cudaDeviceSynchronize report it, as on a device).
//   - cp.async copies are queued per thread and performed at cp.async.wait_group, only for the groups the wait
//     covers; the destination is poisoned when the copy is issued, so a stage read before its wait, or
//     overwritten while another thread still reads it (a stage reused too early), reads NaN here.
// What makes order-dependent bugs show (every one demonstrated on a planted bug by tests/test_cuda_emu.cc):
//   - the block order and the warp and lane order of every scheduling round come from a seeded generator
//     (NT_EMU_SEED, default 1; nt_emu_set_seed; seed 0 runs everything in index order, the old behaviour), so
//     a kernel that relies on block order or on one warp running before another fails for some seed;
//   - shared memory (every __shared__ array, which the emulator places in one linker section, and the dynamic
//     shared memory) is filled with 0xff bytes (NaN as fp16 and fp32, -1 as integers) before every block, so a
//     read of shared memory nobody wrote reads NaN instead of a friendly zero;
//   - dynamic shared memory above 48 KB needs cudaFuncSetAttribute(MaxDynamicSharedMemorySize) first, as on a
//     device (the static shared memory of a kernel is not known here: that part of the rule is the kernels').
// __shared__ arrays are static storage (one block at a time, one launch at a time per process: the emulator
// keeps its state in plain globals); device memory is host memory. The arithmetic is fp32 with fp16 storage
// rounded to nearest even (fp16x2 instructions round each half once); mma.sync accumulates its 16 products in
// fp32 in k order (the hardware's internal order differs, within the test budgets). Atomics are plain
// read-modify-writes (blocks never overlap). Timing calls work but mean nothing.
#pragma once
#ifndef NT_CUDA_EMU
#error "cuda_emu.h is the emulated build's replacement for the CUDA headers (define NT_CUDA_EMU)"
#endif
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <functional>

// ---------------------------------------------------------------------------------------------- qualifiers
// internal linkage: the emulated kernels link beside the real build's host stubs of the same names
#define __global__ static
#define __device__ static
#define __host__
#define __forceinline__ inline
#define __launch_bounds__(...)
// Every __shared__ array lands in one section, which the emulator poisons before each block (see above).
#define __shared__ static __attribute__((section("nt_emu_smem")))
#define __align__(n) __attribute__((aligned(n)))

// ------------------------------------------------------------------------------------------ vector types
struct uint3 {
    unsigned x, y, z;
};
struct dim3 {
    unsigned x, y, z;
    constexpr dim3(unsigned x_ = 1, unsigned y_ = 1, unsigned z_ = 1) : x(x_), y(y_), z(z_) {}
};
struct __attribute__((aligned(8))) uint2 {
    unsigned x, y;
};
struct __attribute__((aligned(16))) uint4 {
    unsigned x, y, z, w;
};
struct __attribute__((aligned(16))) float4 {
    float x, y, z, w;
};
inline uint4 make_uint4(unsigned x, unsigned y, unsigned z, unsigned w) { return uint4{x, y, z, w}; }

// ------------------------------------------------------------------------------------------------ fp16
struct __attribute__((aligned(2))) __half {
    uint16_t x;
};
struct __attribute__((aligned(4))) __half2 {
    __half x, y;
};
float __half2float(__half h);
__half __float2half_rn(float f);
inline __half __float2half(float f) { return __float2half_rn(f); }
inline __half2 __floats2half2_rn(float a, float b) { return __half2{__float2half_rn(a), __float2half_rn(b)}; }
inline float __uint_as_float(uint32_t u) {
    float f;
    memcpy(&f, &u, 4);
    return f;
}
inline uint32_t __float_as_uint(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}
inline float __expf(float x) { return expf(x); }
// The rounded-once operations nvcc never contracts (CMakeLists.txt builds actq.cu's emulation with -ffp-contract=off,
// so g++ does not contract them either once they are inlined).
inline float __fdiv_rn(float a, float b) { return a / b; }
inline float __fadd_rn(float a, float b) { return a + b; }
inline double __dmul_rn(double a, double b) { return a * b; }
inline double __dadd_rn(double a, double b) { return a + b; }
inline float __double2float_rn(double d) { return (float)d; }
inline float rsqrtf(float x) { return 1.0f / sqrtf(x); }
inline int min(int a, int b) { return a < b ? a : b; }
inline int max(int a, int b) { return a > b ? a : b; }
template <typename T> inline T __ldg(const T *p) { return *p; }
template <typename T> inline T __ldcg(const T *p) { return *p; }
inline int atomicAdd(int *p, int v) {
    int old = *p;
    *p = old + v;
    return old;
}
inline unsigned atomicAdd(unsigned *p, unsigned v) {
    unsigned old = *p;
    *p = old + v;
    return old;
}
inline void __threadfence(void) {}

// --------------------------------------------------------------------------------------- thread indices
struct nt_emu_thread; // cuda_emu.cc
extern nt_emu_thread *nt_emu_cur;
extern uint3 nt_emu_block_idx;
extern dim3 nt_emu_grid_dim, nt_emu_block_dim;
const uint3 &nt_emu_thread_idx(void);
#define threadIdx (nt_emu_thread_idx())
#define blockIdx (nt_emu_block_idx)
#define gridDim (nt_emu_grid_dim)
#define blockDim (nt_emu_block_dim)

void nt_emu_syncthreads(void);
#define __syncthreads() nt_emu_syncthreads()
void *nt_emu_dyn_smem(void); // the launch's dynamic shared memory
#define NT_DYN_SMEM(T, name) T *name = static_cast<T *>(nt_emu_dyn_smem())

// Warp collectives (full warps only; the mask must be 0xffffffff).
float __shfl_xor_sync(unsigned mask, float v, int lane_mask);
float __shfl_sync(unsigned mask, float v, int src_lane);

// ------------------------------------------------------------------------- ptx.cuh's wrappers, emulated
inline uint64_t l2_evict_first(void) { return 0; }
void nt_emu_cp_async(void *dst, const void *src, int bytes, int src_bytes);
inline void cp_async16(void *dst, const void *src, int src_bytes) { nt_emu_cp_async(dst, src, 16, src_bytes); }
inline void cp_async16_hint(void *dst, const void *src, int src_bytes, uint64_t policy) {
    (void)policy;
    nt_emu_cp_async(dst, src, 16, src_bytes);
}
inline void cp_async4(void *dst, const void *src, int src_bytes) { nt_emu_cp_async(dst, src, 4, src_bytes); }
void cp_async_commit(void);
void nt_emu_cp_async_wait(int n);
template <int N> inline void cp_async_wait() { nt_emu_cp_async_wait(N); }
void ldmatrix_x4(uint32_t (&r)[4], const void *p);
void mma_16816(float (&c)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1);
inline void mma_16816_zero(float (&c)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
    c[0] = c[1] = c[2] = c[3] = 0.0f;
    mma_16816(c, a, b0, b1);
}
inline uint4 ld_stream4(const uint32_t *p, uint64_t policy) {
    (void)policy;
    return *reinterpret_cast<const uint4 *>(p);
}
inline uint2 ld_stream2(const uint32_t *p, uint64_t policy) {
    (void)policy;
    return *reinterpret_cast<const uint2 *>(p);
}
inline uint32_t ld_stream1(const uint32_t *p, uint64_t policy) {
    (void)policy;
    return *p;
}
inline float ld_cg(const float *p) { return *p; }
// LOP3: bit i of the result is bit (a_i b_i c_i) of LUT, with a, b, c weighted 4, 2, 1.
template <int LUT> inline uint32_t lop3(uint32_t a, uint32_t b, uint32_t c) {
    uint32_t d = 0;
    for (int i = 0; i < 8; i++)
        if (LUT >> i & 1) d |= ((i & 4) ? a : ~a) & ((i & 2) ? b : ~b) & ((i & 1) ? c : ~c);
    return d;
}
uint32_t prmt(uint32_t a, uint32_t b, uint32_t sel);
uint32_t hfma2(uint32_t a, uint32_t b, uint32_t c);
uint32_t hsub2(uint32_t a, uint32_t b);
uint32_t hmul2(uint32_t a, uint32_t b);
float h2_lo(uint32_t a);
float h2_hi(uint32_t a);

// ------------------------------------------------------------------------------------------- launches
void nt_emu_launch(const void *kernel, dim3 grid, dim3 block, size_t smem, const std::function<void()> &body);
template <typename... P, typename... A>
inline void nt_launch(void (*kernel)(P...), dim3 grid, dim3 block, size_t smem, void *stream, A... args) {
    (void)stream;
    nt_emu_launch(reinterpret_cast<const void *>(kernel), grid, block, smem, [=]() { kernel(args...); });
}
// The scheduling seed of the launches that follow (0: index order). Also callable from C (gpu.h).
extern "C" void nt_emu_set_seed(uint64_t seed);

// ------------------------------------------------------------------------------------------ the runtime
typedef int cudaError_t;
enum {
    cudaSuccess = 0,
    cudaErrorInvalidValue = 1,
    cudaErrorMemoryAllocation = 2,
    cudaErrorLaunchFailure = 719,
};
typedef void *cudaStream_t;
typedef struct nt_emu_event *cudaEvent_t;
enum cudaMemcpyKind { cudaMemcpyHostToHost, cudaMemcpyHostToDevice, cudaMemcpyDeviceToHost, cudaMemcpyDeviceToDevice };
enum cudaDeviceAttr { cudaDevAttrClockRate, cudaDevAttrMemoryClockRate };
enum cudaFuncAttribute { cudaFuncAttributeMaxDynamicSharedMemorySize };
struct cudaDeviceProp {
    char name[256];
    int major, minor, multiProcessorCount, l2CacheSize, memoryBusWidth;
    size_t totalGlobalMem, sharedMemPerBlockOptin;
};
cudaError_t cudaGetDeviceCount(int *n);
cudaError_t cudaGetDeviceProperties(cudaDeviceProp *p, int device);
cudaError_t cudaDeviceGetAttribute(int *v, cudaDeviceAttr a, int device);
cudaError_t cudaSetDevice(int device);
cudaError_t cudaDeviceGetPCIBusId(char *id, int len, int device);
cudaError_t nt_emu_func_set_attribute(const void *kernel, cudaFuncAttribute a, int value);
template <typename... P> inline cudaError_t cudaFuncSetAttribute(void (*kernel)(P...), cudaFuncAttribute a, int v) {
    return nt_emu_func_set_attribute(reinterpret_cast<const void *>(kernel), a, v);
}
cudaError_t nt_emu_malloc(void **p, size_t bytes);
template <typename T> inline cudaError_t cudaMalloc(T **p, size_t bytes) {
    return nt_emu_malloc(reinterpret_cast<void **>(p), bytes);
}
cudaError_t cudaFree(void *p);
cudaError_t cudaMemcpy(void *dst, const void *src, size_t bytes, cudaMemcpyKind kind);
cudaError_t cudaMemcpyAsync(void *dst, const void *src, size_t bytes, cudaMemcpyKind kind, cudaStream_t s);
cudaError_t cudaMemset(void *p, int v, size_t bytes);
cudaError_t cudaMemsetAsync(void *p, int v, size_t bytes, cudaStream_t s);
cudaError_t cudaDeviceSynchronize(void);
cudaError_t cudaGetLastError(void);
const char *cudaGetErrorString(cudaError_t e);
cudaError_t cudaEventCreate(cudaEvent_t *e);
cudaError_t cudaEventDestroy(cudaEvent_t e);
cudaError_t cudaEventRecord(cudaEvent_t e, cudaStream_t s);
cudaError_t cudaEventSynchronize(cudaEvent_t e);
cudaError_t cudaEventElapsedTime(float *ms, cudaEvent_t a, cudaEvent_t b);
