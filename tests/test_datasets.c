// test_datasets.c: Python `random` bit-exactness, the GPTQ perplexity texts (lengths and hashes measured with
// Python), JSONL reading and dataset errors, and the c4 windows against a Python transcription of GPTQ
// (tests/golden/make_dataset_goldens.py) with the tiny-opt tokenizer.
#define _POSIX_C_SOURCE 200809L
#include <criterion/criterion.h>
#include <string.h>
#include <sys/stat.h>

#include "datasets.h"
#include "jsonl.h"
#include "testutil.h"

static bool mkdir_p_ok(const char *dir) { return mkdir(dir, 0755) == 0; }

// Writes data_dir/rel (creating one level of folder) with the given bytes.
static void put_file(const char *dir, const char *sub, const char *name, const char *body, size_t len) {
    char *d = nt_path_join(dir, sub);
    mkdir(d, 0755);
    char *p = nt_path_join(d, name);
    cr_assert_eq(tu_write_file(p, body, len), 0, "writing %s", p);
    free(p);
    free(d);
}

// ---------------------------------------------------------------------------------------------------------
// Python random. Goldens from CPython 3.11:
//   python3 -c 'import random; random.seed(s); print([random.getrandbits(32) for _ in range(4)],
//               [random.random() for _ in range(2)])'        for each seed below, and the one-liners quoted
// beside the other arrays.

static const struct {
    uint64_t seed;
    uint32_t words[4];
    double rand[2];
} SEED_GOLDEN[] = {
    {0ull, {3626764237u, 1654615998u, 3255389356u, 3823568514u}, {0.420571580830845, 0.25891675029296335}},
    {1ull, {577090037u, 2444712010u, 3639700191u, 3445702192u}, {0.763774618976614, 0.2550690257394217}},
    {42ull, {2746317213u, 478163327u, 107420369u, 3184935163u}, {0.27502931836911926, 0.22321073814882275}},
    {1234567ull, {4136668755u, 1858453631u, 1012465028u, 291161803u}, {0.5814831206063004, 0.226719849335687}},
    {4294967295ull, {2728839433u, 2661025012u, 872737089u, 924893097u}, {0.6073666030347188, 0.29133552762158776}},
    {4294967296ull, {485306839u, 1508871100u, 1794561286u, 4014597330u}, {0.0166763664992291, 0.6117214625782752}},
    {1099511640121ull, {1332995613u, 1500173691u, 493462063u, 16738666u}, {0.5335990945925775, 0.20403672857712885}},
    {18446744073709551615ull,
     {93740670u, 1068495656u, 1452108352u, 2657516307u},
     {0.21196748656082065, 0.6151259995625727}},
};

Test(pyrandom, seeds_words_and_random) {
    for (size_t t = 0; t < sizeof(SEED_GOLDEN) / sizeof(SEED_GOLDEN[0]); t++) {
        nt_pyrandom r;
        nt_pyrandom_seed(&r, SEED_GOLDEN[t].seed);
        for (int i = 0; i < 4; i++)
            cr_expect_eq(nt_pyrandom_getrandbits(&r, 32), SEED_GOLDEN[t].words[i], "seed %llu word %d",
                         (unsigned long long)SEED_GOLDEN[t].seed, i);
        for (int i = 0; i < 2; i++)
            cr_expect(nt_pyrandom_random(&r) == SEED_GOLDEN[t].rand[i], "seed %llu random() %d",
                      (unsigned long long)SEED_GOLDEN[t].seed, i);
    }
}

static void expect_randints(uint64_t seed, int64_t a, int64_t b, const int64_t *want, size_t n) {
    nt_pyrandom r;
    nt_pyrandom_seed(&r, seed);
    for (size_t i = 0; i < n; i++) {
        int64_t got = nt_pyrandom_randint(&r, a, b);
        cr_expect_eq(got, want[i], "seed %llu randint(%lld, %lld) #%zu: got %lld want %lld", (unsigned long long)seed,
                     (long long)a, (long long)b, i, (long long)got, (long long)want[i]);
    }
}

