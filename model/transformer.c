// transformer.c: the CPU reference forward pass in fp32 (see transformer.h). Matrix products go through
// OpenBLAS sgemm (multithreaded); the element-wise work is spread over OpenMP threads; the causal attention is
// attention.c's kernel. Reads top to bottom: run state, the small ops, attention, one block, the whole model.
#include <cblas.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <string.h>

#include "attention.h"
#include "transformer.h"

// ----------------------------------------------------------------------------
// run state

int nt_run_init(nt_run **out, const nt_model *m, int max_tokens, int max_ctx, nt_err *err) {
    return nt_run_init_seqs(out, m, 1, max_tokens, max_ctx, err);
}

int nt_run_init_seqs(nt_run **out, const nt_model *m, int n_seq, int max_tokens, int max_ctx, nt_err *err) {
    const nt_config *c = &m->cfg;
    *out = NULL;
    if (max_tokens <= 0 || max_ctx <= 0 || max_tokens > max_ctx || n_seq <= 0)
        return nt_fail(err, "run state: need 0 < max_tokens (%d) <= max_ctx (%d) and sequences (%d) > 0", max_tokens,
                       max_ctx, n_seq);
    if (max_ctx > c->max_pos)
        return nt_fail(err, "%s: context of %d tokens exceeds the model's maximum of %d", m->dir, max_ctx, c->max_pos);
    nt_run *r = calloc(1, sizeof(nt_run));
    if (!r) return nt_fail(err, "run state: out of memory");
    r->max_tokens = max_tokens;
    r->max_ctx = max_ctx;
    r->n_seq = n_seq;
    r->scores_threads = omp_get_max_threads();
    size_t T = (size_t)max_tokens * n_seq, kvd = (size_t)c->n_kv_heads * c->head_dim, qd = (size_t)c->n_heads * c->head_dim;
    size_t wide = (size_t)(c->dim > c->emb_dim ? c->dim : c->emb_dim);
    r->k = malloc((size_t)c->n_layers * max_ctx * n_seq * kvd * sizeof(float));
    r->v = malloc((size_t)c->n_layers * max_ctx * n_seq * kvd * sizeof(float));
    r->x = malloc(T * wide * sizeof(float));
    r->xb = malloc(T * wide * sizeof(float));
    r->q = malloc(T * qd * sizeof(float));
    r->att = malloc(T * qd * sizeof(float));
    r->scores = malloc(nt_attn_scratch_floats(max_ctx, r->scores_threads) * sizeof(float));
    size_t hid = (size_t)(c->ffn_dim > (int)wide ? c->ffn_dim : (int)wide); // h1 also takes o_proj's output
    r->h1 = malloc(T * hid * sizeof(float));
    r->h2 = malloc(T * hid * sizeof(float));
    bool ok = r->k && r->v && r->x && r->xb && r->q && r->att && r->scores && r->h1 && r->h2;
    if (ok && c->arch == NT_ARCH_LLAMA) {
        int half = c->head_dim / 2;
        r->rope_cos = malloc((size_t)max_ctx * half * sizeof(float));
        r->rope_sin = malloc((size_t)max_ctx * half * sizeof(float));
        ok = r->rope_cos && r->rope_sin;
        // as transformers computes them: inv_freq = 1 / theta ** (2i / head_dim) with every step in fp32 (torch's
        // fp32 pow agrees with powf; the double pow rounded once differed in 1 ulp for a third of SmolLM2's
        // frequencies, ~1e-4 rad at position 2048), angle = pos * inv_freq in fp32
        for (int i = 0; ok && i < half; i++) {
            float inv = 1.0f / powf(c->rope_theta, (float)(2 * i) / (float)c->head_dim);
            for (int p = 0; p < max_ctx; p++) {
                float ang = (float)p * inv;
                r->rope_cos[(size_t)p * half + i] = cosf(ang);
                r->rope_sin[(size_t)p * half + i] = sinf(ang);
            }
        }
    }
    if (!ok) {
        nt_run_free(&r);
        return nt_fail(err, "run state: out of memory for %d tokens x %d context x %d sequences", max_tokens, max_ctx,
                       n_seq);
    }
    *out = r;
    return 0;
}

