// test_gpu_forward.c: the forward pass on the device (gpu.h's nt_gpu_model: kernels/gpu_forward.c, forward.cu,
// the quantized kernels of qgemm.cu) against the CPU reference forward (transformer.c), for every architecture,
// float and quantized, and perplexity on the shared models through nt_perplexity_gpu, the CLI's entry point.
//
// Built twice (CMakeLists.txt): test_gpu_forward runs on a CUDA device and skips without one; test_gpu_forward_emu
// runs the same kernels on the CPU emulator (kernels/cuda_emu.h), so CI checks them without a GPU. On the
// emulator cuBLASLt's products are host loops (cublaslt_emu.cc); test_kernels checks cuBLASLt on a device.
//
// Budgets (the device pass keeps activations in fp16 between operations, relative rounding 2^-11, while the
// reference is fp32 throughout): per position, the log-probabilities of the whole vocabulary differ by at most
// 0.05 nats (LOGP_MAX) and on average by at most 5e-3 (LOGP_MEAN); perplexities agree within 0.1% (PPL_REL).
// Quantized models compare the same packed weights: the reference evaluates their fp32 dequantization, the
// device the kernels (the tensor-core kernel rounds dequantized weights to fp16, which the budgets cover).
// Models with quantized activations (W8A8, W4A8) have budgets of their own, of the size activation quantization
// itself moves the logits (w8a8_models_match_cpu): an fp16 input moves a code across a rounding boundary now and
// then, and the blocks after it amplify that.
#include <criterion/criterion.h>
#include <math.h>
#include <string.h>

#include "datasets.h"
#include "gpu.h"
#include "perplexity.h"
#include "quantize_model.h"
#include "testutil.h"
#include "tokenizer.h"

// As (atol, rtol) pairs: every log-prob within atol LOGP_MAX (rtol 0: fp16 rounds relative to each activation,
// and a log-prob's error comes from the logits of the whole row, not from its own size); their mean |difference|
// within atol LOGP_MEAN; perplexity within rtol PPL_REL (atol 0): exp of a mean NLL whose per-token errors of
// either sign mostly cancel.
#define LOGP_MAX 0.05
#define LOGP_MEAN 5e-3
#define PPL_REL 1e-3
// Models with quantized activations (w8a8_models_match_cpu): the device's logits within atol A8_CHAOS x the largest
// change activation quantization makes to the CPU's logits, + rtol LOGITS_RTOL; their mean |difference| within
// A8_CHAOS x the mean change; and the device's own activation quantization moves its logits by at least A8_ON x the
// CPU's mean change.
#define A8_LOGP_MAX 0.25 // the per-token log-prob and perplexity budgets of W8A8 (check_ppl says why)
#define A8_PPL_REL 1e-2
#define A8_CHAOS 3.0
#define A8_ON 0.5
#define LOGITS_RTOL 1e-3

