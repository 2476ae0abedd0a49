// quantize_model.c: the block-by-block quantization driver (see quantize_model.h). Reads top to bottom:
// options, calibration capture (Hessians through the run's capture hook), one block, the whole model.
#define _POSIX_C_SOURCE 200809L
#include "quantize_model.h"

#include "adam.h"
#include "block_grad.h"
#include "calibgen.h"

#include <stdarg.h>
#include <string.h>

nt_quant_opts nt_quant_opts_make(const char *method, int wbits, int group_size) {
    nt_quant_opts o = {.wbits = wbits, .group_size = group_size, .true_sequential = true, .percdamp = 0.01f,
                       .blocksize = 128, .nsamples = 128, .calib_seqlen = 2048, .seed = 0,
                       .nt_loss = NT_LOSS_DIST, .nt_lr = 1e-5f, .nt_lr_depth = -1.0f, .nt_iters = 1, .nt_batch = 1,
                       .nt_holdout = -1};
    snprintf(o.method, sizeof(o.method), "%s", method);
    size_t n = strlen(method);
    o.nt = n > 3 && strcmp(method + n - 3, "+nt") == 0;
    // norm tweaking calibrates on text the float model generates (the paper's default)
    snprintf(o.calib_source, sizeof(o.calib_source), "%s", o.nt ? "gen" : "c4");
    return o;
}

int nt_quant_opts_set_calib(nt_quant_opts *o, const char *spec, nt_err *err) {
    char buf[256];
    snprintf(buf, sizeof(buf), "%s", spec);
    char *save = NULL, *src = strtok_r(buf, ":", &save);
    if (!src || !*src) return nt_fail(err, "--calib: empty calibration spec");
    snprintf(o->calib_source, sizeof(o->calib_source), "%s", src);
    o->calib_explicit = true;
    for (char *part = strtok_r(NULL, ":", &save); part; part = strtok_r(NULL, ":", &save)) {
        char *end = NULL;
        if (strncmp(part, "seed", 4) == 0) {
            unsigned long long s = strtoull(part + 4, &end, 10);
            if (end == part + 4 || *end) return nt_fail(err, "--calib %s: bad seed '%s'", spec, part);
            o->seed = s;
            continue;
        }
        long n = strtol(part, &end, 10);
        if (end == part || n <= 0 || n > 1000000) return nt_fail(err, "--calib %s: bad sample count '%s'", spec, part);
        o->nsamples = (int)n;
        if (*end == 'x') {
            char *e2 = NULL;
            long L = strtol(end + 1, &e2, 10);
            if (e2 == end + 1 || *e2 || L < 2 || L > 1000000)
                return nt_fail(err, "--calib %s: bad sample length in '%s'", spec, part);
            o->calib_seqlen = (int)L;
        } else if (*end) {
            return nt_fail(err, "--calib %s: expected N or NxL, got '%s'", spec, part);
        }
    }
    return 0;
}

int nt_quant_opts_check(const nt_quant_opts *o, const nt_model *m, nt_err *err) {
    if (strcmp(o->method, "rtn") != 0 && strcmp(o->method, "gptq") != 0 && strcmp(o->method, "rtn+nt") != 0 &&
        strcmp(o->method, "gptq+nt") != 0)
        return nt_fail(err, "--method %s: unknown quantization method (expected fp, rtn, gptq, rtn+nt or gptq+nt)",
                       o->method);
    if (o->nt && (o->nt_iters < 1 || o->nt_batch < 1 || !(o->nt_lr >= 0.0f) || o->n_lr_grid < 0 || o->n_lr_grid > 8))
        return nt_fail(err, "norm tweaking: iterations and batch must be >= 1 and learning rates >= 0");
    if (!nt_qtraits_get(o->wbits)) return nt_fail(err, "--wbits %d: unsupported (expected 2, 3, 4 or 8)", o->wbits);
    if (o->static_groups && !o->act_order) return nt_fail(err, "--static-groups needs --act-order");
    if (o->percdamp <= 0.0f || o->blocksize <= 0) return nt_fail(err, "GPTQ dampening and block size must be positive");
    const nt_config *c = &m->cfg;
    int ins[3] = {c->dim, c->n_heads * c->head_dim, c->ffn_dim};
    const char *what[3] = {"hidden size", "attention width", "MLP width"};
    for (int i = 0; i < 3; i++) {
        nt_err e2;
        if (nt_qformat_check(1, ins[i], o->wbits, o->group_size, &e2))
            return nt_fail(err, "%s: %s (%s of %s)", m->dir, e2.msg, what[i], m->name);
    }
    return 0;
}

