// test_actquant.c: joint weight + activation quantization (model/actquant.h), SmoothQuant's smoothing
// (quant/smoothquant.h) and norm tweaking's straight-through gradient through quantized activations.
// - The linear's forward with quantized activations equals, bit for bit, a scalar integer reference written here
//   (int64 dot products of the codes, the same double dequantization), for int8 / int4 per-token dynamic and int8
//   static (with clamping), 8-bit per-channel (long runs that must be cut for fp32 exactness) and 4-bit groups
//   with a short last group, symmetric and asymmetric, and GPTQ act-order's scattered groups.
// - Smoothing folded into norms, v_proj and up_proj leaves the float model's logits unchanged (tiny-llama: GQA,
//   SwiGLU; tiny-opt: LayerNorm with bias, ReLU; SmolLM2's first 256 tokens of WikiText-2).
// - W8A8 (RTN per channel + int8 per-token) of the fixtures stays within a stated budget of float perplexity;
//   W4A4 does not (the check can fail).
// - The straight-through gradient of a block's norm parameters equals finite differences of the surrogate that
//   replays the forward's rounding noise (the function whose gradient the STE is).
// - Checkpoints keep abits / act_scheme and the static scales: the reloaded model's logits are bit-identical.
#define _POSIX_C_SOURCE 200809L
#include <criterion/criterion.h>
#include <math.h>
#include <string.h>

#include "block_grad.h"
#include "csv_read.h"
#include "table.h"
#include "datasets.h"
#include "perplexity.h"
#include "qcheckpoint.h"
#include "quant.h"
#include "quantize_model.h"
#include "smoothquant.h"
#include "testutil.h"
#include "transformer.h"

// ----------------------------------------------------------------------------------------- the integer reference

// y (n, out) for x (n, in): the integer semantics of actquant.h computed the slow way, independently.
static void ref_forward(const nt_qlinear *q, int abits, bool is_static, float sscale, const float *b, const float *x,
                        int n, float *y) {
    int K = q->in, N = q->out, qmax = (1 << (abits - 1)) - 1, G = q->n_groups;
    uint8_t *codes = malloc((size_t)N * K);
    int *xq = malloc((size_t)K * sizeof(int));
    cr_assert(codes && xq);
    nt_qlinear_unpack(q, codes);
    int zsym = 1 << (q->bits - 1);
    for (int t = 0; t < n; t++) {
        const float *xr = x + (size_t)t * K;
        float s = sscale;
        if (!is_static) {
            float amax = 0.0f;
            for (int k = 0; k < K; k++)
                if (fabsf(xr[k]) > amax) amax = fabsf(xr[k]);
            s = amax > 0.0f ? amax / (float)qmax : 1.0f;
        }
        for (int k = 0; k < K; k++) {
            float v = rintf(xr[k] / s);
            xq[k] = v > qmax ? qmax : (v < -qmax ? -qmax : (int)v);
        }
        for (int o = 0; o < N; o++) {
            double acc = 0.0;
            for (int g = 0; g < G; g++) {
                int z = q->zeros ? q->zeros[(size_t)g * N + o] : zsym;
                int64_t I = 0;
                for (int k = 0; k < K; k++)
                    if (q->g_idx[k] == g) I += (int64_t)xq[k] * ((int)codes[(size_t)o * K + k] - z);
                acc += (double)nt_f16_to_f32(q->scales[(size_t)g * N + o]) * (double)I;
            }
            float v = (float)((double)s * acc);
            if (b) v += b[o];
            y[(size_t)t * N + o] = v;
        }
    }
    free(codes);
    free(xq);
}

static void fill(uint64_t *st, float *x, size_t n, float sd) {
    for (size_t i = 0; i < n; i++) x[i] = sd * tu_rnd_normal(st);
}

