// forward.cu: the device side of the GPU forward pass besides the matrix products (gpu_ops.h; the model is strung
// together in gpu_forward.c). Straightforward kernels, fp32 arithmetic over fp16 activations and an fp32 residual
// stream; the references are transformer.c's CPU functions (tests/test_gpu_forward.c compares whole models).
// What is deliberately simple: attention is one block per (query, head) with the scores in shared memory, O(n^2)
// work and no flash-style tiling; it serves perplexity evaluation, where the linears dominate at model scale.
#include "gpu_common.cuh"
#include "gpu_ops.h"

#define OP_THREADS 256

// ------------------------------------------------------------------------------------------- reductions

// Sum of v over the block (blockDim.x == OP_THREADS); every thread gets it. red: OP_THREADS floats of shared
// memory, free again on return.
__device__ float block_sum(float v, float *red) {
    const int tid = threadIdx.x;
    red[tid] = v;
    __syncthreads();
    for (int s = OP_THREADS / 2; s > 0; s >>= 1) {
        if (tid < s) red[tid] += red[tid + s];
        __syncthreads();
    }
    float r = red[0];
    __syncthreads();
    return r;
}

__device__ float block_max(float v, float *red) {
    const int tid = threadIdx.x;
    red[tid] = v;
    __syncthreads();
    for (int s = OP_THREADS / 2; s > 0; s >>= 1) {
        if (tid < s) red[tid] = fmaxf(red[tid], red[tid + s]);
        __syncthreads();
    }
    float r = red[0];
    __syncthreads();
    return r;
}

static int grid_for(size_t count) {
    size_t b = (count + OP_THREADS - 1) / OP_THREADS;
    return (int)(b < 65535 ? (b ? b : 1) : 65535);
}

// ---------------------------------------------------------------------------------------------- kernels

__global__ void embed_kernel(const int32_t *__restrict__ tokens, int n, const float *__restrict__ table, int E,
                             float *__restrict__ out) {
    size_t total = (size_t)n * E;
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < total; i += (size_t)gridDim.x * blockDim.x) {
        int t = (int)(i / E), e = (int)(i - (size_t)t * E);
        out[i] = table[(size_t)tokens[t] * E + e];
    }
}

__global__ void add_rows_kernel(float *__restrict__ x, const float *__restrict__ table, int row0, int n, int D) {
    size_t total = (size_t)n * D;
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < total; i += (size_t)gridDim.x * blockDim.x)
        x[i] += table[(size_t)row0 * D + i];
}

// One block per row: mean (LayerNorm), then the variance about it in a second pass (as the CPU reference does,
// no E[x^2] - E[x]^2 cancellation), then the affine step.
__global__ void norm_kernel(const float *x, int D, const float *__restrict__ w, const float *__restrict__ b, int rms,
                            float eps, float *y32, __half *__restrict__ y16) {
    __shared__ float red[OP_THREADS];
    const float *xr = x + (size_t)blockIdx.x * D;
    float mean = 0.0f;
    if (!rms) {
        float s = 0.0f;
        for (int i = threadIdx.x; i < D; i += OP_THREADS) s += xr[i];
        mean = block_sum(s, red) / (float)D;
    }
    float s2 = 0.0f;
    for (int i = threadIdx.x; i < D; i += OP_THREADS) {
        float d = xr[i] - mean;
        s2 += d * d;
    }
    const float inv = rsqrtf(block_sum(s2, red) / (float)D + eps);
    // every thread has read its elements of the row (block_sum synchronizes), so y32 may overwrite x
    for (int i = threadIdx.x; i < D; i += OP_THREADS) {
        float v = (xr[i] - mean) * inv;
        if (w) v *= w[i];
        if (b) v += b[i];
        if (y32) y32[(size_t)blockIdx.x * D + i] = v;
        if (y16) y16[(size_t)blockIdx.x * D + i] = __float2half_rn(v);
    }
}

__global__ void to_f16_kernel(const float *__restrict__ x, size_t count, __half *__restrict__ y) {
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < count; i += (size_t)gridDim.x * blockDim.x)
        y[i] = __float2half_rn(x[i]);
}

__global__ void bias_kernel(__half *__restrict__ y, const float *__restrict__ b, int n, int N) {
    size_t total = (size_t)n * N;
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < total; i += (size_t)gridDim.x * blockDim.x)
        y[i] = __float2half_rn(__half2float(y[i]) + b[i % N]);
}

__global__ void residual_kernel(float *x, const float *base, const __half *__restrict__ y, size_t count) {
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < count; i += (size_t)gridDim.x * blockDim.x)
        x[i] = (base ? base[i] : x[i]) + __half2float(y[i]);
}

