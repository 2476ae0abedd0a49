// quantize_model.c: the block-by-block quantization driver (see quantize_model.h). Reads top to bottom:
// options, calibration capture (Hessians through the run's capture hook), one block, the whole model.
#define _POSIX_C_SOURCE 200809L
#include "quantize_model.h"

#include "calibgen.h"
#include "normtweak.h"
#include "smoothquant.h"

#include <math.h>
#include <stdarg.h>
#include <string.h>

void nt_quant_opts_describe(const nt_quant_opts *o, char *buf, size_t cap) {
    const nt_method *me = nt_method_find(o->method);
    buf[0] = '\0';
    if (!me || !me->quantizer) return;
    me->quantizer->describe(o, buf, cap);
    if (me->smooth) nt_opts_append(buf, cap, "alpha=%g", o->smooth_alpha);
    if (o->abits < 16 && o->act_static) nt_opts_append(buf, cap, "act_scheme=static");
    if (me->tweak) nt_normtweak_describe(o, buf, cap);
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
    bool hess;         // add to the Hessians (off in SmoothQuant's statistics pass)
    float *amax[N_SLOTS]; // (in) per-channel max |x| over the tokens seen (SmoothQuant, static activation scales)
    int in[N_SLOTS];
    long nsamples[N_SLOTS];
    int failed;        // an allocation failed inside the hook
    nt_err err;
} capture_ctx;

static void capture_hook(void *vctx, int layer, nt_lin_id which, const float *x, int n, int in) {
    capture_ctx *c = vctx;
    int s = slot_of[which];
    if (layer != c->layer || !c->want[s] || slot_rep[s] != which || c->failed) return;
    if (c->amax[s])
        for (int t = 0; t < n; t++)
            for (int k = 0; k < in; k++) c->amax[s][k] = fmaxf(c->amax[s][k], fabsf(x[(size_t)t * in + k]));
    // one calibration sequence per call, as GPTQ's add_batch counts them
    if (c->hess && c->H[s] && nt_gptq_hessian_add(c->H[s], in, &c->nsamples[s], x, n, 1, &c->err)) c->failed = 1;
}

// ----------------------------------------------------------------------------
// one linear

static int quantize_linear(nt_linear *lin, const nt_quantizer *qz, const float *H, const float *amax,
                           const nt_quant_opts *o, double *seconds, nt_err *err) {
    double t0 = nt_time();
    nt_qlinear *q = NULL;
    // the fake-quantized weights replace the float ones: evaluation sees what the quantizer produced
    float *Wq = malloc((size_t)lin->out * lin->in * sizeof(float));
    if (!Wq) return nt_fail(err, "out of memory quantizing a %dx%d linear", lin->out, lin->in);
    if (qz->quantize(&q, Wq, lin->w, lin->out, lin->in, H, o, err)) {
        free(Wq);
        return -1;
    }
    free(lin->w);
    lin->w = Wq;
    nt_qlinear_free(&lin->q);
    lin->q = q;
    *seconds += nt_time() - t0;
    if (o->abits >= 16) return 0;
    // its input quantized from now on (the later passes see the block as it will be evaluated); static: the
    // per-tensor scale from the maximum |x| of the calibration pass that gave its statistics
    float scale = 0.0f;
    if (o->act_static) {
        float mx = 0.0f;
        for (int k = 0; k < lin->in; k++) mx = fmaxf(mx, amax[k]);
        scale = mx > 0.0f ? mx / (float)nt_actq_qmax(o->abits) : 1.0f;
    }
    return nt_actq_make(&lin->aq, lin->q, lin->out, lin->in, o->abits, o->act_static ? NT_ACT_STATIC : NT_ACT_DYNAMIC,
                        scale, err);
}

// ----------------------------------------------------------------------------
// the whole model

