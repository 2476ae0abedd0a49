// test_kernels.c: the quantized matrix-product kernels of kernels/ (GEMV, Marlin-style MMA and the dense stop-gap
// over qformat.h's packed format in qinterleave.h's order) and the cuBLASLt baseline against their scalar CPU
// references, over awkward shapes: M from 1 to past 512, K not a multiple of the 32-value pack or of 8, odd N and
// N not a multiple of the 32- and 128-channel tiles, every bit width and group size, a shorter last group
// (K = 576, group 128), symmetric and asymmetric, act-order, static groups and arbitrary g_idx.
//
// CPU part (runs everywhere): the reference nt_ref_qgemm against nt_qlinear_dequantize + a plain matmul, the
// interleaved layout (round trip, scalar reads, the fp16x2 magic-number decode against the codes), and the
// load-time layout (K reordered by group, padded to packs, scale steps) through nt_ref_qgemm_layout.
// GPU part: skipped, with the reason, when there is no CUDA device or the build has no CUDA; the emulated build
// (test_kernels_emu) runs it on kernels/cuda_emu.h. The int8 products and the linears with quantized activations
// (actq.cu) must match bit for bit (the latter nt_actq_forward). The other kernels' error budget, elementwise
// |y - ref| <= atol + rtol |ref| with atol = 2e-3 max|ref| and rtol = 2e-3, for every bit width: kernel and
// reference use the same weights (fp32 s * (q - zero) for the GEMV, whose tensor cores multiply the exact q - zero
// and scale in fp32; fp16-rounded ones for the MMA and dense paths, which nt_ref_qgemm's w_f16 rounds
// identically), so what is left is the fp16 rounding of Y (2^-11 relative, 4.9e-4) and fp32 accumulation in
// another order (K <= 4128 terms: below 1e-5 of max |ref| here), with a factor 4 of headroom for the hardware's
// accumulation order.
#include <criterion/criterion.h>
#include <math.h>
#include <string.h>

#include "gpu.h"
#include "gpu_ops.h"
#include "qinterleave.h"
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

// A zeroed linear (a shorter last group when gs does not divide K: groups of gs, g = k / gs, ceil(K / gs) groups).
static nt_qlinear *alloc_q(int N, int K, int bits, int gs, bool sym, bool act) {
    nt_qlinear *q = NULL;
    nt_err err = {0};
    cr_assert(nt_qlinear_alloc(&q, N, K, bits, gs, sym, act, &err) == 0, "%s", err.msg);
    return q;
}

