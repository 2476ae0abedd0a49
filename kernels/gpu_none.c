// gpu_none.c: gpu.h in a build without nvcc (CMake leaves it out when the .cu files are built): every device
// call fails with "normtweak built without CUDA", so the tests skip and `normtweak bench` says why. The CPU
// references and the layout (kernels_ref.c) are built in both cases.
#include <string.h>

#include "gpu.h"

#define NO_CUDA "normtweak built without CUDA (configure with nvcc on PATH and -DNT_CUDA=ON)"

struct nt_gpu_ctx {
    int unused;
};
struct nt_gpu_qlinear {
    int unused;
};

int nt_gpu_device_count(nt_err *err) { return nt_fail(err, NO_CUDA); }
int nt_gpu_info_get(int device, nt_gpu_info *info, nt_err *err) {
    (void)device;
    (void)info;
    return nt_fail(err, NO_CUDA);
}
int nt_gpu_ctx_create(nt_gpu_ctx **ctx, int device, nt_err *err) {
    (void)device;
    *ctx = NULL;
    return nt_fail(err, NO_CUDA);
}
void nt_gpu_ctx_free(nt_gpu_ctx **ctx) {
    if (ctx) *ctx = NULL;
}
const nt_gpu_info *nt_gpu_ctx_info(const nt_gpu_ctx *ctx) {
    (void)ctx;
    return NULL;
}
int nt_gpu_malloc(void **p, size_t bytes, nt_err *err) {
    (void)bytes;
    *p = NULL;
    return nt_fail(err, NO_CUDA);
}
void nt_gpu_free(void **p) {
    if (p) *p = NULL;
}
int nt_gpu_upload(void *dst, const void *src, size_t bytes, nt_err *err) {
    (void)dst, (void)src, (void)bytes;
    return nt_fail(err, NO_CUDA);
}
int nt_gpu_download(void *dst, const void *src, size_t bytes, nt_err *err) {
    (void)dst, (void)src, (void)bytes;
    return nt_fail(err, NO_CUDA);
}
int nt_gpu_memset(void *dst, int value, size_t bytes, nt_err *err) {
    (void)dst, (void)value, (void)bytes;
    return nt_fail(err, NO_CUDA);
}
int nt_gpu_sync(nt_err *err) { return nt_fail(err, NO_CUDA); }

int nt_gpu_qlinear_upload_layout(nt_gpu_qlinear **d, const nt_qgemm_layout *lay, nt_err *err) {
    (void)lay;
    *d = NULL;
    return nt_fail(err, NO_CUDA);
}
void nt_gpu_qlinear_free(nt_gpu_qlinear **d) {
    if (d) *d = NULL;
}
size_t nt_gpu_qlinear_weight_bytes(const nt_gpu_qlinear *d) {
    (void)d;
    return 0;
}


