// test_cli.c: `normtweak eval` end to end on bad input and on the results CSV: every bad input gives a
// one-line error naming the file (or option) and the problem, a non-zero exit, and no CSV; appending keeps
// earlier rows; a file with a foreign header is refused. Runs the real binary (NT_BINARY_DIR/normtweak).
#define _POSIX_C_SOURCE 200809L
#include <criterion/criterion.h>
#include <math.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "results.h"
#include "testutil.h"

typedef struct {
    char *tmp;    // scratch dir
    char *model;  // path of the shared tiny-opt
    char *data;   // path of the shared datasets
    char *out;    // tmp/out.csv
} env;

static env setup(void) {
    env e;
    e.tmp = tu_tmpdir();
    e.model = tu_shared("models/tiny-opt");
    e.data = tu_shared("datasets");
    e.out = nt_path_join(e.tmp, "out.csv");
    return e;
}

static void teardown(env *e) {
    tu_rmtree(e->tmp);
    free(e->tmp);
    free(e->model);
    free(e->data);
    free(e->out);
}

static void copy_dir(const char *src, const char *dst, const char *skip) {
    char cmd[2048];
    snprintf(cmd, sizeof(cmd), "mkdir -p '%s' && cp -r '%s'/. '%s'/ && chmod -R u+w '%s'", dst, src, dst, dst);
    cr_assert_eq(system(cmd), 0);
    if (skip) {
        snprintf(cmd, sizeof(cmd), "rm -f %s", skip);
        cr_assert_eq(system(cmd), 0);
    }
}

// Runs eval with args; expects exit status `want`, a one-line stderr containing both needles, no CSV.
static void expect_failure(env *e, const char *args, int want, const char *needle1, const char *needle2) {
    char full[4096];
    snprintf(full, sizeof(full), "eval %s --out '%s'", args, e->out);
    char *err = NULL;
    int st = tu_run_cli(full, &err);
    cr_assert_eq(st, want, "normtweak %s: exit %d (want %d), stderr: %s", full, st, want, err ? err : "");
    cr_assert_not_null(err);
    cr_assert(strstr(err, needle1) && strstr(err, needle2), "stderr '%s' lacks '%s' / '%s'", err, needle1, needle2);
    char *nl = strchr(err, '\n');
    cr_assert(nl && nl[1] == '\0', "error is not exactly one line: '%s'", err);
    cr_assert(!nt_file_exists(e->out), "a CSV was written despite the error");
    free(err);
}

Test(cli, missing_dataset_file) {
    env e = setup();
    char args[1024];
    snprintf(args, sizeof(args), "--model '%s' --data-dir '%s/nope' --tasks ptb", e.model, e.tmp);
    expect_failure(&e, args, 1, "ptb.valid.txt", "No such file");
    teardown(&e);
}

Test(cli, empty_dataset_file) {
    env e = setup();
    char dd[512], f[600], args[1024];
    snprintf(dd, sizeof(dd), "%s/data/wikitext2", e.tmp);
    char cmd[700];
    snprintf(cmd, sizeof(cmd), "mkdir -p '%s'", dd);
    cr_assert_eq(system(cmd), 0);
    snprintf(f, sizeof(f), "%s/wiki.test.raw", dd);
    cr_assert_eq(tu_write_file(f, "", 0), 0);
    snprintf(args, sizeof(args), "--model '%s' --data-dir '%s/data' --tasks wikitext2", e.model, e.tmp);
    expect_failure(&e, args, 1, "wiki.test.raw", "empty");
    teardown(&e);
}

Test(cli, text_shorter_than_one_window) {
    env e = setup();
    char f[600], args[1024];
    snprintf(f, sizeof(f), "%s/short.txt", e.tmp);
    cr_assert_eq(tu_write_file(f, "only a few words here\n", 22), 0);
    snprintf(args, sizeof(args), "--model '%s' --tasks '%s'", e.model, f);
    expect_failure(&e, args, 1, "short.txt", "window");
    teardown(&e);
}

Test(cli, seqlen_above_model_maximum) {
    env e = setup();
    char args[1024];
    snprintf(args, sizeof(args), "--model '%s' --data-dir '%s' --seqlen 4096", e.model, e.data);
    expect_failure(&e, args, 1, "--seqlen 4096", "maximum context");
    teardown(&e);
}

