// evaluate.h: one evaluation as a library call: load a model, run its tasks, return result rows. The
// `eval` subcommand and experiment grids (`normtweak run`) both call it, so a failed cell is an error
// message, never an exit.
#pragma once
#include "quantize_model.h"
#include "results.h"

// The defaults of every front end (eval, quantize, run): the model evaluated when none is named, and the datasets.
// The default model is SmolLM2-135M-Instruct (Q4_1 GGUF, fetched by .ci/install-deps into $NT_MODELS_DIR, else
// models/ under the working directory: run from the repository root); its float baseline is the exact
// dequantization of the Q4_1/Q8_0 weights in fp32.
#define NT_DEFAULT_MODEL_FILE "SmolLM2-135M-Instruct.Q4_1.gguf"
#define NT_DEFAULT_MODEL "models/" NT_DEFAULT_MODEL_FILE
#define NT_DEFAULT_DATA "../shared/datasets"
// The default model's path: $NT_MODELS_DIR/NT_DEFAULT_MODEL_FILE when NT_MODELS_DIR is set, else NT_DEFAULT_MODEL.
const char *nt_default_model(void);

typedef struct {
    const char *model_dir; // Hugging Face model directory
    const char *tasks;     // comma-separated task names: perplexity (datasets.h) and zero-shot (zeroshot.h)
    const char *data_dir;  // datasets folder
    int seqlen;            // 0: min(2048, the model's maximum)
    long limit;            // 0: all windows/items; else the first `limit` windows (perplexity) / items (zero-shot)
    long limit_items;      // zero-shot only: the first `limit_items` items instead (0: `limit` applies to both)
    const char *out;       // results CSV to append each task's rows to as it finishes, or NULL
    bool print_ppl;        // log "task: PPL = x +/- y" (and zero-shot metric) lines to stderr
    bool skip_bad_items;   // zero-shot: leave malformed items out (counted in the row's options) instead of failing
    const nt_quant_opts *quant; // quantize the loaded model in memory first; NULL: evaluate it as loaded
    const char *device;    // NULL or "cpu"; "cuda" or "cuda:N": perplexity on CUDA device N (gpu.h's forward pass;
                           // zero-shot tasks are CPU-only and refused with it)
    const char *kld;       // comma-separated perplexity tasks (each also in tasks) that also get "kld" and "top1" rows:
                           // the KL divergence of the model's next-token distribution from the float model's and the
                           // top-1 agreement over the same windows (perplexity.h); NULL or "": none. CPU only.
    const char *kld_base;  // the float model for kld: NULL = the model itself before quantizing in memory (or the
                           // model as loaded when it is a float model); needed for a quantized checkpoint
    const char *log_samples; // zero-shot: a folder that gets one JSONL file per task, a line per item (samples.h)
} nt_eval_opts;

// The rows produced, one task after another (free with nt_eval_rows_free). Tasks are checked and their
// data built before any compute, so bad input fails before any row is written.
typedef struct {
    nt_result_row *rows;
    size_t n;
    char **strings; // storage the rows point into
    size_t n_strings;
} nt_eval_rows;

// The item limit of the zero-shot tasks: limit_items when set, else limit.
long nt_eval_item_limit(const nt_eval_opts *o);

// Returns 0, or -1 with err set; err->msg starts with "usage:" for a bad option (exit status 2).
int nt_evaluate(const nt_eval_opts *o, nt_eval_rows *out, nt_err *err);
void nt_eval_rows_free(nt_eval_rows *r);
