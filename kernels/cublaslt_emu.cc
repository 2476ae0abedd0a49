// cublaslt_emu.cc: the dense and int8 products of cublaslt.cu in the emulated build (cuda_emu.h). cuBLASLt itself
// is not emulated: the product is computed on the host (fp16 inputs widened, one OpenBLAS sgemm: fp32
// accumulation), as cuBLASLt's fp32-compute path defines it (cublaslt.cu has its own device test against
// nt_ref_gemm_f16).
#define NT_CUDA_EMU 1
#include <cblas.h>

#include "gpu_common.cuh"

void nt_gpu_lt_free(nt_gpu_ctx *ctx) { (void)ctx; }

// fp16 operands widened exactly to fp32, one sgemm (fp32 accumulation), the result rounded to fp16 or kept.
static int emu_gemm(const uint16_t *X, const uint16_t *W, int M, int N, int K, uint16_t *Y16, float *Y32,
                    nt_err *err) {
    size_t nx = (size_t)M * K, nw = (size_t)N * K, ny = (size_t)M * N;
    float *x = (float *)malloc(nx * sizeof(float)), *w = (float *)malloc(nw * sizeof(float));
    float *y = Y32 ? Y32 : (float *)malloc(ny * sizeof(float));
    int rc = 0;
    if (!x || !w || !y) {
        rc = nt_fail(err, "out of memory");
    } else {
        for (size_t i = 0; i < nx; i++) x[i] = nt_f16_to_f32(X[i]);
        for (size_t i = 0; i < nw; i++) w[i] = nt_f16_to_f32(W[i]);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, M, N, K, 1.0f, x, K, w, K, 0.0f, y, N);
        if (Y16)
            for (size_t i = 0; i < ny; i++) Y16[i] = nt_f32_to_f16(y[i]);
    }
    free(x);
    free(w);
    if (!Y32) free(y);
    return rc;
}

int nt_gpu_gemm_f16(nt_gpu_ctx *ctx, const uint16_t *X, const uint16_t *W, uint16_t *Y, int M, int N, int K,
                    nt_err *err) {
    (void)ctx;
    if (M < 1 || N < 1 || K < 1) return nt_fail(err, "gemm: bad shape %d x %d x %d", M, N, K);
    return emu_gemm(X, W, M, N, K, Y, NULL, err);
}

int nt_gpu_gemm_f16_f32(nt_gpu_ctx *ctx, const uint16_t *X, const uint16_t *W, float *Y, int M, int N, int K,
                        nt_err *err) {
    (void)ctx;
    if (M < 1 || N < 1 || K < 1) return nt_fail(err, "gemm: bad shape %d x %d x %d", M, N, K);
    return emu_gemm(X, W, M, N, K, NULL, Y, err);
}

// int8 x int8 in int32 on the host (exact), then cublaslt.cu's dequantizing expression.
int nt_gpu_gemm_i8(nt_gpu_ctx *ctx, const int8_t *Xq, const int8_t *Wq, const float *sx, const float *sw, float *Y,
                   int M, int N, int K, nt_err *err) {
    (void)ctx;
    if (M < 1 || N < 1 || K < 1 || K % 4) return nt_fail(err, "int8 gemm: shape %d x %d x %d (K a multiple of 4)", M, N, K);
    for (int m = 0; m < M; m++)
        for (int n = 0; n < N; n++) {
            int32_t acc = 0;
            for (int k = 0; k < K; k++) acc += (int32_t)Xq[(size_t)m * K + k] * (int32_t)Wq[(size_t)n * K + k];
            Y[(size_t)m * N + n] = (sx[m] * sw[n]) * (float)acc;
        }
    return 0;
}

// The batched int8 product on the host, exact in int32 (cuBLASLt's IMMA sums are), with cublaslt.cu's checks.
int nt_gpu_gemm_i8_i32(nt_gpu_ctx *ctx, const int8_t *Xq, const int8_t *Wq, int32_t *S, int M, int N, int K, int ld,
                       int batch, nt_err *err) {
    (void)ctx;
    if (M < 1 || N < 1 || K < 1 || batch < 1 || K % 4 || N % 4 || ld % 4 || ld < batch * K)
        return nt_fail(err, "int8 gemm: shape M=%d N=%d K=%d ld=%d batch=%d (K, N and ld multiples of 4, ld >= "
                            "batch * K)", M, N, K, ld, batch);
    if (((uintptr_t)Xq | (uintptr_t)Wq | (uintptr_t)S) % 4)
        return nt_fail(err, "int8 gemm: pointers not 4-byte aligned");
    for (int b = 0; b < batch; b++)
        for (int m = 0; m < M; m++)
            for (int n = 0; n < N; n++) {
                const int8_t *x = Xq + (size_t)m * ld + (size_t)b * K, *w = Wq + (size_t)n * ld + (size_t)b * K;
                int32_t acc = 0;
                for (int k = 0; k < K; k++) acc += (int32_t)x[k] * (int32_t)w[k];
                S[((size_t)b * M + m) * N + n] = acc;
            }
    return 0;
}
