// datasets.c: evaluation and calibration data built exactly as GPTQ's datautils builds it (see datasets.h and
// ../shared/docs/PROTOCOLS.md), plus CPython's `random` so that seeded draws pick the same slices.
// Reference code: whole files in memory, no speed tricks.
#define _POSIX_C_SOURCE 200809L // strdup
#include "datasets.h"

#include <string.h>

#include "jsonl.h"
#include "utf8.h"

// ---------------------------------------------------------------------------------------------------------
// Python's random: MT19937 (Matsumoto & Nishimura), seeded the way CPython seeds it from an int.

enum { MT_N = 624, MT_M = 397 };

static void mt_init_genrand(nt_pyrandom *r, uint32_t s) {
    r->mt[0] = s;
    for (int i = 1; i < MT_N; i++) r->mt[i] = 1812433253u * (r->mt[i - 1] ^ (r->mt[i - 1] >> 30)) + (uint32_t)i;
    r->idx = MT_N;
}

static void mt_init_by_array(nt_pyrandom *r, const uint32_t *key, int key_len) {
    mt_init_genrand(r, 19650218u);
    uint32_t *mt = r->mt;
    int i = 1, j = 0;
    for (int k = MT_N > key_len ? MT_N : key_len; k; k--) {
        mt[i] = (mt[i] ^ ((mt[i - 1] ^ (mt[i - 1] >> 30)) * 1664525u)) + key[j] + (uint32_t)j;
        i++, j++;
        if (i >= MT_N) mt[0] = mt[MT_N - 1], i = 1;
        if (j >= key_len) j = 0;
    }
    for (int k = MT_N - 1; k; k--) {
        mt[i] = (mt[i] ^ ((mt[i - 1] ^ (mt[i - 1] >> 30)) * 1566083941u)) - (uint32_t)i;
        i++;
        if (i >= MT_N) mt[0] = mt[MT_N - 1], i = 1;
    }
    mt[0] = 0x80000000u; // the all-zero state is impossible
}

static uint32_t mt_next(nt_pyrandom *r) {
    uint32_t *mt = r->mt;
    if (r->idx >= MT_N) {
        for (int k = 0; k < MT_N; k++) {
            uint32_t y = (mt[k] & 0x80000000u) | (mt[(k + 1) % MT_N] & 0x7fffffffu);
            mt[k] = mt[(k + MT_M) % MT_N] ^ (y >> 1) ^ ((y & 1u) ? 0x9908b0dfu : 0u);
        }
        r->idx = 0;
    }
    uint32_t y = mt[r->idx++];
    y ^= y >> 11;
    y ^= (y << 7) & 0x9d2c5680u;
    y ^= (y << 15) & 0xefc60000u;
    y ^= y >> 18;
    return y;
}

void nt_pyrandom_seed(nt_pyrandom *r, uint64_t seed) {
    // CPython: the key is the absolute value's 32-bit words, least significant first; 0 gives the key [0]
    uint32_t key[2] = {(uint32_t)seed, (uint32_t)(seed >> 32)};
    mt_init_by_array(r, key, key[1] ? 2 : 1);
}

double nt_pyrandom_random(nt_pyrandom *r) {
    uint32_t a = mt_next(r) >> 5, b = mt_next(r) >> 6;
    return ((double)a * 67108864.0 + (double)b) * (1.0 / 9007199254740992.0);
}

uint64_t nt_pyrandom_getrandbits(nt_pyrandom *r, int k) {
    NT_ASSERT(k >= 0 && k <= 64);
    if (k == 0) return 0;
    if (k <= 32) return mt_next(r) >> (32 - k);
    // wider: 32-bit words filled least significant first, the last one keeping its top bits
    uint64_t lo = mt_next(r);
    uint64_t hi = mt_next(r) >> (64 - k);
    return lo | (hi << 32);
}

static int bit_length(uint64_t n) {
    int k = 0;
    while (n) k++, n >>= 1;
    return k;
}

// _randbelow_with_getrandbits: k is the bit length of n itself (not n-1), then rejection
static uint64_t pyrandom_below(nt_pyrandom *r, uint64_t n) {
    int k = bit_length(n);
    uint64_t v = nt_pyrandom_getrandbits(r, k);
    while (v >= n) v = nt_pyrandom_getrandbits(r, k);
    return v;
}

