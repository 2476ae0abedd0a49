// test_zeroshot.c: zero-shot scoring (eval/zeroshot.c, datasets/tasks.c) against a transformers transcription of
// lm-evaluation-harness v0.4.5 (tests/golden/make_zeroshot_goldens.py: every request scored from scratch, no
// KV cache, HF tokenizers): per item and choice the continuation log-likelihood to 1e-3, the greedy flag, the
// continuation and (truncated) context token counts, and the metrics over those items exactly. Goldens cover the
// first 50 items of all 8 tasks on tiny-opt and the first 25 of 5 tasks on tiny-llama (boolq includes contexts
// truncated to the 256-token model context). Also: the string rules the prompts depend on (HellaSwag
// preprocess, Python whitespace/len), the lm-eval request rules on hand-made items, and bad task files (the
// error names FILE:LINE; with skip_bad_items the item is skipped and counted).
#define _POSIX_C_SOURCE 200809L
#include <cjson/cJSON.h>
#include <criterion/criterion.h>
#include <math.h>
#include <string.h>
#include <sys/stat.h>

#include "testutil.h"
#include "zeroshot.h"

// A continuation's log-likelihood against lm-eval's (transformers, fp32, another machine): a sum of a few tokens'
// log-probs, each within test_forward's 1e-4 of transformers' (measured <= 7e-5 on these models): atol 1e-3,
// rtol 0 (the error does not grow with the loglik's size, only with the number of tokens).
#define LL_TOL 1e-3

typedef struct {
    nt_model *m;
    nt_tokenizer *tok;
} loaded;

static loaded load_model(const char *name) {
    char rel[128];
    snprintf(rel, sizeof(rel), "models/%s", name);
    char *dir = tu_shared(rel);
    loaded l = {0};
    nt_err err;
    cr_assert_eq(nt_model_load(&l.m, dir, &err), 0, "%s", err.msg);
    cr_assert_eq(nt_tokenizer_load_dir(&l.tok, dir, &err), 0, "%s", err.msg);
    free(dir);
    return l;
}

static void unload(loaded *l) {
    nt_model_free(&l->m);
    nt_tokenizer_free(&l->tok);
}

static const cJSON *get(const cJSON *o, const char *k) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    cr_assert_not_null(v, "golden: missing \"%s\"", k);
    return v;
}

// ---------------------------------------------------------------------------------------------------------
// Goldens

