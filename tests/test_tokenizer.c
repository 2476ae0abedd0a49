// test_tokenizer.c: the tokenizer (model/tokenizer.c) against golden ids and decodes from HF `tokenizers`
// (tests/golden/make_tokenizer_goldens.py writes them): GPT-2 encoder.json + vocab.bpe, the fixture models'
// tokenizer.json and their vocab.json + merges.txt, Llama-2 SentencePiece converted to tokenizer.json, SmolLM2's
// tokenizer.json (Digits + ByteLevel), and variants (Split-regex + ByteLevel as Llama-3 uses, Qwen2's converter
// with its NFC normalizer, NFKC, Metaspace); the whole WikiText-2 GPTQ string (count + FNV-1a of the ids) with
// its speed; invalid UTF-8; and one test per kind of bad input.
#define _POSIX_C_SOURCE 200809L
#include <criterion/criterion.h>
#include <cjson/cJSON.h>
#include <string.h>

#include "testutil.h"
#include "tokenizer.h"
#include "utf8.h"

// ---------------------------------------------------------------------------------------------- helpers

static char *g_dir; // a fresh temporary directory per test

static void setup(void) {
    g_dir = tu_tmpdir();
    cr_assert(g_dir != NULL, "cannot make a temporary directory");
}

static void teardown(void) {
    tu_rmtree(g_dir);
    free(g_dir);
    g_dir = NULL;
}

TestSuite(tok, .init = setup, .fini = teardown, .timeout = 600);

static nt_tokenizer *load_dir(const char *dir) {
    nt_tokenizer *tok = NULL;
    nt_err err = {0};
    cr_assert_eq(nt_tokenizer_load_dir(&tok, dir, &err), 0, "%s", err.msg);
    return tok;
}

// The base tokenizer.json of a variant with its patch applied, written to g_dir/tokenizer.json, loaded.
static nt_tokenizer *load_variant(const char *name) {
    char file[128];
    snprintf(file, sizeof(file), "%s.patch.json", name);
    char *ppath = tu_tok_golden(file);
    cJSON *patch = tu_read_json(ppath);
    const char *base = cJSON_GetObjectItem(patch, "base")->valuestring;
    char *bpath = strncmp(base, "shared:", 7) == 0 ? tu_shared(base + 7) : tu_tok_golden(base);
    cJSON *j = tu_read_json(bpath);
    const cJSON *set = cJSON_GetObjectItem(patch, "set"), *mset = cJSON_GetObjectItem(patch, "model_set");
    for (const cJSON *s = set->child; s; s = s->next)
        cJSON_ReplaceItemInObjectCaseSensitive(j, s->string, cJSON_Duplicate(s, true));
    cJSON *model = cJSON_GetObjectItem(j, "model");
    for (const cJSON *s = mset->child; s; s = s->next)
        cJSON_ReplaceItemInObjectCaseSensitive(model, s->string, cJSON_Duplicate(s, true));
    char *txt = cJSON_PrintUnformatted(j);
    char *out = nt_path_join(g_dir, "tokenizer.json");
    cr_assert_eq(tu_write_file(out, txt, strlen(txt)), 0);
    nt_tokenizer *tok = NULL;
    nt_err err = {0};
    cr_assert_eq(nt_tokenizer_load_json(&tok, out, &err), 0, "%s", err.msg);
    free(txt);
    free(out);
    cJSON_Delete(j);
    free(bpath);
    cJSON_Delete(patch);
    free(ppath);
    return tok;
}

static void copy_file(const char *from, const char *dir, const char *name) {
    nt_err err = {0};
    size_t n;
    char *data = nt_read_file(from, &n, &err);
    cr_assert(data != NULL, "%s", err.msg);
    char *to = nt_path_join(dir, name);
    cr_assert_eq(tu_write_file(to, data, n), 0);
    free(to);
    free(data);
}

// --------------------------------------------------------------------------------------------- goldens

Test(tok, gpt2_bpe_files) {
    char *v = tu_shared("tokenizers/gpt2-bpe/encoder.json"), *m = tu_shared("tokenizers/gpt2-bpe/vocab.bpe");
    nt_tokenizer *tok = NULL;
    nt_err err = {0};
    cr_assert_eq(nt_tokenizer_load_bpe_files(&tok, v, m, &err), 0, "%s", err.msg);
    cr_assert_eq(nt_tokenizer_vocab_size(tok), 50257);
    cr_assert_eq(nt_tokenizer_bos_id(tok), 50256);
    cr_assert_eq(nt_tokenizer_eos_id(tok), 50256);
    cr_assert(nt_tokenizer_is_special(tok, 50256));
    cr_assert(!nt_tokenizer_is_special(tok, 262));
    cr_assert_str_eq(nt_tokenizer_piece(tok, 262), "\xC4\xA0the"); // "Ġthe"
    tu_tok_check_golden(tok, "gpt2-bpe");
    nt_tokenizer_free(&tok);
    cr_assert(tok == NULL);
    free(v);
    free(m);
}