int64_t nt_pyrandom_randint(nt_pyrandom *r, int64_t a, int64_t b) {
    NT_ASSERT(a <= b);
    uint64_t width = (uint64_t)b - (uint64_t)a + 1u;
    NT_ASSERT(width != 0); // the full 64-bit range needs 65 random bits
    return (int64_t)((uint64_t)a + pyrandom_below(r, width));
}

// ---------------------------------------------------------------------------------------------------------
// Growable byte buffer for the joined texts.

typedef struct {
    char *p;
    size_t n, cap;
} sbuf;

static int sbuf_put(sbuf *s, const char *src, size_t n) {
    if (s->n + n + 1 > s->cap) {
        size_t cap = s->cap ? s->cap : 4096;
        while (cap < s->n + n + 1) cap *= 2;
        char *p = realloc(s->p, cap);
        if (!p) return -1;
        s->p = p, s->cap = cap;
    }
    memcpy(s->p + s->n, src, n);
    s->n += n;
    s->p[s->n] = '\0';
    return 0;
}

// ---------------------------------------------------------------------------------------------------------
// Python str semantics on UTF-8 bytes (utf8.h). Invalid bytes are U+FFFD, never whitespace, so they are
// never stripped.

// str.strip(): narrows [*a, *b) of s past leading and trailing whitespace
static void py_strip(const char *s, size_t *a, size_t *b) {
    size_t i = *a, content_end = *a; // content_end: the end of the last non-space character seen
    bool leading = true;
    while (i < *b) {
        int32_t cp;
        size_t k = nt_utf8_next(s + i, *b - i, &cp);
        if (!nt_unicode_py_space(cp)) {
            if (leading) *a = i;
            leading = false;
            content_end = i + k;
        }
        i += k;
    }
    if (leading) *a = *b; // all whitespace
    else *b = content_end;
}

// Python's text-mode line iteration (universal newlines): "\r\n" and a lone "\r" become "\n". In place.
static size_t universal_newlines(char *s, size_t n) {
    size_t w = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '\r') {
            s[w++] = '\n';
            if (i + 1 < n && s[i + 1] == '\n') i++;
        } else {
            s[w++] = s[i];
        }
    }
    s[w] = '\0';
    return w;
}

// ---------------------------------------------------------------------------------------------------------
// The text tasks' joined strings.

typedef enum { ROWS_WIKITEXT, ROWS_STRIPPED } rows_kind;

// Joins the lines of path with sep. ROWS_WIKITEXT: each row keeps its "\n", a whitespace-only line is the empty
// row (HF `wikitext` script). ROWS_STRIPPED: each row is the line stripped (HF `ptb_text_only` script).
static int join_lines(const char *path, rows_kind kind, const char *sep, char **text, size_t *len, nt_err *err) {
    size_t n = 0;
    char *buf = nt_read_file(path, &n, err);
    if (!buf) return -1;
    if (n == 0) {
        free(buf);
        return nt_fail(err, "%s: empty dataset file", path);
    }
    n = universal_newlines(buf, n);
    sbuf out = {0};
    size_t seplen = strlen(sep), pos = 0;
    bool first = true, oom = sbuf_put(&out, "", 0) != 0; // allocated even if every row is empty
    while (pos < n && !oom) {
        const char *nl = memchr(buf + pos, '\n', n - pos);
        size_t end = nl ? (size_t)(nl - buf) + 1 : n; // the line with its "\n"
        size_t a = pos, b = end;
        py_strip(buf, &a, &b);
        if (!first) oom |= sbuf_put(&out, sep, seplen) != 0;
        first = false;
        if (kind == ROWS_STRIPPED)
            oom |= sbuf_put(&out, buf + a, b - a) != 0;
        else if (a < b)
            oom |= sbuf_put(&out, buf + pos, end - pos) != 0;
        pos = end;
    }
    free(buf);
    if (oom) {
        free(out.p);
        return nt_fail(err, "%s: out of memory joining lines", path);
    }
    *text = out.p, *len = out.n;
    return 0;
}

