// cublaslt.cu: the dense baseline of the benchmark: Y (M, N) fp16 = X (M, K) fp16 . W^T with W (N, K) fp16,
// through cublasLtMatmul with fp32 compute (reference: nt_ref_gemm_f16 in kernels_ref.c); and the W8A8 products,
// int8 x int8 -> int32 on the IMMA path: with a dequantizing kernel after it (nt_gpu_gemm_i8, nt_ref_gemm_i8), and
// batched over the group slices of a linear with quantized activations, int32 out (nt_gpu_gemm_i8_i32, actq.cu).
//
// Row-major Y (M, N) is column-major Y^T (N, M), so the call computes Y^T = W . X^T: A = W seen column-major as
// (K, N) with ld K (or the slices' ld) and op T, B = X as (K, M) likewise and op N, C = D = Y^T (N, M) with ld N;
// batch b's A and B start b*K columns on, its C b*M*N values on. The algorithm is cuBLASLt's first heuristic answer
// for the shape under a 32 MiB workspace (NVIDIA's advice for Hopper); descriptors and algorithm are cached per
// (M, N, K, ld, batch, output type), so a timed call does no host-side planning.
#include <cublasLt.h>
#include <string.h>

#include "gpu_common.cuh"

#define LT_WORKSPACE ((size_t)32 << 20)
#define LT_PLANS 64

typedef struct {
    int M, N, K;
    int ld, batch; // X's and W's leading dimension (K but for slices); slices side by side (1: a plain product)
    int out32; // Y in fp32 (nt_gpu_gemm_f16_f32) rather than fp16; 2: the int8 product (int32 out)
    bool none; // cuBLASLt had no algorithm: remembered, so a caller with a fallback does not ask again each call
    cublasLtMatmulDesc_t op;
    cublasLtMatrixLayout_t a, b, c;
    cublasLtMatmulAlgo_t algo;
} lt_plan;

struct nt_lt_state {
    cublasLtHandle_t handle;
    void *workspace;
    lt_plan plans[LT_PLANS];
    int n_plans, next; // a full cache replaces round-robin
};

static const char *lt_status_name(cublasStatus_t s) {
    switch (s) {
    case CUBLAS_STATUS_SUCCESS: return "success";
    case CUBLAS_STATUS_NOT_INITIALIZED: return "not initialized";
    case CUBLAS_STATUS_ALLOC_FAILED: return "allocation failed";
    case CUBLAS_STATUS_INVALID_VALUE: return "invalid value";
    case CUBLAS_STATUS_ARCH_MISMATCH: return "architecture mismatch";
    case CUBLAS_STATUS_EXECUTION_FAILED: return "execution failed";
    case CUBLAS_STATUS_INTERNAL_ERROR: return "internal error";
    case CUBLAS_STATUS_NOT_SUPPORTED: return "not supported";
    default: return "error";
    }
}

#define LT_TRY(call)                                                                                         \
    do {                                                                                                     \
        cublasStatus_t s_ = (call);                                                                          \
        if (s_ != CUBLAS_STATUS_SUCCESS)                                                                     \
            return nt_fail(err, "%s:%d: %s: cuBLASLt %s (%d)", __FILE__, __LINE__, #call, lt_status_name(s_), \
                           (int)s_);                                                                         \
    } while (0)

static void plan_destroy(lt_plan *p) {
    if (p->op) cublasLtMatmulDescDestroy(p->op);
    if (p->a) cublasLtMatrixLayoutDestroy(p->a);
    if (p->b) cublasLtMatrixLayoutDestroy(p->b);
    if (p->c) cublasLtMatrixLayoutDestroy(p->c);
    memset(p, 0, sizeof *p);
}

void nt_gpu_lt_free(nt_gpu_ctx *ctx) {
    struct nt_lt_state *lt = ctx->lt;
    if (!lt) return;
    for (int i = 0; i < lt->n_plans; i++) plan_destroy(&lt->plans[i]);
    if (lt->workspace) cudaFree(lt->workspace);
    if (lt->handle) cublasLtDestroy(lt->handle);
    free(lt);
    ctx->lt = NULL;
}

static int lt_init(nt_gpu_ctx *ctx, nt_err *err) {
    if (ctx->lt) return 0;
    struct nt_lt_state *lt = (struct nt_lt_state *)calloc(1, sizeof *lt);
    if (!lt) return nt_fail(err, "out of memory");
    ctx->lt = lt;
    LT_TRY(cublasLtCreate(&lt->handle));
    NT_CUDA_TRY(cudaMalloc(&lt->workspace, LT_WORKSPACE));
    return 0;
}

