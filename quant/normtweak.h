// normtweak.h: norm tweaking (Li et al., "Norm Tweaking: High-performance Low-bit Quantization of Large Language
// Models", AAAI 2024; ../shared/docs/NORM_TWEAKING.md), the method this project is named after: after a block's
// linears are quantized, only its normalization parameters are tuned so that the quantized block's output
// statistics match the float block's on the same (quantized) input. normtweak.c reads top to bottom: the losses,
// Adam, the block's norm parameters, the depth-scaled learning rate, the lr grid on held-out samples, one block.
// The block-by-block driver that calls it is quantize_model.c.
// With activation quantization (--abits, model/actquant.h) the quantized block's forward quantizes every linear's
// input as evaluation does, and the backward passes the gradient through that rounding as the identity (the
// straight-through estimator): it is the gradient of the block with the forward's rounding noise held fixed. The
// float target is always the float block (no activation quantization) on the same input.
#pragma once
#include "method.h"
#include "transformer.h"

// ------------------------------------------------------------------------------------------------ the losses
// Between the float block's output y_f and the quantized block's output y_q for one sample (T tokens, C
// channels), each with its gradient with respect to y_q. Reference code in double accumulation; O(T C).
//
// Per channel c, mu_c = mean over tokens and var_c = variance over tokens, UNBIASED (divide by T - 1):
// torch's Tensor.var()/.std() default, which is what the authors' PyTorch code gets from x.var(dim=...)
// unless it says otherwise; neither the paper nor its README states the correction. For the paper's
// T = 2048 the two differ by a factor 2048/2047 on the variance term only.
// "dist", "mean-std", "mean-std-sse", "mse" (the names the CLI takes).
const char *nt_loss_name(nt_loss_kind kind);
// Parses one of those names; -1 with a message listing them otherwise.
int nt_loss_parse(const char *name, nt_loss_kind *kind, nt_err *err);

// *loss = L(y_f, y_q) for y_f, y_q (T, C) row-major; if dyq is not NULL, dyq (T, C) = dL/dy_q (written).
// |.| has gradient 0 at 0 (torch's sign). The statistics losses need T >= 2 (the unbiased variance).
int nt_loss_eval(nt_loss_kind kind, const float *yf, const float *yq, int T, int C, double *loss, float *dyq,
                 nt_err *err);

// ---------------------------------------------------------------------------------------------------- Adam
// Adam on one flat fp32 parameter vector, with torch.optim.Adam's semantics (defaults beta1 0.9,
// beta2 0.999, eps 1e-8, no weight decay, bias-corrected, not amsgrad):
//   t += 1;  m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g^2
//   p -= lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)
// The norm parameters of a block (attn w, b, mlp w, b) are packed into one vector by the caller.
typedef struct {
    int n;                    // parameters
    long t;                   // steps taken
    float lr, beta1, beta2, eps; // lr may be changed between steps (per-block learning rate)
    float *m, *v;             // (n) first and second moments
} nt_adam;

// A fresh optimizer (zero moments, t = 0) for n parameters with the torch defaults and learning rate lr.
int nt_adam_init(nt_adam **out, int n, float lr, nt_err *err);
void nt_adam_free(nt_adam **a);
// Zero moments and step count (the next block starts a fresh optimizer, as the authors' code does).
void nt_adam_reset(nt_adam *a);
// One step: params (n) updated in place from grads (n).
void nt_adam_step(nt_adam *a, float *params, const float *grads);

// ------------------------------------------------------------------------------------------------ one block
// The depth-scaled learning rate of block l of n_layers: lr (1 + l k / n_layers), k = o->nt_lr_depth or, when
// negative, the authors' 100 (OPT, LLaMA) or 10 (BLOOM).
float nt_normtweak_lr_scale(const nt_quant_opts *o, const nt_config *c, int l);

// What tweaking block l did.
typedef struct {
    float lr;           // the learning rate applied (0: the grid chose not to tweak)
    double loss_before; // mean loss on the held-out samples (or all, without hold-out) before tweaking
    double loss_after;  // and after
    int n_train, n_holdout; // samples tweaked on and held out
} nt_normtweak_block_stats;

// Norm tweaking of block l of m (its linears already quantized): x (N, T, dim) the block's quantized inputs, yf
// (N, T, dim) the float block's outputs on them. Adam on the norm parameters over the first N - holdout samples
// (o->nt_iters passes, o->nt_batch samples per step); with an lr grid, each candidate (and "no tweak") is run from
// the post-quantization start and scored on the held-out samples only, and the best is applied. Updates the
// block's norms in place.
// Two passes the caller may share (either may be NULL): yq0 (N, T, dim), the quantized block's outputs before
// tweaking when the caller has them (GPTQ's driver does: then the "before" loss needs no forward pass), and out
// (N, T, dim), which receives the tweaked block's outputs on x, computed by the pass that scores the result (the
// next block's inputs: out may be x itself).
int nt_normtweak_block(nt_model *m, int l, const float *x, const float *yf, int N, int T, const nt_quant_opts *o,
                       const float *yq0, float *out, nt_normtweak_block_stats *st, nt_err *err);

// Appends norm tweaking's settings (loss=, lr= or lr_grid=, iters=, batch=, lr_depth=) to an option list.
void nt_normtweak_describe(const nt_quant_opts *o, char *buf, size_t cap);
