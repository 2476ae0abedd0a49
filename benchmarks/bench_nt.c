// bench_nt.c: the cost of norm tweaking beside GPTQ's in the same run: per block, the time of the whole
// block step (Hessian capture, GPTQ, tweak, propagation) and of the tweak inside it, and the totals.
// usage: bench_nt [--model DIR] [--calib SPEC] [--wbits B] [--group G] [--iters N] [--data-dir DIR]
// Prints CSV: model,method,wbits,group_size,calib,layer,seconds_block,seconds_tweak,seconds_gptq_quantizer,
//             seconds_total,loss_before,loss_after,lr,commit
// (layer = "total" for the sum; seconds_gptq_quantizer is only reported in the total row). Run from the
// repository root; timings are wall-clock on this machine, so run it on an otherwise idle one.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "quantize_model.h"

int main(int argc, char **argv) {
    const char *model = "../shared/models/tiny-opt", *calib = "c4", *data = "../shared/datasets";
    int wbits = 3, group = 128, iters = 1;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--model")) model = argv[i + 1];
        else if (!strcmp(argv[i], "--calib")) calib = argv[i + 1];
        else if (!strcmp(argv[i], "--data-dir")) data = argv[i + 1];
        else if (!strcmp(argv[i], "--wbits")) wbits = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--group")) group = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--iters")) iters = atoi(argv[i + 1]);
        else {
            fprintf(stderr, "bench_nt: unknown option %s\n", argv[i]);
            return 2;
        }
    }
    nt_err err = {0};
    nt_model *m = NULL;
    nt_tokenizer *tok = NULL;
    if (nt_model_load(&m, model, &err) || nt_tokenizer_load_dir(&tok, model, &err)) {
        fprintf(stderr, "bench_nt: %s\n", err.msg);
        return 1;
    }
    nt_quant_opts o = nt_quant_opts_make("gptq+nt", wbits, group);
    o.nt_iters = iters;
    if (nt_quant_opts_set_calib(&o, calib, &err)) {
        fprintf(stderr, "bench_nt: %s\n", err.msg);
        return 2;
    }
    nt_quant_stats st = {0};
    if (nt_quantize_model(m, tok, data, &o, &st, &err)) {
        fprintf(stderr, "bench_nt: %s\n", err.msg);
        return 1;
    }
    printf("model,method,wbits,group_size,calib,layer,seconds_block,seconds_tweak,seconds_gptq_quantizer,"
           "seconds_total,loss_before,loss_after,lr,commit\n");
    for (int l = 0; l < m->cfg.n_layers; l++)
        printf("%s,gptq+nt,%d,%d,%s,%d,%.3f,%.3f,,,%.6g,%.6g,%g,%s\n", m->name, wbits, group, m->quant.calib, l,
               st.seconds_per_layer[l], st.nt_seconds[l], st.nt_loss_before[l], st.nt_loss_after[l],
               st.nt_lr_used[l], nt_build_commit());
    printf("%s,gptq+nt,%d,%d,%s,total,,%.3f,%.3f,%.3f,,,,%s\n", m->name, wbits, group, m->quant.calib,
           st.seconds_tweak, st.seconds_quantize, st.seconds_total, nt_build_commit());
    nt_quant_stats_free(&st);
    nt_tokenizer_free(&tok);
    nt_model_free(&m);
    return 0;
}
