// block_grad.c: training forward with saved activations and backward of one transformer block down to
// its norm parameters (see block_grad.h). The forward mirrors nt_block_forward op for op (same fp32
// formulas and sgemm shapes; the linear, norm and activation are transformer.c's own) so the tweaked
// block seen in training is the block seen in evaluation.
// Reads top to bottom: workspace, small ops with their backwards, attention, the block forward, the block
// backward.
#include <cblas.h>
#include <math.h>
#include <omp.h>
#include <string.h>

#include "attention.h"
#include "block_grad.h"

struct nt_block_grad {
    int max_T;
    int T, layer;            // of the last training forward; layer -1 before the first
    int D, F, H, KV, hd, qd, kvd;
    // saved by the forward
    float *xhat1, *rstd1;    // (T, D), (T): attn norm's (x - mean) * rstd and rstd
    float *xhat2, *rstd2;    // (T, D), (T): same for the MLP norm
    float *q, *k, *v;        // (T, qd), (T, kvd), (T, kvd): projections, q and k after RoPE
    float *smax, *sinv;      // (H, T): softmax row max and 1/sum, to recompute probabilities in backward
    float *u;                // (T, F): up projection output (the activation's input when not gated)
    float *gt;               // (T, F): gate projection output (gated MLPs only)
    // scratch, shared by forward and backward
    float *xn;               // (T, D): a norm's output / backward: gradient at a norm's output
    float *res;              // (T, D): sublayer output / backward: gradient of the residual stream
    float *att;              // (T, qd): attention output / backward: its gradient
    float *dq, *dk, *dv;     // (T, qd), (T, kvd), (T, kvd)
    float *h1, *h2;          // (T, F): MLP hidden / backward: its gradients
    float *P, *dP;           // (T, T): one head's probabilities and their gradient (lower triangle, by query blocks)
    float *scratch;          // the forward attention kernel's scratch (attention.h), for scratch_threads threads
    int scratch_threads;
    float *rope_cos, *rope_sin; // (max_T, hd / 2), LLaMA only
    size_t bytes;
};

// ----------------------------------------------------------------------------
// workspace

static float *ws_alloc(nt_block_grad *g, size_t count, bool *ok) {
    float *p = malloc(count * sizeof(float));
    if (!p) *ok = false;
    g->bytes += count * sizeof(float);
    return p;
}