// One shape and format: the forward with activation quantization against the reference, bit for bit.
static void check_exact(int out, int in, int wbits, int group, bool sym, int abits, bool is_static, bool act_order) {
    uint64_t st = 1234 + (uint64_t)out * 7 + (uint64_t)in + (uint64_t)wbits * 13 + (uint64_t)abits;
    int n = 37; // more than one run of rows would not add anything: rows are independent
    float *W = malloc((size_t)out * in * sizeof(float)), *Wq = malloc((size_t)out * in * sizeof(float));
    float *x = malloc((size_t)n * in * sizeof(float)), *y = malloc((size_t)n * out * sizeof(float));
    float *yr = malloc((size_t)n * out * sizeof(float)), *b = malloc((size_t)out * sizeof(float));
    cr_assert(W && Wq && x && y && yr && b);
    fill(&st, W, (size_t)out * in, 0.05f);
    fill(&st, x, (size_t)n * in, 1.0f);
    fill(&st, b, (size_t)out, 0.1f);
    for (int t = 0; t < n; t++) x[(size_t)t * in + (t * 7) % in] *= 30.0f; // an outlier per token
    nt_qlinear *q = NULL;
    nt_err err = {0};
    if (act_order) {
        float *H = malloc((size_t)in * in * sizeof(float)), *X = malloc((size_t)64 * in * sizeof(float));
        cr_assert(H && X);
        fill(&st, X, (size_t)64 * in, 1.0f);
        for (int i = 0; i < 64; i++) X[(size_t)i * in + (i % in)] *= 5.0f; // an uneven diagonal: a real permutation
        long ns = 0;
        cr_assert_eq(nt_gptq_hessian_add(H, in, &ns, X, 64, 1, &err), 0, "%s", err.msg);
        nt_gptq_config gc = nt_gptq_config_make(wbits, group, sym);
        gc.act_order = true;
        gc.quant.scale_f16 = true;
        cr_assert_eq(nt_gptq_quantize(&q, Wq, NULL, W, out, in, H, &gc, &err), 0, "%s", err.msg);
        bool scattered = false;
        for (int k = 1; k < in; k++) scattered |= q->g_idx[k] < q->g_idx[k - 1];
        cr_assert(scattered, "act-order left the groups contiguous: the test would not test the column order");
        free(H);
        free(X);
    } else {
        nt_qconfig qc = nt_qconfig_make(wbits, group, sym);
        qc.scale_f16 = true;
        cr_assert_eq(nt_rtn_quantize(&q, Wq, W, out, in, &qc, &err), 0, "%s", err.msg);
    }
    float sscale = 0.0f;
    if (is_static) { // below the largest |x|: some codes clamp
        float amax = 0.0f;
        for (size_t i = 0; i < (size_t)n * in; i++) amax = fmaxf(amax, fabsf(x[i]));
        sscale = 0.6f * amax / (float)nt_actq_qmax(abits);
    }
    nt_linear lin = {.w = Wq, .b = b, .in = in, .out = out, .q = q};
    cr_assert_eq(nt_actq_make(&lin.aq, q, out, in, abits, is_static ? NT_ACT_STATIC : NT_ACT_DYNAMIC, sscale, &err),
                 0, "%s", err.msg);
    nt_linear_forward(&lin, x, n, y);
    ref_forward(q, abits, is_static, sscale, b, x, n, yr);
    size_t bad = 0;
    for (size_t i = 0; i < (size_t)n * out; i++) bad += memcmp(&y[i], &yr[i], sizeof(float)) != 0;
    cr_expect_eq(bad, 0, "%dx%d W%d g%d %s A%d %s%s: %zu of %zu outputs differ from the integer reference (first: "
                         "%.9g vs %.9g)", out, in, wbits, group, sym ? "sym" : "asym", abits,
                 is_static ? "static" : "dynamic", act_order ? " act-order" : "", bad, (size_t)n * out, (double)y[0],
                 (double)yr[0]);
    // the quantized activations change the output (otherwise the check above says nothing about them)
    nt_actq_free(&lin.aq);
    nt_linear_forward(&lin, x, n, yr);
    double dmax = 0.0;
    for (size_t i = 0; i < (size_t)n * out; i++) dmax = fmax(dmax, fabs((double)y[i] - yr[i]));
    cr_expect(dmax > 0.0, "activation quantization changed nothing");
    nt_qlinear_free(&q);
    free(W);
    free(Wq);
    free(x);
    free(y);
    free(yr);
    free(b);
}

