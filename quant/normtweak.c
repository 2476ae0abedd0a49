// normtweak.c: norm tweaking, top to bottom (normtweak.h): the losses, Adam, a block's norm parameters, the
// depth-scaled learning rate, the grid over learning rates scored on held-out calibration samples, one block.
#define _POSIX_C_SOURCE 200809L
#include "normtweak.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "block_grad.h"

// ------------------------------------------------------------------------------------------------ the losses
// Column statistics are accumulated row by row in double (rows are contiguous), two passes for the variance.
#define NT_LOSS_SD_EPS 1e-6 // the authors' sqrt(var + 1e-6)

static const char *const loss_names[NT_LOSS_COUNT] = {"dist", "mean-std", "mean-std-sse", "mse"};

const char *nt_loss_name(nt_loss_kind kind) {
    return (kind >= 0 && kind < NT_LOSS_COUNT) ? loss_names[kind] : "?";
}

int nt_loss_parse(const char *name, nt_loss_kind *kind, nt_err *err) {
    for (int k = 0; k < NT_LOSS_COUNT; k++)
        if (name && strcmp(name, loss_names[k]) == 0) {
            *kind = (nt_loss_kind)k;
            return 0;
        }
    return nt_fail(err, "unknown loss '%s' (one of: dist, mean-std, mean-std-sse, mse)", name ? name : "");
}

// Per-column mean and unbiased variance of y (T, C) into mu, var (C).
static void column_stats(const float *y, int T, int C, double *mu, double *var) {
    for (int c = 0; c < C; c++) mu[c] = var[c] = 0.0;
    for (int t = 0; t < T; t++)
        for (int c = 0; c < C; c++) mu[c] += y[(size_t)t * C + c];
    for (int c = 0; c < C; c++) mu[c] /= T;
    for (int t = 0; t < T; t++)
        for (int c = 0; c < C; c++) {
            double d = y[(size_t)t * C + c] - mu[c];
            var[c] += d * d;
        }
    for (int c = 0; c < C; c++) var[c] /= (T - 1);
}

static double sign(double x) { return x > 0.0 ? 1.0 : (x < 0.0 ? -1.0 : 0.0); }

int nt_loss_eval(nt_loss_kind kind, const float *yf, const float *yq, int T, int C, double *loss, float *dyq,
                 nt_err *err) {
    if (kind < 0 || kind >= NT_LOSS_COUNT) return nt_fail(err, "loss: unknown kind %d", (int)kind);
    if (T <= 0 || C <= 0) return nt_fail(err, "loss: empty output (%d tokens x %d channels)", T, C);
    size_t n = (size_t)T * C;
    if (kind == NT_LOSS_MSE) {
        double s = 0.0, k = -2.0 / (double)n;
        for (size_t i = 0; i < n; i++) {
            double d = (double)yf[i] - yq[i];
            s += d * d;
            if (dyq) dyq[i] = (float)(k * d);
        }
        *loss = s / (double)n;
        return 0;
    }
    if (T < 2) return nt_fail(err, "loss %s: needs at least 2 tokens per sample for a variance, got %d",
                              nt_loss_name(kind), T);
    double *buf = malloc((size_t)6 * C * sizeof(double));
    if (!buf) return nt_fail(err, "loss: out of memory for %d channels", C);
    double *muf = buf, *varf = buf + C, *muq = buf + 2 * C, *varq = buf + 3 * C;
    double *a = buf + 4 * C, *b = buf + 5 * C; // dL/dy_q[t][c] = a[c] + b[c] * (y_q[t][c] - mu_q[c])
    column_stats(yf, T, C, muf, varf);
    column_stats(yq, T, C, muq, varq);
    double L = 0.0;
    for (int c = 0; c < C; c++) {
        double dm = muf[c] - muq[c], dv = varf[c] - varq[c];
        if (kind == NT_LOSS_DIST) {
            // d mu_q / dy = 1/T;  d var_q / dy = 2 (y - mu_q) / (T - 1)
            L += (fabs(dm) + fabs(dv)) / C;
            a[c] = -sign(dm) / ((double)C * T);
            b[c] = -sign(dv) * 2.0 / ((double)C * (T - 1));
        } else {
            double sf = sqrt(varf[c] + NT_LOSS_SD_EPS), sq = sqrt(varq[c] + NT_LOSS_SD_EPS), ds = sf - sq;
            // d sd_q / dy = (y - mu_q) / ((T - 1) sd_q)
            L += dm * dm + ds * ds;
            a[c] = -2.0 * dm / T;
            b[c] = -2.0 * ds / ((T - 1) * sq);
        }
    }
    bool sse = kind == NT_LOSS_MEANSTD_SSE;
    for (int t = 0; t < T; t++)
        for (int c = 0; c < C; c++) {
            size_t i = (size_t)t * C + c;
            double d = (double)yf[i] - yq[i];
            if (sse) L += d * d;
            if (dyq) dyq[i] = (float)(a[c] + b[c] * ((double)yq[i] - muq[c]) - (sse ? 2.0 * d : 0.0));
        }
    free(buf);
    *loss = L;
    return 0;
}

