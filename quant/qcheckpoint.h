// qcheckpoint.h: normtweak's quantized checkpoints: a Hugging Face model directory whose block linears are
// stored packed (quant.h's format) and whose other tensors are those of the source checkpoint (norms as the
// model holds them now, so tweaked norms are kept). Layout of QDIR:
//   config.json            the source's, unchanged
//   quantize_config.json   {"checkpoint_format": "normtweak", "bits", "group_size", "sym", "desc_act",
//                           "static_groups", "method", "calib", "options", "source"}
//   model.safetensors      per quantized linear NAME (its Hugging Face name without ".weight"):
//                          NAME.qweight I32 (in*bits/32, out), NAME.scales F16 (n_groups, out),
//                          NAME.zeros U8 (n_groups, out; asymmetric only), NAME.g_idx I32 (in),
//                          NAME.perm I32 (in; act-order only); NAME.bias as in the source
//   tokenizer files        copied from the source
// BLOOM's fused query_key_value is stored fused, as its checkpoint names it.
#pragma once
#include "safetensors.h"
#include "transformer.h"

// Writes m (quantized, loaded from src_dir) to out_dir, which must not exist yet or be empty; built in a
// temporary sibling directory and renamed into place, so a failure leaves nothing behind.
int nt_qcheckpoint_save(const nt_model *m, const char *out_dir, nt_err *err);

// A checkpoint file given as text: name (e.g. "quantize_config.json") and contents (a newline is appended).
typedef struct {
    const char *name;
    const char *text;
} nt_qcheckpoint_text;

// Writes a checkpoint directory out_dir (which must not exist, or be empty): model.safetensors from the n tensors
// (with the n_meta metadata key/value pairs meta_kv), the text files, and copies of src_dir's config.json,
// tokenizer and generation files that are not among the texts. Built in a temporary sibling directory and renamed
// into place, so a failure leaves nothing behind. nt_qcheckpoint_save and the GPTQ export (gptq_format.h) use it.
int nt_qcheckpoint_write_dir(const char *out_dir, const char *src_dir, const nt_st_tensor *tensors, size_t n,
                             const char *const *meta_kv, size_t n_meta, const nt_qcheckpoint_text *texts,
                             size_t n_texts, nt_err *err);

// Gathers output channels from several quantized linears of the same input into a new one: channel i of
// the result is channel rows[i] of srcs[src[i]]. All sources must share bits, group size, symmetry, g_idx
// and perm (true for linears quantized from one Hessian). Used to fuse/split BLOOM's query_key_value.
int nt_qlinear_gather(nt_qlinear **out, const nt_qlinear *const *srcs, const int *src, const int *rows, int n,
                      nt_err *err);
