// gpu_forward.c: the forward pass on the device (gpu.h's nt_gpu_model), step for step transformer.c's
// nt_forward_hidden + nt_logits for a fresh sequence: quantized linears through nt_gpu_qgemm (the GEMV kernel
// for up to 8 rows, tensor cores above), those with quantized activations (W8A8, W4A8, W4A4) through
// nt_gpu_actq_linear (int8 codes, IMMA, actquant.h's integer-exact product), dense ones through cuBLASLt, the rest
// through gpu_ops.h. Activations are fp16 between operations (what the kernels take), the residual stream fp32,
// logits fp32.
// Built into the library with CUDA, and a second time into the CPU emulator (cuda_emu.h) for the tests;
// gpu_none.c stands in without CUDA.
#include "gpu.h"
#include "gpu_ops.h"
#include "nll.h"

#if defined(NT_HAVE_CUDA) || defined(NT_CUDA_EMU)
#include <string.h>

_Static_assert(NT_ACT_RELU == 0 && NT_ACT_SILU == 1 && NT_ACT_GELU == 2 && NT_ACT_GELU_TANH == 3,
               "forward.cu's act_f numbers the activations the same way");

#define LOGIT_ROWS 512 // logits rows per lm_head product (a 2048-token window of a 50k vocabulary: 4 products)

typedef struct {
    nt_gpu_actq *aq;   // quantized activations (actquant.h): the integer weights and the activation scheme
    nt_gpu_qlinear *q; // else quantized: the packed weights
    uint16_t *w;       // else (out, in) fp16
    float *b;          // (out) or NULL
    int in, out;
} glin;

typedef struct {
    float *w, *b; // (D) or NULL
} gnorm;

typedef struct {
    gnorm attn_norm, mlp_norm;
    glin q, k, v, o, up, gate, down; // gate.out == 0 when absent
} glayer;

struct nt_gpu_model {
    nt_config cfg;
    int max_tokens;
    glayer *layers; // (n_layers)
    float *tok_emb; // (vocab, E)
    float *pos_emb; // (max_pos + offset, D) or NULL
    gnorm emb_norm, final_norm;
    glin proj_in, proj_out; // out == 0 when absent
    uint16_t *lm_head;      // (vocab, E) fp16
    float *alibi;           // (H) or NULL
    float *rope_cos, *rope_sin; // (max_tokens, hd/2) or NULL
    int32_t *tokens;        // (max_tokens)
    // activations
    float *x;      // (T, max(D, E)) residual stream, then the final hidden states
    float *xn;     // (T, D) fp32 normed input (BLOOM's residual) / projection scratch
    uint16_t *xb;  // (T, max(D, E)) fp16 input of a linear
    uint16_t *q, *k, *v, *att; // (T, H*hd), (T, KVH*hd) x 2, (T, H*hd)
    uint16_t *h1, *h2;         // (T, max(F, D, E))
    float *logits;             // (LOGIT_ROWS, vocab)
    int n; // positions of the last forward
};

// ------------------------------------------------------------------------------------------------ upload

static int up_f32(void **d, const float *h, size_t count, nt_err *err) {
    *d = NULL;
    if (!h) return 0;
    if (nt_gpu_malloc(d, count * sizeof(float), err)) return -1;
    return nt_gpu_upload(*d, h, count * sizeof(float), err);
}

static int up_f16(uint16_t **d, const float *h, size_t count, nt_err *err) {
    *d = NULL;
    uint16_t *tmp = malloc(count * sizeof *tmp);
    if (!tmp) return nt_fail(err, "out of memory converting %zu weights to fp16", count);
    for (size_t i = 0; i < count; i++) tmp[i] = nt_f32_to_f16(h[i]);
    int rc = nt_gpu_malloc((void **)d, count * 2, err);
    if (!rc) rc = nt_gpu_upload(*d, tmp, count * 2, err);
    free(tmp);
    return rc;
}

static int up_norm(gnorm *g, const nt_norm *n, int D, nt_err *err) {
    if (up_f32((void **)&g->w, n->w, (size_t)D, err)) return -1;
    return up_f32((void **)&g->b, n->b, (size_t)D, err);
}

