// test_block_grad.c: the norm-tweaking backward (model/block_grad.h), losses and Adam (quant/normtweak.h)
//
// - Training forward == nt_block_forward for every architecture fixture (OPT pre/post-LN, LLaMA GQA,
//   LLaMA with attention biases, Qwen2, BLOOM, BLOOM with apply_residual_connection_post_layernorm, OPT
//   with GELU-erf) and the shared tiny-llama / tiny-opt: max |diff| <= 1e-5 * max(1, max |y|).
// - Norm-parameter gradients (every coordinate for the fixtures, 12 per vector for tiny-llama) against
//   finite differences of L = sum r * y (r random) on the same set, and of each loss L(y_f, y_q) with y_q
//   from a block whose linears were perturbed by 5% of their sd ("quantized"). The forward is fp32, so every
//   evaluation of the loss carries its own rounding noise, and a difference quotient divides it by the step:
//   the numerical derivative is the slope of a least-squares cubic through 8 evaluations at offsets
//   +-h/2 .. +-2h (h = 3e-3 * max(1, |p|), ReLU: 1e-3; offsets as actually taken after rounding to float,
//   losses summed in double), whose residuals measure that noise. Kinks: the dist loss is differenced with
//   its |.| signs frozen at the base point (same value and gradient there); for ReLU blocks a stencil that
//   flips a ReLU input is shrunk 3x once, then the coordinate is skipped (at most 3/4 of them). Pass:
//   |a - n| <= FD_Z * se(n) + FD_RTOL * |n| per coordinate (se: the noise's standard error of n) and the
//   same with vector norms per vector; the noise allowance must stay below FD_MAX_NOISE of max |n|.
//   The backward without dx must give bit-identical parameter gradients.
// - Input gradient dL/dx on sampled coordinates, same tolerances.
// - Each loss's gradient w.r.t. y_q by central differences (losses in double: 1e-6 + 1e-4 relative).
// - Adam: 3 steps against torch.optim.Adam.
#include <criterion/criterion.h>
#include <math.h>
#include <string.h>

#include "normtweak.h"
#include "block_grad.h"
#include "testutil.h"
#include "transformer.h"

// Training forward against nt_block_forward: the same ops in the same order, bit-identical as measured (every
// OPENBLAS_CORETYPE tried, 1 and 2 threads). An sgemm that blocked one of the two differently would change
// rounding relative to the sums' magnitudes, i.e. to the block's scale (a reordered sum of K terms: up to
// K u ~ 1e-5 of it for K ~ 200, u = 2^-24): atol = FWD_TOL * max(1, max |y|), rtol 0.
#define FWD_TOL 1e-5
// Finite differences (see fd_derivative): relative step h * max(1, |p|), FD_POINTS evaluations at +-h/2 ..
// +-2h; ReLU blocks take a smaller step (their kinks) and shrink it 3x when a ReLU input flips.
#define FD_H 3e-3
#define FD_H_RELU 1e-3
#define FD_POINTS 8
// Pass: |analytic - numerical| <= FD_Z * se + FD_RTOL * |numerical| per coordinate (and with norms per vector).
// - atol = FD_Z * se: the numerical derivative's noise, measured (compare_fd). An fp32 forward of a block rounds
//   differently at every step, so the loss is noisy at ~1e-7 relative; the step divides it: se is 6e-5 of
//   max |n| for the median coordinate, up to 9e-4 (tiny-random-opt's ReLU blocks at a shrunk step). The
//   standardized errors (a - n) / se measured over ~3300 coordinates, each of OPENBLAS_CORETYPE Haswell,
//   SkylakeX, Sandybridge, Prescott, Zen at 1 and 2 threads, have sd 1.01 to 1.03, but the rounding noise is
//   not quite independent between stencil points (a sum's rounding changes in steps, which the fit partly
//   reads as slope): the largest was 5.3 se. FD_Z = 10 leaves 2x over that. (The old bound, 2e-3 * max |n|,
//   was about 2 se for the noisiest coordinates: tiny-random-opt block 1's dist loss failed on AVX-512.)
// - rtol: the fit's O(h^4) truncation and the fp32 backward's own rounding; measured at most 2e-4 (post-LN
//   OPT, where the rounding of y = x + b is a staircase in b: correlated noise the residuals do not see).
// The allowance FD_Z * se must stay below FD_MAX_NOISE * max |n| (measured <= 1%), or the check means little.
#define FD_Z 10.0
#define FD_RTOL 1e-3
#define FD_VEC_RTOL 1e-3
#define FD_MAX_NOISE 0.02

// ----------------------------------------------------------------------------
// helpers

