// test_gptq.c: GPTQ (quant/gptq.c) and its Hessian accumulation against the PyTorch transcription of the reference
// (tests/golden/make_gptq_goldens.py), GPTQ's output error below RTN's on calibration data, lazy-batch invariance,
// dead columns, act-order metadata, fp16-scale consistency, and one test per kind of bad input.
//
// Tolerance against the transcription: both run the same float32 algorithm, but the Cholesky factorizations and the
// trailing sgemm accumulate in a different order (OpenBLAS here, torch's BLAS/LAPACK there), so a weight that lands
// within rounding noise of a rounding boundary can take the other code, and the changed error then propagates to the
// rest of its row. Budget: >= 99.5% of codes identical, >= 99.5% of dequantized weights within 1e-5 relative,
// >= 99% of group scales within 1e-4 relative, zero points and g_idx as stated, loss within 1e-3 relative.
// (Each as |a - ref| <= atol + rtol |ref|, both parts given and justified where they are checked.)
#include <cblas.h>
#include <criterion/criterion.h>
#include <cjson/cJSON.h>
#include <math.h>
#include <string.h>

#include "quant.h"
#include "testutil.h"

// ---------------------------------------------------------------------------------------------- helpers

static uint64_t g_rng = 0x243f6a8885a308d3ull; // this file's data stream
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

static const cJSON *jget(const cJSON *o, const char *k) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    cr_assert(v != NULL, "cases.json: missing %s", k);
    return v;
}
static int jint(const cJSON *o, const char *k) { return jget(o, k)->valueint; }
static double jnum(const cJSON *o, const char *k) { return jget(o, k)->valuedouble; }
static bool jbool(const cJSON *o, const char *k) { return cJSON_IsTrue(jget(o, k)); }
static const char *jstr(const cJSON *o, const char *k) { return jget(o, k)->valuestring; }

// Activations with correlated channels and a few outlier channels: X (n, in) = (Z M) * col.
static float *correlated_x(int n, int in) {
    float *Z = malloc((size_t)n * in * 4), *M = malloc((size_t)in * in * 4), *X = malloc((size_t)n * in * 4);
    float *col = malloc((size_t)in * 4);
    for (size_t i = 0; i < (size_t)n * in; i++) Z[i] = rnd_normal();
    for (int i = 0; i < in; i++)
        for (int j = 0; j < in; j++) M[(size_t)i * in + j] = (i == j) + 0.6f * rnd_normal() / sqrtf((float)in);
    for (int j = 0; j < in; j++) col[j] = expf(0.75f * rnd_normal()) * (j % 61 == 7 ? 8.0f : 1.0f);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, in, in, 1.0f, Z, in, M, in, 0.0f, X, in);
    for (int r = 0; r < n; r++)
        for (int j = 0; j < in; j++) X[(size_t)r * in + j] *= col[j];
    free(Z);
    free(M);
    free(col);
    return X;
}

static float *random_w(int out, int in) {
    float *W = malloc((size_t)out * in * 4);
    for (int r = 0; r < out; r++) {
        float rs = 0.05f * expf(0.5f * rnd_normal());
        for (int k = 0; k < in; k++) W[(size_t)r * in + k] = rs * rnd_normal();
    }
    return W;
}

// sum over rows e of e H e^T, e = W - Wq: the output error ||(W - Wq) X^T||^2 up to H's normalization.
static double h_error(const float *W, const float *Wq, int out, int in, const float *H) {
    float *E = calloc((size_t)out * in, 4), *EH = malloc((size_t)out * in * 4);
    for (size_t i = 0; i < (size_t)out * in; i++) E[i] = W[i] - Wq[i];
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, out, in, in, 1.0f, E, in, H, in, 0.0f, EH, in);
    double s = 0.0;
    for (size_t i = 0; i < (size_t)out * in; i++) s += (double)E[i] * EH[i];
    free(E);
    free(EH);
    return s;
}

// ||(W - Wq) X^T||^2 computed explicitly.
static double x_error(const float *W, const float *Wq, int out, int in, const float *X, int n) {
    float *E = calloc((size_t)out * in, 4), *Y = malloc((size_t)n * out * 4);
    for (size_t i = 0; i < (size_t)out * in; i++) E[i] = W[i] - Wq[i];
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, out, in, 1.0f, X, in, E, in, 0.0f, Y, out);
    double s = 0.0;
    for (size_t i = 0; i < (size_t)n * out; i++) s += (double)Y[i] * Y[i];
    free(E);
    free(Y);
    return s;
}