// ---------------------------------------------------------------------------------------------------- Adam
// torch.optim.Adam's update. Moments in fp32 like torch's state; the bias corrections are computed in double as
// Python floats are.
int nt_adam_init(nt_adam **out, int n, float lr, nt_err *err) {
    *out = NULL;
    if (n <= 0) return nt_fail(err, "adam: %d parameters", n);
    if (!(lr >= 0.0f)) return nt_fail(err, "adam: learning rate %g must be >= 0", (double)lr);
    nt_adam *a = calloc(1, sizeof(nt_adam));
    if (!a) return nt_fail(err, "adam: out of memory");
    a->n = n;
    a->lr = lr;
    a->beta1 = 0.9f;
    a->beta2 = 0.999f;
    a->eps = 1e-8f;
    a->m = calloc((size_t)n, sizeof(float));
    a->v = calloc((size_t)n, sizeof(float));
    if (!a->m || !a->v) {
        nt_adam_free(&a);
        return nt_fail(err, "adam: out of memory for %d parameters", n);
    }
    *out = a;
    return 0;
}

void nt_adam_free(nt_adam **ap) {
    nt_adam *a = ap ? *ap : NULL;
    if (!a) return;
    free(a->m);
    free(a->v);
    free(a);
    *ap = NULL;
}

void nt_adam_reset(nt_adam *a) {
    a->t = 0;
    memset(a->m, 0, (size_t)a->n * sizeof(float));
    memset(a->v, 0, (size_t)a->n * sizeof(float));
}

void nt_adam_step(nt_adam *a, float *params, const float *grads) {
    a->t++;
    // torch: beta ** step with the betas as Python floats (the fp32 values widened, as here)
    double bc1 = 1.0 - pow((double)a->beta1, (double)a->t), bc2 = 1.0 - pow((double)a->beta2, (double)a->t);
    float step = (float)((double)a->lr / bc1), bc2_sqrt = (float)sqrt(bc2);
    float b1 = a->beta1, b2 = a->beta2, eps = a->eps;
    for (int i = 0; i < a->n; i++) {
        float g = grads[i];
        a->m[i] += (1.0f - b1) * (g - a->m[i]); // torch: exp_avg.lerp_(grad, 1 - beta1)
        a->v[i] = a->v[i] * b2 + (1.0f - b2) * g * g;
        float denom = sqrtf(a->v[i]) / bc2_sqrt + eps;
        params[i] -= step * (a->m[i] / denom);
    }
}

// ------------------------------------------------------------------------------------ a block's norm parameters
// The norm vectors of a block as one flat parameter vector: attn w, [attn b], mlp w, [mlp b].
typedef struct {
    float *vec[4];
    int n_vec, dim;
} norm_params;

static norm_params block_norms(nt_layer *ly, int dim) {
    norm_params p = {.dim = dim};
    float *all[4] = {ly->attn_norm.w, ly->attn_norm.b, ly->mlp_norm.w, ly->mlp_norm.b};
    for (int i = 0; i < 4; i++)
        if (all[i]) p.vec[p.n_vec++] = all[i];
    return p;
}
static void params_get(const norm_params *p, float *flat) {
    for (int i = 0; i < p->n_vec; i++) memcpy(flat + (size_t)i * p->dim, p->vec[i], (size_t)p->dim * sizeof(float));
}
static void params_set(const norm_params *p, const float *flat) {
    for (int i = 0; i < p->n_vec; i++) memcpy(p->vec[i], flat + (size_t)i * p->dim, (size_t)p->dim * sizeof(float));
}

typedef struct {
    nt_block_grad *g;
    float *yq, *dy; // (T, dim)
    float *P, *P0, *G; // (n_params): current, post-quantization start, gradient
} tweak_ws;

