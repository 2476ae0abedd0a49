// test_quant.c: the packed format of quant/quant.h (traits table, bit layouts against GPTQ's and AutoGPTQ's
// schemes, pack/unpack/dequantize round trips over every bit width x group size x sym/asym x act-order, format
// errors) and RTN against the PyTorch transcription of GPTQ's Quantizer (tests/golden/make_gptq_goldens.py).
#include <criterion/criterion.h>
#include <cjson/cJSON.h>
#include <math.h>
#include <string.h>

#include "quant.h"
#include "testutil.h"

// ---------------------------------------------------------------------------------------------- helpers

static uint64_t g_rng = 0x9e3779b97f4a7c15ull; // this file's data stream
static uint32_t rnd_u32(void) { return tu_rnd_u32(&g_rng); }
static float rnd_unif(void) { return tu_rnd_unif(&g_rng); }
static float rnd_normal(void) { return tu_rnd_normal(&g_rng); }
static void *read_golden(const char *name, size_t expect_len) {
    return tu_read_golden("gptq", name, expect_len, "tests/golden/make_gptq_goldens.py");
}
static cJSON *load_index(void) {
    char *text = read_golden("cases.json", 0);
    cJSON *j = cJSON_Parse(text);
    free(text);
    cr_assert(j != NULL, "cases.json does not parse");
    return j;
}
#define jint tu_json_int
#define jbool tu_json_bool
#define jstr tu_json_str

// ------------------------------------------------------------------------------------------------ traits

Test(traits, table_is_consistent) {
    const int supported[] = {2, 3, 4, 8};
    for (int i = 0; i < 4; i++) {
        const nt_qtraits *t = nt_qtraits_get(supported[i]);
        cr_assert(t != NULL);
        cr_assert_eq(t->bits, supported[i]);
        cr_assert_eq(t->maxq, (1 << t->bits) - 1);
        cr_assert_eq(t->words_per_pack, t->bits);
        cr_assert_eq(t->values_per_word, 32 % t->bits == 0 ? 32 / t->bits : 0);
        cr_assert_eq(t->sym_zero, (t->maxq + 1) / 2);
        cr_assert(t->pack && t->unpack);
    }
    const int unsupported[] = {0, 1, 5, 6, 7, 16, 32, -4};
    for (int i = 0; i < 8; i++) cr_assert_null(nt_qtraits_get(unsupported[i]));
}

// 2, 4, 8 bits: AutoGPTQ's layout, value j of a word at bit (j % (32/bits)) * bits.
Test(traits, pow2_layout_matches_autogptq) {
    const int widths[] = {2, 4, 8};
    for (int b = 0; b < 3; b++) {
        const nt_qtraits *t = nt_qtraits_get(widths[b]);
        uint8_t q[32];
        for (int j = 0; j < 32; j++) q[j] = (uint8_t)((j * 7 + 3) & t->maxq);
        uint32_t w[8] = {0};
        t->pack(q, w, 1);
        int vpw = 32 / t->bits;
        for (int wi = 0; wi < t->bits; wi++) {
            uint32_t expect = 0;
            for (int j = 0; j < vpw; j++) expect |= (uint32_t)q[wi * vpw + j] << (j * t->bits);
            cr_assert_eq(w[wi], expect, "%d bits, word %d: %08x vs %08x", t->bits, wi, w[wi], expect);
        }
    }
}

// 3 bits: GPTQ's scheme, written out word by word as the reference's pack loop builds it.
Test(traits, three_bit_layout_matches_gptq) {
    const nt_qtraits *t = nt_qtraits_get(3);
    for (int trial = 0; trial < 100; trial++) {
        uint8_t q[32];
        for (int j = 0; j < 32; j++) q[j] = (uint8_t)(rnd_u32() & 7);
        uint32_t w[3] = {0}, e[3] = {0};
        t->pack(q, w, 1);
        for (int j = 0; j < 10; j++) e[0] |= (uint32_t)q[j] << (3 * j);
        e[0] |= (uint32_t)q[10] << 30;
        e[1] |= (q[10] >> 2) & 1u;
        for (int j = 11; j < 21; j++) e[1] |= (uint32_t)q[j] << (3 * (j - 11) + 1);
        e[1] |= (uint32_t)q[21] << 31;
        e[2] |= (q[21] >> 1) & 3u;
        for (int j = 22; j < 32; j++) e[2] |= (uint32_t)q[j] << (3 * (j - 22) + 2);
        for (int i = 0; i < 3; i++) cr_assert_eq(w[i], e[i], "word %d: %08x vs %08x", i, w[i], e[i]);
        uint8_t back[32];
        t->unpack(w, 1, back);
        cr_assert(memcmp(back, q, 32) == 0);
    }
}

