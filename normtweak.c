// normtweak.c: the command-line front end: `normtweak COMMAND [options]`. The commands live in the library
// (eval/cli.h) so that tests and experiment grids can call them too; this file only dispatches.
#include <stdio.h>
#include <string.h>

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
    {"eval", nt_cmd_eval, "perplexity of a model on WikiText-2, PTB, C4 or a text file, as a table and a results CSV"},
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
