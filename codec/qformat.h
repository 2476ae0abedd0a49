// qformat.h: the one source of truth for normtweak's packed low-bit weight format, shared by the CPU reference,
// the checkpoint codecs (native and GPTQ), the model loader and the CUDA kernels. Reference code: pack.c (layout,
// traits table, packing, dequantization). The quantizers that fill it (RTN, GPTQ) are in quant/quant.h.
//
// ------------------------------------------------------------------------------------------------ the format
// A quantized linear y = x W^T + b with W (out=N, in=K) stores, per output channel n and input column k, an integer
// code q in [0, maxq] (maxq = 2^bits - 1) and dequantizes as
//     W[n][k] = scale[g][n] * (q[n][k] - zero[g][n]),   g = g_idx[k]
// (exactly GPTQ's Quantizer: quantize(x) = scale * (clamp(round(x / scale) + zero, 0, maxq) - zero)).
//
// qweight (K*bits/32, N) uint32, packed along K, one column per output channel (GPTQ / AutoGPTQ orientation):
//   the K dimension is cut into packs of 32 consecutive values; pack c (k = 32c .. 32c+31) of column n occupies
//   the `bits` words qweight[c*bits + w][n], w = 0..bits-1, read as one little-endian stream of 32*bits bits in
//   which value j sits at bit offset bits*j. For 2, 4 and 8 bits no value straddles a word (word w holds values
//   w*32/bits .. and value j is at bit (j % (32/bits))*bits: AutoGPTQ's layout); for 3 bits the stream is exactly
//   GPTQ's 3-bit scheme (10 values + 2 low bits | 1 high bit + 10 values + 1 low bit | 2 high bits + 10 values).
//   Why: a warp whose threads own consecutive output channels n loads qweight[row][n .. n+31] in one coalesced
//   128-byte transaction per word row, each thread gets 32/bits (or, for 3 bits, 32 values from 3 words) codes of
//   the same column with shift-and-mask (the 3-bit straddles cost two extra ORs per 32 values), and the loop over
//   K walks down rows of the matrix. Tensor-core kernels (Marlin-style) reshuffle this canonical layout into their
//   private tile order once, at load time; the canonical layout stays the interchange format.
// scales (n_groups, N) fp16: row g holds group g's scales for all channels (coalesced along N, like qweight).
//   Caveat of fp16: scales below 2^-14 (6.1e-5) are subnormal, with an absolute step of 2^-24, so a group whose
//   weights span less than ~0.016 at 8 bits (~1e-3 at 4 bits) keeps less than fp16's 11-bit relative precision.
// zeros  (n_groups, N) uint8, asymmetric only: the zero point itself, 0..maxq (NOT GPTQ's qzeros, which pack
//   zero-1 along N in int32 words). Why uint8: one layout for every bit width (3-bit zeros packed along N would
//   straddle words, and N need not be a multiple of 32/bits), no unpacking and no off-by-one convention in the
//   kernels (AutoGPTQ's "zero - 1" is a known source of bugs), a coalesced byte load per channel per group; the
//   cost is at most 8 bits per group: 0.0625 bits/weight at g128, 0.25 at g32. Kernels that prefer a fused
//   scale*zero precompute it from these at load time.
//   Symmetric quantization stores no zeros (zeros == NULL): the zero point is GPTQ's (maxq+1)/2 = 2^(bits-1).
// g_idx (K) int32: the group of each input column. Without act-order g_idx[k] = k / group_size (trivial; kernels
//   may ignore it). With act-order (desc_act) columns are quantized in the order perm (descending Hessian
//   diagonal) and groups are formed in that order, so g_idx[perm[j]] = j / group_size; with act-order and static
//   groups, groups are the contiguous K ranges again and g_idx is trivial (that is what static groups are for).
// perm (K) int32 or NULL: with act-order, the quantization order (perm[j] = the original column quantized j-th).
//   Kernels that want monotonic groups (exllama-style) permute qweight rows and x by it at load time.
// group_size: 32, 64, 128, or -1 for per output channel (one group spanning all of K: n_groups = 1).
// K need not be a multiple of group_size: n_groups = ceil(K / group_size) and the last group is shorter, as in
// GPTQ's reference (its groups are W[:, i:i+groupsize] slices) and AutoGPTQ's format (ceil(K / group_size) rows
// of scales and qzeros). SmolLM2's hidden size 576 with groups of 128: four groups of 128, one of 64. K need not be a multiple of 32: the last pack is then padded with zero
// codes (qweight has ceil(K/32)*bits rows), which dequantization and kernels ignore (k >= K).
#pragma once
#include <math.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "nt.h"

#define NT_QPACK 32     // values per pack along K