static int up_lin(glin *g, const nt_linear *l, const char *what, nt_err *err) {
    memset(g, 0, sizeof *g);
    if (!l->w && !l->q) return 0;
    g->in = l->in;
    g->out = l->out;
    if (l->aq) { // the device multiplies integer weights only: a float linear's fake-quantized input is CPU-only
        if (!l->aq->wint)
            return nt_fail(err, "%s: activation quantization of a float linear (no packed weights) runs on the CPU "
                                "only; evaluate without --device", what);
        if (nt_gpu_actq_upload(&g->aq, l->aq, err)) return nt_fail(err, "%s: %s", what, err->msg);
    } else if (l->q) {
        if (nt_gpu_qlinear_upload(&g->q, l->q, err)) return nt_fail(err, "%s: %s", what, err->msg);
    } else if (up_f16(&g->w, l->w, (size_t)l->out * l->in, err)) {
        return -1;
    }
    return up_f32((void **)&g->b, l->b, (size_t)l->out, err);
}

static void free_lin(glin *g) {
    nt_gpu_actq_free(&g->aq);
    nt_gpu_qlinear_free(&g->q);
    nt_gpu_free((void **)&g->w);
    nt_gpu_free((void **)&g->b);
}

static void free_norm(gnorm *g) {
    nt_gpu_free((void **)&g->w);
    nt_gpu_free((void **)&g->b);
}

void nt_gpu_model_free(nt_gpu_model **gp) {
    if (!gp || !*gp) return;
    nt_gpu_model *g = *gp;
    if (g->layers)
        for (int l = 0; l < g->cfg.n_layers; l++) {
            glayer *ly = &g->layers[l];
            free_norm(&ly->attn_norm);
            free_norm(&ly->mlp_norm);
            glin *all[] = {&ly->q, &ly->k, &ly->v, &ly->o, &ly->up, &ly->gate, &ly->down};
            for (int i = 0; i < 7; i++) free_lin(all[i]);
        }
    free(g->layers);
    free_norm(&g->emb_norm);
    free_norm(&g->final_norm);
    free_lin(&g->proj_in);
    free_lin(&g->proj_out);
    void **bufs[] = {(void **)&g->tok_emb, (void **)&g->pos_emb, (void **)&g->lm_head, (void **)&g->alibi,
                     (void **)&g->rope_cos, (void **)&g->rope_sin, (void **)&g->tokens, (void **)&g->x,
                     (void **)&g->xn, (void **)&g->xb, (void **)&g->q, (void **)&g->k, (void **)&g->v,
                     (void **)&g->att, (void **)&g->h1, (void **)&g->h2, (void **)&g->logits};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) nt_gpu_free(bufs[i]);
    free(g);
    *gp = NULL;
}

