// actq.cu: linears with quantized activations on the device (gpu.h's nt_gpu_actq: W8A8, W4A8, W4A4, dynamic
// per-token or static per-tensor scales), the fast version of model/actquant.c's nt_actq_forward for the fp16
// inputs of the device forward pass. The layout (groups as equal slices of Lg columns, int8 weight codes with an
// integer correction) is made once at upload by actq_layout.c. Per call:
//   1. actq_scale_kernel, a block per row: s_t = max|x_t| / qmax (1 for an all-zero row), or the static scale;
//   2. actq_codes_kernel, a block per (row, group slice): xq = clamp(rint(x / s_t), -qmax, qmax) as int8, x read
//      through col[] in group order (zero codes in the padding), and R[t][g], the slice's sum of codes;
//   3. nt_gpu_gemm_i8_i32 (cublaslt.cu): every slice's int8 x int8 -> int32 product, one strided-batched IMMA GEMM;
//   4. actq_epilogue_kernel, a thread per output: acc = sum over g, ascending, of (double)scale[g][n] *
//      (double)(I + c[g][n] R[t][g]); y = (float)((double)s_t * acc) (+ b[n] in fp32), rounded to fp16.
// Steps 3 and 4 go by chunks of rows whose int32 partials (G, rows, Np) fit ACTQ_PARTIAL_BYTES of scratch.
//
// Why the result is nt_actq_forward's, bit for bit, for the same x (before the one rounding to fp16):
// - the codes: x / s is one IEEE fp32 division on both sides (__fdiv_rn here; `/` in C, built without fast
//   math), rintf rounds half to even on both, a max is exact in any order and max / qmax is one fp32 division;
// - the group sums: the CPU's gsum is the exact integer I (actquant.h); here the IMMA sum of xq * w8 is exact
//   in int32 (actq_layout.c bounds a slice), and adding c R in int64 gives the same integer, since w = w8 + c
//   column by column; both widen it exactly to double;
// - the dequantization: (double)scale * I is exact in double (an fp16 scale has 11 significant bits and
//   |I| <= 127 * 255 * K < 2^42), so each step is the one rounding of acc + scale * I whether or not a compiler
//   contracts the CPU's `acc += s * I` into an FMA; here __dmul_rn / __dadd_rn keep nvcc from contracting
//   anything (the exact product makes that moot, but the order of roundings then reads off the source), the
//   groups are added in the same ascending order from acc = 0, and the last steps are the same: the double
//   product with s_t rounded once to fp32, then the fp32 bias add.
#include <string.h>

#include "gpu_common.cuh"

#define ACTQ_THREADS 128
#ifdef NT_CUDA_EMU
#define ACTQ_PARTIAL_BYTES ((size_t)64 << 10) // the emulated tests' shapes then go by several chunks of rows
#else
#define ACTQ_PARTIAL_BYTES ((size_t)256 << 20) // int32 partials of one chunk of rows
#endif

struct nt_gpu_actq {
    int N, K, Np, G, Lg, Kp, qmax, is_static;
    float scale;
    int32_t *col;  // (Kp) original column, -1 for padding
    int8_t *w8;    // (Np, Kp)
    int32_t *corr; // (G, N) or NULL
    float *wscale; // (G, N)
};

// ---------------------------------------------------------------------------------------------- kernels

// Block t: sx[t] = max_k |x[t][k]| / qmax (1 for a zero row), or the static scale.
__global__ void actq_scale_kernel(const __half *__restrict__ X, int K, int qmax, int is_static, float scale,
                                  float *__restrict__ sx) {
    __shared__ float red[ACTQ_THREADS];
    const int t = blockIdx.x, tid = threadIdx.x;
    if (is_static) {
        if (tid == 0) sx[t] = scale;
        return;
    }
    float m = 0.0f;
    for (int k = tid; k < K; k += ACTQ_THREADS) m = fmaxf(m, fabsf(__half2float(X[(size_t)t * K + k])));
    red[tid] = m;
    __syncthreads();
    for (int s = ACTQ_THREADS / 2; s > 0; s >>= 1) {
        if (tid < s) red[tid] = fmaxf(red[tid], red[tid + s]);
        __syncthreads();
    }
    if (tid == 0) sx[t] = red[0] > 0.0f ? __fdiv_rn(red[0], (float)qmax) : 1.0f;
}

