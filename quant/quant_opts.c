// quant_opts.c: a quantization method's options (quant_opts.h).
#define _POSIX_C_SOURCE 200809L
#include "quant_opts.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "method.h"
#include "normtweak.h"

nt_quant_opts nt_quant_opts_make(const char *method, int wbits, int group_size) {
    nt_quant_opts o = {.wbits = wbits, .group_size = group_size, .true_sequential = true, .percdamp = 0.01f,
                       .blocksize = 128, .nsamples = 128, .calib_seqlen = 2048, .seed = 0,
                       .nt_loss = NT_LOSS_DIST, .nt_lr = 1e-5f, .nt_lr_depth = -1.0f, .nt_iters = 1, .nt_batch = 1,
                       .nt_holdout = -1, .abits = 16, .smooth_alpha = 0.5f};
    snprintf(o.method, sizeof(o.method), "%s", method);
    const nt_method *me = nt_method_find(method);
    // GPTQ calibrates on C4; norm tweaking on text the float model generates (the paper's defaults)
    snprintf(o.calib_source, sizeof(o.calib_source), "%s", me && me->default_calib ? me->default_calib : "c4");
    return o;
}

int nt_quant_opts_set_calib(nt_quant_opts *o, const char *spec, nt_err *err) {
    char buf[256];
    snprintf(buf, sizeof(buf), "%s", spec);
    char *save = NULL;
    if (buf[0] == ':') { // ":NxL[:seedS]": the method's own source (c4 for GPTQ, gen for norm tweaking), sized
        if (!buf[1]) return nt_fail(err, "--calib %s: nothing after ':'", spec);
    } else {
        char *src = strtok_r(buf, ":", &save);
        if (!src || !*src) return nt_fail(err, "--calib: empty calibration spec");
        snprintf(o->calib_source, sizeof(o->calib_source), "%s", src);
        o->calib_explicit = true;
    }
    char *start = buf[0] == ':' ? buf + 1 : NULL;
    for (char *part = strtok_r(start, ":", &save); part; part = strtok_r(NULL, ":", &save)) {
        char *end = NULL;
        if (strncmp(part, "seed", 4) == 0) {
            unsigned long long s = strtoull(part + 4, &end, 10);
            if (end == part + 4 || *end) return nt_fail(err, "--calib %s: bad seed '%s'", spec, part);
            o->seed = s;
            continue;
        }
        long n = strtol(part, &end, 10);
        if (end == part || n <= 0 || n > 1000000) return nt_fail(err, "--calib %s: bad sample count '%s'", spec, part);
        o->nsamples = (int)n;
        if (*end == 'x') {
            char *e2 = NULL;
            long L = strtol(end + 1, &e2, 10);
            if (e2 == end + 1 || *e2 || L < 2 || L > 1000000)
                return nt_fail(err, "--calib %s: bad sample length in '%s'", spec, part);
            o->calib_seqlen = (int)L;
        } else if (*end) {
            return nt_fail(err, "--calib %s: expected N or NxL, got '%s'", spec, part);
        }
    }
    return 0;
}

int nt_quant_opts_check(const nt_quant_opts *o, const nt_model *m, nt_err *err) {
    const nt_method *me = nt_method_find(o->method);
    if (!me || !me->quantizer)
        return nt_fail_usage(err, "--method %s: unknown quantization method (expected %s)", o->method,
                             nt_method_names());
    if (me->tweak && (o->nt_iters < 1 || o->nt_batch < 1 || !(o->nt_lr >= 0.0f) || o->n_lr_grid < 0 || o->n_lr_grid > 8))
        return nt_fail(err, "norm tweaking: iterations and batch must be >= 1 and learning rates >= 0");
    if (!nt_qtraits_get(o->wbits)) return nt_fail(err, "--wbits %d: unsupported (expected 2, 3, 4 or 8)", o->wbits);
    if (o->static_groups && !o->act_order) return nt_fail(err, "--static-groups needs --act-order");
    if (o->abits != 16 && o->abits != 8 && o->abits != 4)
        return nt_fail(err, "--abits %d: unsupported (expected 8 or 4; 16: none)", o->abits);
    if (o->act_static && o->abits == 16) return nt_fail(err, "--act-scheme static needs --abits 8 or 4");
    if (!(o->smooth_alpha >= 0.0f && o->smooth_alpha <= 1.0f))
        return nt_fail(err, "--smooth-alpha %g: expected a number in [0, 1]", (double)o->smooth_alpha);
    if (o->percdamp <= 0.0f || o->blocksize <= 0) return nt_fail(err, "GPTQ dampening and block size must be positive");
    const nt_config *c = &m->cfg;
    int ins[3] = {c->dim, c->n_heads * c->head_dim, c->ffn_dim};
    const char *what[3] = {"hidden size", "attention width", "MLP width"};
    for (int i = 0; i < 3; i++) {
        nt_err e2;
        if (nt_qformat_check(1, ins[i], o->wbits, o->group_size, &e2))
            return nt_fail(err, "%s: %s (%s of %s)", m->dir, e2.msg, what[i], m->name);
    }
    return 0;
}

