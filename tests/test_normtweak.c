// test_normtweak.c: the norm-tweaking driver on the shared tiny-opt and tiny-llama:
// - a zero learning rate leaves the quantized model exactly as the base method made it;
// - tweaking lowers the block-output loss on the samples it tweaks on, block by block, with the paper's loss;
// - the per-block lr grid: the library's reported scores are the losses (recomputed here) on the held-out
//   samples that neither tweaked nor chose the lr; the chosen tweak beats not tweaking there and on fresh C4
//   windows the quantizer never saw, block by block; a grid of only diverging lrs loses to "no tweak" in every
//   block (the model is then exactly RTN's); a grid without 2 held-out samples is an error;
// - a tweaked checkpoint carries its norms (save -> load gives the same logits);
// - generated calibration text is reproducible (seeded), starts with a letters-only token, and round-trips
//   through a token file.
#define _POSIX_C_SOURCE 200809L
#include <criterion/criterion.h>
#include <math.h>
#include <string.h>

#include "calibgen.h"
#include "normtweak.h"
#include "qcheckpoint.h"
#include "quantize_model.h"
#include "testutil.h"

typedef struct {
    nt_model *m;
    nt_tokenizer *tok;
    char *dir, *data;
} fixture;

static fixture open_model(const char *name) {
    fixture f;
    char rel[128];
    snprintf(rel, sizeof(rel), "models/%s", name);
    f.dir = tu_shared(rel);
    f.data = tu_shared("datasets");
    nt_err err = {0};
    cr_assert_eq(nt_model_load(&f.m, f.dir, &err), 0, "%s", err.msg);
    cr_assert_eq(nt_tokenizer_load_dir(&f.tok, f.dir, &err), 0, "%s", err.msg);
    return f;
}

static void close_model(fixture *f) {
    nt_model_free(&f->m);
    nt_tokenizer_free(&f->tok);
    free(f->dir);
    free(f->data);
}

static nt_quant_opts small_opts(const char *method, int bits) {
    nt_quant_opts o = nt_quant_opts_make(method, bits, -1);
    snprintf(o.calib_source, sizeof(o.calib_source), "c4"); // fast to build; generation is tested below
    o.nsamples = 8;
    o.calib_seqlen = 64;
    return o;
}

static void logits_of(nt_model *m, float *out, int T) {
    nt_run *r = NULL;
    nt_err err = {0};
    int32_t ids[64];
    for (int t = 0; t < T; t++) ids[t] = (t * 131 + 7) % 5000;
    cr_assert_eq(nt_run_init(&r, m, T, T, &err), 0);
    cr_assert_eq(nt_forward(m, r, ids, T, out, &err), 0, "%s", err.msg);
    nt_run_free(&r);
}

Test(normtweak, zero_lr_is_the_base_method) {
    fixture a = open_model("tiny-opt"), b = open_model("tiny-opt");
    nt_err err = {0};
    nt_quant_opts base = small_opts("rtn", 3), nt = small_opts("rtn+nt", 3);
    nt.nt_lr = 0.0f;
    cr_assert_eq(nt_quantize_model(a.m, a.tok, a.data, &base, NULL, &err), 0, "%s", err.msg);
    cr_assert_eq(nt_quantize_model(b.m, b.tok, b.data, &nt, NULL, &err), 0, "%s", err.msg);
    int T = 16, V = a.m->cfg.vocab;
    float *la = malloc((size_t)T * V * 4), *lb = malloc((size_t)T * V * 4);
    logits_of(a.m, la, T);
    logits_of(b.m, lb, T);
    cr_assert_eq(memcmp(la, lb, (size_t)T * V * 4), 0, "rtn+nt with lr 0 differs from rtn");
    cr_assert_str_eq(b.m->quant.method, "rtn+nt");
    cr_assert(strstr(b.m->quant.options, "loss=dist") && strstr(b.m->quant.options, "lr=0"), "%s",
              b.m->quant.options);
    free(la);
    free(lb);
    close_model(&a);
    close_model(&b);
}