// Records of a JSONL file's `text` fields.
typedef struct {
    char **text;
    size_t *len;
    size_t n, cap, limit; // limit: stop after this many (0: all)
} doc_list;

static int doc_list_add(const cJSON *obj, size_t lineno, void *ctx, nt_err *err) {
    (void)lineno;
    doc_list *d = ctx;
    const cJSON *t = cJSON_IsObject(obj) ? cJSON_GetObjectItemCaseSensitive(obj, "text") : NULL;
    if (!t) return nt_fail(err, "missing \"text\" field");
    if (!cJSON_IsString(t) || !t->valuestring) return nt_fail(err, "\"text\" is not a string");
    if (d->n == d->cap) {
        size_t cap = d->cap ? 2 * d->cap : 1024;
        char **tx = realloc(d->text, cap * sizeof(*tx));
        if (tx) d->text = tx;
        size_t *ln = tx ? realloc(d->len, cap * sizeof(*ln)) : NULL;
        if (ln) d->len = ln;
        if (!tx || !ln) return nt_fail(err, "out of memory");
        d->cap = cap;
    }
    size_t n = strlen(t->valuestring);
    char *s = malloc(n + 1);
    if (!s) return nt_fail(err, "out of memory");
    memcpy(s, t->valuestring, n + 1);
    d->text[d->n] = s, d->len[d->n] = n;
    d->n++;
    return d->limit && d->n >= d->limit ? 1 : 0;
}

static void doc_list_free(doc_list *d) {
    for (size_t i = 0; i < d->n; i++) free(d->text[i]);
    free(d->text);
    free(d->len);
    memset(d, 0, sizeof(*d));
}

static int doc_list_load(const char *path, size_t limit, doc_list *d, nt_err *err) {
    memset(d, 0, sizeof(*d));
    d->limit = limit;
    if (nt_jsonl_foreach(path, doc_list_add, d, NULL, err) != 0) {
        doc_list_free(d);
        return -1;
    }
    return 0;
}

// ---------------------------------------------------------------------------------------------------------
// Tasks.

typedef enum { TASK_NONE, TASK_WIKITEXT2, TASK_PTB, TASK_PTB_NEW, TASK_C4, TASK_C4_NEW, TASK_FILE } task_id;

static const char *const C4_VAL_FILE = "c4/c4_validation_2k.jsonl";
static const char *const C4_TRAIN_FILE = "c4/c4-train.00000-of-01024.first1000.jsonl";
enum { C4_NEW_DOCS = 1100, C4_WINDOWS = 256 };

static task_id task_of(const char *task) {
    if (!task || !*task) return TASK_NONE;
    if (strcmp(task, "wikitext2") == 0) return TASK_WIKITEXT2;
    if (strcmp(task, "ptb") == 0) return TASK_PTB;
    if (strcmp(task, "ptb-new") == 0) return TASK_PTB_NEW;
    if (strcmp(task, "c4") == 0) return TASK_C4;
    if (strcmp(task, "c4-new") == 0) return TASK_C4_NEW;
    size_t n = strlen(task);
    if (strchr(task, '/') || (n > 4 && strcmp(task + n - 4, ".txt") == 0)) return TASK_FILE;
    return TASK_NONE;
}

bool nt_ppl_task_known(const char *task) { return task_of(task) != TASK_NONE; }

const char *nt_ppl_task_file(const char *task) {
    switch (task_of(task)) {
    case TASK_WIKITEXT2: return "wikitext2/wiki.test.raw";
    case TASK_PTB: return "ptb/ptb.valid.txt";
    case TASK_PTB_NEW: return "ptb/ptb.test.txt";
    case TASK_C4:
    case TASK_C4_NEW: return C4_VAL_FILE;
    case TASK_FILE: return task;
    case TASK_NONE: break;
    }
    return NULL;
}

static int unknown_task(const char *task, nt_err *err) {
    return nt_fail(err, "unknown perplexity task '%s' (expected wikitext2, ptb, ptb-new, c4, c4-new or a .txt file)",
                   task ? task : "");
}

