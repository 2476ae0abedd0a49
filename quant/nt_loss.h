// nt_loss.h: the norm-tweaking losses between the float block's output y_f and the quantized block's
// output y_q for one sample (T tokens, C channels), each with its gradient with respect to y_q.
// Reference code in double accumulation; O(T C), negligible next to the block's backward.
//
// Per channel c, mu_c = mean over tokens and var_c = variance over tokens, UNBIASED (divide by T - 1):
// torch's Tensor.var()/.std() default, which is what the authors' PyTorch code gets from x.var(dim=...)
// unless it says otherwise; neither the paper nor its README states the correction. For the paper's
// T = 2048 the two differ by a factor 2048/2047 on the variance term only.
#pragma once
#include "nt.h"

typedef enum {
    NT_LOSS_DIST,        // paper: (1/C) sum_c |mu_f - mu_q| + |var_f - var_q|
    NT_LOSS_MEANSTD,     // authors' code: sum_c (mu_f - mu_q)^2 + (sd_f - sd_q)^2, sd = sqrt(var + 1e-6)
    NT_LOSS_MEANSTD_SSE, // authors' OPT script: mean-std + sum over all elements of (y_f - y_q)^2
    NT_LOSS_MSE,         // ablation baseline: mean over all elements of (y_f - y_q)^2
    NT_LOSS_COUNT
} nt_loss_kind;

// "dist", "mean-std", "mean-std-sse", "mse" (the names the CLI takes).
const char *nt_loss_name(nt_loss_kind kind);
// Parses one of those names; -1 with a message listing them otherwise.
int nt_loss_parse(const char *name, nt_loss_kind *kind, nt_err *err);

// *loss = L(y_f, y_q) for y_f, y_q (T, C) row-major; if dyq is not NULL, dyq (T, C) = dL/dy_q (written).
// |.| has gradient 0 at 0 (torch's sign). The statistics losses need T >= 2 (the unbiased variance).
int nt_loss_eval(nt_loss_kind kind, const float *yf, const float *yq, int T, int C, double *loss, float *dyq,
                 nt_err *err);