static void tweak_lowers_training_loss(const char *name, const char *method) {
    fixture f = open_model(name);
    nt_err err = {0};
    nt_quant_opts o = small_opts(method, 2);
    o.nt_lr = 1e-5f; // the default; lr 1e-4 overshoots tiny-opt's deepest blocks (lr x 76 there)
    o.nt_iters = 2;
    nt_quant_stats st = {0};
    cr_assert_eq(nt_quantize_model(f.m, f.tok, f.data, &o, &st, &err), 0, "%s", err.msg);
    for (int l = 0; l < f.m->cfg.n_layers; l++) {
        cr_log_info("%s %s block %d: loss %.6g -> %.6g (lr %g)", name, method, l, st.nt_loss_before[l],
                    st.nt_loss_after[l], st.nt_lr_used[l]);
        cr_expect(st.nt_loss_after[l] < st.nt_loss_before[l], "%s block %d: loss %.6g -> %.6g", name, l,
                  st.nt_loss_before[l], st.nt_loss_after[l]);
    }
    nt_quant_stats_free(&st);
    close_model(&f);
}

Test(normtweak, lowers_block_loss_tiny_opt, .timeout = 600) { tweak_lowers_training_loss("tiny-opt", "gptq+nt"); }
Test(normtweak, lowers_block_loss_tiny_llama, .timeout = 600) { tweak_lowers_training_loss("tiny-llama", "rtn+nt"); }

// Block by block on fresh samples (ids: n windows of T tokens the quantizer never saw), the dist loss of the
// tweaked model q's block l against the float block, and of the untweaked RTN model r's block l (the same packed
// linears: RTN is deterministic), both on q's own block-l inputs as the library tweaks them; means over windows.
static void fresh_block_losses(const nt_model *fm, const nt_model *q, const nt_model *r, const nt_windows *w,
                               double *loss_q, double *loss_r) {
    const int L = q->cfg.n_layers, D = q->cfg.dim, T = (int)w->seqlen;
    const size_t sz = (size_t)T * D;
    nt_err err = {0};
    nt_run *rf = NULL, *rq = NULL, *rr = NULL;
    cr_assert_eq(nt_run_init(&rf, fm, T, T, &err), 0, "%s", err.msg);
    cr_assert_eq(nt_run_init(&rq, q, T, T, &err), 0, "%s", err.msg);
    cr_assert_eq(nt_run_init(&rr, r, T, T, &err), 0, "%s", err.msg);
    float *x = malloc(sz * sizeof(float)), *yf = malloc(sz * sizeof(float)), *y0 = malloc(sz * sizeof(float));
    for (int l = 0; l < L; l++) loss_q[l] = loss_r[l] = 0.0;
    for (size_t j = 0; j < w->n_windows; j++) {
        nt_embed(q, rq, w->ids + j * w->seqlen, T, 0, x);
        for (int l = 0; l < L; l++) {
            memcpy(yf, x, sz * sizeof(float));
            memcpy(y0, x, sz * sizeof(float));
            nt_run_reset(rf);
            nt_block_forward(fm, rf, l, yf, T, 0);
            nt_run_reset(rr);
            nt_block_forward(r, rr, l, y0, T, 0);
            nt_run_reset(rq);
            nt_block_forward(q, rq, l, x, T, 0); // x becomes the next block's input, as in the library
            double a, b;
            cr_assert_eq(nt_loss_eval(NT_LOSS_DIST, yf, x, T, D, &a, NULL, &err), 0, "%s", err.msg);
            cr_assert_eq(nt_loss_eval(NT_LOSS_DIST, yf, y0, T, D, &b, NULL, &err), 0, "%s", err.msg);
            loss_q[l] += a;
            loss_r[l] += b;
        }
    }
    for (int l = 0; l < L; l++) { // summed, then divided, as the library's scoring does
        loss_q[l] /= (double)w->n_windows;
        loss_r[l] /= (double)w->n_windows;
    }
    free(x);
    free(yf);
    free(y0);
    nt_run_free(&rf);
    nt_run_free(&rq);
    nt_run_free(&rr);
}