static int run_gptq(nt_qlinear **q, float *Wq, double *loss, const float *W, int out, int in, const float *H,
                    const nt_gptq_config *c) {
    nt_err err = {0};
    int rc = nt_gptq_quantize(q, Wq, loss, W, out, in, H, c, &err);
    cr_assert_eq(rc, 0, "%s", err.msg);
    return rc;
}

// ------------------------------------------------------------------------------------------------ Hessian

Test(hessian, matches_add_batch) {
    cJSON *idx = load_index();
    const cJSON *h = jget(idx, "hessian"), *b;
    const int in = jint(h, "in"), tokens = jint(h, "tokens");
    float *H = malloc((size_t)in * in * 4);
    for (int i = 0; i < in * in; i++) H[i] = NAN; // the first call must overwrite H
    long ns = 0;
    cJSON_ArrayForEach(b, jget(h, "batches")) {
        const int seqs = jint(b, "seqs");
        float *X = read_golden(jstr(b, "file"), (size_t)seqs * tokens * in * 4);
        nt_err err = {0};
        cr_assert_eq(nt_gptq_hessian_add(H, in, &ns, X, (long)seqs * tokens, seqs, &err), 0, "%s", err.msg);
        free(X);
    }
    cr_assert_eq(ns, jint(h, "nsamples"));
    float *ref = read_golden(jstr(h, "h"), (size_t)in * in * 4);
    float maxabs = 0.0f;
    for (int i = 0; i < in * in; i++) maxabs = fmaxf(maxabs, fabsf(ref[i]));
    for (int i = 0; i < in; i++)
        for (int j = 0; j < in; j++) {
            float got = H[i * in + j], want = ref[i * in + j];
            // sgemm's fp32 sums of token products (OpenBLAS against torch): the rounding of a sum is relative to the
            // sum of |terms|, bounded by the diagonal (|H_ij| <= sqrt(H_ii H_jj)), not to |H_ij|:
            // atol = 1e-5 max |H| (~170 ulps), rtol 0
            TU_ASSERT_CLOSE(got, want, 1e-5 * maxabs, 0.0, "H(%d, %d) against add_batch", i, j);
            cr_assert(got == H[j * in + i], "H is not symmetric at (%d, %d)", i, j);
        }
    free(ref);
    free(H);
    cJSON_Delete(idx);
}

Test(hessian, bad_sizes_fail) {
    float H[4], X[4] = {0};
    long ns = 0;
    nt_err err = {0};
    cr_assert_eq(nt_gptq_hessian_add(H, 2, &ns, X, 2, 0, &err), -1);
    cr_assert(strstr(err.msg, "bad sizes") != NULL, "%s", err.msg);
    cr_assert_eq(nt_gptq_hessian_add(H, 0, &ns, X, 2, 1, &err), -1);
    cr_assert_eq(ns, 0);
}

// ------------------------------------------------------------------------------------- against the golden