// Compares the device's and the CPU's log-probabilities for n tokens; returns the largest difference. Also logs the
// logits' largest difference (the fp16-only gap w8a8_models_match_cpu compares its own with).
static double compare(const char *what, nt_gpu_ctx *ctx, nt_gpu_model *g, const nt_model *m, const int32_t *ids,
                      int n) {
    nt_err err = {0};
    const int V = m->cfg.vocab;
    float *ref = malloc((size_t)n * V * sizeof *ref), *dev = malloc((size_t)n * V * sizeof *dev);
    double *a = malloc((size_t)V * sizeof *a), *b = malloc((size_t)V * sizeof *b);
    cr_assert(ref && dev && a && b);
    nt_run *r = NULL;
    cr_assert(nt_run_init(&r, m, n, n, &err) == 0, "%s", err.msg);
    cr_assert(nt_forward(m, r, ids, n, ref, &err) == 0, "%s", err.msg);
    cr_assert(nt_gpu_forward(ctx, g, ids, n, &err) == 0, "%s: %s", what, err.msg);
    cr_assert(nt_gpu_logits(ctx, g, 0, n, dev, &err) == 0, "%s: %s", what, err.msg);
    double worst = 0.0, sum = 0.0;
    for (int t = 0; t < n; t++) {
        tu_log_softmax_row(ref + (size_t)t * V, V, a);
        tu_log_softmax_row(dev + (size_t)t * V, V, b);
        for (int j = 0; j < V; j++) {
            double d = fabs(a[j] - b[j]);
            if (!isfinite(d)) d = INFINITY;
            worst = fmax(worst, d);
            sum += d;
        }
    }
    double mean = sum / ((double)n * V);
    double dmax = 0.0;
    for (size_t i = 0; i < (size_t)n * V; i++) dmax = fmax(dmax, fabs((double)dev[i] - ref[i]));
    cr_log_info("%s, %d positions: max |dlogp| %.3g, mean %.3g; logits max |d| %.3g", what, n, worst, mean, dmax);
    TU_EXPECT_WITHIN(worst, 0.0, LOGP_MAX, 0.0, "%s (%d positions): max |log p difference|", what, n);
    TU_EXPECT_WITHIN(mean, 0.0, LOGP_MEAN, 0.0, "%s (%d positions): mean |log p difference|", what, n);
    nt_run_free(&r);
    free(ref);
    free(dev);
    free(a);
    free(b);
    return worst;
}

static int32_t *random_ids(int n, int vocab, uint64_t seed) {
    int32_t *ids = malloc((size_t)n * sizeof *ids);
    cr_assert(ids);
    for (int i = 0; i < n; i++) ids[i] = (int32_t)(tu_rnd_u32(&seed) % (uint32_t)vocab);
    return ids;
}

static nt_model *load(const char *dir) {
    nt_model *m = NULL;
    nt_err err = {0};
    cr_assert(nt_model_load(&m, dir, &err) == 0, "%s", err.msg);
    return m;
}

// Every architecture of transformer.c in float: OPT pre- and post-LN, LLaMA (GQA, RoPE), tied LLaMA with biases,
// Qwen2, BLOOM (ALiBi, embedding norm, fused qkv), and the two shared models. One short sequence (the GEMV path
// of nothing: float linears go through cuBLASLt) and one longer one.
Test(gpu_forward, float_models_match_cpu, .timeout = 1200) {
    nt_gpu_ctx *ctx = tu_need_gpu();
    nt_err err = {0};
    const char *fixtures[] = {"tests/fixtures/tiny-random-opt",   "tests/fixtures/tiny-random-opt-postln",
                              "tests/fixtures/tiny-random-llama", "tests/fixtures/tiny-random-llama-tied-bias",
                              "tests/fixtures/tiny-random-qwen2", "tests/fixtures/tiny-random-bloom",
                              "models/tiny-opt",                  "models/tiny-llama"};
    for (size_t i = 0; i < sizeof fixtures / sizeof fixtures[0]; i++) {
        char *dir = strncmp(fixtures[i], "tests/", 6) == 0 ? tu_source(fixtures[i]) : tu_shared(fixtures[i]);
        nt_model *m = load(dir);
        int n = m->cfg.max_pos < 48 ? m->cfg.max_pos : 48;
        nt_gpu_model *g = NULL;
        cr_assert(nt_gpu_model_upload(ctx, &g, m, n, &err) == 0, "%s: %s", dir, err.msg);
        int32_t *ids = random_ids(n, m->cfg.vocab, 7 + i);
        compare(fixtures[i], ctx, g, m, ids, 5);
        compare(fixtures[i], ctx, g, m, ids, n);
        free(ids);
        nt_gpu_model_free(&g);
        nt_model_free(&m);
        free(dir);
    }
    nt_gpu_ctx_free(&ctx);
}