int nt_block_grad_init(nt_block_grad **out, const nt_model *m, int max_T, nt_err *err) {
    const nt_config *c = &m->cfg;
    *out = NULL;
    if (max_T <= 0 || max_T > c->max_pos)
        return nt_fail(err, "block backward: %d tokens per sample outside 1..%d (the model's context)", max_T,
                       c->max_pos);
    nt_block_grad *g = calloc(1, sizeof(nt_block_grad));
    if (!g) return nt_fail(err, "block backward: out of memory");
    g->max_T = max_T;
    g->layer = -1;
    g->D = c->dim;
    g->F = c->ffn_dim;
    g->H = c->n_heads;
    g->KV = c->n_kv_heads;
    g->hd = c->head_dim;
    g->qd = g->H * g->hd;
    g->kvd = g->KV * g->hd;
    size_t T = (size_t)max_T, D = (size_t)g->D, F = (size_t)g->F;
    bool gated = c->arch == NT_ARCH_LLAMA, ok = true;
    g->xhat1 = ws_alloc(g, T * D, &ok);
    g->xhat2 = ws_alloc(g, T * D, &ok);
    g->rstd1 = ws_alloc(g, T, &ok);
    g->rstd2 = ws_alloc(g, T, &ok);
    g->q = ws_alloc(g, T * g->qd, &ok);
    g->k = ws_alloc(g, T * g->kvd, &ok);
    g->v = ws_alloc(g, T * g->kvd, &ok);
    g->smax = ws_alloc(g, (size_t)g->H * T, &ok);
    g->sinv = ws_alloc(g, (size_t)g->H * T, &ok);
    g->u = ws_alloc(g, T * F, &ok);
    if (gated) g->gt = ws_alloc(g, T * F, &ok);
    g->xn = ws_alloc(g, T * D, &ok);
    g->res = ws_alloc(g, T * D, &ok);
    g->att = ws_alloc(g, T * g->qd, &ok);
    g->dq = ws_alloc(g, T * g->qd, &ok);
    g->dk = ws_alloc(g, T * g->kvd, &ok);
    g->dv = ws_alloc(g, T * g->kvd, &ok);
    g->h1 = ws_alloc(g, T * F, &ok);
    g->h2 = ws_alloc(g, T * F, &ok);
    g->P = ws_alloc(g, T * T, &ok);
    g->dP = ws_alloc(g, T * T, &ok);
    g->scratch_threads = omp_get_max_threads();
    g->scratch = ws_alloc(g, nt_attn_scratch_floats(max_T, g->scratch_threads), &ok);
    if (ok && c->arch == NT_ARCH_LLAMA) {
        int half = g->hd / 2;
        g->rope_cos = ws_alloc(g, T * half, &ok);
        g->rope_sin = ws_alloc(g, T * half, &ok);
        // exactly as nt_run_init computes them, so the forward matches nt_block_forward bit for bit
        for (int i = 0; ok && i < half; i++) {
            float inv = 1.0f / powf(c->rope_theta, (float)(2 * i) / (float)g->hd); // as transformer.c: fp32 steps
            for (int p = 0; p < max_T; p++) {
                float ang = (float)p * inv;
                g->rope_cos[(size_t)p * half + i] = cosf(ang);
                g->rope_sin[(size_t)p * half + i] = sinf(ang);
            }
        }
    }
    if (!ok) {
        size_t mb = g->bytes >> 20;
        nt_block_grad_free(&g);
        return nt_fail(err, "block backward: out of memory for %d tokens per sample (%zu MiB)", max_T, mb);
    }
    *out = g;
    return 0;
}

void nt_block_grad_free(nt_block_grad **gp) {
    nt_block_grad *g = gp ? *gp : NULL;
    if (!g) return;
    float *bufs[] = {g->xhat1, g->xhat2, g->rstd1, g->rstd2, g->q, g->k, g->v, g->smax, g->sinv, g->u, g->gt,
                     g->xn, g->res, g->att, g->dq, g->dk, g->dv, g->h1, g->h2, g->P, g->dP, g->scratch,
                     g->rope_cos, g->rope_sin};
    for (size_t i = 0; i < sizeof(bufs) / sizeof(bufs[0]); i++) free(bufs[i]);
    free(g);
    *gp = NULL;
}

size_t nt_block_grad_bytes(const nt_block_grad *g) { return g ? g->bytes : 0; }

const float *nt_block_grad_mlp_preact(const nt_block_grad *g) { return g->gt ? g->gt : g->u; }

// ----------------------------------------------------------------------------
// small ops and their backwards

// dx (n, in) (= or +=, by beta 0 or 1) dy (n, out) . W: the input gradient of a frozen linear.
static void linear_backward(const nt_linear *l, const float *dy, int n, float *dx, float beta) {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, l->in, l->out, 1.0f, dy, l->out, l->w, l->in, beta, dx,
                l->in);
}