// tiny-opt, RTN 2-bit + norm tweaking with an lr grid: 16 calibration samples of C4 (seed 0), 8 held out
// (samples 8..11 choose the lr, 12..15 score the choice). q: quantized and tweaked, *st its stats; rtn: RTN alone.
#define GRID_N 16
#define GRID_T 64
static void grid_models(const float *grid, int n_grid, fixture *q, fixture *rtn, nt_quant_stats *st) {
    *q = open_model("tiny-opt");
    *rtn = open_model("tiny-opt");
    nt_err err = {0};
    nt_quant_opts o = small_opts("rtn+nt", 2), base = small_opts("rtn", 2);
    o.nsamples = GRID_N;
    o.calib_seqlen = GRID_T;
    memcpy(o.nt_lr_grid, grid, (size_t)n_grid * sizeof(float));
    o.n_lr_grid = n_grid;
    o.nt_holdout = 8;
    cr_assert_eq(nt_quantize_model(q->m, q->tok, q->data, &o, st, &err), 0, "%s", err.msg);
    cr_assert_eq(nt_quantize_model(rtn->m, rtn->tok, rtn->data, &base, NULL, &err), 0, "%s", err.msg);
    char want[128] = "lr_grid=";
    for (int i = 0; i < n_grid; i++)
        snprintf(want + strlen(want), sizeof want - strlen(want), "%s%g", i ? "/" : "", (double)grid[i]);
    cr_assert(strstr(q->m->quant.options, want), "%s lacks %s", q->m->quant.options, want);
}

// The grid {1e-6, 1e-4, 1e-1} (scaled by depth up to 76x: 1e-1 diverges in the deep blocks). Checked against this
// file's own block-by-block losses: (1) the library's before/after scores are the losses on samples 12..15, the
// ones that neither tweaked nor chose; (2) on 8 fresh C4 windows (another seed) the chosen tweak beats not
// tweaking in every tweaked block, and an untweaked block is RTN's exactly.
Test(normtweak, grid_choice_beats_no_tweak_on_unseen_samples, .timeout = 600) {
    const float grid[3] = {1e-6f, 1e-4f, 1e-1f};
    fixture q, rtn, fl = open_model("tiny-opt");
    nt_quant_stats st = {0};
    grid_models(grid, 3, &q, &rtn, &st);
    const int L = q.m->cfg.n_layers;
    nt_err err = {0};
    nt_windows calib = {0}, fresh = {0};
    cr_assert_eq(nt_calib_windows("c4", fl.data, fl.tok, GRID_N, GRID_T, 0, &calib, &err), 0, "%s", err.msg);
    cr_assert_eq(nt_calib_windows("c4", fl.data, fl.tok, 8, GRID_T, 12345, &fresh, &err), 0, "%s", err.msg);
    nt_windows scoring = calib; // a view of samples 12..15
    scoring.ids += (size_t)12 * GRID_T;
    scoring.n_windows = 4;
    double *sq = malloc((size_t)4 * L * sizeof(double)), *sr = sq + L, *fq = sq + 2 * L, *fr = sq + 3 * L;
    fresh_block_losses(fl.m, q.m, rtn.m, &scoring, sq, sr);
    fresh_block_losses(fl.m, q.m, rtn.m, &fresh, fq, fr);
    int tweaked = 0;
    for (int l = 0; l < L; l++) {
        float scale = 1.0f + l * 100.0f / L, used = st.nt_lr_used[l];
        bool in_grid = used == 0.0f;
        // the library's lr is grid[i] * scale by the same fp32 expression: equal; rtol 1e-6 (~8 ulps), atol 0
        for (int i = 0; i < 3; i++) in_grid |= tu_close(used, grid[i] * scale, 0.0, 1e-6);
        cr_assert(in_grid, "block %d: lr %g is not from the grid", l, used);
        cr_log_info("block %d: lr %g; scoring samples %.6g -> %.6g; fresh windows %.6g (RTN) -> %.6g", l, used,
                    st.nt_loss_before[l], st.nt_loss_after[l], fr[l], fq[l]);
        // (1) the same blocks on the same inputs (the training forward equals nt_block_forward to the bit, see
        // test_block_grad), the same double sums: rtol 1e-5 for a training forward rounded otherwise, atol 0;
        // the choosing samples' losses differ from these by percents
        TU_EXPECT_CLOSE(st.nt_loss_after[l], sq[l], 0.0, 1e-5, "block %d: reported score after tweaking against "
                        "the loss on samples 12..15", l);
        TU_EXPECT_CLOSE(st.nt_loss_before[l], sr[l], 0.0, 1e-5, "block %d: reported score before tweaking against "
                        "the loss on samples 12..15", l);
        if (used == 0.0f) { // not tweaked: the block is RTN's, exactly
            cr_expect_eq(fq[l], fr[l], "block %d: untweaked, yet it differs from RTN's on fresh windows", l);
            continue;
        }
        tweaked++;
        cr_expect(st.nt_loss_after[l] < st.nt_loss_before[l], "block %d: lr %g scores %.6g, untweaked %.6g, on the "
                  "held-out samples that did not choose it", l, used, st.nt_loss_after[l], st.nt_loss_before[l]);
        cr_expect(fq[l] < fr[l], "block %d: lr %g: fresh-window loss %.6g, untweaked %.6g", l, used, fq[l], fr[l]);
    }
    cr_expect(tweaked >= L / 2, "the grid tweaked only %d of %d blocks: the check saw little", tweaked, L);
    free(sq);
    nt_windows_free(&calib);
    nt_windows_free(&fresh);
    nt_quant_stats_free(&st);
    close_model(&q);
    close_model(&rtn);
    close_model(&fl);
}