static uint64_t rng_state;
static void rng_seed(uint64_t s) { rng_state = s * 0x9E3779B97F4A7C15ull + 1; }
static double rng_uniform(void) { // (0, 1)
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return ((rng_state >> 11) + 0.5) / 9007199254740992.0;
}
static double rng_normal(void) { return sqrt(-2.0 * log(rng_uniform())) * cos(6.283185307179586 * rng_uniform()); }
static void fill_normal(float *x, size_t n, double sd) {
    for (size_t i = 0; i < n; i++) x[i] = (float)(sd * rng_normal());
}

static nt_model *load(const char *spec) {
    char rel[256];
    char *dir;
    if (strncmp(spec, "shared:", 7) == 0) {
        snprintf(rel, sizeof(rel), "models/%s", spec + 7);
        dir = tu_shared(rel);
    } else {
        snprintf(rel, sizeof(rel), "tests/fixtures/%s", spec);
        dir = tu_source(rel);
    }
    nt_model *m = NULL;
    nt_err err = {0};
    cr_assert_eq(nt_model_load(&m, dir, &err), 0, "%s: %s", dir, err.msg);
    free(dir);
    return m;
}

static nt_linear *layer_linears(nt_layer *ly, int i) {
    nt_linear *all[] = {&ly->q, &ly->k, &ly->v, &ly->o, &ly->up, &ly->gate, &ly->down};
    return i < 7 ? all[i] : NULL;
}

// The random-weight fixtures have weights of sd 0.02: attention is uniform and the sublayers whisper
// next to the residual. Scale the linears to sd ~ 1/sqrt(in) and give the norms non-trivial parameters
// so every path of the backward carries weight.
static void liven_fixture(nt_model *m, int l) {
    nt_layer *ly = &m->layers[l];
    for (int i = 0; i < 7; i++) {
        nt_linear *lin = layer_linears(ly, i);
        if (!lin->w) continue;
        size_t n = (size_t)lin->out * lin->in;
        double ss = 0.0;
        for (size_t j = 0; j < n; j++) ss += (double)lin->w[j] * lin->w[j];
        float f = (float)(1.5 / sqrt((double)lin->in) / sqrt(ss / n + 1e-30));
        for (size_t j = 0; j < n; j++) lin->w[j] *= f;
        if (lin->b)
            for (int j = 0; j < lin->out; j++) lin->b[j] = (float)(0.1 * rng_normal());
    }
    nt_norm *norms[] = {&ly->attn_norm, &ly->mlp_norm};
    for (int i = 0; i < 2; i++) {
        for (int j = 0; j < m->cfg.dim; j++) {
            if (norms[i]->w) norms[i]->w[j] = (float)(1.0 + 0.3 * rng_normal());
            if (norms[i]->b) norms[i]->b[j] = (float)(0.2 * rng_normal());
        }
    }
}

// Block input: for the shared model, the token embeddings of random tokens (block 0's real input, LLaMA
// has nothing else); for fixtures, unit Gaussians.
static float *make_input(const nt_model *m, int T, bool shared) {
    int D = m->cfg.dim;
    float *x = malloc((size_t)T * D * sizeof(float));
    if (shared && m->cfg.emb_dim == D) {
        for (int t = 0; t < T; t++) {
            int tok = (int)(rng_uniform() * m->cfg.vocab);
            memcpy(x + (size_t)t * D, m->tok_emb + (size_t)tok * D, D * sizeof(float));
        }
    } else {
        fill_normal(x, (size_t)T * D, 1.0);
    }
    return x;
}

typedef struct {
    const char *spec;
    bool shared;       // a trained model: use it as is
    int layer, T;
    bool rpn;          // force BLOOM's apply_residual_connection_post_layernorm
    int act;           // -1: as configured; else force this activation
} bg_case;

static const bg_case cases[] = {
    {"tiny-random-opt", false, 1, 12, false, -1},
    {"tiny-random-opt-postln", false, 0, 12, false, -1},
    {"tiny-random-opt", false, 0, 10, false, NT_ACT_GELU},
    {"tiny-random-llama", false, 1, 12, false, -1},
    {"tiny-random-llama-tied-bias", false, 0, 12, false, -1},
    {"tiny-random-qwen2", false, 1, 12, false, -1},
    {"tiny-random-bloom", false, 0, 12, false, -1},
    {"tiny-random-bloom", false, 1, 11, true, -1},
    {"shared:tiny-llama", true, 0, 32, false, -1},
};
#define N_FIXTURE_CASES 8 // the first ones; the shared model comes last

static nt_model *setup_case(const bg_case *c) {
    nt_model *m = load(c->spec);
    if (c->rpn) m->cfg.residual_post_norm = true;
    if (c->act >= 0) m->cfg.act = (nt_act)c->act;
    if (!c->shared) liven_fixture(m, c->layer);
    return m;
}