// One thread per (position, head, pair i < hd/2): (a, b) = (x[i], x[i + hd/2]) rotated by the position's angle.
__global__ void rope_kernel(__half *__restrict__ x, int n, int heads, int hd, const float *__restrict__ cs,
                            const float *__restrict__ sn) {
    const int half = hd / 2;
    size_t total = (size_t)n * heads * half;
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < total; i += (size_t)gridDim.x * blockDim.x) {
        int p = (int)(i % half);
        size_t th = i / half; // t * heads + h
        int t = (int)(th / heads);
        __half *v = x + th * hd;
        float a = __half2float(v[p]), b = __half2float(v[p + half]);
        float c = cs[(size_t)t * half + p], s = sn[(size_t)t * half + p];
        v[p] = __float2half_rn(a * c - b * s);
        v[p + half] = __float2half_rn(b * c + a * s);
    }
}

// Block (t, h): scores of query t against keys 0..t in shared memory, softmax, then out = P . V. hd <= 256.
// Its static shared memory (q and the reduction scratch) counts against the same per-block limits as the
// dynamic scores: 48 KB without the opt-in, the device's opt-in maximum with it.
#define ATT_MAX_HD 256
#define ATT_STATIC_SMEM ((ATT_MAX_HD + OP_THREADS) * sizeof(float))
__global__ void attention_kernel(const __half *__restrict__ q, const __half *__restrict__ k,
                                 const __half *__restrict__ v, int H, int KVH, int hd, const float *__restrict__ alibi,
                                 __half *__restrict__ out) {
    NT_DYN_SMEM(float, sc); // (t + 1) scores, then probabilities
    __shared__ float qs[ATT_MAX_HD];
    __shared__ float red[OP_THREADS];
    const int t = blockIdx.x, h = blockIdx.y, kvh = h / (H / KVH), qd = H * hd, kvd = KVH * hd;
    const float scale = rsqrtf((float)hd), slope = alibi ? alibi[h] : 0.0f;
    for (int d = threadIdx.x; d < hd; d += OP_THREADS) qs[d] = __half2float(q[(size_t)t * qd + h * hd + d]);
    __syncthreads();
    float mx = -INFINITY;
    for (int j = threadIdx.x; j <= t; j += OP_THREADS) {
        const __half *kj = k + (size_t)j * kvd + kvh * hd;
        float s = 0.0f;
        for (int d = 0; d < hd; d++) s = fmaf(qs[d], __half2float(kj[d]), s);
        s = s * scale + slope * (float)(j - t);
        sc[j] = s;
        mx = fmaxf(mx, s);
    }
    mx = block_max(mx, red);
    float sum = 0.0f;
    for (int j = threadIdx.x; j <= t; j += OP_THREADS) {
        float e = __expf(sc[j] - mx);
        sc[j] = e;
        sum += e;
    }
    const float inv = 1.0f / block_sum(sum, red); // block_sum synchronizes: all of sc is written
    for (int d = threadIdx.x; d < hd; d += OP_THREADS) {
        float acc = 0.0f;
        for (int j = 0; j <= t; j++) acc = fmaf(sc[j], __half2float(v[(size_t)j * kvd + kvh * hd + d]), acc);
        out[(size_t)t * qd + h * hd + d] = __float2half_rn(acc * inv);
    }
}

// transformer.h's nt_act: 0 ReLU, 1 SiLU, 2 exact GELU, 3 tanh GELU (gpu_forward.c asserts the numbering).
__device__ float act_f(int a, float x) {
    switch (a) {
    case 0: return x > 0.0f ? x : 0.0f;
    case 1: return x / (1.0f + expf(-x));
    case 2: return 0.5f * x * (1.0f + erff(x * 0.70710678118654752f));
    default: return 0.5f * x * (1.0f + tanhf(0.79788456080286536f * (x + 0.044715f * x * x * x)));
    }
}

__global__ void act_kernel(__half *__restrict__ h, const __half *__restrict__ gate, size_t count, int a) {
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < count; i += (size_t)gridDim.x * blockDim.x) {
        float x = __half2float(h[i]);
        h[i] = __float2half_rn(gate ? act_f(a, __half2float(gate[i])) * x : act_f(a, x));
    }
}

// ---------------------------------------------------------------------------------------------- launchers