Test(traits, strided_pack_touches_only_its_words) {
    for (int b = 2; b <= 8; b++) {
        const nt_qtraits *t = nt_qtraits_get(b);
        if (!t) continue;
        uint32_t w[8 * 5];
        for (int i = 0; i < 40; i++) w[i] = 0xdeadbeefu;
        uint8_t q[32], back[32];
        for (int j = 0; j < 32; j++) q[j] = (uint8_t)(rnd_u32() & t->maxq);
        t->pack(q, w + 2, 5);
        for (int i = 0; i < 40; i++)
            if (i % 5 != 2 || i / 5 >= b) cr_assert_eq(w[i], 0xdeadbeefu, "%d bits: word %d overwritten", b, i);
        t->unpack(w + 2, 5, back);
        cr_assert(memcmp(back, q, 32) == 0, "%d bits", b);
    }
}

// --------------------------------------------------------------------------------------- format errors

static void expect_format_error(int out, int in, int bits, int gs, const char *msg) {
    nt_err err = {0};
    cr_assert_eq(nt_qformat_check(out, in, bits, gs, &err), -1, "%d x %d, %d bits, g%d accepted", out, in, bits, gs);
    cr_assert(strstr(err.msg, msg) != NULL, "message \"%s\" lacks \"%s\"", err.msg, msg);
    nt_qlinear *q = (nt_qlinear *)1;
    cr_assert_eq(nt_qlinear_alloc(&q, out, in, bits, gs, false, false, &err), -1);
    cr_assert_null(q);
    nt_qconfig c = nt_qconfig_make(bits, gs, false);
    float *W = calloc((size_t)(out > 0 ? out : 1) * (in > 0 ? in : 1), sizeof *W);
    q = (nt_qlinear *)1;
    cr_assert_eq(nt_rtn_quantize(&q, NULL, W, out, in, &c, &err), -1);
    cr_assert_null(q);
    free(W);
}

Test(format, errors_are_clear) {
    expect_format_error(8, 128, 5, 32, "unsupported bit width 5 (supported: 2, 3, 4, 8)");
    expect_format_error(8, 128, 16, 32, "unsupported bit width 16");
    expect_format_error(8, 144, 4, 48, "unsupported group size 48");
    expect_format_error(8, 128, 4, 0, "unsupported group size 0");
    expect_format_error(0, 128, 4, 32, "empty weight matrix");
}

Test(format, rtn_rejects_non_finite_weights) {
    float W[2 * 32] = {0};
    W[37] = NAN;
    nt_qconfig c = nt_qconfig_make(4, 32, false);
    nt_qlinear *q = NULL;
    nt_err err = {0};
    cr_assert_eq(nt_rtn_quantize(&q, NULL, W, 2, 32, &c, &err), -1);
    cr_assert(strstr(err.msg, "weight (1, 5)") != NULL, "%s", err.msg);
    cr_assert_null(q);
}