Test(pyrandom, randint_small_ranges) {
    // random.seed(0); [random.randint(0, 1999) for _ in range(20)]
    static const int64_t c4_docs[] = {1729, 788,  1552, 1823, 861, 82,  530, 1977, 1047, 995,
                                      829,  1880, 1605, 1699, 621, 1982, 976, 733,  1194, 1826};
    expect_randints(0, 0, 1999, c4_docs, 20);
    // random.seed(3); [random.randint(-5, 5) for _ in range(12)]
    static const int64_t neg[] = {-2, 4, 3, -3, 0, 4, 2, 5, 4, -4, 4, -5};
    expect_randints(3, -5, 5, neg, 12);
    // random.seed(11); [random.randint(5, 5) for _ in range(3)], random.getrandbits(32): a width-1 range still
    // consumes bits (k = bit_length(1) = 1, rejection until 0)
    static const int64_t one[] = {5, 5, 5};
    expect_randints(11, 5, 5, one, 3);
    nt_pyrandom r;
    nt_pyrandom_seed(&r, 11);
    for (int i = 0; i < 3; i++) nt_pyrandom_randint(&r, 5, 5);
    cr_expect_eq(nt_pyrandom_getrandbits(&r, 32), 2181161661u);
}

Test(pyrandom, randint_large_ranges) {
    // random.seed(7); [random.randint(0, 2**40) for _ in range(6)]
    static const int64_t r40[] = {868231286071, 105874957392, 208460025899, 470330855157, 189139603672, 920985495386};
    expect_randints(7, 0, (int64_t)1 << 40, r40, 6);
    // random.seed(7); [random.randint(-2**62, 2**62) for _ in range(6)]: width 2**63 + 1, 64-bit draws
    static const int64_t r62[] = {2671521945691753783,  -3720958657989204912, -2875293200062377941,
                                  -651203574895259915,  -3026239342489546536, 3102228744887297882};
    expect_randints(7, -((int64_t)1 << 62), (int64_t)1 << 62, r62, 6);
    // random.seed(2024); [random.randint(0, 2**33 + 7) for _ in range(6)]
    static const int64_t r33[] = {2019024262, 1304602151, 6435155431, 4137125744, 7318881048, 2230594379};
    expect_randints(2024, 0, ((int64_t)1 << 33) + 7, r33, 6);
}

Test(pyrandom, getrandbits_widths) {
    // random.seed(9); [random.getrandbits(k) for k in (0, 1, 7, 31, 32, 33, 48, 63, 64)]
    static const int ks[] = {0, 1, 7, 31, 32, 33, 48, 63, 64};
    static const uint64_t want[] = {0,         0,          78, 801681272, 1147333628, 595022250, 190459751628629,
                                    3120502076550265424ull, 8554152435637441414ull};
    nt_pyrandom r;
    nt_pyrandom_seed(&r, 9);
    for (size_t i = 0; i < 9; i++) cr_expect_eq(nt_pyrandom_getrandbits(&r, ks[i]), want[i], "getrandbits(%d)", ks[i]);
}

// ---------------------------------------------------------------------------------------------------------
// Joined texts. Expected values from Python, e.g. for wikitext2:
//   python3 -c 'L = open("wikitext2/wiki.test.raw", encoding="utf-8").readlines();
//     s = "\n\n".join("" if l == " \n" else l for l in L); b = s.encode();
//     h = 0xcbf29ce484222325
//     for c in b: h = ((h ^ c) * 0x100000001b3) % 2**64
//     print(len(s), len(b), hex(h), __import__("hashlib").sha256(b).hexdigest()[:16])'
// and likewise "\n\n".join(l.strip() for l in open("ptb/ptb.valid.txt")) for ptb,
// " ".join(l.strip() for l in open("ptb/ptb.test.txt")) for ptb-new, and
// " ".join(json.loads(l)["text"] for l in open("c4/c4_validation_2k.jsonl").readlines()[:1100]) for c4-new.
// wikitext2's sha256 prefix is 696cca6b65a171b0, as PROTOCOLS.md says.

static uint64_t fnv1a64(const char *s, size_t n) {
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < n; i++) h = (h ^ (unsigned char)s[i]) * 0x100000001b3ull;
    return h;
}