// ------------------------------------------------------------------------------------------- the learning rate
float nt_normtweak_lr_scale(const nt_quant_opts *o, const nt_config *c, int l) {
    float depth = o->nt_lr_depth >= 0.0f ? o->nt_lr_depth : (c->arch == NT_ARCH_BLOOM ? 10.0f : 100.0f);
    return 1.0f + (float)l * depth / (float)c->n_layers;
}

// ------------------------------------------------------------------------------------------------ one block
// Mean loss of the quantized block l (current norms) against the float targets over samples [a, b). The block's
// outputs come from yq (N, T, dim) when it is not NULL, else from a forward pass. When out is not NULL, every sample
// 0..N-1 goes through the block and its output lands in out (which may alias x: a sample is read before it is
// overwritten); the loss still covers [a, b) only.
static int tweak_score(const nt_model *m, tweak_ws *w, int l, const float *x, const float *yf, int a, int b, int N,
                       int T, const nt_quant_opts *o, const float *yq, float *out, double *mean, nt_err *err) {
    size_t sz = (size_t)T * m->cfg.dim;
    double sum = 0.0;
    for (int j = out ? 0 : a; j < (out ? N : b); j++) {
        const float *y = yq ? yq + (size_t)j * sz : w->yq;
        if (!yq && nt_block_train_forward(m, w->g, l, x + (size_t)j * sz, T, w->yq, err)) return -1;
        if (j >= a && j < b) {
            double loss;
            if (nt_loss_eval(o->nt_loss, yf + (size_t)j * sz, y, T, m->cfg.dim, &loss, NULL, err)) return -1;
            sum += loss;
        }
        if (out) memcpy(out + (size_t)j * sz, y, sz * sizeof(float));
    }
    *mean = b > a ? sum / (b - a) : 0.0;
    return 0;
}

// Adam on the block's norm parameters over samples [0, n_train) from the post-quantization start, at lr.
static int tweak_run(nt_model *m, tweak_ws *w, const norm_params *np, int l, const float *x, const float *yf,
                     int n_train, int T, float lr, const nt_quant_opts *o, nt_err *err) {
    int n = np->n_vec * np->dim, D = m->cfg.dim;
    size_t sz = (size_t)T * D;
    memcpy(w->P, w->P0, (size_t)n * sizeof(float));
    params_set(np, w->P);
    if (lr == 0.0f) return 0;
    nt_adam *adam = NULL;
    if (nt_adam_init(&adam, n, lr, err)) return -1;
    int rc = 0;
    for (int it = 0; it < o->nt_iters && rc == 0; it++)
        for (int j0 = 0; j0 < n_train && rc == 0; j0 += o->nt_batch) {
            memset(w->G, 0, (size_t)n * sizeof(float));
            // gradient pointers into G in the same order as params_get packs P
            nt_layer *ly = &m->layers[l];
            float *gp[4] = {NULL, NULL, NULL, NULL};
            int k = 0;
            if (ly->attn_norm.w) gp[0] = w->G + (size_t)(k++) * D;
            if (ly->attn_norm.b) gp[1] = w->G + (size_t)(k++) * D;
            if (ly->mlp_norm.w) gp[2] = w->G + (size_t)(k++) * D;
            if (ly->mlp_norm.b) gp[3] = w->G + (size_t)(k++) * D;
            nt_norm_grads grads = {.attn_w = gp[0], .attn_b = gp[1], .mlp_w = gp[2], .mlp_b = gp[3]};
            for (int j = j0; j < j0 + o->nt_batch && j < n_train && rc == 0; j++) {
                double loss;
                rc = nt_block_train_forward(m, w->g, l, x + (size_t)j * sz, T, w->yq, err) ||
                     nt_loss_eval(o->nt_loss, yf + (size_t)j * sz, w->yq, T, D, &loss, w->dy, err) ||
                     nt_block_backward(m, w->g, w->dy, &grads, NULL, err);
            }
            if (rc) break;
            nt_adam_step(adam, w->P, w->G);
            params_set(np, w->P);
        }
    nt_adam_free(&adam);
    return rc ? -1 : 0;
}

