// qtensors.h: the tensors of a quantized linear in a checkpoint, in normtweak's format (qformat.h, named below)
// and in GPTQ's: the one reader of both (the model loader and the GPTQ export use it), the conversion to GPTQ's
// tensors, and the tensor-list writers. Reference code: plain format conversion, no speed tricks.
//
// normtweak's format, per quantized linear NAME (its Hugging Face name without ".weight"): NAME.qweight I32
// (ceil(in/32)*bits, out), NAME.scales F16 (n_groups, out), NAME.zeros U8 (n_groups, out; asymmetric only),
// NAME.g_idx I32 (in), NAME.perm I32 (in; act-order only); NAME.bias as in the source.
//
// ------------------------------------------------------------------------------------------------ the format
// Per quantized linear NAME (its Hugging Face name without ".weight"; W (out=N, in=K)), as AutoGPTQ's QuantLinear
// holds it:
//   NAME.qweight  I32 (K/32*bits, N)         codes packed along K: exactly qformat.h's qweight (2/4/8 bits: 32/bits
//                                             codes per word; 3 bits: the stream of 32 codes in 3 words). K % 32 == 0.
//   NAME.qzeros   I32 (n_groups, N/32*bits)  zero points packed along N: row g is one little-endian bit stream in
//                                             which the field of channel n sits at bit bits*n (for 2/4/8 bits no field
//                                             straddles a word; for 3 bits this is GPTQ's 3-word scheme again).
//                                             checkpoint_format "gptq" (v1: AutoGPTQ, transformers, vLLM) stores
//                                             zero-1 and loaders add 1 back; "gptq_v2" (GPTQModel) stores the zero.
//                                             Symmetric checkpoints store qzeros too, with zero 2^(bits-1).
//   NAME.scales   F16 (n_groups, N)          as ours
//   NAME.g_idx    I32 (K)                    the group of each input column. Act-order (desc_act) stores no perm:
//                                             dequantization depends on g_idx alone,
//                                             W[n][k] = scales[g][n] * (q[n][k] - zero[g][n]),  g = g_idx[k]
//   NAME.bias     as in the source
// n_groups = ceil(K / group_size), or 1 per channel (group_size -1). quantize_config.json holds {"bits", "group_size",
// "desc_act", "sym", "static_groups", "damp_percent", "true_sequential", "quant_method": "gptq",
// "checkpoint_format"}, and config.json the same as its "quantization_config" (what transformers reads).
// Tensors other than the quantized linears' are stored as the source holds them.
//
// Constraints (export errors name the layer): K and N multiples of 32 (AutoGPTQ allocates K/32*bits rows of qweight
// and N/32*bits columns of qzeros; vLLM and the kernels need the same); v1 cannot hold a zero point 0 (zero-1 wraps
// to the all-ones field, which loaders read as 2^bits): such a checkpoint can be exported as "gptq_v2" only.
// Import reads any N with N*bits a multiple of 32.
//
// Import: our perm is rebuilt as the stable sort of the columns by g_idx (groups in order, columns ascending within
// a group). It may differ from the quantizer's original order within a group, but dequantization, which reads only
// g_idx, is identical, so export -> import gives bit-identical dequantized weights.
#pragma once
#include "qconfig.h"
#include "qformat.h"
#include "safetensors.h"

// What quantize_config.json says the tensors of every quantized linear hold.
typedef struct {
    nt_qfmt fmt;
    int bits;       // 2, 3, 4, 8
    int group_size; // -1 per channel
    bool sym;       // GPTQ: a linear whose zeros are not all 2^(bits-1) is read as asymmetric (exact all the same)
    bool desc_act;  // act-order: perm is built (also whenever g_idx is not k / group_size)
} nt_qfmt_spec;

// Reads the quantized linear `base` (a tensor name without ".qweight") of a checkpoint in spec->fmt from st into a
// new *q (validated). out/in: the shape config.json implies, or -1 to take it from the tensors. Errors name the
// file and the tensor: "DIR/model.safetensors: tensor 'x.qzeros' is I32 [2, 3], expected I32 [2, 4] (4-bit,
// 32 output channels)".
int nt_qfmt_read_qlinear(const nt_safetensors *st, const char *base, const nt_qfmt_spec *spec, int out, int in,
                         nt_qlinear **q, nt_err *err);

// Whether name is base.SUFFIX of a quantized linear (base.qweight exists in st) other than the qweight itself.
bool nt_qtensor_is_part(const nt_safetensors *st, const char *name);

// A quantized linear's tensors in GPTQ format (NT_QFMT_GPTQ or NT_QFMT_GPTQ_V2).
typedef struct {
    int out, in, bits, n_groups;
    int32_t *qweight; // (in/32*bits, out)
    int32_t *qzeros;  // (n_groups, out/32*bits)
    uint16_t *scales; // (n_groups, out) fp16
    int32_t *g_idx;   // (in)
} nt_gptq_linear;

// Converts q; fails (message without the layer's name: callers prefix it) when the shape or a zero point 0 in v1
// cannot be stored.
int nt_gptq_from_qlinear(nt_gptq_linear *g, const nt_qlinear *q, nt_qfmt fmt, nt_err *err);
void nt_gptq_linear_free(nt_gptq_linear *g);

// Appends the tensors of q under base (normtweak's format), or of g (GPTQ's), to a tensor list; the list points
// into q's / g's buffers, which must outlive it.
int nt_qlinear_list_add(nt_st_list *L, const char *base, const nt_qlinear *q);
int nt_gptq_list_add(nt_st_list *L, const char *base, const nt_gptq_linear *g);

// Gathers output channels from several quantized linears of the same input into a new one: channel i of
// the result is channel rows[i] of srcs[src[i]]. All sources must share bits, group size, symmetry, g_idx
// and perm (true for linears quantized from one Hessian). Used to fuse/split BLOOM's query_key_value.
int nt_qlinear_gather(nt_qlinear **out, const nt_qlinear *const *srcs, const int *src, const int *rows, int n,
                      nt_err *err);