Test(actquant, integer_exact_w8a8_per_channel) {
    check_exact(96, 1536, 8, -1, true, 8, false, false);  // runs of 1040 columns: the 2^24 bound cuts K
    check_exact(64, 1536, 8, -1, false, 8, false, false); // asymmetric: |q - z| up to 255, runs of 518
}
Test(actquant, integer_exact_w4a8_groups) {
    check_exact(80, 576, 4, 128, false, 8, false, false); // SmolLM2's width: four groups of 128 and one of 64
    check_exact(48, 256, 4, 32, true, 8, false, false);
}
Test(actquant, integer_exact_w4a4_and_static) {
    check_exact(64, 576, 4, 128, false, 4, false, false);
    check_exact(64, 576, 8, -1, true, 8, true, false);
    check_exact(32, 256, 4, 64, false, 4, true, false);
}
Test(actquant, integer_exact_act_order) { check_exact(40, 384, 4, 128, false, 8, false, true); }

// A float linear (no codes): fake-quantized activations, s_t (xq . W^T) in fp32. Reference in double: fp32 sgemm's
// reordered sums of K = 300 products differ by up to ~K u of sum |x w| (u = 2^-24): atol 1e-4 of the scale of y.
Test(actquant, float_weights_fake_quant) {
    int out = 24, in = 300, n = 9;
    uint64_t st = 99;
    float *W = malloc((size_t)out * in * 4), *x = malloc((size_t)n * in * 4), *y = malloc((size_t)n * out * 4);
    cr_assert(W && x && y);
    fill(&st, W, (size_t)out * in, 0.1f);
    fill(&st, x, (size_t)n * in, 1.0f);
    nt_linear lin = {.w = W, .in = in, .out = out};
    nt_err err = {0};
    cr_assert_eq(nt_actq_make(&lin.aq, NULL, out, in, 8, NT_ACT_DYNAMIC, 0.0f, &err), 0, "%s", err.msg);
    nt_linear_forward(&lin, x, n, y);
    for (int t = 0; t < n; t++) {
        float amax = 0.0f;
        for (int k = 0; k < in; k++) amax = fmaxf(amax, fabsf(x[(size_t)t * in + k]));
        float s = amax / 127.0f;
        for (int o = 0; o < out; o++) {
            double acc = 0.0, mag = 0.0;
            for (int k = 0; k < in; k++) {
                float v = rintf(x[(size_t)t * in + k] / s);
                acc += (double)v * W[(size_t)o * in + k];
                mag += fabs((double)v * W[(size_t)o * in + k]);
            }
            TU_EXPECT_CLOSE(y[(size_t)t * out + o], s * acc, 1e-4 * s * mag, 0.0, "token %d output %d", t, o);
        }
    }
    nt_actq_free(&lin.aq);
    free(W);
    free(x);
    free(y);
}

// ------------------------------------------------------------------------------------------------- smoothing

static nt_model *load_model(const char *rel) {
    char *dir = tu_shared(rel);
    nt_model *m = NULL;
    nt_err err = {0};
    cr_assert_eq(nt_model_load(&m, dir, &err), 0, "%s: %s", dir, err.msg);
    free(dir);
    return m;
}

typedef struct {
    int n_layers, ins[4];
    float *amax[4]; // (n_layers, ins[s])
} stats_ctx;

static void stats_hook(void *vctx, int layer, nt_lin_id which, const float *x, int n, int in) {
    stats_ctx *c = vctx;
    int s = which == NT_LIN_Q ? 0 : which == NT_LIN_O ? 1 : which == NT_LIN_UP ? 2 : which == NT_LIN_DOWN ? 3 : -1;
    if (s < 0) return;
    float *a = c->amax[s] + (size_t)layer * in;
    for (int t = 0; t < n; t++)
        for (int k = 0; k < in; k++) a[k] = fmaxf(a[k], fabsf(x[(size_t)t * in + k]));
}

