// smoothquant.c: SmoothQuant's smoothing folded into a block (smoothquant.h).
#include "smoothquant.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

void nt_smooth_factors(const float *amax, const float *wmax, int n, float alpha, float *s) {
    for (int j = 0; j < n; j++) {
        bool ok = amax[j] > 0.0f && wmax[j] > 0.0f && isfinite(amax[j]) && isfinite(wmax[j]);
        s[j] = ok ? (float)(pow((double)amax[j], alpha) / pow((double)wmax[j], 1.0 - alpha)) : 1.0f;
        if (!(s[j] > 0.0f) || !isfinite(s[j])) s[j] = 1.0f;
    }
}

// wmax[j] = max(wmax[j], max_n |W[n][j]|) over the linear's rows.
static void col_max(const nt_linear *l, float *wmax) {
    if (!l->w) return;
    for (int n = 0; n < l->out; n++)
        for (int j = 0; j < l->in; j++) wmax[j] = fmaxf(wmax[j], fabsf(l->w[(size_t)n * l->in + j]));
}

static void scale_cols(nt_linear *l, const float *s) {
    if (!l->w) return;
    for (int n = 0; n < l->out; n++)
        for (int j = 0; j < l->in; j++) l->w[(size_t)n * l->in + j] *= s[j];
}

// A norm (whose output feeds the linears lins) divided by s, the linears' columns multiplied by it.
static int fold_norm(nt_norm *nm, int dim, nt_linear *const *lins, int k, const float *amax, float alpha, float *wmax,
                     float *s, nt_err *err) {
    memset(wmax, 0, (size_t)dim * sizeof(float));
    for (int i = 0; i < k; i++) col_max(lins[i], wmax);
    nt_smooth_factors(amax, wmax, dim, alpha, s);
    if (!nm->w) { // read as ones: made explicit to carry the factors
        nm->w = malloc((size_t)dim * sizeof(float));
        if (!nm->w) return nt_fail(err, "out of memory");
        for (int j = 0; j < dim; j++) nm->w[j] = 1.0f;
    }
    for (int j = 0; j < dim; j++) {
        nm->w[j] /= s[j];
        if (nm->b) nm->b[j] /= s[j];
    }
    for (int i = 0; i < k; i++) scale_cols(lins[i], s);
    return 0;
}

// A producer linear's output rows (and bias) divided by s_row (the consumer's columns are multiplied apart).
static void fold_rows(nt_linear *prod, const float *s_row) {
    for (int r = 0; r < prod->out; r++) {
        for (int j = 0; j < prod->in; j++) prod->w[(size_t)r * prod->in + j] /= s_row[r];
        if (prod->b) prod->b[r] /= s_row[r];
    }
}

int nt_smooth_block(nt_model *m, int l, const nt_smooth_stats *st, float alpha, nt_err *err) {
    const nt_config *c = &m->cfg;
    nt_layer *ly = &m->layers[l];
    int D = c->dim, F = c->ffn_dim, hd = c->head_dim, H = c->n_heads, KV = c->n_kv_heads, qd = H * hd;
    int wide = D > F ? D : F;
    wide = wide > qd ? wide : qd;
    float *wmax = malloc((size_t)wide * sizeof(float)), *s = malloc((size_t)wide * sizeof(float));
    float *amax = malloc((size_t)wide * sizeof(float)), *srow = malloc((size_t)wide * sizeof(float));
    int rc = -1;
    if (!wmax || !s || !amax || !srow) {
        nt_fail(err, "out of memory smoothing block %d", l);
        goto done;
    }
    bool at_norms = c->pre_norm && !c->residual_post_norm;
    if (at_norms) { // q/k/v from the attention norm
        nt_linear *lins[3] = {&ly->q, &ly->k, &ly->v};
        if (fold_norm(&ly->attn_norm, D, lins, 3, st->attn_in, alpha, wmax, s, err)) goto done;
    }
    { // o_proj from v_proj: kv channel (kh, d) carries the heads h of its group, channels h * hd + d
        int group = H / KV, kvd = KV * hd;
        memset(wmax, 0, (size_t)qd * sizeof(float));
        col_max(&ly->o, wmax);
        float *ga = amax, *gw = amax + kvd; // group maxima (kvd each); amax holds >= 2 kvd floats (qd >= 2 kvd
                                           // unless H == KV, when group == 1 and the plain per-channel path runs)
        if (group == 1) {
            nt_smooth_factors(st->att, wmax, qd, alpha, srow);
        } else {
            for (int i = 0; i < kvd; i++) ga[i] = gw[i] = 0.0f;
            for (int h = 0; h < H; h++)
                for (int d = 0; d < hd; d++) {
                    int kc = (h / group) * hd + d, j = h * hd + d;
                    ga[kc] = fmaxf(ga[kc], st->att[j]);
                    gw[kc] = fmaxf(gw[kc], wmax[j]);
                }
            nt_smooth_factors(ga, gw, kvd, alpha, srow);
        }
        for (int h = 0; h < H; h++) // s per o column
            for (int d = 0; d < hd; d++) s[h * hd + d] = srow[group == 1 ? h * hd + d : (h / group) * hd + d];
        fold_rows(&ly->v, srow);
        scale_cols(&ly->o, s);
    }
    if (at_norms) { // up/gate from the MLP norm
        nt_linear *lins[2] = {&ly->up, &ly->gate};
        if (fold_norm(&ly->mlp_norm, D, lins, 2, st->mlp_in, alpha, wmax, s, err)) goto done;
    }
    if (ly->gate.w || c->act == NT_ACT_RELU) { // down_proj from up_proj
        memset(wmax, 0, (size_t)F * sizeof(float));
        col_max(&ly->down, wmax);
        nt_smooth_factors(st->down_in, wmax, F, alpha, s);
        fold_rows(&ly->up, s);
        scale_cols(&ly->down, s);
    }
    rc = 0;
done:
    free(wmax);
    free(s);
    free(amax);
    free(srow);
    return rc;
}
