// utf8.c: UTF-8 and Unicode through utf8proc (see utf8.h). utf8proc_iterate is the one decoder and validity
// test (it rejects overlong forms, surrogates and code points above U+10FFFF); the only logic here is how
// far one U+FFFD reaches over invalid bytes.
#include "utf8.h"

#include <string.h>
#include <utf8proc.h>

size_t nt_utf8_next(const char *s, size_t n, int32_t *cp) {
    const utf8proc_uint8_t *u = (const utf8proc_uint8_t *)s;
    if (u[0] < 0x80) { // ASCII: the common case, without a call
        *cp = u[0];
        return 1;
    }
    utf8proc_int32_t c;
    utf8proc_ssize_t k = utf8proc_iterate(u, (utf8proc_ssize_t)(n < 4 ? n : 4), &c);
    if (k > 0) {
        *cp = c;
        return (size_t)k;
    }
    // Invalid: the maximal subpart is the longest prefix (1..3 bytes) that some well-formed character starts
    // with. Only a character's first two bytes carry range limits (E0 A0.., ED ..9F, F0 90.., F4 ..8F), so a
    // prefix of two or more bytes starts one exactly when filling the rest with 0x80 decodes to a longer
    // character.
    *cp = -1;
    for (size_t len = n < 3 ? n : 3; len >= 2; len--) {
        utf8proc_uint8_t buf[4] = {0x80, 0x80, 0x80, 0x80};
        memcpy(buf, u, len);
        if (utf8proc_iterate(buf, 4, &c) > (utf8proc_ssize_t)len) return len;
    }
    return 1;
}

bool nt_utf8_valid(const char *s, size_t n) {
    for (size_t i = 0; i < n;) {
        if ((unsigned char)s[i] < 0x80) {
            i++;
            continue;
        }
        int32_t cp;
        i += nt_utf8_next(s + i, n - i, &cp);
        if (cp < 0) return false;
    }
    return true;
}

char *nt_utf8_lossy(const char *s, size_t n, size_t *out_n) {
    char *out = malloc(3 * n + 1); // one invalid byte becomes the 3 bytes of U+FFFD at most
    if (!out) return NULL;
    size_t w = 0;
    for (size_t i = 0; i < n;) {
        int32_t cp;
        size_t k = nt_utf8_next(s + i, n - i, &cp);
        if (cp < 0) {
            memcpy(out + w, "\xEF\xBF\xBD", 3);
            w += 3;
        } else {
            memcpy(out + w, s + i, k);
            w += k;
        }
        i += k;
    }
    out[w] = '\0';
    *out_n = w;
    return out;
}

size_t nt_utf8_chars(const char *s, size_t n) {
    size_t count = 0;
    for (size_t i = 0; i < n; count++) {
        int32_t cp;
        i += nt_utf8_next(s + i, n - i, &cp);
    }
    return count;
}

size_t nt_utf8_prev(const char *s, size_t i) {
    size_t j = i - 1;
    while (j > 0 && i - j < 4 && ((unsigned char)s[j] & 0xC0) == 0x80) j--; // 10xxxxxx: a continuation byte
    return j;
}

size_t nt_utf8_encode(int32_t cp, char *out) {
    utf8proc_ssize_t k = utf8proc_encode_char(cp, (utf8proc_uint8_t *)out);
    NT_ASSERT(k > 0);
    return (size_t)k;
}

char *nt_utf8_normalize(const char *s, size_t n, nt_unorm form, size_t *out_n) {
    bool ascii = true; // ASCII text is its own normal form in all four
    for (size_t i = 0; i < n && ascii; i++) ascii = (unsigned char)s[i] < 0x80;
    if (ascii || n == 0) {
        char *out = malloc(n + 1);
        if (!out) return NULL;
        if (n) memcpy(out, s, n);
        out[n] = '\0';
        *out_n = n;
        return out;
    }
    utf8proc_option_t opt = UTF8PROC_STABLE;
    switch (form) {
    case NT_NFC: opt |= UTF8PROC_COMPOSE; break;
    case NT_NFD: opt |= UTF8PROC_DECOMPOSE; break;
    case NT_NFKC: opt |= UTF8PROC_COMPOSE | UTF8PROC_COMPAT; break;
    case NT_NFKD: opt |= UTF8PROC_DECOMPOSE | UTF8PROC_COMPAT; break;
    }
    utf8proc_uint8_t *res = NULL;
    utf8proc_ssize_t k = utf8proc_map((const utf8proc_uint8_t *)s, (utf8proc_ssize_t)n, &res, opt);
    if (k < 0) {
        free(res);
        return NULL;
    }
    *out_n = (size_t)k;
    return (char *)res; // utf8proc_map's buffer is malloc'd and NUL-terminated
}

bool nt_unicode_py_space(int32_t cp) {
    if (cp < 0) return false;
    const utf8proc_property_t *p = utf8proc_get_property(cp);
    return p->category == UTF8PROC_CATEGORY_ZS || p->bidi_class == UTF8PROC_BIDI_CLASS_WS ||
           p->bidi_class == UTF8PROC_BIDI_CLASS_B || p->bidi_class == UTF8PROC_BIDI_CLASS_S;
}

bool nt_unicode_white_space(int32_t cp) {
    if (cp < 0) return false;
    if ((cp >= 0x09 && cp <= 0x0D) || cp == 0x85) return true;
    utf8proc_category_t c = utf8proc_category(cp);
    return c == UTF8PROC_CATEGORY_ZS || c == UTF8PROC_CATEGORY_ZL || c == UTF8PROC_CATEGORY_ZP;
}
