// quant.h: the quantizers that fill the packed format (codec/qformat.h): GPTQ's Quantizer (min/max or
// MSE-clipped scale and zero point), RTN, and GPTQ itself. Reference code: quantizer.c (scale/zero search),
// rtn.c, gptq.c.
#pragma once
#include <math.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "qformat.h"

// ------------------------------------------------------------------------------------------- the quantizer
// GPTQ's Quantizer (quant.py), per row of values (one output channel, or one group of it):
//   xmin = min(min x, 0), xmax = max(max x, 0)
//   sym: xmax = max(|xmin|, xmax); if xmin < 0: xmin = -xmax
//   xmin == xmax == 0 (an all-zero row): xmin = -1, xmax = +1
//   scale = (xmax - xmin) / maxq; zero = sym ? (maxq+1)/2 : round(-xmin / scale)   (round half to even)
//   mse: for p = 1, 1 - 1/grid, ... (maxshrink*grid candidates) the same with p*xmin, p*xmax; keep the candidate
//        with the lowest sum |quantize(x) - x|^norm (the first one on ties).
typedef struct {
    int bits;            // 2, 3, 4, 8
    int group_size;      // 32, 64, 128, or -1 per output channel
    bool sym;
    bool mse;            // GPTQ's MSE-optimal clipping search
    float mse_norm;      // 2.4
    int mse_grid;        // 100
    float mse_maxshrink; // 0.8
    bool scale_f16;      // round every candidate scale to fp16 before use, so that the fp32 result equals the packed
                         // model bit for bit; off (the default) is GPTQ's reference: fp32 scales during
                         // quantization, rounded to fp16 only when stored (a relative 2^-11 of each scale)
} nt_qconfig;

// GPTQ's defaults: asymmetric unless sym, min/max (mse off), grid 100, maxshrink 0.8, norm 2.4, fp32 scales.
nt_qconfig nt_qconfig_make(int bits, int group_size, bool sym);
int nt_qconfig_check(const nt_qconfig *c, nt_err *err);

// Scale and zero point (an integer-valued float in [0, maxq]) for the n values x[0], x[stride], ...
void nt_quant_find_params(const nt_qconfig *c, const float *x, size_t n, size_t stride, float *scale, float *zero);


// --------------------------------------------------------------------------------------------------- RTN
// Round-to-nearest with the quantizer c, per output channel or per group of c->group_size columns.
// W (out, in); *q gets a new nt_qlinear; Wq (out, in) if not NULL gets the fp32 fake-quantized weights
// (fp32 scales, as GPTQ's reference evaluates them; equal to nt_qlinear_dequantize when c->scale_f16).
int nt_rtn_quantize(nt_qlinear **q, float *Wq, const float *W, int out, int in, const nt_qconfig *c, nt_err *err);

// -------------------------------------------------------------------------------------------------- GPTQ
typedef struct {
    nt_qconfig quant;   // bits, group size, sym, mse, ...
    float percdamp;     // dampening: percdamp * mean(diag H) added to the diagonal (0.01)
    int blocksize;      // lazy batch size (128)
    bool act_order;     // quantize columns in order of descending diag(H) (desc_act)
    bool static_groups; // with groups: compute every group's params up front on the un-permuted W
} nt_gptq_config;

nt_gptq_config nt_gptq_config_make(int bits, int group_size, bool sym);

// GPTQ's add_batch: folds the rows of X (n_rows, in) into H (in, in), the running average
//   H *= ns / (ns + batch); ns += batch; H += (2 / ns) X^T X
// where batch is how many samples this call counts as (the reference counts sequences: batch = number of
// sequences whose tokens make up X; pass n_rows to count tokens). Only the scale of H depends on this (GPTQ's
// result does not; its reported loss does). Start with *nsamples = 0 (H is then overwritten, need not be zeroed).
// H stays full and symmetric.
int nt_gptq_hessian_add(float *H, int in, long *nsamples, const float *X, long n_rows, long batch, nt_err *err);

// GPTQ (Frantar et al. 2022; IST-DASLab/gptq fasterquant) of W (out, in) with the Hessian H (in, in, symmetric),
// in float32 like the reference. *q gets a new nt_qlinear (g_idx and perm for act-order); Wq (out, in) if not NULL
// gets the fp32 fake-quantized weights (the reference's Q); *loss (if not NULL) gets the reference's reported
// error: sum over entries of (w - q)^2 / Hinv_cc^2 / 2. W and H are not modified.
// Faithful details: per-channel params come from the original W (before dead columns are zeroed); dead columns
// (H_cc == 0) get H_cc = 1 and W[:, c] = 0; act-order sorts diag(H) descending (stable: ties keep column order);
// on-the-fly groups take their params from the group's columns as updated by all earlier blocks but not by the
// earlier columns of the current block (the reference reads W, not the block's working copy W1), so with
// group_size < blocksize the result depends on blocksize exactly as the reference's does.
int nt_gptq_quantize(nt_qlinear **q, float *Wq, double *loss, const float *W, int out, int in, const float *H,
                     const nt_gptq_config *c, nt_err *err);