// Only diverging learning rates (Adam steps of 10 or more on LayerNorm parameters of order 1): every block's
// choice must be "no tweak", and the model is then RTN's to the bit.
Test(normtweak, diverging_grid_loses_to_no_tweak, .timeout = 600) {
    const float grid[2] = {10.0f, 1000.0f};
    fixture q, rtn;
    nt_quant_stats st = {0};
    grid_models(grid, 2, &q, &rtn, &st);
    for (int l = 0; l < q.m->cfg.n_layers; l++) {
        cr_log_info("block %d: lr %g, scoring half %.6g -> %.6g", l, st.nt_lr_used[l], st.nt_loss_before[l],
                    st.nt_loss_after[l]);
        cr_expect_eq(st.nt_lr_used[l], 0.0f, "block %d: a diverging lr %g was chosen over no tweak", l,
                     st.nt_lr_used[l]);
    }
    int T = 16, V = q.m->cfg.vocab;
    float *la = malloc((size_t)T * V * 4), *lb = malloc((size_t)T * V * 4);
    logits_of(q.m, la, T);
    logits_of(rtn.m, lb, T);
    cr_expect_eq(memcmp(la, lb, (size_t)T * V * 4), 0, "no block tweaked, yet the logits differ from RTN's");
    free(la);
    free(lb);
    nt_quant_stats_free(&st);
    close_model(&q);
    close_model(&rtn);
}

// A grid needs held-out samples to choose on and others to score the choice.
Test(normtweak, grid_needs_two_held_out_samples) {
    fixture f = open_model("tiny-opt");
    nt_err err = {0};
    nt_quant_opts o = small_opts("rtn+nt", 2);
    o.nt_lr_grid[0] = 1e-5f;
    o.n_lr_grid = 1;
    o.nt_holdout = 1;
    cr_expect_eq(nt_quantize_model(f.m, f.tok, f.data, &o, NULL, &err), -1, "a grid with one held-out sample");
    cr_expect(strstr(err.msg, "at least 2 held-out samples"), "%s", err.msg);
    close_model(&f);
}

