// adam.h: Adam on one flat fp32 parameter vector, with torch.optim.Adam's semantics (defaults beta1 0.9,
// beta2 0.999, eps 1e-8, no weight decay, bias-corrected, not amsgrad):
//   t += 1;  m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g^2
//   p -= lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)
// The norm parameters of a block (attn w, b, mlp w, b) are packed into one vector by the caller.
#pragma once
#include "nt.h"

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