static size_t utf8_chars(const char *s, size_t n) {
    size_t c = 0;
    for (size_t i = 0; i < n; i++) c += ((unsigned char)s[i] & 0xC0) != 0x80;
    return c;
}

static void expect_text(const char *task, size_t want_bytes, size_t want_chars, uint64_t want_hash) {
    char *dir = tu_shared("datasets");
    char *text = NULL;
    size_t len = 0;
    nt_err err = {0};
    int rc = nt_ppl_text(task, dir, &text, &len, &err);
    cr_assert_eq(rc, 0, "%s: %s", task, err.msg);
    cr_expect_eq(len, strlen(text), "%s: no NUL inside", task);
    cr_expect_eq(len, want_bytes, "%s: %zu bytes, want %zu", task, len, want_bytes);
    cr_expect_eq(utf8_chars(text, len), want_chars, "%s: %zu characters, want %zu", task, utf8_chars(text, len),
                 want_chars);
    uint64_t h = fnv1a64(text, len);
    cr_expect_eq(h, want_hash, "%s: fnv1a64 %016llx, want %016llx", task, (unsigned long long)h,
                 (unsigned long long)want_hash);
    free(text);
    free(dir);
}

Test(texts, wikitext2) { expect_text("wikitext2", 1296370, 1294336, 0x8521b84b68568ffbull); }
Test(texts, ptb) { expect_text("ptb", 396410, 396410, 0x4ddfb5d82949d6e1ull); }
Test(texts, ptb_new) { expect_text("ptb-new", 442422, 442422, 0xef4ff22a2366de24ull); }
Test(texts, c4_new) { expect_text("c4-new", 2369050, 2356922, 0x8cfcade37f56d72bull); }

Test(texts, wikitext2_starts_like_hf) {
    char *dir = tu_shared("datasets");
    char *text = NULL;
    size_t len = 0;
    nt_err err = {0};
    cr_assert_eq(nt_ppl_text("wikitext2", dir, &text, &len, &err), 0, "%s", err.msg);
    // rows "", " = Robert Boulter = \n", "", ... joined with "\n\n"
    const char *want = "\n\n = Robert Boulter = \n\n\n\n\n";
    cr_expect(strncmp(text, want, strlen(want)) == 0, "start: %.40s", text);
    free(text);
    free(dir);
}

Test(texts, text_file_is_its_bytes) {
    char *tmp = tu_tmpdir();
    char *path = nt_path_join(tmp, "doc.txt");
    const char body[] = " line one \r\n\n  \xc3\xa9t\xc3\xa9\t\n";
    cr_assert_eq(tu_write_file(path, body, sizeof(body) - 1), 0);
    char *text = NULL;
    size_t len = 0;
    nt_err err = {0};
    cr_assert(nt_ppl_task_known(path));
    cr_assert_eq(nt_ppl_text(path, "/nonexistent", &text, &len, &err), 0, "%s", err.msg);
    cr_expect_eq(len, sizeof(body) - 1);
    cr_expect(memcmp(text, body, len) == 0);
    cr_expect_str_eq(nt_ppl_task_file(path), path);
    free(text);
    free(path);
    tu_rmtree(tmp);
    free(tmp);
}

// ptb rows are Python's str.strip() of each line (universal newlines; Unicode whitespace too)
Test(texts, ptb_rows_are_python_stripped) {
    char *tmp = tu_tmpdir();
    char *sub = nt_path_join(tmp, "ptb");
    char *path = nt_path_join(sub, "ptb.valid.txt");
    cr_assert(mkdir_p_ok(sub));
    const char body[] = " a b \n\t\n\xc2\xa0 c\xe3\x80\x80\r\nd\re \xc3\xa9";
    cr_assert_eq(tu_write_file(path, body, sizeof(body) - 1), 0);
    char *text = NULL;
    size_t len = 0;
    nt_err err = {0};
    cr_assert_eq(nt_ppl_text("ptb", tmp, &text, &len, &err), 0, "%s", err.msg);
    // python3: "\n\n".join(l.strip() for l in open(p, encoding="utf-8"))
    const char want[] = "a b\n\n\n\nc\n\nd\n\ne \xc3\xa9";
    cr_expect_eq(len, sizeof(want) - 1, "len %zu: '%s'", len, text);
    cr_expect(memcmp(text, want, sizeof(want) - 1) == 0, "got '%s'", text);
    free(text);
    free(path);
    free(sub);
    tu_rmtree(tmp);
    free(tmp);
}