Test(normtweak, checkpoint_carries_tweaked_norms, .timeout = 600) {
    fixture f = open_model("tiny-llama");
    nt_err err = {0};
    nt_quant_opts o = small_opts("gptq+nt", 3);
    o.nt_lr = 1e-3f;
    float *before = malloc((size_t)f.m->cfg.dim * 4);
    memcpy(before, f.m->layers[1].mlp_norm.w, (size_t)f.m->cfg.dim * 4);
    cr_assert_eq(nt_quantize_model(f.m, f.tok, f.data, &o, NULL, &err), 0, "%s", err.msg);
    cr_assert_neq(memcmp(before, f.m->layers[1].mlp_norm.w, (size_t)f.m->cfg.dim * 4), 0, "norms did not change");
    char *tmp = tu_tmpdir(), *q = nt_path_join(tmp, "q");
    cr_assert_eq(nt_qcheckpoint_save(f.m, q, &err), 0, "%s", err.msg);
    nt_model *m2 = NULL;
    cr_assert_eq(nt_model_load(&m2, q, &err), 0, "%s", err.msg);
    cr_assert_str_eq(m2->quant.method, "gptq+nt");
    cr_assert(strstr(m2->quant.options, "loss=dist"), "%s", m2->quant.options);
    int T = 16, V = f.m->cfg.vocab;
    float *la = malloc((size_t)T * V * 4), *lb = malloc((size_t)T * V * 4);
    logits_of(f.m, la, T);
    logits_of(m2, lb, T);
    cr_assert_eq(memcmp(la, lb, (size_t)T * V * 4), 0, "logits differ after save/load");
    free(la);
    free(lb);
    free(before);
    nt_model_free(&m2);
    tu_rmtree(tmp);
    free(tmp);
    free(q);
    close_model(&f);
}

Test(normtweak, generated_calibration_is_reproducible, .timeout = 600) {
    fixture f = open_model("tiny-opt");
    nt_err err = {0};
    nt_gen_opts g = nt_gen_opts_make(2, 24, 7);
    nt_windows a = {0}, b = {0}, c = {0};
    cr_assert_eq(nt_calib_generate(f.m, f.tok, &g, &a, &err), 0, "%s", err.msg);
    cr_assert_eq(nt_calib_generate(f.m, f.tok, &g, &b, &err), 0, "%s", err.msg);
    cr_assert_eq(memcmp(a.ids, b.ids, 2 * 24 * sizeof(int32_t)), 0, "same seed, different text");
    // decoding the samples one at a time gives the text of decoding them together (the random draws are taken in
    // the one-after-the-other order first; the batched products round differently, ~1e-6 on the logits, which
    // would only matter at a near-tie between two candidate tokens: none in these 46 draws)
    nt_gen_opts g1 = g;
    g1.batch = 1;
    nt_windows a1 = {0};
    cr_assert_eq(nt_calib_generate(f.m, f.tok, &g1, &a1, &err), 0, "%s", err.msg);
    cr_assert_eq(memcmp(a.ids, a1.ids, 2 * 24 * sizeof(int32_t)), 0, "one sample at a time, different text");
    nt_windows_free(&a1);
    for (int s = 0; s < 2; s++) {
        char *text = NULL;
        cr_assert_eq(nt_tokenizer_decode(f.tok, a.ids + s * 24, 1, true, &text, &err), 0);
        const char *t = text[0] == ' ' ? text + 1 : text;
        for (const char *p = t; *p; p++)
            cr_assert((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z'), "first token '%s' is not letters", text);
        free(text);
    }
    char *tmp = tu_tmpdir(), *p = nt_path_join(tmp, "calib.safetensors");
    cr_assert_eq(nt_tokens_save(p, &a, "tiny-opt", &g, &err), 0, "%s", err.msg);
    cr_assert_eq(nt_tokens_load(p, &c, &err), 0, "%s", err.msg);
    cr_assert_eq(c.n_windows, 2);
    cr_assert_eq(c.seqlen, 24);
    cr_assert_eq(memcmp(a.ids, c.ids, 2 * 24 * sizeof(int32_t)), 0);
    g.seed = 8;
    nt_windows d = {0};
    cr_assert_eq(nt_calib_generate(f.m, f.tok, &g, &d, &err), 0, "%s", err.msg);
    cr_assert_neq(memcmp(a.ids, d.ids, 2 * 24 * sizeof(int32_t)), 0, "another seed, same text");
    nt_windows_free(&a);
    nt_windows_free(&b);
    nt_windows_free(&c);
    nt_windows_free(&d);
    tu_rmtree(tmp);
    free(tmp);
    free(p);
    close_model(&f);
}
