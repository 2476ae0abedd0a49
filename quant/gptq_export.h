// gptq_export.h: export of a quantized checkpoint (normtweak's, or GPTQ's of either version) to the GPTQ
// checkpoint format that transformers (through optimum and AutoGPTQ), AutoGPTQ / GPTQModel and vLLM load. The
// tensors' formats are codec/qtensors.h's; quantize_config.json is codec/qconfig.h's. The export converts the
// packed tensors directly: it never loads or dequantizes the model.
#pragma once
#include "qconfig.h"

// Exports qdir to out_dir (must not exist, or be empty) in GPTQ format fmt (NT_QFMT_GPTQ or NT_QFMT_GPTQ_V2):
// model.safetensors, config.json with "quantization_config", quantize_config.json (which also keeps normtweak's
// "method", "calib", "options", "source"), tokenizer files copied. Each quantized linear is read (and validated)
// once; the other tensors are copied as they are.
int nt_gptq_export(const char *qdir, const char *out_dir, nt_qfmt fmt, nt_err *err);
