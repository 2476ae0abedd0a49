// test_slow_perplexity.c: whole-dataset perplexity of the shared models against transformers (fp32) by the
// GPTQ protocol, from tests/golden/model/ppl.json (made by tests/golden/make_model_goldens.py): the windows
// must be the same token ids (FNV-1a hash of every scored id) and the perplexity equal to 4 significant
// digits (relative difference <= 5e-5), the NLL standard error within 1%. Slow (minutes): label "slow".
#define _POSIX_C_SOURCE 200809L
#include <cjson/cJSON.h>
#include <criterion/criterion.h>
#include <inttypes.h>
#include <math.h>
#include <string.h>

#include "perplexity.h"
#include "testutil.h"
#include "tokenizer.h"

static uint64_t fnv1a64_ids(const int32_t *ids, size_t n) {
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < n; i++) {
        uint32_t v = (uint32_t)ids[i];
        for (int b = 0; b < 4; b++) {
            h ^= (v >> (8 * b)) & 0xff;
            h *= 0x100000001b3ull;
        }
    }
    return h;
}

static void check_model(const char *name) {
    char *gpath = tu_source("tests/golden/model/ppl.json");
    char *text = nt_read_file(gpath, NULL, NULL);
    cr_assert_not_null(text);
    cJSON *g = cJSON_Parse(text);
    free(text);
    cr_assert_not_null(g);
    int seqlen = cJSON_GetObjectItem(g, "seqlen")->valueint;
    const cJSON *tasks = cJSON_GetObjectItem(cJSON_GetObjectItem(cJSON_GetObjectItem(g, "models"), name), "tasks");
    cr_assert_not_null(tasks, "no goldens for %s", name);

    char rel[128];
    snprintf(rel, sizeof(rel), "models/%s", name);
    char *mdir = tu_shared(rel), *data = tu_shared("datasets");
    nt_err err = {0};
    nt_model *m = NULL;
    nt_tokenizer *tok = NULL;
    cr_assert_eq(nt_model_load(&m, mdir, &err), 0, "%s", err.msg);
    cr_assert_eq(nt_tokenizer_load_dir(&tok, mdir, &err), 0, "%s", err.msg);
    const char *names[] = {"wikitext2", "ptb", "ptb-new", "c4", "c4-new"};
    for (size_t i = 0; i < 5; i++) {
        const cJSON *t = cJSON_GetObjectItem(tasks, names[i]);
        cr_assert_not_null(t, "%s: no golden for %s", name, names[i]);
        nt_windows w = {0};
        cr_assert_eq(nt_ppl_windows(names[i], data, tok, (size_t)seqlen, &w, &err), 0, "%s", err.msg);
        cr_assert_eq(w.n_windows, (size_t)cJSON_GetObjectItem(t, "n_windows")->valueint, "%s %s", name, names[i]);
        char hex[32];
        snprintf(hex, sizeof(hex), "%016" PRIx64, fnv1a64_ids(w.ids, w.n_windows * w.seqlen));
        cr_assert_str_eq(hex, cJSON_GetObjectItem(t, "window_ids_fnv1a64")->valuestring, "%s %s: window ids differ",
                         name, names[i]);
        nt_ppl_result r;
        cr_assert_eq(nt_perplexity(m, &w, 0, names[i], &r, &err), 0, "%s", err.msg);
        double gppl = cJSON_GetObjectItem(t, "ppl")->valuedouble, gsem = cJSON_GetObjectItem(t, "nll_sem")->valuedouble;
        cr_log_info("%s %s: ppl %.6f (transformers %.6f), nll sem %.6g (%.6g), %zu windows in %.1f s", name, names[i],
                    r.ppl, gppl, r.nll_stderr, gsem, r.n_windows, r.seconds);
        cr_expect_eq(r.n_scored, (size_t)cJSON_GetObjectItem(t, "n_scored")->valueint);
        // ppl = exp(mean NLL) over a whole test set: the per-token log-prob errors (test_forward: <= 1e-4, of
        // either sign) average out, so the mean moves by far less: rtol 5e-5 (4 significant digits), atol 0
        TU_EXPECT_CLOSE(r.ppl, gppl, 0.0, 5e-5, "%s %s: ppl against transformers", name, names[i]);
        // the standard error: sd of the per-token NLLs over sqrt(N), summed in another order and from the
        // sum of squares here: rtol 1e-2, atol 0
        TU_EXPECT_CLOSE(r.nll_stderr, gsem, 0.0, 1e-2, "%s %s: nll stderr against transformers", name, names[i]);
        nt_windows_free(&w);
    }
    nt_tokenizer_free(&tok);
    nt_model_free(&m);
    free(mdir);
    free(data);
    free(gpath);
    cJSON_Delete(g);
}

Test(perplexity, tiny_opt_equals_transformers, .timeout = 1800) { check_model("tiny-opt"); }
Test(perplexity, tiny_llama_equals_transformers, .timeout = 1800) { check_model("tiny-llama"); }