static void check_golden(const char *model, const char *task) {
    char rel[256];
    snprintf(rel, sizeof(rel), "tests/golden/zeroshot/%s__%s.json", model, task);
    char *path = tu_source(rel);
    char *text = nt_read_file(path, NULL, NULL);
    cr_assert_not_null(text, "cannot read %s (make it with tests/golden/make_zeroshot_goldens.py)", path);
    cJSON *g = cJSON_Parse(text);
    free(text);
    cr_assert_not_null(g, "%s: malformed golden", path);
    long limit = (long)get(g, "limit")->valuedouble;
    const cJSON *items = get(g, "items");

    loaded l = load_model(model);
    char *data = tu_shared("datasets");
    nt_zs_result res;
    nt_err err;
    cr_assert_eq(nt_zeroshot_eval(l.m, l.tok, task, data, limit, false, &res, &err), 0, "%s", err.msg);
    cr_assert_eq(res.n_items, cJSON_GetArraySize(items), "%s: %ld items scored, golden has %d", task, res.n_items,
                 cJSON_GetArraySize(items));
    cr_expect_eq(res.n_skipped, 0);
    cr_expect_eq(res.max_length, (int)get(g, "max_length")->valuedouble);

    double worst = 0.0;
    int n_req = 0;
    for (long i = 0; i < res.n_items; i++) {
        const cJSON *it = cJSON_GetArrayItem(items, (int)i);
        const cJSON *ll = get(it, "ll"), *gr = get(it, "greedy"), *ci = get(it, "cont_ids"), *nc = get(it, "n_ctx");
        cr_assert_eq(res.item_line[i], (size_t)get(it, "line")->valuedouble, "%s item %ld: line", task, i);
        cr_assert_eq(res.gold[i], get(it, "gold")->valueint, "%s item %ld: gold", task, i);
        int nch = (int)(res.req_start[i + 1] - res.req_start[i]);
        cr_assert_eq(nch, cJSON_GetArraySize(ll), "%s line %zu: %d choices, golden %d", task, res.item_line[i], nch,
                     cJSON_GetArraySize(ll));
        for (int c = 0; c < nch; c++, n_req++) {
            size_t q = res.req_start[i] + (size_t)c;
            double want = cJSON_GetArrayItem(ll, c)->valuedouble;
            double d = fabs(res.loglik[q] - want);
            worst = d > worst ? d : worst;
            TU_EXPECT_CLOSE(res.loglik[q], want, LL_TOL, 0.0, "%s %s line %zu choice %d: loglik against lm-eval",
                            model, task, res.item_line[i], c);
            cr_expect_eq(res.greedy[q], cJSON_IsTrue(cJSON_GetArrayItem(gr, c)), "%s line %zu choice %d: greedy",
                         task, res.item_line[i], c);
            cr_expect_eq(res.n_cont_tokens[q], cJSON_GetArraySize(cJSON_GetArrayItem(ci, c)),
                         "%s line %zu choice %d: %d continuation tokens, lm-eval %d", task, res.item_line[i], c,
                         res.n_cont_tokens[q], cJSON_GetArraySize(cJSON_GetArrayItem(ci, c)));
            cr_expect_eq(res.n_ctx_tokens[q], cJSON_GetArrayItem(nc, c)->valueint,
                         "%s line %zu choice %d: %d context tokens seen, lm-eval %d", task, res.item_line[i], c,
                         res.n_ctx_tokens[q], cJSON_GetArrayItem(nc, c)->valueint);
        }
    }
    const cJSON *metrics = get(g, "metrics");
    cr_expect_eq(res.n_metrics, cJSON_GetArraySize(metrics), "%s: %d metrics, golden %d", task, res.n_metrics,
                 cJSON_GetArraySize(metrics));
    const cJSON *mj;
    cJSON_ArrayForEach(mj, metrics) {
        const nt_zs_metric *mt = nt_zs_result_metric(&res, mj->string);
        cr_assert_not_null(mt, "%s: no metric %s", task, mj->string);
        double v = get(mj, "value")->valuedouble, se = get(mj, "stderr")->valuedouble;
        // accuracies are means (and their stderr) of the same 0/1 decisions: identical up to double rounding
        // (atol 1e-12, rtol 0); perplexity exp(-mean loglik per item) and its stderr follow the logliks, each
        // within LL_TOL: rtol 1e-3 (exp of a mean shifted by <= 1e-3), atol 0
        bool ppl = strcmp(mj->string, "perplexity") == 0;
        double atol = ppl ? 0.0 : 1e-12, rtol = ppl ? 1e-3 : 0.0;
        TU_EXPECT_CLOSE(mt->value, v, atol, rtol, "%s %s %s against lm-eval", model, task, mj->string);
        TU_EXPECT_CLOSE(mt->stderr_, se, atol, rtol, "%s %s %s stderr against lm-eval", model, task, mj->string);
    }
    cr_log_info("%s %s: %ld items, %d requests, max |loglik diff| %.2e", model, task, res.n_items, n_req, worst);
    nt_zs_result_free(&res);
    free(data);
    unload(&l);
    cJSON_Delete(g);
    free(path);
}

Test(golden_opt, lambada_openai) { check_golden("tiny-opt", "lambada_openai"); }
Test(golden_opt, hellaswag) { check_golden("tiny-opt", "hellaswag"); }
Test(golden_opt, piqa) { check_golden("tiny-opt", "piqa"); }
Test(golden_opt, arc_easy) { check_golden("tiny-opt", "arc_easy"); }
Test(golden_opt, arc_challenge) { check_golden("tiny-opt", "arc_challenge"); }
Test(golden_opt, winogrande) { check_golden("tiny-opt", "winogrande"); }
Test(golden_opt, boolq) { check_golden("tiny-opt", "boolq"); }
Test(golden_opt, openbookqa) { check_golden("tiny-opt", "openbookqa"); }
Test(golden_llama, lambada_openai) { check_golden("tiny-llama", "lambada_openai"); }
Test(golden_llama, hellaswag) { check_golden("tiny-llama", "hellaswag"); }
Test(golden_llama, arc_easy) { check_golden("tiny-llama", "arc_easy"); }
Test(golden_llama, winogrande) { check_golden("tiny-llama", "winogrande"); }
Test(golden_llama, boolq) { check_golden("tiny-llama", "boolq"); }