Test(gptq, matches_pytorch_transcription) {
    cJSON *idx = load_index();
    const cJSON *g = jget(idx, "gptq"), *inputs = jget(g, "inputs"), *cs;
    int ncases = 0;
    cJSON_ArrayForEach(cs, jget(g, "cases")) {
        const char *name = jstr(cs, "name");
        const cJSON *inp = jget(inputs, jstr(cs, "input"));
        const int N = jint(inp, "out"), K = jint(inp, "in"), ng = jint(cs, "n_groups");
        float *W = read_golden(jstr(inp, "w"), (size_t)N * K * 4), *H = read_golden(jstr(inp, "h"), (size_t)K * K * 4);
        const cJSON *d;
        cJSON_ArrayForEach(d, jget(cs, "dead")) { // a dead input: its row and column of H are zero
            for (int j = 0; j < K; j++) H[(size_t)d->valueint * K + j] = H[(size_t)j * K + d->valueint] = 0.0f;
        }
        nt_gptq_config c = nt_gptq_config_make(jint(cs, "bits"), jint(cs, "group_size"), jbool(cs, "sym"));
        c.quant.mse = jbool(cs, "mse");
        c.act_order = jbool(cs, "act_order");
        c.static_groups = jbool(cs, "static_groups");
        c.percdamp = (float)jnum(cs, "percdamp");
        c.blocksize = jint(cs, "blocksize");
        uint8_t *gold = read_golden(jstr(cs, "file"), (size_t)N * K + (size_t)ng * N * 8 + (size_t)K * 4);
        const uint8_t *gcodes = gold;
        float *gscale = malloc((size_t)ng * N * 4), *gzero = malloc((size_t)ng * N * 4);
        int32_t *gidx = malloc((size_t)K * 4);
        memcpy(gscale, gold + (size_t)N * K, (size_t)ng * N * 4);
        memcpy(gzero, gold + (size_t)N * K + (size_t)ng * N * 4, (size_t)ng * N * 4);
        memcpy(gidx, gold + (size_t)N * K + (size_t)ng * N * 8, (size_t)K * 4);

        nt_qlinear *q = NULL;
        float *Wq = malloc((size_t)N * K * 4);
        uint8_t *codes = malloc((size_t)N * K);
        double loss = 0.0;
        run_gptq(&q, Wq, &loss, W, N, K, H, &c);
        cr_assert_eq(q->n_groups, ng, "%s", name);
        nt_qlinear_unpack(q, codes);
        for (int k = 0; k < K; k++) cr_assert_eq(q->g_idx[k], gidx[k], "%s: g_idx[%d]", name, k);

        size_t total = (size_t)N * K, code_same = 0, w_close = 0, scale_close = 0, zero_same = 0;
        for (size_t i = 0; i < total; i++) code_same += codes[i] == gcodes[i];
        for (int n = 0; n < N; n++)
            for (int k = 0; k < K; k++) {
                size_t gi = (size_t)gidx[k] * N + n;
                float ref = gscale[gi] * ((float)gcodes[(size_t)n * K + k] - gzero[gi]);
                // the same fp32 product scale * (q - z) of (nearly) the same operands: rtol 1e-5; atol 0, since a code
                // at the zero point gives exactly 0 in both
                w_close += tu_close(Wq[(size_t)n * K + k], ref, 0.0, 1e-5);
            }
        for (size_t i = 0; i < (size_t)ng * N; i++) {
            float s = nt_f16_to_f32(q->scales[i]), ref = nt_f16_to_f32(nt_f32_to_f16(gscale[i]));
            // both rounded to fp16: equal, or one fp16 step apart where the fp32 scales straddle a rounding
            // boundary (2^-10 relative > rtol 1e-4: counted as a miss); atol 2^-24, fp16's subnormal step
            scale_close += tu_close(s, ref, 0x1p-24, 1e-4);
            zero_same += q->zeros ? q->zeros[i] == (uint8_t)gzero[i] : 1;
        }
        double ref_loss = jnum(cs, "loss");
        cr_log_info("%-44s codes %5.2f%%  W %5.2f%%  scales %5.2f%%  zeros %5.2f%%  loss %.6g vs %.6g", name,
                    100.0 * code_same / total, 100.0 * w_close / total, 100.0 * scale_close / (ng * N),
                    100.0 * zero_same / (ng * N), loss, ref_loss);
        cr_assert(code_same >= 0.995 * total, "%s: %zu of %zu codes identical", name, code_same, total);
        cr_assert(w_close >= 0.995 * total, "%s: %zu of %zu weights within 1e-5", name, w_close, total);
        cr_assert(scale_close >= 0.99 * ng * N, "%s: %zu of %d scales within 1e-4", name, scale_close, ng * N);
        cr_assert(zero_same >= 0.99 * ng * N, "%s: %zu of %d zero points identical", name, zero_same, ng * N);
        // a sum of squared quantization errors of the whole layer: the few weights that took the other code move
        // it by their share: rtol 1e-3, atol 0 (the loss is never near 0 at these bit widths)
        TU_ASSERT_CLOSE(loss, ref_loss, 0.0, 1e-3, "%s: loss against the transcription", name);
        if (c.act_order) {
            cr_assert_not_null(q->perm);
            nt_err err = {0};
            cr_assert_eq(nt_qlinear_validate(q, &err), 0, "%s: %s", name, err.msg);
        } else {
            cr_assert_null(q->perm);
        }
        nt_qlinear_free(&q);
        free(Wq);
        free(codes);
        free(gold);
        free(gscale);
        free(gzero);
        free(gidx);
        free(W);
        free(H);
        ncases++;
    }
    cr_assert_eq(ncases, 17, "13 cases whose groups divide K, 4 on K = 576 with groups of 128 (the last one of 64)");
    cJSON_Delete(idx);
}

