// quant_cli.c: see quant_cli.h.
#define _GNU_SOURCE
#include "quant_cli.h"

#include <stdlib.h>
#include <string.h>

#define NT_QUANT_VAL0 1000 // getopt val of nt_quant_opt_defs[i] is NT_QUANT_VAL0 + i

void nt_quant_merge_options(const struct option *own, size_t n_own, struct option *out, size_t cap) {
    size_t k = 0;
    memcpy(out, own, n_own * sizeof(*own));
    for (; nt_quant_opt_defs[k].name && n_own + k + 1 < cap; k++)
        out[n_own + k] = (struct option){nt_quant_opt_defs[k].name,
                                         nt_quant_opt_defs[k].has_value ? required_argument : no_argument, 0,
                                         NT_QUANT_VAL0 + (int)k};
    memset(&out[n_own + k], 0, sizeof(*out));
}

int nt_quant_option(int c, const char *arg, nt_quant_opts *o, bool *method_set, nt_err *err) {
    size_t n = 0;
    while (nt_quant_opt_defs[n].name) n++;
    if (c < NT_QUANT_VAL0 || c >= NT_QUANT_VAL0 + (int)n) return 1;
    const char *name = nt_quant_opt_defs[c - NT_QUANT_VAL0].name;
    int rc = nt_quant_opts_set(o, name, arg, err);
    if (rc == 0 && strcmp(name, "method") == 0) *method_set = true;
    return rc;
}

int nt_quant_option_cli(const char *cmd, int c, const char *arg, nt_quant_opts *o, bool *method_set,
                        void (*usage)(FILE *)) {
    nt_err err = {0};
    int rc = nt_quant_option(c, arg, o, method_set, &err);
    if (rc < 0) fprintf(stderr, "normtweak %s: %s\n", cmd, err.msg);
    else if (rc > 0) usage(stderr);
    return rc ? 2 : 0;
}

int nt_cli_pos_int(const char *cmd, const char *opt, const char *s, long max, long *out) {
    char *end = NULL;
    long v = strtol(s, &end, 10);
    if (!*s || *end || v <= 0 || v > max) {
        fprintf(stderr, "normtweak %s: %s needs a positive integer, got '%s'\n", cmd, opt, s);
        return -1;
    }
    *out = v;
    return 0;
}