void nt_run_free(nt_run **rp) {
    nt_run *r = rp ? *rp : NULL;
    if (!r) return;
    free(r->k);
    free(r->v);
    free(r->x);
    free(r->xb);
    free(r->q);
    free(r->att);
    free(r->scores);
    free(r->h1);
    free(r->h2);
    free(r->rope_cos);
    free(r->rope_sin);
    free(r);
    *rp = NULL;
}

void nt_run_reset(nt_run *r) { r->len = 0; }

// ----------------------------------------------------------------------------
// small ops (nt_linear_forward, nt_norm_forward and nt_act_forward also serve block_grad.c's training pass)

void nt_linear_forward(const nt_linear *l, const float *x, int n, float *y) {
    if (l->aq) {
        nt_actq_forward(l->aq, l->w, l->b, x, n, y);
        return;
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, l->out, l->in, 1.0f, x, l->in, l->w, l->in, 0.0f, y,
                l->out);
    if (l->b) {
#pragma omp parallel for if (n > 1)
        for (int t = 0; t < n; t++)
            for (int j = 0; j < l->out; j++) y[(size_t)t * l->out + j] += l->b[j];
    }
}

void nt_norm_forward(const nt_norm *nm, bool rms, float eps, const float *x, int n, int dim, float *y, float *xhat,
                     float *rstd) {
#pragma omp parallel for if (n > 1)
    for (int t = 0; t < n; t++) {
        const float *xr = x + (size_t)t * dim;
        float *yr = y + (size_t)t * dim, *hr = xhat ? xhat + (size_t)t * dim : NULL;
        double mean = 0.0, var = 0.0;
        if (!rms) {
            for (int i = 0; i < dim; i++) mean += xr[i];
            mean /= dim;
        }
        for (int i = 0; i < dim; i++) {
            double d = xr[i] - mean;
            var += d * d;
        }
        var /= dim;
        float inv = (float)(1.0 / sqrt(var + (double)eps)), mu = (float)mean;
        if (rstd) rstd[t] = inv;
        for (int i = 0; i < dim; i++) {
            float v = (xr[i] - mu) * inv;
            if (hr) hr[i] = v;
            if (nm->w) v *= nm->w[i];
            if (nm->b) v += nm->b[i];
            yr[i] = v;
        }
    }
}

static void norm_forward(const nt_norm *nm, bool rms, float eps, const float *x, int n, int dim, float *y) {
    nt_norm_forward(nm, rms, eps, x, n, dim, y, NULL, NULL);
}

float nt_act_forward(nt_act a, float x) {
    switch (a) {
    case NT_ACT_RELU: return x > 0.0f ? x : 0.0f;
    case NT_ACT_SILU: return x / (1.0f + expf(-x));
    case NT_ACT_GELU: return 0.5f * x * (1.0f + erff(x * 0.70710678118654752f));
    case NT_ACT_GELU_TANH: return 0.5f * x * (1.0f + tanhf(0.79788456080286536f * (x + 0.044715f * x * x * x)));
    }
    return x;
}

// Rotate-half RoPE on rows of heads (n * n_seq, n_heads, head_dim) for positions pos0..pos0+n-1 (row t: position
// pos0 + t / n_seq).
static void rope_forward(const nt_run *r, float *x, int n, int n_heads, int head_dim, int pos0) {
    int half = head_dim / 2, rows = n * r->n_seq;
#pragma omp parallel for if (rows > 1)
    for (int t = 0; t < rows; t++) {
        int p = pos0 + t / r->n_seq;
        const float *cs = r->rope_cos + (size_t)p * half, *sn = r->rope_sin + (size_t)p * half;
        for (int h = 0; h < n_heads; h++) {
            float *v = x + ((size_t)t * n_heads + h) * head_dim;
            for (int i = 0; i < half; i++) {
                float a = v[i], b = v[i + half];
                v[i] = a * cs[i] - b * sn[i];
                v[i + half] = b * cs[i] + a * sn[i];
            }
        }
    }
}

// ----------------------------------------------------------------------------
// attention: n new queries (of each sequence) at positions pos0.. against the cache of layer l, positions
// 0..pos0+n-1, through attention.c's causal kernel

