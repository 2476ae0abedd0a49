// normtweak.c: the command-line front end: `normtweak COMMAND [options]`. Each command (cli/cmd_*.c) is a thin
// shell over one library call, which tests and grids call too; this file only dispatches.
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "nt.h"

static int cmd_version(int argc, char **argv) {
    (void)argc;
    (void)argv;
#ifdef NT_HAVE_CUDA
    const char *cuda = "CUDA build";
#else
    const char *cuda = "CPU-only build";
#endif
    printf("normtweak %s (%s)\n", nt_build_commit(), cuda);
    return 0;
}

static const struct {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *help;
} commands[] = {
    {"quantize", nt_cmd_quantize, "quantize a model with RTN or GPTQ into a quantized checkpoint"},
    {"export", nt_cmd_export, "convert a quantized checkpoint to the GPTQ format transformers, AutoGPTQ and vLLM load"},
    {"eval", nt_cmd_eval, "perplexity of a model on WikiText-2, PTB, C4 or a text file, as a table and a results CSV"},
    {"run", nt_cmd_run, "run an experiment grid (JSON) cell by cell into one results CSV, resuming after a kill"},
    {"table", nt_cmd_table, "comparison tables (Markdown, CSV) from results CSVs: methods x bits x tasks, deltas"},
    {"plot", nt_cmd_plot, "plots with gnuplot: quality vs bits per model x task, or kernel speedup vs M"},
    {"gate", nt_cmd_gate, "compare a candidate results CSV with a baseline: exit 1 when a metric regresses"},
    {"bench", nt_cmd_bench, "time the quantized CUDA kernels against cuBLASLt fp16 on real layer shapes (CSV)"},
    {"version", cmd_version, "the build's commit and features"},
};

static void usage(FILE *f) {
    fprintf(f, "normtweak: low-bit quantization harness (norm tweaking, RTN, GPTQ)\n"
               "usage: normtweak <command> [options]    (normtweak <command> --help for its options)\n"
               "commands:\n");
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
        fprintf(f, "  %-10s %s\n", commands[i].name, commands[i].help);
}

int main(int argc, char **argv) {
    nt_tune_runtime(argv); // may re-execute the program once (nt.h)
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    const char *cmd = argv[1];
    if (strcmp(cmd, "help") == 0 || strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0) {
        usage(stdout);
        return 0;
    }
    if (strcmp(cmd, "--version") == 0) return cmd_version(0, NULL);
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
        if (strcmp(cmd, commands[i].name) == 0) return commands[i].run(argc - 1, argv + 1);
    fprintf(stderr, "normtweak: unknown command '%s'\n", cmd);
    usage(stderr);
    return 2;
}
