// utf8.h: the UTF-8 and Unicode questions the tokenizer and the dataset builders ask, answered by utf8proc
// (decoding, validity, encoding, normalization forms, character properties). One definition of how invalid
// UTF-8 reads: each maximal invalid subpart (Unicode 3.9 "U+FFFD substitution of maximal subparts", what
// Python's errors="replace" and Rust's from_utf8_lossy do) is one character U+FFFD.
#pragma once
#include "nt.h"

// The character at s (n > 0 bytes left): returns its length in bytes (1..4) and sets *cp to its code point;
// for invalid UTF-8 returns the length of the maximal invalid subpart (1..3) and sets *cp = -1.
size_t nt_utf8_next(const char *s, size_t n, int32_t *cp);
// Whether s[0..n) is well-formed UTF-8 (no surrogates, nothing above U+10FFFF, no overlong forms).
bool nt_utf8_valid(const char *s, size_t n);
// s[0..n) with every maximal invalid subpart replaced by U+FFFD, malloc'd and NUL-terminated (*out_n its
// length); NULL when out of memory.
char *nt_utf8_lossy(const char *s, size_t n, size_t *out_n);
// Code points of s[0..n) as Python's len() counts them after decoding with errors="replace".
size_t nt_utf8_chars(const char *s, size_t n);
// The start of the character that ends just before s[i] (i > 0) in well-formed text: i - 1 backed up over
// continuation bytes (at most 3 of them).
size_t nt_utf8_prev(const char *s, size_t i);
// Writes the UTF-8 encoding of a valid code point to out (4 bytes of room); returns its length.
size_t nt_utf8_encode(int32_t cp, char *out);

// Unicode normalization forms (utf8proc_map, UTF8PROC_STABLE as utf8proc_NFC etc. use it).
typedef enum { NT_NFC, NT_NFD, NT_NFKC, NT_NFKD } nt_unorm;
// The normalized form of valid UTF-8 s[0..n), malloc'd and NUL-terminated (*out_n its length); NULL when out
// of memory or s is not valid UTF-8.
char *nt_utf8_normalize(const char *s, size_t n, nt_unorm form, size_t *out_n);

// Python's str.isspace() for one code point: general category Zs or bidirectional class WS, B or S (the
// definition CPython's makeunicodedata.py uses; it includes U+001C..U+001F).
bool nt_unicode_py_space(int32_t cp);
// The Unicode White_Space property (Rust's char::is_whitespace): Zs, Zl, Zp, U+0009..U+000D and U+0085.
bool nt_unicode_white_space(int32_t cp);
