// smoothquant.h: SmoothQuant's smoothing (Xiao et al., "SmoothQuant: Accurate and Efficient Post-Training
// Quantization for Large Language Models", ICML 2023), the baseline of joint weight + activation quantization:
// activation outliers are moved into the weights by a per-input-channel factor
//     s_j = max_t |X_tj|^alpha / max_n |W_nj|^(1 - alpha)
// (X the linear's calibration inputs, max over tokens; W the weights of every linear that reads X, max over their
// rows together), X_j / s_j and W[:, j] * s_j, which leaves X W^T unchanged. The division is folded into whatever
// produces X, so the float model computes the same function (up to fp32 rounding):
//   q/k/v (the attention norm's output), up/gate (the MLP norm's): into the norm's weight and bias (pre-norm blocks;
//     OPT's post-norm blocks and BLOOM's apply_residual_connection_post_layernorm, whose residual is the normed
//     input itself, are not smoothed there);
//   o_proj (attention output, no norm before it): into v_proj's rows and bias, the attention being linear in v;
//     with grouped-query attention the heads sharing a kv head share its factors (max over them of both maxima);
//   down_proj (the MLP's hidden activations): into up_proj's rows and bias when the MLP is gated (act(gate) * up is
//     linear in up) or ReLU (relu(x / s) = relu(x) / s for s > 0); a GELU MLP's down_proj is not smoothed.
// A channel whose activation or weight maximum is 0 keeps s = 1. The driver (quantize_model.c) smooths a block
// with statistics from its float linears on the calibration inputs, before quantizing its weights.
#pragma once
#include "transformer.h"

// The per-channel maxima of |X| over the calibration tokens of block l's four linear inputs: the attention's input
// (dim), the attention output (n_heads * head_dim), the MLP's input (dim), the MLP's hidden activations (ffn_dim).
typedef struct {
    const float *attn_in, *att, *mlp_in, *down_in;
} nt_smooth_stats;

// Smooths block l of m in place with migration strength alpha in [0, 1].
int nt_smooth_block(nt_model *m, int l, const nt_smooth_stats *st, float alpha, nt_err *err);

// s (n) from activation maxima amax (n) and weight maxima wmax (n): the formula above.
void nt_smooth_factors(const float *amax, const float *wmax, int n, float alpha, float *s);