Test(tok, tiny_opt_tokenizer_json) {
    char *dir = tu_shared("models/tiny-opt");
    nt_tokenizer *tok = load_dir(dir);
    cr_assert_eq(nt_tokenizer_bos_id(tok), 50256);
    tu_tok_check_golden(tok, "tiny-opt");
    nt_tokenizer_free(&tok);
    free(dir);
}

Test(tok, tiny_llama_tokenizer_json) { // the same GPT-2 tokenizer as tiny-opt
    char *dir = tu_shared("models/tiny-llama");
    nt_tokenizer *tok = load_dir(dir);
    tu_tok_check_golden(tok, "tiny-opt");
    nt_tokenizer_free(&tok);
    free(dir);
}

Test(tok, tiny_opt_vocab_merges) { // the model directory without tokenizer.json
    const char *names[] = {"vocab.json", "merges.txt", "tokenizer_config.json"};
    for (int i = 0; i < 3; i++) {
        char rel[128];
        snprintf(rel, sizeof(rel), "models/tiny-opt/%s", names[i]);
        char *from = tu_shared(rel);
        copy_file(from, g_dir, names[i]);
        free(from);
    }
    nt_tokenizer *tok = load_dir(g_dir);
    cr_assert_eq(nt_tokenizer_bos_id(tok), 50256);
    tu_tok_check_golden(tok, "tiny-opt");
    nt_tokenizer_free(&tok);
}

Test(tok, llama2_sentencepiece) {
    char *dir = tu_tok_golden("llama2");
    nt_tokenizer *tok = load_dir(dir);
    cr_assert_eq(nt_tokenizer_vocab_size(tok), 32000);
    cr_assert_eq(nt_tokenizer_bos_id(tok), 1);
    cr_assert_eq(nt_tokenizer_eos_id(tok), 2);
    cr_assert_str_eq(nt_tokenizer_piece(tok, 13), "<0x0A>");
    tu_tok_check_golden(tok, "llama2");
    nt_tokenizer_free(&tok);
    free(dir);
}

Test(tok, split_regex_bytelevel) {
    nt_tokenizer *tok = load_variant("gpt2-split");
    tu_tok_check_golden(tok, "gpt2-split");
    nt_tokenizer_free(&tok);
}

Test(tok, llama2_metaspace_first) {
    nt_tokenizer *tok = load_variant("llama2-metaspace");
    tu_tok_check_golden(tok, "llama2-metaspace");
    nt_tokenizer_free(&tok);
}

Test(tok, llama2_metaspace_split_always) {
    nt_tokenizer *tok = load_variant("llama2-metaspace-split");
    tu_tok_check_golden(tok, "llama2-metaspace-split");
    nt_tokenizer_free(&tok);
}

Test(tok, smollm2_digits_bytelevel) {
    char *path = tu_shared("tokenizers/smollm2/tokenizer.json");
    nt_tokenizer *tok = NULL;
    nt_err err = {0};
    cr_assert_eq(nt_tokenizer_load_json(&tok, path, &err), 0, "%s", err.msg);
    cr_assert_eq(nt_tokenizer_vocab_size(tok), 49152);
    cr_assert_eq(nt_tokenizer_bos_id(tok), -1); // no post-processor: nothing is added
    tu_tok_check_golden(tok, "smollm2");
    nt_tokenizer_free(&tok);
    free(path);
}

// Golden texts that a normalization form changes: they must be there, or the test would not see a no-op.
static int texts_changed_by(const char *name, nt_unorm form) {
    char file[128];
    snprintf(file, sizeof(file), "%s.jsonl", name);
    char *path = tu_tok_golden(file);
    nt_err err = {0};
    char *all = nt_read_file(path, NULL, &err);
    cr_assert(all != NULL, "%s", err.msg);
    int changed = 0;
    for (char *line = all, *nl; line && *line; line = nl ? nl + 1 : NULL) {
        nl = strchr(line, '\n');
        if (nl) *nl = '\0';
        cJSON *row = cJSON_Parse(line);
        const char *text = cJSON_GetObjectItem(row, "text")->valuestring;
        size_t n;
        char *u = nt_utf8_normalize(text, strlen(text), form, &n);
        cr_assert(u != NULL);
        changed += n != strlen(text) || memcmp(u, text, n) != 0;
        free(u);
        cJSON_Delete(row);
    }
    free(all);
    free(path);
    return changed;
}