static double dot_d(const float *a, const float *b, size_t n) {
    double s = 0.0;
    for (size_t i = 0; i < n; i++) s += (double)a[i] * b[i];
    return s;
}

// ----------------------------------------------------------------------------
// forward equality

static void check_forward_equal(const char *spec, bool shared, int layer, int T, bool rpn, int act) {
    bg_case c = {spec, shared, layer, T, rpn, act};
    rng_seed(11 + layer + T);
    nt_model *m = setup_case(&c);
    int D = m->cfg.dim;
    nt_err err = {0};
    float *x = make_input(m, T, shared), *y = malloc((size_t)T * D * sizeof(float));
    float *ref = malloc((size_t)T * D * sizeof(float));
    memcpy(ref, x, (size_t)T * D * sizeof(float));
    nt_run *r = NULL;
    cr_assert_eq(nt_run_init(&r, m, T, T, &err), 0, "%s", err.msg);
    nt_block_forward(m, r, layer, ref, T, 0);
    nt_block_grad *g = NULL;
    cr_assert_eq(nt_block_grad_init(&g, m, T, &err), 0, "%s", err.msg);
    cr_assert_eq(nt_block_train_forward(m, g, layer, x, T, y, &err), 0, "%s", err.msg);
    double maxy = 0.0;
    for (size_t i = 0; i < (size_t)T * D; i++) maxy = fmax(maxy, fabs((double)ref[i]));
    char what[128];
    snprintf(what, sizeof what, "%s block %d: training forward (max |y| %g)", spec, layer, maxy);
    size_t bad = tu_count_far(what, y, ref, (size_t)T * D, FWD_TOL * fmax(1.0, maxy), 0.0, 5, NULL);
    cr_expect(bad == 0, "%s: %zu of %d outputs differ from nt_block_forward's", what, bad, T * D);
    nt_block_grad_free(&g);
    nt_run_free(&r);
    nt_model_free(&m);
    free(x);
    free(y);
    free(ref);
}

Test(block_grad, forward_matches_block_forward) {
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        check_forward_equal(cases[i].spec, cases[i].shared, cases[i].layer, cases[i].T, cases[i].rpn, cases[i].act);
    check_forward_equal("shared:tiny-opt", true, 2, 24, false, -1);
    check_forward_equal("tiny-random-llama", false, 0, 1, false, -1); // a single token
}

// ----------------------------------------------------------------------------
// finite differences for the norm parameters and the input

// The loss of the current model on x: sum r * y (r != NULL) or nt_loss(kind, yf, y).
typedef struct {
    const nt_model *m;
    nt_block_grad *g;
    int layer, T;
    const float *x;
    float *y;
    const float *r;      // weights of the linear loss, or NULL
    nt_loss_kind kind;
    const float *yf;     // target of the norm-tweaking loss
    double h;            // relative finite-difference step
    const double *dist_sign; // (2C) dist loss: signs of mu_f - mu_q, var_f - var_q frozen at the base point
    bool relu;           // watch the ReLU kinks
    uint64_t kinks;      // hash of the ReLU input signs of the last evaluation
    int skipped;         // coordinates left out: every step tried crossed a ReLU kink
} fd_ctx;

// Per-channel mean and unbiased variance of y (T, C) in double.
static void col_stats(const float *y, int T, int C, double *mu, double *var) {
    for (int c = 0; c < C; c++) {
        double m = 0.0, v = 0.0;
        for (int t = 0; t < T; t++) m += y[(size_t)t * C + c];
        m /= T;
        for (int t = 0; t < T; t++) v += (y[(size_t)t * C + c] - m) * (y[(size_t)t * C + c] - m);
        mu[c] = m;
        var[c] = v / (T - 1);
    }
}

// The dist loss with the signs of its |.| terms frozen: near the base point it has the dist loss's
// value and gradient but no kinks (a channel whose mean or variance difference crosses 0 would make a
// difference quotient meaningless, and with 2C such terms some always do). The loss's own gradient is
// checked kinks and all in nt_loss.gradients_by_finite_differences.
static double dist_frozen(const fd_ctx *f, const float *yq) {
    int C = f->m->cfg.dim;
    double *st = malloc((size_t)4 * C * sizeof(double)), L = 0.0;
    col_stats(f->yf, f->T, C, st, st + C);
    col_stats(yq, f->T, C, st + 2 * C, st + 3 * C);
    for (int c = 0; c < C; c++)
        L += (f->dist_sign[c] * (st[c] - st[2 * C + c]) + f->dist_sign[C + c] * (st[C + c] - st[3 * C + c])) / C;
    free(st);
    return L;
}

static uint64_t relu_signs(const nt_block_grad *g, size_t n) {
    const float *u = nt_block_grad_mlp_preact(g);
    uint64_t hsh = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++) hsh = (hsh ^ (uint64_t)(u[i] > 0.0f ? 2 : 1)) * 1099511628211ull;
    return hsh;
}