static int parse_float(const char *opt, const char *s, float *v, nt_err *err) {
    char *end = NULL;
    double d = strtod(s, &end);
    if (!*s || *end || !(d >= 0.0) || d > 1e6) return nt_fail(err, "%s needs a non-negative number, got '%s'", opt, s);
    *v = (float)d;
    return 0;
}

static int parse_int(const char *opt, const char *s, long *v, nt_err *err) {
    char *end = NULL;
    *v = strtol(s, &end, 10);
    if (!*s || *end) return nt_fail(err, "%s needs an integer, got '%s'", opt, s);
    return 0;
}

const nt_quant_opt_def nt_quant_opt_defs[] = {
    {"method", true, "fp (default for eval), rtn, rtn+nt, gptq, gptq+nt, smoothquant, smoothquant+nt, smoothquant-gptq"},
    {"wbits", true, "2, 3, 4 or 8 (default 4)"},
    {"group", true, "group size 32, 64, 128, or -1 per channel (default 128)"},
    {"sym", false, "symmetric quantization (no zero points)"},
    {"mse", false, "GPTQ's MSE-optimal clipping search for scales"},
    {"act-order", false, "GPTQ: quantize columns by descending Hessian diagonal"},
    {"static-groups", false, "GPTQ + act-order: group parameters fixed up front"},
    {"no-true-sequential", false, "GPTQ: quantize all linears of a block from one pass"},
    {"percdamp", true, "GPTQ dampening, fraction of the mean Hessian diagonal (default 0.01)"},
    {"fp32-scales", false, "quantize with fp32 scales as GPTQ's reference (default: the stored fp16 scales)"},
    {"calib", true, "calibration SOURCE[:N[xL]][:seedS]"},
    {"save-calib", true, "write the calibration tokens used to a token file"},
    {"nt-loss", true, "dist (the paper's, default), mean-std (the authors' code), mean-std-sse, mse"},
    {"nt-lr", true, "base learning rate (default 1e-5), scaled per block by 1 + l*k/n_blocks"},
    {"nt-lr-grid", true, "per block, the lr (from a list, or no tweak) with the lowest held-out loss"},
    {"nt-iters", true, "passes over the calibration samples (default 1)"},
    {"nt-batch", true, "samples per Adam step (default 1)"},
    {"nt-lr-depth", true, "k of the depth scaling (default: 100 for OPT/LLaMA, 10 for BLOOM)"},
    {"nt-holdout", true, "calibration samples held out of tweaking to score it"},
    {"abits", true, "activation bits of every block linear's input: 8 or 4 (default: 16, not quantized)"},
    {"act-scheme", true, "activation scales: dynamic (per token, default) or static (per tensor, from calibration)"},
    {"smooth-alpha", true, "SmoothQuant's migration strength alpha in [0, 1] (default 0.5)"},
    {NULL, false, NULL}};

static int set_int(const char *opt, const char *arg, long lo, long hi, int *out, nt_err *err) {
    long v;
    if (parse_int(opt, arg, &v, err)) return -1;
    if (v < lo || v > hi) return nt_fail(err, "%s %s: out of range", opt, arg);
    *out = (int)v;
    return 0;
}