int nt_gpu_qgemm(nt_gpu_ctx *ctx, const nt_gpu_qlinear *w, const uint16_t *X, uint16_t *Y, int M, nt_qkernel kernel,
                 nt_err *err) {
    (void)ctx, (void)w, (void)X, (void)Y, (void)M, (void)kernel;
    return nt_fail(err, NO_CUDA);
}
int nt_gpu_qdequantize(nt_gpu_ctx *ctx, const nt_gpu_qlinear *w, uint16_t *W, nt_err *err) {
    (void)ctx, (void)w, (void)W;
    return nt_fail(err, NO_CUDA);
}
int nt_gpu_gemm_f16(nt_gpu_ctx *ctx, const uint16_t *X, const uint16_t *W, uint16_t *Y, int M, int N, int K,
                    nt_err *err) {
    (void)ctx, (void)X, (void)W, (void)Y, (void)M, (void)N, (void)K;
    return nt_fail(err, NO_CUDA);
}
int nt_gpu_gemm_f16_f32(nt_gpu_ctx *ctx, const uint16_t *X, const uint16_t *W, float *Y, int M, int N, int K,
                        nt_err *err) {
    (void)ctx, (void)X, (void)W, (void)Y, (void)M, (void)N, (void)K;
    return nt_fail(err, NO_CUDA);
}
int nt_gpu_gemm_i8(nt_gpu_ctx *ctx, const int8_t *Xq, const int8_t *Wq, const float *sx, const float *sw, float *Y,
                   int M, int N, int K, nt_err *err) {
    (void)ctx, (void)Xq, (void)Wq, (void)sx, (void)sw, (void)Y, (void)M, (void)N, (void)K;
    return nt_fail(err, NO_CUDA);
}
int nt_gpu_gemm_i8_i32(nt_gpu_ctx *ctx, const int8_t *Xq, const int8_t *Wq, int32_t *S, int M, int N, int K, int ld,
                       int batch, nt_err *err) {
    (void)ctx, (void)Xq, (void)Wq, (void)S, (void)M, (void)N, (void)K, (void)ld, (void)batch;
    return nt_fail(err, NO_CUDA);
}
int nt_gpu_actq_upload_layout(nt_gpu_actq **d, const nt_actq_layout *lay, nt_err *err) {
    (void)lay;
    *d = NULL;
    return nt_fail(err, NO_CUDA);
}
void nt_gpu_actq_free(nt_gpu_actq **d) {
    if (d) *d = NULL;
}
int nt_gpu_actq_linear(nt_gpu_ctx *ctx, const nt_gpu_actq *a, const uint16_t *X, const float *b, uint16_t *Y,
                       float *Y32, int M, nt_err *err) {
    (void)ctx, (void)a, (void)X, (void)b, (void)Y, (void)Y32, (void)M;
    return nt_fail(err, NO_CUDA);
}
int nt_gpu_time(nt_gpu_ctx *ctx, nt_gpu_launch_fn launch, void *arg, int copies, double warmup_ms, int batches,
                nt_gpu_timing *t, nt_err *err) {
    (void)ctx, (void)launch, (void)arg, (void)copies, (void)warmup_ms, (void)batches;
    memset(t, 0, sizeof *t);
    return nt_fail(err, NO_CUDA);
}
int nt_gpu_copy_gbps(nt_gpu_ctx *ctx, size_t bytes, int batches, double *gbps, nt_err *err) {
    (void)ctx, (void)bytes, (void)batches;
    *gbps = 0.0;
    return nt_fail(err, NO_CUDA);
}
int nt_gpu_qlinear_clone(nt_gpu_qlinear **copy, const nt_gpu_qlinear *d, nt_err *err) {
    (void)d;
    *copy = NULL;
    return nt_fail(err, NO_CUDA);
}

int nt_gpu_model_upload(nt_gpu_ctx *ctx, nt_gpu_model **g, const nt_model *m, int max_tokens, nt_err *err) {
    (void)ctx, (void)m, (void)max_tokens;
    *g = NULL;
    return nt_fail(err, NO_CUDA);
}
void nt_gpu_model_free(nt_gpu_model **g) {
    if (g) *g = NULL;
}
int nt_gpu_forward(nt_gpu_ctx *ctx, nt_gpu_model *g, const int32_t *tokens, int n, nt_err *err) {
    (void)ctx, (void)g, (void)tokens, (void)n;
    return nt_fail(err, NO_CUDA);
}
int nt_gpu_logits(nt_gpu_ctx *ctx, nt_gpu_model *g, int row0, int rows, float *logits, nt_err *err) {
    (void)ctx, (void)g, (void)row0, (void)rows, (void)logits;
    return nt_fail(err, NO_CUDA);
}
int nt_gpu_window_nll(nt_gpu_ctx *ctx, nt_gpu_model *g, const int32_t *tokens, int n, double *nll, nt_err *err) {
    (void)ctx, (void)g, (void)tokens, (void)n, (void)nll;
    return nt_fail(err, NO_CUDA);
}