static double fd_loss(fd_ctx *f, float *dy) {
    nt_err err = {0};
    cr_assert_eq(nt_block_train_forward(f->m, f->g, f->layer, f->x, f->T, f->y, &err), 0, "%s", err.msg);
    size_t n = (size_t)f->T * f->m->cfg.dim;
    if (f->relu) f->kinks = relu_signs(f->g, (size_t)f->T * f->m->cfg.ffn_dim);
    if (f->r) {
        if (dy) memcpy(dy, f->r, n * sizeof(float));
        return dot_d(f->r, f->y, n);
    }
    if (f->dist_sign && !dy) return dist_frozen(f, f->y);
    double L = 0.0;
    cr_assert_eq(nt_loss_eval(f->kind, f->yf, f->y, f->T, f->m->cfg.dim, &L, dy, &err), 0, "%s", err.msg);
    return L;
}

// The numerical derivative of the loss in p[i] and what the fp32 forward's noise does to it. The loss is
// evaluated at FD_POINTS offsets s = +-h/2, +-h, +-3h/2, +-2h (the offsets actually taken after rounding
// p[i] + s to float) and a cubic c0 + c1 s + c2 s^2 + c3 s^3 fitted by least squares: c1 is the derivative,
// with a truncation error O(h^4) (the symmetric stencil's even terms do not leak into c1), and the residuals
// measure the loss's own rounding noise (each evaluation rounds differently: every op of the block in fp32).
typedef struct {
    double d;    // c1, the derivative (NAN: skipped, every stencil tried crossed a ReLU kink)
    double rss;  // residual sum of squares of the fit (FD_POINTS - 4 degrees of freedom)
    double v11;  // ((X^T X)^-1)_11 in the unit of s: sd(c1) = sd(loss noise) * sqrt(v11)
} fd_est;

// Least squares for L = X c with X = [1, t, t^2, t^3] (n points, t in [-1, 1]): the normal equations by
// Gauss-Jordan in double (4x4, well conditioned in t); returns c and ((X^T X)^-1)_11, and the residual SS.
static void cubic_fit(const double *t, const double *L, int n, double c[4], double *v11, double *rss) {
    double A[4][8] = {{0}}, b[4] = {0};
    for (int k = 0; k < n; k++) {
        double pw[4] = {1.0, t[k], t[k] * t[k], t[k] * t[k] * t[k]};
        for (int i = 0; i < 4; i++) {
            b[i] += pw[i] * L[k];
            for (int j = 0; j < 4; j++) A[i][j] += pw[i] * pw[j];
        }
    }
    for (int i = 0; i < 4; i++) A[i][4 + i] = 1.0;
    for (int col = 0; col < 4; col++) {
        int piv = col;
        for (int i = col + 1; i < 4; i++)
            if (fabs(A[i][col]) > fabs(A[piv][col])) piv = i;
        for (int j = 0; j < 8; j++) {
            double tmp = A[col][j];
            A[col][j] = A[piv][j];
            A[piv][j] = tmp;
        }
        double inv = 1.0 / A[col][col];
        for (int j = 0; j < 8; j++) A[col][j] *= inv;
        for (int i = 0; i < 4; i++) {
            if (i == col) continue;
            double fct = A[i][col];
            for (int j = 0; j < 8; j++) A[i][j] -= fct * A[col][j];
        }
    }
    for (int i = 0; i < 4; i++) {
        c[i] = 0.0;
        for (int j = 0; j < 4; j++) c[i] += A[i][4 + j] * b[j];
    }
    *v11 = A[1][5];
    *rss = 0.0;
    for (int k = 0; k < n; k++) {
        double r = L[k] - (c[0] + t[k] * (c[1] + t[k] * (c[2] + t[k] * c[3])));
        *rss += r * r;
    }
}

// ReLU blocks: a stencil with a point whose ReLU inputs changed sign from the base point's pattern is shrunk
// 3x once, then the coordinate is skipped.
static fd_est fd_derivative(fd_ctx *f, float *p, int i) {
    uint64_t at = 0;
    double L0 = fd_loss(f, NULL);
    if (f->relu) at = f->kinks;
    float p0 = p[i];
    double h = f->h * fmax(1.0, fabs((double)p0));
    for (int attempt = 0; attempt < 2; attempt++, h /= 3) {
        double t[FD_POINTS], L[FD_POINTS];
        bool crossed = false;
        for (int k = 0; k < FD_POINTS && !crossed; k++) {
            int j = k / 2 + 1, sgn = k % 2 ? -1 : 1;
            p[i] = (float)(p0 + sgn * j * h * 2.0 / (FD_POINTS / 2));
            t[k] = ((double)p[i] - (double)p0) / h;
            L[k] = fd_loss(f, NULL) - L0; // the base value off: the fit works on the small changes
            crossed = f->relu && f->kinks != at;
        }
        p[i] = p0;
        if (crossed) continue;
        double c[4], v11, rss;
        cubic_fit(t, L, FD_POINTS, c, &v11, &rss);
        return (fd_est){c[1] / h, rss, v11 / (h * h)};
    }
    f->skipped++;
    return (fd_est){NAN, 0.0, 0.0};
}