Test(format, validate_and_set_params_catch_bad_contents) {
    nt_qlinear *q = NULL;
    nt_err err = {0};
    cr_assert_eq(nt_qlinear_alloc(&q, 4, 64, 3, 32, false, true, &err), 0, "%s", err.msg);
    float scale[8], zero[8];
    for (int i = 0; i < 8; i++) scale[i] = 0.01f, zero[i] = 3.0f;
    cr_assert_eq(nt_qlinear_set_params(q, scale, zero, &err), 0, "%s", err.msg);
    cr_assert_eq(nt_qlinear_validate(q, &err), 0, "%s", err.msg);
    zero[5] = 8.0f;
    cr_assert_eq(nt_qlinear_set_params(q, scale, zero, &err), -1);
    cr_assert(strstr(err.msg, "zero point 8") != NULL, "%s", err.msg);
    zero[5] = 2.5f;
    cr_assert_eq(nt_qlinear_set_params(q, scale, zero, &err), -1);
    zero[5] = 3.0f;
    scale[2] = 1e6f;
    cr_assert_eq(nt_qlinear_set_params(q, scale, zero, &err), -1);
    cr_assert(strstr(err.msg, "does not fit fp16") != NULL, "%s", err.msg);
    scale[2] = 1e-9f;
    cr_assert_eq(nt_qlinear_set_params(q, scale, zero, &err), -1);
    q->zeros[3] = 9;
    cr_assert_eq(nt_qlinear_validate(q, &err), -1);
    cr_assert(strstr(err.msg, "zero point 9") != NULL, "%s", err.msg);
    q->zeros[3] = 1;
    q->g_idx[10] = 2;
    cr_assert_eq(nt_qlinear_validate(q, &err), -1);
    cr_assert(strstr(err.msg, "g_idx[10] = 2") != NULL, "%s", err.msg);
    q->g_idx[10] = 0;
    q->perm[7] = 6;
    cr_assert_eq(nt_qlinear_validate(q, &err), -1);
    cr_assert(strstr(err.msg, "not a permutation") != NULL, "%s", err.msg);
    nt_qlinear_free(&q);
    cr_assert_null(q);
    nt_qlinear_free(&q); // freeing NULL is fine
}

// ---------------------------------------------------------------------------------------- round trips

// Every bit width x group size x sym/asym x act-order on awkward shapes: pack -> unpack is bit-exact and
// dequantize is scale * (code - zero) with the group g_idx names.
Test(roundtrip, all_formats) {
    const int bits[] = {2, 3, 4, 8}, groups[] = {32, 64, 128, -1}, Ks[] = {32, 96, 4096 + 32, 688, 100}, Ns[] = {1, 3, 67};
    int checked = 0, partial = 0;
    for (int bi = 0; bi < 4; bi++)
        for (int gi = 0; gi < 4; gi++)
            for (int ki = 0; ki < 5; ki++) // 688, 100: K not a multiple of 32 (padded last pack)
                for (int ni = 0; ni < 3; ni++)
                    for (int sym = 0; sym < 2; sym++)
                        for (int act = 0; act < 2; act++) {
                            const int b = bits[bi], gs = groups[gi], K = Ks[ki], N = Ns[ni];
                            nt_qlinear *q = NULL;
                            nt_err err = {0};
                            // groups that do not divide K: ceil(K / gs) of them, the last one shorter
                            cr_assert_eq(nt_qlinear_alloc(&q, N, K, b, gs, sym, act, &err), 0, "%s", err.msg);
                            cr_assert_eq(q->n_groups, gs > 0 ? (K + gs - 1) / gs : 1);
                            partial += gs > 0 && K % gs != 0;
                            const int maxq = (1 << b) - 1, ng = q->n_groups;
                            cr_assert_eq(ng, gs > 0 ? (K + gs - 1) / gs : 1);
                            uint8_t *codes = malloc((size_t)N * K), *back = malloc((size_t)N * K);
                            float *W = malloc((size_t)N * K * sizeof *W);
                            float *scale = malloc((size_t)ng * N * sizeof *scale);
                            float *zero = malloc((size_t)ng * N * sizeof *zero);
                            for (size_t i = 0; i < (size_t)N * K; i++) codes[i] = (uint8_t)(rnd_u32() % (maxq + 1));
                            for (size_t i = 0; i < (size_t)ng * N; i++) {
                                scale[i] = 1e-3f + rnd_unif();
                                zero[i] = (float)(rnd_u32() % (maxq + 1));
                            }
                            if (act) { // a random permutation; groups formed in its order
                                for (int k = 0; k < K; k++) q->perm[k] = k;
                                for (int k = K - 1; k > 0; k--) {
                                    int j = (int)(rnd_u32() % (uint32_t)(k + 1)), t = q->perm[k];
                                    q->perm[k] = q->perm[j];
                                    q->perm[j] = t;
                                }
                                for (int j = 0; j < K; j++) q->g_idx[q->perm[j]] = gs > 0 ? j / gs : 0;
                            }
                            cr_assert_eq(nt_qlinear_set_params(q, scale, zero, &err), 0, "%s", err.msg);
                            nt_qlinear_pack(q, codes);
                            cr_assert_eq(nt_qlinear_validate(q, &err), 0, "%s", err.msg);
                            nt_qlinear_unpack(q, back);
                            cr_assert(memcmp(codes, back, (size_t)N * K) == 0, "%d bits g%d K %d N %d", b, gs, K, N);
                            nt_qlinear_dequantize(q, W);
                            for (int n = 0; n < N; n++)
                                for (int k = 0; k < K; k++) {
                                    size_t gi = (size_t)q->g_idx[k] * N + n;
                                    float s = nt_f16_to_f32(q->scales[gi]);
                                    float z = sym ? (float)((maxq + 1) / 2) : zero[gi];
                                    float expect = s * ((float)codes[(size_t)n * K + k] - z);
                                    cr_assert(W[(size_t)n * K + k] == expect, "%d bits g%d (%d, %d): %g vs %g", b, gs,
                                              n, k, W[(size_t)n * K + k], expect);
                                }
                            cr_assert_eq(nt_qlinear_bytes(q),
                                         (size_t)nt_qpacks(K) * b * 4 * N + (size_t)ng * N * (sym ? 2 : 3) + (size_t)K * 4);
                            free(codes);
                            free(back);
                            free(W);
                            free(scale);
                            free(zero);
                            nt_qlinear_free(&q);
                            checked++;
                        }
    cr_assert(checked > 200 && partial > 0, "%d checked, %d with a shorter last group", checked, partial);
}