// ------------------------------------------------------------------------------------------ vs RTN

// On the golden layers: tr(E H E^T) (the output error on their calibration data) of GPTQ below RTN's.
Test(gptq, beats_rtn_on_golden_layers) {
    cJSON *idx = load_index();
    const cJSON *inp;
    cJSON_ArrayForEach(inp, jget(jget(idx, "gptq"), "inputs")) {
        const int N = jint(inp, "out"), K = jint(inp, "in");
        float *W = read_golden(jstr(inp, "w"), (size_t)N * K * 4), *H = read_golden(jstr(inp, "h"), (size_t)K * K * 4);
        float *Wg = malloc((size_t)N * K * 4), *Wr = malloc((size_t)N * K * 4);
        const int groups[] = {-1, 32};
        for (int bits = 2; bits <= 4; bits++)
            for (int gi = 0; gi < 2; gi++)
                for (int act = 0; act < 2; act++) {
                    nt_gptq_config c = nt_gptq_config_make(bits, groups[gi], false);
                    c.act_order = act;
                    nt_qlinear *q = NULL;
                    run_gptq(&q, Wg, NULL, W, N, K, H, &c);
                    nt_qlinear_free(&q);
                    nt_err err = {0};
                    cr_assert_eq(nt_rtn_quantize(&q, Wr, W, N, K, &c.quant, &err), 0, "%s", err.msg);
                    nt_qlinear_free(&q);
                    double eg = h_error(W, Wg, N, K, H), er = h_error(W, Wr, N, K, H);
                    cr_log_info("%s %d bits g%d act %d: GPTQ %.4g RTN %.4g (%.2fx)", jstr(inp, "w"), bits,
                                groups[gi], act, eg, er, er / eg);
                    cr_assert(eg < er, "%d bits g%d act %d: GPTQ %g >= RTN %g", bits, groups[gi], act, eg, er);
                }
        free(W);
        free(H);
        free(Wg);
        free(Wr);
    }
    cJSON_Delete(idx);
}

// End to end on calibration data made here: H from nt_gptq_hessian_add over batches of X, the output error
// ||W X^T - Wq X^T||^2 computed explicitly on the same X. GPTQ must win at 2, 3 and 4 bits, except in one
// configuration where the reference itself does not: 2 bits with groups formed on the fly and no act-order. There a
// group's params are fixed from its first column's view of W, the error feedback then pushes later columns of the
// group outside that range, and with 4 levels the clamping costs more than the feedback gains (the PyTorch
// transcription of the reference loses to RTN there too: RTN/GPTQ 0.75..0.95 over 4 seeds). It is logged, not
// asserted.
Test(gptq, beats_rtn_on_calibration_x) {
    const int N = 96, K = 384, seqs = 6, tokens = 128;
    float *W = random_w(N, K), *H = malloc((size_t)K * K * 4);
    float *X = correlated_x(seqs * tokens, K);
    long ns = 0;
    nt_err err = {0};
    for (int s = 0; s < seqs; s += 2) // two sequences per call, as a calibration loop would feed it
        cr_assert_eq(nt_gptq_hessian_add(H, K, &ns, X + (size_t)s * tokens * K, 2L * tokens, 2, &err), 0, "%s",
                     err.msg);
    cr_assert_eq(ns, seqs);
    float *Wg = malloc((size_t)N * K * 4), *Wr = malloc((size_t)N * K * 4);
    const int groups[] = {-1, 128, 32};
    for (int bits = 2; bits <= 4; bits++)
        for (int gi = 0; gi < 3; gi++)
            for (int v = 0; v < 3; v++) { // asym, sym, asym + act-order
                nt_gptq_config c = nt_gptq_config_make(bits, groups[gi], v == 1);
                c.act_order = v == 2;
                nt_qlinear *q = NULL;
                run_gptq(&q, Wg, NULL, W, N, K, H, &c);
                nt_qlinear_free(&q);
                cr_assert_eq(nt_rtn_quantize(&q, Wr, W, N, K, &c.quant, &err), 0, "%s", err.msg);
                nt_qlinear_free(&q);
                double eg = x_error(W, Wg, N, K, X, seqs * tokens), er = x_error(W, Wr, N, K, X, seqs * tokens);
                bool exempt = bits == 2 && groups[gi] > 0 && !c.act_order;
                cr_log_info("calibration X, %d bits g%d %s%s: GPTQ %.4g RTN %.4g (RTN/GPTQ %.2f)%s", bits, groups[gi],
                            v == 1 ? "sym" : "asym", c.act_order ? " act-order" : "", eg, er, er / eg,
                            exempt ? " (not asserted)" : "");
                if (!exempt)
                    cr_assert(eg < er, "%d bits g%d variant %d: GPTQ %g >= RTN %g", bits, groups[gi], v, eg, er);
            }
    free(W);
    free(H);
    free(X);
    free(Wg);
    free(Wr);
}