// Block (t, g): the codes of row t's slice g (Lg columns of xq (M, Kp), group order) and their sum R[t][g].
__global__ void actq_codes_kernel(const __half *__restrict__ X, int K, const int32_t *__restrict__ col, int Kp,
                                  int Lg, int G, int qmax, const float *__restrict__ sx, int8_t *__restrict__ xq,
                                  int32_t *__restrict__ R) {
    __shared__ int red[ACTQ_THREADS];
    const int t = blockIdx.x, g = blockIdx.y, tid = threadIdx.x;
    const float s = sx[t], lim = (float)qmax;
    int sum = 0;
    for (int i = tid; i < Lg; i += ACTQ_THREADS) {
        const size_t p = (size_t)g * Lg + i;
        const int k = col[p];
        float v = 0.0f;
        if (k >= 0) { // actquant.c's nt_actq_quantize_row, operation for operation
            v = rintf(__fdiv_rn(__half2float(X[(size_t)t * K + k]), s));
            v = v < -lim ? -lim : (v > lim ? lim : v);
        }
        xq[(size_t)t * Kp + p] = (int8_t)v;
        sum += (int)v;
    }
    red[tid] = sum;
    __syncthreads();
    for (int h = ACTQ_THREADS / 2; h > 0; h >>= 1) {
        if (tid < h) red[tid] += red[tid + h];
        __syncthreads();
    }
    if (tid == 0) R[(size_t)t * G + g] = red[0];
}

// Y (rows, N) fp16 and/or Y32 fp32 (either may be NULL) from the int32 sums part (G, rows, Np) of rows whose
// R (rows, G) and sx (rows) are given.
__global__ void actq_epilogue_kernel(const int32_t *__restrict__ part, int rows, int N, int Np, int G,
                                     const int32_t *__restrict__ R, const float *__restrict__ sx,
                                     const int32_t *__restrict__ corr, const float *__restrict__ wscale,
                                     const float *__restrict__ b, __half *__restrict__ Y, float *__restrict__ Y32) {
    const size_t total = (size_t)rows * N;
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < total; i += (size_t)gridDim.x * blockDim.x) {
        const int t = (int)(i / N), n = (int)(i - (size_t)t * N);
        double acc = 0.0;
        for (int g = 0; g < G; g++) {
            long long v = part[((size_t)g * rows + t) * Np + n];
            if (corr) v += (long long)corr[(size_t)g * N + n] * R[(size_t)t * G + g];
            acc = __dadd_rn(acc, __dmul_rn((double)wscale[(size_t)g * N + n], (double)v));
        }
        float y = __double2float_rn(__dmul_rn((double)sx[t], acc));
        if (b) y = __fadd_rn(y, b[n]);
        if (Y) Y[i] = __float2half_rn(y);
        if (Y32) Y32[i] = y;
    }
}

// ---------------------------------------------------------------------------------------------- host side

void nt_gpu_actq_free(nt_gpu_actq **dp) {
    if (!dp || !*dp) return;
    nt_gpu_actq *d = *dp;
    if (d->col) cudaFree(d->col);
    if (d->w8) cudaFree(d->w8);
    if (d->corr) cudaFree(d->corr);
    if (d->wscale) cudaFree(d->wscale);
    free(d);
    *dp = NULL;
}

