// cmd_gate.c: `normtweak gate`: a regression gate between two results CSVs, for CI and before a commit.
// A thin shell over nt_gate (eval/gate.h): options, thresholds, exit status 0 pass, 1 a metric regressed (or a
// row is missing with --require-all), 2 unusable input (unreadable or malformed CSV, bad threshold, no match).
#define _GNU_SOURCE
#include <getopt.h>
#include <math.h>
#include <string.h>

#include "cli.h"
#include "gate.h"

// A non-negative finite number with an optional unit suffix (one of `units`, NULL-terminated list).
static int parse_threshold(const char *opt, const char *s, const char *const *units, const char *hint, double *out) {
    char *end = NULL;
    double v = strtod(s, &end);
    bool ok = end != s && isfinite(v) && v >= 0.0;
    if (ok && *end) {
        ok = false;
        for (const char *const *u = units; *u; u++) ok |= strcmp(end, *u) == 0;
    }
    if (!ok) {
        fprintf(stderr, "normtweak gate: %s '%s': expected %s\n", opt, s, hint);
        return -1;
    }
    *out = v;
    return 0;
}

static void gate_usage(FILE *f) {
    fprintf(f,
            "usage: normtweak gate --baseline A.csv --candidate B.csv [--max-ppl-rise P%%] [--max-acc-drop D] "
            "[--require-all]\n"
            "                      [--baseline-samples DIR --candidate-samples DIR]\n"
            "  --max-ppl-rise P%%   allowed perplexity rise, percent of the baseline value (default 2%%)\n"
            "  --max-acc-drop D    allowed accuracy drop in percentage points (default 0.5: 70.0%% -> 69.5%% passes);\n"
            "                      the CSVs store accuracy as a fraction 0..1\n"
            "  --require-all       a baseline row without a candidate row fails the gate (default: listed only)\n"
            "rows match on model, method, wbits, group_size, task, metric, seqlen, calib and options (sorted);\n"
            "rows without a partner are listed (missing: baseline only, new: candidate only).\n"
            "  --baseline-samples DIR --candidate-samples DIR\n"
            "                      item by item: the zero-shot items whose acc/acc_norm flipped between two runs'\n"
            "                      `eval --log-samples` folders (listed; they do not change the exit status);\n"
            "                      either pair (CSVs, samples) may be given alone\n"
            "exit status: 0 pass, 1 a metric regressed, 2 unusable input (bad CSV or option, no matching rows)\n");
}

int nt_cmd_gate(int argc, char **argv) {
    const char *base_path = NULL, *cand_path = NULL, *base_samples = NULL, *cand_samples = NULL;
    nt_gate_opts d = nt_gate_opts_default();
    double max_rise = d.max_ppl_rise, max_drop = d.max_acc_drop;
    bool require_all = false;
    static const char *const pct[] = {"%", NULL}, *const pts[] = {"pp", NULL};
    static const struct option opts[] = {
        {"baseline", required_argument, 0, 'b'},     {"candidate", required_argument, 0, 'c'},
        {"max-ppl-rise", required_argument, 0, 'p'}, {"max-acc-drop", required_argument, 0, 'a'},
        {"require-all", no_argument, 0, 'r'},        {"help", no_argument, 0, 'h'},
        {"baseline-samples", required_argument, 0, 'B'}, {"candidate-samples", required_argument, 0, 'C'},
        {0, 0, 0, 0}};
    optind = 0;
    int c;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'b': base_path = optarg; break;
        case 'c': cand_path = optarg; break;
        case 'p':
            if (parse_threshold("--max-ppl-rise", optarg, pct, "a percentage >= 0 such as 2% or 0.5%", &max_rise))
                return 2;
            break;
        case 'a':
            if (parse_threshold("--max-acc-drop", optarg, pts,
                                "percentage points >= 0 such as 0.5 or 0.5pp ('%' would be ambiguous)", &max_drop))
                return 2;
            break;
        case 'r': require_all = true; break;
        case 'B': base_samples = optarg; break;
        case 'C': cand_samples = optarg; break;
        case 'h': gate_usage(stdout); return 0;
        default: gate_usage(stderr); return 2;
        }
    }
    bool csv = base_path || cand_path, samples = base_samples || cand_samples;
    if ((csv && (!base_path || !cand_path)) || (samples && (!base_samples || !cand_samples)) || (!csv && !samples) ||
        optind < argc) {
        if (optind < argc) fprintf(stderr, "normtweak gate: unexpected argument '%s'\n", argv[optind]);
        else fprintf(stderr, "normtweak gate: needs --baseline and --candidate (CSVs), or --baseline-samples and "
                             "--candidate-samples (folders), or both pairs\n");
        return 2;
    }
    nt_err err = {0};
    bool pass = true;
    if (csv) {
        nt_gate_opts o = {.max_ppl_rise = max_rise, .max_acc_drop = max_drop, .require_all = require_all};
        nt_gate_result res;
        if (nt_gate(base_path, cand_path, &o, stdout, &res, &err)) {
            fprintf(stderr, "normtweak gate: %s\n", err.msg);
            return 2;
        }
        pass = res.pass;
    }
    if (samples) {
        nt_samples_diff d;
        if (nt_gate_samples(base_samples, cand_samples, stdout, &d, &err)) {
            fprintf(stderr, "normtweak gate: %s\n", err.msg);
            return 2;
        }
    }
    return pass ? 0 : 1;
}
