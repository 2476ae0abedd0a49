// gptq_format.h: interoperability with the GPTQ checkpoint format that transformers (through optimum and
// AutoGPTQ), AutoGPTQ / GPTQModel and vLLM load: export of normtweak checkpoints (qcheckpoint.h) to it, and import
// of it by the model loader (model/checkpoint.c). Reference code: plain format conversion, no speed tricks.
//
// ------------------------------------------------------------------------------------------------ the format
// Per quantized linear NAME (its Hugging Face name without ".weight"; W (out=N, in=K)), as AutoGPTQ's QuantLinear
// holds it:
//   NAME.qweight  I32 (K/32*bits, N)         codes packed along K: exactly quant.h's qweight (2/4/8 bits: 32/bits
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
// n_groups = K / group_size, or 1 per channel (group_size -1). quantize_config.json holds {"bits", "group_size",
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
#include <cjson/cJSON.h>

#include "quant.h"
#include "safetensors.h"

typedef enum {
    NT_QFMT_NORMTWEAK, // quant.h's format: zeros uint8 (n_groups, N), asymmetric only; perm stored
    NT_QFMT_GPTQ,      // GPTQ v1: qzeros hold zero-1
    NT_QFMT_GPTQ_V2,   // GPTQModel's v2: qzeros hold the zero itself
} nt_qfmt;

const char *nt_qfmt_name(nt_qfmt fmt); // "normtweak", "gptq", "gptq_v2"
// The format a quantize_config.json (root, read from path) names: its "checkpoint_format", or "gptq" when it has
// none but "quant_method": "gptq" (AutoGPTQ <= 0.7 writes no checkpoint_format). Other formats (marlin, awq,
// is_marlin_format) fail with a message naming path.
int nt_qfmt_from_json(const cJSON *root, const char *path, nt_qfmt *fmt, nt_err *err);

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

// Exports the quantized checkpoint qdir (normtweak's, or GPTQ's of either version) to out_dir (must not exist, or
// be empty) in GPTQ format fmt: model.safetensors, config.json with "quantization_config", quantize_config.json
// (which also keeps normtweak's "method", "calib", "options", "source"), tokenizer files copied.
int nt_gptq_export(const char *qdir, const char *out_dir, nt_qfmt fmt, nt_err *err);