// Logits (n, vocab) of tokens on m, malloc'd; with stats, the per-channel maxima of every block input too.
static float *logits_of(const nt_model *m, const int32_t *tok, int n, stats_ctx *stats) {
    nt_run *r = NULL;
    nt_err err = {0};
    cr_assert_eq(nt_run_init(&r, m, n, n, &err), 0, "%s", err.msg);
    float *lg = malloc((size_t)n * m->cfg.vocab * sizeof(float));
    cr_assert(lg);
    if (stats) {
        r->capture = stats_hook;
        r->capture_ctx = stats;
    }
    cr_assert_eq(nt_forward(m, r, tok, n, lg, &err), 0, "%s", err.msg);
    nt_run_free(&r);
    return lg;
}

// Smooths every block of m from the statistics of one pass over tok and compares the logits with the unsmoothed
// ones. The tolerance: each smoothed weight and norm parameter is its float value times s or divided by it, one
// fp32 rounding (u = 2^-24 relative) per parameter; a logit sums ~dim such products per linear through the
// layers, and the rounding errors add like a random walk relative to the magnitudes involved. Measured max |diff|
// over every logit: 6e-6 (tiny-llama), 4e-6 (tiny-opt), 1.1e-4 (SmolLM2, 30 layers, 256 positions, logits up to
// ~30); allowed: atol 1e-4 + rtol 1e-4 for the fixtures (over 10x), atol 1e-3 + rtol 1e-4 for SmolLM2 (9x). A
// smoothing that is not exact (a factor applied twice, or on the wrong side) moves logits by O(1).
static void check_smooth_invariant(const char *rel, const int32_t *tok, int n, float alpha) {
    nt_model *m = load_model(rel);
    const nt_config *c = &m->cfg;
    stats_ctx sc = {.n_layers = c->n_layers, .ins = {c->dim, c->n_heads * c->head_dim, c->dim, c->ffn_dim}};
    for (int s = 0; s < 4; s++) cr_assert(sc.amax[s] = calloc((size_t)c->n_layers * sc.ins[s], sizeof(float)));
    float *before = logits_of(m, tok, n, &sc);
    // the factors must be far from 1, or the check would pass for a no-op
    double max_log_s = 0.0;
    for (int l = 0; l < c->n_layers; l++) {
        nt_smooth_stats ss = {sc.amax[0] + (size_t)l * sc.ins[0], sc.amax[1] + (size_t)l * sc.ins[1],
                              sc.amax[2] + (size_t)l * sc.ins[2], sc.amax[3] + (size_t)l * sc.ins[3]};
        float w0 = m->layers[l].attn_norm.w ? m->layers[l].attn_norm.w[0] : 1.0f;
        nt_err err = {0};
        cr_assert_eq(nt_smooth_block(m, l, &ss, alpha, &err), 0, "%s", err.msg);
        max_log_s = fmax(max_log_s, fabs(log((double)w0 / m->layers[l].attn_norm.w[0])));
    }
    cr_assert(max_log_s > 0.5, "%s: smoothing factors all near 1 (max |log s| %.3g): the check is too weak", rel,
              max_log_s);
    float *after = logits_of(m, tok, n, NULL);
    double md = 0.0;
    size_t far = tu_count_far(rel, after, before, (size_t)n * c->vocab, 1e-4, 1e-4, 5, &md);
    cr_expect_eq(far, 0, "%s: %zu logits moved by smoothing (max |diff| %.3g)", rel, far, md);
    cr_log_info("%s: smoothing alpha %.2f, max |log s| %.2f, max logit |diff| %.3g", rel, (double)alpha, max_log_s, md);
    for (int s = 0; s < 4; s++) free(sc.amax[s]);
    free(before);
    free(after);
    nt_model_free(&m);
}

static int32_t *random_tokens(int n, int vocab, uint64_t seed) {
    int32_t *t = malloc((size_t)n * sizeof(int32_t));
    cr_assert(t);
    for (int i = 0; i < n; i++) t[i] = (int32_t)(tu_rnd_u32(&seed) % (uint32_t)(vocab < 50000 ? vocab : 50000));
    return t;
}

Test(smoothquant, float_logits_unchanged_fixtures) {
    int32_t *tok = random_tokens(96, 50257, 5);
    check_smooth_invariant("models/tiny-llama", tok, 96, 0.5f);
    check_smooth_invariant("models/tiny-opt", tok, 96, 0.5f);
    check_smooth_invariant("models/tiny-llama", tok, 96, 0.85f);
    free(tok);
}