// Packs along K: ceil(K / 32) (the last one padded).
static inline int nt_qpacks(int in) { return (in + NT_QPACK - 1) / NT_QPACK; }
// Groups along K: ceil(K / group_size), or 1 per channel (group_size -1); the last one may be shorter.
static inline int nt_qgroups(int in, int group_size) { return group_size > 0 ? (in + group_size - 1) / group_size : 1; }
#define NT_QBITS_MAX 8  // widest supported code

// A pack of 32 values of `bits` bits fills exactly `bits` 32-bit words: no padding, for every bit width.
_Static_assert(sizeof(uint32_t) * 8 == NT_QPACK, "one pack of 32 values of b bits must be exactly b words");
_Static_assert((1u << NT_QBITS_MAX) - 1 <= UINT8_MAX, "codes and zero points must fit uint8");
_Static_assert(sizeof(uint16_t) == 2 && sizeof(int32_t) == 4, "fp16 scales and int32 g_idx");

// Packs 32 codes (each <= maxq) into `bits` words w[0], w[stride], ..., or unpacks them again.
typedef void (*nt_qpack_fn)(const uint8_t *q /*(32)*/, uint32_t *w, size_t stride);
typedef void (*nt_qunpack_fn)(const uint32_t *w, size_t stride, uint8_t *q /*(32)*/);

// Per bit width traits: the only place bit widths differ.
typedef struct {
    int bits;
    int maxq;            // 2^bits - 1
    int words_per_pack;  // 32-bit words per 32 values along K (== bits)
    int values_per_word; // 32/bits when no value straddles a word boundary (2, 4, 8 bits); 0 for 3 bits
    int sym_zero;        // the implied zero point of symmetric quantization: (maxq + 1) / 2
    nt_qpack_fn pack;
    nt_qunpack_fn unpack;
} nt_qtraits;

// The traits of a supported bit width (2, 3, 4, 8), or NULL.
const nt_qtraits *nt_qtraits_get(int bits);

// Checks a shape and format: positive dimensions, supported bits and group size.
// Messages read like "unsupported group size 48 (supported: 32, 64, 128, or -1 for per channel)".
int nt_qformat_check(int out, int in, int bits, int group_size, nt_err *err);

typedef struct {
    int out, in;       // N, K
    int bits;          // 2, 3, 4 or 8
    int group_size;    // 32, 64, 128, or -1 (per output channel)
    int n_groups;      // ceil(in / group_size), or 1 per channel
    bool sym;          // symmetric: no zeros, zero point (maxq+1)/2
    uint32_t *qweight; // (ceil(in/32)*bits, out), packed along K as described above
    uint16_t *scales;  // (n_groups, out) fp16
    uint8_t *zeros;    // (n_groups, out), 0..maxq; NULL when sym
    int32_t *g_idx;    // (in) group of each input column
    int32_t *perm;     // (in) act-order quantization order; NULL without act-order
} nt_qlinear;

// Allocates a zeroed nt_qlinear (g_idx set to the trivial k / group_size; perm allocated, identity, when act_order).
int nt_qlinear_alloc(nt_qlinear **q, int out, int in, int bits, int group_size, bool sym, bool act_order,
                     nt_err *err);
void nt_qlinear_free(nt_qlinear **q);
// Checks the contents of a filled nt_qlinear (from a file, say): g_idx in range, zeros <= maxq, finite scales,
// perm a permutation. The packing functions trust their input (NT_ASSERT), so loaders call this first.
int nt_qlinear_validate(const nt_qlinear *q, nt_err *err);
// Bytes of packed storage (qweight + scales + zeros + g_idx), for bits-per-weight reports.
size_t nt_qlinear_bytes(const nt_qlinear *q);

// codes (out, in) row-major, each <= maxq, into q->qweight; and back.
void nt_qlinear_pack(nt_qlinear *q, const uint8_t *codes);
void nt_qlinear_unpack(const nt_qlinear *q, uint8_t *codes);
// W (out, in) = scale_fp16 * (code - zero): what a kernel computes (in fp32).
void nt_qlinear_dequantize(const nt_qlinear *q, float *W);
// Stores per-group fp32 scales and zero points (n_groups, out) into q (fp16 / uint8); fails with a message when
// a scale does not fit fp16 (overflow, or underflow to zero) or a zero point is not an integer in [0, maxq].
int nt_qlinear_set_params(nt_qlinear *q, const float *scale, const float *zero, nt_err *err);

// The format's rounding rule, shared by every quantizer (CUDA mirrors it): round half to even, as torch.round.
// (One-line helpers inlined into the hot loops of rtn.c and gptq.c; no other code lives in this header.)
static inline uint8_t nt_quant_code(float x, float scale, float zero, int maxq) {
    float q = rintf(x / scale) + zero;
    return (uint8_t)(q < 0.0f ? 0.0f : (q > (float)maxq ? (float)maxq : q));
}
static inline float nt_quant_dequant(uint8_t q, float scale, float zero) { return scale * ((float)q - zero); }