// Quantized in memory, then the device runs the packed weights through the GEMV kernel (5 positions) and the
// tensor-core kernel (40): RTN 4-bit g32, RTN 2-bit per channel symmetric, and GPTQ 3-bit act-order g64 (the
// kernels' regrouped-K path), on the shared tiny-opt (GPTQ calibrates on 8 C4 windows of 128 tokens).
Test(gpu_forward, quantized_models_match_cpu, .timeout = 1200) {
    nt_gpu_ctx *ctx = tu_need_gpu();
    nt_err err = {0};
    char *dir = tu_shared("models/tiny-opt"), *data = tu_shared("datasets");
    struct {
        const char *method;
        int bits, group;
        bool sym, act_order;
    } cases[] = {{"rtn", 4, 32, false, false}, {"rtn", 2, -1, true, false}, {"gptq", 3, 64, false, true}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        nt_model *m = load(dir);
        nt_tokenizer *tok = NULL;
        cr_assert(nt_tokenizer_load_dir(&tok, dir, &err) == 0, "%s", err.msg);
        nt_quant_opts o = nt_quant_opts_make(cases[i].method, cases[i].bits, cases[i].group);
        o.sym = cases[i].sym;
        o.act_order = cases[i].act_order;
        o.nsamples = 8;
        o.calib_seqlen = 128;
        cr_assert(nt_quantize_model(m, tok, data, &o, NULL, &err) == 0, "%s", err.msg);
        cr_assert(m->layers[0].q.q != NULL, "the model keeps its packed weights");
        nt_gpu_model *g = NULL;
        cr_assert(nt_gpu_model_upload(ctx, &g, m, 40, &err) == 0, "%s", err.msg);
        int32_t *ids = random_ids(40, m->cfg.vocab, 100 + i);
        char what[96];
        snprintf(what, sizeof what, "tiny-opt %s W%d g%d%s%s", cases[i].method, cases[i].bits, cases[i].group,
                 cases[i].sym ? " sym" : "", cases[i].act_order ? " act-order" : "");
        compare(what, ctx, g, m, ids, 5);
        compare(what, ctx, g, m, ids, 40);
        free(ids);
        nt_gpu_model_free(&g);
        nt_tokenizer_free(&tok);
        nt_model_free(&m);
    }
    free(dir);
    free(data);
    nt_gpu_ctx_free(&ctx);
}

// The logits (n, vocab) of tokens ids on the CPU (fp32 throughout) and on the device (m uploaded afresh); malloc'd.
static float *cpu_logits(const nt_model *m, const int32_t *ids, int n) {
    nt_err err = {0};
    float *y = malloc((size_t)n * m->cfg.vocab * sizeof *y);
    nt_run *r = NULL;
    cr_assert(y && nt_run_init(&r, m, n, n, &err) == 0, "%s", err.msg);
    cr_assert(nt_forward(m, r, ids, n, y, &err) == 0, "%s", err.msg);
    nt_run_free(&r);
    return y;
}

static float *dev_logits(nt_gpu_ctx *ctx, const nt_model *m, const int32_t *ids, int n) {
    nt_err err = {0};
    float *y = malloc((size_t)n * m->cfg.vocab * sizeof *y);
    nt_gpu_model *g = NULL;
    cr_assert(y && nt_gpu_model_upload(ctx, &g, m, n, &err) == 0, "%s", err.msg);
    cr_assert(nt_gpu_forward(ctx, g, ids, n, &err) == 0 && nt_gpu_logits(ctx, g, 0, n, y, &err) == 0, "%s", err.msg);
    nt_gpu_model_free(&g);
    return y;
}

typedef struct {
    double max, mean; // of |a - b|
} logit_gap;

static logit_gap gap_of(const float *a, const float *b, size_t count) {
    logit_gap g = {0.0, 0.0};
    for (size_t i = 0; i < count; i++) {
        double d = fabs((double)a[i] - b[i]);
        if (!isfinite(d)) d = INFINITY;
        g.max = fmax(g.max, d);
        g.mean += d / (double)count;
    }
    return g;
}