static int plan_make(struct nt_lt_state *lt, lt_plan *p, int M, int N, int K, int ld, int batch, int out32,
                     nt_err *err) {
    memset(p, 0, sizeof *p);
    p->M = M;
    p->N = N;
    p->K = K;
    p->ld = ld;
    p->batch = batch;
    p->out32 = out32;
    cublasOperation_t ta = CUBLAS_OP_T, tb = CUBLAS_OP_N;
    bool i8 = out32 == 2; // IMMA: int8 A and B (TN, as here), int32 compute and scale, int32 D
    cudaDataType_t in_t = i8 ? CUDA_R_8I : CUDA_R_16F, out_t = i8 ? CUDA_R_32I : out32 ? CUDA_R_32F : CUDA_R_16F;
    LT_TRY(cublasLtMatmulDescCreate(&p->op, i8 ? CUBLAS_COMPUTE_32I : CUBLAS_COMPUTE_32F, i8 ? CUDA_R_32I : CUDA_R_32F));
    LT_TRY(cublasLtMatmulDescSetAttribute(p->op, CUBLASLT_MATMUL_DESC_TRANSA, &ta, sizeof ta));
    LT_TRY(cublasLtMatmulDescSetAttribute(p->op, CUBLASLT_MATMUL_DESC_TRANSB, &tb, sizeof tb));
    LT_TRY(cublasLtMatrixLayoutCreate(&p->a, in_t, (uint64_t)K, (uint64_t)N, (int64_t)ld)); // W^T view
    LT_TRY(cublasLtMatrixLayoutCreate(&p->b, in_t, (uint64_t)K, (uint64_t)M, (int64_t)ld)); // X^T view
    LT_TRY(cublasLtMatrixLayoutCreate(&p->c, out_t, (uint64_t)N, (uint64_t)M, (int64_t)N)); // Y^T view
    if (batch > 1) {
        const int32_t count = batch;
        const int64_t in_stride = K, out_stride = (int64_t)M * N;
        cublasLtMatrixLayout_t lays[3] = {p->a, p->b, p->c};
        for (int i = 0; i < 3; i++) {
            const int64_t *stride = i < 2 ? &in_stride : &out_stride;
            LT_TRY(cublasLtMatrixLayoutSetAttribute(lays[i], CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT, &count, sizeof count));
            LT_TRY(cublasLtMatrixLayoutSetAttribute(lays[i], CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET, stride,
                                                    sizeof *stride));
        }
    }
    cublasLtMatmulPreference_t pref = NULL;
    LT_TRY(cublasLtMatmulPreferenceCreate(&pref));
    size_t ws = LT_WORKSPACE;
    cublasStatus_t s = cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws,
                                                            sizeof ws);
    cublasLtMatmulHeuristicResult_t res;
    memset(&res, 0, sizeof res);
    int found = 0;
    if (s == CUBLAS_STATUS_SUCCESS)
        s = cublasLtMatmulAlgoGetHeuristic(lt->handle, p->op, p->a, p->b, p->c, p->c, pref, 1, &res, &found);
    cublasLtMatmulPreferenceDestroy(pref);
    if (s != CUBLAS_STATUS_SUCCESS || found < 1)
        return nt_fail(err, "cuBLASLt has no algorithm for the %s GEMM M=%d N=%d K=%d ld=%d batch=%d (%s)",
                       i8 ? "int8" : "fp16", M, N, K, ld, batch, lt_status_name(s));
    p->algo = res.algo;
    return 0;
}

static int plan_get(struct nt_lt_state *lt, int M, int N, int K, int ld, int batch, int out32, lt_plan **out,
                    nt_err *err) {
    for (int i = 0; i < lt->n_plans; i++) {
        const lt_plan *p = &lt->plans[i];
        if (p->M == M && p->N == N && p->K == K && p->ld == ld && p->batch == batch && p->out32 == out32) {
            if (p->none)
                return nt_fail(err, "cuBLASLt has no algorithm for the %s GEMM M=%d N=%d K=%d ld=%d batch=%d",
                               out32 == 2 ? "int8" : "fp16", M, N, K, ld, batch);
            *out = &lt->plans[i];
            return 0;
        }
    }
    int slot = lt->n_plans < LT_PLANS ? lt->n_plans++ : (lt->next++ % LT_PLANS);
    plan_destroy(&lt->plans[slot]);
    if (plan_make(lt, &lt->plans[slot], M, N, K, ld, batch, out32, err)) {
        plan_destroy(&lt->plans[slot]); // a zeroed slot, then marked: the shape fails again without asking
        lt_plan *p = &lt->plans[slot];
        p->M = M, p->N = N, p->K = K, p->ld = ld, p->batch = batch, p->out32 = out32, p->none = true;
        return -1;
    }
    *out = &lt->plans[slot];
    return 0;
}

