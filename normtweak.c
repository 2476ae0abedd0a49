// normtweak.c: the command-line front end. `normtweak SUBCOMMAND [options]`; the subcommands live in the
// library (eval/cli.h) so that tests and experiment grids can call them too.
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "nt.h"

static void usage(FILE *f) {
    fprintf(f,
            "normtweak: low-bit quantization harness (norm tweaking, RTN, GPTQ)\n"
            "usage: normtweak <command> [options]    (normtweak <command> --help for its options)\n"
            "commands:\n"
            "  eval      perplexity of a model on WikiText-2, PTB, C4 or a text file, as a table and a results CSV\n"
            "  version   the build's commit and features\n");
}

int main(int argc, char **argv) {
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    const char *cmd = argv[1];
    if (strcmp(cmd, "eval") == 0) return nt_cmd_eval(argc - 1, argv + 1);
    if (strcmp(cmd, "version") == 0 || strcmp(cmd, "--version") == 0) {
#ifdef NT_HAVE_CUDA
        const char *cuda = "with CUDA kernels";
#else
        const char *cuda = "CPU only";
#endif
        printf("normtweak %s (%s)\n", nt_build_commit(), cuda);
        return 0;
    }
    if (strcmp(cmd, "help") == 0 || strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0) {
        usage(stdout);
        return 0;
    }
    fprintf(stderr, "normtweak: unknown command '%s'\n", cmd);
    usage(stderr);
    return 2;
}