// Quantized activations (model/actquant.h) on the device: the block linears through nt_gpu_actq_linear (int8 codes
// of the fp16 input, IMMA, the CPU's integer-exact product) against the CPU forward, whose activations are fp32:
// W8A8 on tiny-opt (RTN 8-bit asymmetric per channel: q - zero up to +-255) and tiny-llama (groups of 128; its
// down_proj's 688 inputs end in a group of 48), and W4A8 with static scales from calibration on tiny-llama; 40
// positions. The linear itself is exact for the same x (test_kernels' actq_linear_matches_cpu); what differs is x,
// fp16 between operations here. Rounding x to fp16 moves it by up to 2^-11 |x|, which now and then moves a code
// across a rounding boundary, by one whole step (max|x| / 127); the next blocks see a different input and flip other
// codes, and by the logits the device pass is about as far from the CPU's as activation quantization itself moves
// the CPU's (its logits with and without it: "the A8 change"). Measured on the emulator over four token seeds: the
// device's max |difference| 0.45-1.45x the A8 change's max, its mean 0.5-1.4x the A8 change's mean; the CPU forward
// with only its linears' inputs rounded to fp16 moves as far from itself (0.085, 0.157, 0.325 max for the three
// cases); while the same models without activation quantization (W8A16, W4A16) differ by the fp16-only gap, max |d|
// below 0.006 (logged here and by quantized_models_match_cpu: 0.003-0.0044). So the budget is of the A8 change's
// size, the atol + rtol form with atol = A8_CHAOS x its max, rtol LOGITS_RTOL (the fp16 rounding of the hidden state
// lm_head multiplies, 2^-11, twice over), the mean |difference| within A8_CHAOS x its mean; a device error in a
// layout, a scale or a bias moves logits by O(1) and more. What that budget cannot see, a device that skipped the
// activation quantization, the last check does: the device's logits with and without it differ by at least A8_ON x
// the CPU's A8 change (measured 0.83-0.84x).
Test(gpu_forward, w8a8_models_match_cpu, .timeout = 1200) {
    nt_gpu_ctx *ctx = tu_need_gpu();
    nt_err err = {0};
    char *data = tu_shared("datasets");
    struct {
        const char *model;
        int wbits, group;
        bool act_static;
    } cases[] = {{"models/tiny-opt", 8, -1, false}, {"models/tiny-llama", 8, 128, false},
                 {"models/tiny-llama", 4, 128, true}};
    const int T = 40;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *dir = tu_shared(cases[i].model);
        nt_model *m = load(dir);
        nt_tokenizer *tok = NULL;
        cr_assert(nt_tokenizer_load_dir(&tok, dir, &err) == 0, "%s", err.msg);
        nt_quant_opts o = nt_quant_opts_make("rtn", cases[i].wbits, cases[i].group);
        o.abits = 8;
        o.act_static = cases[i].act_static;
        o.nsamples = 4;
        o.calib_seqlen = 64;
        cr_assert(nt_quantize_model(m, tok, data, &o, NULL, &err) == 0, "%s", err.msg);
        cr_assert(m->layers[0].q.aq && m->layers[0].q.aq->wint, "the block linears quantize their inputs");
        char what[96];
        snprintf(what, sizeof what, "%s W%dA8 g%d %s", cases[i].model + 7, cases[i].wbits, cases[i].group,
                 cases[i].act_static ? "static" : "dynamic");
        int32_t *ids = random_ids(T, m->cfg.vocab, 200 + i);
        float *cpu8 = cpu_logits(m, ids, T), *dev8 = dev_logits(ctx, m, ids, T);
        cr_assert(nt_model_set_act_quant(m, 16, false, NULL, &err) == 0, "%s", err.msg); // the same weights, fp inputs
        float *cpu16 = cpu_logits(m, ids, T), *dev16 = dev_logits(ctx, m, ids, T);
        const size_t count = (size_t)T * m->cfg.vocab;
        logit_gap a8 = gap_of(cpu8, cpu16, count), dev = gap_of(dev8, cpu8, count), fp16 = gap_of(dev16, cpu16, count),
                  on = gap_of(dev8, dev16, count);
        cr_log_info("%s, %d positions: device vs CPU max |d| %.3g mean %.3g; A8 change max %.3g mean %.3g; fp16-only "
                    "gap (A16) max %.3g mean %.3g; device A8 change mean %.3g",
                    what, T, dev.max, dev.mean, a8.max, a8.mean, fp16.max, fp16.mean, on.mean);
        size_t far = tu_count_far(what, dev8, cpu8, count, A8_CHAOS * a8.max, LOGITS_RTOL, 5, NULL);
        cr_expect_eq(far, 0, "%s: %zu of %zu logits beyond atol %.3g (%.0f x the A8 change) + rtol %.0e |ref|", what,
                     far, count, A8_CHAOS * a8.max, A8_CHAOS, LOGITS_RTOL);
        TU_EXPECT_WITHIN(dev.mean, a8.mean, 0.0, A8_CHAOS, "%s: mean |logit difference| against the A8 change's", what);
        cr_expect(on.mean >= A8_ON * a8.mean, "%s: the device's activation quantization moved its logits by %.3g on "
                                              "average, the CPU's by %.3g", what, on.mean, a8.mean);
        free(cpu8), free(dev8), free(cpu16), free(dev16), free(ids);
        nt_tokenizer_free(&tok);
        nt_model_free(&m);
        free(dir);
    }
    free(data);
    nt_gpu_ctx_free(&ctx);
}

