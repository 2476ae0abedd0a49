// quant_cli.c: see quant_cli.h.
#define _GNU_SOURCE
#include "quant_cli.h"

#include <stdlib.h>
#include <string.h>

enum {
    O_METHOD = 1000, O_WBITS, O_GROUP, O_SYM, O_MSE, O_ACT, O_STATIC, O_NOSEQ, O_DAMP, O_FP32, O_CALIB, O_SAVECALIB,
    O_NTLOSS, O_NTLR, O_NTGRID, O_NTITERS, O_NTBATCH, O_NTDEPTH, O_NTHOLD
};

const struct option nt_quant_long_options[] = {
    {"method", required_argument, 0, O_METHOD},     {"wbits", required_argument, 0, O_WBITS},
    {"group", required_argument, 0, O_GROUP},       {"sym", no_argument, 0, O_SYM},
    {"mse", no_argument, 0, O_MSE},                 {"act-order", no_argument, 0, O_ACT},
    {"static-groups", no_argument, 0, O_STATIC},    {"no-true-sequential", no_argument, 0, O_NOSEQ},
    {"percdamp", required_argument, 0, O_DAMP},     {"fp32-scales", no_argument, 0, O_FP32},
    {"calib", required_argument, 0, O_CALIB},       {"save-calib", required_argument, 0, O_SAVECALIB},
    {"nt-loss", required_argument, 0, O_NTLOSS},    {"nt-lr", required_argument, 0, O_NTLR},
    {"nt-lr-grid", required_argument, 0, O_NTGRID}, {"nt-iters", required_argument, 0, O_NTITERS},
    {"nt-batch", required_argument, 0, O_NTBATCH},  {"nt-lr-depth", required_argument, 0, O_NTDEPTH},
    {"nt-holdout", required_argument, 0, O_NTHOLD}, {0, 0, 0, 0}};

static int parse_float(const char *opt, const char *s, float *v, nt_err *err) {
    char *end = NULL;
    double d = strtod(s, &end);
    if (!*s || *end || !(d >= 0.0) || d > 1e6) return nt_fail(err, "%s needs a non-negative number, got '%s'", opt, s);
    *v = (float)d;
    return 0;
}

void nt_quant_merge_options(const struct option *own, size_t n_own, struct option *out, size_t cap) {
    size_t k = 0;
    memcpy(out, own, n_own * sizeof(*own));
    while (nt_quant_long_options[k].name && n_own + k + 1 < cap) out[n_own + k] = nt_quant_long_options[k], k++;
    memset(&out[n_own + k], 0, sizeof(*out));
}

static int parse_int(const char *opt, const char *s, long *v, nt_err *err) {
    char *end = NULL;
    *v = strtol(s, &end, 10);
    if (!*s || *end) return nt_fail(err, "%s needs an integer, got '%s'", opt, s);
    return 0;
}

int nt_quant_option(int c, const char *arg, nt_quant_opts *o, bool *method_set, nt_err *err) {
    long v;
    switch (c) {
    case O_METHOD: {
        nt_quant_opts fresh = nt_quant_opts_make(arg, o->wbits, o->group_size);
        snprintf(o->method, sizeof(o->method), "%s", arg);
        o->nt = fresh.nt;
        if (!o->calib_explicit) snprintf(o->calib_source, sizeof(o->calib_source), "%s", fresh.calib_source);
        *method_set = true;
        return 0;
    }
    case O_SAVECALIB: snprintf(o->save_calib, sizeof(o->save_calib), "%s", arg); return 0;
    case O_NTLOSS: return nt_loss_parse(arg, &o->nt_loss, err);
    case O_NTLR: return parse_float("--nt-lr", arg, &o->nt_lr, err);
    case O_NTDEPTH: return parse_float("--nt-lr-depth", arg, &o->nt_lr_depth, err);
    case O_NTGRID: {
        char buf[256];
        snprintf(buf, sizeof(buf), "%s", arg);
        o->n_lr_grid = 0;
        for (char *save = NULL, *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
            if (o->n_lr_grid == 8) return nt_fail(err, "--nt-lr-grid: at most 8 learning rates");
            if (parse_float("--nt-lr-grid", t, &o->nt_lr_grid[o->n_lr_grid++], err)) return -1;
        }
        return o->n_lr_grid ? 0 : nt_fail(err, "--nt-lr-grid needs a comma-separated list of learning rates");
    }
    case O_NTITERS:
    case O_NTBATCH:
    case O_NTHOLD:
        if (parse_int(c == O_NTITERS ? "--nt-iters" : c == O_NTBATCH ? "--nt-batch" : "--nt-holdout", arg, &v, err))
            return -1;
        if (v < (c == O_NTHOLD ? 0 : 1) || v > 100000)
            return nt_fail(err, "%s %s: out of range", c == O_NTITERS ? "--nt-iters" : c == O_NTBATCH ? "--nt-batch" : "--nt-holdout", arg);
        *(c == O_NTITERS ? &o->nt_iters : c == O_NTBATCH ? &o->nt_batch : &o->nt_holdout) = (int)v;
        return 0;
    case O_WBITS:
        if (parse_int("--wbits", arg, &v, err)) return -1;
        if (!nt_qtraits_get((int)v)) return nt_fail(err, "--wbits %s: unsupported (expected 2, 3, 4 or 8)", arg);
        o->wbits = (int)v;
        return 0;
    case O_GROUP:
        if (parse_int("--group", arg, &v, err)) return -1;
        if (v != -1 && v != 32 && v != 64 && v != 128)
            return nt_fail(err, "--group %s: unsupported (expected 32, 64, 128 or -1 for per channel)", arg);
        o->group_size = (int)v;
        return 0;
    case O_SYM: o->sym = true; return 0;
    case O_MSE: o->mse = true; return 0;
    case O_ACT: o->act_order = true; return 0;
    case O_STATIC: o->static_groups = true; return 0;
    case O_NOSEQ: o->true_sequential = false; return 0;
    case O_FP32: o->fp32_scales = true; return 0;
    case O_DAMP: {
        char *end = NULL;
        double d = strtod(arg, &end);
        if (!*arg || *end || !(d > 0.0 && d < 10.0)) return nt_fail(err, "--percdamp needs a number in (0, 10), got '%s'", arg);
        o->percdamp = (float)d;
        return 0;
    }
    case O_CALIB: return nt_quant_opts_set_calib(o, arg, err);
    default: return 1;
    }
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