static int upload_all(nt_gpu_model *g, const nt_model *m, nt_err *err) {
    const nt_config *c = &m->cfg;
    int D = c->dim, E = c->emb_dim, T = g->max_tokens, H = c->n_heads, hd = c->head_dim;
    size_t DE = (size_t)(D > E ? D : E), wide = DE > (size_t)c->ffn_dim ? DE : (size_t)c->ffn_dim;
    g->layers = calloc((size_t)c->n_layers, sizeof *g->layers);
    if (!g->layers) return nt_fail(err, "out of memory");
    for (int l = 0; l < c->n_layers; l++) {
        const nt_layer *ly = &m->layers[l];
        glayer *gl = &g->layers[l];
        if (up_norm(&gl->attn_norm, &ly->attn_norm, D, err) || up_norm(&gl->mlp_norm, &ly->mlp_norm, D, err))
            return -1;
        const nt_linear *src[] = {&ly->q, &ly->k, &ly->v, &ly->o, &ly->up, &ly->gate, &ly->down};
        glin *dst[] = {&gl->q, &gl->k, &gl->v, &gl->o, &gl->up, &gl->gate, &gl->down};
        for (int i = 0; i < 7; i++) {
            char what[64];
            snprintf(what, sizeof what, "layer %d %s", l, nt_lin_name((nt_lin_id)i));
            if (up_lin(dst[i], src[i], what, err)) return -1;
        }
    }
    if (up_f32((void **)&g->tok_emb, m->tok_emb, (size_t)c->vocab * E, err)) return -1;
    if (up_f32((void **)&g->pos_emb, m->pos_emb, (size_t)(c->max_pos + c->pos_offset) * D, err)) return -1;
    if (up_norm(&g->emb_norm, &m->emb_norm, D, err) || up_norm(&g->final_norm, &m->final_norm, D, err)) return -1;
    if (up_lin(&g->proj_in, &m->proj_in, "project_in", err) || up_lin(&g->proj_out, &m->proj_out, "project_out", err))
        return -1;
    if (up_f16(&g->lm_head, m->lm_head, (size_t)c->vocab * E, err)) return -1;
    if (up_f32((void **)&g->alibi, m->alibi, (size_t)H, err)) return -1;
    if (c->arch == NT_ARCH_LLAMA) { // the CPU run's own tables, so both passes rotate by the same angles
        nt_run *r = NULL;
        if (nt_run_init(&r, m, 1, T, err)) return -1;
        int rc = up_f32((void **)&g->rope_cos, r->rope_cos, (size_t)T * (hd / 2), err);
        if (!rc) rc = up_f32((void **)&g->rope_sin, r->rope_sin, (size_t)T * (hd / 2), err);
        nt_run_free(&r);
        if (rc) return -1;
    }
    size_t qd = (size_t)H * hd, kvd = (size_t)c->n_kv_heads * hd;
    if (nt_gpu_malloc((void **)&g->tokens, (size_t)T * 4, err) ||
        nt_gpu_malloc((void **)&g->x, (size_t)T * DE * 4, err) || nt_gpu_malloc((void **)&g->xn, (size_t)T * DE * 4, err) ||
        nt_gpu_malloc((void **)&g->xb, (size_t)T * DE * 2, err) || nt_gpu_malloc((void **)&g->q, (size_t)T * qd * 2, err) ||
        nt_gpu_malloc((void **)&g->k, (size_t)T * kvd * 2, err) || nt_gpu_malloc((void **)&g->v, (size_t)T * kvd * 2, err) ||
        nt_gpu_malloc((void **)&g->att, (size_t)T * qd * 2, err) || nt_gpu_malloc((void **)&g->h1, (size_t)T * wide * 2, err) ||
        nt_gpu_malloc((void **)&g->h2, (size_t)T * wide * 2, err) ||
        nt_gpu_malloc((void **)&g->logits, (size_t)LOGIT_ROWS * c->vocab * 4, err))
        return -1;
    return 0;
}

int nt_gpu_model_upload(nt_gpu_ctx *ctx, nt_gpu_model **out, const nt_model *m, int max_tokens, nt_err *err) {
    (void)ctx;
    *out = NULL;
    if (max_tokens < 1) return nt_fail(err, "gpu model: max_tokens %d", max_tokens);
    if (max_tokens > m->cfg.max_pos)
        return nt_fail(err, "gpu model: %d positions exceed the model's %d", max_tokens, m->cfg.max_pos);
    nt_gpu_model *g = calloc(1, sizeof *g);
    if (!g) return nt_fail(err, "out of memory");
    g->cfg = m->cfg;
    g->max_tokens = max_tokens;
    if (upload_all(g, m, err)) {
        nt_gpu_model_free(&g);
        return -1;
    }
    *out = g;
    return 0;
}

// --------------------------------------------------------------------------------------------- forward

// y (n, out) fp16 = x (n, in) fp16 . W^T + b (with quantized activations: the bias added in fp32, as on the CPU).
static int lin(nt_gpu_ctx *ctx, const glin *l, const uint16_t *x, int n, uint16_t *y, nt_err *err) {
    if (l->aq) return nt_gpu_actq_linear(ctx, l->aq, x, l->b, y, NULL, n, err);
    if (l->q) {
        if (nt_gpu_qgemm(ctx, l->q, x, y, n, NT_QKERNEL_AUTO, err)) return -1;
    } else if (nt_gpu_gemm_f16(ctx, x, l->w, y, n, l->out, l->in, err)) {
        return -1;
    }
    return l->b ? nt_gpu_op_bias(ctx, y, l->b, n, l->out, err) : 0;
}

static int norm(nt_gpu_ctx *ctx, const nt_gpu_model *g, const gnorm *nm, bool rms, const float *x, int n, float *y32,
                uint16_t *y16, nt_err *err) {
    return nt_gpu_op_norm(ctx, x, n, g->cfg.dim, nm->w, nm->b, rms, g->cfg.norm_eps, y32, y16, err);
}