// ------------------------------------------------------------------------------------------ properties

// Lazy batches are an exact reordering of the updates: per channel the block size changes nothing but rounding.
Test(gptq, blocksize_does_not_change_per_channel_result) {
    const int N = 40, K = 256;
    float *W = random_w(N, K), *X = correlated_x(512, K), *H = malloc((size_t)K * K * 4);
    long ns = 0;
    nt_err err = {0};
    cr_assert_eq(nt_gptq_hessian_add(H, K, &ns, X, 512, 4, &err), 0, "%s", err.msg);
    uint8_t *c0 = malloc((size_t)N * K), *c1 = malloc((size_t)N * K);
    const int sizes[] = {128, 1, 37, 256, 1000};
    double loss0 = 0.0;
    for (int si = 0; si < 5; si++) {
        nt_gptq_config c = nt_gptq_config_make(3, -1, false);
        c.blocksize = sizes[si];
        c.act_order = true;
        nt_qlinear *q = NULL;
        double loss;
        run_gptq(&q, NULL, &loss, W, N, K, H, &c);
        nt_qlinear_unpack(q, si == 0 ? c0 : c1);
        nt_qlinear_free(&q);
        if (si == 0) {
            loss0 = loss;
            continue;
        }
        size_t same = 0;
        for (size_t i = 0; i < (size_t)N * K; i++) same += c0[i] == c1[i];
        cr_assert(same >= 0.995 * N * K, "blocksize %d: %zu of %d codes as with 128", sizes[si], same, N * K);
        // the few codes that flip with the rounding move the loss by their share (as against the transcription)
        TU_ASSERT_CLOSE(loss, loss0, 0.0, 1e-3, "blocksize %d: loss against blocksize 128", sizes[si]);
    }
    free(W);
    free(X);
    free(H);
    free(c0);
    free(c1);
}

Test(gptq, dead_columns_and_act_order_metadata) {
    const int N = 24, K = 192;
    float *W = random_w(N, K), *X = correlated_x(400, K), *H = malloc((size_t)K * K * 4);
    const int dead[] = {0, 50, 191};
    for (int r = 0; r < 400; r++)
        for (int d = 0; d < 3; d++) X[(size_t)r * K + dead[d]] = 0.0f;
    long ns = 0;
    nt_err err = {0};
    cr_assert_eq(nt_gptq_hessian_add(H, K, &ns, X, 400, 1, &err), 0, "%s", err.msg);
    float *Wq = malloc((size_t)N * K * 4);
    for (int mode = 0; mode < 3; mode++) { // act-order on the fly, act-order static, no act-order
        nt_gptq_config c = nt_gptq_config_make(4, 64, mode == 1);
        c.act_order = mode < 2;
        c.static_groups = mode == 1;
        nt_qlinear *q = NULL;
        run_gptq(&q, Wq, NULL, W, N, K, H, &c);
        for (int r = 0; r < N; r++)
            for (int d = 0; d < 3; d++)
                cr_assert(Wq[(size_t)r * K + dead[d]] == 0.0f, "mode %d: dead column %d row %d is %g", mode, dead[d],
                          r, Wq[(size_t)r * K + dead[d]]);
        cr_assert_eq(nt_qlinear_validate(q, &err), 0, "%s", err.msg);
        if (c.act_order) { // descending diag(H), dead columns counting as 1
            for (int j = 1; j < K; j++) {
                float a = H[(size_t)q->perm[j - 1] * K + q->perm[j - 1]], b = H[(size_t)q->perm[j] * K + q->perm[j]];
                cr_assert((a == 0.0f ? 1.0f : a) >= (b == 0.0f ? 1.0f : b), "perm not sorted at %d", j);
            }
        }
        for (int j = 0; j < K; j++) {
            int col = q->perm ? q->perm[j] : j;
            cr_assert_eq(q->g_idx[col], mode == 0 ? j / 64 : col / 64, "mode %d: g_idx[%d]", mode, col);
        }
        nt_qlinear_free(&q);
    }
    free(W);
    free(X);
    free(H);
    free(Wq);
}

