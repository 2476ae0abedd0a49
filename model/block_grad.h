// block_grad.h: training forward and backward of ONE transformer block for norm tweaking: the gradient of
// a scalar loss with respect to the block's norm parameters (attn_norm / mlp_norm weight and bias), with
// every linear frozen. CPU reference in fp32, matrix products through OpenBLAS sgemm.
//
// One sample of T tokens at positions 0..T-1, causal, no KV cache. nt_block_train_forward computes the
// same output as nt_block_forward (same op order, same fp32 rounding up to sgemm blocking) and keeps what
// nt_block_backward needs in the workspace. Attention probabilities are NOT stored as (H, T, T): the
// forward keeps the per-row softmax max and 1/sum (H, T) and the backward recomputes one head's (T, T)
// probabilities at a time from the saved q and k (one extra q.k^T sgemm per head), bit-identical to the
// forward's, so attention memory is O(T^2) for the whole block, not per head.
//
// Usage per sample:
//   nt_block_grad_init(&g, m, max_T, &err);            once (max_T tokens at most)
//   nt_block_train_forward(m, g, l, x, T, y, &err);    y = block_l(x), activations saved in g
//   loss gradient dL/dy (e.g. nt_loss_eval in quant/normtweak.h)
//   nt_block_backward(m, g, dy, &grads, dx, &err);      grads += dL/d(norm params); dx = dL/dx (or NULL)
//   nt_block_grad_free(&g);
#pragma once
#include "transformer.h"

// Gradients of the four norm vectors of a block, each (dim) or NULL (= not wanted). The backward ADDS into
// them (zero them first; summing over samples of a batch is then free). A NULL norm weight in the model
// reads as ones and a NULL bias as zeros, and their gradients are still computed: the caller may make them
// trainable. Bias gradients exist only for LayerNorm; for RMSNorm attn_b / mlp_b are left untouched.
// Point them into one flat vector to feed nt_adam_step.
typedef struct {
    float *attn_w, *attn_b; // (dim)
    float *mlp_w, *mlp_b;   // (dim)
} nt_norm_grads;

// Workspace: the saved activations of the last nt_block_train_forward plus backward scratch.
typedef struct nt_block_grad nt_block_grad;

// Workspace for samples of up to max_T tokens (max_T <= the model's max_pos for LLaMA's RoPE table).
int nt_block_grad_init(nt_block_grad **out, const nt_model *m, int max_T, nt_err *err);
void nt_block_grad_free(nt_block_grad **g);
// Bytes the workspace holds (for logging memory use).
size_t nt_block_grad_bytes(const nt_block_grad *g);
// Diagnostics (the gradient tests use it to see ReLU kinks): the MLP activation's input saved by the last
// training forward, (T, ffn_dim): the gate projection's output for gated MLPs, else the up projection's.
const float *nt_block_grad_mlp_preact(const nt_block_grad *g);

// y (T, dim) = block l applied to x (T, dim) (x is not modified; y may not alias x). Saves activations
// for nt_block_backward. Returns -1 with a message if T is out of range or l is not a block.
int nt_block_train_forward(const nt_model *m, nt_block_grad *g, int l, const float *x, int T, float *y,
                           nt_err *err);

// Backward of the last nt_block_train_forward (same model weights, norm parameters untouched in between)
// for dL/dy dy (T, dim): adds dL/d(norm params) into grads (may be NULL) and writes dL/dx into dx (T, dim)
// if dx is not NULL. Returns -1 if no forward was run.
int nt_block_backward(const nt_model *m, nt_block_grad *g, const float *dy, const nt_norm_grads *grads,
                      float *dx, nt_err *err);