// wikitext2 rows: a whitespace-only line is the empty row, any other keeps its "\n" (HF `wikitext` script)
Test(texts, wikitext2_rows) {
    char *tmp = tu_tmpdir();
    const char body[] = " a b \n\t\n\xc2\xa0 c\xe3\x80\x80\r\nd\re \xc3\xa9";
    put_file(tmp, "wikitext2", "wiki.test.raw", body, sizeof(body) - 1);
    char *text = NULL;
    size_t len = 0;
    nt_err err = {0};
    cr_assert_eq(nt_ppl_text("wikitext2", tmp, &text, &len, &err), 0, "%s", err.msg);
    // python3: "\n\n".join("" if not l.strip() else l for l in open(p, encoding="utf-8"))
    const char want[] = " a b \n\n\n\n\n\xc2\xa0 c\xe3\x80\x80\n\n\nd\n\n\ne \xc3\xa9";
    cr_expect_eq(len, sizeof(want) - 1, "len %zu", len);
    cr_expect(memcmp(text, want, sizeof(want) - 1) == 0);
    free(text);
    // one blank line: the single empty row, i.e. the empty string (not an error here; too few tokens later)
    put_file(tmp, "wikitext2", "wiki.test.raw", " \n", 2);
    cr_assert_eq(nt_ppl_text("wikitext2", tmp, &text, &len, &err), 0, "%s", err.msg);
    cr_expect(len == 0 && text && text[0] == '\0');
    free(text);
    tu_rmtree(tmp);
    free(tmp);
}

// ---------------------------------------------------------------------------------------------------------
// Errors: each one line, naming the file (and line).

Test(errors, unknown_task) {
    nt_err err = {0};
    char *text = NULL;
    size_t len = 0;
    cr_expect(!nt_ppl_task_known("wikitext"));
    cr_expect(nt_ppl_task_known("c4") && nt_ppl_task_known("ptb-new") && nt_ppl_task_known("my.txt"));
    cr_expect_null(nt_ppl_task_file("wikitext"));
    cr_expect_eq(nt_ppl_text("wikitext", "/x", &text, &len, &err), -1);
    cr_expect_str_eq(err.msg, "unknown perplexity task 'wikitext' (expected wikitext2, ptb, ptb-new, c4, c4-new or "
                              "a .txt file)");
    nt_windows w;
    cr_expect_eq(nt_ppl_windows("lambada", "/x", NULL, 128, &w, &err), -1);
    cr_expect(strstr(err.msg, "unknown perplexity task 'lambada'") != NULL, "%s", err.msg);
    cr_expect_eq(nt_ppl_text("c4", "/x", &text, &len, &err), -1);
    cr_expect(strstr(err.msg, "c4") != NULL, "%s", err.msg);
}

Test(errors, missing_file) {
    char *tmp = tu_tmpdir();
    nt_err err = {0};
    char *text = NULL;
    size_t len = 0;
    const char *tasks[] = {"wikitext2", "ptb", "ptb-new", "c4-new"};
    for (int i = 0; i < 4; i++) {
        cr_expect_eq(nt_ppl_text(tasks[i], tmp, &text, &len, &err), -1);
        char want[512];
        snprintf(want, sizeof(want), "%s/%s: No such file or directory", tmp, nt_ppl_task_file(tasks[i]));
        cr_expect_str_eq(err.msg, want);
    }
    nt_windows w;
    cr_expect_eq(nt_ppl_windows("c4", tmp, NULL, 16, &w, &err), -1);
    cr_expect(strstr(err.msg, "c4/c4_validation_2k.jsonl: No such file or directory") != NULL, "%s", err.msg);
    cr_expect_eq(nt_calib_windows("c4", tmp, NULL, 4, 16, 0, &w, &err), -1);
    cr_expect(strstr(err.msg, "c4/c4-train.00000-of-01024.first1000.jsonl: No such file") != NULL, "%s", err.msg);
    cr_expect_eq(nt_calib_windows("wikitext2", tmp, NULL, 4, 16, 0, &w, &err), -1);
    cr_expect(strstr(err.msg, "train split is not") != NULL, "%s", err.msg);
    cr_expect_eq(nt_calib_windows("pile", tmp, NULL, 4, 16, 0, &w, &err), -1);
    cr_expect(strstr(err.msg, "unknown calibration source 'pile'") != NULL, "%s", err.msg);
    tu_rmtree(tmp);
    free(tmp);
}

