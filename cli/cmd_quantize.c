// cmd_quantize.c: `normtweak quantize`: quantize a model's block linears with RTN or GPTQ and write a
// quantized checkpoint (quant/qcheckpoint.h) that `normtweak eval --model QDIR` evaluates.
#define _GNU_SOURCE
#include <getopt.h>
#include <string.h>

#include "cli.h"
#include "evaluate.h"
#include "qcheckpoint.h"
#include "quant_cli.h"

static void quantize_usage(FILE *f) {
    fprintf(f, "usage: normtweak quantize --model PATH --method M --wbits B --group G [--sym] [--act-order]\n"
               "                          [--calib SPEC] [--data-dir DIR] [--threads N] --out QDIR\n"
               "  --model PATH    Hugging Face model directory or GGUF file (default " NT_DEFAULT_MODEL ")\n"
               "  --out QDIR      the quantized checkpoint to write (must not exist, or be empty)\n"
               "  --data-dir DIR  the datasets folder for calibration (default ../shared/datasets)\n"
               "  --threads N     CPU threads (default: all cores)\n" NT_QUANT_OPTIONS_HELP);
}

int nt_cmd_quantize(int argc, char **argv) {
    const char *model_dir = nt_default_model(), *out = NULL, *data_dir = NT_DEFAULT_DATA;
    long threads = 0;
    static const struct option own[] = {{"model", required_argument, 0, 'm'},
                                        {"out", required_argument, 0, 'o'},
                                        {"data-dir", required_argument, 0, 'd'},
                                        {"threads", required_argument, 0, 'j'},
                                        {"help", no_argument, 0, 'h'}};
    struct option opts[64];
    nt_quant_merge_options(own, sizeof(own) / sizeof(own[0]), opts, sizeof(opts) / sizeof(opts[0]));
    nt_quant_opts q = nt_quant_opts_make("", 4, 128);
    bool method_set = false;
    nt_err err = {0};
    optind = 1;
    int c;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'm': model_dir = optarg; break;
        case 'o': out = optarg; break;
        case 'd': data_dir = optarg; break;
        case 'j': if (nt_cli_pos_int("quantize", "--threads", optarg, 4096, &threads)) return 2; break;
        case 'h': quantize_usage(stdout); return 0;
        case '?': quantize_usage(stderr); return 2;
        default:
            if (nt_quant_option_cli("quantize", c, optarg, &q, &method_set, quantize_usage)) return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "normtweak quantize: unexpected argument '%s'\n", argv[optind]);
        return 2;
    }
    if (!method_set || !out) {
        fprintf(stderr, "normtweak quantize: --method and --out are required\n");
        return 2;
    }
    nt_set_threads((int)threads);
    nt_quant_stats stats = {0};
    nt_model_quant mq;
    if (nt_quantize_checkpoint(model_dir, data_dir, &q, out, &mq, &stats, &err)) {
        fprintf(stderr, "normtweak quantize: %s\n", err.msg);
        return nt_err_exit_status(&err);
    }
    fprintf(stderr, "%s: %s W%d g%d%s%s in %.1f s (calibration %.1f s, quantizer %.1f s); wrote %s\n", model_dir,
            mq.method, mq.wbits, mq.group_size, mq.calib[0] ? ", calib " : "", mq.calib, stats.seconds_total,
            stats.seconds_calib, stats.seconds_quantize, out);
    nt_quant_stats_free(&stats);
    return 0;
}
