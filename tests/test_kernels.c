// test_kernels.c: the quantized matrix-product kernels of kernels/ (GEMV and tensor-core MMA over quant.h's packed
// format) and the cuBLASLt baseline against their scalar CPU references, over awkward shapes: M from 1 to 1024,
// K not a multiple of the 32-value pack or of 8, odd N and N not a multiple of the 128-channel tile, every bit
// width and group size, symmetric and asymmetric, act-order and arbitrary g_idx.
//
// CPU part (runs everywhere): the reference nt_ref_qgemm against nt_qlinear_dequantize + a plain matmul, and the
// load-time layout (K reordered by group, padded to packs) through nt_ref_qgemm_layout, the kernels' arithmetic.
// GPU part: skipped, with the reason, when there is no CUDA device or the build has no CUDA. Error budget:
// max |y - ref| / max |ref| <= 2e-3 for every bit width (kernel and reference use the same dequantized weights
// and fp32/double accumulation; what is left is the fp16 rounding of Y, 2^-11 relative, and accumulation order),
// and elementwise |y - ref| <= atol + rtol |ref| with atol = 2e-3 max|ref|, rtol = 2e-3.
#include <criterion/criterion.h>
#include <math.h>
#include <string.h>

#include "gpu.h"
#include "quant.h"
#include "testutil.h"

// ---------------------------------------------------------------------------------------------- helpers

static uint64_t g_rng = 0x243f6a8885a308d3ull;
static uint32_t rnd_u32(void) { // xorshift64*
    g_rng ^= g_rng >> 12;
    g_rng ^= g_rng << 25;
    g_rng ^= g_rng >> 27;
    return (uint32_t)((g_rng * 0x2545f4914f6cdd1dull) >> 32);
}
static float rnd_unif(void) { return ((float)(rnd_u32() >> 8) + 0.5f) / 16777216.0f; }
static int rnd_int(int n) { return (int)(rnd_u32() % (uint32_t)n); }

enum order { ORDER_NONE, ORDER_ACT, ORDER_STATIC, ORDER_ANY }; // act-order, act-order + static groups, any g_idx

static void shuffle(int32_t *a, int n) {
    for (int i = 0; i < n; i++) a[i] = i;
    for (int i = n - 1; i > 0; i--) {
        int j = rnd_int(i + 1), t = a[i];
        a[i] = a[j];
        a[j] = t;
    }
}

// A random quantized linear: random codes, fp16 scales in [0.005, 0.02), random zero points (asymmetric).
static nt_qlinear *make_q(int N, int K, int bits, int gs, bool sym, enum order order) {
    nt_qlinear *q = NULL;
    nt_err err = {{0}};
    bool act = order == ORDER_ACT || order == ORDER_STATIC;
    cr_assert(nt_qlinear_alloc(&q, N, K, bits, gs, sym, act, &err) == 0, "%s", err.msg);
    if (order == ORDER_ACT || order == ORDER_STATIC) shuffle(q->perm, K);
    if (order == ORDER_ACT)
        for (int j = 0; j < K; j++) q->g_idx[q->perm[j]] = gs > 0 ? j / gs : 0;
    if (order == ORDER_ANY)
        for (int k = 0; k < K; k++) q->g_idx[k] = rnd_int(q->n_groups);
    int maxq = (1 << bits) - 1;
    uint8_t *codes = malloc((size_t)N * K);
    float *scale = malloc((size_t)q->n_groups * N * sizeof(float)), *zero = malloc((size_t)q->n_groups * N * sizeof(float));
    cr_assert(codes && scale && zero);
    for (size_t i = 0; i < (size_t)N * K; i++) codes[i] = (uint8_t)rnd_int(maxq + 1);
    for (size_t i = 0; i < (size_t)q->n_groups * N; i++) {
        scale[i] = 0.005f + 0.015f * rnd_unif();
        zero[i] = (float)rnd_int(maxq + 1);
    }
    nt_qlinear_pack(q, codes);
    cr_assert(nt_qlinear_set_params(q, scale, zero, &err) == 0, "%s", err.msg);
    cr_assert(nt_qlinear_validate(q, &err) == 0, "%s", err.msg);
    free(codes);
    free(scale);
    free(zero);
    return q;
}

static uint16_t *make_x(int M, int K) {
    uint16_t *X = malloc((size_t)M * K * sizeof *X);
    cr_assert(X);
    for (size_t i = 0; i < (size_t)M * K; i++) X[i] = nt_f32_to_f16(2.0f * rnd_unif() - 1.0f);
    return X;
}