// ---------------------------------------------------------------------------------------------------------
// String rules (expected values from CPython 3.11 running lm-eval's preprocess / str methods)

Test(strings, hellaswag_preprocess) {
    static const struct {
        const char *in, *out;
    } cases[] = {
        {"  Making a cake: [header] How to bake [title] Preheat the oven. [step] Mix.  ",
         "Making a cake: How to bake. Preheat the oven. Mix."},
        {"x [a [b] c] y", "x c] y"},
        {"a   b    c", "a  b  c"}, // one pass of "  " -> " "
        {"unclosed [ bracket", "unclosed [ bracket"},
        {"\xc2\xa0tab\there\xe2\x80\x83", "tab\there"}, // U+00A0 and U+2003 are whitespace to str.strip
        {"[title]start", "start"},
        {"", ""},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char *s = nt_zs_hellaswag_preprocess(cases[i].in, strlen(cases[i].in));
        cr_assert_not_null(s);
        cr_expect_str_eq(s, cases[i].out, "preprocess(\"%s\")", cases[i].in);
        free(s);
    }
}

Test(strings, python_len_and_rstrip) {
    cr_expect_eq(nt_zs_utf8_chars("caf\xc3\xa9 \xe2\x82\xac", 9), 6); // "café €"
    cr_expect_eq(nt_zs_trailing_space("abc \t\n", 6), 3);
    cr_expect_eq(nt_zs_trailing_space("abc\xc2\xa0 ", 6), 3);
    cr_expect_eq(nt_zs_trailing_space("abc\xe3\x80\x80", 6), 3); // U+3000
    cr_expect_eq(nt_zs_trailing_space("ab\xc3\xa0", 4), 0);      // "à" ends in 0xA0 but is not a space
    cr_expect_eq(nt_zs_trailing_space("   ", 3), 3);
}

// ---------------------------------------------------------------------------------------------------------
// Request rules on hand-made items

static char *dup(const char *s) { return strcpy(malloc(strlen(s) + 1), s); }

// A one-item task with the given (context, continuation) requests.
static nt_zs_task make_task(const char *name, int n, const char *const *ctx, const char *const *cont) {
    nt_zs_task t = {0};
    t.info = nt_zs_task_find(name);
    t.path = dup("handmade.jsonl");
    t.items = calloc(1, sizeof(nt_zs_item));
    t.n_items = 1;
    nt_zs_item *it = &t.items[0];
    it->line = 1;
    it->n_choices = n;
    it->contexts = calloc((size_t)n, sizeof(char *));
    it->continuations = calloc((size_t)n, sizeof(char *));
    it->choice_chars = calloc((size_t)n, sizeof(long));
    for (int i = 0; i < n; i++) {
        it->contexts[i] = dup(ctx[i]);
        it->continuations[i] = dup(cont[i]);
        it->choice_chars[i] = (long)strlen(cont[i]);
    }
    return t;
}