Test(cli, unknown_task_and_bad_options) {
    env e = setup();
    char args[1024];
    snprintf(args, sizeof(args), "--model '%s' --tasks wikitext3", e.model);
    expect_failure(&e, args, 2, "wikitext3", "unknown task");
    snprintf(args, sizeof(args), "--model '%s' --seqlen -5", e.model);
    expect_failure(&e, args, 2, "--seqlen", "positive integer");
    snprintf(args, sizeof(args), "--model '%s' --seqlen 12abc", e.model);
    expect_failure(&e, args, 2, "--seqlen", "positive integer");
    teardown(&e);
}

Test(cli, missing_model_and_tokenizer) {
    env e = setup();
    char dir[600], args[1024], skip[2048];
    snprintf(args, sizeof(args), "--model '%s/none'", e.tmp);
    expect_failure(&e, args, 1, "none/config.json", "No such file");
    snprintf(dir, sizeof(dir), "%s/notok", e.tmp);
    snprintf(skip, sizeof(skip), "'%s'/tokenizer.json '%s'/vocab.json '%s'/merges.txt", dir, dir, dir);
    copy_dir(e.model, dir, skip);
    snprintf(args, sizeof(args), "--model '%s' --data-dir '%s'", dir, e.data);
    expect_failure(&e, args, 1, "notok", "tokenizer");
    teardown(&e);
}

Test(cli, corrupt_checkpoint) {
    env e = setup();
    char dir[600], args[1024], st[700];
    snprintf(dir, sizeof(dir), "%s/trunc", e.tmp);
    copy_dir(e.model, dir, NULL);
    snprintf(st, sizeof(st), "%s/model.safetensors", dir);
    cr_assert_eq(truncate(st, 1000000), 0);
    snprintf(args, sizeof(args), "--model '%s' --data-dir '%s'", dir, e.data);
    expect_failure(&e, args, 1, "model.safetensors", "");
    // a header length that claims more than the file holds
    FILE *f = fopen(st, "r+b");
    uint64_t huge = 1ull << 40;
    fwrite(&huge, 8, 1, f);
    fclose(f);
    expect_failure(&e, args, 1, "model.safetensors", "header");
    teardown(&e);
}

Test(cli, malformed_config_and_unknown_architecture) {
    env e = setup();
    char dir[600], args[1024], cfg[700];
    snprintf(dir, sizeof(dir), "%s/badcfg", e.tmp);
    copy_dir(e.model, dir, NULL);
    snprintf(cfg, sizeof(cfg), "%s/config.json", dir);
    cr_assert_eq(tu_write_file(cfg, "{\"model_type\": \"opt\",, }", 25), 0);
    snprintf(args, sizeof(args), "--model '%s' --data-dir '%s'", dir, e.data);
    expect_failure(&e, args, 1, "config.json", "malformed JSON");
    const char *gptj = "{\"model_type\": \"gptj\", \"architectures\": [\"GPTJForCausalLM\"]}";
    cr_assert_eq(tu_write_file(cfg, gptj, strlen(gptj)), 0);
    expect_failure(&e, args, 1, "config.json", "unsupported model_type 'gptj'");
    teardown(&e);
}

// A real (short) run: appends to an existing results file and keeps its rows; refuses a foreign file.
Test(cli, eval_appends_rows_atomically) {
    env e = setup();
    char args[2048];
    snprintf(args, sizeof(args), "eval --model '%s' --data-dir '%s' --tasks ptb,ptb-new --limit 2 --threads 1 --out '%s'",
             e.model, e.data, e.out);
    char *err = NULL;
    cr_assert_eq(tu_run_cli(args, &err), 0, "%s", err ? err : "");
    free(err);
    cr_assert_eq(tu_run_cli(args, &err), 0, "%s", err ? err : "");
    free(err);
    size_t len;
    char *csv = nt_read_file(e.out, &len, NULL);
    cr_assert_not_null(csv);
    cr_assert_eq(strncmp(csv, NT_RESULTS_HEADER "\n", strlen(NT_RESULTS_HEADER) + 1), 0, "header: %.200s", csv);
    int lines = 0;
    for (size_t i = 0; i < len; i++) lines += csv[i] == '\n';
    cr_assert_eq(lines, 5, "header + 2 runs x 2 tasks expected, got %d lines:\n%s", lines, csv);
    cr_assert(strstr(csv, "tiny-opt,fp,16,16,0,ptb,ppl,") && strstr(csv, "tiny-opt,fp,16,16,0,ptb-new,ppl,"), "%s", csv);
    cr_assert(strstr(csv, ",256,") && strstr(csv, "limit=2"), "%s", csv);
    // the device names the thread count and OpenBLAS's kernels (a GPTQ result moves with either)
    const char *dev = strstr(csv, ",cpu:1 threads:");
    cr_assert(dev && dev[strlen(",cpu:1 threads:")] != ',', "%s", csv);
    free(csv);

    // a file that is not ours is left alone
    char other[600];
    snprintf(other, sizeof(other), "%s/other.csv", e.tmp);
    cr_assert_eq(tu_write_file(other, "a,b\n1,2\n", 8), 0);
    snprintf(args, sizeof(args), "eval --model '%s' --data-dir '%s' --tasks ptb --limit 1 --out '%s'", e.model,
             e.data, other);
    cr_assert_eq(tu_run_cli(args, &err), 1);
    cr_assert(strstr(err, "other.csv") && strstr(err, "header"), "%s", err);
    free(err);
    csv = nt_read_file(other, &len, NULL);
    cr_assert_str_eq(csv, "a,b\n1,2\n");
    free(csv);
    teardown(&e);
}

