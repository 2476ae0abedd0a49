// nll.h: per-position negative log-likelihood from logits, the model math that perplexity and zero-shot scoring
// (eval/) and the GPU forward pass (kernels/) share. Reference: a double-precision log-softmax (nll.c's comment).
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

// Per-position NLL of tokens[1..n-1] from logits (n, vocab): nll[t] = -log softmax(logits[t])[tokens[t+1]].
void nt_nll_from_logits(const float *logits, const int32_t *tokens, int n, int vocab, double *nll);

// Per row t of n: kld[t] = KL(softmax(ref[t]) || softmax(logits[t])) in nats (the reference's distribution first, as
// llama.cpp's perplexity tool reports it) and same_top[t] = whether the two rows' argmax (first maximum) agree. Rows
// that are bit for bit equal give exactly 0.
void nt_kld_from_logits(const float *ref, const float *logits, int n, int vocab, double *kld, bool *same_top);
