// bench_nt.c: the cost of norm tweaking beside GPTQ's in the same run: per block, the time of the whole
// block step (Hessian capture, GPTQ, tweak, propagation) and of the tweak inside it, and the totals.
// usage: bench_nt [--model DIR] [--calib SPEC] [--wbits B] [--group G] [--iters N] [--data-dir DIR]
// Prints CSV: model,method,wbits,group_size,calib,layer,seconds_block,seconds_tweak,seconds_gptq_quantizer,
//             seconds_total,loss_before,loss_after,lr,commit
// (layer = "total" for the sum; seconds_gptq_quantizer is only reported in the total row). Run from the
// repository root; timings are wall-clock on this machine, so run it on an otherwise idle one.
#define _GNU_SOURCE
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "csv_read.h"
#include "evaluate.h"
#include "quantize_model.h"

static int usage(void) {
    fprintf(stderr, "usage: bench_nt [--model DIR] [--calib SPEC] [--wbits B] [--group G] [--iters N] [--data-dir DIR]\n");
    return 2;
}

int main(int argc, char **argv) {
    nt_tune_runtime(argv); // may re-execute once (nt.h): passive OpenMP waits, the OpenBLAS core
    const char *model = nt_default_model(), *calib = "c4", *data = NT_DEFAULT_DATA;
    const char *wbits = "3", *group = "128", *iters = "1";
    static const struct option opts[] = {{"model", required_argument, 0, 'm'}, {"calib", required_argument, 0, 'c'},
                                         {"data-dir", required_argument, 0, 'd'}, {"wbits", required_argument, 0, 'w'},
                                         {"group", required_argument, 0, 'g'}, {"iters", required_argument, 0, 'i'},
                                         {0, 0, 0, 0}};
    int c;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 'm': model = optarg; break;
        case 'c': calib = optarg; break;
        case 'd': data = optarg; break;
        case 'w': wbits = optarg; break;
        case 'g': group = optarg; break;
        case 'i': iters = optarg; break;
        default: return usage();
        }
    }
    if (optind < argc) return usage();
    nt_err err = {0};
    nt_quant_opts o = nt_quant_opts_make("gptq+nt", 3, 128);
    // the same option parsing as `normtweak quantize`
    if (nt_quant_opts_set(&o, "wbits", wbits, &err) || nt_quant_opts_set(&o, "group", group, &err) ||
        nt_quant_opts_set(&o, "nt-iters", iters, &err) || nt_quant_opts_set_calib(&o, calib, &err)) {
        fprintf(stderr, "bench_nt: %s\n", err.msg);
        return 2;
    }
    nt_model *m = NULL;
    nt_tokenizer *tok = NULL;
    if (nt_model_load(&m, model, &err) || nt_tokenizer_load_model(&tok, model, &err)) {
        fprintf(stderr, "bench_nt: %s\n", err.msg);
        nt_model_free(&m);
        return 1;
    }
    nt_quant_stats st = {0};
    if (nt_quantize_model(m, tok, data, &o, &st, &err)) {
        fprintf(stderr, "bench_nt: %s\n", err.msg);
        return 1;
    }
    printf("model,method,wbits,group_size,calib,layer,seconds_block,seconds_tweak,seconds_gptq_quantizer,"
           "seconds_total,loss_before,loss_after,lr,commit\n");
    for (int l = 0; l <= m->cfg.n_layers; l++) {
        bool total = l == m->cfg.n_layers;
        nt_csv_put(stdout, m->name, false);
        nt_csv_put(stdout, "gptq+nt", false);
        nt_csv_putf(stdout, false, "%d", o.wbits);
        nt_csv_putf(stdout, false, "%d", o.group_size);
        nt_csv_put(stdout, m->quant.calib, false);
        if (total) {
            nt_csv_put(stdout, "total", false);
            nt_csv_put(stdout, "", false);
            nt_csv_putf(stdout, false, "%.3f", st.seconds_tweak);
            nt_csv_putf(stdout, false, "%.3f", st.seconds_quantize);
            nt_csv_putf(stdout, false, "%.3f", st.seconds_total);
            for (int k = 0; k < 3; k++) nt_csv_put(stdout, "", false);
        } else {
            nt_csv_putf(stdout, false, "%d", l);
            nt_csv_putf(stdout, false, "%.3f", st.seconds_per_layer[l]);
            nt_csv_putf(stdout, false, "%.3f", st.nt_seconds[l]);
            nt_csv_put(stdout, "", false);
            nt_csv_put(stdout, "", false);
            nt_csv_putf(stdout, false, "%.6g", st.nt_loss_before[l]);
            nt_csv_putf(stdout, false, "%.6g", st.nt_loss_after[l]);
            nt_csv_putf(stdout, false, "%g", st.nt_lr_used[l]);
        }
        nt_csv_put(stdout, nt_build_commit(), true);
    }
    nt_quant_stats_free(&st);
    nt_tokenizer_free(&tok);
    nt_model_free(&m);
    return 0;
}