// llm.c's validate_result: |y - ref| <= atol + rtol |ref| elementwise (testutil's tu_count_far; atol = budget *
// max|ref|: a dot product's rounding is relative to the sum of |terms|, i.e. to the output's scale, not to each
// output, which may be a near-cancellation; rtol = budget: fp16 rounding of Y itself, 2^-11 < budget), NaN never
// passes, the first mismatches are printed; and max |y - ref| <= budget * max |ref|. Returns that normalized error.
static double validate_result(const char *what, const float *y, const float *ref, int M, int N, double budget) {
    double maxref = 0.0, maxerr = 0.0;
    for (size_t i = 0; i < (size_t)M * N; i++) maxref = fmax(maxref, fabs(ref[i]));
    if (maxref == 0.0) maxref = 1.0;
    size_t bad = tu_count_far(what, y, ref, (size_t)M * N, budget * maxref, budget, 5, &maxerr);
    cr_expect(bad == 0, "%s: %zu of %d outputs off (max |y - ref| / max |ref| = %.3g, budget %.1g)", what, bad, M * N,
              maxerr / maxref, budget);
    TU_EXPECT_WITHIN(maxerr, maxref, 0.0, budget, "%s: max |y - ref| against max |ref|", what);
    return maxerr / maxref;
}

// Error budget of max |y - ref| / max |ref| per bit width (the same for all: the weights are identical).
static double budget_for(int bits) {
    switch (bits) {
    case 2: return 2e-3;
    case 3: return 2e-3;
    case 4: return 2e-3;
    default: return 2e-3;
    }
}

static const int g_bits[] = {2, 3, 4, 8};

typedef struct {
    int K, gs, N;
    bool sym;
    enum order order;
} shape;

// K not a multiple of 32 (688) or of 8 (100); N odd (129, 37) or not a multiple of 128 (200, 520, 136, 392).
static const shape g_cpu_shapes[] = {
    {96, 32, 37, false, ORDER_NONE},   {96, 32, 37, true, ORDER_ACT},    {688, -1, 24, false, ORDER_NONE},
    {100, -1, 37, true, ORDER_NONE},   {256, 64, 40, false, ORDER_ACT},  {384, 128, 33, true, ORDER_ANY},
    {256, 32, 40, false, ORDER_ANY},   {384, 128, 20, false, ORDER_STATIC},
};

static void plain_matmul(const float *W, const uint16_t *X, int M, int N, int K, float *Y) {
    for (int m = 0; m < M; m++)
        for (int n = 0; n < N; n++) {
            double acc = 0.0;
            for (int k = 0; k < K; k++) acc += (double)nt_f16_to_f32(X[(size_t)m * K + k]) * W[(size_t)n * K + k];
            Y[(size_t)m * N + n] = (float)acc;
        }
}

// ------------------------------------------------------------------------------------------ CPU references

Test(ref, matches_dequantize_and_plain_matmul) {
    const int M = 3;
    for (int b = 0; b < 4; b++)
        for (size_t s = 0; s < sizeof g_cpu_shapes / sizeof g_cpu_shapes[0]; s++) {
            const shape *sh = &g_cpu_shapes[s];
            nt_qlinear *q = make_q(sh->N, sh->K, g_bits[b], sh->gs, sh->sym, sh->order);
            uint16_t *X = make_x(M, sh->K);
            float *W = malloc((size_t)sh->N * sh->K * sizeof *W), *Y = malloc((size_t)M * sh->N * sizeof *Y),
                  *R = malloc((size_t)M * sh->N * sizeof *R);
            nt_qlinear_dequantize(q, W);
            for (int f16 = 0; f16 < 2; f16++) {
                if (f16)
                    for (size_t i = 0; i < (size_t)sh->N * sh->K; i++) W[i] = nt_f16_to_f32(nt_f32_to_f16(W[i]));
                plain_matmul(W, X, M, sh->N, sh->K, R);
                nt_ref_qgemm(q, X, M, f16, Y);
                for (size_t i = 0; i < (size_t)M * sh->N; i++)
                    cr_assert(Y[i] == R[i], "bits %d K %d group %d %s order %d w_f16 %d: Y[%zu] = %.9g, plain %.9g",
                              g_bits[b], sh->K, sh->gs, sh->sym ? "sym" : "asym", sh->order, f16, i, Y[i], R[i]);
            }
            free(W);
            free(Y);
            free(R);
            free(X);
            nt_qlinear_free(&q);
        }
}