Test(requests, trailing_space_moves_and_duplicates_and_empty_context) {
    loaded l = load_model("tiny-opt");
    nt_err err;
    // "The cat " + "sat" is scored as "The cat" + " sat"; a repeated choice gets the same numbers; an empty
    // context is the BOS token alone.
    const char *ctx[] = {"The cat ", "The cat", "The cat", ""};
    const char *cont[] = {"sat", " sat", " sat", "The cat sat"};
    nt_zs_task t = make_task("openbookqa", 4, ctx, cont);
    nt_zs_result res;
    cr_assert_eq(nt_zeroshot_score(l.m, l.tok, &t, 0, false, &res, &err), 0, "%s", err.msg);
    // the same tokens ("The cat" + " sat"), the second request fed after the prefix the first left in the KV
    // cache: decoding against prefill, test_forward's tolerance for it (atol 1e-5, rtol 2^-20)
    TU_EXPECT_CLOSE(res.loglik[0], res.loglik[1], 1e-5, 0x1p-20, "trailing space moved: loglik");
    cr_expect_eq(res.loglik[1], res.loglik[2]);
    cr_expect_eq(res.n_ctx_tokens[0], res.n_ctx_tokens[1]);
    cr_expect_eq(res.n_ctx_tokens[3], 1);
    cr_expect_eq(res.n_cont_tokens[3], 3);
    cr_expect(res.loglik[3] < res.loglik[1]);
    nt_zs_result_free(&res);
    nt_zs_task_free(&t);
    unload(&l);
}

// Left truncation: with max_length 8 the model sees (ctx + cont)[-9:][:-1]; the same request written with
// only those last tokens of context gives the same loglik.
Test(requests, left_truncation) {
    loaded l = load_model("tiny-llama");
    nt_err err;
    const char *ctx[] = {"one two three four five six seven eight nine ten eleven twelve", " eleven twelve"};
    const char *cont[] = {" thirteen", " thirteen"};
    nt_zs_task t = make_task("arc_easy", 2, ctx, cont);
    nt_zs_result full, cut;
    cr_assert_eq(nt_zeroshot_score(l.m, l.tok, &t, 0, false, &full, &err), 0, "%s", err.msg);
    int nc = full.n_cont_tokens[1], nctx_short = full.n_ctx_tokens[1];
    int max_len = nctx_short + nc - 1; // exactly what the short request needs
    cr_assert_eq(nt_zeroshot_score(l.m, l.tok, &t, max_len, false, &cut, &err), 0, "%s", err.msg);
    cr_expect_eq(cut.n_ctx_tokens[0], nctx_short, "%d context tokens seen, want %d", cut.n_ctx_tokens[0], nctx_short);
    // the same tokens fed through the KV cache in other chunks: fp32 sums in other orders; atol 1e-4, rtol 0
    TU_EXPECT_CLOSE(cut.loglik[0], full.loglik[1], 1e-4, 0.0, "left-truncated loglik against the short request's");
    cr_expect(!tu_close(full.loglik[0], full.loglik[1], 1e-4, 0.0),
              "the long context should matter untruncated: %f vs %f", full.loglik[0], full.loglik[1]);
    nt_zs_result_free(&full);
    nt_zs_result_free(&cut);
    nt_zs_task_free(&t);
    unload(&l);
}

