// qcheckpoint.h: writing normtweak's quantized checkpoints: a Hugging Face model directory whose block linears are
// stored packed (codec/qformat.h's format, tensors as codec/qtensors.h names them) and whose other tensors are those of the source checkpoint (norms as the
// model holds them now, so tweaked norms are kept). Layout of QDIR:
//   config.json            the source's, unchanged
//   quantize_config.json   {"checkpoint_format": "normtweak", "bits", "group_size", "sym", "desc_act",
//                           "static_groups", "method", "calib", "options", "source"}
//   model.safetensors      per quantized linear NAME (its Hugging Face name without ".weight"):
//                          NAME.qweight I32 (in*bits/32, out), NAME.scales F16 (n_groups, out),
//                          NAME.zeros U8 (n_groups, out; asymmetric only), NAME.g_idx I32 (in),
//                          NAME.perm I32 (in; act-order only); NAME.bias as in the source
//   tokenizer files        copied from the source
// BLOOM's fused query_key_value is stored fused, as its checkpoint names it. A model loaded from a GGUF file
// (model/gguf_model.h) has no source tensors or config.json: its checkpoint gets every tensor from the model
// (fp32, Hugging Face names) and a config.json written from its config; no tokenizer files.
#pragma once
#include "quantize_model.h"
#include "transformer.h"

// Writes m (quantized, loaded from src_dir) to out_dir, which must not exist yet or be empty; built in a
// temporary sibling directory and renamed into place, so a failure leaves nothing behind. Reading them back is
// the model loader's (model/checkpoint.c, through codec/qtensors.h).
int nt_qcheckpoint_save(const nt_model *m, const char *out_dir, nt_err *err);

// `normtweak quantize`: loads the float model at model_path, checks o against it (a usage error when they do not
// fit), loads its tokenizer when the method calibrates, quantizes it (calibration data from data_dir) and writes
// the checkpoint to out_dir. *mq (if not NULL) gets what was done, *stats (if not NULL) the times.
int nt_quantize_checkpoint(const char *model_path, const char *data_dir, const nt_quant_opts *o, const char *out_dir,
                           nt_model_quant *mq, nt_quant_stats *stats, nt_err *err);
