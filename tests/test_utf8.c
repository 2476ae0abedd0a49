// test_utf8.c: model/utf8.c (utf8proc underneath) against CPython (tests/golden/make_utf8_goldens.py writes
// tests/golden/utf8/utf8.json): decoding of every short byte string over the edges of UTF-8's ranges (valid or not,
// with CPython's maximal invalid subparts), str.isspace over all of Unicode, the four normalization forms; and
// what the dataset builders make of invalid UTF-8 (datasets/tasks.c, datasets/datasets.c).
#define _POSIX_C_SOURCE 200809L
#include <criterion/criterion.h>
#include <string.h>
#include <sys/stat.h>

#include "datasets.h"
#include "tasks.h"
#include "testutil.h"
#include "utf8.h"

static cJSON *golden(void) {
    char *txt = tu_read_golden("utf8", "utf8.json", 0, "tests/golden/make_utf8_goldens.py");
    cJSON *j = cJSON_Parse(txt);
    cr_assert(j != NULL, "tests/golden/utf8/utf8.json: bad JSON");
    free(txt);
    return j;
}

static uint64_t fnv_i32(uint64_t h, int32_t v) {
    for (int b = 0; b < 4; b++) h = (h ^ (((uint32_t)v >> (8 * b)) & 0xFF)) * 0x100000001B3ull;
    return h;
}

// Every byte string of 1..4 bytes over the edge bytes, in itertools.product order: (code point, length) per
// character as nt_utf8_next reads them, hashed as the script hashes CPython's; nt_utf8_valid and nt_utf8_chars
// must agree with the same reading.
Test(utf8, decode_matches_cpython) {
    cJSON *g = golden();
    const cJSON *eb = cJSON_GetObjectItem(g, "edge_bytes"), *dec = cJSON_GetObjectItem(g, "decode");
    int ne = cJSON_GetArraySize(eb);
    unsigned char edge[64];
    cr_assert(ne > 0 && ne <= 64);
    for (int i = 0; i < ne; i++) edge[i] = (unsigned char)cJSON_GetArrayItem(eb, i)->valueint;
    uint64_t h = 0xCBF29CE484222325ull;
    long count = 0;
    for (int n = 1; n <= 4; n++) {
        long total = 1;
        for (int k = 0; k < n; k++) total *= ne;
        for (long idx = 0; idx < total; idx++, count++) {
            char s[4];
            long r = idx;
            for (int k = n - 1; k >= 0; k--, r /= ne) s[k] = (char)edge[r % ne]; // last byte varies fastest
            bool valid = true;
            size_t chars = 0;
            for (size_t i = 0; i < (size_t)n; chars++) {
                int32_t cp;
                size_t len = nt_utf8_next(s + i, (size_t)n - i, &cp);
                cr_assert(len >= 1 && i + len <= (size_t)n);
                valid &= cp >= 0;
                h = fnv_i32(fnv_i32(h, cp), (int32_t)len);
                i += len;
            }
            h = fnv_i32(h, -2);
            cr_assert_eq(nt_utf8_valid(s, (size_t)n), valid);
            cr_assert_eq(nt_utf8_chars(s, (size_t)n), chars);
        }
    }
    char hex[17];
    snprintf(hex, sizeof(hex), "%016llx", (unsigned long long)h);
    cr_assert_eq(count, cJSON_GetObjectItem(dec, "n_strings")->valueint);
    cr_assert_str_eq(hex, cJSON_GetObjectItem(dec, "fnv1a64")->valuestring, "decoding differs from CPython's");
    cJSON_Delete(g);
}

Test(utf8, lossy_and_encode) {
    const char bad[] = "ok \xff\xfe bad \xe2\x82 cut \xed\xa0\x80 surrogate \xf4\x90\x80\x80 end \xc3";
    // python3: bad.decode("utf-8", "replace").encode()
    const char want[] = "ok \xef\xbf\xbd\xef\xbf\xbd bad \xef\xbf\xbd cut \xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd surrogate "
                        "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd end \xef\xbf\xbd";
    size_t n;
    char *s = nt_utf8_lossy(bad, sizeof(bad) - 1, &n);
    cr_assert(s != NULL);
    cr_assert(n == sizeof(want) - 1 && memcmp(s, want, n) == 0, "got '%s'", s);
    cr_assert(nt_utf8_valid(s, n));
    free(s);
    const int32_t cps[] = {0, 0x7F, 0x80, 0x7FF, 0x800, 0xFFFD, 0x10000, 0x1F600, 0x10FFFF};
    for (size_t i = 0; i < sizeof(cps) / sizeof(cps[0]); i++) {
        char buf[4];
        size_t k = nt_utf8_encode(cps[i], buf);
        int32_t back;
        cr_assert_eq(nt_utf8_next(buf, k, &back), k);
        cr_assert_eq(back, cps[i]);
    }
    // nt_utf8_prev backs up over continuation bytes to the start of the character before
    const char mixed[] = "a\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80"; // a é € 😀
    cr_assert_eq(nt_utf8_prev(mixed, 10), 6);
    cr_assert_eq(nt_utf8_prev(mixed, 6), 3);
    cr_assert_eq(nt_utf8_prev(mixed, 3), 1);
    cr_assert_eq(nt_utf8_prev(mixed, 1), 0);
}

