// bench_ppl_ids.c: writes the token windows a perplexity task scores, exactly as `normtweak eval` builds them
// (the model's own tokenizer, nt_ppl_windows), to a raw little-endian int32 file (n_windows, seqlen), so that
// the peers of benchmarks/peers/ score the very token ids normtweak scores. Loads only the tokenizer.
//
// usage: bench_ppl_ids [--seqlen N] [--limit N] [--data-dir DIR] MODEL TASK OUT.i32
//   --seqlen: window length (default 2048); --limit: the first N windows only (default all);
//   --data-dir: default ../shared/datasets.
// Output: the file, and one line on stdout: "windows W seqlen S tokens T" (T: the tokens the whole text gave).
#define _GNU_SOURCE
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>

#include "datasets.h"

static int pos_arg(const char *name, const char *s, long *out) {
    char *end = NULL;
    long v = strtol(s, &end, 10);
    if (!*s || *end || v < 1) {
        fprintf(stderr, "bench_ppl_ids: %s needs a positive integer, got '%s'\n", name, s);
        return -1;
    }
    *out = v;
    return 0;
}

int main(int argc, char **argv) {
    long seqlen = 2048, limit = 0;
    const char *data_dir = "../shared/datasets";
    static const struct option opts[] = {{"seqlen", required_argument, 0, 's'},
                                         {"limit", required_argument, 0, 'l'},
                                         {"data-dir", required_argument, 0, 'd'},
                                         {0, 0, 0, 0}};
    int c;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 's': if (pos_arg("--seqlen", optarg, &seqlen)) return 2; break;
        case 'l': if (pos_arg("--limit", optarg, &limit)) return 2; break;
        case 'd': data_dir = optarg; break;
        default: return 2;
        }
    }
    if (argc - optind != 3) {
        fprintf(stderr, "usage: %s [--seqlen N] [--limit N] [--data-dir DIR] MODEL TASK OUT.i32\n", argv[0]);
        return 2;
    }
    const char *model = argv[optind], *task = argv[optind + 1], *out = argv[optind + 2];
    nt_err err;
    nt_tokenizer *tok = NULL;
    nt_windows w = {0};
    if (nt_tokenizer_load_model(&tok, model, &err) || nt_ppl_windows(task, data_dir, tok, (size_t)seqlen, &w, &err)) {
        fprintf(stderr, "bench_ppl_ids: %s\n", err.msg);
        nt_tokenizer_free(&tok);
        return 1;
    }
    size_t nw = limit && (size_t)limit < w.n_windows ? (size_t)limit : w.n_windows;
    FILE *f = fopen(out, "wb");
    int rc = 0;
    // int32 in the machine's order: every machine this builds on is little-endian (base/ reads GGUF that way)
    bool ok = f && fwrite(w.ids, sizeof(int32_t) * w.seqlen, nw, f) == nw;
    if (f && fclose(f)) ok = false;
    if (!ok) {
        fprintf(stderr, "bench_ppl_ids: %s: cannot write the windows\n", out);
        rc = 1;
    } else {
        printf("windows %zu seqlen %zu tokens %zu\n", nw, w.seqlen, w.n_tokens);
    }
    nt_windows_free(&w);
    nt_tokenizer_free(&tok);
    return rc;
}