// The fp16 input of a sublayer's linears in g->xb: norm(x) pre-norm (and its fp32 copy in g->xn when BLOOM keeps
// it as the residual), x itself post-norm.
static int sublayer_input(nt_gpu_ctx *ctx, nt_gpu_model *g, const gnorm *nm, int n, nt_err *err) {
    const nt_config *c = &g->cfg;
    if (!c->pre_norm) return nt_gpu_op_to_f16(ctx, g->x, (size_t)n * c->dim, g->xb, err);
    return norm(ctx, g, nm, c->rms_norm, g->x, n, c->residual_post_norm ? g->xn : NULL, g->xb, err);
}

static int block(nt_gpu_ctx *ctx, nt_gpu_model *g, int l, int n, nt_err *err) {
    const nt_config *c = &g->cfg;
    const glayer *ly = &g->layers[l];
    const int D = c->dim, F = c->ffn_dim;
    const bool keep = c->residual_post_norm; // BLOOM: the residual is the normed input, kept in fp32

    // attention: pre-norm x + attn(norm(x)); post-norm (OPT) norm(x + attn(x))
    if (sublayer_input(ctx, g, &ly->attn_norm, n, err)) return -1;
    if (lin(ctx, &ly->q, g->xb, n, g->q, err) || lin(ctx, &ly->k, g->xb, n, g->k, err) ||
        lin(ctx, &ly->v, g->xb, n, g->v, err))
        return -1;
    if (c->arch == NT_ARCH_LLAMA &&
        (nt_gpu_op_rope(ctx, g->q, n, c->n_heads, c->head_dim, g->rope_cos, g->rope_sin, err) ||
         nt_gpu_op_rope(ctx, g->k, n, c->n_kv_heads, c->head_dim, g->rope_cos, g->rope_sin, err)))
        return -1;
    if (nt_gpu_op_attention(ctx, g->q, g->k, g->v, n, c->n_heads, c->n_kv_heads, c->head_dim, g->alibi, g->att, err))
        return -1;
    if (lin(ctx, &ly->o, g->att, n, g->h1, err)) return -1;
    if (nt_gpu_op_residual(ctx, g->x, keep ? g->xn : NULL, g->h1, n, D, err)) return -1;
    if (!c->pre_norm && norm(ctx, g, &ly->attn_norm, false, g->x, n, g->x, NULL, err)) return -1;

    // MLP
    if (sublayer_input(ctx, g, &ly->mlp_norm, n, err)) return -1;
    if (lin(ctx, &ly->up, g->xb, n, g->h1, err)) return -1;
    if (ly->gate.out) {
        if (lin(ctx, &ly->gate, g->xb, n, g->h2, err)) return -1;
        if (nt_gpu_op_act(ctx, g->h1, g->h2, (size_t)n * F, c->act, err)) return -1;
    } else if (nt_gpu_op_act(ctx, g->h1, NULL, (size_t)n * F, c->act, err)) {
        return -1;
    }
    if (lin(ctx, &ly->down, g->h1, n, g->h2, err)) return -1;
    if (nt_gpu_op_residual(ctx, g->x, keep ? g->xn : NULL, g->h2, n, D, err)) return -1;
    if (!c->pre_norm && norm(ctx, g, &ly->mlp_norm, false, g->x, n, g->x, NULL, err)) return -1;
    return 0;
}

