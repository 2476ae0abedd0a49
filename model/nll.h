// nll.h: per-position negative log-likelihood from logits, the model math that perplexity and zero-shot scoring
// (eval/) and the GPU forward pass (kernels/) share. Reference: a double-precision log-softmax (nll.c's comment).
#pragma once
#include <stddef.h>
#include <stdint.h>

// Per-position NLL of tokens[1..n-1] from logits (n, vocab): nll[t] = -log softmax(logits[t])[tokens[t+1]].
void nt_nll_from_logits(const float *logits, const int32_t *tokens, int n, int vocab, double *nll);