Test(smoothquant, float_logits_unchanged_smollm2) {
    const char *dir = getenv("NT_MODELS_DIR");
    char path[4096];
    snprintf(path, sizeof(path), "%s/SmolLM2-135M-Instruct.Q4_1.gguf", dir ? dir : "models");
    if (!nt_file_exists(path)) cr_skip_test("%s not found (NT_MODELS_DIR)", path);
    nt_model *m = NULL;
    nt_tokenizer *tok = NULL;
    nt_err err = {0};
    cr_assert_eq(nt_model_load(&m, path, &err), 0, "%s", err.msg);
    cr_assert_eq(nt_tokenizer_load_model(&tok, path, &err), 0, "%s", err.msg);
    char *data = tu_shared("datasets");
    nt_windows w = {0};
    cr_assert_eq(nt_ppl_windows("wikitext2", data, tok, 256, &w, &err), 0, "%s", err.msg);
    nt_model *mm = m;
    stats_ctx sc = {.n_layers = mm->cfg.n_layers,
                    .ins = {mm->cfg.dim, mm->cfg.n_heads * mm->cfg.head_dim, mm->cfg.dim, mm->cfg.ffn_dim}};
    for (int s = 0; s < 4; s++) cr_assert(sc.amax[s] = calloc((size_t)mm->cfg.n_layers * sc.ins[s], sizeof(float)));
    float *before = logits_of(mm, w.ids, 256, &sc);
    for (int l = 0; l < mm->cfg.n_layers; l++) {
        nt_smooth_stats ss = {sc.amax[0] + (size_t)l * sc.ins[0], sc.amax[1] + (size_t)l * sc.ins[1],
                              sc.amax[2] + (size_t)l * sc.ins[2], sc.amax[3] + (size_t)l * sc.ins[3]};
        cr_assert_eq(nt_smooth_block(mm, l, &ss, 0.5f, &err), 0, "%s", err.msg);
    }
    float *after = logits_of(mm, w.ids, 256, NULL);
    double md = 0.0; // see check_smooth_invariant
    size_t far = tu_count_far("SmolLM2", after, before, (size_t)256 * mm->cfg.vocab, 1e-3, 1e-4, 5, &md);
    cr_expect_eq(far, 0, "SmolLM2: %zu logits moved by smoothing (max |diff| %.3g)", far, md);
    cr_log_info("SmolLM2: max logit |diff| after smoothing %.3g", md);
    for (int s = 0; s < 4; s++) free(sc.amax[s]);
    free(before);
    free(after);
    free(data);
    nt_windows_free(&w);
    nt_tokenizer_free(&tok);
    nt_model_free(&mm);
}


// ------------------------------------------------------------------------------------- W8A8 within budget

static double ppl_of(const nt_model *m, const nt_windows *w) {
    nt_ppl_result res;
    nt_err err = {0};
    cr_assert_eq(nt_perplexity(m, w, 4, "ptb", &res, &err), 0, "%s", err.msg);
    return res.ppl;
}