// Compares analytic a[idx[k]] with the numerical derivative of p[idx[k]] for k < n. The noise of the loss
// is pooled over the vector's coordinates (the same forward pass: one noise level), sd_noise^2 = sum rss /
// sum dof, and each derivative's standard error is sd_noise * sqrt(v11). Pass, per coordinate:
// |a - n| <= FD_Z * se + FD_RTOL * |n|, and per vector ||a - n|| <= FD_Z * sqrt(sum se^2) + FD_VEC_RTOL * ||n||.
static void compare_fd(fd_ctx *f, const char *what, const char *label, float *p, const float *a, const int *idx,
                       int n) {
    fd_est *num = malloc(n * sizeof(fd_est));
    double maxn = 0.0, se2 = 0.0, sn = 0.0, sse = 0.0, rss = 0.0;
    int dof = 0;
    for (int k = 0; k < n; k++) {
        num[k] = fd_derivative(f, p, idx[k]);
        if (isnan(num[k].d)) continue;
        maxn = fmax(maxn, fabs(num[k].d));
        rss += num[k].rss;
        dof += FD_POINTS - 4;
    }
    double sd_noise = dof ? sqrt(rss / dof) : 0.0, worst_se = 0.0;
    for (int k = 0; k < n; k++) {
        if (isnan(num[k].d)) continue;
        double an = a[idx[k]], d = fabs(an - num[k].d), se = sd_noise * sqrt(num[k].v11);
        worst_se = fmax(worst_se, se);
        se2 += d * d;
        sn += num[k].d * num[k].d;
        sse += se * se;
        TU_EXPECT_CLOSE(an, num[k].d, FD_Z * se, FD_RTOL, "%s: %s[%d] analytic vs numerical (se %.3g)", label, what,
                        idx[k], se);
    }
    TU_EXPECT_WITHIN(sqrt(se2), sqrt(sn), FD_Z * sqrt(sse), FD_VEC_RTOL,
                     "%s: %s: ||analytic - numerical|| against ||numerical|| (noise ||se|| %.3g)", label, what,
                     sqrt(sse));
    cr_expect(maxn > 0.0, "%s: %s: all numerical derivatives are 0: the check checks nothing", label, what);
    // the check means something only if the noise allowance is small next to the gradient's scale
    cr_expect(FD_Z * worst_se <= FD_MAX_NOISE * maxn, "%s: %s: finite differences too noisy (%g se, max |n| %g)",
              label, what, worst_se, maxn);
    free(num);
}

// Sampled coordinates: all of them when there are few.
static int sample_idx(int *idx, int n, int want) {
    if (n <= want) {
        for (int i = 0; i < n; i++) idx[i] = i;
        return n;
    }
    for (int k = 0; k < want; k++) idx[k] = (int)(((long)k * n) / want + (long)(rng_uniform() * (n / want)));
    return want;
}

