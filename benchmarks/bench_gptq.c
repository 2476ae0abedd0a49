// bench_gptq.c: wall time of GPTQ over a whole model (quant/quantize_model.c: calibration capture, true-sequential
// Hessians, nt_gptq_quantize per linear, block outputs propagated), per block and in total, to set beside
// benchmarks/gptq_torch.py (a PyTorch transcription of GPTQ's opt.py/llama.py loop on the same CPU).
// benchmarks/bench_gptq.sh runs both and writes results/bench_gptq_cpu.csv.
//
// What is timed (both sides measure the same thing):
//   windows   building the calibration windows (reading C4 train, tokenizing, GPTQ's seeded draws):
//             reported, NOT part of `total` (the PyTorch side tokenizes with HF tokenizers, a different tool)
//   0..L-1    one block: its true-sequential Hessian captures (forward passes over every sample), GPTQ on each
//             linear, and the pass that feeds the quantized block's outputs to the next block
//   quantizer the part of the blocks spent inside GPTQ proper (dampening, Cholesky, the column loop)
//   total     nt_quantize_model's wall time less `windows`: the embedding of the samples (block 0's inputs) plus
//             every block. Loading the model and the tokenizer is not timed.
//   cpu_seconds (total row only) the process's CPU time (all threads, user + system) over nt_quantize_model,
//             windows included (a few hundredths of a second, single-threaded): less sensitive than wall time to
//             other processes on shared cores, though not immune (caches, hyperthreads)
// Scales are fp32 as in GPTQ's reference (and the PyTorch transcription) unless --fp16-scales.
//
// usage: bench_gptq MODEL_DIR DATA_DIR [--wbits B] [--group G] [--act-order] [--nsamples N] [--seqlen L]
//                   [--threads N] [--fp16-scales] [--ppl-windows N] [--header]
//   --seqlen L       calibration sample length (default: the model's maximum context, capped at 2048)
//   --ppl-windows N  after quantizing (untimed), PTB perplexity of the first N test windows of L tokens
// Output: CSV lines impl,model,wbits,group,act_order,nsamples,seqlen,threads,layer,seconds,cpu_seconds,ptb_ppl
// (cpu_seconds and ptb_ppl only on the total row; ptb_ppl when --ppl-windows is given).
#define _GNU_SOURCE
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "csv_read.h"
#include "nt.h"
#include "perplexity.h"
#include "quantize_model.h"

static int usage(const char *prog) {
    fprintf(stderr,
            "usage: %s MODEL_DIR DATA_DIR [--wbits B] [--group G] [--act-order] [--nsamples N] [--seqlen L]\n"
            "       [--threads N] [--fp16-scales] [--ppl-windows N] [--header]\n",
            prog);
    return 2;
}