Test(tok, qwen2_nfc) { // transformers' Qwen2Converter over GPT-2's vocabulary
    nt_tokenizer *tok = load_variant("gpt2-qwen2");
    tu_tok_check_golden(tok, "gpt2-qwen2");
    int changed = texts_changed_by("gpt2-qwen2", NT_NFC);
    cr_log_info("gpt2-qwen2: NFC changes %d golden texts", changed);
    cr_assert(changed >= 8, "only %d golden texts are changed by NFC", changed);
    nt_tokenizer_free(&tok);
}

Test(tok, nfkc) {
    nt_tokenizer *tok = load_variant("gpt2-nfkc");
    tu_tok_check_golden(tok, "gpt2-nfkc");
    int changed = texts_changed_by("gpt2-nfkc", NT_NFKC);
    cr_assert(changed >= 12, "only %d golden texts are changed by NFKC", changed);
    nt_tokenizer_free(&tok);
}

// The GPTQ WikiText-2 test string through tiny-opt's tokenizer: id count and FNV-1a 64 of the ids as
// little-endian int32 bytes, against HF; and the time it takes.
Test(tok, wikitext2_whole_file) {
    char *gpath = tu_tok_golden("wikitext2-gptq.json");
    cJSON *g = tu_read_json(gpath);
    char *raw_path = tu_shared("datasets/wikitext2/wiki.test.raw");
    nt_err err = {0};
    size_t raw_n;
    char *raw = nt_read_file(raw_path, &raw_n, &err);
    cr_assert(raw != NULL, "%s", err.msg);
    // rows: lines keeping "\n", " \n" becomes "", joined with "\n\n"
    char *joined = malloc(3 * raw_n + 16);
    size_t jn = 0;
    bool first = true;
    for (size_t i = 0; i < raw_n;) {
        const char *nl = memchr(raw + i, '\n', raw_n - i);
        size_t end = nl ? (size_t)(nl - raw) + 1 : raw_n;
        if (!first) {
            memcpy(joined + jn, "\n\n", 2);
            jn += 2;
        }
        first = false;
        if (!(end - i == 2 && raw[i] == ' ' && raw[i + 1] == '\n')) {
            memcpy(joined + jn, raw + i, end - i);
            jn += end - i;
        }
        i = end;
    }
    char *dir = tu_shared("models/tiny-opt");
    nt_tokenizer *tok = load_dir(dir);
    int32_t *ids = NULL;
    size_t n = 0;
    double t0 = nt_time();
    cr_assert_eq(nt_tokenizer_encode(tok, joined, jn, true, &ids, &n, &err), 0, "%s", err.msg);
    double dt = nt_time() - t0;
    uint64_t h = 0xCBF29CE484222325ull;
    for (size_t i = 0; i < n; i++) {
        uint32_t v = (uint32_t)ids[i];
        for (int b = 0; b < 4; b++) h = (h ^ ((v >> (8 * b)) & 0xFF)) * 0x100000001B3ull;
    }
    char hex[17];
    snprintf(hex, sizeof(hex), "%016llx", (unsigned long long)h);
    fprintf(stderr, "wikitext2 GPTQ string: %zu bytes -> %zu ids in %.3f s (%.1f MB/s)\n", jn, n, dt,
            (double)jn / dt / 1e6);
    cr_assert_eq((double)n, cJSON_GetObjectItem(g, "n_ids")->valuedouble, "%zu ids", n);
    cr_assert_str_eq(hex, cJSON_GetObjectItem(g, "ids_fnv1a64")->valuestring);
    // decode round trip of the whole string
    char *back = NULL;
    cr_assert_eq(nt_tokenizer_decode(tok, ids, n, true, &back, &err), 0, "%s", err.msg);
    cr_assert(strlen(back) == jn && memcmp(back, joined, jn) == 0, "decode does not give the text back");
    free(back);
    free(ids);
    nt_tokenizer_free(&tok);
    free(dir);
    free(joined);
    free(raw);
    free(raw_path);
    cJSON_Delete(g);
    free(gpath);
}

// --------------------------------------------------------------------------------------- odd input