// Requests scored whole in batches (lockstep sequences padded to the longest, longest first) against the same
// requests one at a time after the prefix the previous one left in the KV cache: the same tokens in the same
// positions, products over other row counts and a context fed in other chunks (fp32 sums in other orders):
// atol 1e-4, rtol 0, as left_truncation. LAMBADA (one request an item) and ARC-Easy (choices sharing a context,
// duplicated choices), whole (21 items: batches of 8, 8, 5 and of 3) and left-truncated (max_length 24, below
// most requests here), so padding, truncation, copies and a short last batch all meet.
static void expect_batches_match(const char *task) {
    loaded l = load_model("tiny-llama");
    char *data = tu_shared("datasets");
    nt_zs_task t;
    nt_err err;
    cr_assert_eq(nt_zs_task_load(task, data, 21, false, &t, &err), 0, "%s", err.msg);
    free(data);
    const int max_lens[] = {0, 24}, batches[] = {0, 3};
    for (int a = 0; a < 2; a++) {
        nt_zs_result one;
        cr_assert_eq(nt_zeroshot_score_batch(l.m, l.tok, &t, max_lens[a], false, 1, &one, &err), 0, "%s", err.msg);
        cr_expect_eq(one.batch, 1);
        for (int b = 0; b < 2; b++) {
            nt_zs_result many;
            int want = batches[b] ? batches[b] : 8;
            cr_assert_eq(nt_zeroshot_score_batch(l.m, l.tok, &t, max_lens[a], false, want, &many, &err), 0, "%s",
                         err.msg);
            cr_expect_eq(many.batch, want, "%s: batch %d", task, many.batch);
            cr_assert_eq(many.n_requests, one.n_requests);
            int truncated = 0;
            for (long q = 0; q < one.n_requests; q++) {
                TU_EXPECT_CLOSE(many.loglik[q], one.loglik[q], 1e-4, 0.0, "%s max_length %d batch %d request %ld",
                                task, max_lens[a], many.batch, q);
                cr_expect_eq(many.greedy[q], one.greedy[q], "%s request %ld: greedy", task, q);
                cr_expect_eq(many.n_ctx_tokens[q], one.n_ctx_tokens[q], "%s request %ld: context tokens", task, q);
                truncated += max_lens[a] && one.n_ctx_tokens[q] + one.n_cont_tokens[q] - 1 == max_lens[a];
            }
            if (max_lens[a]) cr_expect(truncated > 10, "%s: only %d requests truncated", task, truncated);
            for (long i = 0; i < one.n_items; i++) cr_expect_eq(many.pred[i], one.pred[i], "%s item %ld", task, i);
            nt_zs_result_free(&many);
        }
        nt_zs_result_free(&one);
    }
    nt_zs_task_free(&t);
    unload(&l);
}

// The default's choice: a long context shared by two one-token answers (BoolQ's shape) is fed once and the
// answers continue from the cache; a short question with four answers (ARC's shape) goes in one batch of four.
Test(requests, default_shares_long_contexts_and_batches_short_ones) {
    loaded l = load_model("tiny-llama");
    nt_err err;
    char passage[4096] = "";
    for (int i = 0; i < 60; i++) strcat(passage, "the river runs past the old mill and on to the sea ");
    strcat(passage, "\nQuestion: does the river reach the sea?\nAnswer:");
    const char *lctx[] = {passage, passage}, *lcont[] = {" yes", " no"};
    const char *sctx[] = {"Question: what is red?\nAnswer:", "Question: what is red?\nAnswer:",
                          "Question: what is red?\nAnswer:", "Question: what is red?\nAnswer:"};
    const char *scont[] = {" a rose", " the sky", " grass", " snow"};
    nt_zs_task lt = make_task("boolq", 2, lctx, lcont), st = make_task("arc_easy", 4, sctx, scont);
    nt_zs_result lr, sr;
    cr_assert_eq(nt_zeroshot_score(l.m, l.tok, &lt, 0, false, &lr, &err), 0, "%s", err.msg);
    cr_assert_eq(nt_zeroshot_score(l.m, l.tok, &st, 0, false, &sr, &err), 0, "%s", err.msg);
    cr_expect(lr.n_ctx_tokens[0] > 200, "the passage should be long: %d tokens", lr.n_ctx_tokens[0]);
    cr_expect_eq(lr.batch, 1, "a long shared context: batch %d", lr.batch);
    cr_expect_eq(sr.batch, 4, "four short requests: batch %d", sr.batch);
    nt_zs_result_free(&lr);
    nt_zs_result_free(&sr);
    nt_zs_task_free(&lt);
    nt_zs_task_free(&st);
    unload(&l);
}

Test(requests, batches_match_one_at_a_time_lambada) { expect_batches_match("lambada_openai"); }
Test(requests, batches_match_one_at_a_time_arc_easy) { expect_batches_match("arc_easy"); }

// ---------------------------------------------------------------------------------------------------------
// Bad task files

static void put(const char *dir, const char *rel, const char *body) {
    char *sub = strdup(rel);
    char *slash = strrchr(sub, '/');
    if (slash) {
        *slash = '\0';
        char *d = nt_path_join(dir, sub);
        mkdir(d, 0755);
        free(d);
    }
    char *p = nt_path_join(dir, rel);
    cr_assert_eq(tu_write_file(p, body, strlen(body)), 0, "writing %s", p);
    free(p);
    free(sub);
}