// PTB perplexity (4 windows of 256) of tiny-opt and tiny-llama: W8A8 (RTN per channel, symmetric; int8 per token)
// within 0.5% of float. Measured: +0.005% (tiny-opt) and -0.006% (tiny-llama): int8 keeps ~1/254 of each row's
// range and the errors of a dot product largely cancel; the budget is 100x that. The contrast that shows the
// check can fail: W4A4 (g128 weights, int4 per token) moves perplexity more than 10x as far as W8A8 does
// (measured 100x and 1000x: +0.5%, +6%; these small fixtures are robust, their perplexities ~300).
Test(actquant, w8a8_fixtures_within_budget) {
    const char *models[2] = {"models/tiny-opt", "models/tiny-llama"};
    char *data = tu_shared("datasets");
    for (int i = 0; i < 2; i++) {
        char *dir = tu_shared(models[i]);
        nt_model *m = NULL;
        nt_tokenizer *tok = NULL;
        nt_err err = {0};
        cr_assert_eq(nt_model_load(&m, dir, &err), 0, "%s", err.msg);
        cr_assert_eq(nt_tokenizer_load_dir(&tok, dir, &err), 0, "%s", err.msg);
        nt_windows w = {0};
        cr_assert_eq(nt_ppl_windows("ptb", data, tok, 256, &w, &err), 0, "%s", err.msg);
        double fp = ppl_of(m, &w);
        nt_model_free(&m);
        double got[2];
        for (int k = 0; k < 2; k++) {
            cr_assert_eq(nt_model_load(&m, dir, &err), 0, "%s", err.msg);
            nt_quant_opts o = nt_quant_opts_make("rtn", k == 0 ? 8 : 4, k == 0 ? -1 : 128);
            o.sym = k == 0;
            o.abits = k == 0 ? 8 : 4;
            cr_assert_eq(nt_quantize_model(m, tok, data, &o, NULL, &err), 0, "%s", err.msg);
            cr_assert_eq(m->quant.abits, o.abits);
            got[k] = ppl_of(m, &w);
            nt_model_free(&m);
        }
        cr_log_info("%s ptb: fp %.3f, W8A8 %.3f, W4A4 %.3f", models[i], fp, got[0], got[1]);
        TU_EXPECT_WITHIN(fabs(got[0] - fp), fp, 0.0, 0.005, "%s W8A8 vs float PTB perplexity", models[i]);
        cr_expect(fabs(got[1] - fp) > 10.0 * fabs(got[0] - fp),
                  "%s: W4A4 (%.3f) not 10x further from float (%.3f) than W8A8 (%.3f): the check would not tell",
                  models[i], got[1], fp, got[0]);
        nt_windows_free(&w);
        nt_tokenizer_free(&tok);
        free(dir);
    }
    free(data);
}

// ------------------------------------------------------------------------------- the straight-through gradient

// L(p) = sum r * block(x) over the norm parameters p, with the block's activations quantized (int8 per token,
// W8 per channel). The backward's gradient (STE: the quantize-dequantize of each linear input as the identity)
// against central differences of the surrogate that replays the rounding noise e = Q(x) - x recorded at p: it
// equals L at p (up to the fp32 product's rounding) and is smooth, its gradient is the STE's. Step h = 1e-2:
// the surrogate's fp32 rounding (~1e-7 of sum |r y| ~ 1e3) divided by 2h gives ~5e-3 noise, truncation O(h^2)
// ~1e-4 of the curvature scale; allowed atol 2e-2 + rtol 2e-2 against gradients of O(1..100) (measured max
// |diff| below 5e-3). The same differences of the rounding forward itself are a staircase: they need not agree.
Test(actquant, ste_gradient_matches_replayed_surrogate) {
    nt_model *m = load_model("models/tiny-llama");
    const nt_config *c = &m->cfg;
    nt_quant_opts o = nt_quant_opts_make("rtn", 8, -1);
    o.sym = true;
    o.abits = 8;
    nt_err err = {0};
    cr_assert_eq(nt_quantize_model(m, NULL, NULL, &o, NULL, &err), 0, "%s", err.msg);
    int T = 24, D = c->dim, l = 1;
    uint64_t st = 77;
    float *x = malloc((size_t)T * D * 4), *y = malloc((size_t)T * D * 4), *r = malloc((size_t)T * D * 4);
    float *gw = calloc((size_t)D, 4);
    cr_assert(x && y && r && gw);
    fill(&st, x, (size_t)T * D, 1.0f);
    fill(&st, r, (size_t)T * D, 1.0f);
    nt_block_grad *g = NULL;
    cr_assert_eq(nt_block_grad_init(&g, m, T, &err), 0, "%s", err.msg);
    nt_layer *ly = &m->layers[l];
    for (int j = 0; j < NT_LIN_COUNT; j++) {
        nt_linear *lin = nt_layer_linear(ly, (nt_lin_id)j);
        if (lin->aq) cr_assert_eq(nt_actq_set_mode(lin->aq, NT_ACTQ_RECORD, T, &err), 0, "%s", err.msg);
    }
    cr_assert_eq(nt_block_train_forward(m, g, l, x, T, y, &err), 0, "%s", err.msg);
    nt_norm_grads grads = {.attn_w = gw};
    cr_assert_eq(nt_block_backward(m, g, r, &grads, NULL, &err), 0, "%s", err.msg);
    for (int j = 0; j < NT_LIN_COUNT; j++) {
        nt_linear *lin = nt_layer_linear(ly, (nt_lin_id)j);
        if (lin->aq) lin->aq->mode = NT_ACTQ_REPLAY; // the tape recorded above
    }
    double gmax = 0.0;
    for (int i = 0; i < D; i++) gmax = fmax(gmax, fabs(gw[i]));
    cr_assert(gmax > 0.1, "the gradient is too small to test (max %.3g)", gmax);
    int checked = 0;
    for (int i = 0; i < D; i += 17, checked++) {
        float p0 = ly->attn_norm.w[i], h = 1e-2f;
        double Lpm[2];
        for (int sgn = 0; sgn < 2; sgn++) {
            ly->attn_norm.w[i] = p0 + (sgn ? -h : h);
            cr_assert_eq(nt_block_train_forward(m, g, l, x, T, y, &err), 0, "%s", err.msg);
            double L = 0.0;
            for (size_t k = 0; k < (size_t)T * D; k++) L += (double)r[k] * y[k];
            Lpm[sgn] = L;
        }
        ly->attn_norm.w[i] = p0;
        double fd = (Lpm[0] - Lpm[1]) / (2.0 * h);
        TU_EXPECT_CLOSE(gw[i], fd, 2e-2, 2e-2, "attention norm weight %d", i);
    }
    cr_assert(checked >= 10);
    nt_block_grad_free(&g);
    free(x);
    free(y);
    free(r);
    free(gw);
    nt_model_free(&m);
}