static int set_value(nt_quant_opts *o, const char *name, const char *arg, nt_err *err) {
    long v;
#define IS(s) (strcmp(name, s) == 0)
    if (IS("method")) {
        nt_quant_opts fresh = nt_quant_opts_make(arg, o->wbits, o->group_size);
        snprintf(o->method, sizeof(o->method), "%s", arg);
        if (!o->calib_explicit) snprintf(o->calib_source, sizeof(o->calib_source), "%s", fresh.calib_source);
        return 0;
    }
    if (IS("save-calib")) {
        snprintf(o->save_calib, sizeof(o->save_calib), "%s", arg);
        return 0;
    }
    if (IS("nt-loss")) return nt_loss_parse(arg, &o->nt_loss, err);
    if (IS("nt-lr")) return parse_float("--nt-lr", arg, &o->nt_lr, err);
    if (IS("nt-lr-depth")) return parse_float("--nt-lr-depth", arg, &o->nt_lr_depth, err);
    if (IS("nt-lr-grid")) {
        char buf[256];
        snprintf(buf, sizeof(buf), "%s", arg);
        o->n_lr_grid = 0;
        for (char *save = NULL, *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
            if (o->n_lr_grid == 8) return nt_fail(err, "--nt-lr-grid: at most 8 learning rates");
            if (parse_float("--nt-lr-grid", t, &o->nt_lr_grid[o->n_lr_grid++], err)) return -1;
        }
        return o->n_lr_grid ? 0 : nt_fail(err, "--nt-lr-grid needs a comma-separated list of learning rates");
    }
    if (IS("nt-iters")) return set_int("--nt-iters", arg, 1, 100000, &o->nt_iters, err);
    if (IS("nt-batch")) return set_int("--nt-batch", arg, 1, 100000, &o->nt_batch, err);
    if (IS("nt-holdout")) return set_int("--nt-holdout", arg, 0, 100000, &o->nt_holdout, err);
    if (IS("wbits")) {
        if (parse_int("--wbits", arg, &v, err)) return -1;
        if (!nt_qtraits_get((int)v)) return nt_fail(err, "--wbits %s: unsupported (expected 2, 3, 4 or 8)", arg);
        o->wbits = (int)v;
        return 0;
    }
    if (IS("group")) {
        if (parse_int("--group", arg, &v, err)) return -1;
        if (v != -1 && v != 32 && v != 64 && v != 128)
            return nt_fail(err, "--group %s: unsupported (expected 32, 64, 128 or -1 for per channel)", arg);
        o->group_size = (int)v;
        return 0;
    }
    if (IS("percdamp")) {
        char *end = NULL;
        double d = strtod(arg, &end);
        if (!*arg || *end || !(d > 0.0 && d < 10.0))
            return nt_fail(err, "--percdamp needs a number in (0, 10), got '%s'", arg);
        o->percdamp = (float)d;
        return 0;
    }
    if (IS("calib")) return nt_quant_opts_set_calib(o, arg, err);
    if (IS("abits")) {
        if (parse_int("--abits", arg, &v, err)) return -1;
        if (v != 16 && v != 8 && v != 4) return nt_fail(err, "--abits %s: unsupported (expected 8 or 4; 16: none)", arg);
        o->abits = (int)v;
        return 0;
    }
    if (IS("act-scheme")) {
        if (strcmp(arg, "dynamic") != 0 && strcmp(arg, "static") != 0)
            return nt_fail(err, "--act-scheme %s: expected dynamic or static", arg);
        o->act_static = strcmp(arg, "static") == 0;
        return 0;
    }
    if (IS("smooth-alpha")) {
        if (parse_float("--smooth-alpha", arg, &o->smooth_alpha, err)) return -1;
        if (o->smooth_alpha > 1.0f) return nt_fail(err, "--smooth-alpha %s: expected a number in [0, 1]", arg);
        return 0;
    }
#undef IS
    return 1;
}

static bool set_flag(nt_quant_opts *o, const char *name) {
    bool *flags[] = {&o->sym, &o->mse, &o->act_order, &o->static_groups, &o->fp32_scales};
    const char *names[] = {"sym", "mse", "act-order", "static-groups", "fp32-scales"};
    for (size_t i = 0; i < sizeof(flags) / sizeof(flags[0]); i++)
        if (strcmp(name, names[i]) == 0) return *flags[i] = true;
    if (strcmp(name, "no-true-sequential") == 0) return !(o->true_sequential = false);
    return false;
}

int nt_quant_opts_set(nt_quant_opts *o, const char *name, const char *value, nt_err *err) {
    const nt_quant_opt_def *d = nt_quant_opt_defs;
    while (d->name && strcmp(d->name, name) != 0) d++;
    if (!d->name) return 1;
    if (d->has_value != (value != NULL))
        return nt_fail_usage(err, "option '%s' %s", name, value ? "takes no value" : "needs a value");
    if (!d->has_value) return set_flag(o, name) ? 0 : 1;
    int rc = set_value(o, name, value, err);
    if (rc < 0) err->kind = NT_ERR_USAGE;
    return rc;
}