// Checks the four norm vectors (and the input) of case c with the loss described by kind (-1: sum r * y).
static void check_case_grads(const bg_case *c, int kind, bool check_input) {
    rng_seed(101 + c->layer + 7 * c->T + 13 * (kind + 1));
    nt_model *m = setup_case(c);
    const nt_config *cf = &m->cfg;
    int D = cf->dim, T = c->T;
    size_t nd = (size_t)T * D;
    nt_err err = {0};
    nt_block_grad *g = NULL;
    cr_assert_eq(nt_block_grad_init(&g, m, T, &err), 0, "%s", err.msg);
    float *x = make_input(m, T, c->shared), *y = malloc(nd * sizeof(float)), *dy = malloc(nd * sizeof(float));
    float *dx = malloc(nd * sizeof(float)), *r = NULL, *yf = NULL;
    fd_ctx f = {m, g, c->layer, T, x, y, NULL, NT_LOSS_MSE, NULL, 0.0, NULL, false, 0, 0};
    char label[160];
    snprintf(label, sizeof(label), "%s block %d T %d%s%s, loss %s", c->spec, c->layer, T, c->rpn ? " rpn" : "",
             c->act >= 0 ? " act forced" : "", kind < 0 ? "sum r*y" : nt_loss_name((nt_loss_kind)kind));
    if (kind < 0) {
        r = malloc(nd * sizeof(float));
        fill_normal(r, nd, 1.0);
        f.r = r;
    } else {
        // target: this block as loaded; then "quantize" it: perturb every linear weight by ~5% of its sd
        yf = malloc(nd * sizeof(float));
        cr_assert_eq(nt_block_train_forward(m, g, c->layer, x, T, yf, &err), 0, "%s", err.msg);
        nt_layer *ly = &m->layers[c->layer];
        for (int i = 0; i < 7; i++) {
            nt_linear *lin = layer_linears(ly, i);
            if (!lin->w) continue;
            size_t n = (size_t)lin->out * lin->in;
            double ss = 0.0;
            for (size_t j = 0; j < n; j++) ss += (double)lin->w[j] * lin->w[j];
            double sd = sqrt(ss / n);
            for (size_t j = 0; j < n; j++) lin->w[j] += (float)(0.05 * sd * rng_normal());
        }
        f.kind = (nt_loss_kind)kind;
        f.yf = yf;
    }

    // analytic
    nt_layer *ly = &m->layers[c->layer];
    float *gbuf = calloc((size_t)4 * D, sizeof(float));
    nt_norm_grads gr = {gbuf, cf->rms_norm ? NULL : gbuf + D, gbuf + 2 * D, cf->rms_norm ? NULL : gbuf + 3 * D};
    double L0 = fd_loss(&f, dy);
    cr_assert_eq(nt_block_backward(m, g, dy, &gr, dx, &err), 0, "%s", err.msg);
    double *dist_sign = NULL;
    if (kind == NT_LOSS_DIST) {
        dist_sign = malloc((size_t)4 * D * sizeof(double));
        double *st = dist_sign + 2 * D, *sq = malloc((size_t)2 * D * sizeof(double));
        col_stats(yf, T, D, st, st + D);
        col_stats(y, T, D, sq, sq + D);
        for (int i = 0; i < 2 * D; i++) dist_sign[i] = st[i] > sq[i] ? 1.0 : (st[i] < sq[i] ? -1.0 : 0.0);
        free(sq);
        f.dist_sign = dist_sign;
        double Lf = dist_frozen(&f, y);
        // the same double sums in another order (per channel here, row by row there): rtol 1e-9, atol 0
        TU_EXPECT_CLOSE(Lf, L0, 0.0, 1e-9, "%s: frozen-sign dist against dist", label);
    }
    // the backward without dx must give the same parameter gradients
    float *gbuf2 = calloc((size_t)4 * D, sizeof(float));
    nt_norm_grads gr2 = {gbuf2, gbuf2 + D, gbuf2 + 2 * D, gbuf2 + 3 * D};
    cr_assert_eq(nt_block_backward(m, g, dy, &gr2, NULL, &err), 0, "%s", err.msg);
    for (int i = 0; i < 4 * D; i++)
        if (!cf->rms_norm || (i / D) % 2 == 0)
            cr_expect_eq(gbuf[i], gbuf2[i], "%s: norm grad %d differs with/without dx", label, i);

    f.relu = cf->act == NT_ACT_RELU;
    f.h = f.relu ? FD_H_RELU : FD_H;
    int want = c->shared ? 12 : 32, *idx = malloc((size_t)(want > 16 ? want : 16) * sizeof(int));
    int n = sample_idx(idx, D, want);
    compare_fd(&f, "attn_norm.w", label, ly->attn_norm.w, gr.attn_w, idx, n);
    compare_fd(&f, "mlp_norm.w", label, ly->mlp_norm.w, gr.mlp_w, idx, n);
    if (!cf->rms_norm) {
        cr_assert(ly->attn_norm.b && ly->mlp_norm.b, "%s: LayerNorm without bias", label);
        compare_fd(&f, "attn_norm.b", label, ly->attn_norm.b, gr.attn_b, idx, n);
        compare_fd(&f, "mlp_norm.b", label, ly->mlp_norm.b, gr.mlp_b, idx, n);
    }
    int checked = (cf->rms_norm ? 2 : 4) * n;
    cr_expect(f.skipped <= checked * 3 / 4, "%s: %d of %d coordinates skipped at kinks", label, f.skipped, checked);
    if (check_input) {
        int ni = sample_idx(idx, (int)nd, 16);
        compare_fd(&f, "x", label, x, dx, idx, ni);
    }
    nt_block_grad_free(&g);
    nt_model_free(&m);
    free(x);
    free(y);
    free(dy);
    free(dx);
    free(r);
    free(yf);
    free(gbuf);
    free(gbuf2);
    free(dist_sign);
    free(idx);
}

Test(block_grad, norm_grads_fixtures) {
    for (int i = 0; i < N_FIXTURE_CASES; i++) check_case_grads(&cases[i], -1, true);
}

