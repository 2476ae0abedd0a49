// gpu.h: the CUDA side of normtweak: fp16-activation x packed-weight matrix products on the device (a GEMV kernel
// for M <= 8, a Marlin-style tensor-core kernel up to 511 rows, dequantization + cuBLASLt from 512), the dense
// cuBLASLt fp16 baseline, device memory and timing helpers, and the load-time layout the kernels read. C API,
// usable from C and from the .cu files.
//
// Implementations: kernels/gpu.cu (device, context, memory, timing, the copy kernel), kernels/qgemm.cu (the
// quantized kernels; its header comment is their design), kernels/cublaslt.cu (the dense baseline and the int8
// products), kernels/actq.cu + actq_layout.c (linears with quantized activations, W8A8 / W4A8 / W4A4),
// kernels/forward.cu + gpu_forward.c (the model's forward pass), kernels/gpu_clock.c (NVML clocks, dlopen);
// kernels/gpu_none.c replaces them in a build without nvcc, where every call fails with "normtweak built without
// CUDA". kernels/kernels_ref.c holds the scalar CPU references, the kernel choice and the load-time layout
// (plain C, built in both cases, as is actq_layout.c). The tests also build every .cu file for kernels/cuda_emu.h,
// a CPU emulator, under nt_emu_* names.
//
// The interchange format is qformat.h's nt_qlinear. At upload the layout step (nt_qgemm_layout_make) orders K once
// so that every 32-value pack of K lies in one group, then puts the codes in codec/qinterleave.h's tensor-core
// order and the scales and zero points in its per-lane order:
//   - g_idx trivial (k / group_size, or all 0 per channel; also act-order with static groups): K stays as it is
//     and the kernels read X columns directly.
//   - otherwise (act-order: g_idx[perm[j]] = j / group_size, or any valid g_idx): K columns are sorted by group
//     (stable), each group padded with zero-activation columns to a multiple of 32, and kmap[k'] gives the
//     original column of each kernel column k' (-1 for padding). The kernels gather X by kmap (GEMV: while
//     staging X in shared memory; MMA and dense: one gather pass into a scratch copy of X). So act-order costs a
//     gather of X, never a per-k scale lookup.
// The layout also records the scale step: the largest of 4, 2, 1 packs at whose multiples every change of group
// falls (4 for group 128 and per channel, 2 for 64, 1 for 32 or arbitrary g_idx), which the GEMV kernel is
// instantiated for.
// Dequantization is qformat.h's W[n][k] = scale_fp16[g][n] * (q - zero) (zero = zeros[g][n], or 2^(bits-1) when
// symmetric): the GEMV kernel multiplies the exact q - zero on the tensor cores and scales in fp32 (as fp32
// weights would); the MMA kernel and the dense path feed fp16(scale * (q - zero)) to the tensor cores
// (nt_ref_qgemm's w_f16 flag reproduces that rounding). All accumulate in fp32 and write fp16 Y.
#pragma once
#ifdef NT_CUDA_EMU
#include "gpu_emu_names.h"
#endif
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#ifdef __cplusplus
extern "C" {
#endif

#include "nt.h"

#ifdef NT_CUDA_EMU
// The CPU emulator's scheduling seed for the launches that follow (0: blocks, warps and lanes in index order);
// cuda_emu.h.
void nt_emu_set_seed(uint64_t seed);
#endif

// ------------------------------------------------------------------------------------------ load-time layout
// What the kernels read (host copy; nt_gpu_qlinear_upload_layout copies it to the device): K in kernel order
// (see the top of this file), the codes in codec/qinterleave.h's tensor-core order, the per-group scales and
// zero points in its per-lane order. Groups are indexed through pack_group (built from g_idx, or k / group_size),
// so a shorter last group (n_groups = ceil(K / group_size)) needs nothing special.
typedef struct {
    int N, K;                // out, in of the nt_qlinear
    int Kp;                  // K in kernel order, padded: a multiple of 32
    int npacks;              // Kp / 32
    int tiles;               // ceil(N / 32): 32-channel tiles of qinterleave.h
    int bits;                // 2, 3, 4, 8
    int group_size;          // as in the nt_qlinear (-1: per channel)
    int n_groups;
    int sym_zero;            // 2^(bits-1): the zero point of a symmetric linear (qz is filled with it)
    int spp;                 // packs per scale step: every change of group is at a multiple of spp packs (4, 2, 1)
    int32_t *pack_group;     // (npacks) the group of each pack (every pack lies in one group)
    int32_t *kmap;           // (Kp) the original column of kernel column k' (-1: padding); NULL = identity
    uint32_t *qi;            // (npacks, tiles, 32*bits) the codes, K in kernel order, qinterleave.h's order
    uint16_t *qs;            // (n_groups, tiles, 8, 4) fp16 scales, qinterleave.h's order
    uint8_t *qz;             // (n_groups, tiles, 8, 4) zero points (sym_zero when symmetric)
} nt_qgemm_layout;

void nt_qgemm_layout_free(nt_qgemm_layout *lay);

// ------------------------------------------------------------------------------------------------- device
typedef struct {
    char name[256];
    int device;
    int cc_major, cc_minor;
    int sm_count;
    int sm_clock_mhz;  // peak SM clock (cudaDevAttrClockRate)
    int mem_clock_mhz; // peak memory clock (cudaDevAttrMemoryClockRate)
    int mem_bus_bits;
    size_t l2_bytes;
    size_t mem_bytes;
    size_t smem_optin_bytes; // shared memory a block can get after cudaFuncSetAttribute
    char pci_bus_id[32];     // "0000:19:00.0": what NVML finds the device by
} nt_gpu_info;

// Number of CUDA devices (> 0), or -1 with a message: "normtweak built without CUDA", or the CUDA runtime's
// reason ("cudaGetDeviceCount: no CUDA-capable device is detected"), or "no CUDA device found".
int nt_gpu_device_count(nt_err *err);
int nt_gpu_info_get(int device, nt_gpu_info *info, nt_err *err);

// A context: the device, its info, scratch memory (split-K partials and counters, gathered X, dequantized weights;
// grows on demand), and the cuBLASLt handle with its workspace and plan cache. Work goes to the legacy default
// stream. One context per host thread.
typedef struct nt_gpu_ctx nt_gpu_ctx;
int nt_gpu_ctx_create(nt_gpu_ctx **ctx, int device, nt_err *err);
void nt_gpu_ctx_free(nt_gpu_ctx **ctx);
const nt_gpu_info *nt_gpu_ctx_info(const nt_gpu_ctx *ctx);

// Device memory for the tests and the benchmark (all synchronous except nt_gpu_memset).
int nt_gpu_malloc(void **p, size_t bytes, nt_err *err);
void nt_gpu_free(void **p);
int nt_gpu_upload(void *dst, const void *src, size_t bytes, nt_err *err);
int nt_gpu_download(void *dst, const void *src, size_t bytes, nt_err *err);
int nt_gpu_memset(void *dst, int value, size_t bytes, nt_err *err);
int nt_gpu_sync(nt_err *err); // waits for the device; reports errors of earlier asynchronous work

// ------------------------------------------------------------------------------------- quantized products
typedef struct nt_gpu_qlinear nt_gpu_qlinear;

// Copies a layout's arrays to the device.
int nt_gpu_qlinear_upload_layout(nt_gpu_qlinear **d, const nt_qgemm_layout *lay, nt_err *err);
void nt_gpu_qlinear_free(nt_gpu_qlinear **d);
// Bytes a product streams from the weights: codes + scales + zeros (what the GB/s of the benchmark counts).
size_t nt_gpu_qlinear_weight_bytes(const nt_gpu_qlinear *d);
// A second device copy of d (the benchmark rotates copies so the L2 never holds the weights of the next call).
int nt_gpu_qlinear_clone(nt_gpu_qlinear **copy, const nt_gpu_qlinear *d, nt_err *err);

typedef enum {
    NT_QKERNEL_AUTO = 0, // GEMV for M <= NT_QGEMV_MAX_M, MMA below NT_QDENSE_MIN_M, DENSE from there
    NT_QKERNEL_GEMV,     // memory-bound: weights as mma.sync's A operand, X (M <= 8) as B, single-kernel split-K
    NT_QKERNEL_MMA,      // Marlin-style: X as A, weights dequantized in registers as B, 4-stage cp.async, stripes
    NT_QKERNEL_DENSE,    // the stop-gap for large M: dequantized to fp16 once per call, then cuBLASLt
} nt_qkernel;
#define NT_QGEMV_MAX_M 8
#define NT_QDENSE_MIN_M 512

const char *nt_qkernel_name(nt_qkernel k);
// The kernel AUTO runs for M rows.
nt_qkernel nt_qkernel_pick(int M);

// Y (M, N) fp16 = X (M, K) fp16 . dequant(W)^T, X and Y device pointers, rows contiguous (leading dimension K
// and N). Asynchronous (check with nt_gpu_sync); fails at once on bad arguments or launch errors.
int nt_gpu_qgemm(nt_gpu_ctx *ctx, const nt_gpu_qlinear *w, const uint16_t *X, uint16_t *Y, int M, nt_qkernel kernel,
                 nt_err *err);
// W (N, K) fp16 row-major, in the original column order: the dense weights the baseline multiplies.
int nt_gpu_qdequantize(nt_gpu_ctx *ctx, const nt_gpu_qlinear *w, uint16_t *W, nt_err *err);

// ------------------------------------------------------------------------------------- dense baseline
// Y (M, N) fp16 = X (M, K) fp16 . W^T, W (N, K) fp16 row-major, fp32 compute (cublasLtMatmul; the algorithm is
// cuBLASLt's first heuristic answer for the shape, cached per shape, with a 32 MiB workspace).
int nt_gpu_gemm_f16(nt_gpu_ctx *ctx, const uint16_t *X, const uint16_t *W, uint16_t *Y, int M, int N, int K,
                    nt_err *err);

// Y (M, N) fp32 = X (M, K) fp16 . W^T: the same product with fp32 output (logits, where fp16 would round).
int nt_gpu_gemm_f16_f32(nt_gpu_ctx *ctx, const uint16_t *X, const uint16_t *W, float *Y, int M, int N, int K,
                        nt_err *err);

// --------------------------------------------------------------------------- int8 x int8 (W8A8, model/actquant.h)
// Y (M, N) fp32 = (sx[m] * sw[n]) * (float)I[m][n],  I = Xq (M, K) int8 . Wq^T (N, K) int8 in int32 (exact):
// cublasLtMatmul on the IMMA tensor cores (CUBLAS_COMPUTE_32I, int8 A and B in the TN layout, int32 D) into the
// context's scratch, then a dequantizing kernel (per-token activation scales sx, per-channel weight scales sw).
// K must be a multiple of 4 (cuBLASLt's int8 rule), pointers 16-byte aligned. The emulated build computes I on the
// host in int32 and applies the same fp32 expression, so both agree with nt_ref_gemm_i8 bit for bit.
int nt_gpu_gemm_i8(nt_gpu_ctx *ctx, const int8_t *Xq, const int8_t *Wq, const float *sx, const float *sw, float *Y,
                   int M, int N, int K, nt_err *err);
// The reference: I in int64 (checked to fit int32), then the same fp32 expression.
void nt_ref_gemm_i8(const int8_t *Xq, const int8_t *Wq, const float *sx, const float *sw, int M, int N, int K,
                    float *Y);

// S (batch, M, N) int32 row-major: slice b = Xq[:, b*K .. b*K+K-1] . Wq[:, b*K .. b*K+K-1]^T, exact, for Xq (M, ld)
// and Wq (N, ld) int8 row-major, ld >= batch * K (the groups of a W8A8 linear side by side, one slice each).
// cuBLASLt's IMMA rules: K, N and ld multiples of 4, pointers 4-byte aligned (16 is faster: every slice then
// starts 16-aligned when K is a multiple of 16). One strided-batched cublasLtMatmul; when cuBLASLt has no batched
// algorithm for the shape, one call per slice.
int nt_gpu_gemm_i8_i32(nt_gpu_ctx *ctx, const int8_t *Xq, const int8_t *Wq, int32_t *S, int M, int N, int K, int ld,
                       int batch, nt_err *err);

// ------------------------------------------------- a linear with quantized activations (model/actquant.h)
// The device form of an nt_actq with integer weights (W8A8, W4A8, W4A4; dynamic per-token or static per-tensor
// scales), built once at upload (kernels/actq_layout.c). The groups become equal slices of Lg columns side by
// side (the longest group, padded to a multiple of 16 with zero codes), so one strided-batched int8 GEMM computes
// every group's integer sums, and every slice of a row starts 16-byte aligned. The integer weights w = q - zero
// (up to +-255 for 8-bit asymmetric weights) become int8 codes w8 = w - c[g][n] with c[g][n] = 0 when the
// (group, output)'s w fit int8 (always for 4-bit and for symmetric weights), else c = min w + 128; then
//     I[t][n][g] = sum_k xq[t][k] w[n][k] = sum_k xq[t][k] w8[n][k] + c[g][n] R[t][g],  R[t][g] = sum_k xq[t][k].
typedef struct {
    int N, K;            // out, in
    int Np;              // N padded to a multiple of 4 (zero rows): cuBLASLt's rule for the int32 output's ld
    int G;               // groups
    int Lg;              // columns per group slice: the longest group, padded to a multiple of 16
    int Kp;              // G * Lg
    int qmax;            // activation codes in [-qmax, qmax]
    bool is_static;      // one scale for every row (scale), else per row max|x| / qmax
    float scale;
    int32_t *col;        // (Kp) the original column of each slice column, -1 for padding
    int8_t *w8;          // (Np, Kp) weight codes w - c, 0 in padding
    int32_t *corr;       // (G, N) c[g][n], or NULL when all are 0
    float *wscale;       // (G, N) the fp16 group scales widened
} nt_actq_layout;
void nt_actq_layout_free(nt_actq_layout *lay);

typedef struct nt_gpu_actq nt_gpu_actq;
int nt_gpu_actq_upload_layout(nt_gpu_actq **d, const nt_actq_layout *lay, nt_err *err);
void nt_gpu_actq_free(nt_gpu_actq **d);
// Y (M, N) fp16 and/or Y32 (M, N) fp32 (either may be NULL) = actquant.h's product of X (M, K) fp16 (+ b (N) fp32,
// NULL for none): the codes and scales of nt_actq_quantize_row, the exact integer group sums, the same double sums
// in ascending group order and the same final fp32 roundings as nt_actq_forward, so Y32 is that function's result
// (for the same x) bit for bit, and Y the same rounded once to fp16 (kernels/actq.cu says why). Asynchronous, as
// nt_gpu_qgemm.
int nt_gpu_actq_linear(nt_gpu_ctx *ctx, const nt_gpu_actq *a, const uint16_t *X, const float *b, uint16_t *Y,
                       float *Y32, int M, nt_err *err);

// ----------------------------------------------------------------------------------------------- timing
// Times launch(arg, copy): warm-up runs (doubling, until warmup_ms have passed), then `batches` batches of calls
// between two CUDA events, each batch long enough (~0.5 ms) that event resolution and launch gaps do not matter;
// the calls rotate through `copies` copies of their data (copy = 0, 1, ..., copies-1, 0, ...), which the caller
// makes large enough together (more than twice the L2) that no call finds its weights in the cache.
typedef int (*nt_gpu_launch_fn)(void *arg, int copy, nt_err *err);
typedef struct {
    double us, us_min, us_max; // per call: median, fastest and slowest batch
    int batch, batches;        // calls per batch, batches timed
    double warmup_ms;          // spent warming up
} nt_gpu_timing;
int nt_gpu_time(nt_gpu_ctx *ctx, nt_gpu_launch_fn launch, void *arg, int copies, double warmup_ms, int batches,
                nt_gpu_timing *t, nt_err *err);
// Device-to-device copy bandwidth of a streaming copy kernel, GB/s (bytes read + bytes written, median of
// `batches` batches after 100 ms of warm-up).
int nt_gpu_copy_gbps(nt_gpu_ctx *ctx, size_t bytes, int batches, double *gbps, nt_err *err);
// The SM and memory clocks the device runs at now, MHz, from NVML (libnvidia-ml.so.1, opened with dlopen on first
// use; kernels/gpu_clock.c); -1 with a message when NVML or the device is not available.
int nt_gpu_clocks_now(const nt_gpu_info *info, int *sm_mhz, int *mem_mhz, nt_err *err);

// ------------------------------------------------------------------------- C-only: the nt_qlinear entry points
#ifndef __cplusplus
#include "qformat.h"

// The layout of q (see the top of this file): nt_qlinear_validate, then nt_qgemm_layout_build. The layout owns
// its arrays (q may be freed afterwards).
int nt_qgemm_layout_make(nt_qgemm_layout *lay, const nt_qlinear *q, nt_err *err);
// The same without the validation (q trusted: g_idx within 0..n_groups-1, zeros <= maxq), and without
// nt_qformat_check's rule that the group size divides K: groups are read through g_idx, so a shorter last group
// (n_groups = ceil(K / group_size), g = k / group_size) works as any other. Fails only for lack of memory.
int nt_qgemm_layout_build(nt_qgemm_layout *lay, const nt_qlinear *q, nt_err *err);
// nt_qgemm_layout_make + nt_gpu_qlinear_upload_layout.
int nt_gpu_qlinear_upload(nt_gpu_qlinear **d, const nt_qlinear *q, nt_err *err);

#include "actquant.h"
// The device layout of a's integer weights (see nt_actq_layout above). Fails for a float linear (a->wint NULL),
// for integer weights of a (group, output) spanning more than 256 values, when a slice's int32 sums could
// overflow (Lg * qmax * 128 >= 2^31: more than 132,000 columns in one group at 8 bits) and for more than 65535
// groups (a grid dimension of actq.cu).
int nt_actq_layout_make(nt_actq_layout *lay, const nt_actq *a, nt_err *err);
// nt_actq_layout_make + nt_gpu_actq_upload_layout.
int nt_gpu_actq_upload(nt_gpu_actq **d, const nt_actq *a, nt_err *err);

// ------------------------------------------------------------------------------ scalar CPU references
// Y (M, N) fp32 = X (M, K) . W^T, W dequantized from q's arrays by a scalar bit-stream read of qformat.h's layout
// (independent of pack.c), accumulated in double. w_f16: round each dequantized weight to fp16 first (what the
// tensor-core kernel feeds the MMA); off: fp32 weights (what the GEMV kernel uses).
void nt_ref_qgemm(const nt_qlinear *q, const uint16_t *X /*(M, K) fp16*/, int M, bool w_f16, float *Y /*(M, N)*/);
void nt_ref_qgemm_f32(const nt_qlinear *q, const float *X /*(M, K)*/, int M, bool w_f16, float *Y /*(M, N)*/);
// The GEMV kernel's arithmetic on the CPU, over a layout: per pack, fp32 sums of x * (q - zero) times the pack's
// group scale, codes, scales and zeros read from the interleaved arrays (qinterleave.h's maps), kmap gathers X,
// padding reads zero. Checks the layout (act-order, padding, interleaving) without a GPU.
void nt_ref_qgemm_layout(const nt_qgemm_layout *lay, const uint16_t *X /*(M, K) fp16*/, int M, float *Y /*(M, N)*/);
#endif

// Y (M, N) fp32 = X (M, K) fp16 . W^T, W (N, K) fp16, double accumulation: the reference of nt_gpu_gemm_f16.
void nt_ref_gemm_f16(const uint16_t *X, const uint16_t *W, int M, int N, int K, float *Y);

// ------------------------------------------------------------------ the forward pass on the device (eval --device cuda)
#ifndef __cplusplus
#include "transformer.h"

// A model on the device: quantized block linears (nt_linear.q) as nt_gpu_qlinear for the kernels above, or, with
// quantized activations (nt_linear.aq: W8A8, W4A8, W4A4), as nt_gpu_actq (a float linear with quantized
// activations is refused, naming it), every other matrix (dense linears, lm_head) in fp16 for cuBLASLt,
// embeddings, norms, biases and RoPE tables in fp32, and the activations of one sequence of up to max_tokens
// positions. The pass mirrors transformer.c (all of its architectures) in fp32 arithmetic over fp16 activations
// with an fp32 residual stream (kernels/gpu_forward.c).
typedef struct nt_gpu_model nt_gpu_model;
int nt_gpu_model_upload(nt_gpu_ctx *ctx, nt_gpu_model **g, const nt_model *m, int max_tokens, nt_err *err);
void nt_gpu_model_free(nt_gpu_model **g);
// The final hidden states of tokens (n) as one fresh sequence (positions 0..n-1), kept on the device.
int nt_gpu_forward(nt_gpu_ctx *ctx, nt_gpu_model *g, const int32_t *tokens, int n, nt_err *err);
// logits (rows, vocab) fp32, host = the hidden rows row0..row0+rows-1 of the last nt_gpu_forward . lm_head^T.
int nt_gpu_logits(nt_gpu_ctx *ctx, nt_gpu_model *g, int row0, int rows, float *logits, nt_err *err);
// Perplexity's unit: nll[t] = -log softmax(logits[t])[tokens[t+1]] for t < n-1 (nt_nll_from_logits on the
// host), the window scored from a fresh context.
int nt_gpu_window_nll(nt_gpu_ctx *ctx, nt_gpu_model *g, const int32_t *tokens, int n, double *nll, nt_err *err);
#endif

#ifdef __cplusplus
}
#endif