// A random quantized linear: random codes, fp16 scales in [0.005, 0.02), random zero points (asymmetric).
static nt_qlinear *make_q(int N, int K, int bits, int gs, bool sym, enum order order) {
    nt_err err = {0};
    bool act = order == ORDER_ACT || order == ORDER_STATIC;
    nt_qlinear *q = alloc_q(N, K, bits, gs, sym, act);
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

// The kernels' layout of q (nt_qgemm_layout_make).
static void layout_of(nt_qgemm_layout *lay, const nt_qlinear *q) {
    nt_err err = {0};
    int rc = nt_qgemm_layout_make(lay, q, &err);
    cr_assert(rc == 0, "%s", err.msg);
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

// K not a multiple of 32 (688) or of 8 (100); N odd (37, 33) or not a multiple of 32 (40, 20); a shorter last
// group (576 = 4 x 128 + 64), alone and with act-order.
static const shape g_cpu_shapes[] = {
    {96, 32, 37, false, ORDER_NONE},   {96, 32, 37, true, ORDER_ACT},    {688, -1, 24, false, ORDER_NONE},
    {100, -1, 37, true, ORDER_NONE},   {256, 64, 40, false, ORDER_ACT},  {384, 128, 33, true, ORDER_ANY},
    {256, 32, 40, false, ORDER_ANY},   {384, 128, 20, false, ORDER_STATIC}, {576, 128, 40, false, ORDER_NONE},
    {576, 128, 33, true, ORDER_ACT},
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

// ---------------------------------------------------------------------------------- the interleaved layout

// Random canonical codes (every bit pattern of qweight is valid) through qinterleave.h and back, read code by code
// through the maps, and decoded per lane by the kernels' magic-number arithmetic (nt_qi_decode_lane_ref): each
// must give back exactly the canonical code (minus the zero point, exactly, in fp16).
Test(interleave, round_trip_reads_and_magic_decode) {
    const int Ns[] = {32, 37, 100}, npacks = 3;
    for (int b = 0; b < 4; b++)
        for (int ni = 0; ni < 3; ni++) {
            const int bits = g_bits[b], N = Ns[ni], tiles = nt_qi_tiles(N);
            const nt_qtraits *t = nt_qtraits_get(bits);
            size_t nc = (size_t)npacks * bits * N, nqi = (size_t)npacks * tiles * 32 * bits;
            uint32_t *canon = malloc(nc * 4), *back = malloc(nc * 4), *qi = malloc(nqi * 4);
            for (size_t i = 0; i < nc; i++) canon[i] = rnd_u32();
            for (size_t i = 0; i < nqi; i++) qi[i] = 0xdeadbeef; // every word must be written
            nt_qi_interleave(canon, N, npacks, bits, qi);
            nt_qi_deinterleave(qi, N, npacks, bits, back);
            cr_assert(memcmp(canon, back, nc * 4) == 0, "%d bits, N %d: de-interleave differs", bits, N);
            uint8_t codes[32];
            for (int n = 0; n < tiles * 32; n++)
                for (int p = 0; p < npacks; p++) {
                    if (n < N) t->unpack(canon + (size_t)p * bits * N + n, (size_t)N, codes);
                    else memset(codes, 0, 32); // padding channels hold code 0
                    for (int j = 0; j < 32; j++)
                        cr_assert_eq(nt_qi_code(qi, N, bits, n, p * 32 + j), codes[j], "%d bits n %d k %d", bits, n,
                                     p * 32 + j);
                }
            for (int p = 0; p < npacks; p++)
                for (int tile = 0; tile < tiles; tile++)
                    for (int l = 0; l < 32; l++) {
                        uint32_t w[8];
                        uint8_t z4[4];
                        for (int i = 0; i < bits; i++) w[i] = qi[nt_qi_word_index(bits, tiles, p, tile, l, i)];
                        for (int c = 0; c < 4; c++) z4[c] = (uint8_t)rnd_int(t->maxq + 1);
                        uint16_t out[32];
                        nt_qi_decode_lane_ref(bits, w, z4, out);
                        for (int e = 0; e < 32; e++) {
                            int dn = nt_qi_channel(l, e), dk = nt_qi_k(l, e);
                            int q = nt_qi_code(qi, N, bits, tile * 32 + dn, p * 32 + dk);
                            float want = (float)(q - z4[dn / 8]);
                            cr_assert(nt_f16_to_f32(out[e]) == want, "%d bits lane %d code %d: %g, expected %g", bits,
                                      l, e, nt_f16_to_f32(out[e]), want);
                        }
                    }
            free(canon);
            free(back);
            free(qi);
        }
}

// The maps are bijections: the 32 codes of the 32 lanes cover the 32 x 32 block once.
Test(interleave, fragment_map_covers_the_block) {
    int seen[32][32] = {{0}};
    for (int l = 0; l < 32; l++)
        for (int e = 0; e < 32; e++) seen[nt_qi_channel(l, e)][nt_qi_k(l, e)]++;
    for (int c = 0; c < 32; c++)
        for (int k = 0; k < 32; k++) cr_assert_eq(seen[c][k], 1, "channel %d k %d", c, k);
    for (int b = 0; b < 4; b++) { // and each lane's bits cover its words once
        const int bits = g_bits[b];
        int used[8][32] = {{0}};
        for (int e = 0; e < 32; e++) {
            int w, bit, hw, hb, lb = bits == 3 ? 2 : bits;
            nt_qi_code_pos(bits, e, &w, &bit, &hw, &hb);
            for (int i = 0; i < lb; i++) used[w][bit + i]++;
            if (hw >= 0) used[hw][hb]++;
        }
        for (int w = 0; w < bits; w++)
            for (int i = 0; i < 32; i++) cr_assert_eq(used[w][i], 1, "%d bits: word %d bit %d", bits, w, i);
    }
}

Test(layout, kernel_arithmetic_matches_reference) {
    const int M = 4;
    for (int b = 0; b < 4; b++)
        for (size_t s = 0; s < sizeof g_cpu_shapes / sizeof g_cpu_shapes[0]; s++) {
            const shape *sh = &g_cpu_shapes[s];
            nt_qlinear *q = make_q(sh->N, sh->K, g_bits[b], sh->gs, sh->sym, sh->order);
            nt_qgemm_layout lay;
            layout_of(&lay, q);
            // structure: packs of 32, each inside one group; kmap a permutation of 0..K-1 plus padding
            cr_assert(lay.Kp % 32 == 0 && lay.npacks * 32 == lay.Kp && lay.Kp >= sh->K);
            cr_assert_eq(lay.tiles, (sh->N + 31) / 32);
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
            }
            // the scale step: every change of group at a multiple of spp packs, and spp as large as that allows
            cr_assert(lay.spp == 1 || lay.spp == 2 || lay.spp == 4);
            bool could_double = lay.spp < 4;
            for (int p = 1; p < lay.npacks; p++)
                if (lay.pack_group[p] != lay.pack_group[p - 1]) {
                    cr_assert(p % lay.spp == 0, "group changes at pack %d, step %d", p, lay.spp);
                    could_double = could_double && p % (2 * lay.spp) == 0;
                }
            cr_assert(!could_double, "scale step %d could be %d", lay.spp, 2 * lay.spp);
            if (!moved) cr_assert_eq(lay.spp, sh->gs == 32 ? 1 : sh->gs == 64 ? 2 : 4, "group %d", sh->gs);
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

// A shorter last group (SmolLM2's 576 inputs with groups of 128): five groups, the last two packs in the fifth.
Test(layout, shorter_last_group_is_built) {
    nt_qlinear *q = make_q(40, 576, 4, 128, false, ORDER_NONE);
    nt_qgemm_layout lay;
    nt_err err = {0};
    cr_assert(nt_qgemm_layout_make(&lay, q, &err) == 0, "%s", err.msg);
    cr_assert_eq(lay.n_groups, 5);
    cr_assert_eq(lay.npacks, 18);
    cr_assert_eq(lay.pack_group[16], 4);
    cr_assert_eq(lay.pack_group[17], 4);
    cr_assert_eq(lay.spp, 4);
    nt_qgemm_layout_free(&lay);
    nt_qlinear_free(&q);
}

Test(layout, rejects_invalid_linear) {
    nt_qlinear *q = make_q(8, 64, 4, 32, false, ORDER_NONE);
    q->g_idx[5] = 7; // outside 0..1
    nt_qgemm_layout lay;
    nt_err err = {0};
    cr_assert(nt_qgemm_layout_make(&lay, q, &err) != 0);
    cr_assert(strstr(err.msg, "g_idx") != NULL, "%s", err.msg);
    nt_qlinear_free(&q);
}

// ------------------------------------------------------------------------------------------------- GPU

Test(gpu, no_device_is_reported) {
#ifdef NT_CUDA_EMU
    cr_skip_test("the CPU emulator is a device: the no-device path is tested by test_kernels");
#endif
    nt_err err = {0};
    int n = nt_gpu_device_count(&err);
    if (n > 0) cr_skip_test("a CUDA device is present: the no-device path is not exercised");
    cr_assert(n < 0 && err.msg[0], "no device must come with a reason");
    char *msg = NULL;
    int rc = tu_run_cli("bench kernels --shapes llama7b --m 1 --batches 1", &msg);
    cr_assert_eq(rc, 1, "bench without a device exits 1 (got %d): %s", rc, msg ? msg : "");
    cr_assert(msg && strncmp(msg, "normtweak bench: no CUDA device (", 33) == 0, "got: %s", msg ? msg : "(null)");
    cr_assert(strchr(msg, '\n') == msg + strlen(msg) - 1, "one line: %s", msg);
    free(msg);
}

// GPU shapes: K % 32 != 0 (688), K % 8 != 0 (100: X gathered and padded for the MMA kernel), odd N (129, 97),
// N not a multiple of the 32-channel tile or of the 128-channel block (200, 520, 136, 392, 264), every group size
// and scale step (group 32: 1 pack, 64: 2, 128 and per channel: 4; arbitrary g_idx), a shorter last group.
static const shape g_gpu_shapes[] = {
    {688, -1, 200, false, ORDER_NONE}, {4128, 32, 129, true, ORDER_ACT},  {1024, 128, 520, false, ORDER_ACT},
    {512, 64, 200, true, ORDER_NONE},  {100, -1, 136, false, ORDER_NONE}, {768, 128, 392, false, ORDER_ANY},
    {4096, 128, 264, true, ORDER_STATIC}, {576, 128, 97, false, ORDER_NONE}, {576, 128, 40, true, ORDER_ACT},
};
#define N_GPU_SHAPES ((int)(sizeof g_gpu_shapes / sizeof g_gpu_shapes[0]))

// Rows per kernel: every GEMV template (M rounded up to 1, 2, 4, 8), every MMA tile height (16, 32, 48, 64) and
// several 64-row tiles; on the emulator (every CUDA thread a fiber) fewer of them.
static const int g_gemv_m[] = {1, 2, 3, 5, 8};
#ifdef NT_CUDA_EMU
static const int g_mma_m[] = {9, 24, 40, 64, 130};
#else
static const int g_mma_m[] = {9, 16, 17, 24, 32, 33, 40, 48, 49, 64, 65, 127, 256, 511};
#endif
#define N_GEMV_M ((int)(sizeof g_gemv_m / sizeof g_gemv_m[0]))
#define N_MMA_M ((int)(sizeof g_mma_m / sizeof g_mma_m[0]))

// The device copy of q.
static nt_gpu_qlinear *upload_q(const nt_qlinear *q) {
    nt_err err = {0};
    nt_gpu_qlinear *dw = NULL;
    cr_assert(nt_gpu_qlinear_upload(&dw, q, &err) == 0, "%s", err.msg);
    return dw;
}

// Runs the kernel on the device for M rows of X and returns Y as fp32 (Y poisoned with NaN before the run).
static void run_qgemm(nt_gpu_ctx *ctx, nt_gpu_qlinear *dw, const uint16_t *dX, uint16_t *dY, int M, int N,
                      nt_qkernel kernel, float *Y) {
    nt_err err = {0};
    size_t ny = (size_t)M * N;
    cr_assert(nt_gpu_memset(dY, 0xff, ny * 2, &err) == 0, "%s", err.msg); // 0xffff: an fp16 NaN
    cr_assert(nt_gpu_qgemm(ctx, dw, dX, dY, M, kernel, &err) == 0, "%s", err.msg);
    cr_assert(nt_gpu_sync(&err) == 0, "%s", err.msg);
    uint16_t *h = malloc(ny * 2);
    cr_assert(nt_gpu_download(h, dY, ny * 2, &err) == 0, "%s", err.msg);
    for (size_t i = 0; i < ny; i++) Y[i] = nt_f16_to_f32(h[i]);
    free(h);
}

// kernel over the shapes, every bit width, the rows ms[0..nm-1].
static void check_kernel(nt_qkernel kernel, const int *ms, int nm) {
    nt_gpu_ctx *ctx = tu_need_gpu();
    nt_err err = {0};
    int mmax = 0;
    for (int i = 0; i < nm; i++) mmax = ms[i] > mmax ? ms[i] : mmax;
    for (int b = 0; b < 4; b++)
        for (int s = 0; s < N_GPU_SHAPES; s++) {
            const shape *sh = &g_gpu_shapes[s];
            const int bits = g_bits[b], N = sh->N, K = sh->K;
            nt_qlinear *q = make_q(N, K, bits, sh->gs, sh->sym, sh->order);
            uint16_t *X = make_x(mmax, K);
            float *R = malloc((size_t)mmax * N * sizeof *R), *Y = malloc((size_t)mmax * N * sizeof *Y);
            // the GEMV kernel keeps fp32 weights; MMA and DENSE feed fp16 weights to the tensor cores
            nt_ref_qgemm(q, X, mmax, kernel != NT_QKERNEL_GEMV, R);
            nt_gpu_qlinear *dw = upload_q(q);
            void *dX = NULL, *dY = NULL;
            cr_assert(nt_gpu_malloc(&dX, (size_t)mmax * K * 2, &err) == 0, "%s", err.msg);
            cr_assert(nt_gpu_malloc(&dY, (size_t)mmax * N * 2, &err) == 0, "%s", err.msg);
            cr_assert(nt_gpu_upload(dX, X, (size_t)mmax * K * 2, &err) == 0, "%s", err.msg);
            for (int i = 0; i < nm; i++) {
                int M = ms[i];
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

Test(gpu, gemv_matches_reference, .timeout = 900) { check_kernel(NT_QKERNEL_GEMV, g_gemv_m, N_GEMV_M); }
Test(gpu, mma_matches_reference, .timeout = 900) { check_kernel(NT_QKERNEL_MMA, g_mma_m, N_MMA_M); }
Test(gpu, dense_matches_reference, .timeout = 900) {
    static const int ms[] = {1, 3, 70};
    check_kernel(NT_QKERNEL_DENSE, ms, 3);
}

// Stripes cut the channel blocks' K at many places (few channel blocks, long K, blocks far fewer than units): the
// split-K counters and the last-arriving reduction, under several scheduling orders of the emulator's blocks
// (on a device the order is the hardware's).
Test(gpu, split_k_under_any_block_order, .timeout = 900) {
    nt_gpu_ctx *ctx = tu_need_gpu();
    nt_err err = {0};
    const int N = 72, K = 8192 + 96, ms[] = {1, 5, 12, 40};
    nt_qlinear *q = make_q(N, K, 4, 32, false, ORDER_NONE);
    uint16_t *X = make_x(40, K);
    float *R = malloc((size_t)40 * N * sizeof *R), *Y = malloc((size_t)40 * N * sizeof *Y);
    nt_gpu_qlinear *dw = upload_q(q);
    void *dX = NULL, *dY = NULL;
    cr_assert(nt_gpu_malloc(&dX, (size_t)40 * K * 2, &err) == 0 && nt_gpu_malloc(&dY, (size_t)40 * N * 2, &err) == 0);
    cr_assert(nt_gpu_upload(dX, X, (size_t)40 * K * 2, &err) == 0, "%s", err.msg);
#ifdef NT_CUDA_EMU
    const int n_seeds = 4;
#else
    const int n_seeds = 1;
#endif
    for (int seed = 0; seed < n_seeds; seed++) {
#ifdef NT_CUDA_EMU
        nt_emu_set_seed((uint64_t)seed * 7919u); // seed 0: index order
#endif
        for (int f16 = 0; f16 < 2; f16++) {
            nt_ref_qgemm(q, X, 40, f16, R);
            for (int i = 0; i < 4; i++) {
                if ((ms[i] <= NT_QGEMV_MAX_M) == (f16 != 0)) continue;
                for (int rep = 0; rep < 2; rep++) { // twice: the counters must be left at zero
                    run_qgemm(ctx, dw, dX, dY, ms[i], N, NT_QKERNEL_AUTO, Y);
                    char what[96];
                    snprintf(what, sizeof what, "split-K M %d N %d K %d seed %d rep %d", ms[i], N, K, seed, rep);
                    validate_result(what, Y, R, ms[i], N, budget_for(4));
                }
            }
        }
    }
#ifdef NT_CUDA_EMU
    nt_emu_set_seed(1);
#endif
    nt_gpu_free(&dX);
    nt_gpu_free(&dY);
    nt_gpu_qlinear_free(&dw);
    free(R);
    free(Y);
    free(X);
    nt_qlinear_free(&q);
    nt_gpu_ctx_free(&ctx);
}

// AUTO picks GEMV up to 8 rows, MMA below 512 and DENSE from there; each side of each switch on a real layer
// shape (on the emulator a smaller one).
Test(gpu, auto_on_a_llama_shape, .timeout = 900) {
    nt_gpu_ctx *ctx = tu_need_gpu();
    nt_err err = {0};
#ifdef NT_CUDA_EMU
    const int N = 512, K = 1024;
#else
    const int N = 4096, K = 4096;
#endif
    const int ms[] = {1, 8, 9, 64, 511, 512}, mmax = 512;
    cr_assert_eq(nt_qkernel_pick(8), NT_QKERNEL_GEMV);
    cr_assert_eq(nt_qkernel_pick(9), NT_QKERNEL_MMA);
    cr_assert_eq(nt_qkernel_pick(511), NT_QKERNEL_MMA);
    cr_assert_eq(nt_qkernel_pick(512), NT_QKERNEL_DENSE);
    nt_qlinear *q = make_q(N, K, 4, 128, false, ORDER_NONE);
    uint16_t *X = make_x(mmax, K);
    float *R = malloc((size_t)mmax * N * sizeof *R), *Y = malloc((size_t)mmax * N * sizeof *Y);
    nt_gpu_qlinear *dw = upload_q(q);
    void *dX = NULL, *dY = NULL;
    cr_assert(nt_gpu_malloc(&dX, (size_t)mmax * K * 2, &err) == 0 && nt_gpu_malloc(&dY, (size_t)mmax * N * 2, &err) == 0);
    cr_assert(nt_gpu_upload(dX, X, (size_t)mmax * K * 2, &err) == 0, "%s", err.msg);
    for (int f16 = 0; f16 < 2; f16++) {
        nt_ref_qgemm(q, X, mmax, f16, R);
        for (int i = 0; i < 6; i++) {
            if ((nt_qkernel_pick(ms[i]) != NT_QKERNEL_GEMV) != f16) continue;
            run_qgemm(ctx, dw, dX, dY, ms[i], N, NT_QKERNEL_AUTO, Y);
            char what[64];
            snprintf(what, sizeof what, "auto 4-bit g128 M %d %dx%d", ms[i], N, K);
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

// Each path once on two small shapes (K % 32 != 0 per channel; act-order with groups of 64): what the GPU session
// runs under compute-sanitizer (racecheck, memcheck, synccheck), where the full sweeps would take too long.
Test(gpu, smoke_each_path, .timeout = 600) {
    nt_gpu_ctx *ctx = tu_need_gpu();
    nt_err err = {0};
    const shape shapes[] = {{688, -1, 200, false, ORDER_NONE}, {1024, 64, 136, true, ORDER_ACT}};
    const struct {
        nt_qkernel k;
        int M;
    } runs[] = {{NT_QKERNEL_GEMV, 1}, {NT_QKERNEL_GEMV, 5}, {NT_QKERNEL_MMA, 24}, {NT_QKERNEL_MMA, 130},
                {NT_QKERNEL_DENSE, 3}};
    for (int s = 0; s < 2; s++) {
        const shape *sh = &shapes[s];
        nt_qlinear *q = make_q(sh->N, sh->K, 4, sh->gs, sh->sym, sh->order);
        uint16_t *X = make_x(130, sh->K);
        float *R = malloc((size_t)130 * sh->N * sizeof *R), *Y = malloc((size_t)130 * sh->N * sizeof *Y);
        nt_gpu_qlinear *dw = upload_q(q);
        void *dX = NULL, *dY = NULL;
        cr_assert(nt_gpu_malloc(&dX, (size_t)130 * sh->K * 2, &err) == 0 && nt_gpu_malloc(&dY, (size_t)130 * sh->N * 2, &err) == 0);
        cr_assert(nt_gpu_upload(dX, X, (size_t)130 * sh->K * 2, &err) == 0, "%s", err.msg);
        for (int f16 = 0; f16 < 2; f16++) {
            nt_ref_qgemm(q, X, 130, f16, R);
            for (int i = 0; i < 5; i++) {
                if ((runs[i].k != NT_QKERNEL_GEMV) != f16) continue;
                run_qgemm(ctx, dw, dX, dY, runs[i].M, sh->N, runs[i].k, Y);
                char what[96];
                snprintf(what, sizeof what, "smoke %s M %d N %d K %d", nt_qkernel_name(runs[i].k), runs[i].M, sh->N,
                         sh->K);
                validate_result(what, Y, R, runs[i].M, sh->N, budget_for(4));
            }
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

Test(gpu, gemv_refuses_more_than_8_rows) {
    nt_gpu_ctx *ctx = tu_need_gpu();
    nt_err err = {0};
    nt_qlinear *q = make_q(64, 64, 4, 32, true, ORDER_NONE);
    nt_gpu_qlinear *dw = upload_q(q);
    void *dX = NULL, *dY = NULL;
    cr_assert(nt_gpu_malloc(&dX, 9 * 64 * 2, &err) == 0 && nt_gpu_malloc(&dY, 9 * 64 * 2, &err) == 0);
    cr_assert(nt_gpu_qgemm(ctx, dw, dX, dY, 9, NT_QKERNEL_GEMV, &err) != 0);
    cr_assert(strstr(err.msg, "at most 8 rows") != NULL, "%s", err.msg);
    nt_gpu_free(&dX);
    nt_gpu_free(&dY);
    nt_gpu_qlinear_free(&dw);
    nt_qlinear_free(&q);
    nt_gpu_ctx_free(&ctx);
}

// The dense weights the baseline multiplies: exactly qformat.h's dequantization rounded to fp16, in the original
// column order (act-order, arbitrary g_idx and a shorter last group included); and a copy of a device linear
// computes the same.
Test(gpu, dequantize_matches_reference) {
    nt_gpu_ctx *ctx = tu_need_gpu();
    nt_err err = {0};
    for (int b = 0; b < 4; b++)
        for (int s = 0; s < N_GPU_SHAPES; s++) {
            const shape *sh = &g_gpu_shapes[s];
            nt_qlinear *q = make_q(sh->N, sh->K, g_bits[b], sh->gs, sh->sym, sh->order);
            size_t nw = (size_t)sh->N * sh->K;
            float *W = malloc(nw * sizeof *W);
            uint16_t *Wd = malloc(nw * 2);
            nt_qlinear_dequantize(q, W);
            nt_gpu_qlinear *dw0 = upload_q(q), *dw = NULL;
            cr_assert(nt_gpu_qlinear_clone(&dw, dw0, &err) == 0, "%s", err.msg);
            nt_gpu_qlinear_free(&dw0);
            void *dW = NULL;
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
    nt_err err = {0};
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

// W8A8: int8 x int8 -> int32 through cuBLASLt's IMMA path and the dequantizing kernel, on a device and under the
// emulator (whose host product applies the same fp32 expression): bit for bit the reference's (the int32 sum is
// exact in every order, and (sx * sw) * (float)I is one fixed sequence of fp32 roundings).
Test(gpu, int8_gemm_matches_reference, .timeout = 600) {
    nt_gpu_ctx *ctx = tu_need_gpu();
    nt_err err = {0};
    const int shapes[][3] = {{1, 64, 576}, {7, 129, 100}, {33, 96, 1536}, {256, 160, 512}};
    uint64_t st = 5;
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        const int M = shapes[s][0], N = shapes[s][1], K = shapes[s][2];
        int8_t *X = malloc((size_t)M * K), *W = malloc((size_t)N * K);
        float *sx = malloc((size_t)M * 4), *sw = malloc((size_t)N * 4), *R = malloc((size_t)M * N * 4),
              *Y = malloc((size_t)M * N * 4);
        cr_assert(X && W && sx && sw && R && Y);
        for (size_t i = 0; i < (size_t)M * K; i++) X[i] = (int8_t)((int)(tu_rnd_u32(&st) % 255) - 127);
        for (size_t i = 0; i < (size_t)N * K; i++) W[i] = (int8_t)((int)(tu_rnd_u32(&st) % 256) - 128);
        for (int i = 0; i < M; i++) sx[i] = 0.01f + tu_rnd_unif(&st);
        for (int i = 0; i < N; i++) sw[i] = 0.001f + 0.01f * tu_rnd_unif(&st);
        nt_ref_gemm_i8(X, W, sx, sw, M, N, K, R);
        void *dX = NULL, *dW = NULL, *dsx = NULL, *dsw = NULL, *dY = NULL;
        cr_assert(nt_gpu_malloc(&dX, (size_t)M * K, &err) == 0 && nt_gpu_malloc(&dW, (size_t)N * K, &err) == 0 &&
                      nt_gpu_malloc(&dsx, (size_t)M * 4, &err) == 0 && nt_gpu_malloc(&dsw, (size_t)N * 4, &err) == 0 &&
                      nt_gpu_malloc(&dY, (size_t)M * N * 4, &err) == 0,
                  "%s", err.msg);
        cr_assert(nt_gpu_upload(dX, X, (size_t)M * K, &err) == 0 && nt_gpu_upload(dW, W, (size_t)N * K, &err) == 0 &&
                      nt_gpu_upload(dsx, sx, (size_t)M * 4, &err) == 0 && nt_gpu_upload(dsw, sw, (size_t)N * 4, &err) == 0,
                  "%s", err.msg);
        cr_assert(nt_gpu_gemm_i8(ctx, dX, dW, dsx, dsw, dY, M, N, K, &err) == 0, "%s", err.msg);
        cr_assert(nt_gpu_sync(&err) == 0 && nt_gpu_download(Y, dY, (size_t)M * N * 4, &err) == 0, "%s", err.msg);
        size_t bad = 0;
        for (size_t i = 0; i < (size_t)M * N; i++) bad += memcmp(&Y[i], &R[i], 4) != 0;
        cr_expect_eq(bad, 0, "int8 GEMM M %d N %d K %d: %zu of %zu outputs differ from the reference", M, N, K, bad,
                     (size_t)M * N);
        nt_gpu_free(&dX);
        nt_gpu_free(&dW);
        nt_gpu_free(&dsx);
        nt_gpu_free(&dsw);
        nt_gpu_free(&dY);
        free(X), free(W), free(sx), free(sw), free(R), free(Y);
    }
    // K not a multiple of 4: refused with a message
    cr_expect(nt_gpu_gemm_i8(ctx, NULL, NULL, NULL, NULL, NULL, 4, 4, 6, &err) != 0 && strstr(err.msg, "multiple of 4"));
    nt_gpu_ctx_free(&ctx);
}

// The batched int8 product behind the W8A8 linears (nt_gpu_gemm_i8_i32): slices of K columns side by side in rows of
// ld, each slice's int32 sums bit for bit a host loop's (integer sums are exact in every order). Slices of 16 and
// 32 columns, a last row stride with room to spare (ld > batch * K), M = 1 and M past a tile, N = 4 and N = 132.
Test(gpu, int8_gemm_batched_matches_reference, .timeout = 600) {
    nt_gpu_ctx *ctx = tu_need_gpu();
    nt_err err = {0};
    const int shapes[][5] = {{1, 64, 32, 3, 100}, {7, 132, 48, 5, 240}, {33, 96, 128, 4, 512}, {130, 4, 16, 9, 144}};
    uint64_t st = 11;
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        const int M = shapes[s][0], N = shapes[s][1], K = shapes[s][2], B = shapes[s][3], ld = shapes[s][4];
        int8_t *X = malloc((size_t)M * ld), *W = malloc((size_t)N * ld);
        int32_t *R = malloc((size_t)B * M * N * 4), *I = malloc((size_t)B * M * N * 4);
        cr_assert(X && W && R && I);
        for (size_t i = 0; i < (size_t)M * ld; i++) X[i] = (int8_t)((int)(tu_rnd_u32(&st) % 255) - 127);
        for (size_t i = 0; i < (size_t)N * ld; i++) W[i] = (int8_t)((int)(tu_rnd_u32(&st) % 256) - 128);
        for (int b = 0; b < B; b++)
            for (int m = 0; m < M; m++)
                for (int n = 0; n < N; n++) {
                    int64_t acc = 0;
                    for (int k = b * K; k < (b + 1) * K; k++)
                        acc += (int64_t)X[(size_t)m * ld + k] * W[(size_t)n * ld + k];
                    R[((size_t)b * M + m) * N + n] = (int32_t)acc;
                }
        void *dX = NULL, *dW = NULL, *dI = NULL;
        cr_assert(nt_gpu_malloc(&dX, (size_t)M * ld, &err) == 0 && nt_gpu_malloc(&dW, (size_t)N * ld, &err) == 0 &&
                      nt_gpu_malloc(&dI, (size_t)B * M * N * 4, &err) == 0,
                  "%s", err.msg);
        cr_assert(nt_gpu_upload(dX, X, (size_t)M * ld, &err) == 0 && nt_gpu_upload(dW, W, (size_t)N * ld, &err) == 0,
                  "%s", err.msg);
        cr_assert(nt_gpu_gemm_i8_i32(ctx, dX, dW, dI, M, N, K, ld, B, &err) == 0, "%s", err.msg);
        cr_assert(nt_gpu_sync(&err) == 0 && nt_gpu_download(I, dI, (size_t)B * M * N * 4, &err) == 0, "%s", err.msg);
        cr_expect_eq(memcmp(I, R, (size_t)B * M * N * 4), 0, "batched int8 GEMM M %d N %d K %d x %d (ld %d) differs",
                     M, N, K, B, ld);
        nt_gpu_free(&dX);
        nt_gpu_free(&dW);
        nt_gpu_free(&dI);
        free(X), free(W), free(R), free(I);
    }
    cr_expect(nt_gpu_gemm_i8_i32(ctx, NULL, NULL, NULL, 4, 6, 8, 8, 1, &err) != 0 && strstr(err.msg, "multiples of 4"),
              "N = 6: %s", err.msg);
    cr_expect(nt_gpu_gemm_i8_i32(ctx, NULL, NULL, NULL, 4, 8, 8, 12, 2, &err) != 0 && strstr(err.msg, "batch * K"),
              "ld < batch * K: %s", err.msg);
    nt_gpu_ctx_free(&ctx);
}

// A linear with quantized activations on the device (nt_gpu_actq_linear) against the CPU's nt_actq_forward on the
// same fp16-representable inputs: every fp32 output the CPU's bit for bit, and every fp16 one that result rounded
// to fp16 (kernels/actq.cu says why they agree exactly). Random codes and zero points, so 8-bit asymmetric weights
// reach q - zero = +-255 (the offset c and the row sums R); every row set has an all-zero row (scale 1, all codes
// 0) and an outlier per row; a bias or none. The cases: per channel, groups of 128 with a shorter last one
// (576 = 4 x 128 + 64), act-order and arbitrary g_idx (groups of unequal length: padded slices), K not a multiple
// of 16 (100) and N not a multiple of 4 (37, 129: padded rows); W8A8, W4A8, W4A4; the static scheme with clamped
// codes. On the emulator the int32 partials budget is 64 KiB (actq.cu), so the 520-wide case goes by chunks of
// rows.
typedef struct {
    int N, K, wbits, gs;
    bool sym;
    enum order order;
    int abits;
    bool is_static, bias;
} actq_case;

static const actq_case g_actq_cases[] = {
    {64, 256, 8, -1, false, ORDER_NONE, 8, false, true},   {129, 576, 8, 128, false, ORDER_NONE, 8, false, false},
    {96, 576, 4, 128, false, ORDER_ACT, 8, false, true},   {40, 384, 4, 32, true, ORDER_ANY, 4, false, true},
    {37, 100, 8, -1, true, ORDER_NONE, 8, true, true},     {520, 256, 8, 64, false, ORDER_STATIC, 8, true, false},
    {72, 512, 4, 128, false, ORDER_NONE, 4, true, true},   {48, 256, 8, 32, false, ORDER_ACT, 4, false, false},
};

Test(gpu, actq_linear_matches_cpu, .timeout = 900) {
    nt_gpu_ctx *ctx = tu_need_gpu();
    nt_err err = {0};
    const int M = 19, zero_row = 3;
    for (size_t c = 0; c < sizeof g_actq_cases / sizeof g_actq_cases[0]; c++) {
        const actq_case *ac = &g_actq_cases[c];
        const int N = ac->N, K = ac->K;
        nt_qlinear *q = make_q(N, K, ac->wbits, ac->gs, ac->sym, ac->order);
        uint16_t *X = make_x(M, K), *Yd = malloc((size_t)M * N * 2);
        float *x = malloc((size_t)M * K * 4), *y = malloc((size_t)M * N * 4), *b = malloc((size_t)N * 4);
        float *Yd32 = malloc((size_t)M * N * 4);
        cr_assert(Yd && Yd32 && x && y && b);
        for (int t = 0; t < M; t++) X[(size_t)t * K + (t * 13) % K] = nt_f32_to_f16(t % 2 ? 30.0f : -24.0f);
        for (int k = 0; k < K; k++) X[(size_t)zero_row * K + k] = 0;
        float amax = 0.0f;
        for (size_t i = 0; i < (size_t)M * K; i++) x[i] = nt_f16_to_f32(X[i]), amax = fmaxf(amax, fabsf(x[i]));
        for (int n = 0; n < N; n++) b[n] = 0.5f * (rnd_unif() - 0.5f);
        const int qmax = nt_actq_qmax(ac->abits);
        nt_actq *a = NULL;
        cr_assert(nt_actq_make(&a, q, N, K, ac->abits, ac->is_static ? NT_ACT_STATIC : NT_ACT_DYNAMIC,
                               0.25f * amax / (float)qmax, &err) == 0, "%s", err.msg); // static: the outliers clamp
        nt_actq_forward(a, NULL, ac->bias ? b : NULL, x, M, y);
        // the layout's offsets: needed exactly when 8-bit asymmetric weights leave int8
        nt_actq_layout lay;
        cr_assert(nt_actq_layout_make(&lay, a, &err) == 0, "%s", err.msg);
        cr_expect((lay.corr != NULL) == (ac->wbits == 8 && !ac->sym), "case %zu: offsets %s", c,
                  lay.corr ? "present" : "absent");
        nt_actq_layout_free(&lay);
        nt_gpu_actq *d = NULL;
        void *dX = NULL, *dY = NULL, *dY32 = NULL, *db = NULL;
        cr_assert(nt_gpu_actq_upload(&d, a, &err) == 0, "%s", err.msg);
        cr_assert(nt_gpu_malloc(&dX, (size_t)M * K * 2, &err) == 0 &&
                      nt_gpu_malloc(&dY, (size_t)M * N * 2, &err) == 0 &&
                      nt_gpu_malloc(&dY32, (size_t)M * N * 4, &err) == 0 &&
                      nt_gpu_malloc(&db, (size_t)N * 4, &err) == 0,
                  "%s", err.msg);
        cr_assert(nt_gpu_upload(dX, X, (size_t)M * K * 2, &err) == 0 && nt_gpu_upload(db, b, (size_t)N * 4, &err) == 0,
                  "%s", err.msg);
        cr_assert(nt_gpu_memset(dY, 0xff, (size_t)M * N * 2, &err) == 0, "%s", err.msg);
        cr_assert(nt_gpu_memset(dY32, 0xff, (size_t)M * N * 4, &err) == 0, "%s", err.msg);
        for (int rows = 1; rows <= M; rows += M - 1) { // one row, then all
            // fp16 (what the forward pass takes) and fp32 (the exactness itself: fp16 would hide a last-bit slip)
            cr_assert(nt_gpu_actq_linear(ctx, d, dX, ac->bias ? db : NULL, dY, dY32, rows, &err) == 0, "%s", err.msg);
            cr_assert(nt_gpu_sync(&err) == 0 && nt_gpu_download(Yd, dY, (size_t)rows * N * 2, &err) == 0 &&
                          nt_gpu_download(Yd32, dY32, (size_t)rows * N * 4, &err) == 0,
                      "%s", err.msg);
            size_t bad = 0, bad32 = 0, first = 0;
            for (size_t i = 0; i < (size_t)rows * N; i++) {
                if (memcmp(&Yd32[i], &y[i], 4) != 0 && bad32++ == 0) first = i;
                bad += Yd[i] != nt_f32_to_f16(y[i]);
            }
            cr_expect(bad == 0 && bad32 == 0,
                      "W%dA%d %dx%d group %d %s order %d %s%s, %d rows: of %zu outputs %zu differ from the CPU's in "
                      "fp32 (first [%zu]: %.9g vs %.9g), %zu from them rounded to fp16",
                      ac->wbits, ac->abits, N, K, ac->gs, ac->sym ? "sym" : "asym", ac->order,
                      ac->is_static ? "static" : "dynamic", ac->bias ? " bias" : "", rows, (size_t)rows * N, bad32,
                      first, (double)Yd32[first], (double)y[first], bad);
        }
        cr_expect(nt_gpu_actq_linear(ctx, d, dX, NULL, NULL, NULL, M, &err) != 0, "no output: an error");
        // the zero row: scale 1, codes 0, so bias alone (or zeros)
        for (int n = 0; n < N; n++)
            cr_expect_eq(Yd[(size_t)zero_row * N + n], nt_f32_to_f16(ac->bias ? b[n] : 0.0f), "zero row, output %d", n);
        nt_gpu_free(&dX);
        nt_gpu_free(&dY);
        nt_gpu_free(&dY32);
        nt_gpu_free(&db);
        nt_gpu_actq_free(&d);
        nt_actq_free(&a);
        nt_qlinear_free(&q);
        free(X), free(Yd), free(Yd32), free(x), free(y), free(b);
    }
    nt_gpu_ctx_free(&ctx);
}

// A float linear's activation quantization (no integer weights) has no device form: an error, not a crash.
Test(gpu, actq_float_linear_is_refused) {
    nt_err err = {0};
    nt_actq *a = NULL;
    cr_assert(nt_actq_make(&a, NULL, 8, 16, 8, NT_ACT_DYNAMIC, 0.0f, &err) == 0, "%s", err.msg);
    nt_actq_layout lay;
    cr_expect(nt_actq_layout_make(&lay, a, &err) != 0 && strstr(err.msg, "float linear"), "%s", err.msg);
    nt_actq_free(&a);
}

// Attention over 12,000 positions: 47 KB of dynamic shared memory (the scores) plus the kernel's 2 KB of static
// shared memory passes 48 KB, so the launch needs the opt-in although the scores alone do not (positions 11,777
// to 12,288 failed on a device before the static part was counted). Device only: 12,000 blocks of 256 threads
// are hours on the emulator. Rows checked against a double-precision softmax attention.
Test(gpu, attention_past_48k_of_shared_memory, .timeout = 600) {
#if defined(NT_CUDA_EMU) || !defined(NT_HAVE_CUDA)
    cr_skip_test("device only (on the emulator 12,000 blocks of 256 fibers; without CUDA no forward ops)");
#else
    nt_gpu_ctx *ctx = tu_need_gpu();
    nt_err err = {0};
    const int n = 12000, hd = 64;
    uint16_t *q = make_x(n, hd), *k = make_x(n, hd), *v = make_x(n, hd), *o = malloc((size_t)n * hd * 2);
    void *dq = NULL, *dk = NULL, *dv = NULL, *dout = NULL;
    size_t bytes = (size_t)n * hd * 2;
    cr_assert(nt_gpu_malloc(&dq, bytes, &err) == 0 && nt_gpu_malloc(&dk, bytes, &err) == 0 &&
              nt_gpu_malloc(&dv, bytes, &err) == 0 && nt_gpu_malloc(&dout, bytes, &err) == 0, "%s", err.msg);
    cr_assert(nt_gpu_upload(dq, q, bytes, &err) == 0 && nt_gpu_upload(dk, k, bytes, &err) == 0 &&
              nt_gpu_upload(dv, v, bytes, &err) == 0, "%s", err.msg);
    cr_assert(nt_gpu_op_attention(ctx, dq, dk, dv, n, 1, 1, hd, NULL, dout, &err) == 0, "%s", err.msg);
    cr_assert(nt_gpu_sync(&err) == 0 && nt_gpu_download(o, dout, bytes, &err) == 0, "%s", err.msg);
    const int rows[] = {0, 1, 5000, n - 1};
    double *p = malloc((size_t)n * sizeof *p);
    for (int ri = 0; ri < 4; ri++) {
        const int t = rows[ri];
        double mx = -INFINITY, sum = 0.0;
        for (int j = 0; j <= t; j++) {
            double s = 0.0;
            for (int d = 0; d < hd; d++) s += (double)nt_f16_to_f32(q[t * hd + d]) * nt_f16_to_f32(k[j * hd + d]);
            p[j] = s / sqrt((double)hd);
            mx = fmax(mx, p[j]);
        }
        for (int j = 0; j <= t; j++) sum += (p[j] = exp(p[j] - mx));
        float ref[64], got[64];
        for (int d = 0; d < hd; d++) {
            double acc = 0.0;
            for (int j = 0; j <= t; j++) acc += p[j] * nt_f16_to_f32(v[j * hd + d]);
            ref[d] = (float)(acc / sum);
            got[d] = nt_f16_to_f32(o[t * hd + d]);
        }
        char what[64];
        snprintf(what, sizeof what, "attention row %d of %d", t, n);
        validate_result(what, got, ref, 1, hd, 2e-3); // fp32 softmax, fp16 output: 2^-11 relative
    }
    free(p);
    nt_gpu_free(&dq);
    nt_gpu_free(&dk);
    nt_gpu_free(&dv);
    nt_gpu_free(&dout);
    free(q);
    free(k);
    free(v);
    free(o);
    nt_gpu_ctx_free(&ctx);
#endif
}

// ------------------------------------------------------------------------------------------------- timing

typedef struct {
    int calls, bad_order, last;
    int copies;
} count_arg;
static int count_launch(void *arg, int copy, nt_err *err) {
    (void)err;
    count_arg *a = arg;
    if (copy != (a->last + 1) % a->copies) a->bad_order++;
    a->last = copy;
    a->calls++;
    return 0;
}

// nt_gpu_time rotates the copies in order from 0, warms up for at least the time asked, and reports the batch.
Test(gpu, timing_rotates_copies_and_warms_up) {
    nt_gpu_ctx *ctx = tu_need_gpu();
    nt_err err = {0};
    count_arg a = {0, 0, -1, 3};
    nt_gpu_timing t;
    double t0 = nt_time();
    cr_assert(nt_gpu_time(ctx, count_launch, &a, 3, 20.0, 5, &t, &err) == 0, "%s", err.msg);
    cr_assert(nt_time() - t0 >= 0.020, "warm-up shorter than asked");
    cr_assert_eq(a.bad_order, 0, "copies not rotated in order");
    cr_assert(t.batch >= 1 && t.batches == 5 && t.warmup_ms >= 20.0);
    cr_assert(a.calls >= 5 * t.batch);
    cr_assert(t.us_min <= t.us && t.us <= t.us_max && isfinite(t.us), "%g %g %g", t.us_min, t.us, t.us_max);
    cr_assert(nt_gpu_time(ctx, count_launch, &a, 0, 1.0, 1, &t, &err) != 0, "zero copies is an error");
    double gbps = 0.0;
    cr_assert(nt_gpu_copy_gbps(ctx, (size_t)1 << 16, 1, &gbps, &err) == 0, "%s", err.msg);
    cr_assert(isfinite(gbps) && gbps > 0.0, "%g", gbps);
    int sm = 0, mem = 0; // NVML: clocks, or -1 and a reason
    if (nt_gpu_clocks_now(nt_gpu_ctx_info(ctx), &sm, &mem, &err) == 0) cr_assert(sm > 0 && mem > 0);
    else cr_assert(sm == -1 && mem == -1 && err.msg[0]);
    nt_gpu_ctx_free(&ctx);
}