// ----------------------------------------------------------------------------------------------- checkpoints

Test(actquant, checkpoint_keeps_static_scales) {
    char *dir = tu_shared("models/tiny-llama"), *data = tu_shared("datasets");
    nt_model *m = NULL;
    nt_tokenizer *tok = NULL;
    nt_err err = {0};
    cr_assert_eq(nt_model_load(&m, dir, &err), 0, "%s", err.msg);
    cr_assert_eq(nt_tokenizer_load_dir(&tok, dir, &err), 0, "%s", err.msg);
    nt_quant_opts o = nt_quant_opts_make("smoothquant", 8, -1);
    o.sym = true;
    o.abits = 8;
    o.act_static = true;
    o.nsamples = 4;
    o.calib_seqlen = 64;
    cr_assert_eq(nt_quantize_model(m, tok, data, &o, NULL, &err), 0, "%s", err.msg);
    cr_assert(m->layers[0].q.aq && m->layers[0].q.aq->scheme == NT_ACT_STATIC && m->layers[0].q.aq->scale > 0.0f);
    char *tmp = tu_tmpdir(), *qdir = nt_path_join(tmp, "q");
    cr_assert_eq(nt_qcheckpoint_save(m, qdir, &err), 0, "%s", err.msg);
    nt_model *m2 = NULL;
    cr_assert_eq(nt_model_load(&m2, qdir, &err), 0, "%s", err.msg);
    cr_assert_eq(m2->quant.abits, 8);
    cr_assert(m2->quant.act_static);
    cr_assert_str_eq(m2->quant.method, "smoothquant");
    for (int l = 0; l < m->cfg.n_layers; l++)
        for (int j = 0; j < NT_LIN_COUNT; j++) {
            nt_linear *a = nt_layer_linear(&m->layers[l], (nt_lin_id)j), *b = nt_layer_linear(&m2->layers[l], (nt_lin_id)j);
            if (!a->w) continue;
            cr_assert(b->aq, "layer %d %s: no activation quantization after loading", l, nt_lin_name((nt_lin_id)j));
            cr_expect_eq(a->aq->scale, b->aq->scale, "layer %d %s: static scale", l, nt_lin_name((nt_lin_id)j));
        }
    int32_t *t = random_tokens(40, 50257, 3);
    float *la = logits_of(m, t, 40, NULL), *lb = logits_of(m2, t, 40, NULL);
    cr_expect_eq(memcmp(la, lb, (size_t)40 * m->cfg.vocab * sizeof(float)), 0,
                 "the reloaded W8A8 checkpoint's logits differ from the model's");
    free(t);
    free(la);
    free(lb);
    nt_model_free(&m2);
    nt_model_free(&m);
    nt_tokenizer_free(&tok);
    tu_rmtree(tmp);
    free(tmp);
    free(qdir);
    free(dir);
    free(data);
}