static void attention_forward(const nt_model *m, nt_run *r, int l, int n, int pos0) {
    const nt_config *c = &m->cfg;
    size_t lay = (size_t)l * r->max_ctx * r->n_seq * c->n_kv_heads * c->head_dim;
    nt_attn_dims d = {c->n_heads, c->n_kv_heads, c->head_dim, m->alibi};
    int threads = omp_get_max_threads() < r->scores_threads ? omp_get_max_threads() : r->scores_threads;
    nt_attn_forward(&d, r->q, r->k + lay, r->v + lay, n, r->n_seq, pos0, r->att, r->scores, threads, NULL, NULL);
}

// ----------------------------------------------------------------------------
// one block

static void residual_add(float *x, const float *y, size_t count) {
#pragma omp parallel for if (count > 4096)
    for (size_t i = 0; i < count; i++) x[i] += y[i];
}

nt_linear *nt_layer_linear(nt_layer *ly, nt_lin_id which) {
    nt_linear *all[NT_LIN_COUNT] = {&ly->q, &ly->k, &ly->v, &ly->o, &ly->up, &ly->gate, &ly->down};
    return all[which];
}

const char *nt_lin_name(nt_lin_id which) {
    static const char *names[NT_LIN_COUNT] = {"q", "k", "v", "o", "up", "gate", "down"};
    return names[which];
}

// A block's linear, offered first to the calibration hook.
static void block_linear(nt_run *r, int l, nt_lin_id which, const nt_linear *lin, const float *x, int n, float *y) {
    if (r->capture) r->capture(r->capture_ctx, l, which, x, n, lin->in);
    nt_linear_forward(lin, x, n, y);
}

// Offers the input x (n, in) of the linears `ids` to the capture hook without applying them (a partial forward's stop).
static void offer_inputs(const nt_layer *ly, nt_run *r, int l, const nt_lin_id *ids, int k, const float *x, int n) {
    for (int i = 0; i < k && r->capture; i++) {
        const nt_linear *lin = nt_layer_linear((nt_layer *)ly, ids[i]);
        if (lin->w) r->capture(r->capture_ctx, l, ids[i], x, n, lin->in);
    }
}

void nt_block_forward(const nt_model *m, nt_run *r, int l, float *x, int n, int pos0) {
    nt_block_forward_range(m, r, l, x, n, pos0, NT_BLOCK_START, NT_BLOCK_END);
}