Test(errors, empty_files) {
    char *tmp = tu_tmpdir();
    put_file(tmp, "wikitext2", "wiki.test.raw", "", 0);
    put_file(tmp, "c4", "c4_validation_2k.jsonl", "\n  \n", 4);
    char *txt = nt_path_join(tmp, "empty.txt");
    cr_assert_eq(tu_write_file(txt, "", 0), 0);
    nt_err err = {0};
    char *text = NULL;
    size_t len = 0;
    char want[512];
    cr_expect_eq(nt_ppl_text("wikitext2", tmp, &text, &len, &err), -1);
    snprintf(want, sizeof(want), "%s/wikitext2/wiki.test.raw: empty dataset file", tmp);
    cr_expect_str_eq(err.msg, want);
    cr_expect_eq(nt_ppl_text("c4-new", tmp, &text, &len, &err), -1);
    snprintf(want, sizeof(want), "%s/c4/c4_validation_2k.jsonl: empty dataset file", tmp);
    cr_expect_str_eq(err.msg, want);
    cr_expect_eq(nt_ppl_text(txt, tmp, &text, &len, &err), -1);
    snprintf(want, sizeof(want), "%s: empty dataset file", txt);
    cr_expect_str_eq(err.msg, want);
    free(txt);
    tu_rmtree(tmp);
    free(tmp);
}

Test(errors, malformed_jsonl) {
    char *tmp = tu_tmpdir();
    const char bad[] = "{\"text\": \"ok\"}\n\n{\"text\": \"broken}\n{\"text\": \"x\"}\n";
    put_file(tmp, "c4", "c4_validation_2k.jsonl", bad, sizeof(bad) - 1);
    nt_err err = {0};
    char *text = NULL;
    size_t len = 0;
    char want[512];
    cr_expect_eq(nt_ppl_text("c4-new", tmp, &text, &len, &err), -1);
    snprintf(want, sizeof(want), "%s/c4/c4_validation_2k.jsonl:3: malformed JSON", tmp);
    cr_expect_str_eq(err.msg, want);

    const char notext[] = "{\"text\": \"ok\"}\r\n{\"url\": \"u\"}\r\n";
    put_file(tmp, "c4", "c4_validation_2k.jsonl", notext, sizeof(notext) - 1);
    cr_expect_eq(nt_ppl_text("c4-new", tmp, &text, &len, &err), -1);
    snprintf(want, sizeof(want), "%s/c4/c4_validation_2k.jsonl:2: missing \"text\" field", tmp);
    cr_expect_str_eq(err.msg, want);

    const char trailing[] = "{\"text\": \"ok\"} {\"text\": \"two\"}\n";
    put_file(tmp, "c4", "c4_validation_2k.jsonl", trailing, sizeof(trailing) - 1);
    cr_expect_eq(nt_ppl_text("c4-new", tmp, &text, &len, &err), -1);
    snprintf(want, sizeof(want), "%s/c4/c4_validation_2k.jsonl:1: malformed JSON", tmp);
    cr_expect_str_eq(err.msg, want);

    const char nonstr[] = "{\"text\": 3}";
    put_file(tmp, "c4", "c4_validation_2k.jsonl", nonstr, sizeof(nonstr) - 1);
    cr_expect_eq(nt_ppl_text("c4-new", tmp, &text, &len, &err), -1);
    cr_expect(strstr(err.msg, "c4_validation_2k.jsonl:1: \"text\" is not a string") != NULL, "%s", err.msg);

    // a good small file: c4-new joins the texts with " " (escapes decoded)
    const char good[] = "{\"text\": \"a\\nb\", \"url\": 1}\n\n{\"text\": \"\\u00e9\"}";
    put_file(tmp, "c4", "c4_validation_2k.jsonl", good, sizeof(good) - 1);
    cr_assert_eq(nt_ppl_text("c4-new", tmp, &text, &len, &err), 0, "%s", err.msg);
    cr_expect_str_eq(text, "a\nb \xc3\xa9");
    free(text);
    tu_rmtree(tmp);
    free(tmp);
}