// The path a task reads: data_dir/<file>, or the task itself for a text file. malloc'd.
static char *task_path(task_id id, const char *task, const char *data_dir) {
    if (id == TASK_FILE) return strdup(task);
    return nt_path_join(data_dir ? data_dir : ".", nt_ppl_task_file(task));
}

static int read_text_file(const char *path, char **text, size_t *len, nt_err *err) {
    char *buf = nt_read_file(path, len, err);
    if (!buf) return -1;
    if (*len == 0) {
        free(buf);
        return nt_fail(err, "%s: empty dataset file", path);
    }
    *text = buf;
    return 0;
}

static int join_docs(const char *path, size_t limit, const char *sep, char **text, size_t *len, nt_err *err) {
    doc_list d;
    if (doc_list_load(path, limit, &d, err) != 0) return -1;
    sbuf out = {0};
    bool oom = sbuf_put(&out, "", 0) != 0; // allocated even if every document is empty
    for (size_t i = 0; i < d.n && !oom; i++) {
        if (i) oom |= sbuf_put(&out, sep, strlen(sep)) != 0;
        oom |= sbuf_put(&out, d.text[i], d.len[i]) != 0;
    }
    doc_list_free(&d);
    if (oom) {
        free(out.p);
        return nt_fail(err, "%s: out of memory joining documents", path);
    }
    *text = out.p, *len = out.n;
    return 0;
}

static int task_text(task_id id, const char *path, char **text, size_t *len, nt_err *err) {
    switch (id) {
    case TASK_WIKITEXT2: return join_lines(path, ROWS_WIKITEXT, "\n\n", text, len, err);
    case TASK_PTB: return join_lines(path, ROWS_STRIPPED, "\n\n", text, len, err);
    case TASK_PTB_NEW: return join_lines(path, ROWS_STRIPPED, " ", text, len, err);
    case TASK_C4_NEW: return join_docs(path, C4_NEW_DOCS, " ", text, len, err);
    case TASK_FILE: return read_text_file(path, text, len, err);
    default: break;
    }
    NT_ASSERT(0 && "task_text: not a text task");
    return -1;
}

int nt_ppl_text(const char *task, const char *data_dir, char **text, size_t *len, nt_err *err) {
    *text = NULL, *len = 0;
    task_id id = task_of(task);
    if (id == TASK_NONE) return unknown_task(task, err);
    if (id == TASK_C4)
        return nt_fail(err, "c4: perplexity task has no single text (it draws 256 random document slices)");
    char *path = task_path(id, task, data_dir);
    if (!path) return nt_fail(err, "%s: out of memory", task);
    int rc = task_text(id, path, text, len, err);
    free(path);
    return rc;
}

// ---------------------------------------------------------------------------------------------------------
// Windows.

void nt_windows_free(nt_windows *w) {
    if (!w) return;
    free(w->ids);
    memset(w, 0, sizeof(*w));
}

static int windows_alloc(nt_windows *out, size_t n_windows, size_t seqlen, const char *path, nt_err *err) {
    memset(out, 0, sizeof(*out));
    out->ids = malloc(n_windows * seqlen * sizeof(int32_t));
    if (!out->ids) return nt_fail(err, "%s: out of memory for %zu windows of %zu tokens", path, n_windows, seqlen);
    out->n_windows = n_windows, out->seqlen = seqlen;
    return 0;
}

static int tokenize(const nt_tokenizer *tok, const char *path, const char *text, size_t len, int32_t **ids,
                    size_t *n, nt_err *err) {
    nt_err e = {0};
    if (nt_tokenizer_encode(tok, text, len, true, ids, n, &e) != 0)
        return nt_fail(err, "%s: tokenizing failed: %s", path, e.msg);
    return 0;
}

// A text tokenized once and cut into floor(n/seqlen) windows (max_tokens: keep only that many first; 0: all).
static int text_windows(const char *path, const char *text, size_t len, const nt_tokenizer *tok, size_t seqlen,
                        size_t max_tokens, nt_windows *out, nt_err *err) {
    int32_t *ids = NULL;
    size_t n = 0;
    if (tokenize(tok, path, text, len, &ids, &n, err) != 0) return -1;
    size_t used = max_tokens && n > max_tokens ? max_tokens : n;
    if (used < seqlen) {
        free(ids);
        return nt_fail(err, "%s: only %zu tokens, fewer than one window of %zu", path, used, seqlen);
    }
    if (windows_alloc(out, used / seqlen, seqlen, path, err) != 0) {
        free(ids);
        return -1;
    }
    memcpy(out->ids, ids, out->n_windows * seqlen * sizeof(int32_t));
    out->n_tokens = n;
    free(ids);
    return 0;
}