// ----------------------------------------------------------------------------------------- quantizer

Test(quantizer, special_rows_follow_gptq) {
    nt_qconfig c = nt_qconfig_make(4, -1, false);
    float s, z;
    float zeros[8] = {0};
    nt_quant_find_params(&c, zeros, 8, 1, &s, &z); // all zero: min -1, max +1
    cr_assert(s == 2.0f / 15.0f && z == 7.0f, "%g %g", s, z); // 1 / (2/15) is 7.4999995 in float32
    float pos[4] = {0.5f, 1.5f, 3.0f, 1.0f};
    nt_quant_find_params(&c, pos, 4, 1, &s, &z); // the range always holds 0
    cr_assert(s == 3.0f / 15.0f && z == 0.0f, "%g %g", s, z);
    c.sym = true;
    nt_quant_find_params(&c, pos, 4, 1, &s, &z); // sym, no negative value: xmin stays 0
    cr_assert(s == 3.0f / 15.0f && z == 8.0f, "%g %g", s, z);
    float mixed[3] = {-2.0f, 0.5f, 1.0f};
    nt_quant_find_params(&c, mixed, 3, 1, &s, &z); // sym: [-2, 2]
    cr_assert(s == 4.0f / 15.0f && z == 8.0f, "%g %g", s, z);
    cr_assert_eq(nt_quant_code(0.5f * s, s, z, 15), 8); // a tie rounds to even
    cr_assert_eq(nt_quant_code(1.5f * s, s, z, 15), 10);
    cr_assert_eq(nt_quant_code(1e9f, s, z, 15), 15);
    cr_assert_eq(nt_quant_code(-1e9f, s, z, 15), 0);
}

// The MSE search never does worse than min/max on its own criterion, and clips outliers.
Test(quantizer, mse_search_lowers_the_error) {
    for (int b = 2; b <= 8; b++) {
        if (!nt_qtraits_get(b)) continue;
        for (int trial = 0; trial < 20; trial++) {
            float x[128];
            for (int i = 0; i < 128; i++) x[i] = rnd_normal();
            x[trial] = 12.0f; // an outlier
            double e[2];
            for (int m = 0; m < 2; m++) {
                nt_qconfig c = nt_qconfig_make(b, -1, trial % 2);
                c.mse = m;
                float s, z;
                nt_quant_find_params(&c, x, 128, 1, &s, &z);
                e[m] = 0.0;
                for (int i = 0; i < 128; i++)
                    e[m] += pow(fabsf(nt_quant_dequant(nt_quant_code(x[i], s, z, (1 << b) - 1), s, z) - x[i]), 2.4);
            }
            // one-sided: the search's candidates include min/max itself, so its error is at most min/max's, as the
            // search measures it: with powf in fp32 per term where this sum uses pow in double (rtol 1e-6), atol 0
            TU_ASSERT_WITHIN(e[1] - e[0], e[0], 0.0, 1e-6, "%d bits: mse search's error above min/max's %g", b, e[0]);
        }
    }
}