// ---------------------------------------------------------------------------------------------------------
// The JSONL iterator on its own.

typedef struct {
    size_t lines[8];
    int n, stop_after;
} seen_lines;

static int record_line(const cJSON *obj, size_t lineno, void *ctx, nt_err *err) {
    seen_lines *s = ctx;
    if (!cJSON_IsObject(obj)) return nt_fail(err, "not an object");
    s->lines[s->n++] = lineno;
    return s->n == s->stop_after ? 1 : 0;
}

Test(jsonl, line_numbers_blank_lines_and_early_stop) {
    char *tmp = tu_tmpdir();
    char *p = nt_path_join(tmp, "a.jsonl");
    const char body[] = "\xef\xbb\xbf{\"a\":1}\n\n  \t\n{\"a\":2}\r\n{\"a\":3}";
    cr_assert_eq(tu_write_file(p, body, sizeof(body) - 1), 0);
    seen_lines s = {.stop_after = 0};
    size_t n = 0;
    nt_err err = {0};
    cr_assert_eq(nt_jsonl_foreach(p, record_line, &s, &n, &err), 0, "%s", err.msg);
    cr_expect_eq(n, 3);
    cr_expect(s.n == 3 && s.lines[0] == 1 && s.lines[1] == 4 && s.lines[2] == 5);
    seen_lines t = {.stop_after = 2};
    cr_assert_eq(nt_jsonl_foreach(p, record_line, &t, &n, &err), 0, "%s", err.msg);
    cr_expect(n == 2 && t.n == 2);

    const char arr[] = "{}\n[1]\n";
    cr_assert_eq(tu_write_file(p, arr, sizeof(arr) - 1), 0);
    seen_lines u = {0};
    cr_expect_eq(nt_jsonl_foreach(p, record_line, &u, NULL, &err), -1);
    char want[512];
    snprintf(want, sizeof(want), "%s:2: not an object", p);
    cr_expect_str_eq(err.msg, want);
    free(p);
    tu_rmtree(tmp);
    free(tmp);
}

// ---------------------------------------------------------------------------------------------------------
// Windows with the real tokenizer (tiny-opt, GPT-2 byte-level BPE with a BOS).

static nt_tokenizer *load_tiny_opt(void) {
    char *dir = tu_shared("models/tiny-opt");
    nt_tokenizer *tok = NULL;
    nt_err err = {0};
    int rc = nt_tokenizer_load_dir(&tok, dir, &err);
    free(dir);
    cr_assert_eq(rc, 0, "tokenizer: %s", err.msg);
    return tok;
}

static cJSON *load_golden(void) {
    char *path = tu_source("tests/golden/c4_windows_tiny-opt_256.json");
    nt_err err = {0};
    char *s = nt_read_file(path, NULL, &err);
    free(path);
    cr_assert_not_null(s, "%s", err.msg);
    cJSON *g = cJSON_Parse(s);
    free(s);
    cr_assert_not_null(g, "golden: malformed JSON");
    cr_assert_eq(cJSON_GetObjectItem(g, "gptq_would_raise")->valueint, 0);
    return g;
}

// [doc, start, [ids...]] entries against windows (and picks when given)
static void expect_picks(const cJSON *arr, const nt_windows *w, const nt_doc_pick *picks, const char *what) {
    size_t n = (size_t)cJSON_GetArraySize(arr);
    cr_assert_leq(n, w->n_windows, "%s", what);
    size_t bad = 0;
    for (size_t s = 0; s < n; s++) {
        const cJSON *e = cJSON_GetArrayItem(arr, (int)s);
        size_t doc = (size_t)cJSON_GetArrayItem(e, 0)->valuedouble;
        size_t start = (size_t)cJSON_GetArrayItem(e, 1)->valuedouble;
        const cJSON *ids = cJSON_GetArrayItem(e, 2);
        bool ok = true;
        if (picks) ok = picks[s].doc == doc && picks[s].start == start;
        for (int k = 0; k < cJSON_GetArraySize(ids); k++)
            ok &= w->ids[s * w->seqlen + (size_t)k] == (int32_t)cJSON_GetArrayItem(ids, k)->valueint;
        if (!ok && bad++ < 5)
            cr_log_error("%s window %zu: got doc %zu start %zu, want doc %zu start %zu", what, s,
                         picks ? picks[s].doc : 0, picks ? picks[s].start : 0, doc, start);
    }
    cr_expect_eq(bad, 0, "%s: %zu of %zu windows differ from GPTQ's", what, bad, n);
}

