// qconfig.h: what a quantized checkpoint says about itself, in its quantize_config.json (or, for transformers'
// GPTQ checkpoints, config.json's "quantization_config"): the one reader and the one writer of that file, for
// normtweak's own checkpoints and GPTQ's (v1: AutoGPTQ/transformers/vLLM, v2: GPTQModel).
//
// quantize_config.json keys: "checkpoint_format" (normtweak | gptq | gptq_v2), "bits", "group_size", "sym",
// "desc_act", "static_groups", "abits" and "act_scheme" (dynamic | static; absent: 16 and dynamic); GPTQ formats also "damp_percent", "true_sequential", "quant_method": "gptq"
// (what AutoGPTQ and transformers read); normtweak's provenance "method", "calib", "options", "source" (the float
// model's name) and "normtweak_commit" in every format (other loaders ignore them).
#pragma once
#include <cjson/cJSON.h>
#include <stdbool.h>

#include "nt.h"

typedef enum {
    NT_QFMT_NORMTWEAK, // qformat.h's tensors: zeros uint8 (n_groups, N), asymmetric only; perm stored
    NT_QFMT_GPTQ,      // GPTQ v1: qzeros packed along N hold zero-1
    NT_QFMT_GPTQ_V2,   // GPTQModel's v2: qzeros hold the zero itself
} nt_qfmt;

const char *nt_qfmt_name(nt_qfmt fmt); // "normtweak", "gptq", "gptq_v2"
// The format named name ("normtweak", "gptq", "gptq_v2"); -1 when it is none of them.
int nt_qfmt_parse(const char *name, nt_qfmt *fmt);

// What a model's block linears went through; carried into result rows and quantized checkpoints.
typedef struct {
    char method[32];   // "fp", "rtn", "gptq", "rtn+nt", "gptq+nt" (quant/method.h)
    int wbits;         // 16 for fp
    int group_size;    // -1 per channel, 0 for fp
    bool sym, act_order, static_groups;
    int abits;         // activation bits of the block linears' inputs: 16 (none), 8 or 4 (model/actquant.h)
    bool act_static;   // per-tensor static activation scales (from calibration) instead of per-token dynamic
    char calib[320];   // calibration spec, "" when none was used
    char options[256]; // other settings, key=value;key=value
} nt_model_quant;

// The float model's description: method "fp", 16 bits.
nt_model_quant nt_model_quant_fp(void);

// A checkpoint directory's quantization: *quantized false (and q = nt_model_quant_fp()) for a float checkpoint
// (neither quantize_config.json nor a "quantization_config" in config.json). Otherwise q, the tensors' format and
// the source model's name (source, "" when not recorded) from the file; errors name the file and the key.
typedef struct {
    bool quantized;
    nt_model_quant q;
    nt_qfmt fmt;
    char source[128];
} nt_qcheckpoint_info;
int nt_qcheckpoint_info_read(const char *dir, nt_qcheckpoint_info *info, nt_err *err);

// quantize_config.json's text for q stored in format fmt, made from the model named source (malloc'd; NULL when
// out of memory).
char *nt_quantize_config_text(const nt_model_quant *q, nt_qfmt fmt, const char *source);
// config.json of dir with its "quantization_config" set to q in GPTQ format fmt (what transformers reads);
// malloc'd, or NULL with a message.
char *nt_config_with_quantization_text(const char *dir, const nt_model_quant *q, nt_qfmt fmt, nt_err *err);