Test(ref, fp32_and_fp16_inputs_agree) {
    nt_qlinear *q = make_q(37, 96, 3, 32, false, ORDER_ACT);
    uint16_t *X = make_x(2, 96);
    float xf[2 * 96], Y16[2 * 37], Y32[2 * 37];
    for (int i = 0; i < 2 * 96; i++) xf[i] = nt_f16_to_f32(X[i]);
    nt_ref_qgemm(q, X, 2, false, Y16);
    nt_ref_qgemm_f32(q, xf, 2, false, Y32);
    cr_assert(memcmp(Y16, Y32, sizeof Y16) == 0);
    free(X);
    nt_qlinear_free(&q);
}

Test(layout, kernel_arithmetic_matches_reference) {
    const int M = 4;
    for (int b = 0; b < 4; b++)
        for (size_t s = 0; s < sizeof g_cpu_shapes / sizeof g_cpu_shapes[0]; s++) {
            const shape *sh = &g_cpu_shapes[s];
            nt_qlinear *q = make_q(sh->N, sh->K, g_bits[b], sh->gs, sh->sym, sh->order);
            nt_qgemm_layout lay;
            nt_err err = {{0}};
            cr_assert(nt_qgemm_layout_make(&lay, q, &err) == 0, "%s", err.msg);
            // structure: packs of 32, each inside one group; kmap a permutation of 0..K-1 plus padding
            cr_assert(lay.Kp % 32 == 0 && lay.npacks * 32 == lay.Kp && lay.Kp >= sh->K);
            bool moved = sh->order == ORDER_ANY || (sh->order == ORDER_ACT && sh->gs > 0);
            cr_assert_eq(lay.kmap != NULL, moved, "K %d group %d order %d", sh->K, sh->gs, sh->order);
            if (lay.kmap) {
                char *seen = calloc((size_t)sh->K, 1);
                for (int kp = 0; kp < lay.Kp; kp++) {
                    int k = lay.kmap[kp];
                    if (k < 0) continue;
                    cr_assert(k < sh->K && !seen[k]);
                    seen[k] = 1;
                    cr_assert_eq(q->g_idx[k], lay.pack_group[kp / 32], "column %d in a pack of another group", k);
                }
                for (int k = 0; k < sh->K; k++) cr_assert(seen[k], "column %d lost by the layout", k);
                free(seen);
            } else {
                cr_assert(lay.qweight == q->qweight, "nothing moved, so the packed array is used as is");
            }
            uint16_t *X = make_x(M, sh->K);
            float *Y = malloc((size_t)M * sh->N * sizeof *Y), *R = malloc((size_t)M * sh->N * sizeof *R);
            nt_ref_qgemm(q, X, M, false, R);
            nt_ref_qgemm_layout(&lay, X, M, Y);
            char what[128];
            snprintf(what, sizeof what, "layout bits %d K %d group %d order %d", g_bits[b], sh->K, sh->gs, sh->order);
            // the same fp32 products, K summed in the layout's order: a reordered sum, ~K u (u = 2^-24) of the scale
            validate_result(what, Y, R, M, sh->N, 1e-5);
            free(X);
            free(Y);
            free(R);
            nt_qgemm_layout_free(&lay);
            nt_qlinear_free(&q);
        }
}

Test(layout, rejects_invalid_linear) {
    nt_qlinear *q = make_q(8, 64, 4, 32, false, ORDER_NONE);
    q->g_idx[5] = 7; // outside 0..1
    nt_qgemm_layout lay;
    nt_err err = {{0}};
    cr_assert(nt_qgemm_layout_make(&lay, q, &err) != 0);
    cr_assert(strstr(err.msg, "g_idx") != NULL, "%s", err.msg);
    nt_qlinear_free(&q);
}

// ------------------------------------------------------------------------------------------------- GPU

Test(gpu, no_device_is_reported) {
#ifdef NT_CUDA_EMU
    cr_skip_test("the CPU emulator is a device: the no-device path is tested by test_kernels");
#endif
    nt_err err = {{0}};
    int n = nt_gpu_device_count(&err);
    if (n > 0) cr_skip_test("a CUDA device is present: the no-device path is not exercised");
    cr_assert(n < 0 && err.msg[0], "no device must come with a reason");
    char *msg = NULL;
    int rc = tu_run_cli("bench kernels --shapes llama7b --m 1 --reps 1", &msg);
    cr_assert_eq(rc, 1, "bench without a device exits 1 (got %d): %s", rc, msg ? msg : "");
    cr_assert(msg && strncmp(msg, "normtweak bench: no CUDA device (", 33) == 0, "got: %s", msg ? msg : "(null)");
    cr_assert(strchr(msg, '\n') == msg + strlen(msg) - 1, "one line: %s", msg);
    free(msg);
}