// str.isspace over every code point; White_Space is the same set without U+001C..U+001F.
Test(utf8, spaces_match_python) {
    cJSON *g = golden();
    const cJSON *sp = cJSON_GetObjectItem(g, "py_space");
    static bool py[0x110000];
    memset(py, 0, sizeof(py));
    for (const cJSON *c = sp->child; c; c = c->next) py[c->valueint] = true;
    int n_py = 0, n_ws = 0;
    for (int32_t c = 0; c < 0x110000; c++) {
        cr_assert_eq(nt_unicode_py_space(c), py[c], "U+%04X: isspace %d", (unsigned)c, (int)py[c]);
        bool ws = py[c] && !(c >= 0x1C && c <= 0x1F);
        cr_assert_eq(nt_unicode_white_space(c), ws, "U+%04X: White_Space %d", (unsigned)c, (int)ws);
        n_py += py[c];
        n_ws += ws;
    }
    cr_assert_eq(n_py, 29);
    cr_assert_eq(n_ws, 25);
    cr_assert(!nt_unicode_py_space(-1) && !nt_unicode_white_space(-1)); // an invalid byte is not whitespace
    cJSON_Delete(g);
}

Test(utf8, normalization_forms) {
    cJSON *g = golden();
    const char *forms[] = {"NFC", "NFD", "NFKC", "NFKD"};
    const nt_unorm ids[] = {NT_NFC, NT_NFD, NT_NFKC, NT_NFKD};
    int changed = 0;
    for (const cJSON *row = cJSON_GetObjectItem(g, "normalize")->child; row; row = row->next) {
        const char *text = cJSON_GetObjectItem(row, "text")->valuestring;
        for (int f = 0; f < 4; f++) {
            const char *want = cJSON_GetObjectItem(row, forms[f])->valuestring;
            size_t n;
            char *got = nt_utf8_normalize(text, strlen(text), ids[f], &n);
            cr_assert(got != NULL);
            cr_expect(n == strlen(want) && strcmp(got, want) == 0, "%s(\"%s\") = \"%s\", want \"%s\"", forms[f], text,
                      got, want);
            changed += strcmp(want, text) != 0;
            free(got);
        }
    }
    cr_assert(changed > 10, "the golden texts hardly exercise normalization");
    size_t n;
    cr_assert(nt_utf8_normalize("a\xff", 2, NT_NFC, &n) == NULL); // invalid UTF-8 is refused, not guessed
    cJSON_Delete(g);
}

// The dataset builders read invalid bytes as U+FFFD (one per maximal subpart): counted as characters, never
// stripped as whitespace.
Test(utf8, datasets_on_invalid_bytes) {
    cr_expect_eq(nt_zs_utf8_chars("\x80", 1), 1);                   // python: len(b"\x80".decode(errors="replace"))
    cr_expect_eq(nt_zs_utf8_chars("\xed\xa0\x80", 3), 3);           // a surrogate: three replacements
    cr_expect_eq(nt_zs_utf8_chars("\xf0\x9f\x98", 3), 1);           // a cut emoji: one
    cr_expect_eq(nt_zs_utf8_chars("a\xf0\x9f\x98\x80" "b", 6), 3);  // "a😀b"
    cr_expect_eq(nt_zs_trailing_space("a \xff", 3), 0);
    cr_expect_eq(nt_zs_trailing_space("a\xff \n", 4), 2);
    cr_expect_eq(nt_zs_trailing_space("\xe2\x80 ", 3), 1);          // a cut U+2000..: not whitespace, the space is
    char *s = nt_zs_hellaswag_preprocess(" \xff x \xc2", 6);
    cr_assert(s != NULL);
    cr_expect_str_eq(s, "\xff x \xc2");
    free(s);
    // ptb rows are stripped lines: the invalid bytes stay, the spaces around them go
    char *tmp = tu_tmpdir();
    char *sub = nt_path_join(tmp, "ptb");
    char *path = nt_path_join(sub, "ptb.valid.txt");
    cr_assert_eq(mkdir(sub, 0700), 0);
    const char body[] = " \xff a\xe2\x80 \n\xc2\xa0\xed\xa0\x80\xc2\xa0\n";
    cr_assert_eq(tu_write_file(path, body, sizeof(body) - 1), 0);
    char *text = NULL;
    size_t len = 0;
    nt_err err = {0};
    cr_assert_eq(nt_ppl_text("ptb", tmp, &text, &len, &err), 0, "%s", err.msg);
    const char want[] = "\xff a\xe2\x80\n\n\xed\xa0\x80";
    cr_expect(len == sizeof(want) - 1 && memcmp(text, want, len) == 0, "got '%s'", text);
    free(text);
    free(path);
    free(sub);
    tu_rmtree(tmp);
    free(tmp);
}