// Backward of y = xhat * w + b, xhat = (x - mean) * rstd (RMSNorm: mean = 0), for dy (n, dim):
//   dw += sum_t dy * xhat, db += sum_t dy (each NULL = not wanted),
//   g = dy * w;  dx = rstd * (g - mean(g) - xhat * mean(g * xhat))   (RMSNorm: without the mean(g) term)
// dx (n, dim) is written, or added to when accumulate (dx may alias dy only when !accumulate); NULL: only
// the parameter gradients.
static void norm_backward(const nt_norm *nm, bool rms, const float *xhat, const float *rstd, const float *dy,
                          int n, int dim, float *dx, bool accumulate, float *dw, float *db) {
    if (dw || db) {
        // column sums in double: T can be thousands of rows
#pragma omp parallel for if ((size_t)n * dim > 65536)
        for (int i = 0; i < dim; i++) {
            double sw = 0.0, sb = 0.0;
            for (int t = 0; t < n; t++) {
                float d = dy[(size_t)t * dim + i];
                sw += (double)d * xhat[(size_t)t * dim + i];
                sb += d;
            }
            if (dw) dw[i] += (float)sw;
            if (db) db[i] += (float)sb;
        }
    }
    if (!dx) return;
#pragma omp parallel for if (n > 1)
    for (int t = 0; t < n; t++) {
        const float *dr = dy + (size_t)t * dim, *hr = xhat + (size_t)t * dim;
        float *xr = dx + (size_t)t * dim;
        double sg = 0.0, sgh = 0.0;
        for (int i = 0; i < dim; i++) {
            double gi = nm->w ? (double)dr[i] * nm->w[i] : (double)dr[i];
            sg += gi;
            sgh += gi * hr[i];
        }
        float mg = rms ? 0.0f : (float)(sg / dim), mgh = (float)(sgh / dim), r = rstd[t];
        for (int i = 0; i < dim; i++) {
            float gi = nm->w ? dr[i] * nm->w[i] : dr[i];
            float v = r * (gi - mg - hr[i] * mgh);
            xr[i] = accumulate ? xr[i] + v : v;
        }
    }
}

// d act(x) / dx
static float act_grad(nt_act a, float x) {
    switch (a) {
    case NT_ACT_RELU: return x > 0.0f ? 1.0f : 0.0f; // torch's choice at 0
    case NT_ACT_SILU: {
        float s = 1.0f / (1.0f + expf(-x));
        return s * (1.0f + x * (1.0f - s));
    }
    case NT_ACT_GELU: // Phi(x) + x phi(x)
        return 0.5f * (1.0f + erff(x * 0.70710678118654752f)) + x * 0.39894228040143268f * expf(-0.5f * x * x);
    case NT_ACT_GELU_TANH: {
        const float k0 = 0.79788456080286536f, k1 = 0.044715f;
        float th = tanhf(k0 * (x + k1 * x * x * x));
        return 0.5f * (1.0f + th) + 0.5f * x * (1.0f - th * th) * k0 * (1.0f + 3.0f * k1 * x * x);
    }
    }
    return 1.0f;
}

// Rotate-half RoPE on (n, n_heads, head_dim) for positions 0..n-1: (a, b) -> (a c - b s, b c + a s).
// The backward applies the transposed rotation: (da, db) -> (da c + db s, db c - da s).
static void rope_apply(const nt_block_grad *g, float *x, int n, int n_heads, bool transpose) {
    int half = g->hd / 2;
    float sg = transpose ? -1.0f : 1.0f;
#pragma omp parallel for if (n > 1)
    for (int t = 0; t < n; t++) {
        const float *cs = g->rope_cos + (size_t)t * half, *sn = g->rope_sin + (size_t)t * half;
        for (int h = 0; h < n_heads; h++) {
            float *v = x + ((size_t)t * n_heads + h) * g->hd;
            for (int i = 0; i < half; i++) {
                float a = v[i], b = v[i + half], s = sg * sn[i];
                v[i] = a * cs[i] - b * s;
                v[i + half] = b * cs[i] + a * s;
            }
        }
    }
}

// ----------------------------------------------------------------------------
// attention: T queries against T keys, causal, through attention.c's kernel (the inference forward's own)

static nt_attn_dims attn_dims(const nt_model *m, const nt_block_grad *g) {
    return (nt_attn_dims){g->H, g->KV, g->hd, m->alibi};
}

static int threads_for(const nt_block_grad *g) {
    return omp_get_max_threads() < g->scratch_threads ? omp_get_max_threads() : g->scratch_threads;
}

// g->att (T, qd) = softmax(q k^T / sqrt(hd) + alibi, causal) v; each row's softmax max and 1/sum saved in
// smax/sinv (H, T) for the backward.
static void attention_forward(const nt_model *m, nt_block_grad *g) {
    nt_attn_dims d = attn_dims(m, g);
    nt_attn_forward(&d, g->q, g->k, g->v, g->T, 1, 0, g->att, g->scratch, threads_for(g), g->smax, g->sinv);
}