Test(windows, c4_matches_gptq_transcription) {
    nt_tokenizer *tok = load_tiny_opt();
    cJSON *g = load_golden();
    char *dir = tu_shared("datasets");
    nt_windows w;
    nt_doc_pick picks[256];
    nt_err err = {0};
    cr_assert_eq(nt_ppl_c4_windows(dir, tok, 256, &w, picks, &err), 0, "%s", err.msg);
    cr_expect_eq(w.n_windows, 256);
    cr_expect_eq(w.seqlen, 256);
    cr_expect_eq(w.n_tokens, 256 * 256);
    cr_expect_eq(cJSON_GetArraySize(cJSON_GetObjectItem(g, "picks")), 256);
    expect_picks(cJSON_GetObjectItem(g, "picks"), &w, picks, "c4");

    // nt_ppl_windows("c4") is the same thing
    nt_windows w2;
    cr_assert_eq(nt_ppl_windows("c4", dir, tok, 256, &w2, &err), 0, "%s", err.msg);
    cr_expect(w2.n_windows == 256 && memcmp(w.ids, w2.ids, 256 * 256 * sizeof(int32_t)) == 0);
    nt_windows_free(&w2);
    nt_windows_free(&w);
    cr_expect_null(w.ids);

    // GPTQ's calibration sampler over the C4 train documents, seed 0
    cr_assert_eq(nt_calib_windows("c4", dir, tok, 16, 256, 0, &w, &err), 0, "%s", err.msg);
    cr_expect_eq(w.n_windows, 16);
    expect_picks(cJSON_GetObjectItem(g, "calib_c4_train"), &w, NULL, "calib c4");
    nt_windows_free(&w);
    free(dir);
    cJSON_Delete(g);
    nt_tokenizer_free(&tok);
}

// The text tasks end to end (join, tokenize once, cut): window count, token count and a hash of every window id,
// against the same pipeline in Python with HF tokenizers (golden "text_windows").
Test(windows, text_tasks_match_hf) {
    nt_tokenizer *tok = load_tiny_opt();
    cJSON *g = load_golden();
    const cJSON *tw = cJSON_GetObjectItem(g, "text_windows");
    cr_assert_eq(cJSON_GetArraySize(tw), 4);
    char *dir = tu_shared("datasets");
    const cJSON *e;
    cJSON_ArrayForEach(e, tw) {
        nt_windows w;
        nt_err err = {0};
        cr_assert_eq(nt_ppl_windows(e->string, dir, tok, 256, &w, &err), 0, "%s", err.msg);
        uint64_t h = 0xcbf29ce484222325ull;
        for (size_t k = 0; k < w.n_windows * w.seqlen; k++) h = (h ^ (uint32_t)w.ids[k]) * 0x100000001b3ull;
        char hex[17];
        snprintf(hex, sizeof(hex), "%016llx", (unsigned long long)h);
        cr_expect_eq(w.n_windows, (size_t)cJSON_GetArrayItem(e, 0)->valuedouble, "%s: n_windows", e->string);
        cr_expect_eq(w.n_tokens, (size_t)cJSON_GetArrayItem(e, 1)->valuedouble, "%s: n_tokens", e->string);
        cr_expect_str_eq(hex, cJSON_GetArrayItem(e, 2)->valuestring, "%s: window ids hash", e->string);
        nt_windows_free(&w);
    }
    free(dir);
    cJSON_Delete(g);
    nt_tokenizer_free(&tok);
}