// ----------------------------------------------------------------------------------- RTN vs the golden

// The cases of cases.json's `set` ("rtn": groups that divide K; "rtn_partial": K = 200 with groups of 32, 64 and
// 128, the last group shorter, as the reference's slices are).
static void rtn_cases(const char *set, int want_cases) {
    cJSON *idx = load_index();
    const cJSON *r = cJSON_GetObjectItemCaseSensitive(idx, set);
    const int N = jint(r, "out"), K = jint(r, "in");
    float *W = read_golden(jstr(r, "w"), (size_t)N * K * 4);
    float *Wq = malloc((size_t)N * K * sizeof *Wq), *Wd = malloc((size_t)N * K * sizeof *Wd);
    uint8_t *codes = malloc((size_t)N * K);
    const cJSON *cs;
    int ncases = 0, code_mismatch_total = 0;
    cJSON_ArrayForEach(cs, cJSON_GetObjectItemCaseSensitive(r, "cases")) {
        const char *name = jstr(cs, "name");
        const int bits = jint(cs, "bits"), gs = jint(cs, "group_size"), ng = jint(cs, "n_groups");
        const bool sym = jbool(cs, "sym");
        uint8_t *gold = read_golden(jstr(cs, "file"), (size_t)N * K + (size_t)ng * N * 8 + (size_t)K * 4);
        const uint8_t *gcodes = gold;
        float *gscale = malloc((size_t)ng * N * 4), *gzero = malloc((size_t)ng * N * 4);
        memcpy(gscale, gold + (size_t)N * K, (size_t)ng * N * 4);
        memcpy(gzero, gold + (size_t)N * K + (size_t)ng * N * 4, (size_t)ng * N * 4);

        nt_qconfig c = nt_qconfig_make(bits, gs, sym);
        c.mse = jbool(cs, "mse");
        nt_qlinear *q = NULL;
        nt_err err = {0};
        cr_assert_eq(nt_rtn_quantize(&q, Wq, W, N, K, &c, &err), 0, "%s: %s", name, err.msg);
        cr_assert_eq(q->n_groups, ng, "%s", name);
        nt_qlinear_unpack(q, codes);
        // Codes: identical (torch.round and rintf both round half to even, and the arithmetic is the same).
        int mismatch = 0;
        for (size_t i = 0; i < (size_t)N * K; i++) mismatch += codes[i] != gcodes[i];
        code_mismatch_total += mismatch;
        cr_assert_eq(mismatch, 0, "%s: %d codes differ", name, mismatch);
        // The fp32 fake-quantized W against the transcription's: the same product scale * (q - z), scales computed
        // by the same fp32 formula in another op order: rtol 1e-6 (~16 ulps); atol 0 (q = z gives 0 in both).
        for (int n = 0; n < N; n++)
            for (int k = 0; k < K; k++) {
                size_t gi = (size_t)(gs > 0 ? k / gs : 0) * N + n;
                float ref = gscale[gi] * ((float)gcodes[(size_t)n * K + k] - gzero[gi]);
                float got = Wq[(size_t)n * K + k];
                TU_ASSERT_CLOSE(got, ref, 0.0, 1e-6, "%s (%d, %d) against the transcription", name, n, k);
            }
        // The packed params: fp16 of the reference scales, exact zero points.
        for (size_t i = 0; i < (size_t)ng * N; i++) {
            cr_assert_eq(q->scales[i], nt_f32_to_f16(gscale[i]), "%s: scale %zu", name, i);
            if (!sym) cr_assert_eq(q->zeros[i], (uint8_t)gzero[i], "%s: zero %zu", name, i);
        }
        // nt_qlinear_dequantize differs from the fp32 result by the fp16 rounding of the scale only: at most
        // 2^-11 relative, or half the subnormal step 2^-24 for scales below 2^-14 (tiny weights): atol = |q - z|
        // times that, rtol 0.
        nt_qlinear_dequantize(q, Wd);
        for (int n = 0; n < N; n++)
            for (int k = 0; k < K; k++) {
                size_t gi = (size_t)(gs > 0 ? k / gs : 0) * N + n;
                float qz = fabsf((float)gcodes[(size_t)n * K + k] - gzero[gi]);
                double atol = qz * (fabsf(gscale[gi]) * 0x1p-11 + 0x1p-25);
                TU_ASSERT_CLOSE(Wd[(size_t)n * K + k], Wq[(size_t)n * K + k], atol, 0.0,
                                "%s (%d, %d): dequantized against fp32", name, n, k);
            }
        nt_qlinear_free(&q);
        free(gold);
        free(gscale);
        free(gzero);
        ncases++;
    }
    cr_assert_eq(ncases, want_cases);
    cr_assert_eq(code_mismatch_total, 0);
    free(W);
    free(Wq);
    free(Wd);
    free(codes);
    cJSON_Delete(idx);
}