// From d att in g->att to dq, dk, dv (q, k before the RoPE backward). Per head h of kv head kh:
//   dP = dO v^T;  dv += P^T dO;  dS = P * (dP - rowsum(P * dP));  dq = scale dS k;  dk += scale dS^T q
// The scale multiplies the scores, ALiBi is a constant: no other terms. GQA heads sharing kh sum into
// its dk, dv. Causal: only the lower triangle exists. The forward's query blocks (NT_ATTN_BLOCK rows) are
// recomputed as the forward made them (the same probabilities, bit for bit, from the saved max and 1/sum)
// into P (T, T) and dS into dP, block row by block row in parallel (each also gives its rows of dq); then the
// key blocks in parallel: dk and dv of the keys of block j sum over the query rows from j's first on (one
// sgemm each; entries above the diagonal are 0). Heads one after the other, so a kv head's sums have one order.
static void attention_backward(const nt_model *m, nt_block_grad *g) {
    int T = g->T, hd = g->hd, group = g->H / g->KV, nb = (T + NT_ATTN_BLOCK - 1) / NT_ATTN_BLOCK;
    float scale = 1.0f / sqrtf((float)hd);
    nt_attn_dims d = attn_dims(m, g);
    int threads = threads_for(g);
    memset(g->dk, 0, (size_t)T * g->kvd * sizeof(float));
    memset(g->dv, 0, (size_t)T * g->kvd * sizeof(float));
    for (int h = 0; h < g->H; h++) {
        size_t ko = (size_t)(h / group) * hd, qo = (size_t)h * hd;
        const float *dO = g->att + qo;
#pragma omp parallel for schedule(dynamic, 1) num_threads(threads) if (nb > 1)
        for (int bi = nb - 1; bi >= 0; bi--) { // query block bi: rows t0..t1-1, keys 0..t1-1
            int t0 = bi * NT_ATTN_BLOCK, t1 = t0 + NT_ATTN_BLOCK < T ? t0 + NT_ATTN_BLOCK : T, rows = t1 - t0;
            float *P = g->P + (size_t)t0 * T, *dS = g->dP + (size_t)t0 * T;
            nt_attn_probs(&d, h, g->q, g->qd, g->k, g->kvd, t0, t1, 0, P, T, false, g->smax + (size_t)h * T,
                          g->sinv + (size_t)h * T);
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, rows, t1, hd, 1.0f, dO + (size_t)t0 * g->qd, g->qd,
                        g->v + ko, g->kvd, 0.0f, dS, T);
            for (int t = t0; t < t1; t++) {
                const float *p = P + (size_t)(t - t0) * T;
                float *ds = dS + (size_t)(t - t0) * T;
                double s = 0.0;
                for (int j = 0; j <= t; j++) s += (double)p[j] * ds[j];
                float sf = (float)s;
                for (int j = 0; j <= t; j++) ds[j] = p[j] * (ds[j] - sf);
                for (int j = t + 1; j < t1; j++) ds[j] = 0.0f;
            }
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, rows, hd, t1, scale, dS, T, g->k + ko, g->kvd, 0.0f,
                        g->dq + (size_t)t0 * g->qd + qo, g->qd);
        }
#pragma omp parallel for schedule(dynamic, 1) num_threads(threads) if (nb > 1)
        for (int bj = 0; bj < nb; bj++) { // key block bj: keys j0..j1-1, seen by the query rows j0..T-1
            int j0 = bj * NT_ATTN_BLOCK, j1 = j0 + NT_ATTN_BLOCK < T ? j0 + NT_ATTN_BLOCK : T;
            const float *P = g->P + (size_t)j0 * T + j0, *dS = g->dP + (size_t)j0 * T + j0;
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, j1 - j0, hd, T - j0, 1.0f, P, T,
                        dO + (size_t)j0 * g->qd, g->qd, 1.0f, g->dv + (size_t)j0 * g->kvd + ko, g->kvd);
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, j1 - j0, hd, T - j0, scale, dS, T,
                        g->q + (size_t)j0 * g->qd + qo, g->qd, 1.0f, g->dk + (size_t)j0 * g->kvd + ko, g->kvd);
        }
    }
}