// scale_f16: the fp32 result is exactly what the packed model dequantizes to; without it, within fp16 rounding.
Test(gptq, packed_model_dequantizes_to_the_result) {
    const int N = 33, K = 160;
    float *W = random_w(N, K), *X = correlated_x(300, K), *H = malloc((size_t)K * K * 4);
    long ns = 0;
    nt_err err = {0};
    cr_assert_eq(nt_gptq_hessian_add(H, K, &ns, X, 300, 3, &err), 0, "%s", err.msg);
    float *Wq = malloc((size_t)N * K * 4), *Wd = malloc((size_t)N * K * 4);
    const int bits[] = {2, 3, 4, 8}, groups[] = {-1, 32};
    for (int bi = 0; bi < 4; bi++)
        for (int gi = 0; gi < 2; gi++)
            for (int f16 = 0; f16 < 2; f16++) {
                nt_gptq_config c = nt_gptq_config_make(bits[bi], groups[gi], bi % 2);
                c.quant.scale_f16 = f16;
                c.act_order = gi;
                nt_qlinear *q = NULL;
                run_gptq(&q, Wq, NULL, W, N, K, H, &c);
                nt_qlinear_dequantize(q, Wd);
                if (f16) {
                    cr_assert(memcmp(Wq, Wd, (size_t)N * K * 4) == 0, "%d bits g%d", bits[bi], groups[gi]);
                } else {
                    const int maxq = (1 << bits[bi]) - 1;
                    for (size_t i = 0; i < (size_t)N * K; i++) {
                        float s = nt_f16_to_f32(q->scales[(size_t)q->g_idx[i % K] * N + i / K]);
                        // only the scale's fp16 rounding differs: half an fp16 step, 2^-11 relative (or 2^-25 for
                        // subnormal scales), times |q - z| <= maxq: atol that bound, rtol 0
                        TU_ASSERT_CLOSE(Wd[i], Wq[i], maxq * (s * 0x1p-11 + 0x1p-25), 0.0, "%d bits: W[%zu]", bits[bi],
                                        i);
                    }
                }
                nt_qlinear_free(&q);
            }
    free(W);
    free(X);
    free(H);
    free(Wq);
    free(Wd);
}

// --------------------------------------------------------------------------------------------- bad input

static void expect_gptq_fail(const float *W, int N, int K, const float *H, const nt_gptq_config *c, const char *msg) {
    nt_qlinear *q = (nt_qlinear *)1;
    nt_err err = {0};
    double loss = -1.0;
    cr_assert_eq(nt_gptq_quantize(&q, NULL, &loss, W, N, K, H, c, &err), -1, "accepted; expected \"%s\"", msg);
    cr_assert_null(q);
    cr_assert(strstr(err.msg, msg) != NULL, "message \"%s\" lacks \"%s\"", err.msg, msg);
}

Test(gptq, bad_input_fails_with_a_message) {
    const int N = 4, K = 96;
    float *W = random_w(N, K), *H = calloc((size_t)K * K, 4);
    for (int i = 0; i < K; i++) H[(size_t)i * K + i] = 1.0f;
    nt_gptq_config c = nt_gptq_config_make(4, 32, false);
    c.quant.bits = 5;
    expect_gptq_fail(W, N, K, H, &c, "unsupported bit width 5");
    c = nt_gptq_config_make(4, 48, false);
    expect_gptq_fail(W, N, K, H, &c, "unsupported group size 48");
    c = nt_gptq_config_make(4, 32, false);
    c.blocksize = 0;
    expect_gptq_fail(W, N, K, H, &c, "blocksize 0");
    c = nt_gptq_config_make(4, 32, false);
    H[5 * K + 7] = NAN;
    expect_gptq_fail(W, N, K, H, &c, "Hessian entry (5, 7)");
    H[5 * K + 7] = 0.0f;
    W[3 * K + 2] = INFINITY;
    expect_gptq_fail(W, N, K, H, &c, "weight (3, 2)");
    W[3 * K + 2] = 0.0f;
    for (int i = 0; i < K; i++) H[(size_t)i * K + i] = -1.0f; // negative definite: dampening cannot save it
    expect_gptq_fail(W, N, K, H, &c, "not positive definite");
    free(W);
    free(H);
}