Test(windows, text_file_cut_into_windows) {
    nt_tokenizer *tok = load_tiny_opt();
    char *tmp = tu_tmpdir();
    char *path = nt_path_join(tmp, "small.txt");
    const char body[] = "The quick brown fox jumps over the lazy dog. It was a bright cold day in April, and the "
                        "clocks were striking thirteen.\n";
    cr_assert_eq(tu_write_file(path, body, sizeof(body) - 1), 0);
    int32_t *ids = NULL;
    size_t n = 0;
    nt_err err = {0};
    cr_assert_eq(nt_tokenizer_encode(tok, body, sizeof(body) - 1, true, &ids, &n, &err), 0, "%s", err.msg);
    cr_assert_gt(n, 10);
    nt_windows w;
    cr_assert_eq(nt_ppl_windows(path, tmp, tok, 7, &w, &err), 0, "%s", err.msg);
    cr_expect_eq(w.n_windows, n / 7);
    cr_expect_eq(w.n_tokens, n);
    cr_expect(memcmp(w.ids, ids, w.n_windows * 7 * sizeof(int32_t)) == 0);
    nt_windows_free(&w);

    // calibration on a text file: start = randint(0, n - seqlen - 1) per sample, seeded
    cr_assert_eq(nt_calib_windows(path, tmp, tok, 5, 4, 123, &w, &err), 0, "%s", err.msg);
    nt_pyrandom r;
    nt_pyrandom_seed(&r, 123);
    for (size_t s = 0; s < 5; s++) {
        int64_t st = nt_pyrandom_randint(&r, 0, (int64_t)(n - 4 - 1));
        cr_expect(memcmp(w.ids + s * 4, ids + st, 4 * sizeof(int32_t)) == 0, "sample %zu", s);
    }
    nt_windows_free(&w);

    // fewer tokens than one window names the file
    cr_expect_eq(nt_ppl_windows(path, tmp, tok, n + 1, &w, &err), -1);
    char want[600];
    snprintf(want, sizeof(want), "%s: only %zu tokens, fewer than one window of %zu", path, n, n + 1);
    cr_expect_str_eq(err.msg, want);
    cr_expect_eq(nt_calib_windows(path, tmp, tok, 2, n, 0, &w, &err), -1);
    cr_expect(strncmp(err.msg, path, strlen(path)) == 0, "%s", err.msg);
    free(ids);
    free(path);
    tu_rmtree(tmp);
    free(tmp);
    nt_tokenizer_free(&tok);
}

// A c4 file whose documents are all too short: an error, not an endless redraw; one exactly seqlen long is
// redrawn (GPTQ's randint(0, -1) would raise there), so the long one is always chosen.
Test(windows, c4_short_documents) {
    nt_tokenizer *tok = load_tiny_opt();
    char *tmp = tu_tmpdir();
    const char body[] = "{\"text\": \"one two\"}\n{\"text\": \"three four five six seven eight\"}\n";
    put_file(tmp, "c4", "c4_validation_2k.jsonl", body, sizeof(body) - 1);
    nt_windows w;
    nt_err err = {0};
    cr_expect_eq(nt_ppl_windows("c4", tmp, tok, 64, &w, &err), -1);
    char want[600];
    snprintf(want, sizeof(want), "%s/c4/c4_validation_2k.jsonl: no document has more than 64 tokens", tmp);
    cr_expect_str_eq(err.msg, want);

    int32_t *ids = NULL;
    size_t n0 = 0, n1 = 0;
    cr_assert_eq(nt_tokenizer_encode(tok, "one two", 7, true, &ids, &n0, &err), 0, "%s", err.msg);
    free(ids);
    cr_assert_eq(nt_tokenizer_encode(tok, "three four five six seven eight", 31, true, &ids, &n1, &err), 0);
    free(ids);
    cr_assert_lt(n0, n1 - 1);
    nt_doc_pick picks[256];
    cr_assert_eq(nt_ppl_c4_windows(tmp, tok, n0, &w, picks, &err), 0, "%s", err.msg);
    for (int s = 0; s < 256; s++) cr_expect_eq(picks[s].doc, 1, "window %d took the doc of exactly seqlen tokens", s);
    nt_windows_free(&w);
    tu_rmtree(tmp);
    free(tmp);
    nt_tokenizer_free(&tok);
}