// ----------------------------------------------------------------------------
// the block: forward

static void add_into(float *y, const float *a, const float *b, size_t count) { // y = a + b (y may alias a)
#pragma omp parallel for if (count > 4096)
    for (size_t i = 0; i < count; i++) y[i] = a[i] + b[i];
}

int nt_block_train_forward(const nt_model *m, nt_block_grad *g, int l, const float *x, int T, float *y,
                           nt_err *err) {
    const nt_config *c = &m->cfg;
    if (l < 0 || l >= c->n_layers) return nt_fail(err, "block forward: block %d of %d", l, c->n_layers);
    if (T <= 0 || T > g->max_T)
        return nt_fail(err, "block forward: %d tokens (the workspace holds 1..%d)", T, g->max_T);
    NT_ASSERT(g->D == c->dim && g->F == c->ffn_dim && g->qd == c->n_heads * c->head_dim);
    NT_ASSERT(x != y);
    const nt_layer *ly = &m->layers[l];
    int D = g->D, F = g->F;
    size_t nd = (size_t)T * D, nf = (size_t)T * F;
    g->T = T;
    g->layer = l;

    // attention sublayer: pre-norm y = x + attn(n1(x)) (BLOOM option: n1(x) + attn(n1(x)));
    // post-norm OPT: y = n1(x + attn(x))
    const float *ain = x;
    if (c->pre_norm) {
        nt_norm_forward(&ly->attn_norm, c->rms_norm, c->norm_eps, x, T, D, g->xn, g->xhat1, g->rstd1);
        ain = g->xn;
    }
    nt_linear_forward(&ly->q, ain, T, g->q);
    nt_linear_forward(&ly->k, ain, T, g->k);
    nt_linear_forward(&ly->v, ain, T, g->v);
    if (c->arch == NT_ARCH_LLAMA) {
        rope_apply(g, g->q, T, g->H, false);
        rope_apply(g, g->k, T, g->KV, false);
    }
    attention_forward(m, g);
    nt_linear_forward(&ly->o, g->att, T, g->res);
    add_into(y, c->residual_post_norm ? g->xn : x, g->res, nd);
    if (!c->pre_norm) nt_norm_forward(&ly->attn_norm, false, c->norm_eps, y, T, D, y, g->xhat1, g->rstd1);

    // MLP sublayer, same pattern on y
    const float *min = y;
    if (c->pre_norm) {
        nt_norm_forward(&ly->mlp_norm, c->rms_norm, c->norm_eps, y, T, D, g->xn, g->xhat2, g->rstd2);
        min = g->xn;
    }
    nt_linear_forward(&ly->up, min, T, g->u);
    if (ly->gate.w) {
        NT_ASSERT(g->gt);
        nt_linear_forward(&ly->gate, min, T, g->gt);
#pragma omp parallel for if (nf > 4096)
        for (size_t i = 0; i < nf; i++) g->h1[i] = g->u[i] * nt_act_forward(c->act, g->gt[i]);
    } else {
#pragma omp parallel for if (nf > 4096)
        for (size_t i = 0; i < nf; i++) g->h1[i] = nt_act_forward(c->act, g->u[i]);
    }
    nt_linear_forward(&ly->down, g->h1, T, g->res);
    add_into(y, c->residual_post_norm ? g->xn : y, g->res, nd);
    if (!c->pre_norm) nt_norm_forward(&ly->mlp_norm, false, c->norm_eps, y, T, D, y, g->xhat2, g->rstd2);
    return 0;
}

// ----------------------------------------------------------------------------
// the block: backward