#ifdef NT_CUDA_EMU
// On the emulator (every CUDA thread a fiber) the same shapes with fewer and smaller M: each kernel path still
// runs (GEMV at 1..8 rows, MMA with partial 64-row tiles, several row tiles, split-K on the 4 emulated SMs).
static const int g_all_m[] = {1, 3, 8, 9, 33, 130};
#define M_MAX 130
#else
static const int g_all_m[] = {1, 2, 3, 7, 8, 9, 16, 33, 64, 127, 256, 1024};
#define M_MAX 1024
#endif
#define N_ALL_M ((int)(sizeof g_all_m / sizeof g_all_m[0]))

// GPU shapes: the direct path with zero-fill (688: K % 32 != 0, K % 8 == 0), the gather/pad path (100:
// K % 8 != 0; act-order), the 4-byte cp.async path (odd N: 129), N not a multiple of the 128 tile, every group.
static const shape g_gpu_shapes[] = {
    {688, -1, 200, false, ORDER_NONE}, {4128, 32, 129, true, ORDER_ACT}, {1024, 128, 520, false, ORDER_ACT},
    {512, 64, 200, true, ORDER_NONE},  {100, -1, 136, false, ORDER_NONE}, {768, 128, 392, false, ORDER_ANY},
    {4096, 128, 264, true, ORDER_STATIC},
};

// Runs the kernel on the device for M rows of X and returns Y as fp32 (Y poisoned with NaN before the run).
static void run_qgemm(nt_gpu_ctx *ctx, nt_gpu_qlinear *dw, const uint16_t *dX, uint16_t *dY, int M, int N,
                      nt_qkernel kernel, float *Y) {
    nt_err err = {{0}};
    size_t ny = (size_t)M * N;
    cr_assert(nt_gpu_memset(dY, 0xff, ny * 2, &err) == 0, "%s", err.msg); // 0xffff: an fp16 NaN
    cr_assert(nt_gpu_qgemm(ctx, dw, dX, dY, M, kernel, &err) == 0, "%s", err.msg);
    cr_assert(nt_gpu_sync(&err) == 0, "%s", err.msg);
    uint16_t *h = malloc(ny * 2);
    cr_assert(nt_gpu_download(h, dY, ny * 2, &err) == 0, "%s", err.msg);
    for (size_t i = 0; i < ny; i++) Y[i] = nt_f16_to_f32(h[i]);
    free(h);
}

static void check_kernel(nt_qkernel kernel) {
    nt_gpu_ctx *ctx = tu_need_gpu();
    nt_err err = {{0}};
    for (int b = 0; b < 4; b++)
        for (size_t s = 0; s < sizeof g_gpu_shapes / sizeof g_gpu_shapes[0]; s++) {
            const shape *sh = &g_gpu_shapes[s];
            const int bits = g_bits[b], N = sh->N, K = sh->K;
            const int mmax = kernel == NT_QKERNEL_GEMV ? NT_QGEMV_MAX_M : M_MAX;
            nt_qlinear *q = make_q(N, K, bits, sh->gs, sh->sym, sh->order);
            uint16_t *X = make_x(mmax, K);
            float *R = malloc((size_t)mmax * N * sizeof *R), *Y = malloc((size_t)mmax * N * sizeof *Y);
            // the GEMV kernel keeps fp32 weights; the MMA kernel feeds fp16 weights to the tensor cores
            nt_ref_qgemm(q, X, mmax, kernel == NT_QKERNEL_MMA, R);
            nt_gpu_qlinear *dw = NULL;
            void *dX = NULL, *dY = NULL;
            cr_assert(nt_gpu_qlinear_upload(&dw, q, &err) == 0, "%s", err.msg);
            cr_assert(nt_gpu_malloc(&dX, (size_t)mmax * K * 2, &err) == 0, "%s", err.msg);
            cr_assert(nt_gpu_malloc(&dY, (size_t)mmax * N * 2, &err) == 0, "%s", err.msg);
            cr_assert(nt_gpu_upload(dX, X, (size_t)mmax * K * 2, &err) == 0, "%s", err.msg);
            for (int i = 0; i < N_ALL_M && g_all_m[i] <= mmax; i++) {
                int M = g_all_m[i];
                run_qgemm(ctx, dw, dX, dY, M, N, kernel, Y);
                char what[160];
                snprintf(what, sizeof what, "%s %d-bit M %d N %d K %d group %d %s order %d", nt_qkernel_name(kernel),
                         bits, M, N, K, sh->gs, sh->sym ? "sym" : "asym", sh->order);
                validate_result(what, Y, R, M, N, budget_for(bits));
            }
            nt_gpu_free(&dX);
            nt_gpu_free(&dY);
            nt_gpu_qlinear_free(&dw);
            free(R);
            free(Y);
            free(X);
            nt_qlinear_free(&q);
        }
    nt_gpu_ctx_free(&ctx);
}