// ------------------------------------------------------------------------------------- rows, cells and tables

// A results file from before the abits column: it reads as abits 16, appending rewrites it under the new header
// with every old field kept, and a W4A8 row is a cell apart from W4A16; the table says W/A.
Test(actquant, csv_abits_column_and_table) {
    char *tmp = tu_tmpdir(), *path = nt_path_join(tmp, "r.csv");
    const char *old = NT_RESULTS_HEADER_V1 "\n"
                      "m,rtn,4,128,ptb,ppl,30.5,0.5,100,256,1.0,c4,\"a,b\",cpu,abc123,2024-01-01T00:00:00Z\n"
                      "m,fp,16,0,ptb,ppl,20.0,0.4,100,256,1.0,,,cpu,abc123,2024-01-01T00:00:00Z\n";
    cr_assert_eq(tu_write_file(path, old, strlen(old)), 0);
    nt_results_set rs;
    nt_err err = {0};
    const char *paths[1] = {path};
    cr_assert_eq(nt_results_read(paths, 1, &rs, &err), 0, "%s", err.msg);
    cr_assert_eq(rs.recs[0].r.abits, 16);
    cr_assert_eq(rs.recs[0].cell.abits, 16);
    nt_results_set_free(&rs);
    nt_result_row add[2] = {
        {.model = "m", .method = "rtn", .wbits = 4, .abits = 8, .group_size = 128, .task = "ptb", .metric = "ppl",
         .value = 33.0, .stderr_ = 0.5, .n = 100, .seqlen = 256, .seconds = 1.0, .calib = "c4", .options = "a,b"},
        {.model = "m", .method = "rtn", .wbits = 4, .abits = 4, .group_size = 128, .task = "ptb", .metric = "ppl",
         .value = 90.0, .stderr_ = 0.5, .n = 100, .seqlen = 256, .seconds = 1.0, .calib = "c4", .options = "a,b"}};
    cr_assert_eq(nt_results_append(path, add, 2, &err), 0, "%s", err.msg);
    size_t len = 0;
    char *text = nt_read_file(path, &len, &err);
    cr_assert(text);
    cr_expect(strncmp(text, NT_RESULTS_HEADER "\n", strlen(NT_RESULTS_HEADER) + 1) == 0, "header not upgraded");
    cr_expect(strstr(text, "m,rtn,4,16,128,ptb,ppl,30.5,0.5,100,256,1.0,c4,\"a,b\",cpu,abc123,2024-01-01T00:00:00Z\n"),
              "the old row was not kept field for field with abits 16:\n%s", text);
    free(text);
    cr_assert_eq(nt_results_read(paths, 1, &rs, &err), 0, "%s", err.msg);
    cr_assert_eq(rs.n, 4);
    cr_expect_eq(rs.recs[2].r.abits, 8);
    cr_expect(!nt_result_same_cell(&rs.recs[0], &rs.recs[2]), "W4A16 and W4A8 rows are the same cell");
    char d[256];
    nt_result_rec_describe(&rs.recs[2], false, d, sizeof(d));
    cr_expect(strstr(d, "w4a8") != NULL, "cell description '%s' does not say w4a8", d);
    nt_results_set_free(&rs);
    // the table: W/A rows high to low (W4A16, W4A8, W4A4 after the float row)
    char *md = NULL;
    size_t md_len = 0;
    FILE *f = open_memstream(&md, &md_len);
    nt_table_opts to = {.md = f, .notes = f};
    cr_assert_eq(nt_table_write(paths, 1, &to, &err), 0, "%s", err.msg);
    fclose(f);
    char *a16 = strstr(md, "W4A16"), *a8 = strstr(md, "W4A8"), *a4 = strstr(md, "W4A4");
    cr_expect(strstr(md, "W/A") && a16 && a8 && a4 && a16 < a8 && a8 < a4, "table layout:\n%s", md);
    free(md);
    tu_rmtree(tmp);
    free(tmp);
    free(path);
}
