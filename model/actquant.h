// actquant.h: activation quantization of a linear's input (joint weight + activation quantization, W8A8 / W4A8 /
// W4A4): symmetric integer codes for x, an integer dot product with the integer weight codes, then dequantization.
//
// The activations: per token (row) t, dynamic (the default), scale s_t = max_k |x_tk| / qmax (s_t = 1 for an all-zero
// row); or static per tensor, one scale s from calibration (stored in the checkpoint). qmax = 2^(abits-1) - 1 (127
// for 8 bits, 7 for 4 bits) and the code is xq = clamp(rint(x / s), -qmax, qmax) (rint: half to even), in fp32.
//
// The product, for a quantized linear (codec/qformat.h: W[n][k] = scale[g][n] (q[n][k] - zero[g][n]), g = g_idx[k]):
//     y[t][n] = (float)( (double)s_t * sum_g (double)scale[g][n] * I[t][n][g] ) (+ b[n] in fp32)
//     I[t][n][g] = sum_{k in group g} xq[t][k] * (q[n][k] - zero[g][n])           an exact integer
// The groups in ascending order; the fp16 scales widened. I is what an int8 x int8 -> int32 GEMM (IMMA) computes;
// here sgemm computes it exactly on integer-valued floats: a run of K_c columns with |xq| <= qmax and |q - zero| <=
// wmax has every partial sum an integer of magnitude <= qmax * wmax * K_c <= 2^24, which fp32 represents exactly, so
// no addition rounds in whatever order or blocking sgemm uses. A group longer than K_c = floor(2^24 / (qmax wmax)) is
// cut into runs whose integer sums are added in double (exact below 2^53). The result is therefore the same, bit for
// bit, as the integer reference (tests/test_actquant.c), on every BLAS kernel and thread count.
//
// A linear with float weights (no packed codes, e.g. lm_head or a float model evaluated with activation
// quantization) gets fake-quantized activations: y = s_t * (xq . W^T) through sgemm in fp32 (not integer-exact).
//
// Norm tweaking trains through this forward: the backward (model/block_grad.c) treats the quantize-dequantize of x
// as the identity (the straight-through estimator). For the test of that gradient, a linear can record the
// rounding noise e = s_t xq - x of a forward and replay x + e (fp32) in later forwards: a smooth function of x whose
// gradient is the straight-through estimator's.
#pragma once
#include <stdbool.h>
#include <stdint.h>

#include "nt.h"
#include "qformat.h"

typedef enum { NT_ACT_DYNAMIC, NT_ACT_STATIC } nt_act_scheme;
const char *nt_act_scheme_name(nt_act_scheme s); // "dynamic", "static"
int nt_act_scheme_parse(const char *name, nt_act_scheme *s); // -1 when neither

typedef enum { NT_ACTQ_ROUND, NT_ACTQ_RECORD, NT_ACTQ_REPLAY } nt_actq_mode;

typedef struct {
    int bits;             // 8 or 4
    nt_act_scheme scheme;
    float scale;          // static: the per-tensor scale (> 0)
    int qmax;             // 2^(bits-1) - 1
    int in, out;
    // integer weights (NULL for a float linear): q - zero as floats, columns in group order
    float *wint;          // (out, in): column p is the original column col[p]
    float *wscale;        // (n_groups, out) the fp16 scales widened
    int *col;             // (in)
    int *gstart;          // (n_groups + 1): group g is columns gstart[g] .. gstart[g+1]-1 of wint
    int n_groups;
    int run;              // K_c: columns per exact sgemm
    // the straight-through test's noise tape (NT_ACTQ_ROUND otherwise)
    nt_actq_mode mode;
    float *noise;         // (noise_rows, in)
    int noise_rows;
} nt_actq;

// qmax for bits (8: 127, 4: 7).
static inline int nt_actq_qmax(int bits) { return (1 << (bits - 1)) - 1; }

// Activation quantization for a linear (out, in): integer weights from q (may be NULL: float weights). scale: the
// static scheme's per-tensor scale (ignored for dynamic). bits 4..8.
int nt_actq_make(nt_actq **out, const nt_qlinear *q, int out_dim, int in_dim, int bits, nt_act_scheme scheme,
                 float scale, nt_err *err);
void nt_actq_free(nt_actq **a);

// The per-token (or static) scale of a row and its codes as floats: xq (in) integer-valued. Returns the scale.
float nt_actq_quantize_row(const nt_actq *a, const float *x, float *xq);

// y (n, out) = the quantized product described above (+ b), for x (n, in). W (out, in) the linear's fp32 weights
// (used for float linears and the replay mode). Aborts when out of memory (scratch of at most 256 rows).
void nt_actq_forward(nt_actq *a, const float *W, const float *b, const float *x, int n, float *y);

// The straight-through test's tape: mode RECORD makes the next forwards store their rounding noise (for up to rows
// rows, the first call's), REPLAY makes them compute (x + noise) W^T (+ b) in fp32; ROUND frees the tape.
int nt_actq_set_mode(nt_actq *a, nt_actq_mode mode, int rows, nt_err *err);
