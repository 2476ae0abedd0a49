// cmd_export.c: `normtweak export`: convert a quantized checkpoint (normtweak's) into the GPTQ checkpoint format
// that transformers (optimum + AutoGPTQ), AutoGPTQ / GPTQModel and vLLM load (quant/gptq_export.h).
#define _GNU_SOURCE
#include <getopt.h>
#include <string.h>

#include "cli.h"
#include "gptq_export.h"

static void export_usage(FILE *f) {
    fprintf(f, "usage: normtweak export --model QDIR --format gptq|gptq_v2 --out DIR\n"
               "  --model QDIR   a quantized checkpoint (normtweak quantize --out QDIR)\n"
               "  --format F     gptq: AutoGPTQ's format (qzeros store zero-1), what transformers and vLLM load;\n"
               "                 gptq_v2: GPTQModel's (qzeros store the zero point itself)\n"
               "  --out DIR      the directory to write (must not exist, or be empty)\n");
}

int nt_cmd_export(int argc, char **argv) {
    const char *model_dir = NULL, *format = NULL, *out = NULL;
    static const struct option opts[] = {{"model", required_argument, 0, 'm'},
                                         {"format", required_argument, 0, 'f'},
                                         {"out", required_argument, 0, 'o'},
                                         {"help", no_argument, 0, 'h'},
                                         {0, 0, 0, 0}};
    optind = 1;
    int c;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'm': model_dir = optarg; break;
        case 'f': format = optarg; break;
        case 'o': out = optarg; break;
        case 'h': export_usage(stdout); return 0;
        default: export_usage(stderr); return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "normtweak export: unexpected argument '%s'\n", argv[optind]);
        return 2;
    }
    if (!model_dir || !format || !out) {
        fprintf(stderr, "normtweak export: --model, --format and --out are required\n");
        return 2;
    }
    nt_qfmt fmt;
    if (nt_qfmt_parse(format, &fmt) || fmt == NT_QFMT_NORMTWEAK) {
        fprintf(stderr, "normtweak export: unsupported --format '%s' (supported: gptq, gptq_v2)\n", format);
        return 2;
    }
    nt_err err = {0};
    if (nt_gptq_export(model_dir, out, fmt, &err)) {
        fprintf(stderr, "normtweak export: %s\n", err.msg);
        return 1;
    }
    fprintf(stderr, "%s: exported to %s (checkpoint_format %s)\n", model_dir, out, nt_qfmt_name(fmt));
    return 0;
}
