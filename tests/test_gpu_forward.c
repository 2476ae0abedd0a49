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

// Compares the device's and the CPU's log-probabilities for n tokens; returns the largest difference.
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
    cr_log_info("%s, %d positions: max |dlogp| %.3g, mean %.3g", what, n, worst, mean);
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

// Perplexity through the entry point `eval --device cuda` calls, nt_perplexity_gpu, against the CPU's nt_perplexity
// on the same WikiText-2 windows, float and RTN 4-bit: on a device 16 windows of the model's whole context; on the
// emulator (each CUDA thread a fiber there) 2 windows of 64 tokens, so that it stays short. Tolerances:
// - the windows and token counts: identical;
// - perplexity: rtol PPL_REL, atol 0 (exp of a mean NLL whose per-token errors of either sign mostly cancel);
// - the NLL's standard error sd / sqrt(N): every per-token NLL is one of compare()'s log-probs, within LOGP_MAX, and
//   an sd is a norm of the centred values, so |sd_dev - sd_cpu| <= sd(differences) <= LOGP_MAX sqrt(N / (N - 1)):
//   atol LOGP_MAX / sqrt(N - 1), rtol 0.
static void check_ppl(const char *model, const char *method) {
    nt_gpu_ctx *ctx = tu_need_gpu();
    nt_err err = {0};
    char *dir = tu_shared(model), *data = tu_shared("datasets");
    nt_model *m = load(dir);
    nt_tokenizer *tok = NULL;
    cr_assert(nt_tokenizer_load_dir(&tok, dir, &err) == 0, "%s", err.msg);
    if (strcmp(method, "fp") != 0) {
        nt_quant_opts o = nt_quant_opts_make(method, 4, -1);
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
    cr_log_info("%s %s wikitext2, %zu windows of %d: device PPL %.4f +/- %.4f, CPU %.4f +/- %.4f (%.1f s)", model,
                method, nw, S, dev.ppl, dev.ppl_stderr, cpu.ppl, cpu.ppl_stderr, dev.seconds);
    cr_expect_eq(dev.n_windows, nw, "%s %s: %zu windows scored", model, method, dev.n_windows);
    cr_expect_eq(dev.n_scored, cpu.n_scored, "%s %s: %zu tokens scored, CPU %zu", model, method, dev.n_scored,
                 cpu.n_scored);
    TU_EXPECT_CLOSE(dev.ppl, cpu.ppl, 0.0, PPL_REL, "%s %s: device PPL against the CPU's", model, method);
    TU_EXPECT_CLOSE(dev.nll_stderr, cpu.nll_stderr, LOGP_MAX / sqrt((double)cpu.n_scored - 1.0), 0.0,
                    "%s %s: device NLL standard error against the CPU's", model, method);
    nt_gpu_model_free(&g);
    nt_windows_free(&w);
    nt_tokenizer_free(&tok);
    nt_model_free(&m);
    free(dir);
    free(data);
    nt_gpu_ctx_free(&ctx);
}

Test(gpu_forward, perplexity_tiny_opt, .timeout = 1200) {
    check_ppl("models/tiny-opt", "fp");
    check_ppl("models/tiny-opt", "rtn");
}
Test(gpu_forward, perplexity_tiny_llama, .timeout = 1200) {
    check_ppl("models/tiny-llama", "fp");
    check_ppl("models/tiny-llama", "rtn");
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
