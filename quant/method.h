// method.h: the quantization methods, one table (method.c): a method is a base quantizer (how one linear is
// quantized, from its weights and, if it calibrates, its input Hessian) and optionally norm tweaking on top
// (quant/normtweak.c). A new method is one file with its quantizer plus one entry in the table; the driver
// (quantize_model.c), the commands and the result tables look methods up here and never parse their names.
// The options every method shares (bits, group, calibration, GPTQ's and norm tweaking's settings) are
// nt_quant_opts (quant_opts.h).
#pragma once
#include <stdbool.h>
#include <stddef.h>

#include "quant.h"
#include "quant_opts.h"


// A base quantizer: one linear W (out, in) into *q, with Wq (out, in) the fp32 weights the model evaluates.
typedef struct {
    const char *name;   // "rtn", "gptq"
    bool calibrates;    // needs the input Hessian H (in, in) of each linear (the driver captures it)
    bool sequential;    // honours true_sequential (quantizing a block's linears step by step)
    int (*quantize)(nt_qlinear **q, float *Wq, const float *W, int out, int in, const float *H /* or NULL */,
                    const nt_quant_opts *o, nt_err *err);
    // appends this quantizer's settings that differ from its defaults ("act_order", "percdamp=0.1", ...) to a
    // ;-separated option list (result rows, quantize_config.json)
    void (*describe)(const nt_quant_opts *o, char *buf, size_t cap);
} nt_quantizer;

struct nt_method {
    const char *name;             // as --method takes it and result rows carry it
    const nt_quantizer *quantizer; // NULL: the float model (fp)
    bool tweak;                   // norm tweaking after each block is quantized
    bool smooth;                  // SmoothQuant's smoothing of each block before its linears are quantized
    const char *base;             // the method this one adds a tweak to ("gptq" for "gptq+nt"); NULL otherwise
    const char *default_calib;    // the calibration source when --calib is not given (NULL: none needed)
};

// The method named name, or NULL.
const nt_method *nt_method_find(const char *name);
// Whether the method needs calibration text (a quantizer that calibrates, a tweak, or smoothing): then the model's
// tokenizer is needed too. False for NULL and fp. (Static activation scales need it too: nt_quant_opts_calibrates.)
bool nt_method_calibrates(const nt_method *m);
// Whether quantizing with o needs calibration text: its method's, or static activation scales.
bool nt_quant_opts_calibrates(const nt_quant_opts *o);
// The methods, in the order tables show them (fp, rtn, rtn+nt, gptq, gptq+nt, smoothquant, ...), and their count.
const nt_method *nt_method_at(size_t i);
size_t nt_method_count(void);
// The names joined with ", " ("fp, rtn, gptq, rtn+nt, gptq+nt") for messages.
const char *nt_method_names(void);

// The quantizer config (nt_qconfig, quant.h) that the options ask for: bits, group, sym, mse, fp16 scales.
nt_qconfig nt_qconfig_of_opts(const nt_quant_opts *o);

// The quantizers (rtn.c, gptq.c).
extern const nt_quantizer nt_quantizer_rtn;
extern const nt_quantizer nt_quantizer_gptq;

// Appends key[=value] to a ;-separated option list buf (cap bytes).
void nt_opts_append(char *buf, size_t cap, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