void nt_block_forward_range(const nt_model *m, nt_run *r, int l, float *x, int n, int pos0, nt_block_point from,
                            nt_block_point to) {
    const nt_config *c = &m->cfg;
    const nt_layer *ly = &m->layers[l];
    NT_ASSERT((from == NT_BLOCK_START || from == NT_BLOCK_O || from == NT_BLOCK_UP) && to > from);
    int D = c->dim, F = c->ffn_dim, kvd = c->n_kv_heads * c->head_dim, rows = n * r->n_seq;
    size_t nd = (size_t)rows * D;
    size_t at = ((size_t)l * r->max_ctx + pos0) * r->n_seq * kvd; // this call's rows of the layer's cache
    float *kc = r->k + at, *vc = r->v + at;

    // attention sublayer (pre-norm: x + attn(norm(x)); post-norm OPT: norm(x + attn(x)))
    if (from < NT_BLOCK_UP) {
        if (c->pre_norm && (from == NT_BLOCK_START || c->residual_post_norm))
            norm_forward(&ly->attn_norm, c->rms_norm, c->norm_eps, x, rows, D, r->xb);
        if (from == NT_BLOCK_START) {
            const float *ain = c->pre_norm ? r->xb : x;
            if (to == NT_BLOCK_QKV) {
                static const nt_lin_id qkv[3] = {NT_LIN_Q, NT_LIN_K, NT_LIN_V};
                offer_inputs(ly, r, l, qkv, 3, ain, rows);
                return;
            }
            block_linear(r, l, NT_LIN_Q, &ly->q, ain, rows, r->q);
            block_linear(r, l, NT_LIN_K, &ly->k, ain, rows, kc);
            block_linear(r, l, NT_LIN_V, &ly->v, ain, rows, vc);
            if (c->arch == NT_ARCH_LLAMA) {
                rope_forward(r, r->q, n, c->n_heads, c->head_dim, pos0);
                rope_forward(r, kc, n, c->n_kv_heads, c->head_dim, pos0);
            }
            attention_forward(m, r, l, n, pos0);
            if (to == NT_BLOCK_O) {
                static const nt_lin_id o[1] = {NT_LIN_O};
                offer_inputs(ly, r, l, o, 1, r->att, rows);
                return;
            }
        }
        block_linear(r, l, NT_LIN_O, &ly->o, r->att, rows, r->h1); // h1 holds (n, max(ffn, dim)): free until the MLP
        if (c->residual_post_norm) memcpy(x, r->xb, nd * sizeof(float)); // BLOOM option: residual = normed input
        residual_add(x, r->h1, nd);
        if (!c->pre_norm) norm_forward(&ly->attn_norm, false, c->norm_eps, x, rows, D, x);
    }

    // MLP sublayer
    const float *min = x;
    if (c->pre_norm) {
        norm_forward(&ly->mlp_norm, c->rms_norm, c->norm_eps, x, rows, D, r->xb);
        min = r->xb;
    }
    if (to == NT_BLOCK_UP) {
        static const nt_lin_id upgate[2] = {NT_LIN_UP, NT_LIN_GATE};
        offer_inputs(ly, r, l, upgate, 2, min, rows);
        return;
    }
    block_linear(r, l, NT_LIN_UP, &ly->up, min, rows, r->h1);
    size_t nf = (size_t)rows * F;
    if (ly->gate.w) {
        block_linear(r, l, NT_LIN_GATE, &ly->gate, min, rows, r->h2);
#pragma omp parallel for if (nf > 4096)
        for (size_t i = 0; i < nf; i++) r->h1[i] *= nt_act_forward(c->act, r->h2[i]);
    } else {
        if (c->act == NT_ACT_RELU) { // branch-free and vectorized: the common OPT case (was ~9% of GPTQ's time)
#pragma omp parallel for if (nf > 4096)
            for (size_t i = 0; i < nf; i++) r->h1[i] = r->h1[i] > 0.0f ? r->h1[i] : 0.0f;
        } else {
#pragma omp parallel for if (nf > 4096)
            for (size_t i = 0; i < nf; i++) r->h1[i] = nt_act_forward(c->act, r->h1[i]);
        }
    }
    if (to == NT_BLOCK_DOWN) {
        static const nt_lin_id down[1] = {NT_LIN_DOWN};
        offer_inputs(ly, r, l, down, 1, r->h1, rows);
        return;
    }
    block_linear(r, l, NT_LIN_DOWN, &ly->down, r->h1, rows, r->h2);
    if (c->residual_post_norm) memcpy(x, r->xb, nd * sizeof(float));
    residual_add(x, r->h2, nd);
    if (!c->pre_norm) norm_forward(&ly->mlp_norm, false, c->norm_eps, x, rows, D, x);
}

// ----------------------------------------------------------------------------
// the whole model

void nt_embed(const nt_model *m, nt_run *r, const int32_t *tokens, int n, int pos0, float *x) {
    const nt_config *c = &m->cfg;
    int D = c->dim, E = c->emb_dim, rows = n * r->n_seq;
    float *emb = m->proj_in.w ? r->xb : x; // OPT-350m style: embed in emb_dim, project to dim
    for (int t = 0; t < rows; t++) memcpy(emb + (size_t)t * E, m->tok_emb + (size_t)tokens[t] * E, E * sizeof(float));
    if (m->proj_in.w) nt_linear_forward(&m->proj_in, r->xb, rows, x);
    if (m->pos_emb)
        for (int t = 0; t < rows; t++) {
            const float *p = m->pos_emb + (size_t)(pos0 + t / r->n_seq + c->pos_offset) * D;
            for (int i = 0; i < D; i++) x[(size_t)t * D + i] += p[i];
        }
    if (m->emb_norm.w) norm_forward(&m->emb_norm, false, c->norm_eps, x, rows, D, x);
}

int nt_forward_hidden(const nt_model *m, nt_run *r, const int32_t *tokens, int n, nt_err *err) {
    const nt_config *c = &m->cfg;
    int D = c->dim, E = c->emb_dim, pos0 = r->len, rows = n * r->n_seq;
    if (n <= 0 || n > r->max_tokens)
        return nt_fail(err, "forward: %d tokens in one call (at most %d)", n, r->max_tokens);
    if (pos0 + n > r->max_ctx)
        return nt_fail(err, "forward: %d tokens after %d cached exceed the context of %d", n, pos0, r->max_ctx);
    for (int t = 0; t < rows; t++)
        if (tokens[t] < 0 || tokens[t] >= c->vocab)
            return nt_fail(err, "forward: token id %d outside the vocabulary of %d", (int)tokens[t], c->vocab);

    nt_embed(m, r, tokens, n, pos0, r->x);
    for (int l = 0; l < c->n_layers; l++) nt_block_forward(m, r, l, r->x, n, pos0);

    if (c->final_norm) norm_forward(&m->final_norm, c->rms_norm, c->norm_eps, r->x, rows, D, r->x);
    if (m->proj_out.w) {
        nt_linear_forward(&m->proj_out, r->x, rows, r->xb);
        memcpy(r->x, r->xb, (size_t)rows * E * sizeof(float));
    }
    r->len = pos0 + n;
    return 0;
}