// GPTQ's get_c4 loop over one JSONL file (see datasets.h). Each document is tokenized at most once.
int nt_doc_windows(const char *jsonl_path, const nt_tokenizer *tok, size_t n_samples, size_t seqlen, uint64_t seed,
                   nt_windows *out, nt_doc_pick *picks, nt_err *err) {
    memset(out, 0, sizeof(*out));
    if (seqlen == 0) return nt_fail(err, "%s: seqlen must be positive", jsonl_path);
    if (n_samples == 0) return nt_fail(err, "%s: no samples requested", jsonl_path);
    doc_list d;
    if (doc_list_load(jsonl_path, 0, &d, err) != 0) return -1;
    int32_t **cache = calloc(d.n, sizeof(*cache));
    size_t *cache_n = calloc(d.n, sizeof(*cache_n));
    int rc = (cache && cache_n) ? windows_alloc(out, n_samples, seqlen, jsonl_path, err)
                                : nt_fail(err, "%s: out of memory", jsonl_path);
    size_t n_tokenized = 0, n_long = 0;
    nt_pyrandom rng;
    nt_pyrandom_seed(&rng, seed);
    for (size_t s = 0; s < n_samples && rc == 0; s++) {
        size_t doc = 0;
        for (;;) {
            doc = (size_t)nt_pyrandom_randint(&rng, 0, (int64_t)d.n - 1);
            if (!cache[doc]) {
                if (tokenize(tok, jsonl_path, d.text[doc], d.len[doc], &cache[doc], &cache_n[doc], err) != 0) {
                    rc = -1;
                    break;
                }
                if (!cache[doc]) cache[doc] = malloc(sizeof(int32_t)); // mark "done" even for zero tokens
                if (!cache[doc]) {
                    rc = nt_fail(err, "%s: out of memory", jsonl_path);
                    break;
                }
                n_tokenized++;
                if (cache_n[doc] > seqlen) n_long++;
            }
            // GPTQ: `>= seqlen`, then randint(0, n - seqlen - 1) raises when n == seqlen; redraw instead
            if (cache_n[doc] > seqlen) break;
            if (n_tokenized == d.n && n_long == 0) {
                rc = nt_fail(err, "%s: no document has more than %zu tokens", jsonl_path, seqlen);
                break;
            }
        }
        if (rc != 0) break;
        size_t start = (size_t)nt_pyrandom_randint(&rng, 0, (int64_t)(cache_n[doc] - seqlen - 1));
        memcpy(out->ids + s * seqlen, cache[doc] + start, seqlen * sizeof(int32_t));
        if (picks) picks[s].doc = doc, picks[s].start = start;
    }
    if (rc == 0) out->n_tokens = n_samples * seqlen;
    else nt_windows_free(out);
    for (size_t i = 0; cache && i < d.n; i++) free(cache[i]);
    free(cache);
    free(cache_n);
    doc_list_free(&d);
    return rc;
}

int nt_ppl_c4_windows(const char *data_dir, const nt_tokenizer *tok, size_t seqlen, nt_windows *out,
                      nt_doc_pick *picks, nt_err *err) {
    memset(out, 0, sizeof(*out));
    char *path = nt_path_join(data_dir ? data_dir : ".", C4_VAL_FILE);
    if (!path) return nt_fail(err, "c4: out of memory");
    int rc = nt_doc_windows(path, tok, C4_WINDOWS, seqlen, 0, out, picks, err);
    free(path);
    return rc;
}