Test(tok, invalid_utf8_is_safe) {
    char *dir = tu_tok_golden("llama2");
    nt_tokenizer *llama = load_dir(dir);
    char *odir = tu_shared("models/tiny-opt");
    nt_tokenizer *opt = load_dir(odir);
    const char bad[] = "ok \xff\xfe bad \xe2\x82 cut \xed\xa0\x80 surrogate \xf4\x90\x80\x80 end \xc3";
    // python3: bad.decode("utf-8", "replace").encode()
    const char replaced[] = "ok \xef\xbf\xbd\xef\xbf\xbd bad \xef\xbf\xbd cut \xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd surrogate "
                            "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd end \xef\xbf\xbd";
    nt_tokenizer *toks[2] = {llama, opt};
    for (int k = 0; k < 2; k++) {
        int32_t *ids = NULL;
        size_t n = 0;
        nt_err err = {0};
        cr_assert_eq(nt_tokenizer_encode(toks[k], bad, sizeof(bad) - 1, true, &ids, &n, &err), 0, "%s", err.msg);
        cr_assert(n > 5);
        // defined: as the text with each maximal invalid subpart replaced by U+FFFD (Python's errors="replace")
        int32_t *ids_r = NULL;
        size_t n_r = 0;
        cr_assert_eq(nt_tokenizer_encode(toks[k], replaced, sizeof(replaced) - 1, true, &ids_r, &n_r, &err), 0, "%s",
                     err.msg);
        cr_assert(n == n_r && memcmp(ids, ids_r, n * sizeof(int32_t)) == 0, "invalid bytes are not read as U+FFFD");
        free(ids_r);
        char *text = NULL;
        cr_assert_eq(nt_tokenizer_decode(toks[k], ids, n, false, &text, &err), 0, "%s", err.msg);
        cr_assert(strstr(text, "ok") && strstr(text, "end"));
        free(text);
        free(ids);
        // ids out of range are dropped, as HF does
        int32_t odd[] = {-5, 1 << 30, 100};
        cr_assert_eq(nt_tokenizer_decode(toks[k], odd, 3, false, &text, &err), 0, "%s", err.msg);
        free(text);
        cr_assert(nt_tokenizer_piece(toks[k], -1) == NULL);
    }
    nt_tokenizer_free(&llama);
    nt_tokenizer_free(&opt);
    free(dir);
    free(odir);
}

// --------------------------------------------------------------------------------------- bad input

// Loading must fail with -1, leave *out NULL, and name `file` and (via `word`) the problem.
static void expect_load_fail(int rc, nt_tokenizer *tok, const nt_err *err, const char *file, const char *word) {
    cr_assert_eq(rc, -1, "loaded but should not have");
    cr_assert(tok == NULL);
    cr_assert(strstr(err->msg, file) != NULL, "message does not name %s: %s", file, err->msg);
    cr_assert(strstr(err->msg, word) != NULL, "message does not say '%s': %s", word, err->msg);
    cr_assert(strchr(err->msg, '\n') == NULL);
}

Test(tok, missing_dir) {
    nt_tokenizer *tok = (nt_tokenizer *)1;
    nt_err err = {0};
    char *dir = nt_path_join(g_dir, "nope");
    int rc = nt_tokenizer_load_dir(&tok, dir, &err);
    expect_load_fail(rc, tok, &err, dir, "no tokenizer file");
    free(dir);
}

Test(tok, missing_merges_file) {
    nt_tokenizer *tok = (nt_tokenizer *)1;
    nt_err err = {0};
    char *v = tu_shared("tokenizers/gpt2-bpe/encoder.json");
    char *m = nt_path_join(g_dir, "merges.txt");
    int rc = nt_tokenizer_load_bpe_files(&tok, v, m, &err);
    expect_load_fail(rc, tok, &err, m, "No such file");
    free(v);
    free(m);
}

static void write_tokenizer_json(const char *text) {
    char *p = nt_path_join(g_dir, "tokenizer.json");
    cr_assert_eq(tu_write_file(p, text, strlen(text)), 0);
    free(p);
}

Test(tok, malformed_json) {
    write_tokenizer_json("{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0,, }");
    nt_tokenizer *tok = (nt_tokenizer *)1;
    nt_err err = {0};
    int rc = nt_tokenizer_load_dir(&tok, g_dir, &err);
    char *p = nt_path_join(g_dir, "tokenizer.json");
    expect_load_fail(rc, tok, &err, p, "malformed JSON");
    free(p);
}