int nt_gpu_forward(nt_gpu_ctx *ctx, nt_gpu_model *g, const int32_t *tokens, int n, nt_err *err) {
    const nt_config *c = &g->cfg;
    const int D = c->dim, E = c->emb_dim;
    if (n < 1 || n > g->max_tokens)
        return nt_fail(err, "gpu forward: %d tokens (the model was uploaded for at most %d)", n, g->max_tokens);
    for (int t = 0; t < n; t++)
        if (tokens[t] < 0 || tokens[t] >= c->vocab)
            return nt_fail(err, "gpu forward: token id %d outside the vocabulary of %d", (int)tokens[t], c->vocab);
    g->n = 0;
    if (nt_gpu_upload(g->tokens, tokens, (size_t)n * 4, err)) return -1;

    // embedding (+ OPT-350m's projection in, learned positions, BLOOM's embedding norm)
    if (g->proj_in.out) { // x = project_in(embedding): fp16 product, back to fp32 through a residual add onto zeros
        if (nt_gpu_op_embed(ctx, g->tokens, n, g->tok_emb, E, g->xn, err) ||
            nt_gpu_op_to_f16(ctx, g->xn, (size_t)n * E, g->xb, err) || lin(ctx, &g->proj_in, g->xb, n, g->h1, err) ||
            nt_gpu_memset(g->x, 0, (size_t)n * D * 4, err) || nt_gpu_op_residual(ctx, g->x, NULL, g->h1, n, D, err))
            return -1;
    } else if (nt_gpu_op_embed(ctx, g->tokens, n, g->tok_emb, E, g->x, err)) {
        return -1;
    }
    if (g->pos_emb && nt_gpu_op_add_rows(ctx, g->x, g->pos_emb, c->pos_offset, n, D, err)) return -1;
    if (g->emb_norm.w && norm(ctx, g, &g->emb_norm, false, g->x, n, g->x, NULL, err)) return -1;

    for (int l = 0; l < c->n_layers; l++)
        if (block(ctx, g, l, n, err)) return nt_fail(err, "layer %d: %s", l, err->msg);

    if (c->final_norm && norm(ctx, g, &g->final_norm, c->rms_norm, g->x, n, g->x, NULL, err)) return -1;
    if (g->proj_out.out) {
        if (nt_gpu_op_to_f16(ctx, g->x, (size_t)n * D, g->xb, err) || lin(ctx, &g->proj_out, g->xb, n, g->h1, err))
            return -1;
        // hidden (n, E) = the projection, fp16 -> fp32 through the residual op on a zeroed x
        if (nt_gpu_memset(g->x, 0, (size_t)n * E * 4, err) || nt_gpu_op_residual(ctx, g->x, NULL, g->h1, n, E, err))
            return -1;
    }
    g->n = n;
    return 0;
}

int nt_gpu_logits(nt_gpu_ctx *ctx, nt_gpu_model *g, int row0, int rows, float *logits, nt_err *err) {
    const int E = g->cfg.emb_dim, V = g->cfg.vocab;
    if (row0 < 0 || rows < 1 || row0 + rows > g->n)
        return nt_fail(err, "gpu logits: rows %d..%d of %d hidden rows", row0, row0 + rows - 1, g->n);
    for (int r0 = row0; r0 < row0 + rows; r0 += LOGIT_ROWS) {
        int nr = row0 + rows - r0 < LOGIT_ROWS ? row0 + rows - r0 : LOGIT_ROWS;
        if (nt_gpu_op_to_f16(ctx, g->x + (size_t)r0 * E, (size_t)nr * E, g->xb, err) ||
            nt_gpu_gemm_f16_f32(ctx, g->xb, g->lm_head, g->logits, nr, V, E, err) || nt_gpu_sync(err) ||
            nt_gpu_download(logits + (size_t)(r0 - row0) * V, g->logits, (size_t)nr * V * 4, err))
            return -1;
    }
    return 0;
}

int nt_gpu_window_nll(nt_gpu_ctx *ctx, nt_gpu_model *g, const int32_t *tokens, int n, double *nll, nt_err *err) {
    const int V = g->cfg.vocab;
    if (n < 2) return nt_fail(err, "gpu window: %d tokens score nothing", n);
    if (nt_gpu_forward(ctx, g, tokens, n, err)) return -1;
    int chunk = n - 1 < LOGIT_ROWS ? n - 1 : LOGIT_ROWS;
    float *logits = malloc((size_t)chunk * V * sizeof *logits);
    if (!logits) return nt_fail(err, "out of memory for %d rows of logits", chunk);
    int rc = 0;
    for (int t0 = 0; t0 < n - 1 && !rc; t0 += chunk) {
        int rows = n - 1 - t0 < chunk ? n - 1 - t0 : chunk;
        rc = nt_gpu_logits(ctx, g, t0, rows, logits, err);
        if (!rc) nt_nll_from_logits(logits, tokens + t0, rows + 1, V, nll + t0);
    }
    free(logits);
    return rc;
}

#endif