// Tweaks on the first N - holdout samples. With an lr grid the held-out samples are split: the first half chooses
// the lr, the second half scores the choice (the stats' before/after), so the reported score is measured on
// samples that neither the tweaking nor the choice saw (a minimum over the grid taken on the same samples it
// reports would be biased low, and could never come out worse than not tweaking).
int nt_normtweak_block(nt_model *m, int l, const float *x, const float *yf, int N, int T, const nt_quant_opts *o,
                       const float *yq0, float *out, nt_normtweak_block_stats *st, nt_err *err) {
    const nt_config *c = &m->cfg;
    nt_layer *ly = &m->layers[l];
    norm_params np = block_norms(ly, c->dim);
    int n = np.n_vec * c->dim;
    int holdout = o->nt_holdout >= 0 ? o->nt_holdout : (o->n_lr_grid > 0 ? (N / 8 > 2 ? N / 8 : 2) : 0);
    if (holdout >= N) return nt_fail(err, "norm tweaking: %d held-out samples leave none of %d to tweak on", holdout, N);
    if (o->n_lr_grid > 0 && holdout < 2)
        return nt_fail(err, "norm tweaking: an lr grid needs at least 2 held-out samples (to choose the lr on, and to "
                            "score the choice on others), got %d", holdout);
    int n_train = N - holdout;
    float scale = nt_normtweak_lr_scale(o, c, l);
    tweak_ws w = {0};
    int rc = -1;
    if (nt_block_grad_init(&w.g, m, T, err)) return -1;
    w.yq = malloc((size_t)T * c->dim * sizeof(float));
    w.dy = malloc((size_t)T * c->dim * sizeof(float));
    w.P = malloc((size_t)n * sizeof(float));
    w.P0 = malloc((size_t)n * sizeof(float));
    w.G = malloc((size_t)n * sizeof(float));
    if (!w.yq || !w.dy || !w.P || !w.P0 || !w.G) {
        nt_fail(err, "out of memory for norm tweaking");
        goto done;
    }
    params_get(&np, w.P0);
    // the samples that score: [sa, sb) (held-out ones, else all); with a grid, [n_train, sa) choose the lr
    int sa = o->n_lr_grid > 0 ? n_train + holdout / 2 : (holdout ? n_train : 0), sb = N;
    double before, after, best_loss = 0.0;
    if (tweak_score(m, &w, l, x, yf, sa, sb, N, T, o, yq0, NULL, &before, err)) goto done;
    float best_lr = o->nt_lr * scale;
    if (o->n_lr_grid > 0) { // per-block grid search on the choosing samples, "no tweak" (lr 0) included
        best_lr = 0.0f;
        if (tweak_score(m, &w, l, x, yf, n_train, sa, N, T, o, yq0, NULL, &best_loss, err)) goto done;
        for (int i = 0; i < o->n_lr_grid; i++) {
            float lr = o->nt_lr_grid[i] * scale;
            double loss;
            if (tweak_run(m, &w, &np, l, x, yf, n_train, T, lr, o, err) ||
                tweak_score(m, &w, l, x, yf, n_train, sa, N, T, o, NULL, NULL, &loss, err))
                goto done;
            if (loss < best_loss) best_loss = loss, best_lr = lr;
        }
    }
    // lr 0 leaves the block as quantized: its outputs are yq0 when the caller gave them
    if (tweak_run(m, &w, &np, l, x, yf, n_train, T, best_lr, o, err) ||
        tweak_score(m, &w, l, x, yf, sa, sb, N, T, o, best_lr == 0.0f ? yq0 : NULL, out, &after, err))
        goto done;
    *st = (nt_normtweak_block_stats){.lr = best_lr, .loss_before = before, .loss_after = after, .n_train = n_train,
                                     .n_holdout = holdout};
    rc = 0;
done:
    nt_block_grad_free(&w.g);
    free(w.yq);
    free(w.dy);
    free(w.P);
    free(w.P0);
    free(w.G);
    return rc;
}


void nt_normtweak_describe(const nt_quant_opts *o, char *buf, size_t cap) {
    nt_opts_append(buf, cap, "loss=%s", nt_loss_name(o->nt_loss));
    if (o->n_lr_grid > 0) {
        char grid[128] = "";
        for (int i = 0; i < o->n_lr_grid; i++)
            snprintf(grid + strlen(grid), sizeof(grid) - strlen(grid), "%s%g", i ? "/" : "", o->nt_lr_grid[i]);
        nt_opts_append(buf, cap, "lr_grid=%s", grid);
    } else {
        nt_opts_append(buf, cap, "lr=%g", o->nt_lr);
    }
    nt_opts_append(buf, cap, "iters=%d", o->nt_iters);
    if (o->nt_batch != 1) nt_opts_append(buf, cap, "batch=%d", o->nt_batch);
    if (o->nt_lr_depth >= 0.0f) nt_opts_append(buf, cap, "lr_depth=%g", o->nt_lr_depth);
}