Test(rtn, matches_pytorch_transcription) { rtn_cases("rtn", 48); }
Test(rtn, shorter_last_group_matches_pytorch_transcription) { rtn_cases("rtn_partial", 5); }

// With scale_f16 the fp32 result is exactly what the packed model dequantizes to.
Test(rtn, scale_f16_makes_packed_and_fp32_identical) {
    const int N = 37, K = 256;
    float *W = malloc((size_t)N * K * 4), *Wq = malloc((size_t)N * K * 4), *Wd = malloc((size_t)N * K * 4);
    for (size_t i = 0; i < (size_t)N * K; i++) W[i] = 0.02f * rnd_normal();
    const int bits[] = {2, 3, 4, 8}, groups[] = {-1, 32, 128};
    for (int bi = 0; bi < 4; bi++)
        for (int gi = 0; gi < 3; gi++)
            for (int m = 0; m < 4; m++) {
                nt_qconfig c = nt_qconfig_make(bits[bi], groups[gi], m & 1);
                c.mse = m & 2;
                c.scale_f16 = true;
                nt_qlinear *q = NULL;
                nt_err err = {0};
                cr_assert_eq(nt_rtn_quantize(&q, Wq, W, N, K, &c, &err), 0, "%s", err.msg);
                nt_qlinear_dequantize(q, Wd);
                cr_assert(memcmp(Wq, Wd, (size_t)N * K * 4) == 0, "%d bits g%d mode %d", bits[bi], groups[gi], m);
                nt_qlinear_free(&q);
            }
    free(W);
    free(Wq);
    free(Wd);
}

// Finer groups and more bits quantize more accurately (a sanity check of the whole path).
Test(rtn, error_shrinks_with_bits_and_groups) {
    const int N = 64, K = 512;
    float *W = malloc((size_t)N * K * 4), *Wq = malloc((size_t)N * K * 4);
    for (size_t i = 0; i < (size_t)N * K; i++) W[i] = 0.02f * rnd_normal();
    double prev_bits = INFINITY;
    for (int b = 2; b <= 8; b++) {
        if (!nt_qtraits_get(b)) continue;
        double prev_g = INFINITY;
        const int groups[] = {-1, 128, 64, 32};
        for (int gi = 0; gi < 4; gi++) {
            nt_qconfig c = nt_qconfig_make(b, groups[gi], false);
            nt_qlinear *q = NULL;
            nt_err err = {0};
            cr_assert_eq(nt_rtn_quantize(&q, Wq, W, N, K, &c, &err), 0, "%s", err.msg);
            double e = 0.0;
            for (size_t i = 0; i < (size_t)N * K; i++) e += (double)(W[i] - Wq[i]) * (W[i] - Wq[i]);
            cr_assert(e < prev_g, "%d bits g%d: %g >= %g", b, groups[gi], e, prev_g);
            prev_g = e;
            if (gi == 0) {
                cr_assert(e < prev_bits * 0.5, "%d bits: %g vs %g", b, e, prev_bits);
                prev_bits = e;
            }
            nt_qlinear_free(&q);
        }
    }
    free(W);
    free(Wq);
}
