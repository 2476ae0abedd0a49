// gpu_ops.h: the device operations of the GPU forward pass (kernels/forward.cu) besides the matrix products of
// gpu.h: embedding, norms, RoPE, causal attention, activations, bias and residual adds. Internal to kernels/
// (gpu_forward.c strings them into a model); each mirrors a step of transformer.c's CPU reference, in fp32
// arithmetic over fp16 activations. All pointers are device pointers; every call is asynchronous on the
// context's stream and returns -1 with a message on a launch error.
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "gpu.h" // first: in the emulated build it also renames the names below (gpu_emu_names.h)

#ifdef __cplusplus
extern "C" {
#endif

// out (n, E) fp32 = table[tokens[t]] (vocab, E) fp32.
int nt_gpu_op_embed(nt_gpu_ctx *ctx, const int32_t *tokens, int n, const float *table, int E, float *out, nt_err *err);
// x (n, D) fp32 += table[row0 + t] (rows, D): learned positions.
int nt_gpu_op_add_rows(nt_gpu_ctx *ctx, float *x, const float *table, int row0, int n, int D, nt_err *err);
// LayerNorm (rms false) or RMSNorm of each row of x (n, D) fp32 with weight w and bias b (NULL: ones / zeros),
// into y32 (n, D) fp32 (may alias x) and/or y16 (n, D) fp16 (either may be NULL).
int nt_gpu_op_norm(nt_gpu_ctx *ctx, const float *x, int n, int D, const float *w, const float *b, bool rms, float eps,
                   float *y32, uint16_t *y16, nt_err *err);
// y (count) fp16 = x fp32.
int nt_gpu_op_to_f16(nt_gpu_ctx *ctx, const float *x, size_t count, uint16_t *y, nt_err *err);
// y (n, N) fp16 += b (N) fp32 (rounded once to fp16).
int nt_gpu_op_bias(nt_gpu_ctx *ctx, uint16_t *y, const float *b, int n, int N, nt_err *err);
// x (n, D) fp32 = (base ? base : x) + y fp16 (the residual add; base: BLOOM's normed-input residual).
int nt_gpu_op_residual(nt_gpu_ctx *ctx, float *x, const float *base, const uint16_t *y, int n, int D, nt_err *err);
// Rotate-half RoPE in place on x (n, heads, hd) fp16 at positions 0..n-1; cs, sn (n, hd/2) fp32 tables.
int nt_gpu_op_rope(nt_gpu_ctx *ctx, uint16_t *x, int n, int heads, int hd, const float *cs, const float *sn,
                   nt_err *err);
// Causal softmax attention of n positions (a fresh sequence): q (n, H*hd), k, v (n, KVH*hd) fp16, heads sharing
// K/V in groups of H/KVH, scores scaled by 1/sqrt(hd), plus alibi[h] * (j - t) when alibi is not NULL;
// out (n, H*hd) fp16.
int nt_gpu_op_attention(nt_gpu_ctx *ctx, const uint16_t *q, const uint16_t *k, const uint16_t *v, int n, int H,
                        int KVH, int hd, const float *alibi, uint16_t *out, nt_err *err);
// h (count) fp16 = act(gate) * h when gate is not NULL (gated MLP), else act(h); act as transformer.h's nt_act.
int nt_gpu_op_act(nt_gpu_ctx *ctx, uint16_t *h, const uint16_t *gate, size_t count, int act, nt_err *err);

#ifdef __cplusplus
}
#endif