Test(gpu, gemv_matches_reference, .timeout = 600) { check_kernel(NT_QKERNEL_GEMV); }
Test(gpu, mma_matches_reference, .timeout = 900) { check_kernel(NT_QKERNEL_MMA); }

// AUTO picks GEMV up to 8 rows and MMA above; both sides of the switch on one real-sized layer.
Test(gpu, auto_on_a_llama_shape, .timeout = 600) {
    nt_gpu_ctx *ctx = tu_need_gpu();
    nt_err err = {{0}};
    const int N = 4096, K = 4096, ms[] = {1, 8, 9, 64};
    cr_assert_eq(nt_qkernel_pick(8), NT_QKERNEL_GEMV);
    cr_assert_eq(nt_qkernel_pick(9), NT_QKERNEL_MMA);
    nt_qlinear *q = make_q(N, K, 4, 128, false, ORDER_NONE);
    uint16_t *X = make_x(64, K);
    float *R = malloc((size_t)64 * N * sizeof *R), *Y = malloc((size_t)64 * N * sizeof *Y);
    nt_gpu_qlinear *dw = NULL;
    void *dX = NULL, *dY = NULL;
    cr_assert(nt_gpu_qlinear_upload(&dw, q, &err) == 0, "%s", err.msg);
    cr_assert(nt_gpu_malloc(&dX, (size_t)64 * K * 2, &err) == 0 && nt_gpu_malloc(&dY, (size_t)64 * N * 2, &err) == 0);
    cr_assert(nt_gpu_upload(dX, X, (size_t)64 * K * 2, &err) == 0, "%s", err.msg);
    for (int f16 = 0; f16 < 2; f16++) {
        nt_ref_qgemm(q, X, 64, f16, R);
        for (int i = 0; i < 4; i++) {
            if ((nt_qkernel_pick(ms[i]) == NT_QKERNEL_MMA) != f16) continue;
            run_qgemm(ctx, dw, dX, dY, ms[i], N, NT_QKERNEL_AUTO, Y);
            char what[64];
            snprintf(what, sizeof what, "auto 4-bit g128 M %d 4096x4096", ms[i]);
            validate_result(what, Y, R, ms[i], N, budget_for(4));
        }
    }
    nt_gpu_free(&dX);
    nt_gpu_free(&dY);
    nt_gpu_qlinear_free(&dw);
    free(R);
    free(Y);
    free(X);
    nt_qlinear_free(&q);
    nt_gpu_ctx_free(&ctx);
}

Test(gpu, gemv_refuses_more_than_8_rows) {
    nt_gpu_ctx *ctx = tu_need_gpu();
    nt_err err = {{0}};
    nt_qlinear *q = make_q(64, 64, 4, 32, true, ORDER_NONE);
    nt_gpu_qlinear *dw = NULL;
    void *dX = NULL, *dY = NULL;
    cr_assert(nt_gpu_qlinear_upload(&dw, q, &err) == 0, "%s", err.msg);
    cr_assert(nt_gpu_malloc(&dX, 9 * 64 * 2, &err) == 0 && nt_gpu_malloc(&dY, 9 * 64 * 2, &err) == 0);
    cr_assert(nt_gpu_qgemm(ctx, dw, dX, dY, 9, NT_QKERNEL_GEMV, &err) != 0);
    cr_assert(strstr(err.msg, "at most 8 rows") != NULL, "%s", err.msg);
    nt_gpu_free(&dX);
    nt_gpu_free(&dY);
    nt_gpu_qlinear_free(&dw);
    nt_qlinear_free(&q);
    nt_gpu_ctx_free(&ctx);
}