Test(block_grad, norm_grads_shared_tiny_llama) { check_case_grads(&cases[N_FIXTURE_CASES], -1, true); }

Test(block_grad, norm_grads_through_losses) {
    static const int pick[] = {0, 1, 3, 6, 7}; // opt, opt post-LN, llama, bloom, bloom rpn
    for (int k = 0; k < NT_LOSS_COUNT; k++)
        for (size_t i = 0; i < sizeof(pick) / sizeof(pick[0]); i++) check_case_grads(&cases[pick[i]], k, false);
    check_case_grads(&cases[N_FIXTURE_CASES], NT_LOSS_MEANSTD, false);
    check_case_grads(&cases[N_FIXTURE_CASES], NT_LOSS_DIST, false);
}

Test(block_grad, errors) {
    nt_model *m = load("tiny-random-llama");
    nt_err err = {0};
    nt_block_grad *g = NULL;
    cr_expect_eq(nt_block_grad_init(&g, m, 0, &err), -1);
    cr_expect_eq(nt_block_grad_init(&g, m, m->cfg.max_pos + 1, &err), -1);
    cr_expect(strstr(err.msg, "tokens") != NULL, "%s", err.msg);
    cr_assert_eq(nt_block_grad_init(&g, m, 8, &err), 0, "%s", err.msg);
    float x[8 * 32] = {0}, y[8 * 32];
    cr_expect_eq(nt_block_backward(m, g, x, NULL, NULL, &err), -1, "backward before any forward");
    cr_expect_eq(nt_block_train_forward(m, g, 0, x, 9, y, &err), -1);
    cr_expect_eq(nt_block_train_forward(m, g, 2, x, 8, y, &err), -1);
    cr_expect(strstr(err.msg, "block 2") != NULL, "%s", err.msg);
    nt_block_grad_free(&g);
    nt_block_grad_free(&g); // idempotent
    cr_expect_null(g);
    nt_model_free(&m);
}

// ----------------------------------------------------------------------------
// losses

Test(nt_loss, gradients_by_finite_differences) {
    const int T = 16, C = 8;
    float yf[16 * 8], yq[16 * 8], d[16 * 8];
    rng_seed(5);
    for (int i = 0; i < T * C; i++) {
        yf[i] = (float)(rng_normal() * (1.0 + (i % C) * 0.2) + 0.3 * (i % C));
        yq[i] = (float)(rng_normal() * (1.1 + (i % C) * 0.15) + 0.2 * (i % C) - 0.1);
    }
    nt_err err = {0};
    for (int k = 0; k < NT_LOSS_COUNT; k++) {
        double L = 0.0;
        cr_assert_eq(nt_loss_eval((nt_loss_kind)k, yf, yq, T, C, &L, d, &err), 0, "%s", err.msg);
        cr_expect(L > 0.0 && isfinite(L), "%s: loss %g", nt_loss_name((nt_loss_kind)k), L);
        double Lnog = 0.0;
        cr_assert_eq(nt_loss_eval((nt_loss_kind)k, yf, yq, T, C, &Lnog, NULL, &err), 0);
        cr_expect_eq(L, Lnog);
        for (int i = 0; i < T * C; i++) {
            float p0 = yq[i], pp = p0 + 1e-3f, pm = p0 - 1e-3f;
            double lp, lm;
            yq[i] = pp;
            nt_loss_eval((nt_loss_kind)k, yf, yq, T, C, &lp, NULL, &err);
            yq[i] = pm;
            nt_loss_eval((nt_loss_kind)k, yf, yq, T, C, &lm, NULL, &err);
            yq[i] = p0;
            double num = (lp - lm) / ((double)pp - pm);
            // losses in double, so no noise: rtol 1e-4 for the central difference's O(h^2) truncation (the
            // square roots of mean-std), atol 1e-6 for the analytic gradient's rounding to float near 0
            TU_EXPECT_CLOSE(d[i], num, 1e-6, 1e-4, "%s: d/dyq[%d] analytic vs numerical", nt_loss_name((nt_loss_kind)k),
                            i);
        }
    }
    // identical outputs: zero loss, zero gradient
    for (int k = 0; k < NT_LOSS_COUNT; k++) {
        double L = 1.0;
        cr_assert_eq(nt_loss_eval((nt_loss_kind)k, yf, yf, T, C, &L, d, &err), 0);
        cr_expect_eq(L, 0.0, "%s", nt_loss_name((nt_loss_kind)k));
        for (int i = 0; i < T * C; i++) cr_expect_eq(d[i], 0.0f);
    }
}