// Loads task from dir without and with skip_bad; expects the error to contain want and the skip run to keep
// n_good items and skip n_bad.
static void expect_bad(const char *dir, const char *task, const char *want, size_t n_good, size_t n_bad) {
    nt_zs_task t;
    nt_err err = {0};
    cr_expect_eq(nt_zs_task_load(task, dir, 0, false, &t, &err), -1, "%s: a malformed item must fail", task);
    cr_expect(strstr(err.msg, want) != NULL, "%s: error \"%s\" lacks \"%s\"", task, err.msg, want);
    cr_expect(strchr(err.msg, '\n') == NULL, "one-line error: %s", err.msg);
    cr_assert_eq(nt_zs_task_load(task, dir, 0, true, &t, &err), 0, "%s with skip: %s", task, err.msg);
    cr_expect_eq(t.n_items, n_good, "%s: %zu items kept, want %zu", task, t.n_items, n_good);
    cr_expect_eq(t.n_skipped, n_bad, "%s: %zu skipped, want %zu", task, t.n_skipped, n_bad);
    nt_zs_task_free(&t);
}

Test(bad_input, malformed_lines_name_file_and_line) {
    char *dir = tu_tmpdir();
    put(dir, "arc/llmfoundry_arc_easy.jsonl",
        "{\"query\": \"Question: a?\", \"choices\": [\"x\", \"y\"], \"gold\": 1}\n"
        "\n"
        "{\"query\": \"Question: b?\", \"choices\": [\"x\", \"y\"], \"gold\": 1\n"      // line 3: truncated JSON
        "{\"query\": \"Question: c?\", \"choices\": [\"x\", \"y\"], \"gold\": 2}\n"     // line 4: gold out of range
        "{\"query\": \"Question: d?\", \"choices\": [\"x\", \"y\"], \"gold\": 0}\n");
    char want[512];
    snprintf(want, sizeof(want), "%s/arc/llmfoundry_arc_easy.jsonl:3: malformed JSON", dir);
    expect_bad(dir, "arc_easy", want, 2, 2);

    put(dir, "boolq/llmfoundry_boolq.jsonl",
        "{\"query\": \"Passage: p\\nQuestion: q?\", \"choices\": [\"no\", \"yes\"], \"gold\": 0}\n"
        "{\"query\": \"p\\nQuestion: q?\", \"choices\": [\"no\", \"yes\"], \"gold\": 0}\n");
    expect_bad(dir, "boolq", "llmfoundry_boolq.jsonl:2: \"query\" does not start with \"Passage: \"", 1, 1);

    put(dir, "winogrande/llmfoundry_winogrande.jsonl",
        "{\"context_options\": [\"A\", \"B\"], \"continuation\": \"c.\", \"gold\": 0}\n"
        "{\"context_options\": [\"A\"], \"continuation\": \"c.\", \"gold\": 0}\n");
    expect_bad(dir, "winogrande", "llmfoundry_winogrande.jsonl:2: \"context_options\" must be an array of 2", 1, 1);

    put(dir, "lambada/lambada_test.jsonl", "{\"text\": \"a b c\"}\n{\"txt\": \"a b\"}\n{\"text\": \"d e\"}\n");
    expect_bad(dir, "lambada_openai", "lambada_test.jsonl:2: missing string field \"text\"", 2, 1);

    put(dir, "piqa/valid.jsonl",
        "{\"goal\": \"g\", \"sol1\": \"a\", \"sol2\": \"b\"}\n{\"goal\": \"g\", \"sol1\": \"a\", \"sol2\": \"b\"}\n");
    put(dir, "piqa/valid-labels.lst", "0\n2\n");
    expect_bad(dir, "piqa", "valid.jsonl:2: its gold label (", 1, 1);

    // hellaswag: line 8 (gold of the 2nd task) is not 0-3; the 3rd task is cut short
    put(dir, "hellaswag/hellaswag_val_full.txt",
        "ctx one\n0\ne1\ne2\ne3\ne4\n"
        "ctx two\n7\ne1\ne2\ne3\ne4\n"
        "ctx three\n1\ne1\n");
    snprintf(want, sizeof(want), "%s/hellaswag/hellaswag_val_full.txt:8: the gold line", dir);
    expect_bad(dir, "hellaswag", want, 1, 2);
    tu_rmtree(dir);
    free(dir);
}