// The dense weights the baseline multiplies: exactly quant.h's dequantization rounded to fp16, in the original
// column order (act-order and arbitrary g_idx included).
Test(gpu, dequantize_matches_reference) {
    nt_gpu_ctx *ctx = tu_need_gpu();
    nt_err err = {{0}};
    for (int b = 0; b < 4; b++)
        for (size_t s = 0; s < sizeof g_gpu_shapes / sizeof g_gpu_shapes[0]; s++) {
            const shape *sh = &g_gpu_shapes[s];
            nt_qlinear *q = make_q(sh->N, sh->K, g_bits[b], sh->gs, sh->sym, sh->order);
            size_t nw = (size_t)sh->N * sh->K;
            float *W = malloc(nw * sizeof *W);
            uint16_t *Wd = malloc(nw * 2);
            nt_qlinear_dequantize(q, W);
            nt_gpu_qlinear *dw = NULL;
            void *dW = NULL;
            cr_assert(nt_gpu_qlinear_upload(&dw, q, &err) == 0, "%s", err.msg);
            cr_assert(nt_gpu_malloc(&dW, nw * 2, &err) == 0, "%s", err.msg);
            cr_assert(nt_gpu_memset(dW, 0xff, nw * 2, &err) == 0, "%s", err.msg);
            cr_assert(nt_gpu_qdequantize(ctx, dw, dW, &err) == 0, "%s", err.msg);
            cr_assert(nt_gpu_sync(&err) == 0 && nt_gpu_download(Wd, dW, nw * 2, &err) == 0, "%s", err.msg);
            for (size_t i = 0; i < nw; i++)
                cr_assert_eq(Wd[i], nt_f32_to_f16(W[i]), "%d-bit K %d order %d: W[%zu] = %g, expected %g", g_bits[b],
                             sh->K, sh->order, i, nt_f16_to_f32(Wd[i]), W[i]);
            nt_gpu_free(&dW);
            nt_gpu_qlinear_free(&dw);
            free(W);
            free(Wd);
            nt_qlinear_free(&q);
        }
    nt_gpu_ctx_free(&ctx);
}

Test(gpu, cublaslt_matches_cpu_gemm, .timeout = 600) {
#ifdef NT_CUDA_EMU
    cr_skip_test("cuBLASLt is not emulated (cublaslt_emu.cc computes on the host): tested on a device only");
#endif
    nt_gpu_ctx *ctx = tu_need_gpu();
    nt_err err = {{0}};
    const int shapes[][3] = {{1, 200, 688}, {7, 129, 100}, {9, 37, 4128}, {33, 520, 1024}, {256, 512, 1024},
                             {1024, 384, 512}};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        const int M = shapes[s][0], N = shapes[s][1], K = shapes[s][2];
        uint16_t *X = make_x(M, K), *W = make_x(N, K), *Yh = malloc((size_t)M * N * 2);
        float *R = malloc((size_t)M * N * sizeof *R), *Y = malloc((size_t)M * N * sizeof *Y);
        nt_ref_gemm_f16(X, W, M, N, K, R);
        void *dX = NULL, *dW = NULL, *dY = NULL;
        cr_assert(nt_gpu_malloc(&dX, (size_t)M * K * 2, &err) == 0 && nt_gpu_malloc(&dW, (size_t)N * K * 2, &err) == 0 &&
                      nt_gpu_malloc(&dY, (size_t)M * N * 2, &err) == 0,
                  "%s", err.msg);
        cr_assert(nt_gpu_upload(dX, X, (size_t)M * K * 2, &err) == 0 && nt_gpu_upload(dW, W, (size_t)N * K * 2, &err) == 0);
        cr_assert(nt_gpu_memset(dY, 0xff, (size_t)M * N * 2, &err) == 0, "%s", err.msg);
        cr_assert(nt_gpu_gemm_f16(ctx, dX, dW, dY, M, N, K, &err) == 0, "%s", err.msg);
        cr_assert(nt_gpu_sync(&err) == 0 && nt_gpu_download(Yh, dY, (size_t)M * N * 2, &err) == 0, "%s", err.msg);
        for (size_t i = 0; i < (size_t)M * N; i++) Y[i] = nt_f16_to_f32(Yh[i]);
        char what[64];
        snprintf(what, sizeof what, "cuBLASLt M %d N %d K %d", M, N, K);
        validate_result(what, Y, R, M, N, 2e-3);
        nt_gpu_free(&dX);
        nt_gpu_free(&dW);
        nt_gpu_free(&dY);
        free(X);
        free(W);
        free(Yh);
        free(R);
        free(Y);
    }
    nt_gpu_ctx_free(&ctx);
}