Test(results, quoting_and_nan) {
    char *tmp = tu_tmpdir();
    char *p = nt_path_join(tmp, "r.csv");
    nt_result_row r = {.model = "m,1", .method = "fp", .wbits = 16, .group_size = 0, .task = "my \"file\".txt",
                       .metric = "ppl", .value = 12.5, .stderr_ = NAN, .n = 10, .seqlen = 8, .seconds = 1.0,
                       .calib = "", .options = "", .device = "cpu"};
    nt_err err = {0};
    cr_assert_eq(nt_results_append(p, &r, 1, &err), 0, "%s", err.msg);
    char *csv = nt_read_file(p, NULL, NULL);
    cr_assert(strstr(csv, "\n\"m,1\",fp,16,16,0,\"my \"\"file\"\".txt\",ppl,12.5,,10,8,1.000,"), "%s", csv);
    free(csv);
    // an incomplete last line (someone else's crash) is refused, not extended
    FILE *f = fopen(p, "ab");
    fputs("half,row", f);
    fclose(f);
    cr_assert_eq(nt_results_append(p, &r, 1, &err), -1);
    cr_assert(strstr(err.msg, "r.csv") && strstr(err.msg, "incomplete"), "%s", err.msg);
    free(p);
    tu_rmtree(tmp);
    free(tmp);
}

// Without --model, eval takes the default model: SmolLM2-135M-Instruct from $NT_MODELS_DIR (.ci/fetch-models),
// its rows named after the file; a missing default model is a one-line error naming where it was looked for.
Test(cli, default_model_is_smollm2) {
    env e = setup();
    char args[4096];
    snprintf(args, sizeof(args), "eval --tasks wikitext2 --seqlen 32 --limit 1 --data-dir '%s' --out '%s'", e.data,
             e.out);
    char *err = NULL;
    int st = tu_run_cli(args, &err);
    cr_assert_eq(st, 0, "exit %d: %s (run .ci/install-deps to fetch the default model)", st, err ? err : "");
    free(err);
    char *csv = nt_read_file(e.out, NULL, NULL);
    cr_assert(csv && strstr(csv, "\nSmolLM2-135M-Instruct.Q4_1,fp,16,16,0,wikitext2,ppl,"), "%s", csv ? csv : "");
    free(csv);
    unlink(e.out);
    // NT_MODELS_DIR moves it; pointing it at an empty folder names the missing file
    snprintf(args, sizeof(args), "NT_MODELS_DIR='%s' '%s/normtweak' eval --tasks wikitext2 --limit 1 --data-dir '%s' "
             "--out '%s' 2>'%s/err.txt'", e.tmp, getenv("NT_BINARY_DIR"), e.data, e.out, e.tmp);
    cr_assert_neq(system(args), 0);
    char p[4096];
    snprintf(p, sizeof(p), "%s/err.txt", e.tmp);
    err = nt_read_file(p, NULL, NULL);
    cr_assert(err && strstr(err, e.tmp) && strstr(err, "SmolLM2-135M-Instruct.Q4_1.gguf"), "%s", err ? err : "");
    cr_assert(!nt_file_exists(e.out));
    free(err);
    teardown(&e);
}