int nt_ppl_windows(const char *task, const char *data_dir, const nt_tokenizer *tok, size_t seqlen, nt_windows *out,
                   nt_err *err) {
    memset(out, 0, sizeof(*out));
    task_id id = task_of(task);
    if (id == TASK_NONE) return unknown_task(task, err);
    if (seqlen == 0) return nt_fail(err, "%s: seqlen must be positive", task);
    if (id == TASK_C4) return nt_ppl_c4_windows(data_dir, tok, seqlen, out, NULL, err);
    char *path = task_path(id, task, data_dir);
    if (!path) return nt_fail(err, "%s: out of memory", task);
    char *text = NULL;
    size_t len = 0;
    int rc = task_text(id, path, &text, &len, err);
    if (rc == 0) rc = text_windows(path, text, len, tok, seqlen, id == TASK_C4_NEW ? C4_WINDOWS * seqlen : 0, out, err);
    free(text);
    free(path);
    return rc;
}

// ---------------------------------------------------------------------------------------------------------
// Calibration.

// GPTQ's trainloader for one joined text: tokenize once, then per sample start = randint(0, n - seqlen - 1).
static int text_samples(const char *path, const char *text, size_t len, const nt_tokenizer *tok, size_t n_samples,
                        size_t seqlen, uint64_t seed, nt_windows *out, nt_err *err) {
    int32_t *ids = NULL;
    size_t n = 0;
    if (tokenize(tok, path, text, len, &ids, &n, err) != 0) return -1;
    if (n <= seqlen) {
        free(ids);
        return nt_fail(err, "%s: only %zu tokens, need more than %zu for a calibration slice", path, n, seqlen);
    }
    if (windows_alloc(out, n_samples, seqlen, path, err) != 0) {
        free(ids);
        return -1;
    }
    nt_pyrandom rng;
    nt_pyrandom_seed(&rng, seed);
    for (size_t s = 0; s < n_samples; s++) {
        size_t start = (size_t)nt_pyrandom_randint(&rng, 0, (int64_t)(n - seqlen - 1));
        memcpy(out->ids + s * seqlen, ids + start, seqlen * sizeof(int32_t));
    }
    out->n_tokens = n;
    free(ids);
    return 0;
}

int nt_calib_windows(const char *source, const char *data_dir, const nt_tokenizer *tok, size_t n_samples,
                     size_t seqlen, uint64_t seed, nt_windows *out, nt_err *err) {
    memset(out, 0, sizeof(*out));
    if (!source || !*source) return nt_fail(err, "calibration source is empty");
    if (seqlen == 0 || n_samples == 0) return nt_fail(err, "%s: calibration needs seqlen > 0 and samples > 0", source);
    const char *dir = data_dir ? data_dir : ".";
    if (strcmp(source, "wikitext2") == 0)
        return nt_fail(err, "wikitext2: the WikiText-2 train split is not in %s/wikitext2 (only wiki.test.raw); "
                            "calibrate on c4 or ptb", dir);
    bool is_c4 = strcmp(source, "c4") == 0 || strcmp(source, "c4-new") == 0;
    bool is_ptb = strcmp(source, "ptb") == 0, is_ptb_new = strcmp(source, "ptb-new") == 0;
    if (!is_c4 && !is_ptb && !is_ptb_new && task_of(source) != TASK_FILE)
        return nt_fail(err, "unknown calibration source '%s' (expected c4, ptb, ptb-new or a .txt file)", source);
    char *path = is_c4 ? nt_path_join(dir, C4_TRAIN_FILE)
                       : (is_ptb || is_ptb_new) ? nt_path_join(dir, "ptb/ptb.train.txt") : strdup(source);
    if (!path) return nt_fail(err, "%s: out of memory", source);
    int rc;
    if (is_c4) {
        rc = nt_doc_windows(path, tok, n_samples, seqlen, seed, out, NULL, err);
    } else {
        char *text = NULL;
        size_t len = 0;
        rc = is_ptb ? join_lines(path, ROWS_STRIPPED, "\n\n", &text, &len, err)
           : is_ptb_new ? join_lines(path, ROWS_STRIPPED, " ", &text, &len, err)
                        : read_text_file(path, &text, &len, err);
        if (rc == 0) rc = text_samples(path, text, len, tok, n_samples, seqlen, seed, out, err);
        free(text);
    }
    free(path);
    return rc;
}