// The upload takes a model with quantized activations now (it refused any abits < 16 before); a float linear with
// quantized activations (no integer weights: the CPU fake-quantizes its input) is still refused, in one line that
// names the layer and the linear.
Test(gpu_forward, activation_quantized_upload) {
    nt_gpu_ctx *ctx = tu_need_gpu();
    nt_err err = {0};
    char *dir = tu_source("tests/fixtures/tiny-random-llama");
    nt_model *m = load(dir);
    nt_quant_opts o = nt_quant_opts_make("rtn", 8, -1);
    o.abits = 8;
    cr_assert(nt_quantize_model(m, NULL, NULL, &o, NULL, &err) == 0, "%s", err.msg);
    cr_assert_eq(m->quant.abits, 8);
    nt_gpu_model *g = NULL;
    cr_assert(nt_gpu_model_upload(ctx, &g, m, 8, &err) == 0, "W8A8: %s", err.msg);
    int32_t ids[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    cr_assert(nt_gpu_forward(ctx, g, ids, 8, &err) == 0, "%s", err.msg);
    nt_gpu_model_free(&g);
    nt_model_free(&m);
    m = load(dir);
    cr_assert(nt_model_set_act_quant(m, 8, false, NULL, &err) == 0, "%s", err.msg); // float weights, int8 inputs
    cr_assert(nt_gpu_model_upload(ctx, &g, m, 8, &err) != 0, "a float linear with quantized activations uploaded");
    cr_assert(g == NULL);
    cr_expect(strstr(err.msg, "layer 0 q: ") && strstr(err.msg, "float linear") && strstr(err.msg, "CPU"), "got: %s",
              err.msg);
    cr_expect(strchr(err.msg, '\n') == NULL, "one line: %s", err.msg);
    nt_model_free(&m);
    free(dir);
    nt_gpu_ctx_free(&ctx);
}

// Perplexity through the entry point `eval --device cuda` calls, nt_perplexity_gpu, against the CPU's nt_perplexity
// on the same WikiText-2 windows, float, RTN 4-bit and RTN W8A8 (abits 8: 8-bit weights per channel, int8
// inputs per token): on a device 16 windows of the model's whole context; on the
// emulator (each CUDA thread a fiber there) 2 windows of 64 tokens, so that it stays short. Tolerances:
// - the windows and token counts: identical;
// - perplexity: rtol PPL_REL, atol 0 (exp of a mean NLL whose per-token errors of either sign mostly cancel);
// - the NLL's standard error sd / sqrt(N): every per-token NLL is one of compare()'s log-probs, within LOGP_MAX, and
//   an sd is a norm of the centred values, so |sd_dev - sd_cpu| <= sd(differences) <= LOGP_MAX sqrt(N / (N - 1)):
//   atol LOGP_MAX / sqrt(N - 1), rtol 0.
// W8A8 takes A8_LOGP_MAX and A8_PPL_REL instead: the per-token log-probs differ by about as much as activation
// quantization moves them (w8a8_models_match_cpu says why), measured up to 0.11 nats (mean 0.016) at 40 positions
// of the W8A8 fixtures, so A8_LOGP_MAX = 0.25; their mean over N tokens, errors of either sign, ~0.03 / sqrt(N):
// 0.3% on the emulator's 126 tokens (measured 0.14% and 0.003%), so A8_PPL_REL = 1% (on a device, with 16 windows,
// 0.05% is expected).
static void check_ppl(const char *model, const char *method, int abits) {
    nt_gpu_ctx *ctx = tu_need_gpu();
    nt_err err = {0};
    char *dir = tu_shared(model), *data = tu_shared("datasets");
    nt_model *m = load(dir);
    nt_tokenizer *tok = NULL;
    cr_assert(nt_tokenizer_load_dir(&tok, dir, &err) == 0, "%s", err.msg);
    if (strcmp(method, "fp") != 0) {
        nt_quant_opts o = nt_quant_opts_make(method, abits < 16 ? 8 : 4, -1);
        o.abits = abits;
        cr_assert(nt_quantize_model(m, tok, data, &o, NULL, &err) == 0, "%s", err.msg);
    }
#ifdef NT_CUDA_EMU
    const size_t nw = 2;
    const int S = 64;
#else
    const size_t nw = 16;
    const int S = m->cfg.max_pos;
#endif
    nt_windows w;
    memset(&w, 0, sizeof w);
    cr_assert(nt_ppl_windows("wikitext2", data, tok, (size_t)S, &w, &err) == 0, "%s", err.msg);
    cr_assert(w.n_windows >= nw, "%zu windows", w.n_windows);
    nt_ppl_result cpu, dev;
    cr_assert(nt_perplexity(m, &w, nw, "wikitext2", &cpu, &err) == 0, "%s", err.msg);
    nt_gpu_model *g = NULL;
    cr_assert(nt_gpu_model_upload(ctx, &g, m, S, &err) == 0, "%s", err.msg);
    cr_assert(nt_perplexity_gpu(ctx, g, &w, nw, "wikitext2", &dev, &err) == 0, "%s", err.msg);
    cr_log_info("%s %s A%d wikitext2, %zu windows of %d: device PPL %.4f +/- %.4f, CPU %.4f +/- %.4f (%.1f s)", model,
                method, abits, nw, S, dev.ppl, dev.ppl_stderr, cpu.ppl, cpu.ppl_stderr, dev.seconds);
    cr_expect_eq(dev.n_windows, nw, "%s %s: %zu windows scored", model, method, dev.n_windows);
    cr_expect_eq(dev.n_scored, cpu.n_scored, "%s %s: %zu tokens scored, CPU %zu", model, method, dev.n_scored,
                 cpu.n_scored);
    const double ppl_rel = abits < 16 ? A8_PPL_REL : PPL_REL, logp_max = abits < 16 ? A8_LOGP_MAX : LOGP_MAX;
    TU_EXPECT_CLOSE(dev.ppl, cpu.ppl, 0.0, ppl_rel, "%s %s A%d: device PPL against the CPU's", model, method, abits);
    TU_EXPECT_CLOSE(dev.nll_stderr, cpu.nll_stderr, logp_max / sqrt((double)cpu.n_scored - 1.0), 0.0,
                    "%s %s A%d: device NLL standard error against the CPU's", model, method, abits);
    nt_gpu_model_free(&g);
    nt_windows_free(&w);
    nt_tokenizer_free(&tok);
    nt_model_free(&m);
    free(dir);
    free(data);
    nt_gpu_ctx_free(&ctx);
}

Test(gpu_forward, perplexity_tiny_opt, .timeout = 1200) {
    check_ppl("models/tiny-opt", "fp", 16);
    check_ppl("models/tiny-opt", "rtn", 16);
}
Test(gpu_forward, perplexity_tiny_llama, .timeout = 1200) {
    check_ppl("models/tiny-llama", "fp", 16);
    check_ppl("models/tiny-llama", "rtn", 16);
}
Test(gpu_forward, perplexity_w8a8, .timeout = 1200) {
    check_ppl("models/tiny-opt", "rtn", 8);
    check_ppl("models/tiny-llama", "rtn", 8);
}

Test(gpu_forward, bad_calls_are_errors) {
    nt_gpu_ctx *ctx = tu_need_gpu();
    nt_err err = {0};
    char *dir = tu_source("tests/fixtures/tiny-random-llama");
    nt_model *m = load(dir);
    nt_gpu_model *g = NULL;
    cr_assert(nt_gpu_model_upload(ctx, &g, m, m->cfg.max_pos + 1, &err) != 0);
    cr_assert(strstr(err.msg, "exceed"), "%s", err.msg);
    cr_assert(nt_gpu_model_upload(ctx, &g, m, 8, &err) == 0, "%s", err.msg);
    int32_t ids[9] = {1, 2, 3, 4, 5, 6, 7, 8, 9};
    cr_assert(nt_gpu_forward(ctx, g, ids, 9, &err) != 0);
    cr_assert(strstr(err.msg, "at most 8"), "%s", err.msg);
    ids[3] = m->cfg.vocab;
    cr_assert(nt_gpu_forward(ctx, g, ids, 8, &err) != 0);
    cr_assert(strstr(err.msg, "outside the vocabulary"), "%s", err.msg);
    float logits[4];
    cr_assert(nt_gpu_logits(ctx, g, 0, 1, logits, &err) != 0, "no rows after a failed forward");
    nt_gpu_model_free(&g);
    nt_model_free(&m);
    free(dir);
    nt_gpu_ctx_free(&ctx);
}

// Without a device, `eval --device cuda` says so in one line and exits 1; a zero-shot task with it is a usage
// error (exit 2) before anything loads.
Test(gpu_forward, eval_device_cuda_without_a_device) {
#ifdef NT_CUDA_EMU
    cr_skip_test("the CLI links the real library: tested by test_gpu_forward");
#endif
    nt_err err = {0};
    if (nt_gpu_device_count(&err) > 0) cr_skip_test("a CUDA device is present: the no-device path is not exercised");
    char *model = tu_shared("models/tiny-opt"), *data = tu_shared("datasets"), args[2048];
    snprintf(args, sizeof args, "eval --model '%s' --data-dir '%s' --seqlen 32 --device cuda --limit 1", model, data);
    char *msg = NULL;
    int rc = tu_run_cli(args, &msg);
    cr_assert_eq(rc, 1, "exit 1 without a device (got %d): %s", rc, msg ? msg : "");
    cr_assert(msg && strncmp(msg, "normtweak eval: --device cuda: no CUDA device (", 47) == 0, "got: %s", msg);
    // the reason is CUDA's (or "built without CUDA"), given once
    cr_assert(strstr(msg, "cudaGetDeviceCount: ") || strstr(msg, "built without CUDA"), "got: %s", msg);
    cr_assert(strstr(msg + 20, "--device") == NULL, "got: %s", msg);
    cr_assert(strchr(msg, '\n') == msg + strlen(msg) - 1, "one line: %s", msg);
    free(msg);
    snprintf(args, sizeof args, "eval --model '%s' --data-dir '%s' --device cuda --tasks piqa --limit 1", model, data);
    rc = tu_run_cli(args, &msg);
    cr_assert_eq(rc, 2, "zero-shot on cuda is a usage error (got %d): %s", rc, msg ? msg : "");
    cr_assert(msg && strstr(msg, "CPU only"), "got: %s", msg);
    free(msg);
    rc = tu_run_cli("eval --device tpu --limit 1", &msg);
    cr_assert_eq(rc, 2, "an unknown device is a usage error (got %d): %s", rc, msg ? msg : "");
    cr_assert(msg && strstr(msg, "unknown device 'tpu'"), "got: %s", msg);
    free(msg);
    free(model);
    free(data);
}
