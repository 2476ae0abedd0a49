// qdir.h: writing a checkpoint directory (model.safetensors, JSON texts, the source's config and tokenizer files)
// atomically: built in a temporary sibling directory and renamed into place, so a failure leaves nothing behind.
// normtweak's quantized checkpoints (quant/qcheckpoint.h) and the GPTQ export (quant/gptq_export.h) use it.
#pragma once
#include "safetensors.h"

// A checkpoint file given in memory: name (e.g. "quantize_config.json") and contents: text (NUL-terminated, a
// newline is appended) when len is 0, else len bytes written as they are.
typedef struct {
    const char *name;
    const char *text;
    size_t len;
} nt_qcheckpoint_text;

// 0 when out_dir can receive a checkpoint (absent, or an empty directory); -1 with "OUT: exists and is not empty".
int nt_qcheckpoint_dir_usable(const char *out_dir, nt_err *err);

// Writes a checkpoint directory out_dir (which must not exist, or be empty): model.safetensors from the n tensors
// (with the n_meta metadata key/value pairs meta_kv), the text files, and copies of src_dir's config.json,
// tokenizer and generation files that are not among the texts (src_dir may be NULL: no copies).
int nt_qcheckpoint_write_dir(const char *out_dir, const char *src_dir, const nt_st_tensor *tensors, size_t n,
                             const char *const *meta_kv, size_t n_meta, const nt_qcheckpoint_text *texts,
                             size_t n_texts, nt_err *err);
