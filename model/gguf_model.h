// gguf_model.h: an nt_model from a GGUF file (llama.cpp's format) of architecture `llama` (LLaMA 1/2/3,
// TinyLlama, SmolLM2, Mistral) or `qwen2`: the config from the GGUF metadata, every weight dequantized once to
// fp32 (the float baseline of a Q4_1/Q8_0 file is its exact dequantized weights). nt_model_load calls this for
// a path that is a .gguf file, so `--model FILE.gguf` works wherever `--model DIR` does.
#pragma once
#include "transformer.h"

// True when path names a GGUF model: it ends in ".gguf" and is not a directory, or it is a regular file that
// starts with the GGUF magic.
bool nt_gguf_model_path(const char *path);

// Loads path into a new model (m->dir = path, m->name = the file name without ".gguf"). A missing or
// ill-typed key, a tensor missing or of the wrong shape, a tensor the model does not use, or a config that does
// not add up (heads that do not divide, block count vs tensors) is an error naming the file.
int nt_gguf_model_load(nt_model **out, const char *path, nt_err *err);