int nt_gpu_op_embed(nt_gpu_ctx *ctx, const int32_t *tokens, int n, const float *table, int E, float *out, nt_err *err) {
    nt_launch(embed_kernel, grid_for((size_t)n * E), OP_THREADS, 0, ctx->stream, tokens, n, table, E, out);
    NT_CUDA_LAUNCHED("embed_kernel");
    return 0;
}

int nt_gpu_op_add_rows(nt_gpu_ctx *ctx, float *x, const float *table, int row0, int n, int D, nt_err *err) {
    nt_launch(add_rows_kernel, grid_for((size_t)n * D), OP_THREADS, 0, ctx->stream, x, table, row0, n, D);
    NT_CUDA_LAUNCHED("add_rows_kernel");
    return 0;
}

int nt_gpu_op_norm(nt_gpu_ctx *ctx, const float *x, int n, int D, const float *w, const float *b, bool rms, float eps,
                   float *y32, uint16_t *y16, nt_err *err) {
    nt_launch(norm_kernel, n, OP_THREADS, 0, ctx->stream, x, D, w, b, (int)rms, eps, y32,
              reinterpret_cast<__half *>(y16));
    NT_CUDA_LAUNCHED("norm_kernel");
    return 0;
}

int nt_gpu_op_to_f16(nt_gpu_ctx *ctx, const float *x, size_t count, uint16_t *y, nt_err *err) {
    nt_launch(to_f16_kernel, grid_for(count), OP_THREADS, 0, ctx->stream, x, count, reinterpret_cast<__half *>(y));
    NT_CUDA_LAUNCHED("to_f16_kernel");
    return 0;
}

int nt_gpu_op_bias(nt_gpu_ctx *ctx, uint16_t *y, const float *b, int n, int N, nt_err *err) {
    nt_launch(bias_kernel, grid_for((size_t)n * N), OP_THREADS, 0, ctx->stream, reinterpret_cast<__half *>(y), b, n, N);
    NT_CUDA_LAUNCHED("bias_kernel");
    return 0;
}

int nt_gpu_op_residual(nt_gpu_ctx *ctx, float *x, const float *base, const uint16_t *y, int n, int D, nt_err *err) {
    size_t count = (size_t)n * D;
    nt_launch(residual_kernel, grid_for(count), OP_THREADS, 0, ctx->stream, x, base,
              reinterpret_cast<const __half *>(y), count);
    NT_CUDA_LAUNCHED("residual_kernel");
    return 0;
}

int nt_gpu_op_rope(nt_gpu_ctx *ctx, uint16_t *x, int n, int heads, int hd, const float *cs, const float *sn,
                   nt_err *err) {
    nt_launch(rope_kernel, grid_for((size_t)n * heads * (hd / 2)), OP_THREADS, 0, ctx->stream,
              reinterpret_cast<__half *>(x), n, heads, hd, cs, sn);
    NT_CUDA_LAUNCHED("rope_kernel");
    return 0;
}

int nt_gpu_op_attention(nt_gpu_ctx *ctx, const uint16_t *q, const uint16_t *k, const uint16_t *v, int n, int H,
                        int KVH, int hd, const float *alibi, uint16_t *out, nt_err *err) {
    if (hd > 256 || KVH < 1 || H % KVH) return nt_fail(err, "attention: head_dim %d, %d heads over %d K/V heads", hd, H, KVH);
    const size_t smem = (size_t)n * sizeof(float); // dynamic: the scores
    if (smem + ATT_STATIC_SMEM > 48 * 1024) {
        if (smem + ATT_STATIC_SMEM > ctx->info.smem_optin_bytes)
            return nt_fail(err, "attention: %d positions need %zu bytes of shared memory (the device has %zu)", n,
                           smem + ATT_STATIC_SMEM, ctx->info.smem_optin_bytes);
        NT_CUDA_TRY(cudaFuncSetAttribute(attention_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem));
    }
    nt_launch(attention_kernel, dim3(n, H), OP_THREADS, smem, ctx->stream, reinterpret_cast<const __half *>(q),
              reinterpret_cast<const __half *>(k), reinterpret_cast<const __half *>(v), H, KVH, hd, alibi,
              reinterpret_cast<__half *>(out));
    NT_CUDA_LAUNCHED("attention_kernel");
    return 0;
}

int nt_gpu_op_act(nt_gpu_ctx *ctx, uint16_t *h, const uint16_t *gate, size_t count, int act, nt_err *err) {
    nt_launch(act_kernel, grid_for(count), OP_THREADS, 0, ctx->stream, reinterpret_cast<__half *>(h),
              reinterpret_cast<const __half *>(gate), count, act);
    NT_CUDA_LAUNCHED("act_kernel");
    return 0;
}