// Runs block l over every calibration sample j from point `from` to point `to` (transformer.h), on x_j (N, T, dim)
// in place. Stops before a linear leave x_j as it was (the capture hook sees the inputs); when `save` is not
// NULL, each sample's r->att (stop at NT_BLOCK_O) or x_j (other stops) is copied to save + j * save_sz after the
// pass, and when `load` is not NULL, r->att is loaded from load + j * load_sz before resuming at NT_BLOCK_O.
static void pass_block(const nt_model *m, nt_run *r, int l, float *x, int N, int T, nt_block_point from,
                       nt_block_point to, const float *load, size_t load_sz, float *save, size_t save_sz) {
    size_t sz = (size_t)T * m->cfg.dim;
    for (int j = 0; j < N; j++) {
        float *xj = x + (size_t)j * sz;
        nt_run_reset(r);
        if (load) memcpy(r->att, load + (size_t)j * load_sz, load_sz * sizeof(float));
        nt_block_forward_range(m, r, l, xj, T, 0, from, to);
        if (save) memcpy(save + (size_t)j * save_sz, to == NT_BLOCK_O ? r->att : xj, save_sz * sizeof(float));
    }
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
    const nt_method *me = nt_method_find(o->method);
    const nt_quantizer *qz = me->quantizer;
    bool act_static = o->abits < 16 && o->act_static, smooth = me->smooth;
    bool hessians = qz->calibrates, tweak = me->tweak, capture = hessians || act_static;
    bool calibrate = capture || tweak || smooth;
    st.seconds_per_layer = calloc((size_t)c->n_layers, sizeof(double));
    if (tweak) {
        st.nt_lr_used = calloc((size_t)c->n_layers, sizeof(float));
        st.nt_seconds = calloc((size_t)c->n_layers, sizeof(double));
        st.nt_loss_before = calloc((size_t)c->n_layers, sizeof(double));
        st.nt_loss_after = calloc((size_t)c->n_layers, sizeof(double));
    }
    if (!st.seconds_per_layer || (tweak && (!st.nt_lr_used || !st.nt_seconds || !st.nt_loss_before || !st.nt_loss_after))) {
        nt_quant_stats_free(&st);
        return nt_fail(err, "out of memory");
    }

    nt_windows calib = {0};
    nt_run *r = NULL;
    float *x = NULL, *yf = NULL, *scratch = NULL, *att_keep = NULL, *mid_keep = NULL;
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
        yf = tweak ? malloc((size_t)N * T * c->dim * sizeof(float)) : NULL;
        scratch = malloc((size_t)T * c->dim * sizeof(float));
        int ins[N_SLOTS] = {c->dim, c->n_heads * c->head_dim, c->dim, c->ffn_dim};
        bool ok = x && scratch && (!tweak || yf);
        for (int s = 0; s < N_SLOTS && ok; s++) {
            cap.in[s] = ins[s];
            if (hessians) ok = (cap.H[s] = malloc((size_t)ins[s] * ins[s] * sizeof(float))) != NULL;
            if (ok && (smooth || act_static)) ok = (cap.amax[s] = malloc((size_t)ins[s] * sizeof(float))) != NULL;
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

    // The steps of a block: which linears are quantized together, from which Hessian, and how far into the block
    // the capture pass has to go for their input (true-sequential: the Hessians of a step come from the block as
    // quantized by the steps before it). A pass stops before the step's linears, and two intermediate results are
    // kept from one step to the next instead of recomputed: the attention output (o_proj's input; it depends only
    // on q/k/v, quantized in step 0) and the residual stream between the sublayers (the MLP's input, fixed once o
    // is quantized). Each pass computes exactly what the whole-block pass computed up to its stop, so the
    // Hessians, and the quantized weights, are bit for bit those of running the whole block each time.
    static const nt_lin_id seq_steps[4][3] = {{NT_LIN_Q, NT_LIN_K, NT_LIN_V}, {NT_LIN_O, NT_LIN_COUNT, NT_LIN_COUNT},
                                              {NT_LIN_UP, NT_LIN_GATE, NT_LIN_COUNT},
                                              {NT_LIN_DOWN, NT_LIN_COUNT, NT_LIN_COUNT}};
    size_t sz = (size_t)T * c->dim, att_sz = (size_t)T * c->n_heads * c->head_dim;
    bool sequential = hessians && qz->sequential && o->true_sequential;
    if (sequential) { // the kept results: (N, T, qd) and (N, T, dim); without the memory, recomputed each step
        att_keep = malloc((size_t)N * att_sz * sizeof(float));
        mid_keep = att_keep ? malloc((size_t)N * sz * sizeof(float)) : NULL;
        if (!mid_keep) {
            free(att_keep);
            att_keep = NULL;
        }
    }
    nt_progress prog;
    nt_progress_begin(&prog, o->method, c->n_layers);
    for (int l = 0; l < c->n_layers; l++) {
        double tl = nt_time();
        nt_layer *ly = &m->layers[l];
        if (tweak) { // the target: the FLOAT block applied to the quantized input
            cap.layer = -1;
            memcpy(yf, x, (size_t)N * sz * sizeof(float));
            pass_block(m, r, l, yf, N, T, NT_BLOCK_START, NT_BLOCK_END, NULL, 0, NULL, 0);
        }
        if (smooth) { // SmoothQuant: the float block's input maxima on the calibration inputs, folded in
            cap.layer = l;
            cap.hess = false;
            for (int s = 0; s < N_SLOTS; s++) {
                cap.want[s] = true;
                memset(cap.amax[s], 0, (size_t)cap.in[s] * sizeof(float));
            }
            for (int j = 0; j < N; j++) {
                memcpy(scratch, x + (size_t)j * sz, sz * sizeof(float));
                pass_block(m, r, l, scratch, 1, T, NT_BLOCK_START, NT_BLOCK_END, NULL, 0, NULL, 0);
            }
            cap.layer = -1;
            nt_smooth_stats ss = {cap.amax[SLOT_ATTN_IN], cap.amax[SLOT_ATTN_OUT], cap.amax[SLOT_MLP_IN],
                                  cap.amax[SLOT_MLP_OUT]};
            if (nt_smooth_block(m, l, &ss, o->smooth_alpha, err)) goto done;
        }
        int n_steps = sequential ? 4 : 1;
        bool mid_ready = false; // mid_keep holds this block's residual stream between the sublayers
        for (int step = 0; step < n_steps; step++) {
            // the linears of this step (all of them when not true-sequential)
            nt_lin_id ids[NT_LIN_COUNT];
            int n_ids = 0;
            for (int k = 0; k < NT_LIN_COUNT; k++) {
                bool in_step = n_steps == 1;
                for (int j = 0; j < 3 && !in_step; j++) in_step = seq_steps[step][j] == (nt_lin_id)k;
                if (in_step && nt_layer_linear(ly, (nt_lin_id)k)->w) ids[n_ids++] = (nt_lin_id)k;
            }
            if (capture) { // Hessians (and maxima) of this step's inputs, from the block as quantized so far
                cap.layer = l;
                cap.hess = hessians;
                for (int s = 0; s < N_SLOTS; s++) {
                    cap.want[s] = false;
                    cap.nsamples[s] = 0;
                    if (cap.amax[s]) memset(cap.amax[s], 0, (size_t)cap.in[s] * sizeof(float));
                }
                for (int i = 0; i < n_ids; i++) cap.want[slot_of[ids[i]]] = true;
                if (!sequential) { // every linear's input from one pass of the float block, on a copy
                    for (int j = 0; j < N; j++) {
                        memcpy(scratch, x + (size_t)j * sz, sz * sizeof(float));
                        pass_block(m, r, l, scratch, 1, T, NT_BLOCK_START, NT_BLOCK_END, NULL, 0, NULL, 0);
                    }
                } else if (step == 0) { // q/k/v read the attention norm's output: no linear to run
                    pass_block(m, r, l, x, N, T, NT_BLOCK_START, NT_BLOCK_QKV, NULL, 0, NULL, 0);
                } else if (step == 1) { // o_proj's input: attention with the quantized q/k/v
                    pass_block(m, r, l, x, N, T, NT_BLOCK_START, NT_BLOCK_O, NULL, 0, att_keep, att_sz);
                } else if (step == 2) { // up/gate's input: o_proj, residual, MLP norm (x_j kept, a copy goes on)
                    if (att_keep) {
                        memcpy(mid_keep, x, (size_t)N * sz * sizeof(float));
                        pass_block(m, r, l, mid_keep, N, T, NT_BLOCK_O, NT_BLOCK_UP, att_keep, att_sz, NULL, 0);
                        mid_ready = true;
                    } else {
                        for (int j = 0; j < N; j++) {
                            memcpy(scratch, x + (size_t)j * sz, sz * sizeof(float));
                            pass_block(m, r, l, scratch, 1, T, NT_BLOCK_START, NT_BLOCK_UP, NULL, 0, NULL, 0);
                        }
                    }
                } else { // down's input: the MLP's hidden activations
                    if (mid_ready) {
                        pass_block(m, r, l, mid_keep, N, T, NT_BLOCK_UP, NT_BLOCK_DOWN, NULL, 0, NULL, 0);
                    } else {
                        for (int j = 0; j < N; j++) {
                            memcpy(scratch, x + (size_t)j * sz, sz * sizeof(float));
                            pass_block(m, r, l, scratch, 1, T, NT_BLOCK_START, NT_BLOCK_DOWN, NULL, 0, NULL, 0);
                        }
                    }
                }
                cap.layer = -1;
                if (cap.failed) {
                    *err = cap.err;
                    goto done;
                }
            }
            for (int i = 0; i < n_ids; i++) {
                nt_linear *lin = nt_layer_linear(ly, ids[i]);
                if (quantize_linear(lin, qz, hessians ? cap.H[slot_of[ids[i]]] : NULL, cap.amax[slot_of[ids[i]]], o,
                                    &st.seconds_quantize, err)) {
                    char inner[sizeof(err->msg)];
                    snprintf(inner, sizeof(inner), "%s", err->msg);
                    nt_fail(err, "%s: layer %d %s: %s", m->name, l, nt_lin_name(ids[i]), inner);
                    goto done;
                }
            }
        }
        if (tweak) { // the tweak's last pass also gives the next block's inputs, into x
            if (mid_ready) // the untweaked quantized outputs, for the "before" loss: the MLP on the kept residual
                pass_block(m, r, l, mid_keep, N, T, NT_BLOCK_UP, NT_BLOCK_END, NULL, 0, NULL, 0);
            double t0 = nt_time();
            nt_normtweak_block_stats bs;
            if (nt_normtweak_block(m, l, x, yf, N, T, o, mid_ready ? mid_keep : NULL, x, &bs, err)) goto done;
            st.nt_lr_used[l] = bs.lr;
            st.nt_loss_before[l] = bs.loss_before;
            st.nt_loss_after[l] = bs.loss_after;
            st.nt_seconds[l] = nt_time() - t0;
            st.seconds_tweak += st.nt_seconds[l];
        }
        // the quantized block's outputs feed the next (tweaked: done above): from the kept MLP input when there is one
        if (!tweak && calibrate && mid_ready) {
            memcpy(x, mid_keep, (size_t)N * sz * sizeof(float));
            pass_block(m, r, l, x, N, T, NT_BLOCK_UP, NT_BLOCK_END, NULL, 0, NULL, 0);
        } else if (!tweak && calibrate) {
            pass_block(m, r, l, x, N, T, NT_BLOCK_START, NT_BLOCK_END, NULL, 0, NULL, 0);
        }
        st.seconds_per_layer[l] = nt_time() - tl;
        nt_progress_update(&prog, l + 1);
    }
    nt_progress_end(&prog);

    nt_model_quant *mq = &m->quant;
    snprintf(mq->method, sizeof(mq->method), "%s", o->method);
    mq->wbits = o->wbits;
    mq->group_size = o->group_size;
    mq->sym = o->sym;
    mq->act_order = hessians && o->act_order;
    mq->static_groups = hessians && o->static_groups;
    mq->abits = o->abits;
    mq->act_static = act_static;
    snprintf(mq->calib, sizeof(mq->calib), "%s", calib_str);
    mq->options[0] = '\0';
    nt_quant_opts_describe(o, mq->options, sizeof(mq->options));
    rc = 0;
done:
    st.seconds_total = nt_time() - t_start;
    if (stats && rc == 0) *stats = st;
    else nt_quant_stats_free(&st);
    for (int s = 0; s < N_SLOTS; s++) {
        free(cap.H[s]);
        free(cap.amax[s]);
    }
    free(x);
    free(yf);
    free(scratch);
    free(att_keep);
    free(mid_keep);
    nt_run_free(&r);
    nt_windows_free(&calib);
    return rc;
}