static double cpu_time(void) {
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static bool parse_int(const char *s, long lo, long hi, long *v) {
    char *end = NULL;
    long x = strtol(s, &end, 10);
    if (!*s || *end || x < lo || x > hi) return false;
    *v = x;
    return true;
}

int main(int argc, char **argv) {
    nt_tune_runtime(argv); // may re-execute once (nt.h): passive OpenMP waits, the OpenBLAS core
    long wbits = 4, group = 128, nsamples = 128, seqlen = 0, threads = 0, ppl_windows = 0;
    bool act_order = false, fp16_scales = false, header = false;
    static const struct option opts[] = {
        {"act-order", no_argument, 0, 'a'},       {"fp16-scales", no_argument, 0, 'f'},
        {"header", no_argument, 0, 'H'},          {"wbits", required_argument, 0, 'w'},
        {"group", required_argument, 0, 'g'},     {"nsamples", required_argument, 0, 'n'},
        {"seqlen", required_argument, 0, 's'},    {"threads", required_argument, 0, 'j'},
        {"ppl-windows", required_argument, 0, 'p'}, {0, 0, 0, 0}};
    int c, idx = 0;
    while ((c = getopt_long(argc, argv, "", opts, &idx)) != -1) {
        bool ok = true;
        switch (c) {
        case 'a': act_order = true; break;
        case 'f': fp16_scales = true; break;
        case 'H': header = true; break;
        case 'w': ok = parse_int(optarg, 2, 8, &wbits); break;
        case 'g': ok = parse_int(optarg, -1, 1 << 20, &group); break;
        case 'n': ok = parse_int(optarg, 1, 1 << 20, &nsamples); break;
        case 's': ok = parse_int(optarg, 2, 1 << 20, &seqlen); break;
        case 'j': ok = parse_int(optarg, 1, 4096, &threads); break;
        case 'p': ok = parse_int(optarg, 0, 1 << 20, &ppl_windows); break;
        default: return usage(argv[0]);
        }
        if (!ok) {
            fprintf(stderr, "bench_gptq: bad value '%s' for --%s\n", optarg, opts[idx].name);
            return usage(argv[0]);
        }
    }
    if (argc - optind != 2) return usage(argv[0]);
    const char *model_dir = argv[optind], *data_dir = argv[optind + 1];
    nt_set_threads((int)threads);

    nt_err err = {0};
    nt_model *m = NULL;
    nt_tokenizer *tok = NULL;
    nt_quant_stats st = {0};
    nt_windows ptb = {0};
    int rc = 1;
    if (nt_model_load(&m, model_dir, &err) || nt_tokenizer_load_model(&tok, model_dir, &err)) goto done;
    nt_quant_opts q = nt_quant_opts_make("gptq", (int)wbits, (int)group);
    q.act_order = act_order;
    q.fp32_scales = !fp16_scales;
    q.nsamples = (int)nsamples;
    if (seqlen > 0) q.calib_seqlen = (int)seqlen;
    int T = q.calib_seqlen < m->cfg.max_pos ? q.calib_seqlen : m->cfg.max_pos; // as nt_quantize_model caps it
    double cpu0 = cpu_time();
    if (nt_quantize_model(m, tok, data_dir, &q, &st, &err)) goto done;
    double cpu_s = cpu_time() - cpu0;

    double ppl = 0.0;
    if (ppl_windows > 0) {
        nt_ppl_result pr;
        if (nt_ppl_windows("ptb", data_dir, tok, (size_t)T, &ptb, &err) ||
            nt_perplexity(m, &ptb, (size_t)ppl_windows, "ptb", &pr, &err))
            goto done;
        ppl = pr.ppl;
    }

    char name[256];
    nt_model_name_of_path(model_dir, name, sizeof(name)); // a .gguf without its extension, as result rows name it
    int n_threads = threads > 0 ? (int)threads : (int)sysconf(_SC_NPROCESSORS_ONLN);
    if (header) printf("impl,model,wbits,group,act_order,nsamples,seqlen,threads,layer,seconds,cpu_seconds,ptb_ppl\n");
    for (int l = 0; l < m->cfg.n_layers + 3; l++) { // the layers, then the quantizer, the windows, the total
        nt_csv_put(stdout, "normtweak", false);
        nt_csv_put(stdout, name, false);
        nt_csv_putf(stdout, false, "%ld", wbits);
        nt_csv_putf(stdout, false, "%ld", group);
        nt_csv_putf(stdout, false, "%d", (int)act_order);
        nt_csv_putf(stdout, false, "%ld", nsamples);
        nt_csv_putf(stdout, false, "%d", T);
        nt_csv_putf(stdout, false, "%d", n_threads);
        int extra = l - m->cfg.n_layers;
        if (extra < 0) nt_csv_putf(stdout, false, "%d", l);
        else nt_csv_put(stdout, extra == 0 ? "quantizer" : extra == 1 ? "windows" : "total", false);
        double sec = extra < 0 ? st.seconds_per_layer[l] : extra == 0 ? st.seconds_quantize
                               : extra == 1 ? st.seconds_calib : st.seconds_total - st.seconds_calib;
        nt_csv_putf(stdout, false, "%.6f", sec);
        if (extra == 2) nt_csv_putf(stdout, false, "%.6f", cpu_s);
        else nt_csv_put(stdout, "", false);
        if (extra == 2 && ppl_windows > 0) nt_csv_putf(stdout, true, "%.6f", ppl);
        else nt_csv_put(stdout, "", true);
    }
    rc = 0;
done:
    if (rc) fprintf(stderr, "bench_gptq: %s\n", err.msg);
    nt_windows_free(&ptb);
    nt_quant_stats_free(&st);
    nt_tokenizer_free(&tok);
    nt_model_free(&m);
    return rc;
}