void nt_logits(const nt_model *m, const float *hidden, int n, float *out) {
    const nt_config *c = &m->cfg;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, c->vocab, c->emb_dim, 1.0f, hidden, c->emb_dim,
                m->lm_head, c->emb_dim, 0.0f, out, c->vocab);
}

int nt_forward(const nt_model *m, nt_run *r, const int32_t *tokens, int n, float *logits, nt_err *err) {
    if (nt_forward_hidden(m, r, tokens, n, err)) return -1;
    nt_logits(m, r->x, n * r->n_seq, logits);
    return 0;
}

// ----------------------------------------------------------------------------------------- naming and freeing
// The model is the forward pass's; both loaders (checkpoint.c, gguf_model.c) build it and free it through here.
static void free_linear(nt_linear *l) {
    free(l->w);
    free(l->b);
    l->w = l->b = NULL;
    nt_qlinear_free(&l->q);
    nt_actq_free(&l->aq);
}

static void free_norm(nt_norm *n) {
    free(n->w);
    free(n->b);
    n->w = n->b = NULL;
}

void nt_model_free(nt_model **mp) {
    nt_model *m = mp ? *mp : NULL;
    if (!m) return;
    if (m->layers) {
        for (int l = 0; l < m->cfg.n_layers; l++) {
            nt_layer *ly = &m->layers[l];
            free_norm(&ly->attn_norm);
            free_norm(&ly->mlp_norm);
            nt_linear *lin[7] = {&ly->q, &ly->k, &ly->v, &ly->o, &ly->up, &ly->gate, &ly->down};
            for (int j = 0; j < 7; j++) free_linear(lin[j]);
        }
    }
    free(m->layers);
    if (m->lm_head != m->tok_emb) free(m->lm_head);
    free(m->tok_emb);
    free(m->pos_emb);
    free_norm(&m->emb_norm);
    free_norm(&m->final_norm);
    free_linear(&m->proj_in);
    free_linear(&m->proj_out);
    free(m->alibi);
    free(m->dir);
    free(m->name);
    free(m);
    *mp = NULL;
}

int nt_model_set_act_quant(nt_model *m, int bits, bool act_static, const float *scales, nt_err *err) {
    if (bits != 16 && bits != 8 && bits != 4) return nt_fail(err, "--abits %d: expected 8 or 4 (16: none)", bits);
    if (bits < 16 && act_static && !scales) return nt_fail(err, "%s: static activation scales missing", m->name);
    for (int l = 0; l < m->cfg.n_layers; l++)
        for (int j = 0; j < NT_LIN_COUNT; j++) {
            nt_linear *lin = nt_layer_linear(&m->layers[l], (nt_lin_id)j);
            nt_actq_free(&lin->aq);
            if (!lin->w || bits == 16) continue;
            float s = act_static ? scales[(size_t)l * NT_LIN_COUNT + j] : 0.0f;
            if (nt_actq_make(&lin->aq, lin->q, lin->out, lin->in, bits, act_static ? NT_ACT_STATIC : NT_ACT_DYNAMIC, s,
                             err)) {
                char inner[sizeof(err->msg)];
                snprintf(inner, sizeof(inner), "%s", err->msg);
                return nt_fail(err, "%s: layer %d %s: %s", m->name, l, nt_lin_name((nt_lin_id)j), inner);
            }
        }
    m->quant.abits = bits;
    m->quant.act_static = bits < 16 && act_static;
    return 0;
}

void nt_model_name_of_path(const char *path, char *buf, size_t size) {
    nt_path_basename(path, buf, size);
    size_t k = strlen(buf);
    if (k > 5 && strcmp(buf + k - 5, ".gguf") == 0) buf[k - 5] = '\0';
}
