// quantize_model.h: quantizing every block linear of a model with RTN or GPTQ, block by block as GPTQ's
// reference does (the Hessians of block l come from the inputs that the already-quantized blocks 0..l-1 produce
// on the calibration set; true-sequential order inside a block: q/k/v, then o, then the MLP inputs, then the
// MLP output). The model's linears keep their packed weights (nt_linear.q) and evaluate dequantized.
#pragma once
#include "datasets.h"
#include "method.h"
#include "quant_opts.h"
#include "tokenizer.h"
#include "transformer.h"


// The settings of o that result rows and checkpoints record as options ("act_order;loss=dist;lr=1e-05;iters=1"):
// the quantizer's that differ from its defaults, SmoothQuant's alpha, act_scheme=static (the activation bits are a
// column of their own), then norm tweaking's. A grid cell's identity is made from the
// same text, so a rerun finds the rows of the cells it already evaluated.
void nt_quant_opts_describe(const nt_quant_opts *o, char *buf, size_t cap);

// Time spent, for the benchmarks.
typedef struct {
    double seconds_total;
    double seconds_calib;       // building the calibration windows
    double *seconds_per_layer;  // (n_layers) malloc'd: capture + quantize + propagate
    double seconds_quantize;    // inside RTN/GPTQ proper
    double seconds_tweak;       // norm tweaking (grid search included)
    // norm tweaking, per block (n_layers), malloc'd when tweaking ran:
    float *nt_lr_used;          // the learning rate applied (0: the grid chose not to tweak)
    double *nt_seconds;         // time spent tweaking the block
    double *nt_loss_before;     // mean loss on the held-out samples (with a grid: the half that did not choose the lr;
                                //   without hold-out: all samples) before tweaking
    double *nt_loss_after;      // and after
} nt_quant_stats;
void nt_quant_stats_free(nt_quant_stats *s);

// Quantizes every block linear of m in place (tok and data_dir are needed for GPTQ's calibration data;
// RTN needs neither and accepts NULL). Fills m->quant. stats may be NULL.
int nt_quantize_model(nt_model *m, const nt_tokenizer *tok, const char *data_dir, const nt_quant_opts *o,
                      nt_quant_stats *stats, nt_err *err);