// MLP: from dout (T, D) at its output to din (T, D) at its input (written).
static void mlp_backward(const nt_model *m, nt_block_grad *g, const nt_layer *ly, const float *dout, float *din) {
    int T = g->T;
    size_t nf = (size_t)T * g->F;
    nt_act a = m->cfg.act;
    linear_backward(&ly->down, dout, T, g->h1, 0.0f); // d hidden
    if (ly->gate.w) {
        // hidden = u * act(gt): du = dh * act(gt) (in place), dgt = dh * u * act'(gt)
#pragma omp parallel for if (nf > 4096)
        for (size_t i = 0; i < nf; i++) {
            float dh = g->h1[i], z = g->gt[i];
            g->h2[i] = dh * g->u[i] * act_grad(a, z);
            g->h1[i] = dh * nt_act_forward(a, z);
        }
        linear_backward(&ly->up, g->h1, T, din, 0.0f);
        linear_backward(&ly->gate, g->h2, T, din, 1.0f);
    } else {
#pragma omp parallel for if (nf > 4096)
        for (size_t i = 0; i < nf; i++) g->h1[i] *= act_grad(a, g->u[i]);
        linear_backward(&ly->up, g->h1, T, din, 0.0f);
    }
}

// Attention: from dout (T, D) at o_proj's output to din (T, D) at the q/k/v input (written).
static void attn_backward(const nt_model *m, nt_block_grad *g, const nt_layer *ly, const float *dout, float *din) {
    int T = g->T;
    linear_backward(&ly->o, dout, T, g->att, 0.0f); // d att
    attention_backward(m, g);
    if (m->cfg.arch == NT_ARCH_LLAMA) {
        rope_apply(g, g->dq, T, g->H, true);
        rope_apply(g, g->dk, T, g->KV, true);
    }
    linear_backward(&ly->q, g->dq, T, din, 0.0f);
    linear_backward(&ly->k, g->dk, T, din, 1.0f);
    linear_backward(&ly->v, g->dv, T, din, 1.0f);
}

int nt_block_backward(const nt_model *m, nt_block_grad *g, const float *dy, const nt_norm_grads *grads,
                      float *dx, nt_err *err) {
    const nt_config *c = &m->cfg;
    if (g->layer < 0) return nt_fail(err, "block backward: no training forward to go back through");
    const nt_layer *ly = &m->layers[g->layer];
    int T = g->T, D = g->D;
    size_t nd = (size_t)T * D;
    bool rms = c->rms_norm, rpn = c->residual_post_norm;
    nt_norm_grads none = {0};
    const nt_norm_grads *gr = grads ? grads : &none;
    float *g1 = g->res; // gradient of the residual stream between the two sublayers (T, D)

    // MLP sublayer, y = x1 + mlp(n2(x1)) (rpn: n2(x1) + mlp(n2(x1)); post-norm: y = n2(x1 + mlp(x1)))
    if (c->pre_norm) {
        mlp_backward(m, g, ly, dy, g->xn); // gradient at n2's output
        if (rpn) add_into(g->xn, g->xn, dy, nd); // the residual branches off n2's output
        else memcpy(g1, dy, nd * sizeof(float)); // ... or off x1
        norm_backward(&ly->mlp_norm, rms, g->xhat2, g->rstd2, g->xn, T, D, g1, !rpn, gr->mlp_w, rms ? NULL : gr->mlp_b);
    } else {
        norm_backward(&ly->mlp_norm, false, g->xhat2, g->rstd2, dy, T, D, g->xn, false, gr->mlp_w, gr->mlp_b);
        mlp_backward(m, g, ly, g->xn, g1);
        add_into(g1, g1, g->xn, nd);
    }

    // attention sublayer, x1 = x + attn(n1(x)) (rpn: n1(x) + attn(n1(x)); post-norm: x1 = n1(x + attn(x))).
    // Without dx, nothing below the attention norm's parameters is needed.
    if (c->pre_norm) {
        attn_backward(m, g, ly, g1, g->xn); // gradient at n1's output
        if (rpn) add_into(g->xn, g->xn, g1, nd);
        else if (dx) memcpy(dx, g1, nd * sizeof(float));
        norm_backward(&ly->attn_norm, rms, g->xhat1, g->rstd1, g->xn, T, D, dx, !rpn, gr->attn_w,
                      rms ? NULL : gr->attn_b);
    } else {
        norm_backward(&ly->attn_norm, false, g->xhat1, g->rstd1, g1, T, D, g->xn, false, gr->attn_w, gr->attn_b);
        if (dx) {
            attn_backward(m, g, ly, g->xn, dx);
            add_into(dx, dx, g->xn, nd);
        }
    }
    return 0;
}