Test(bad_input, limit_counts_skipped_items) {
    char *dir = tu_tmpdir();
    put(dir, "openbookqa/llmfoundry_openbook_qa.jsonl",
        "{\"query\": \"q1\", \"choices\": [\"x\", \"y\"], \"gold\": 0}\n"
        "not json\n"
        "{\"query\": \"q3\", \"choices\": [\"x\", \"y\"], \"gold\": 1}\n"
        "{\"query\": \"q4\", \"choices\": [\"x\", \"y\"], \"gold\": 1}\n");
    nt_zs_task t;
    nt_err err;
    cr_assert_eq(nt_zs_task_load("openbookqa", dir, 3, true, &t, &err), 0, "%s", err.msg);
    cr_expect_eq(t.n_items, 2);
    cr_expect_eq(t.n_skipped, 1);
    cr_expect_eq(t.items[1].line, 3);
    cr_expect_str_eq(t.items[1].contexts[0], "q3");
    cr_expect_str_eq(t.items[1].continuations[1], " y");
    nt_zs_task_free(&t);
    // the malformed line is past the limit: no error
    cr_expect_eq(nt_zs_task_load("openbookqa", dir, 1, false, &t, &err), 0, "%s", err.msg);
    nt_zs_task_free(&t);
    tu_rmtree(dir);
    free(dir);
}

Test(bad_input, missing_file_unknown_task_and_scoring_errors) {
    char *dir = tu_tmpdir();
    nt_zs_task t;
    nt_err err;
    cr_expect_eq(nt_zs_task_load("piqa", dir, 0, false, &t, &err), -1);
    cr_expect(strstr(err.msg, "piqa/valid-labels.lst: No such file") != NULL, "%s", err.msg);
    cr_expect_eq(nt_zs_task_load("lambada_openai", dir, 0, true, &t, &err), -1);
    cr_expect(strstr(err.msg, "lambada/lambada_test.jsonl: No such file") != NULL, "%s", err.msg);
    cr_expect_eq(nt_zs_task_load("mmlu", dir, 0, false, &t, &err), -1);
    cr_expect(strstr(err.msg, "unknown zero-shot task \"mmlu\"") != NULL, "%s", err.msg);
    cr_expect(!nt_zeroshot_task_known("mmlu"));
    for (int i = 0; NT_ZS_TASK_NAMES[i]; i++) cr_expect(nt_zeroshot_task_known(NT_ZS_TASK_NAMES[i]));
    put(dir, "lambada/lambada_test.jsonl", "\n  \n");
    cr_expect_eq(nt_zs_task_load("lambada_openai", dir, 0, false, &t, &err), -1);
    cr_expect(strstr(err.msg, "lambada_test.jsonl: empty dataset file") != NULL, "%s", err.msg);

    // a continuation longer than the model context: an error naming the line, or skipped
    loaded l = load_model("tiny-opt");
    put(dir, "lambada/lambada_test.jsonl", "{\"text\": \"a b\"}\n{\"text\": \"a bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb\"}\n");
    nt_zs_task_load("lambada_openai", dir, 0, false, &t, &err);
    nt_zs_result res;
    cr_expect_eq(nt_zeroshot_score(l.m, l.tok, &t, 4, false, &res, &err), -1);
    cr_expect(strstr(err.msg, "lambada_test.jsonl:2: choice 0: the continuation has") != NULL, "%s", err.msg);
    cr_assert_eq(nt_zeroshot_score(l.m, l.tok, &t, 4, true, &res, &err), 0, "%s", err.msg);
    cr_expect_eq(res.n_items, 1);
    cr_expect_eq(res.n_skipped, 1);
    nt_zs_result_free(&res);
    nt_zs_task_free(&t);
    unload(&l);
    tu_rmtree(dir);
    free(dir);
}