void nt_quant_stats_free(nt_quant_stats *s) {
    free(s->seconds_per_layer);
    free(s->nt_lr_used);
    free(s->nt_seconds);
    free(s->nt_loss_before);
    free(s->nt_loss_after);
    s->seconds_per_layer = NULL;
    s->nt_lr_used = NULL;
    s->nt_seconds = NULL;
    s->nt_loss_before = s->nt_loss_after = NULL;
}

// ----------------------------------------------------------------------------
// norm tweaking of one block

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

// Mean loss of the quantized block l (current norms) against the float targets over samples [a, b).
static int tweak_score(const nt_model *m, tweak_ws *w, int l, const float *x, const float *yf, int a, int b, int T,
                       const nt_quant_opts *o, double *mean, nt_err *err) {
    size_t sz = (size_t)T * m->cfg.dim;
    double sum = 0.0;
    for (int j = a; j < b; j++) {
        double loss;
        if (nt_block_train_forward(m, w->g, l, x + (size_t)j * sz, T, w->yq, err) ||
            nt_loss_eval(o->nt_loss, yf + (size_t)j * sz, w->yq, T, m->cfg.dim, &loss, NULL, err))
            return -1;
        sum += loss;
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

// Norm tweaking of block l (already quantized): x (N, T, dim) its quantized inputs, yf the float block's
// outputs on them. Tweaks on the first N - holdout samples. With an lr grid the held-out samples are split: the
// first half chooses the lr, the second half scores the choice (the stats' before/after), so the reported score
// is measured on samples that neither the tweaking nor the choice saw (a minimum over the grid taken on the same
// samples it reports would be biased low, and could never come out worse than not tweaking).
static int tweak_block(nt_model *m, int l, const float *x, const float *yf, int N, int T, const nt_quant_opts *o,
                       nt_quant_stats *st, nt_err *err) {
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
    float depth = o->nt_lr_depth >= 0.0f ? o->nt_lr_depth : (c->arch == NT_ARCH_BLOOM ? 10.0f : 100.0f);
    float scale = 1.0f + (float)l * depth / (float)c->n_layers;
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
    if (tweak_score(m, &w, l, x, yf, sa, sb, T, o, &before, err)) goto done;
    float best_lr = o->nt_lr * scale;
    if (o->n_lr_grid > 0) { // per-block grid search on the choosing samples, "no tweak" (lr 0) included
        best_lr = 0.0f;
        if (tweak_score(m, &w, l, x, yf, n_train, sa, T, o, &best_loss, err)) goto done;
        for (int i = 0; i < o->n_lr_grid; i++) {
            float lr = o->nt_lr_grid[i] * scale;
            double loss;
            if (tweak_run(m, &w, &np, l, x, yf, n_train, T, lr, o, err) ||
                tweak_score(m, &w, l, x, yf, n_train, sa, T, o, &loss, err))
                goto done;
            if (loss < best_loss) best_loss = loss, best_lr = lr;
        }
    }
    if (tweak_run(m, &w, &np, l, x, yf, n_train, T, best_lr, o, err) ||
        tweak_score(m, &w, l, x, yf, sa, sb, T, o, &after, err))
        goto done;
    st->nt_lr_used[l] = best_lr;
    st->nt_loss_before[l] = before;
    st->nt_loss_after[l] = after;
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

// ----------------------------------------------------------------------------
// calibration capture: one Hessian per distinct input of the block's linears

enum { SLOT_ATTN_IN, SLOT_ATTN_OUT, SLOT_MLP_IN, SLOT_MLP_OUT, N_SLOTS };
static const int slot_of[NT_LIN_COUNT] = {SLOT_ATTN_IN, SLOT_ATTN_IN, SLOT_ATTN_IN, SLOT_ATTN_OUT,
                                          SLOT_MLP_IN,  SLOT_MLP_IN,  SLOT_MLP_OUT};
// the linear whose input stands for its slot (q/k/v and up/gate read the same input)
static const nt_lin_id slot_rep[N_SLOTS] = {NT_LIN_Q, NT_LIN_O, NT_LIN_UP, NT_LIN_DOWN};

typedef struct {
    int layer;
    bool want[N_SLOTS];
    float *H[N_SLOTS]; // (in, in)
    int in[N_SLOTS];
    long nsamples[N_SLOTS];
    int failed;        // an allocation failed inside the hook
    nt_err err;
} capture_ctx;

static void capture_hook(void *vctx, int layer, nt_lin_id which, const float *x, int n, int in) {
    capture_ctx *c = vctx;
    int s = slot_of[which];
    if (layer != c->layer || !c->want[s] || slot_rep[s] != which || c->failed) return;
    // one calibration sequence per call, as GPTQ's add_batch counts them
    if (nt_gptq_hessian_add(c->H[s], in, &c->nsamples[s], x, n, 1, &c->err)) c->failed = 1;
}

// ----------------------------------------------------------------------------
// one linear

static int quantize_linear(nt_linear *lin, const float *H, const nt_quant_opts *o, double *seconds, nt_err *err) {
    double t0 = nt_time();
    nt_qlinear *q = NULL;
    int rc;
    nt_qconfig qc = nt_qconfig_make(o->wbits, o->group_size, o->sym);
    qc.mse = o->mse;
    qc.scale_f16 = !o->fp32_scales;
    // the fake-quantized weights replace the float ones: evaluation sees what the quantizer produced
    float *Wq = malloc((size_t)lin->out * lin->in * sizeof(float));
    if (!Wq) return nt_fail(err, "out of memory quantizing a %dx%d linear", lin->out, lin->in);
    if (H) {
        nt_gptq_config gc = nt_gptq_config_make(o->wbits, o->group_size, o->sym);
        gc.quant = qc;
        gc.percdamp = o->percdamp;
        gc.blocksize = o->blocksize;
        gc.act_order = o->act_order;
        gc.static_groups = o->static_groups;
        rc = nt_gptq_quantize(&q, Wq, NULL, lin->w, lin->out, lin->in, H, &gc, err);
    } else {
        rc = nt_rtn_quantize(&q, Wq, lin->w, lin->out, lin->in, &qc, err);
    }
    if (rc) {
        free(Wq);
        return -1;
    }
    free(lin->w);
    lin->w = Wq;
    nt_qlinear_free(&lin->q);
    lin->q = q;
    *seconds += nt_time() - t0;
    return 0;
}

// ----------------------------------------------------------------------------
// the whole model

// Appends key[=value] to a ;-separated option list.
static void append_opt(char *buf, size_t cap, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void append_opt(char *buf, size_t cap, const char *fmt, ...) {
    size_t k = strlen(buf);
    if (k && k + 1 < cap) buf[k++] = ';', buf[k] = '\0';
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf + k, cap - k, fmt, ap);
    va_end(ap);
}

// Runs block l over every calibration sample: x (N, T, dim) in place when `update`, else on a scratch copy.
static int run_block(const nt_model *m, nt_run *r, int l, float *x, int N, int T, bool update, float *scratch) {
    size_t sz = (size_t)T * m->cfg.dim;
    for (int j = 0; j < N; j++) {
        float *xj = x + (size_t)j * sz;
        float *buf = update ? xj : scratch;
        if (!update) memcpy(buf, xj, sz * sizeof(float));
        nt_run_reset(r);
        nt_block_forward(m, r, l, buf, T, 0);
    }
    return 0;
}

// The calibration samples: generated by the float model, read from a token file, or drawn from text.
static int calibration(const nt_model *m, const nt_tokenizer *tok, const char *data_dir, const nt_quant_opts *o,
                       nt_windows *calib, char *desc, size_t desc_cap, nt_err *err) {
    int T = o->calib_seqlen < m->cfg.max_pos ? o->calib_seqlen : m->cfg.max_pos; // capped at the model's context
    const char *src = o->calib_source;
    size_t sl = strlen(src);
    if (sl > 12 && strcmp(src + sl - 12, ".safetensors") == 0) {
        if (nt_tokens_load(src, calib, err)) return -1;
        if (calib->seqlen > (size_t)m->cfg.max_pos)
            return nt_fail(err, "%s: samples of %zu tokens exceed the model's context of %d", src, calib->seqlen,
                           m->cfg.max_pos);
        for (size_t i = 0; i < calib->n_windows * calib->seqlen; i++)
            if (calib->ids[i] < 0 || calib->ids[i] >= m->cfg.vocab)
                return nt_fail(err, "%s: token id %d outside the vocabulary of %s", src, (int)calib->ids[i], m->name);
        snprintf(desc, desc_cap, "%s:%zux%zu", src, calib->n_windows, calib->seqlen);
        return 0;
    }
    if (!tok) return nt_fail(err, "calibration needs the model's tokenizer");
    if (strcmp(src, "gen") == 0) {
        nt_gen_opts g = nt_gen_opts_make(o->nsamples, T, o->seed);
        if (nt_calib_generate(m, tok, &g, calib, err)) return -1;
    } else if (nt_calib_windows(src, data_dir, tok, (size_t)o->nsamples, (size_t)T, o->seed, calib, err)) {
        return -1;
    }
    snprintf(desc, desc_cap, "%s:%zux%zu:seed%llu", src, calib->n_windows, calib->seqlen,
             (unsigned long long)o->seed);
    return 0;
}

int nt_quantize_model(nt_model *m, const nt_tokenizer *tok, const char *data_dir, const nt_quant_opts *o,
                      nt_quant_stats *stats, nt_err *err) {
    nt_quant_stats st = {0};
    double t_start = nt_time();
    if (nt_quant_opts_check(o, m, err)) return -1;
    const nt_config *c = &m->cfg;
    bool gptq = strncmp(o->method, "gptq", 4) == 0, calibrate = gptq || o->nt;
    st.seconds_per_layer = calloc((size_t)c->n_layers, sizeof(double));
    if (o->nt) {
        st.nt_lr_used = calloc((size_t)c->n_layers, sizeof(float));
        st.nt_seconds = calloc((size_t)c->n_layers, sizeof(double));
        st.nt_loss_before = calloc((size_t)c->n_layers, sizeof(double));
        st.nt_loss_after = calloc((size_t)c->n_layers, sizeof(double));
    }
    if (!st.seconds_per_layer || (o->nt && (!st.nt_lr_used || !st.nt_seconds || !st.nt_loss_before || !st.nt_loss_after))) {
        nt_quant_stats_free(&st);
        return nt_fail(err, "out of memory");
    }

    nt_windows calib = {0};
    nt_run *r = NULL;
    float *x = NULL, *yf = NULL, *scratch = NULL;
    capture_ctx cap = {0};
    int rc = -1, T = 0, N = 0;
    char calib_str[320] = "";
    if (calibrate) {
        double t0 = nt_time();
        if (calibration(m, tok, data_dir, o, &calib, calib_str, sizeof(calib_str), err)) goto done;
        if (o->save_calib[0] && nt_tokens_save(o->save_calib, &calib, m->name,
                                                &(nt_gen_opts){.n_samples = (int)calib.n_windows,
                                                               .seqlen = (int)calib.seqlen, .seed = o->seed},
                                                err))
            goto done;
        st.seconds_calib = nt_time() - t0;
        N = (int)calib.n_windows;
        T = (int)calib.seqlen;
        if (nt_run_init(&r, m, T, T, err)) goto done;
        x = malloc((size_t)N * T * c->dim * sizeof(float));
        yf = o->nt ? malloc((size_t)N * T * c->dim * sizeof(float)) : NULL;
        scratch = malloc((size_t)T * c->dim * sizeof(float));
        int ins[N_SLOTS] = {c->dim, c->n_heads * c->head_dim, c->dim, c->ffn_dim};
        bool ok = x && scratch && (!o->nt || yf);
        for (int s = 0; s < N_SLOTS && gptq && ok; s++) {
            cap.in[s] = ins[s];
            cap.H[s] = malloc((size_t)ins[s] * ins[s] * sizeof(float));
            ok = cap.H[s] != NULL;
        }
        if (!ok) {
            nt_fail(err, "out of memory for %d calibration samples of %d tokens", N, T);
            goto done;
        }
        for (int j = 0; j < N; j++)
            nt_embed(m, r, calib.ids + (size_t)j * T, T, 0, x + (size_t)j * T * c->dim);
        r->capture = capture_hook;
        r->capture_ctx = &cap;
        cap.layer = -1;
    }

    // the steps of a block: which linears are quantized together, from which Hessian
    static const nt_lin_id seq_steps[4][3] = {{NT_LIN_Q, NT_LIN_K, NT_LIN_V}, {NT_LIN_O, NT_LIN_COUNT, NT_LIN_COUNT},
                                              {NT_LIN_UP, NT_LIN_GATE, NT_LIN_COUNT},
                                              {NT_LIN_DOWN, NT_LIN_COUNT, NT_LIN_COUNT}};
    nt_progress prog;
    nt_progress_begin(&prog, o->method, c->n_layers);
    for (int l = 0; l < c->n_layers; l++) {
        double tl = nt_time();
        nt_layer *ly = &m->layers[l];
        size_t sz = (size_t)T * c->dim;
        if (o->nt) { // the target: the FLOAT block applied to the quantized input
            cap.layer = -1;
            for (int j = 0; j < N; j++) {
                memcpy(yf + j * sz, x + j * sz, sz * sizeof(float));
                nt_run_reset(r);
                nt_block_forward(m, r, l, yf + j * sz, T, 0);
            }
        }
        int n_steps = gptq && o->true_sequential ? 4 : 1;
        for (int step = 0; step < n_steps; step++) {
            // the linears of this step (all of them when not true-sequential)
            nt_lin_id ids[NT_LIN_COUNT];
            int n_ids = 0;
            for (int k = 0; k < NT_LIN_COUNT; k++) {
                bool in_step = n_steps == 1;
                for (int j = 0; j < 3 && !in_step; j++) in_step = seq_steps[step][j] == (nt_lin_id)k;
                if (in_step && nt_layer_linear(ly, (nt_lin_id)k)->w) ids[n_ids++] = (nt_lin_id)k;
            }
            if (gptq) { // Hessians of this step's inputs, from the block as quantized so far
                cap.layer = l;
                for (int s = 0; s < N_SLOTS; s++) {
                    cap.want[s] = false;
                    cap.nsamples[s] = 0;
                }
                for (int i = 0; i < n_ids; i++) cap.want[slot_of[ids[i]]] = true;
                run_block(m, r, l, x, N, T, false, scratch);
                cap.layer = -1;
                if (cap.failed) {
                    *err = cap.err;
                    goto done;
                }
            }
            for (int i = 0; i < n_ids; i++) {
                nt_linear *lin = nt_layer_linear(ly, ids[i]);
                if (quantize_linear(lin, gptq ? cap.H[slot_of[ids[i]]] : NULL, o, &st.seconds_quantize, err)) {
                    char inner[sizeof(err->msg)];
                    snprintf(inner, sizeof(inner), "%s", err->msg);
                    nt_fail(err, "%s: layer %d %s: %s", m->name, l, nt_lin_name(ids[i]), inner);
                    goto done;
                }
            }
        }
        if (o->nt) {
            double t0 = nt_time();
            if (tweak_block(m, l, x, yf, N, T, o, &st, err)) goto done;
            st.nt_seconds[l] = nt_time() - t0;
            st.seconds_tweak += st.nt_seconds[l];
        }
        if (calibrate) run_block(m, r, l, x, N, T, true, scratch); // the quantized block's outputs feed the next
        st.seconds_per_layer[l] = nt_time() - tl;
        nt_progress_update(&prog, l + 1);
    }
    nt_progress_end(&prog);

    nt_model_quant *mq = &m->quant;
    snprintf(mq->method, sizeof(mq->method), "%s", o->method);
    mq->wbits = o->wbits;
    mq->group_size = o->group_size;
    mq->sym = o->sym;
    mq->act_order = gptq && o->act_order;
    mq->static_groups = gptq && o->static_groups;
    snprintf(mq->calib, sizeof(mq->calib), "%s", calib_str);
    mq->options[0] = '\0';
    if (o->sym) append_opt(mq->options, sizeof(mq->options), "sym");
    if (o->mse) append_opt(mq->options, sizeof(mq->options), "mse");
    if (mq->act_order) append_opt(mq->options, sizeof(mq->options), "act_order");
    if (mq->static_groups) append_opt(mq->options, sizeof(mq->options), "static_groups");
    if (gptq && !o->true_sequential) append_opt(mq->options, sizeof(mq->options), "true_sequential=0");
    if (gptq && o->percdamp != 0.01f) append_opt(mq->options, sizeof(mq->options), "percdamp=%g", o->percdamp);
    if (o->fp32_scales) append_opt(mq->options, sizeof(mq->options), "fp32_scales");
    if (o->nt) {
        append_opt(mq->options, sizeof(mq->options), "loss=%s", nt_loss_name(o->nt_loss));
        if (o->n_lr_grid > 0) {
            char grid[128] = "";
            for (int i = 0; i < o->n_lr_grid; i++)
                snprintf(grid + strlen(grid), sizeof(grid) - strlen(grid), "%s%g", i ? "/" : "", o->nt_lr_grid[i]);
            append_opt(mq->options, sizeof(mq->options), "lr_grid=%s", grid);
        } else {
            append_opt(mq->options, sizeof(mq->options), "lr=%g", o->nt_lr);
        }
        append_opt(mq->options, sizeof(mq->options), "iters=%d", o->nt_iters);
        if (o->nt_batch != 1) append_opt(mq->options, sizeof(mq->options), "batch=%d", o->nt_batch);
        if (o->nt_lr_depth >= 0.0f) append_opt(mq->options, sizeof(mq->options), "lr_depth=%g", o->nt_lr_depth);
    }
    rc = 0;
done:
    st.seconds_total = nt_time() - t_start;
    if (stats && rc == 0) *stats = st;
    else nt_quant_stats_free(&st);
    for (int s = 0; s < N_SLOTS; s++) free(cap.H[s]);
    free(x);
    free(yf);
    free(scratch);
    nt_run_free(&r);
    nt_windows_free(&calib);
    return rc;
}
