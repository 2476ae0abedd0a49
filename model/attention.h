// attention.h: causal softmax attention on the CPU, the one kernel behind the inference forward
// (transformer.c) and norm tweaking's training pass (block_grad.c), so both see the same probabilities.
//
// Causal: a query at position p only scores keys 0..p. Queries go in blocks of NT_ATTN_BLOCK rows; a block
// of queries at positions p0..p1-1 scores keys 0..p1-1 only (the old kernel scored every key of the context
// and then zeroed the upper triangle: about twice the work at long contexts). Within the block the few
// scores past a row's own position are computed and dropped (set to exactly 0 before the value product).
// The (sequence, head, query block) tasks run in parallel, each with single-threaded sgemm calls (OpenBLAS
// runs single-threaded inside an OpenMP region) and its own scratch.
//
// Layout: n_seq sequences advance in lockstep, position-major: query/output row (t * n_seq + b) is sequence b's
// token at position pos0 + t; the key/value cache holds row (p * n_seq + b) for position p of sequence b.
#pragma once
#include <stdbool.h>
#include <stddef.h>

enum { NT_ATTN_BLOCK = 64 }; // query rows per task (one block's scores of a 2048 context: 512 KiB, in L2)

typedef struct {
    int n_heads, n_kv_heads, head_dim; // n_heads a multiple of n_kv_heads (grouped-query attention)
    const float *alibi;                // (n_heads) BLOOM's slopes, or NULL
} nt_attn_dims;

// Floats of scratch the kernel needs for contexts of up to max_ctx keys and up to n_threads tasks at once.
size_t nt_attn_scratch_floats(int max_ctx, int n_threads);

// out (n * n_seq, n_heads * head_dim) = softmax(q k^T / sqrt(head_dim) + alibi, causal) v for queries q
// (n * n_seq, n_heads * head_dim) at positions pos0..pos0+n-1 against the cache k, v ((pos0 + n) * n_seq,
// n_kv_heads * head_dim), which already holds the new keys. scratch: nt_attn_scratch_floats(pos0 + n,
// n_threads) floats; at most n_threads OpenMP threads are used. When smax and sinv are not NULL (n_seq 1 only),
// they get each row's softmax max and 1/sum, (n_heads, n): the training pass's backward recomputes the
// probabilities from them with nt_attn_probs.
void nt_attn_forward(const nt_attn_dims *d, const float *q, const float *k, const float *v, int n, int n_seq,
                     int pos0, float *out, float *scratch, int n_threads, float *smax, float *sinv);

// One head's probabilities for the query rows t0..t1-1 (positions pos0 + t) of one sequence: P (t1 - t0,
// pos0 + t1), row-major with leading dimension ldp >= pos0 + t1, the entries past each row's own position 0. q
// rows have stride ldq floats, k rows ldk. With save, smax/sinv (indexed by t) are written, else read: the
// probabilities are then the same, bit for bit, as when they were saved (same shapes, same operations).
// The forward's kernel; exposed for the backward of block_grad.c.
void nt_attn_probs(const nt_attn_dims *d, int h, const float *q, int ldq, const float *k, int ldk, int t0, int t1,
                   int pos0, float *P, int ldp, bool save, float *smax, float *sinv);