Test(nt_loss, values_by_hand) {
    // one channel, T = 2: y_f = (0, 2): mu 1, unbiased var 2; y_q = (1, 1): mu 1, var 0
    float yf[2] = {0.0f, 2.0f}, yq[2] = {1.0f, 1.0f};
    double L;
    nt_err err = {0};
    cr_assert_eq(nt_loss_eval(NT_LOSS_DIST, yf, yq, 2, 1, &L, NULL, &err), 0);
    // sums of two values in double: exact to an ulp or two (atol 1e-12, rtol 0)
    TU_EXPECT_CLOSE(L, 2.0, 1e-12, 0.0, "dist");
    cr_assert_eq(nt_loss_eval(NT_LOSS_MEANSTD, yf, yq, 2, 1, &L, NULL, &err), 0);
    double ds = sqrt(2.0 + 1e-6) - sqrt(1e-6);
    TU_EXPECT_CLOSE(L, ds * ds, 1e-12, 0.0, "mean-std");
    cr_assert_eq(nt_loss_eval(NT_LOSS_MEANSTD_SSE, yf, yq, 2, 1, &L, NULL, &err), 0);
    TU_EXPECT_CLOSE(L, ds * ds + 2.0, 1e-12, 0.0, "mean-std-sse");
    cr_assert_eq(nt_loss_eval(NT_LOSS_MSE, yf, yq, 2, 1, &L, NULL, &err), 0);
    TU_EXPECT_CLOSE(L, 1.0, 1e-12, 0.0, "mse");
    cr_expect_eq(nt_loss_eval(NT_LOSS_DIST, yf, yq, 1, 2, &L, NULL, &err), -1, "T = 1 has no variance");
    cr_expect(strstr(err.msg, "2 tokens") != NULL, "%s", err.msg);
    nt_loss_kind k;
    for (int i = 0; i < NT_LOSS_COUNT; i++) {
        cr_expect_eq(nt_loss_parse(nt_loss_name((nt_loss_kind)i), &k, &err), 0);
        cr_expect_eq((int)k, i);
    }
    cr_expect_eq(nt_loss_parse("l2", &k, &err), -1);
    cr_expect(strstr(err.msg, "mean-std") != NULL, "%s", err.msg);
}

// ----------------------------------------------------------------------------
// Adam

Test(adam, matches_torch_three_steps) {
    // Expected values from torch 1.13 (torch.optim.Adam, lr 1e-2, defaults otherwise):
    // /work/venv/bin/python -c "import torch
    // p = torch.tensor([0.5, -1.25, 2.0, 0.0, 1e-3], requires_grad=True); opt = torch.optim.Adam([p], lr=1e-2)
    // for g in [[0.1, -0.2, 3.0, 0.0, 1e-6], [-0.05, 0.4, 2.5, 1e-4, -1e-6], [0.2, 0.1, -1.0, -2e-4, 5e-7]]:
    //     p.grad = torch.tensor(g); opt.step(); print(['%.9e' % v for v in p.tolist()])"
    static const float grads[3][5] = {{0.1f, -0.2f, 3.0f, 0.0f, 1e-6f},
                                      {-0.05f, 0.4f, 2.5f, 1e-4f, -1e-6f},
                                      {0.2f, 0.1f, -1.0f, -2e-4f, 5e-7f}};
    static const double expect[3][5] = {
        {4.900000095e-01, -1.240000010e+00, 1.990000010e+00, 0.000000000e+00, -8.900988847e-03},
        {4.873366356e-01, -1.243661046e+00, 1.980088234e+00, -7.440316491e-03, -8.379884064e-03},
        {4.807555079e-01, -1.247817516e+00, 1.974252224e+00, -4.297697917e-03, -1.010719035e-02}};
    float p[5] = {0.5f, -1.25f, 2.0f, 0.0f, 1e-3f};
    nt_adam *a = NULL;
    nt_err err = {0};
    cr_assert_eq(nt_adam_init(&a, 5, 1e-2f, &err), 0, "%s", err.msg);
    for (int s = 0; s < 3; s++) {
        nt_adam_step(a, p, grads[s]);
        for (int i = 0; i < 5; i++)
            // fp32 both, torch's op order differs (bias corrections, sqrt): rtol 1e-6 (~16 ulps), atol 1e-7 for
            // the parameters near 0
            TU_EXPECT_CLOSE(p[i], expect[s][i], 1e-7, 1e-6, "step %d param %d against torch", s + 1, i);
    }
    cr_expect_eq(a->t, 3);
    nt_adam_reset(a);
    cr_expect_eq(a->t, 0);
    cr_expect_eq(a->m[2], 0.0f);
    nt_adam_free(&a);
    nt_adam_free(&a);
    cr_expect_null(a);
    cr_expect_eq(nt_adam_init(&a, 0, 1e-2f, &err), -1);
    cr_expect_eq(nt_adam_init(&a, 3, -1.0f, &err), -1);
    cr_expect_null(a);
}