static int lt_gemm(nt_gpu_ctx *ctx, const uint16_t *X, const uint16_t *W, void *Y, int M, int N, int K, int out32,
                   nt_err *err) {
    if (M < 1 || N < 1 || K < 1) return nt_fail(err, "gemm: empty shape M=%d N=%d K=%d", M, N, K);
    if (lt_init(ctx, err)) return -1;
    lt_plan *p = NULL;
    if (plan_get(ctx->lt, M, N, K, K, 1, out32, &p, err)) return -1;
    const float alpha = 1.0f, beta = 0.0f;
    LT_TRY(cublasLtMatmul(ctx->lt->handle, p->op, &alpha, W, p->a, X, p->b, &beta, Y, p->c, Y, p->c, &p->algo,
                          ctx->lt->workspace, LT_WORKSPACE, ctx->stream));
    return 0;
}

int nt_gpu_gemm_f16(nt_gpu_ctx *ctx, const uint16_t *X, const uint16_t *W, uint16_t *Y, int M, int N, int K,
                    nt_err *err) {
    return lt_gemm(ctx, X, W, Y, M, N, K, 0, err);
}

int nt_gpu_gemm_f16_f32(nt_gpu_ctx *ctx, const uint16_t *X, const uint16_t *W, float *Y, int M, int N, int K,
                        nt_err *err) {
    return lt_gemm(ctx, X, W, Y, M, N, K, 1, err);
}

// y = (sx[m] * sw[n]) * (float)acc over Y (M, N) row-major (= the int32 D^T the product wrote).
__global__ void i8_dequant_kernel(const int32_t *acc, const float *sx, const float *sw, float *Y, int M, int N) {
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= (size_t)M * N) return;
    int m = (int)(i / N), n = (int)(i % N);
    Y[i] = (sx[m] * sw[n]) * (float)acc[i];
}

int nt_gpu_gemm_i8(nt_gpu_ctx *ctx, const int8_t *Xq, const int8_t *Wq, const float *sx, const float *sw, float *Y,
                   int M, int N, int K, nt_err *err) {
    if (M < 1 || N < 1 || K < 1 || K % 4)
        return nt_fail(err, "int8 gemm: shape M=%d N=%d K=%d (K must be a multiple of 4)", M, N, K);
    if (lt_init(ctx, err) || nt_gpu_ws_reserve(ctx, (size_t)M * N * sizeof(int32_t), err)) return -1;
    lt_plan *p = NULL;
    if (plan_get(ctx->lt, M, N, K, K, 1, 2, &p, err)) return -1;
    const int32_t alpha = 1, beta = 0;
    int32_t *acc = (int32_t *)ctx->ws;
    LT_TRY(cublasLtMatmul(ctx->lt->handle, p->op, &alpha, Wq, p->a, Xq, p->b, &beta, acc, p->c, acc, p->c, &p->algo,
                          ctx->lt->workspace, LT_WORKSPACE, ctx->stream));
    size_t total = (size_t)M * N;
    i8_dequant_kernel<<<(unsigned)((total + 255) / 256), 256, 0, ctx->stream>>>(acc, sx, sw, Y, M, N);
    NT_CUDA_TRY(cudaGetLastError());
    return 0;
}

int nt_gpu_gemm_i8_i32(nt_gpu_ctx *ctx, const int8_t *Xq, const int8_t *Wq, int32_t *S, int M, int N, int K, int ld,
                       int batch, nt_err *err) {
    if (M < 1 || N < 1 || K < 1 || batch < 1 || K % 4 || N % 4 || ld % 4 || ld < batch * K)
        return nt_fail(err, "int8 gemm: shape M=%d N=%d K=%d ld=%d batch=%d (K, N and ld multiples of 4, ld >= "
                            "batch * K)", M, N, K, ld, batch);
    if (((uintptr_t)Xq | (uintptr_t)Wq | (uintptr_t)S) % 4)
        return nt_fail(err, "int8 gemm: pointers not 4-byte aligned");
    if (lt_init(ctx, err)) return -1;
    const int32_t alpha = 1, beta = 0;
    lt_plan *p = NULL;
    nt_err ignored;
    if (batch > 1 && plan_get(ctx->lt, M, N, K, ld, batch, 2, &p, &ignored) == 0) {
        LT_TRY(cublasLtMatmul(ctx->lt->handle, p->op, &alpha, Wq, p->a, Xq, p->b, &beta, S, p->c, S, p->c, &p->algo,
                              ctx->lt->workspace, LT_WORKSPACE, ctx->stream));
        return 0;
    }
    // no batched algorithm for the shape: one product per slice
    if (plan_get(ctx->lt, M, N, K, ld, 1, 2, &p, err)) return -1;
    for (int b = 0; b < batch; b++) {
        int32_t *Sb = S + (size_t)b * M * N;
        LT_TRY(cublasLtMatmul(ctx->lt->handle, p->op, &alpha, Wq + (size_t)b * K, p->a, Xq + (size_t)b * K, p->b,
                              &beta, Sb, p->c, Sb, p->c, &p->algo, ctx->lt->workspace, LT_WORKSPACE, ctx->stream));
    }
    return 0;
}