Test(tok, unsupported_model_type) {
    const char *types[] = {"Unigram", "WordPiece", "WordLevel"};
    for (int i = 0; i < 3; i++) {
        char buf[256];
        snprintf(buf, sizeof(buf), "{\"model\": {\"type\": \"%s\", \"vocab\": [[\"a\", 0.0]]}}", types[i]);
        write_tokenizer_json(buf);
        nt_tokenizer *tok = (nt_tokenizer *)1;
        nt_err err = {0};
        int rc = nt_tokenizer_load_dir(&tok, g_dir, &err);
        char *p = nt_path_join(g_dir, "tokenizer.json");
        snprintf(buf, sizeof(buf), "unsupported tokenizer model type '%s'", types[i]);
        expect_load_fail(rc, tok, &err, p, buf);
        free(p);
    }
}

Test(tok, bad_merge_and_pretokenizer) {
    nt_tokenizer *tok = (nt_tokenizer *)1;
    nt_err err = {0};
    int rc;
    char *p = nt_path_join(g_dir, "tokenizer.json");
    write_tokenizer_json("{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0, \"b\": 1}, \"merges\": [\"a c\"]}}");
    rc = nt_tokenizer_load_dir(&tok, g_dir, &err);
    expect_load_fail(rc, tok, &err, p, "not in the vocabulary");
    write_tokenizer_json("{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": []},"
                         " \"pre_tokenizer\": {\"type\": \"BertPreTokenizer\"}}");
    tok = (nt_tokenizer *)1;
    rc = nt_tokenizer_load_dir(&tok, g_dir, &err);
    expect_load_fail(rc, tok, &err, p, "unsupported pre_tokenizer type");
    write_tokenizer_json("{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": []},"
                         " \"pre_tokenizer\": {\"type\": \"Split\", \"pattern\": {\"Regex\": \"(\"},"
                         " \"behavior\": \"Isolated\", \"invert\": false}}");
    tok = (nt_tokenizer *)1;
    rc = nt_tokenizer_load_dir(&tok, g_dir, &err);
    expect_load_fail(rc, tok, &err, p, "bad regex");
    free(p);
}

// A minimal tokenizer.json: no pre-tokenizer, no decoder (decode joins with spaces), a BPE with an unk
// token (fused and not), post-processor null with add_bos/add_eos from tokenizer_config.json.
Test(tok, minimal_unk_and_config_rules) {
    const char *json = "{\"added_tokens\": [{\"id\": 0, \"content\": \"<u>\", \"special\": true},"
                       " {\"id\": 5, \"content\": \"<b>\", \"special\": true}, {\"id\": 6, \"content\": \"<e>\", "
                       "\"special\": true}],"
                       " \"model\": {\"type\": \"BPE\", \"unk_token\": \"<u>\", \"fuse_unk\": true,"
                       " \"vocab\": {\"<u>\": 0, \"a\": 1, \"b\": 2, \"ab\": 3, \"abb\": 4},"
                       " \"merges\": [[\"a\", \"b\"], [\"ab\", \"b\"]]}}";
    write_tokenizer_json(json);
    const char *cfg = "{\"add_bos_token\": true, \"add_eos_token\": true, \"bos_token\": \"<b>\","
                      " \"eos_token\": {\"content\": \"<e>\"}}";
    char *cp = nt_path_join(g_dir, "tokenizer_config.json");
    cr_assert_eq(tu_write_file(cp, cfg, strlen(cfg)), 0);
    nt_tokenizer *tok = load_dir(g_dir);
    int32_t *ids = NULL;
    size_t n = 0;
    nt_err err = {0};
    cr_assert_eq(nt_tokenizer_encode(tok, "abbxyab<e>a", 11, true, &ids, &n, &err), 0, "%s", err.msg);
    int32_t want[] = {5, 4, 0, 3, 6, 1, 6}; // <b> abb <u:xy fused> ab <e> a <e>
    cr_assert_eq(n, 7);
    for (size_t i = 0; i < n; i++) cr_assert_eq(ids[i], want[i], "at %zu: %d", i, ids[i]);
    char *text = NULL;
    cr_assert_eq(nt_tokenizer_decode(tok, ids, n, false, &text, &err), 0, "%s", err.msg);
    cr_assert_str_eq(text, "<b> abb <u> ab <e> a <e>");
    free(text);
    cr_assert_eq(nt_tokenizer_decode(tok, ids, n, true, &text, &err), 0, "%s", err.msg);
    cr_assert_str_eq(text, "abb ab a");
    free(text);
    free(ids);
    nt_tokenizer_free(&tok);
    free(cp);
}