int nt_gpu_actq_upload_layout(nt_gpu_actq **out, const nt_actq_layout *lay, nt_err *err) {
    *out = NULL;
    nt_gpu_actq *d = (nt_gpu_actq *)calloc(1, sizeof *d);
    if (!d) return nt_fail(err, "out of memory");
    d->N = lay->N, d->K = lay->K, d->Np = lay->Np, d->G = lay->G, d->Lg = lay->Lg, d->Kp = lay->Kp;
    d->qmax = lay->qmax, d->is_static = lay->is_static, d->scale = lay->scale;
    const size_t ncol = (size_t)lay->Kp * 4, nw = (size_t)lay->Np * lay->Kp, ngn = (size_t)lay->G * lay->N * 4;
    cudaError_t e = cudaMalloc(&d->col, ncol);
    if (e == cudaSuccess) e = cudaMemcpy(d->col, lay->col, ncol, cudaMemcpyHostToDevice);
    if (e == cudaSuccess) e = cudaMalloc(&d->w8, nw);
    if (e == cudaSuccess) e = cudaMemcpy(d->w8, lay->w8, nw, cudaMemcpyHostToDevice);
    if (e == cudaSuccess) e = cudaMalloc(&d->wscale, ngn);
    if (e == cudaSuccess) e = cudaMemcpy(d->wscale, lay->wscale, ngn, cudaMemcpyHostToDevice);
    if (e == cudaSuccess && lay->corr) e = cudaMalloc(&d->corr, ngn);
    if (e == cudaSuccess && lay->corr) e = cudaMemcpy(d->corr, lay->corr, ngn, cudaMemcpyHostToDevice);
    if (e != cudaSuccess) {
        nt_gpu_actq_free(&d);
        return nt_fail(err, "%s:%d: uploading a %d x %d linear with quantized activations: %s", __FILE__, __LINE__,
                       lay->N, lay->K, cudaGetErrorString(e));
    }
    *out = d;
    return 0;
}


int nt_gpu_actq_linear(nt_gpu_ctx *ctx, const nt_gpu_actq *a, const uint16_t *X, const float *b, uint16_t *Y,
                       float *Y32, int M, nt_err *err) {
    if (M < 1) return nt_fail(err, "activation-quantized linear: %d rows", M);
    if (!Y && !Y32) return nt_fail(err, "activation-quantized linear: no output given");
    const size_t per_row = (size_t)a->G * a->Np * sizeof(int32_t);
    const size_t fit = ACTQ_PARTIAL_BYTES / per_row; // rows whose partials fit the budget (at least one)
    const int chunk = fit >= (size_t)M ? M : (fit > 0 ? (int)fit : 1);
    // scratch: codes (M, Kp) | R (M, G) | sx (M) | partials (G, chunk, Np), each part 256-byte aligned
    const size_t xq_b = nt_align256((size_t)M * a->Kp), r_b = nt_align256((size_t)M * a->G * 4);
    const size_t s_b = nt_align256((size_t)M * 4);
    if (nt_gpu_ws_reserve(ctx, xq_b + r_b + s_b + (size_t)chunk * per_row, err)) return -1;
    char *ws = (char *)ctx->ws;
    int8_t *xq = (int8_t *)ws;
    int32_t *R = (int32_t *)(ws + xq_b), *part = (int32_t *)(ws + xq_b + r_b + s_b);
    float *sx = (float *)(ws + xq_b + r_b);
    const __half *Xh = reinterpret_cast<const __half *>(X);
    nt_launch(actq_scale_kernel, M, ACTQ_THREADS, 0, ctx->stream, Xh, a->K, a->qmax, a->is_static, a->scale, sx);
    NT_CUDA_LAUNCHED("actq_scale_kernel");
    nt_launch(actq_codes_kernel, dim3(M, a->G), ACTQ_THREADS, 0, ctx->stream, Xh, a->K, (const int32_t *)a->col,
              a->Kp, a->Lg, a->G, a->qmax, (const float *)sx, xq, R);
    NT_CUDA_LAUNCHED("actq_codes_kernel");
    for (int t0 = 0; t0 < M; t0 += chunk) {
        const int rows = M - t0 < chunk ? M - t0 : chunk;
        if (nt_gpu_gemm_i8_i32(ctx, xq + (size_t)t0 * a->Kp, a->w8, part, rows, a->Np, a->Lg, a->Kp, a->G, err))
            return -1;
        const size_t total = (size_t)rows * a->N, blocks = (total + 255) / 256;
        nt_launch(actq_epilogue_kernel, (int)(blocks < 65535 ? blocks : 65535), 256, 0, ctx->stream,
                  (const int32_t *)part, rows, a->N, a->Np, a->G, (const int32_t *)(R + (size_t)t0 * a->G),
                  (const float *)(sx + t0), (const int32_t *)a->corr, (const float *)a->wscale, b,
                  Y ? reinterpret_cast<__half *>(Y) + (size_t)t0 * a->N : (__half *)NULL,
                  Y32 ? Y32 + (size_t)t0 * a->N : (float *)NULL);
        NT_CUDA_LAUNCHED("actq_epilogue_kernel");
    }
    return 0;
}
