// tokenizer.c: Hugging Face `tokenizers` BPE in C (see tokenizer.h), the reference and only version.
// The pipeline follows HF's: added tokens are cut out of the raw text first (special and non-normalized
// ones), the rest is normalized (Prepend/Replace, NFC/NFD/NFKC/NFKD through utf8proc) and cut again on
// normalized added tokens, pre-tokenized (ByteLevel with the GPT-2 regex, Split regex, Digits, Metaspace),
// each piece goes through BPE (rank-ordered merges with a heap, byte fallback, unk), and the post-processor
// adds BOS/EOS. Regexes are PCRE2 with UTF+UCP (HF uses Oniguruma; the patterns in tokenizer.json files mean
// the same in both), and Digits is the regex \p{N} (Rust's char::is_numeric: Nd, Nl, No). UTF-8 decoding and
// Unicode properties come from utf8proc (utf8.h). JSON is cJSON.
// Speed: open-addressing hash maps for the vocabulary and the merge ranks, and a per-call cache of the
// words already encoded (a call does not write to the tokenizer, so one tokenizer serves many threads).
// Not supported (load fails with a message): Unigram/WordPiece/WordLevel models, BPE dropout, normalizers
// other than Prepend/Replace/NFC/NFD/NFKC/NFKD, pre-tokenizers other than ByteLevel/Split/Digits/Metaspace.
// Unicode tables: PCRE2's and utf8proc's versions, not HF's; they differ only on characters added to Unicode
// since (none in the evaluation data).
#define _POSIX_C_SOURCE 200809L
#define PCRE2_CODE_UNIT_WIDTH 8
#include "tokenizer.h"

#include <cjson/cJSON.h>
#include <pcre2.h>
#include <string.h>

#include "utf8.h"

// ---------------------------------------------------------------------------------------------------
// Growable buffers

typedef struct {
    char *v;
    size_t n, cap;
} sbuf;

typedef struct {
    int32_t *v;
    size_t n, cap;
} ivec;

static int sbuf_reserve(sbuf *b, size_t extra) {
    if (b->n + extra + 1 <= b->cap) return 0;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < b->n + extra + 1) cap *= 2;
    char *v = realloc(b->v, cap);
    if (!v) return -1;
    b->v = v;
    b->cap = cap;
    return 0;
}

static int sbuf_add(sbuf *b, const char *s, size_t n) {
    if (sbuf_reserve(b, n)) return -1;
    if (n) memcpy(b->v + b->n, s, n);
    b->n += n;
    b->v[b->n] = '\0';
    return 0;
}

static int ivec_push(ivec *a, int32_t x) {
    if (a->n == a->cap) {
        size_t cap = a->cap ? 2 * a->cap : 64;
        int32_t *v = realloc(a->v, cap * sizeof(*v));
        if (!v) return -1;
        a->v = v;
        a->cap = cap;
    }
    a->v[a->n++] = x;
    return 0;
}

static char *mem_dup(const char *s, size_t n) {
    char *p = malloc(n + 1);
    if (!p) return NULL;
    if (n) memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

// ---------------------------------------------------------------------------------------------------
// String -> int32 hash map (open addressing, linear probing). Keys are copied, NUL-terminated, into an
// arena, so an entry's key doubles as the vocabulary string of an id.

typedef struct {
    uint32_t off, len, hash;
    int32_t val;
} sm_entry;

typedef struct {
    char *arena;
    size_t arena_len, arena_cap;
    sm_entry *e;
    size_t n, e_cap;
    int32_t *slot; // entry index, -1 when empty; capacity mask+1 is a power of two
    size_t mask;
} str_map;

static uint32_t hash_bytes(const char *s, size_t n) {
    uint32_t h = 2166136261u; // FNV-1a
    for (size_t i = 0; i < n; i++) h = (h ^ (uint8_t)s[i]) * 16777619u;
    return h;
}

static void sm_free(str_map *m) {
    free(m->arena);
    free(m->e);
    free(m->slot);
    memset(m, 0, sizeof(*m));
}

static int sm_rehash(str_map *m, size_t cap) {
    int32_t *slot = malloc(cap * sizeof(*slot));
    if (!slot) return -1;
    for (size_t i = 0; i < cap; i++) slot[i] = -1;
    for (size_t k = 0; k < m->n; k++) {
        size_t i = m->e[k].hash & (cap - 1);
        while (slot[i] >= 0) i = (i + 1) & (cap - 1);
        slot[i] = (int32_t)k;
    }
    free(m->slot);
    m->slot = slot;
    m->mask = cap - 1;
    return 0;
}

static int32_t sm_find_h(const str_map *m, const char *k, size_t n, uint32_t h) {
    if (!m->slot) return -1;
    for (size_t i = h & m->mask;; i = (i + 1) & m->mask) {
        int32_t x = m->slot[i];
        if (x < 0) return -1;
        const sm_entry *e = &m->e[x];
        if (e->hash == h && e->len == n && memcmp(m->arena + e->off, k, n) == 0) return x;
    }
}

// The value stored for key k, or -1.
static int32_t sm_get(const str_map *m, const char *k, size_t n) {
    int32_t x = sm_find_h(m, k, n, hash_bytes(k, n));
    return x < 0 ? -1 : m->e[x].val;
}

// Inserts k (or overwrites its value); returns the entry index, or -1 when out of memory.
static int32_t sm_put(str_map *m, const char *k, size_t n, int32_t val) {
    uint32_t h = hash_bytes(k, n);
    int32_t x = sm_find_h(m, k, n, h);
    if (x >= 0) {
        m->e[x].val = val;
        return x;
    }
    if (!m->slot || 2 * (m->n + 1) > m->mask + 1)
        if (sm_rehash(m, m->slot ? 2 * (m->mask + 1) : 1024)) return -1;
    if (m->n == m->e_cap) {
        size_t cap = m->e_cap ? 2 * m->e_cap : 256;
        sm_entry *e = realloc(m->e, cap * sizeof(*e));
        if (!e) return -1;
        m->e = e;
        m->e_cap = cap;
    }
    if (m->arena_len + n + 1 > m->arena_cap || m->arena_len + n + 1 > UINT32_MAX) {
        size_t cap = m->arena_cap ? m->arena_cap : 4096;
        while (cap < m->arena_len + n + 1) cap *= 2;
        if (cap > UINT32_MAX) return -1;
        char *a = realloc(m->arena, cap);
        if (!a) return -1;
        m->arena = a;
        m->arena_cap = cap;
    }
    memcpy(m->arena + m->arena_len, k, n);
    m->arena[m->arena_len + n] = '\0';
    m->e[m->n] = (sm_entry){(uint32_t)m->arena_len, (uint32_t)n, h, val};
    m->arena_len += n + 1;
    size_t i = h & m->mask;
    while (m->slot[i] >= 0) i = (i + 1) & m->mask;
    m->slot[i] = (int32_t)m->n;
    return (int32_t)m->n++;
}

// ---------------------------------------------------------------------------------------------------
// (left id, right id) -> (rank, merged id) hash map.

typedef struct {
    uint64_t *key; // UINT64_MAX when empty
    int32_t *rank, *new_id;
    size_t n, mask;
} merge_map;

static size_t merge_slot(uint64_t key, size_t mask) { return (size_t)((key * 0x9E3779B97F4A7C15ull) >> 20) & mask; }

static void mm_free(merge_map *m) {
    free(m->key);
    free(m->rank);
    free(m->new_id);
    memset(m, 0, sizeof(*m));
}

static int mm_init(merge_map *m, size_t n_expected) {
    size_t cap = 1024;
    while (cap < 2 * n_expected + 2) cap *= 2;
    m->key = malloc(cap * sizeof(*m->key));
    m->rank = malloc(cap * sizeof(*m->rank));
    m->new_id = malloc(cap * sizeof(*m->new_id));
    if (!m->key || !m->rank || !m->new_id) return -1;
    for (size_t i = 0; i < cap; i++) m->key[i] = UINT64_MAX;
    m->mask = cap - 1;
    m->n = 0;
    return 0;
}

// Later merges of the same pair overwrite earlier ones, as HF's HashMap insert does. The table is sized
// for all merges up front (mm_init), so it never fills.
static void mm_put(merge_map *m, int32_t a, int32_t b, int32_t rank, int32_t new_id) {
    uint64_t key = ((uint64_t)(uint32_t)a << 32) | (uint32_t)b;
    size_t i = merge_slot(key, m->mask);
    while (m->key[i] != UINT64_MAX && m->key[i] != key) i = (i + 1) & m->mask;
    if (m->key[i] == UINT64_MAX) m->n++;
    NT_ASSERT(2 * m->n <= m->mask + 1);
    m->key[i] = key;
    m->rank[i] = rank;
    m->new_id[i] = new_id;
}

static bool mm_get(const merge_map *m, int32_t a, int32_t b, int32_t *rank, int32_t *new_id) {
    if (!m->key) return false;
    uint64_t key = ((uint64_t)(uint32_t)a << 32) | (uint32_t)b;
    for (size_t i = merge_slot(key, m->mask);; i = (i + 1) & m->mask) {
        if (m->key[i] == UINT64_MAX) return false;
        if (m->key[i] == key) {
            *rank = m->rank[i];
            *new_id = m->new_id[i];
            return true;
        }
    }
}

// ---------------------------------------------------------------------------------------------------
// UTF-8 (utf8.h, through utf8proc)

// Length of the character at s (n > 0 bytes left); the maximal invalid subpart for invalid bytes.
static size_t utf8_len(const char *s, size_t n) {
    int32_t cp;
    return nt_utf8_next(s, n, &cp);
}

// The code point of the character at s (-1 when invalid); *k gets its length.
static int32_t utf8_cp(const char *s, size_t n, size_t *k) {
    int32_t cp;
    *k = nt_utf8_next(s, n, &cp);
    return cp;
}

// Appends s to out with every maximal invalid subpart replaced by U+FFFD.
static int utf8_lossy(sbuf *out, const char *s, size_t n) {
    size_t m;
    char *clean = nt_utf8_lossy(s, n, &m);
    int rc = clean ? sbuf_add(out, clean, m) : -1;
    free(clean);
    return rc;
}

// ---------------------------------------------------------------------------------------------------
// The tokenizer

enum { SPLIT_REMOVED, SPLIT_ISOLATED, SPLIT_MERGED_PREV, SPLIT_MERGED_NEXT, SPLIT_CONTIGUOUS };
enum { PREPEND_ALWAYS, PREPEND_FIRST, PREPEND_NEVER };

typedef enum { PT_PREFIX_SPACE, PT_SPLIT, PT_BYTEMAP, PT_METASPACE } pt_kind;
typedef struct {
    pt_kind kind;
    pcre2_code *re; // PT_SPLIT
    int behavior;
    bool invert;
    char rep[8]; // PT_METASPACE: the replacement character, UTF-8
    size_t rep_len;
    int scheme;
    bool split;
} pretok_step;

typedef enum { NM_PREPEND, NM_REPLACE, NM_UNICODE } nm_kind;
typedef struct {
    nm_kind kind;
    nt_unorm form; // NM_UNICODE: NFC, NFD, NFKC or NFKD
    char *a, *b; // prepend: a; replace: pattern a (literal, or re) -> b
    size_t a_len, b_len;
    pcre2_code *re;
} norm_step;

typedef enum { DC_BYTELEVEL, DC_REPLACE, DC_BYTEFALLBACK, DC_FUSE, DC_STRIP, DC_METASPACE, DC_BPE_SUFFIX } dc_kind;
typedef struct {
    dc_kind kind;
    char *a, *b; // replace: a -> b (or re -> b); metaspace: a = replacement; bpe suffix: a
    size_t a_len, b_len;
    pcre2_code *re;
    int32_t ch; // strip: the character
    int start, stop, scheme;
} dec_step;

typedef struct {
    char *content; // as written in the file
    char *pattern; // what is matched: content, or normalized content when normalized
    size_t len, pat_len;
    int32_t id;
    bool single_word, lstrip, rstrip, normalized, special;
} added_token;

struct nt_tokenizer {
    char *path; // for messages
    str_map vocab;      // model vocabulary: piece -> id
    int32_t *id_vocab;  // (n_ids) id -> vocab entry index, -1 for none
    int32_t *id_added;  // (n_ids) id -> added token index, -1 for none
    int32_t n_ids;      // largest id + 1
    merge_map merges;
    bool byte_fallback, fuse_unk, ignore_merges;
    char *unk_token;     // NULL for none
    int32_t unk_id;      // -1 when unk_token is NULL or not in the vocabulary
    char *cont_prefix;   // continuing_subword_prefix, NULL for none
    char *eow_suffix;    // end_of_word_suffix, NULL for none
    int32_t byte_id[256]; // the ids of "<0xXX>" for byte fallback, -1 when absent
    norm_step *norm;
    int n_norm;
    pretok_step *pre;
    int n_pre;
    dec_step *dec;
    int n_dec;
    bool has_decoder;
    added_token *added;
    int n_added;
    bool any_raw_added, any_norm_added; // added tokens matched before / after normalization
    pcre2_code *word_re;                // \w for single_word added tokens (NULL when none has it)
    ivec prefix, suffix;                // post-processor: ids before and after the sequence
    int32_t bos, eos;
    char bl_enc[256][3];   // byte-level: byte -> its printable character, UTF-8
    uint8_t bl_enc_len[256];
    int16_t bl_dec[512];   // byte-level: code point (< 512) -> byte, -1 for none
};

static const char *GPT2_PATTERN =
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";

// GPT-2's map of bytes to printable characters: printable Latin-1 bytes map to themselves, the rest to
// 256, 257, ... in byte order.
static void bytelevel_init(nt_tokenizer *t) {
    for (int i = 0; i < 512; i++) t->bl_dec[i] = -1;
    uint32_t next = 256;
    for (int b = 0; b < 256; b++) {
        bool keep = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
        uint32_t cp = keep ? (uint32_t)b : next++;
        t->bl_enc_len[b] = (uint8_t)nt_utf8_encode((int32_t)cp, t->bl_enc[b]);
        t->bl_dec[cp] = (int16_t)b;
    }
}

static pcre2_code *regex_compile(const char *pat, size_t len, bool literal, char *why, size_t why_len) {
    int code;
    PCRE2_SIZE off;
    uint32_t opts = PCRE2_UTF | PCRE2_UCP | (literal ? PCRE2_LITERAL : 0);
    pcre2_code *re = pcre2_compile((PCRE2_SPTR)pat, len, opts, &code, &off, NULL);
    if (!re) {
        char msg[256];
        pcre2_get_error_message(code, (PCRE2_UCHAR *)msg, sizeof(msg));
        snprintf(why, why_len, "bad regex at offset %zu: %s", (size_t)off, msg);
        return NULL;
    }
    pcre2_jit_compile(re, PCRE2_JIT_COMPLETE); // optional: without JIT the interpreter runs
    return re;
}

void nt_tokenizer_free(nt_tokenizer **tok) {
    if (!tok || !*tok) return;
    nt_tokenizer *t = *tok;
    free(t->path);
    sm_free(&t->vocab);
    free(t->id_vocab);
    free(t->id_added);
    mm_free(&t->merges);
    free(t->unk_token);
    free(t->cont_prefix);
    free(t->eow_suffix);
    for (int i = 0; i < t->n_norm; i++) {
        free(t->norm[i].a);
        free(t->norm[i].b);
        pcre2_code_free(t->norm[i].re);
    }
    free(t->norm);
    for (int i = 0; i < t->n_pre; i++) pcre2_code_free(t->pre[i].re);
    free(t->pre);
    for (int i = 0; i < t->n_dec; i++) {
        free(t->dec[i].a);
        free(t->dec[i].b);
        pcre2_code_free(t->dec[i].re);
    }
    free(t->dec);
    for (int i = 0; i < t->n_added; i++) {
        free(t->added[i].content);
        free(t->added[i].pattern);
    }
    free(t->added);
    pcre2_code_free(t->word_re);
    free(t->prefix.v);
    free(t->suffix.v);
    free(t);
    *tok = NULL;
}

static nt_tokenizer *tok_new(const char *path) {
    nt_tokenizer *t = calloc(1, sizeof(*t));
    if (!t) return NULL;
    t->path = mem_dup(path, strlen(path));
    if (!t->path) {
        free(t);
        return NULL;
    }
    t->unk_id = t->bos = t->eos = -1;
    for (int i = 0; i < 256; i++) t->byte_id[i] = -1;
    bytelevel_init(t);
    return t;
}

// ---------------------------------------------------------------------------------------------------
// Loading: vocabulary, merges, added tokens

// The id of a string: an added token's, else the model vocabulary's, else -1.
static int32_t token_to_id(const nt_tokenizer *t, const char *s) {
    size_t n = strlen(s);
    for (int i = 0; i < t->n_added; i++)
        if (t->added[i].len == n && memcmp(t->added[i].content, s, n) == 0) return t->added[i].id;
    return sm_get(&t->vocab, s, n);
}

static int vocab_add(nt_tokenizer *t, const char *s, size_t n, int32_t id, nt_err *err) {
    if (id < 0) return nt_fail(err, "%s: negative id %d for token '%s'", t->path, (int)id, s);
    if (sm_put(&t->vocab, s, n, id) < 0) return nt_fail(err, "%s: out of memory", t->path);
    if (id >= t->n_ids) t->n_ids = id + 1;
    return 0;
}

// Builds the id tables once the vocabulary and the added tokens are known.
static int finish_ids(nt_tokenizer *t, nt_err *err) {
    free(t->id_vocab);
    free(t->id_added);
    size_t n = (size_t)(t->n_ids > 0 ? t->n_ids : 1);
    t->id_vocab = malloc(n * sizeof(int32_t));
    t->id_added = malloc(n * sizeof(int32_t));
    if (!t->id_vocab || !t->id_added) return nt_fail(err, "%s: out of memory", t->path);
    for (size_t i = 0; i < n; i++) t->id_vocab[i] = t->id_added[i] = -1;
    for (size_t k = 0; k < t->vocab.n; k++) t->id_vocab[t->vocab.e[k].val] = (int32_t)k;
    for (int i = 0; i < t->n_added; i++) t->id_added[t->added[i].id] = i;
    for (int b = 0; b < 256; b++) {
        char name[8];
        snprintf(name, sizeof(name), "<0x%02X>", b);
        t->byte_id[b] = sm_get(&t->vocab, name, 6);
    }
    t->unk_id = t->unk_token ? sm_get(&t->vocab, t->unk_token, strlen(t->unk_token)) : -1;
    return 0;
}

static int merge_add(nt_tokenizer *t, const char *file, const char *a, size_t na, const char *b, size_t nb,
                     int32_t rank, sbuf *tmp, nt_err *err) {
    int32_t ia = sm_get(&t->vocab, a, na), ib = sm_get(&t->vocab, b, nb);
    if (ia < 0 || ib < 0)
        return nt_fail(err, "%s: merge %d: token '%.*s' is not in the vocabulary", file, (int)rank + 1,
                       (int)(ia < 0 ? na : nb), ia < 0 ? a : b);
    size_t skip = t->cont_prefix ? strlen(t->cont_prefix) : 0;
    if (skip > nb) skip = nb;
    tmp->n = 0;
    if (sbuf_add(tmp, a, na) || sbuf_add(tmp, b + skip, nb - skip)) return nt_fail(err, "%s: out of memory", file);
    int32_t inew = sm_get(&t->vocab, tmp->v, tmp->n);
    if (inew < 0)
        return nt_fail(err, "%s: merge %d: '%s' is not in the vocabulary", file, (int)rank + 1, tmp->v);
    mm_put(&t->merges, ia, ib, rank, inew);
    return 0;
}

// Merges from tokenizer.json: "a b" strings or ["a", "b"] pairs.
static int merges_from_json(nt_tokenizer *t, const cJSON *arr, nt_err *err) {
    if (!cJSON_IsArray(arr)) return nt_fail(err, "%s: model.merges is not a list", t->path);
    if (mm_init(&t->merges, (size_t)cJSON_GetArraySize(arr))) return nt_fail(err, "%s: out of memory", t->path);
    sbuf tmp = {0};
    int32_t rank = 0, rc = 0;
    for (const cJSON *m = arr->child; m && !rc; m = m->next, rank++) {
        if (cJSON_IsString(m)) {
            const char *s = m->valuestring, *sp = strchr(s, ' ');
            if (!sp || strchr(sp + 1, ' '))
                rc = nt_fail(err, "%s: merge %d: '%s' is not two tokens separated by a space", t->path,
                             (int)rank + 1, s);
            else
                rc = merge_add(t, t->path, s, (size_t)(sp - s), sp + 1, strlen(sp + 1), rank, &tmp, err);
        } else if (cJSON_IsArray(m) && cJSON_GetArraySize(m) == 2 && cJSON_IsString(m->child) &&
                   cJSON_IsString(m->child->next)) {
            const char *a = m->child->valuestring, *b = m->child->next->valuestring;
            rc = merge_add(t, t->path, a, strlen(a), b, strlen(b), rank, &tmp, err);
        } else {
            rc = nt_fail(err, "%s: merge %d is neither a string nor a pair of strings", t->path, (int)rank + 1);
        }
    }
    free(tmp.v);
    return rc;
}

static int vocab_from_json(nt_tokenizer *t, const cJSON *obj, const char *what, nt_err *err) {
    if (!cJSON_IsObject(obj)) return nt_fail(err, "%s: %s is not an object", t->path, what);
    for (const cJSON *v = obj->child; v; v = v->next) {
        if (!cJSON_IsNumber(v)) return nt_fail(err, "%s: %s: id of '%s' is not a number", t->path, what, v->string);
        if (vocab_add(t, v->string, strlen(v->string), (int32_t)v->valuedouble, err)) return -1;
    }
    return 0;
}

// A string option, or NULL when absent or null.
static const char *json_str(const cJSON *o, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

static bool json_bool(const cJSON *o, const char *key, bool dflt) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsBool(v) ? cJSON_IsTrue(v) : dflt;
}

// A token in tokenizer_config.json: "text" or {"content": "text", ...}.
static const char *config_token(const cJSON *cfg, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(cfg, key);
    if (cJSON_IsString(v)) return v->valuestring;
    if (cJSON_IsObject(v)) return json_str(v, "content");
    return NULL;
}

// Adds (or updates) an added token. As HF does, a token already in the model vocabulary keeps that id.
static int added_add(nt_tokenizer *t, const char *content, int32_t id, bool special, bool normalized, bool lstrip,
                     bool rstrip, bool single_word, nt_err *err) {
    size_t n = strlen(content);
    if (n == 0) return 0;
    int32_t vid = sm_get(&t->vocab, content, n);
    if (vid >= 0) id = vid;
    if (id < 0) id = t->n_ids;
    for (int i = 0; i < t->n_added; i++) {
        if (t->added[i].len == n && memcmp(t->added[i].content, content, n) == 0) {
            t->added[i].special |= special;
            return 0;
        }
    }
    added_token *a = realloc(t->added, (size_t)(t->n_added + 1) * sizeof(*a));
    if (!a) return nt_fail(err, "%s: out of memory", t->path);
    t->added = a;
    added_token *k = &t->added[t->n_added];
    memset(k, 0, sizeof(*k));
    k->content = mem_dup(content, n);
    if (!k->content) return nt_fail(err, "%s: out of memory", t->path);
    t->n_added++;
    k->len = n;
    k->id = id;
    k->special = special;
    k->normalized = normalized;
    k->lstrip = lstrip;
    k->rstrip = rstrip;
    k->single_word = single_word;
    if (id >= t->n_ids) t->n_ids = id + 1;
    return 0;
}

static int cmp_json_id(const void *a, const void *b) {
    double x = cJSON_GetObjectItemCaseSensitive(*(const cJSON *const *)a, "id")->valuedouble;
    double y = cJSON_GetObjectItemCaseSensitive(*(const cJSON *const *)b, "id")->valuedouble;
    return (x > y) - (x < y);
}

// HF adds the tokens in id order and gives each the id of its content if known (vocabulary or added), else
// the next id after the vocabulary and the added tokens so far (files HF saved agree with their ids).
static int added_from_json(nt_tokenizer *t, const cJSON *arr, nt_err *err) {
    if (!arr || cJSON_IsNull(arr)) return 0;
    if (!cJSON_IsArray(arr)) return nt_fail(err, "%s: added_tokens is not a list", t->path);
    int n = cJSON_GetArraySize(arr), k = 0;
    if (n == 0) return 0;
    const cJSON **order = malloc((size_t)n * sizeof(*order));
    if (!order) return nt_fail(err, "%s: out of memory", t->path);
    for (const cJSON *a = arr->child; a; a = a->next) {
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(a, "id");
        if (!json_str(a, "content") || !cJSON_IsNumber(id)) {
            free(order);
            return nt_fail(err, "%s: an added token lacks content or id", t->path);
        }
        order[k++] = a;
    }
    qsort(order, (size_t)n, sizeof(*order), cmp_json_id);
    int32_t model_size = (int32_t)t->vocab.n, max_added = -1;
    int rc = 0;
    for (int i = 0; i < n && !rc; i++) {
        const cJSON *a = order[i];
        const char *content = json_str(a, "content");
        bool special = json_bool(a, "special", false);
        int32_t id = model_size;
        if (max_added >= 0 && (max_added >= model_size || model_size == 0)) id = max_added + 1;
        int32_t known = token_to_id(t, content);
        if (known >= 0) id = known;
        rc = added_add(t, content, id, special, json_bool(a, "normalized", !special), json_bool(a, "lstrip", false),
                       json_bool(a, "rstrip", false), json_bool(a, "single_word", false), err);
        if (*content && id > max_added) max_added = id; // tokens already in the vocabulary count too
    }
    free(order);
    return rc;
}

// ---------------------------------------------------------------------------------------------------
// Normalizers

static int parse_pattern(const cJSON *pat, const char **s, bool *is_regex) {
    const char *str = json_str(pat, "String"), *re = json_str(pat, "Regex");
    if (str) {
        *s = str;
        *is_regex = false;
        return 0;
    }
    if (re) {
        *s = re;
        *is_regex = true;
        return 0;
    }
    return -1;
}

static int norm_parse(nt_tokenizer *t, const cJSON *n, nt_err *err) {
    if (!n || cJSON_IsNull(n)) return 0;
    const char *type = json_str(n, "type");
    if (!type) return nt_fail(err, "%s: a normalizer has no type", t->path);
    if (strcmp(type, "Sequence") == 0) {
        const cJSON *list = cJSON_GetObjectItemCaseSensitive(n, "normalizers");
        for (const cJSON *c = cJSON_IsArray(list) ? list->child : NULL; c; c = c->next)
            if (norm_parse(t, c, err)) return -1;
        return 0;
    }
    norm_step st = {0};
    if (strcmp(type, "Prepend") == 0) {
        const char *p = json_str(n, "prepend");
        if (!p) return nt_fail(err, "%s: Prepend normalizer without prepend", t->path);
        st.kind = NM_PREPEND;
        st.a_len = strlen(p);
        st.a = mem_dup(p, st.a_len);
    } else if (strcmp(type, "Replace") == 0) {
        const char *pat, *content = json_str(n, "content");
        bool is_re;
        if (!content || parse_pattern(cJSON_GetObjectItemCaseSensitive(n, "pattern"), &pat, &is_re))
            return nt_fail(err, "%s: Replace normalizer without pattern or content", t->path);
        st.kind = NM_REPLACE;
        st.a_len = strlen(pat);
        st.a = mem_dup(pat, st.a_len);
        st.b_len = strlen(content);
        st.b = mem_dup(content, st.b_len);
        if (is_re) {
            char why[300];
            st.re = regex_compile(pat, st.a_len, false, why, sizeof(why));
            if (!st.re) {
                free(st.a);
                free(st.b);
                return nt_fail(err, "%s: Replace normalizer: %s", t->path, why);
            }
        }
    } else if (strcmp(type, "NFC") == 0 || strcmp(type, "NFD") == 0 || strcmp(type, "NFKC") == 0 ||
               strcmp(type, "NFKD") == 0) {
        st.kind = NM_UNICODE;
        st.form = strcmp(type, "NFC") == 0 ? NT_NFC : strcmp(type, "NFD") == 0 ? NT_NFD
                : strcmp(type, "NFKC") == 0 ? NT_NFKC : NT_NFKD;
    } else {
        return nt_fail(err, "%s: unsupported normalizer type '%s'", t->path, type);
    }
    if ((st.kind == NM_PREPEND && !st.a) || (st.kind == NM_REPLACE && (!st.a || !st.b))) {
        free(st.a);
        free(st.b);
        pcre2_code_free(st.re);
        return nt_fail(err, "%s: out of memory", t->path);
    }
    norm_step *v = realloc(t->norm, (size_t)(t->n_norm + 1) * sizeof(*v));
    if (!v) {
        free(st.a);
        free(st.b);
        pcre2_code_free(st.re);
        return nt_fail(err, "%s: out of memory", t->path);
    }
    t->norm = v;
    t->norm[t->n_norm++] = st;
    return 0;
}

// Replaces every non-overlapping occurrence of a literal (or, with re, of a regex) in s by b, into out.
static int replace_all(const char *a, size_t a_len, const pcre2_code *re, pcre2_match_data *md, const char *b,
                       size_t b_len, const char *s, size_t n, sbuf *out) {
    size_t i = 0;
    if (re) {
        while (i <= n) {
            int rc = pcre2_match(re, (PCRE2_SPTR)s, n, i, PCRE2_NO_UTF_CHECK, md, NULL);
            if (rc < 0) break;
            PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
            if (sbuf_add(out, s + i, ov[0] - i) || sbuf_add(out, b, b_len)) return -1;
            if (ov[1] == ov[0]) { // empty match: keep the next character and go on after it
                if (ov[1] >= n) {
                    i = n;
                    break;
                }
                size_t k = utf8_len(s + ov[1], n - ov[1]);
                if (sbuf_add(out, s + ov[1], k)) return -1;
                i = ov[1] + k;
            } else {
                i = ov[1];
            }
        }
        return sbuf_add(out, s + i, n > i ? n - i : 0);
    }
    if (a_len == 0) return sbuf_add(out, s, n);
    while (i < n) {
        const char *hit = NULL;
        for (size_t j = i; j + a_len <= n; j++)
            if (s[j] == a[0] && memcmp(s + j, a, a_len) == 0) {
                hit = s + j;
                break;
            }
        if (!hit) break;
        size_t j = (size_t)(hit - s);
        if (sbuf_add(out, s + i, j - i) || sbuf_add(out, b, b_len)) return -1;
        i = j + a_len;
    }
    return sbuf_add(out, s + i, n - i);
}

// Applies the normalizers to s; the result is in *res (either s itself or one of the two buffers).
static int normalize(const nt_tokenizer *t, const char *s, size_t n, sbuf bufs[2], pcre2_match_data *md,
                     const char **res, size_t *res_n) {
    const char *cur = s;
    size_t cur_n = n;
    int which = 0;
    for (int k = 0; k < t->n_norm; k++) {
        const norm_step *st = &t->norm[k];
        sbuf *out = &bufs[which];
        out->n = 0;
        if (st->kind == NM_PREPEND) {
            if (cur_n == 0) continue; // HF prepends only to non-empty text
            if (sbuf_add(out, st->a, st->a_len) || sbuf_add(out, cur, cur_n)) return -1;
        } else if (st->kind == NM_UNICODE) { // the text is valid UTF-8 here (encode made it so)
            size_t m;
            char *u = nt_utf8_normalize(cur, cur_n, st->form, &m);
            int rc = u ? sbuf_add(out, u, m) : -1;
            free(u);
            if (rc) return -1;
        } else {
            if (replace_all(st->a, st->a_len, st->re, md, st->b, st->b_len, cur, cur_n, out)) return -1;
        }
        if (sbuf_reserve(out, 0)) return -1;
        cur = out->v;
        cur_n = out->n;
        which ^= 1;
    }
    *res = cur;
    *res_n = cur_n;
    return 0;
}

// ---------------------------------------------------------------------------------------------------
// Pre-tokenizers (a flat list of steps; each step splits or rewrites the pieces of the step before)

static int pre_push(nt_tokenizer *t, pretok_step st, nt_err *err) {
    pretok_step *v = realloc(t->pre, (size_t)(t->n_pre + 1) * sizeof(*v));
    if (!v) {
        pcre2_code_free(st.re);
        return nt_fail(err, "%s: out of memory", t->path);
    }
    t->pre = v;
    t->pre[t->n_pre++] = st;
    return 0;
}

static int parse_behavior(const char *b) {
    if (!b) return -1;
    if (strcmp(b, "Removed") == 0) return SPLIT_REMOVED;
    if (strcmp(b, "Isolated") == 0) return SPLIT_ISOLATED;
    if (strcmp(b, "MergedWithPrevious") == 0) return SPLIT_MERGED_PREV;
    if (strcmp(b, "MergedWithNext") == 0) return SPLIT_MERGED_NEXT;
    if (strcmp(b, "Contiguous") == 0) return SPLIT_CONTIGUOUS;
    return -1;
}

// prepend_scheme, or the older add_prefix_space flag.
static int parse_scheme(const cJSON *o) {
    const char *s = json_str(o, "prepend_scheme");
    if (s) {
        if (strcmp(s, "first") == 0) return PREPEND_FIRST;
        if (strcmp(s, "never") == 0) return PREPEND_NEVER;
        return PREPEND_ALWAYS;
    }
    return json_bool(o, "add_prefix_space", true) ? PREPEND_ALWAYS : PREPEND_NEVER;
}

static int pre_add_bytelevel(nt_tokenizer *t, bool add_prefix_space, bool use_regex, nt_err *err) {
    char why[300];
    if (add_prefix_space && pre_push(t, (pretok_step){.kind = PT_PREFIX_SPACE}, err)) return -1;
    if (use_regex) {
        pcre2_code *re = regex_compile(GPT2_PATTERN, strlen(GPT2_PATTERN), false, why, sizeof(why));
        if (!re) return nt_fail(err, "%s: ByteLevel regex: %s", t->path, why);
        if (pre_push(t, (pretok_step){.kind = PT_SPLIT, .re = re, .behavior = SPLIT_ISOLATED}, err)) return -1;
    }
    return pre_push(t, (pretok_step){.kind = PT_BYTEMAP}, err);
}

// Split(Regex pattern, Isolated, invert false)
static int pre_add_split(nt_tokenizer *t, const char *pattern, nt_err *err) {
    char why[300];
    pcre2_code *re = regex_compile(pattern, strlen(pattern), false, why, sizeof(why));
    if (!re) return nt_fail(err, "%s: Split pre_tokenizer: %s", t->path, why);
    return pre_push(t, (pretok_step){.kind = PT_SPLIT, .re = re, .behavior = SPLIT_ISOLATED}, err);
}

// Digits: HF splits on char::is_numeric, Isolated (individual_digits) or Contiguous
static int pre_add_digits(nt_tokenizer *t, bool individual, nt_err *err) {
    char why[300];
    pcre2_code *re = regex_compile("\\p{N}", 5, false, why, sizeof(why));
    if (!re) return nt_fail(err, "%s: Digits pre_tokenizer: %s", t->path, why);
    int behavior = individual ? SPLIT_ISOLATED : SPLIT_CONTIGUOUS;
    return pre_push(t, (pretok_step){.kind = PT_SPLIT, .re = re, .behavior = behavior}, err);
}

static int pre_parse(nt_tokenizer *t, const cJSON *p, nt_err *err) {
    if (!p || cJSON_IsNull(p)) return 0;
    const char *type = json_str(p, "type");
    if (!type) return nt_fail(err, "%s: a pre_tokenizer has no type", t->path);
    if (strcmp(type, "Sequence") == 0) {
        const cJSON *list = cJSON_GetObjectItemCaseSensitive(p, "pretokenizers");
        for (const cJSON *c = cJSON_IsArray(list) ? list->child : NULL; c; c = c->next)
            if (pre_parse(t, c, err)) return -1;
        return 0;
    }
    if (strcmp(type, "ByteLevel") == 0)
        return pre_add_bytelevel(t, json_bool(p, "add_prefix_space", true), json_bool(p, "use_regex", true), err);
    if (strcmp(type, "Split") == 0) {
        const char *pat;
        bool is_re;
        int behavior = parse_behavior(json_str(p, "behavior"));
        if (parse_pattern(cJSON_GetObjectItemCaseSensitive(p, "pattern"), &pat, &is_re) || behavior < 0)
            return nt_fail(err, "%s: Split pre_tokenizer without a pattern or a known behavior", t->path);
        char why[300];
        pcre2_code *re = regex_compile(pat, strlen(pat), !is_re, why, sizeof(why));
        if (!re) return nt_fail(err, "%s: Split pre_tokenizer: %s", t->path, why);
        return pre_push(t,
                        (pretok_step){.kind = PT_SPLIT, .re = re, .behavior = behavior,
                                      .invert = json_bool(p, "invert", false)},
                        err);
    }
    if (strcmp(type, "Digits") == 0) return pre_add_digits(t, json_bool(p, "individual_digits", false), err);
    if (strcmp(type, "Metaspace") == 0) {
        pretok_step st = {.kind = PT_METASPACE, .scheme = parse_scheme(p), .split = json_bool(p, "split", true)};
        const char *rep = json_str(p, "replacement");
        if (!rep) rep = "\xE2\x96\x81";
        st.rep_len = strlen(rep);
        if (st.rep_len == 0 || st.rep_len > 4 || utf8_len(rep, st.rep_len) != st.rep_len)
            return nt_fail(err, "%s: Metaspace replacement '%s' is not one character", t->path, rep);
        memcpy(st.rep, rep, st.rep_len);
        return pre_push(t, st, err);
    }
    return nt_fail(err, "%s: unsupported pre_tokenizer type '%s'", t->path, type);
}

// ---------------------------------------------------------------------------------------------------
// Decoders

static int dec_parse(nt_tokenizer *t, const cJSON *d, nt_err *err) {
    if (!d || cJSON_IsNull(d)) return 0;
    const char *type = json_str(d, "type");
    if (!type) return nt_fail(err, "%s: a decoder has no type", t->path);
    t->has_decoder = true;
    if (strcmp(type, "Sequence") == 0) {
        const cJSON *list = cJSON_GetObjectItemCaseSensitive(d, "decoders");
        for (const cJSON *c = cJSON_IsArray(list) ? list->child : NULL; c; c = c->next)
            if (dec_parse(t, c, err)) return -1;
        return 0;
    }
    dec_step st = {0};
    const char *a = NULL, *b = NULL;
    if (strcmp(type, "ByteLevel") == 0) {
        st.kind = DC_BYTELEVEL;
    } else if (strcmp(type, "ByteFallback") == 0) {
        st.kind = DC_BYTEFALLBACK;
    } else if (strcmp(type, "Fuse") == 0) {
        st.kind = DC_FUSE;
    } else if (strcmp(type, "Replace") == 0) {
        bool is_re;
        b = json_str(d, "content");
        if (!b || parse_pattern(cJSON_GetObjectItemCaseSensitive(d, "pattern"), &a, &is_re))
            return nt_fail(err, "%s: Replace decoder without pattern or content", t->path);
        st.kind = DC_REPLACE;
        if (is_re) {
            char why[300];
            st.re = regex_compile(a, strlen(a), false, why, sizeof(why));
            if (!st.re) return nt_fail(err, "%s: Replace decoder: %s", t->path, why);
        }
    } else if (strcmp(type, "Strip") == 0) {
        const char *c = json_str(d, "content");
        const cJSON *start = cJSON_GetObjectItemCaseSensitive(d, "start");
        const cJSON *stop = cJSON_GetObjectItemCaseSensitive(d, "stop");
        if (!c || !*c) return nt_fail(err, "%s: Strip decoder without content", t->path);
        st.kind = DC_STRIP;
        size_t k;
        st.ch = utf8_cp(c, strlen(c), &k);
        if (st.ch < 0) return nt_fail(err, "%s: Strip decoder content is not UTF-8", t->path);
        st.start = cJSON_IsNumber(start) ? (int)start->valuedouble : 0;
        st.stop = cJSON_IsNumber(stop) ? (int)stop->valuedouble : 0;
    } else if (strcmp(type, "Metaspace") == 0) {
        st.kind = DC_METASPACE;
        a = json_str(d, "replacement");
        if (!a) a = "\xE2\x96\x81";
        st.scheme = parse_scheme(d);
    } else if (strcmp(type, "BPEDecoder") == 0) {
        st.kind = DC_BPE_SUFFIX;
        a = json_str(d, "suffix");
        if (!a) a = "</w>";
    } else {
        return nt_fail(err, "%s: unsupported decoder type '%s'", t->path, type);
    }
    if (a) {
        st.a_len = strlen(a);
        st.a = mem_dup(a, st.a_len);
    }
    if (b) {
        st.b_len = strlen(b);
        st.b = mem_dup(b, st.b_len);
    }
    dec_step *v = realloc(t->dec, (size_t)(t->n_dec + 1) * sizeof(*v));
    if (v) t->dec = v;
    if (!v || (a && !st.a) || (b && !st.b)) {
        free(st.a);
        free(st.b);
        pcre2_code_free(st.re);
        return nt_fail(err, "%s: out of memory", t->path);
    }
    t->dec[t->n_dec++] = st;
    return 0;
}

// ---------------------------------------------------------------------------------------------------
// Post-processors

static int post_push(nt_tokenizer *t, ivec *v, int32_t id, nt_err *err) {
    if (ivec_push(v, id)) return nt_fail(err, "%s: out of memory", t->path);
    return 0;
}

// A [token, id] pair of RobertaProcessing/BertProcessing.
static int32_t pair_id(const cJSON *p) {
    if (cJSON_IsArray(p) && cJSON_GetArraySize(p) == 2 && cJSON_IsNumber(p->child->next))
        return (int32_t)p->child->next->valuedouble;
    return -1;
}

// Parses one processor into pre (ids before the sequence) and post (ids after it).
static int post_parse_one(nt_tokenizer *t, const cJSON *p, ivec *pre, ivec *post, nt_err *err) {
    const char *type = json_str(p, "type");
    if (!type) return nt_fail(err, "%s: a post_processor has no type", t->path);
    if (strcmp(type, "ByteLevel") == 0) return 0;
    if (strcmp(type, "RobertaProcessing") == 0 || strcmp(type, "BertProcessing") == 0) {
        int32_t cls = pair_id(cJSON_GetObjectItemCaseSensitive(p, "cls"));
        int32_t sep = pair_id(cJSON_GetObjectItemCaseSensitive(p, "sep"));
        if (cls < 0 || sep < 0) return nt_fail(err, "%s: %s without cls/sep", t->path, type);
        if (post_push(t, pre, cls, err) || post_push(t, post, sep, err)) return -1;
        return 0;
    }
    if (strcmp(type, "TemplateProcessing") == 0) {
        const cJSON *single = cJSON_GetObjectItemCaseSensitive(p, "single");
        const cJSON *specials = cJSON_GetObjectItemCaseSensitive(p, "special_tokens");
        if (!cJSON_IsArray(single)) return nt_fail(err, "%s: TemplateProcessing without a single template", t->path);
        bool seen_a = false;
        for (const cJSON *it = single->child; it; it = it->next) {
            const cJSON *sp = cJSON_GetObjectItemCaseSensitive(it, "SpecialToken");
            const cJSON *seq = cJSON_GetObjectItemCaseSensitive(it, "Sequence");
            if (seq) {
                if (seen_a) return nt_fail(err, "%s: TemplateProcessing single template has two sequences", t->path);
                seen_a = true;
            } else if (sp) {
                const char *name = json_str(sp, "id");
                const cJSON *ent = name ? cJSON_GetObjectItemCaseSensitive(specials, name) : NULL;
                const cJSON *ids = cJSON_GetObjectItemCaseSensitive(ent, "ids");
                if (!cJSON_IsArray(ids))
                    return nt_fail(err, "%s: TemplateProcessing: special token '%s' has no ids", t->path,
                                   name ? name : "?");
                for (const cJSON *id = ids->child; id; id = id->next)
                    if (post_push(t, seen_a ? post : pre, (int32_t)id->valuedouble, err)) return -1;
            } else {
                return nt_fail(err, "%s: TemplateProcessing: unknown template item", t->path);
            }
        }
        return 0;
    }
    return nt_fail(err, "%s: unsupported post_processor type '%s'", t->path, type);
}

// A Sequence applies its processors in order: each wraps the output of the one before.
static int post_parse(nt_tokenizer *t, const cJSON *p, nt_err *err) {
    if (!p || cJSON_IsNull(p)) return 0;
    const char *type = json_str(p, "type");
    if (type && strcmp(type, "Sequence") == 0) {
        const cJSON *list = cJSON_GetObjectItemCaseSensitive(p, "processors");
        for (const cJSON *c = cJSON_IsArray(list) ? list->child : NULL; c; c = c->next)
            if (post_parse(t, c, err)) return -1;
        return 0;
    }
    ivec pre = {0}, post = {0};
    int rc = post_parse_one(t, p, &pre, &post, err);
    for (size_t i = 0; !rc && i < t->prefix.n; i++) rc = post_push(t, &pre, t->prefix.v[i], err);
    for (size_t i = 0; !rc && i < post.n; i++) rc = post_push(t, &t->suffix, post.v[i], err);
    if (!rc) {
        free(t->prefix.v);
        t->prefix = pre;
    } else {
        free(pre.v);
    }
    free(post.v);
    return rc;
}

// tokenizer_config.json: BOS/EOS ids, and BOS/EOS rules where HF takes them from there: when the
// post-processor is null, and for the Llama-family classes whose fast tokenizer rebuilds its post-processor
// from add_bos_token/add_eos_token on load.
static int config_apply(nt_tokenizer *t, const cJSON *cfg, bool has_post, nt_err *err) {
    const char *bos = config_token(cfg, "bos_token"), *eos = config_token(cfg, "eos_token");
    int32_t bos_id = bos ? token_to_id(t, bos) : -1, eos_id = eos ? token_to_id(t, eos) : -1;
    if (bos_id >= 0) t->bos = bos_id;
    if (eos_id >= 0) t->eos = eos_id;
    const char *cls = json_str(cfg, "tokenizer_class");
    bool llama_like = cls && (strncmp(cls, "LlamaTokenizer", 14) == 0 || strncmp(cls, "CodeLlamaTokenizer", 18) == 0 ||
                              strncmp(cls, "GemmaTokenizer", 14) == 0);
    const cJSON *ab = cJSON_GetObjectItemCaseSensitive(cfg, "add_bos_token");
    const cJSON *ae = cJSON_GetObjectItemCaseSensitive(cfg, "add_eos_token");
    if (has_post && !llama_like) return 0;
    if (!llama_like && !cJSON_IsBool(ab) && !cJSON_IsBool(ae)) return 0;
    bool add_bos = cJSON_IsBool(ab) ? cJSON_IsTrue(ab) : llama_like; // LlamaTokenizerFast defaults: BOS, no EOS
    bool add_eos = cJSON_IsBool(ae) && cJSON_IsTrue(ae);
    t->prefix.n = t->suffix.n = 0;
    if ((add_bos && bos_id >= 0 && ivec_push(&t->prefix, bos_id)) ||
        (add_eos && eos_id >= 0 && ivec_push(&t->suffix, eos_id)))
        return nt_fail(err, "%s: out of memory", t->path);
    return 0;
}

static cJSON *json_load(const char *path, nt_err *err) {
    size_t len;
    char *buf = nt_read_file(path, &len, err);
    if (!buf) return NULL;
    cJSON *j = cJSON_ParseWithLength(buf, len);
    if (!j) {
        const char *at = cJSON_GetErrorPtr();
        long off = (at && at >= buf && at <= buf + len) ? (long)(at - buf) : -1;
        nt_fail(err, "%s: malformed JSON (near byte %ld)", path, off);
    }
    free(buf);
    return j;
}

// The directory part of path ("." when none), malloc'd.
static char *dir_of(const char *path) {
    const char *slash = strrchr(path, '/');
    if (!slash) return mem_dup(".", 1);
    return mem_dup(path, (size_t)(slash - path) + (slash == path));
}

static cJSON *config_beside(const char *path) {
    char *dir = dir_of(path);
    char *cfg_path = dir ? nt_path_join(dir, "tokenizer_config.json") : NULL;
    cJSON *cfg = NULL;
    if (cfg_path && nt_file_exists(cfg_path)) cfg = json_load(cfg_path, NULL); // a bad config is ignored
    free(dir);
    free(cfg_path);
    return cfg;
}

// Patterns of normalized added tokens are matched in normalized text, so they are normalized too.
static int added_finish(nt_tokenizer *t, nt_err *err) {
    sbuf bufs[2] = {{0}, {0}};
    pcre2_match_data *md = pcre2_match_data_create(4, NULL);
    int rc = md ? 0 : nt_fail(err, "%s: out of memory", t->path);
    for (int i = 0; !rc && i < t->n_added; i++) {
        added_token *a = &t->added[i];
        const char *s = a->content;
        size_t n = a->len;
        if (a->normalized && t->n_norm && normalize(t, a->content, a->len, bufs, md, &s, &n))
            rc = nt_fail(err, "%s: out of memory", t->path);
        if (!rc && !(a->pattern = mem_dup(s, n))) rc = nt_fail(err, "%s: out of memory", t->path);
        a->pat_len = n;
        if (a->normalized) t->any_norm_added = true;
        else t->any_raw_added = true;
        if (!rc && a->single_word && !t->word_re) {
            char why[300];
            t->word_re = regex_compile("\\w", 2, false, why, sizeof(why));
            if (!t->word_re) rc = nt_fail(err, "%s: %s", t->path, why);
        }
    }
    pcre2_match_data_free(md);
    free(bufs[0].v);
    free(bufs[1].v);
    return rc;
}

int nt_tokenizer_load_json(nt_tokenizer **out, const char *path, nt_err *err) {
    *out = NULL;
    cJSON *j = json_load(path, err);
    if (!j) return -1;
    cJSON *cfg = NULL;
    nt_tokenizer *t = tok_new(path);
    int rc = t ? 0 : nt_fail(err, "%s: out of memory", path);
    const cJSON *model = cJSON_GetObjectItemCaseSensitive(j, "model");
    const char *type = json_str(model, "type");
    if (!rc && !cJSON_IsObject(model)) rc = nt_fail(err, "%s: no model section", path);
    if (!rc && type && strcmp(type, "BPE") != 0)
        rc = nt_fail(err, "%s: unsupported tokenizer model type '%s'", path, type);
    if (!rc && !type && !cJSON_GetObjectItemCaseSensitive(model, "merges"))
        rc = nt_fail(err, "%s: unsupported tokenizer model (no type, no merges)", path);
    if (!rc) {
        const cJSON *drop = cJSON_GetObjectItemCaseSensitive(model, "dropout");
        if (cJSON_IsNumber(drop) && drop->valuedouble > 0.0)
            rc = nt_fail(err, "%s: BPE dropout %g is not supported (encoding would be random)", path,
                         drop->valuedouble);
    }
    if (!rc) {
        t->byte_fallback = json_bool(model, "byte_fallback", false);
        t->fuse_unk = json_bool(model, "fuse_unk", false);
        t->ignore_merges = json_bool(model, "ignore_merges", false);
        const char *unk = json_str(model, "unk_token"), *cp = json_str(model, "continuing_subword_prefix"),
                   *eow = json_str(model, "end_of_word_suffix");
        if (unk && !(t->unk_token = mem_dup(unk, strlen(unk)))) rc = nt_fail(err, "%s: out of memory", path);
        if (cp && *cp && !(t->cont_prefix = mem_dup(cp, strlen(cp)))) rc = nt_fail(err, "%s: out of memory", path);
        if (eow && *eow && !(t->eow_suffix = mem_dup(eow, strlen(eow)))) rc = nt_fail(err, "%s: out of memory", path);
    }
    if (!rc) rc = vocab_from_json(t, cJSON_GetObjectItemCaseSensitive(model, "vocab"), "model.vocab", err);
    if (!rc) rc = merges_from_json(t, cJSON_GetObjectItemCaseSensitive(model, "merges"), err);
    if (!rc) rc = added_from_json(t, cJSON_GetObjectItemCaseSensitive(j, "added_tokens"), err);
    if (!rc) rc = norm_parse(t, cJSON_GetObjectItemCaseSensitive(j, "normalizer"), err);
    if (!rc) rc = pre_parse(t, cJSON_GetObjectItemCaseSensitive(j, "pre_tokenizer"), err);
    if (!rc) rc = dec_parse(t, cJSON_GetObjectItemCaseSensitive(j, "decoder"), err);
    const cJSON *post = cJSON_GetObjectItemCaseSensitive(j, "post_processor");
    if (!rc) rc = post_parse(t, post, err);
    if (!rc) rc = added_finish(t, err);
    if (!rc) rc = finish_ids(t, err);
    if (!rc) {
        if (t->prefix.n) t->bos = t->prefix.v[0];
        if (t->suffix.n) t->eos = t->suffix.v[t->suffix.n - 1];
        cfg = config_beside(path);
        if (cfg) rc = config_apply(t, cfg, post && !cJSON_IsNull(post), err);
    }
    cJSON_Delete(cfg);
    cJSON_Delete(j);
    if (rc) {
        nt_tokenizer_free(&t);
        return -1;
    }
    *out = t;
    return 0;
}

// vocab.json + merges.txt (GPT-2 byte-level BPE), with tokenizer_config.json when cfg is not NULL: the
// special tokens (GPT-2's default "<|endoftext|>"), added_tokens_decoder, add_prefix_space, add_bos_token.
static int load_bpe_files(nt_tokenizer **out, const char *vocab_path, const char *merges_path, const cJSON *cfg,
                          nt_err *err) {
    *out = NULL;
    cJSON *vj = json_load(vocab_path, err);
    if (!vj) return -1;
    size_t mlen;
    char *mtxt = nt_read_file(merges_path, &mlen, err);
    nt_tokenizer *t = mtxt ? tok_new(vocab_path) : NULL;
    int rc = !mtxt ? -1 : t ? 0 : nt_fail(err, "%s: out of memory", vocab_path);
    if (!rc) rc = vocab_from_json(t, vj, "vocabulary", err);
    if (!rc) { // lines "a b"; a first line "#version ..." is a comment
        size_t n_lines = 1;
        for (size_t i = 0; i < mlen; i++) n_lines += mtxt[i] == '\n';
        if (mm_init(&t->merges, n_lines)) rc = nt_fail(err, "%s: out of memory", merges_path);
        sbuf tmp = {0};
        int32_t rank = 0;
        size_t line_no = 0;
        for (char *line = mtxt; !rc && line < mtxt + mlen; line_no++) {
            char *nl = memchr(line, '\n', (size_t)(mtxt + mlen - line));
            char *end = nl ? nl : mtxt + mlen;
            if (end > line && end[-1] == '\r') end--;
            size_t n = (size_t)(end - line);
            bool skip = n == 0 || (line_no == 0 && n >= 8 && memcmp(line, "#version", 8) == 0);
            if (!skip) {
                char *sp = memchr(line, ' ', n);
                if (!sp || memchr(sp + 1, ' ', (size_t)(end - sp - 1)))
                    rc = nt_fail(err, "%s: line %zu is not two tokens separated by a space", merges_path, line_no + 1);
                else
                    rc = merge_add(t, merges_path, line, (size_t)(sp - line), sp + 1, (size_t)(end - sp - 1), rank++,
                                   &tmp, err);
            }
            line = nl ? nl + 1 : mtxt + mlen;
        }
        free(tmp.v);
    }
    if (!rc) {
        bool prefix_space = cfg ? json_bool(cfg, "add_prefix_space", false) : false;
        rc = pre_add_bytelevel(t, prefix_space, true, err);
        if (!rc) {
            t->has_decoder = true;
            dec_step *d = calloc(1, sizeof(*d));
            if (!d) rc = nt_fail(err, "%s: out of memory", vocab_path);
            else {
                d->kind = DC_BYTELEVEL;
                t->dec = d;
                t->n_dec = 1;
            }
        }
    }
    // added tokens: added_tokens_decoder, then the special tokens (GPT2Tokenizer's defaults when absent)
    const cJSON *atd = cfg ? cJSON_GetObjectItemCaseSensitive(cfg, "added_tokens_decoder") : NULL;
    for (const cJSON *a = cJSON_IsObject(atd) ? atd->child : NULL; !rc && a; a = a->next) {
        const char *content = json_str(a, "content");
        bool special = json_bool(a, "special", false);
        if (content)
            rc = added_add(t, content, (int32_t)strtol(a->string, NULL, 10), special,
                           json_bool(a, "normalized", !special), json_bool(a, "lstrip", false),
                           json_bool(a, "rstrip", false), json_bool(a, "single_word", false), err);
    }
    const char *keys[] = {"bos_token", "eos_token", "unk_token", "pad_token"};
    for (int k = 0; !rc && k < 4; k++) {
        const char *s = cfg ? config_token(cfg, keys[k]) : NULL;
        bool present = cfg && cJSON_GetObjectItemCaseSensitive(cfg, keys[k]);
        if (!s && !present && k < 3) s = "<|endoftext|>";
        if (s) rc = added_add(t, s, -1, true, false, false, false, false, err);
    }
    if (!rc) rc = added_finish(t, err);
    if (!rc) rc = finish_ids(t, err);
    if (!rc) {
        const char *bos = cfg ? config_token(cfg, "bos_token") : NULL;
        const char *eos = cfg ? config_token(cfg, "eos_token") : NULL;
        if (!cfg || !cJSON_GetObjectItemCaseSensitive(cfg, "bos_token")) bos = "<|endoftext|>";
        if (!cfg || !cJSON_GetObjectItemCaseSensitive(cfg, "eos_token")) eos = "<|endoftext|>";
        t->bos = bos ? token_to_id(t, bos) : -1;
        t->eos = eos ? token_to_id(t, eos) : -1;
        // GPT2Converter: a BOS template when add_bos_token, else the ByteLevel processor (no specials)
        if (cfg && json_bool(cfg, "add_bos_token", false) && t->bos >= 0 && ivec_push(&t->prefix, t->bos))
            rc = nt_fail(err, "%s: out of memory", vocab_path);
    }
    free(mtxt);
    cJSON_Delete(vj);
    if (rc) {
        nt_tokenizer_free(&t);
        return -1;
    }
    *out = t;
    return 0;
}

int nt_tokenizer_load_bpe_files(nt_tokenizer **out, const char *vocab_path, const char *merges_path, nt_err *err) {
    return load_bpe_files(out, vocab_path, merges_path, NULL, err);
}

int nt_tokenizer_load_dir(nt_tokenizer **out, const char *dir, nt_err *err) {
    *out = NULL;
    char *tj = nt_path_join(dir, "tokenizer.json"), *vj = nt_path_join(dir, "vocab.json"),
         *mt = nt_path_join(dir, "merges.txt"), *cp = nt_path_join(dir, "tokenizer_config.json");
    int rc;
    if (!tj || !vj || !mt || !cp) {
        rc = nt_fail(err, "%s: out of memory", dir);
    } else if (nt_file_exists(tj)) {
        rc = nt_tokenizer_load_json(out, tj, err);
    } else if (nt_file_exists(vj) && nt_file_exists(mt)) {
        cJSON *cfg = nt_file_exists(cp) ? json_load(cp, err) : NULL;
        rc = (nt_file_exists(cp) && !cfg) ? -1 : load_bpe_files(out, vj, mt, cfg, err);
        cJSON_Delete(cfg);
    } else {
        rc = nt_fail(err, "%s: no tokenizer file (neither tokenizer.json, vocab.json + merges.txt nor tokenizer.gguf)", tj);
    }
    free(tj);
    free(vj);
    free(mt);
    free(cp);
    return rc;
}

// ---------------------------------------------------------------------------------------------------
// A tokenizer from plain arrays (nt_tokenizer_spec, what GGUF's tokenizer.ggml.* keys hold), built as the
// tokenizer.json that Hugging Face's converters write for the same model:
//   gpt2   byte-level BPE from tokens + merges; the pre-tokenizer that `pre` names (the table below); decoder
//          ByteLevel; no unk
//   llama  transformers' LlamaConverter (legacy): BPE with byte fallback, fuse_unk and unk_token = the unk
//          piece, merges made from the scores as its generate_merges makes them; normalizer Prepend("▁")
//          (when add_space_prefix) + Replace(" ", "▁"); decoder Replace("▁", " "), ByteFallback, Fuse,
//          Strip(" ", 1, 0) (when add_space_prefix)
// Both: CONTROL and UNKNOWN tokens are special added tokens, USER_DEFINED ones non-special added tokens, all
// matched in the raw text (normalized = false, as SpmConverter and GGUF's converters mark them); BOS/EOS from
// the ids and add_bos/add_eos (the TemplateProcessing HF puts there).

// The pre-tokenizers of the `pre` names, as each model's own tokenizer.json has them (llama.cpp's names):
//   gpt-2      ByteLevel(add_prefix_space=false) with GPT-2's regex (GPT2TokenizerFast)
//   smollm     Digits(individual_digits=true), then that ByteLevel (SmolLM / SmolLM2)
//   llama-bpe  Split(LLAMA3_PATTERN, Isolated), ByteLevel(use_regex=false), ignore_merges (Llama 3; transformers'
//              TikTokenConverter)
//   qwen2      normalizer NFC, Split(QWEN2_PATTERN, Isolated), ByteLevel(use_regex=false) (transformers'
//              Qwen2Converter)
static const char *LLAMA3_PATTERN = "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| "
                                    "?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
static const char *QWEN2_PATTERN = "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| "
                                   "?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

typedef enum { PRE_GPT2, PRE_SMOLLM, PRE_LLAMA3, PRE_QWEN2 } bpe_pre;
static const struct {
    const char *name;
    bpe_pre pre;
} BPE_PRES[] = {{"gpt-2", PRE_GPT2}, {"smollm", PRE_SMOLLM}, {"llama-bpe", PRE_LLAMA3}, {"qwen2", PRE_QWEN2}};
enum { N_BPE_PRES = sizeof(BPE_PRES) / sizeof(BPE_PRES[0]) };

static const char *LLAMA_NORM_PREPEND = "{\"type\": \"Prepend\", \"prepend\": \"\\u2581\"}";
static const char *LLAMA_NORM_REPLACE = "{\"type\": \"Replace\", \"pattern\": {\"String\": \" \"}, \"content\": \"\\u2581\"}";
static const char *LLAMA_DECODER = "{\"type\": \"Sequence\", \"decoders\": [{\"type\": \"Replace\", \"pattern\": {\"String\": "
                                   "\"\\u2581\"}, \"content\": \" \"}, {\"type\": \"ByteFallback\"}, {\"type\": \"Fuse\"}]}";
static const char *LLAMA_DECODER_STRIP = "{\"type\": \"Strip\", \"content\": \" \", \"start\": 1, \"stop\": 0}";
static const char *BYTELEVEL_DECODER = "{\"type\": \"ByteLevel\"}";

// A pipeline step written as HF's tokenizer.json writes it, through the same parser as a tokenizer.json file.
static int parse_fragment(nt_tokenizer *t, const char *json, int (*parse)(nt_tokenizer *, const cJSON *, nt_err *),
                          nt_err *err) {
    cJSON *j = cJSON_Parse(json);
    NT_ASSERT(j != NULL); // a constant above
    int rc = parse(t, j, err);
    cJSON_Delete(j);
    return rc;
}

// One merge candidate of generate_merges: the split (left, right) of vocabulary piece `merged`.
typedef struct {
    float score;            // the merged piece's score
    int32_t l_chars, r_chars; // lengths in code points (Python's len)
    int32_t left, right, merged;
    int32_t seq;            // position before the global sort (ties keep it: Python's sort is stable)
} spm_merge;

static int cmp_spm_merge(const void *pa, const void *pb) {
    const spm_merge *a = pa, *b = pb;
    // sorted(key=(score, len(l), len(r)), reverse=True): all three descending, equal keys in their order
    if (a->score != b->score) return a->score > b->score ? -1 : 1;
    if (a->l_chars != b->l_chars) return a->l_chars > b->l_chars ? -1 : 1;
    if (a->r_chars != b->r_chars) return a->r_chars > b->r_chars ? -1 : 1;
    return (a->seq > b->seq) - (a->seq < b->seq);
}

static int cmp_spm_local(const void *pa, const void *pb) { // sorted(key=(vocab[l], vocab[r]))
    const spm_merge *a = pa, *b = pb;
    if (a->left != b->left) return a->left < b->left ? -1 : 1;
    return (a->right > b->right) - (a->right < b->right);
}

// transformers' generate_merges(vocab, vocab_scores): for every piece (in id order) every split into two
// pieces of the vocabulary, sorted by the ids of the two parts; then all of them by score, then the lengths of
// the left and the right part, descending. Rank = position in that list. LlamaConverter gives ids 0..2 the
// score 0.
static int merges_from_scores(nt_tokenizer *t, const nt_tokenizer_spec *sp, nt_err *err) {
    spm_merge *m = NULL;
    size_t n = 0, cap = 0;
    int rc = 0;
    for (int32_t p = 0; p < sp->n_tokens && !rc; p++) {
        const char *s = sp->tokens[p];
        size_t len = sp->token_lens ? sp->token_lens[p] : strlen(s), start = n;
        float score = p < 3 ? 0.0f : sp->scores[p];
        int32_t l_chars = 0, total = (int32_t)nt_utf8_chars(s, len);
        for (size_t k = utf8_len(s, len); k < len && !rc; k += utf8_len(s + k, len - k)) {
            l_chars++;
            int32_t l = sm_get(&t->vocab, s, k), r = sm_get(&t->vocab, s + k, len - k);
            if (l < 0 || r < 0) continue;
            if (n == cap) {
                size_t c2 = cap ? 2 * cap : 4096;
                spm_merge *v = realloc(m, c2 * sizeof(*v));
                if (!v) {
                    rc = nt_fail(err, "%s: out of memory", t->path);
                    break;
                }
                m = v;
                cap = c2;
            }
            m[n++] = (spm_merge){score, l_chars, total - l_chars, l, r, p, 0};
        }
        if (n - start > 1) qsort(m + start, n - start, sizeof(*m), cmp_spm_local);
    }
    for (size_t i = 0; i < n; i++) m[i].seq = (int32_t)i;
    if (!rc && n) qsort(m, n, sizeof(*m), cmp_spm_merge);
    if (!rc && mm_init(&t->merges, n)) rc = nt_fail(err, "%s: out of memory", t->path);
    for (size_t i = 0; i < n && !rc; i++) mm_put(&t->merges, m[i].left, m[i].right, (int32_t)i, m[i].merged);
    free(m);
    return rc;
}

// gpt2: the merges "left right", each part a token and their concatenation too.
static int merges_from_spec(nt_tokenizer *t, const nt_tokenizer_spec *sp, nt_err *err) {
    if (mm_init(&t->merges, (size_t)sp->n_merges)) return nt_fail(err, "%s: out of memory", t->path);
    sbuf tmp = {0};
    int rc = 0;
    for (int32_t i = 0; i < sp->n_merges && !rc; i++) {
        const char *s = sp->merges[i];
        size_t len = sp->merge_lens ? sp->merge_lens[i] : strlen(s);
        const char *sp1 = memchr(s, ' ', len);
        if (!sp1 || sp1 == s || sp1 + 1 == s + len || memchr(sp1 + 1, ' ', (size_t)(s + len - sp1 - 1)))
            rc = nt_fail(err, "%s: merge %d: '%.*s' is not two tokens separated by a space", t->path, (int)i + 1,
                         (int)(len > 200 ? 200 : len), s);
        else
            rc = merge_add(t, t->path, s, (size_t)(sp1 - s), sp1 + 1, (size_t)(s + len - sp1 - 1), i, &tmp, err);
    }
    free(tmp.v);
    return rc;
}

static int spec_check_id(const char *file, const char *what, int32_t id, int32_t n, nt_err *err) {
    if (id < -1 || id >= n) return nt_fail(err, "%s: %s %d is not a token id (the vocabulary has %d)", file, what, (int)id, (int)n);
    return 0;
}

int nt_tokenizer_from_spec(nt_tokenizer **out, const nt_tokenizer_spec *sp, const char *name, nt_err *err) {
    *out = NULL;
    const char *file = name ? name : "tokenizer spec";
    const char *model = sp->model ? sp->model : "(none)";
    bool spm = strcmp(model, "llama") == 0;
    if (!spm && strcmp(model, "gpt2") != 0)
        return nt_fail(err, "%s: tokenizer model '%s' is not supported (supported: gpt2, llama)", file, model);
    int pre = -1;
    if (!spm) {
        for (int i = 0; sp->pre && i < N_BPE_PRES; i++)
            if (strcmp(sp->pre, BPE_PRES[i].name) == 0) pre = (int)BPE_PRES[i].pre;
        if (pre < 0)
            return nt_fail(err, "%s: pre-tokenizer '%s' is not one normtweak knows for model gpt2 (known: gpt-2, smollm, "
                                "llama-bpe, qwen2)", file, sp->pre ? sp->pre : "(none)");
    } else if (sp->pre && *sp->pre && strcmp(sp->pre, "default") != 0) {
        return nt_fail(err, "%s: pre-tokenizer '%s' is not one normtweak knows for model llama (known: default)", file,
                       sp->pre);
    }
    if (sp->n_tokens <= 0 || !sp->tokens) return nt_fail(err, "%s: the tokenizer has no tokens", file);
    if (spm && !sp->scores) return nt_fail(err, "%s: a llama (SentencePiece) tokenizer needs token scores", file);
    if (!spm && (sp->n_merges <= 0 || !sp->merges)) return nt_fail(err, "%s: a gpt2 (BPE) tokenizer needs merges", file);
    if (spec_check_id(file, "bos_token_id", sp->bos_id, sp->n_tokens, err) ||
        spec_check_id(file, "eos_token_id", sp->eos_id, sp->n_tokens, err) ||
        spec_check_id(file, "unknown_token_id", sp->unk_id, sp->n_tokens, err) ||
        spec_check_id(file, "padding_token_id", sp->pad_id, sp->n_tokens, err))
        return -1;
    if (sp->add_bos && sp->bos_id < 0) return nt_fail(err, "%s: add_bos_token is set but there is no bos_token_id", file);
    if (sp->add_eos && sp->eos_id < 0) return nt_fail(err, "%s: add_eos_token is set but there is no eos_token_id", file);

    nt_tokenizer *t = tok_new(file);
    if (!t) return nt_fail(err, "%s: out of memory", file);
    int rc = 0;
    for (int32_t i = 0; i < sp->n_tokens && !rc; i++) {
        const char *s = sp->tokens[i];
        size_t len = sp->token_lens ? sp->token_lens[i] : strlen(s);
        int32_t type = sp->token_types ? sp->token_types[i] : NT_TOKEN_NORMAL, prev;
        if (len == 0) rc = nt_fail(err, "%s: token %d is empty", file, (int)i);
        else if (memchr(s, '\0', len)) rc = nt_fail(err, "%s: token %d holds a NUL byte", file, (int)i);
        else if (!nt_utf8_valid(s, len)) rc = nt_fail(err, "%s: token %d is not valid UTF-8", file, (int)i);
        else if ((prev = sm_get(&t->vocab, s, len)) >= 0)
            rc = nt_fail(err, "%s: token %d '%.*s' repeats token %d", file, (int)i, (int)(len > 200 ? 200 : len), s,
                         (int)prev);
        else if (type < 0 || type > NT_TOKEN_BYTE)
            rc = nt_fail(err, "%s: token %d has type %d, not a GGUF token type (0..6)", file, (int)i, (int)type);
        else if (spm && sp->scores[i] != sp->scores[i])
            rc = nt_fail(err, "%s: token %d has a NaN score", file, (int)i);
        else
            rc = vocab_add(t, s, len, i, err);
    }
    if (!rc && spm) {
        t->byte_fallback = true;
        t->fuse_unk = true;
        if (sp->unk_id >= 0 && !(t->unk_token = mem_dup(sp->tokens[sp->unk_id], sp->token_lens ? sp->token_lens[sp->unk_id]
                                                                                         : strlen(sp->tokens[sp->unk_id]))))
            rc = nt_fail(err, "%s: out of memory", file);
        if (!rc) rc = merges_from_scores(t, sp, err);
        if (!rc && sp->add_space_prefix) rc = parse_fragment(t, LLAMA_NORM_PREPEND, norm_parse, err);
        if (!rc) rc = parse_fragment(t, LLAMA_NORM_REPLACE, norm_parse, err);
        if (!rc) rc = parse_fragment(t, LLAMA_DECODER, dec_parse, err);
        if (!rc && sp->add_space_prefix) rc = parse_fragment(t, LLAMA_DECODER_STRIP, dec_parse, err);
    } else if (!rc) {
        rc = merges_from_spec(t, sp, err);
        if (!rc && pre == PRE_QWEN2) rc = parse_fragment(t, "{\"type\": \"NFC\"}", norm_parse, err);
        if (!rc && pre == PRE_SMOLLM) rc = pre_add_digits(t, true, err);
        if (!rc && (pre == PRE_LLAMA3 || pre == PRE_QWEN2))
            rc = pre_add_split(t, pre == PRE_LLAMA3 ? LLAMA3_PATTERN : QWEN2_PATTERN, err);
        if (!rc) rc = pre_add_bytelevel(t, false, pre == PRE_GPT2 || pre == PRE_SMOLLM, err);
        if (!rc) rc = parse_fragment(t, BYTELEVEL_DECODER, dec_parse, err);
        t->ignore_merges = pre == PRE_LLAMA3;
    }
    for (int32_t i = 0; i < sp->n_tokens && !rc; i++) { // added tokens, in id order as HF adds them
        int32_t type = sp->token_types ? sp->token_types[i] : NT_TOKEN_NORMAL;
        if (type != NT_TOKEN_CONTROL && type != NT_TOKEN_UNKNOWN && type != NT_TOKEN_USER_DEFINED) continue;
        const char *s = sp->tokens[i];
        size_t len = sp->token_lens ? sp->token_lens[i] : strlen(s);
        char *c = mem_dup(s, len);
        rc = c ? added_add(t, c, i, type != NT_TOKEN_USER_DEFINED, false, false, false, false, err)
               : nt_fail(err, "%s: out of memory", file);
        free(c);
    }
    if (!rc && sp->add_bos && ivec_push(&t->prefix, sp->bos_id)) rc = nt_fail(err, "%s: out of memory", file);
    if (!rc && sp->add_eos && ivec_push(&t->suffix, sp->eos_id)) rc = nt_fail(err, "%s: out of memory", file);
    if (!rc) rc = added_finish(t, err);
    if (!rc) rc = finish_ids(t, err);
    if (!rc) {
        t->bos = sp->bos_id;
        t->eos = sp->eos_id;
    }
    if (rc) {
        nt_tokenizer_free(&t);
        return -1;
    }
    *out = t;
    return 0;
}

// ---------------------------------------------------------------------------------------------------
// Encoding

typedef struct {
    int32_t id, prev, next;
    uint32_t len; // bytes of the word it covers; 0 once merged into its left neighbour
} bpe_sym;

typedef struct {
    int32_t rank, pos, new_id;
} bpe_merge;

typedef struct {
    const nt_tokenizer *t;
    nt_err *err;
    ivec *out;
    str_map cache;   // word -> index into cache_span
    ivec cache_span; // (start, count) pairs into cache_ids
    ivec cache_ids;
    bpe_sym *sym;
    size_t sym_cap;
    bpe_merge *heap;
    size_t heap_n, heap_cap;
    sbuf word; // a word with continuing_subword_prefix/end_of_word_suffix applied to a character
    sbuf *scratch; // (n_pre) per pre-tokenizer step
    ivec *spans;   // (n_pre) per pre-tokenizer step
    pcre2_match_data **md; // (n_pre + 1)
} enc_state;

static bool merge_less(const bpe_merge *a, const bpe_merge *b) {
    return a->rank < b->rank || (a->rank == b->rank && a->pos < b->pos);
}

static int heap_push(enc_state *st, bpe_merge m) {
    if (st->heap_n == st->heap_cap) {
        size_t cap = st->heap_cap ? 2 * st->heap_cap : 64;
        bpe_merge *h = realloc(st->heap, cap * sizeof(*h));
        if (!h) return -1;
        st->heap = h;
        st->heap_cap = cap;
    }
    size_t i = st->heap_n++;
    while (i > 0 && merge_less(&m, &st->heap[(i - 1) / 2])) {
        st->heap[i] = st->heap[(i - 1) / 2];
        i = (i - 1) / 2;
    }
    st->heap[i] = m;
    return 0;
}

static bpe_merge heap_pop(enc_state *st) {
    bpe_merge top = st->heap[0], last = st->heap[--st->heap_n];
    size_t i = 0, n = st->heap_n;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= n) break;
        if (c + 1 < n && merge_less(&st->heap[c + 1], &st->heap[c])) c++;
        if (!merge_less(&st->heap[c], &last)) break;
        st->heap[i] = st->heap[c];
        i = c;
    }
    if (n) st->heap[i] = last;
    return top;
}

static int sym_add(enc_state *st, size_t *n, int32_t id, uint32_t len) {
    if (*n == st->sym_cap) {
        size_t cap = st->sym_cap ? 2 * st->sym_cap : 64;
        bpe_sym *s = realloc(st->sym, cap * sizeof(*s));
        if (!s) return -1;
        st->sym = s;
        st->sym_cap = cap;
    }
    st->sym[*n] = (bpe_sym){id, (int32_t)*n - 1, (int32_t)*n + 1, len};
    (*n)++;
    return 0;
}

// BPE of one pre-tokenized word, appended to ids: characters (with byte fallback or unk for those not in
// the vocabulary), then merges lowest rank first, leftmost first among equal ranks (HF's merge_all).
static int bpe_word(enc_state *st, const char *w, size_t n, ivec *ids) {
    const nt_tokenizer *t = st->t;
    if (t->ignore_merges) {
        int32_t id = sm_get(&t->vocab, w, n);
        if (id >= 0) return ivec_push(ids, id);
    }
    size_t ns = 0;
    int32_t unk = -1;
    uint32_t unk_len = 0;
    bool have_unk = false;
    for (size_t i = 0; i < n;) {
        size_t k = utf8_len(w + i, n - i);
        const char *s = w + i;
        size_t sn = k;
        if ((t->cont_prefix && i > 0) || (t->eow_suffix && i + k == n)) {
            st->word.n = 0;
            if ((t->cont_prefix && i > 0 && sbuf_add(&st->word, t->cont_prefix, strlen(t->cont_prefix))) ||
                sbuf_add(&st->word, s, k) ||
                (t->eow_suffix && i + k == n && sbuf_add(&st->word, t->eow_suffix, strlen(t->eow_suffix))))
                return -1;
            s = st->word.v;
            sn = st->word.n;
        }
        int32_t id = sm_get(&t->vocab, s, sn);
        if (id >= 0) {
            if (have_unk && sym_add(st, &ns, unk, unk_len)) return -1;
            have_unk = false;
            if (sym_add(st, &ns, id, (uint32_t)k)) return -1;
        } else {
            bool done = false;
            if (t->byte_fallback) {
                bool all = true;
                for (size_t b = 0; b < sn && all; b++) all = t->byte_id[(uint8_t)s[b]] >= 0;
                if (all) { // HF leaves a pending unk where it is here, and adds it after these bytes
                    for (size_t b = 0; b < sn; b++)
                        if (sym_add(st, &ns, t->byte_id[(uint8_t)s[b]], 1)) return -1;
                    done = true;
                }
            }
            if (!done && t->unk_token) {
                if (t->unk_id < 0) {
                    nt_fail(st->err, "%s: unk token '%s' is not in the vocabulary", t->path, t->unk_token);
                    return -2;
                }
                if (have_unk && t->fuse_unk) {
                    unk_len += (uint32_t)k;
                } else {
                    if (have_unk && sym_add(st, &ns, unk, unk_len)) return -1;
                    unk = t->unk_id;
                    unk_len = (uint32_t)k;
                    have_unk = true;
                }
            }
        }
        i += k;
    }
    if (have_unk && sym_add(st, &ns, unk, unk_len)) return -1;
    if (ns == 0) return 0;
    st->sym[ns - 1].next = -1;
    st->heap_n = 0;
    int32_t rank, new_id;
    for (size_t i = 0; i + 1 < ns; i++)
        if (mm_get(&t->merges, st->sym[i].id, st->sym[i + 1].id, &rank, &new_id) &&
            heap_push(st, (bpe_merge){rank, (int32_t)i, new_id}))
            return -1;
    while (st->heap_n) {
        bpe_merge top = heap_pop(st);
        bpe_sym *cur = &st->sym[top.pos];
        if (cur->len == 0 || cur->next < 0) continue;
        bpe_sym *right = &st->sym[cur->next];
        // a stale entry: the pair at pos changed since it was queued
        if (!mm_get(&t->merges, cur->id, right->id, &rank, &new_id) || new_id != top.new_id) continue;
        cur->id = top.new_id;
        cur->len += right->len;
        cur->next = right->next;
        right->len = 0;
        if (cur->next >= 0) st->sym[cur->next].prev = top.pos;
        if (cur->prev >= 0 && mm_get(&t->merges, st->sym[cur->prev].id, cur->id, &rank, &new_id) &&
            heap_push(st, (bpe_merge){rank, cur->prev, new_id}))
            return -1;
        cur = &st->sym[top.pos]; // heap_push does not move sym, but keep it obvious
        if (cur->next >= 0 && mm_get(&t->merges, cur->id, st->sym[cur->next].id, &rank, &new_id) &&
            heap_push(st, (bpe_merge){rank, top.pos, new_id}))
            return -1;
    }
    for (int32_t i = 0; i >= 0; i = st->sym[i].next)
        if (ivec_push(ids, st->sym[i].id)) return -1;
    return 0;
}

// A word through BPE, with the per-call cache of words seen before.
static int model_word(enc_state *st, const char *w, size_t n) {
    if (n == 0) return 0;
    if (n > 256) return bpe_word(st, w, n, st->out); // long words are rare; keep the cache small
    int32_t hit = sm_get(&st->cache, w, n);
    if (hit >= 0) {
        int32_t start = st->cache_span.v[2 * hit], count = st->cache_span.v[2 * hit + 1];
        for (int32_t i = 0; i < count; i++)
            if (ivec_push(st->out, st->cache_ids.v[start + i])) return -1;
        return 0;
    }
    size_t start = st->cache_ids.n;
    int rc = bpe_word(st, w, n, &st->cache_ids);
    if (rc) return rc;
    int32_t idx = (int32_t)(st->cache_span.n / 2);
    if (ivec_push(&st->cache_span, (int32_t)start) || ivec_push(&st->cache_span, (int32_t)(st->cache_ids.n - start)) ||
        sm_put(&st->cache, w, n, idx) < 0)
        return -1;
    for (size_t i = start; i < st->cache_ids.n; i++)
        if (ivec_push(st->out, st->cache_ids.v[i])) return -1;
    return 0;
}

// Splits s into spans (start, end) by matches of re (or of the literal lit), then groups them by behavior
// as HF's NormalizedString::split does. Empty spans are dropped.
static int split_spans(const pcre2_code *re, pcre2_match_data *md, const char *lit, size_t lit_len, int behavior,
                       bool invert, const char *s, size_t n, ivec *spans) {
    // first all (start, end, is_match) pieces covering s
    ivec raw = {0};
    int rc = 0;
    size_t prev = 0, off = 0;
    while (off <= n && !rc) {
        size_t ms, me;
        if (re) {
            int m = pcre2_match(re, (PCRE2_SPTR)s, n, off, PCRE2_NO_UTF_CHECK, md, NULL);
            if (m < 0 && m != PCRE2_ERROR_NOMATCH) // e.g. the JIT stack ran out: the interpreter uses the heap
                m = pcre2_match(re, (PCRE2_SPTR)s, n, off, PCRE2_NO_UTF_CHECK | PCRE2_NO_JIT, md, NULL);
            if (m == PCRE2_ERROR_NOMATCH) break;
            if (m < 0) {
                rc = -3;
                break;
            }
            PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
            ms = ov[0];
            me = ov[1];
        } else {
            const char *hit = NULL;
            for (size_t j = off; j + lit_len <= n; j++)
                if (memcmp(s + j, lit, lit_len) == 0) {
                    hit = s + j;
                    break;
                }
            if (!hit) break;
            ms = (size_t)(hit - s);
            me = ms + lit_len;
        }
        if (prev != ms) rc |= ivec_push(&raw, (int32_t)prev) | ivec_push(&raw, (int32_t)ms) | ivec_push(&raw, invert);
        rc |= ivec_push(&raw, (int32_t)ms) | ivec_push(&raw, (int32_t)me) | ivec_push(&raw, !invert);
        prev = me;
        off = me > ms ? me : (me < n ? me + utf8_len(s + me, n - me) : n + 1);
    }
    if (!rc && prev != n) rc |= ivec_push(&raw, (int32_t)prev) | ivec_push(&raw, (int32_t)n) | ivec_push(&raw, invert);
    if (rc) {
        free(raw.v);
        return rc == -3 ? -3 : -1;
    }
    size_t k = raw.n / 3;
    int32_t *r = raw.v;
    spans->n = 0;
    // grouped spans: (start, end, removed)
    ivec g = {0};
    if (behavior == SPLIT_MERGED_NEXT) {
        bool prev_match = false;
        for (size_t i = k; i-- > 0 && !rc;) {
            bool m = r[3 * i + 2];
            if (m && !prev_match && g.n) g.v[g.n - 3] = r[3 * i];
            else rc |= ivec_push(&g, r[3 * i]) | ivec_push(&g, r[3 * i + 1]) | ivec_push(&g, 0);
            prev_match = m;
        }
        for (size_t i = 0; i < g.n / 6; i++) { // reverse the triples
            size_t a = 3 * i, b = g.n - 3 - 3 * i;
            for (int c = 0; c < 3; c++) {
                int32_t x = g.v[a + c];
                g.v[a + c] = g.v[b + c];
                g.v[b + c] = x;
            }
        }
    } else {
        bool prev_match = false;
        for (size_t i = 0; i < k && !rc; i++) {
            bool m = r[3 * i + 2];
            if (behavior == SPLIT_ISOLATED) {
                rc |= ivec_push(&g, r[3 * i]) | ivec_push(&g, r[3 * i + 1]) | ivec_push(&g, 0);
            } else if (behavior == SPLIT_REMOVED) {
                rc |= ivec_push(&g, r[3 * i]) | ivec_push(&g, r[3 * i + 1]) | ivec_push(&g, m);
            } else if (behavior == SPLIT_CONTIGUOUS) {
                if (m == prev_match && g.n) g.v[g.n - 2] = r[3 * i + 1];
                else rc |= ivec_push(&g, r[3 * i]) | ivec_push(&g, r[3 * i + 1]) | ivec_push(&g, 0);
            } else { // merged with previous
                if (m && !prev_match && g.n) g.v[g.n - 2] = r[3 * i + 1];
                else rc |= ivec_push(&g, r[3 * i]) | ivec_push(&g, r[3 * i + 1]) | ivec_push(&g, 0);
            }
            prev_match = m;
        }
    }
    for (size_t i = 0; i + 2 < g.n && !rc; i += 3)
        if (!g.v[i + 2] && g.v[i + 1] > g.v[i]) rc |= ivec_push(spans, g.v[i]) | ivec_push(spans, g.v[i + 1]);
    free(raw.v);
    free(g.v);
    return rc ? -1 : 0;
}

// Runs pre-tokenizer step k (and the ones after it) on s; at_start: s begins at offset 0 of the input.
static int pre_apply(enc_state *st, int k, const char *s, size_t n, bool at_start) {
    const nt_tokenizer *t = st->t;
    if (n == 0) return 0;
    if (k == t->n_pre) return model_word(st, s, n);
    const pretok_step *p = &t->pre[k];
    sbuf *buf = &st->scratch[k];
    ivec *sp = &st->spans[k];
    buf->n = 0;
    switch (p->kind) {
    case PT_PREFIX_SPACE:
        if (s[0] == ' ') return pre_apply(st, k + 1, s, n, at_start);
        if (sbuf_add(buf, " ", 1) || sbuf_add(buf, s, n)) return -1;
        return pre_apply(st, k + 1, buf->v, buf->n, at_start);
    case PT_BYTEMAP:
        if (sbuf_reserve(buf, 2 * n)) return -1;
        for (size_t i = 0; i < n; i++) {
            uint8_t b = (uint8_t)s[i];
            memcpy(buf->v + buf->n, t->bl_enc[b], t->bl_enc_len[b]);
            buf->n += t->bl_enc_len[b];
        }
        return pre_apply(st, k + 1, buf->v, buf->n, at_start);
    case PT_SPLIT: {
        int rc = split_spans(p->re, st->md[k], NULL, 0, p->behavior, p->invert, s, n, sp);
        if (rc == -3) {
            nt_fail(st->err, "%s: regex match failed on a piece of %zu bytes", t->path, n);
            return -2;
        }
        if (rc) return -1;
        // the spans vector of this level stays put while deeper levels run
        for (size_t i = 0; i + 1 < sp->n; i += 2) {
            int32_t a = sp->v[i], b = sp->v[i + 1];
            if ((rc = pre_apply(st, k + 1, s + a, (size_t)(b - a), at_start && a == 0))) return rc;
        }
        return 0;
    }
    case PT_METASPACE: {
        // HF replaces the spaces first, then prepends unless the text now starts with the replacement
        bool prepend = (p->scheme == PREPEND_ALWAYS || (p->scheme == PREPEND_FIRST && at_start)) && s[0] != ' ' &&
                       !(n >= p->rep_len && memcmp(s, p->rep, p->rep_len) == 0);
        if (prepend && sbuf_add(buf, p->rep, p->rep_len)) return -1;
        if (replace_all(" ", 1, NULL, NULL, p->rep, p->rep_len, s, n, buf)) return -1;
        if (!p->split) return pre_apply(st, k + 1, buf->v, buf->n, at_start);
        if (split_spans(NULL, NULL, p->rep, p->rep_len, SPLIT_MERGED_NEXT, false, buf->v, buf->n, sp)) return -1;
        for (size_t i = 0; i + 1 < sp->n; i += 2) {
            int32_t a = sp->v[i], b = sp->v[i + 1];
            int rc = pre_apply(st, k + 1, buf->v + a, (size_t)(b - a), at_start && a == 0);
            if (rc) return rc;
        }
        return 0;
    }
    }
    return 0;
}

static bool is_word_char(const nt_tokenizer *t, pcre2_match_data *md, const char *s, size_t k) {
    return pcre2_match(t->word_re, (PCRE2_SPTR)s, k, 0, PCRE2_ANCHORED | PCRE2_NO_UTF_CHECK, md, NULL) >= 0;
}

// Splits s by the added tokens whose `normalized` flag equals normalized: triples (start, end, id), id -1
// for text between tokens. Leftmost-longest matching, then single_word/lstrip/rstrip as HF does.
static int added_split(const nt_tokenizer *t, pcre2_match_data *md, bool normalized, const char *s, size_t n,
                       ivec *out) {
    out->n = 0;
    size_t start_off = 0, i = 0;
    while (i < n) {
        int best = -1;
        size_t best_len = 0;
        for (int a = 0; a < t->n_added; a++) {
            const added_token *tk = &t->added[a];
            if (tk->normalized != normalized || tk->pat_len == 0 || tk->pat_len <= best_len) continue;
            if (tk->pat_len <= n - i && s[i] == tk->pattern[0] && memcmp(s + i, tk->pattern, tk->pat_len) == 0) {
                best = a;
                best_len = tk->pat_len;
            }
        }
        if (best < 0) {
            i++;
            continue;
        }
        const added_token *tk = &t->added[best];
        size_t ms = i, me = i + best_len;
        i = me; // non-overlapping: the search goes on after this match even when it is rejected
        if (tk->single_word) {
            bool left_ok = true, right_ok = true;
            if (ms > 0) { // the character before the match
                size_t b = nt_utf8_prev(s, ms);
                left_ok = !is_word_char(t, md, s + b, ms - b);
            }
            if (me < n) right_ok = !is_word_char(t, md, s + me, utf8_len(s + me, n - me));
            if (!left_ok || !right_ok) continue;
        }
        if (tk->lstrip) {
            size_t b = ms, k;
            while (b > 0) {
                size_t c = nt_utf8_prev(s, b);
                if (!nt_unicode_white_space(utf8_cp(s + c, b - c, &k))) break;
                b = c;
            }
            ms = b > start_off ? b : start_off;
        }
        if (tk->rstrip) {
            size_t k;
            while (me < n && nt_unicode_white_space(utf8_cp(s + me, n - me, &k))) me += k;
            i = me;
        }
        if (start_off < ms && (ivec_push(out, (int32_t)start_off) || ivec_push(out, (int32_t)ms) || ivec_push(out, -1)))
            return -1;
        if (ivec_push(out, (int32_t)ms) || ivec_push(out, (int32_t)me) || ivec_push(out, tk->id)) return -1;
        start_off = me;
    }
    if (start_off < n && (ivec_push(out, (int32_t)start_off) || ivec_push(out, (int32_t)n) || ivec_push(out, -1)))
        return -1;
    return 0;
}

// Normalizes one piece of raw text, cuts it on normalized added tokens and pre-tokenizes the rest.
static int encode_segment(enc_state *st, const char *s, size_t n, bool at_start, sbuf nbufs[2], ivec *spans2) {
    const nt_tokenizer *t = st->t;
    const char *ns = s;
    size_t nn = n;
    pcre2_match_data *md = st->md[t->n_pre];
    if (t->n_norm && normalize(t, s, n, nbufs, md, &ns, &nn)) return -1;
    if (!t->any_norm_added) return pre_apply(st, 0, ns, nn, at_start);
    if (added_split(t, md, true, ns, nn, spans2)) return -1;
    for (size_t i = 0; i + 2 < spans2->n; i += 3) {
        int32_t a = spans2->v[i], b = spans2->v[i + 1], id = spans2->v[i + 2];
        int rc = id >= 0 ? ivec_push(st->out, id) : pre_apply(st, 0, ns + a, (size_t)(b - a), at_start && a == 0);
        if (rc) return rc;
    }
    return 0;
}

int nt_tokenizer_encode(const nt_tokenizer *tok, const char *text, size_t len, bool add_special, int32_t **ids,
                        size_t *n_ids, nt_err *err) {
    const nt_tokenizer *t = tok;
    *ids = NULL;
    *n_ids = 0;
    if (len > INT32_MAX / 2) return nt_fail(err, "%s: text of %zu bytes is too long to encode", t->path, len);
    ivec out = {0};
    sbuf clean = {0}, nbufs[2] = {{0}, {0}};
    ivec spans1 = {0}, spans2 = {0};
    enc_state st = {.t = t, .err = err, .out = &out};
    int rc = 0;
    // invalid UTF-8 cannot come from HF's API (it takes str); replace it, as Python's errors="replace" would
    if (!nt_utf8_valid(text, len)) {
        if (utf8_lossy(&clean, text, len)) rc = -1;
        text = clean.v;
        len = clean.n;
    }
    st.scratch = calloc((size_t)t->n_pre + 1, sizeof(*st.scratch));
    st.spans = calloc((size_t)t->n_pre + 1, sizeof(*st.spans));
    st.md = calloc((size_t)t->n_pre + 1, sizeof(*st.md));
    if (!st.scratch || !st.spans || !st.md) rc = -1;
    for (int k = 0; !rc && k <= t->n_pre; k++)
        if (!(st.md[k] = pcre2_match_data_create(8, NULL))) rc = -1;
    if (!rc && add_special)
        for (size_t i = 0; i < t->prefix.n && !rc; i++) rc = ivec_push(&out, t->prefix.v[i]);
    if (!rc && t->any_raw_added) {
        rc = added_split(t, st.md[t->n_pre], false, text, len, &spans1);
        for (size_t i = 0; !rc && i + 2 < spans1.n; i += 3) {
            int32_t a = spans1.v[i], b = spans1.v[i + 1], id = spans1.v[i + 2];
            rc = id >= 0 ? ivec_push(&out, id) : encode_segment(&st, text + a, (size_t)(b - a), a == 0, nbufs, &spans2);
        }
    } else if (!rc && len > 0) {
        rc = encode_segment(&st, text, len, true, nbufs, &spans2);
    }
    if (!rc && add_special)
        for (size_t i = 0; i < t->suffix.n && !rc; i++) rc = ivec_push(&out, t->suffix.v[i]);
    if (rc == -1) nt_fail(err, "%s: out of memory while encoding %zu bytes", t->path, len);
    for (int k = 0; k <= t->n_pre; k++) {
        if (st.scratch) free(st.scratch[k].v);
        if (st.spans) free(st.spans[k].v);
        if (st.md) pcre2_match_data_free(st.md[k]);
    }
    free(st.scratch);
    free(st.spans);
    free(st.md);
    sm_free(&st.cache);
    free(st.cache_span.v);
    free(st.cache_ids.v);
    free(st.sym);
    free(st.heap);
    free(st.word.v);
    free(clean.v);
    free(nbufs[0].v);
    free(nbufs[1].v);
    free(spans1.v);
    free(spans2.v);
    if (rc) {
        free(out.v);
        return -1;
    }
    if (!out.v) out.v = malloc(sizeof(int32_t)); // a valid pointer even for no ids
    if (!out.v) return nt_fail(err, "%s: out of memory", t->path);
    *ids = out.v;
    *n_ids = out.n;
    return 0;
}

// ---------------------------------------------------------------------------------------------------
// Decoding: a list of token strings goes through the decoder steps, then is joined

typedef struct {
    sbuf buf;
    ivec off; // n + 1 offsets into buf
} tlist;

static size_t tl_n(const tlist *l) { return l->off.n ? l->off.n - 1 : 0; }
static const char *tl_s(const tlist *l, size_t i) { return l->buf.v + l->off.v[i]; }
static size_t tl_len(const tlist *l, size_t i) { return (size_t)(l->off.v[i + 1] - l->off.v[i]); }

static void tl_free(tlist *l) {
    free(l->buf.v);
    free(l->off.v);
    memset(l, 0, sizeof(*l));
}

static int tl_begin(tlist *l) {
    l->buf.n = 0;
    l->off.n = 0;
    return ivec_push(&l->off, 0) || sbuf_reserve(&l->buf, 0);
}

// Ends the token being built (everything added to buf since the last end).
static int tl_end(tlist *l) { return ivec_push(&l->off, (int32_t)l->buf.n); }

static int tl_add(tlist *l, const char *s, size_t n) { return sbuf_add(&l->buf, s, n) || tl_end(l); }

static int hexval(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

// One decoder step: in -> out.
static int dec_apply(const nt_tokenizer *t, const dec_step *d, pcre2_match_data *md, const tlist *in, tlist *out) {
    size_t n = tl_n(in);
    if (tl_begin(out)) return -1;
    switch (d->kind) {
    case DC_BYTELEVEL: { // all bytes, then one lossy UTF-8 token
        sbuf bytes = {0};
        int rc = 0;
        for (size_t i = 0; i < n && !rc; i++) {
            const char *s = tl_s(in, i);
            size_t len = tl_len(in, i), mark = bytes.n;
            bool all = true;
            for (size_t j = 0; j < len && !rc;) {
                size_t k;
                int32_t cp = utf8_cp(s + j, len - j, &k);
                if (cp < 0 || cp >= 512 || t->bl_dec[cp] < 0) {
                    all = false;
                    break;
                }
                char b = (char)t->bl_dec[cp];
                rc = sbuf_add(&bytes, &b, 1);
                j += k;
            }
            if (!rc && !all) {
                bytes.n = mark;
                rc = sbuf_add(&bytes, s, len);
            }
        }
        if (!rc) rc = utf8_lossy(&out->buf, bytes.v ? bytes.v : "", bytes.n) || tl_end(out);
        free(bytes.v);
        return rc;
    }
    case DC_FUSE:
        for (size_t i = 0; i < n; i++)
            if (sbuf_add(&out->buf, tl_s(in, i), tl_len(in, i))) return -1;
        return tl_end(out);
    case DC_BYTEFALLBACK: {
        sbuf pend = {0};
        int rc = 0;
        for (size_t i = 0; i <= n && !rc; i++) {
            const char *s = i < n ? tl_s(in, i) : NULL;
            size_t len = i < n ? tl_len(in, i) : 0;
            int hi, lo;
            if (s && len == 6 && memcmp(s, "<0x", 3) == 0 && s[5] == '>' && (hi = hexval(s[3])) >= 0 &&
                (lo = hexval(s[4])) >= 0) {
                char b = (char)(hi * 16 + lo);
                rc = sbuf_add(&pend, &b, 1);
                continue;
            }
            if (pend.n) { // the bytes so far: one token if they are valid UTF-8, else one U+FFFD per byte
                if (nt_utf8_valid(pend.v, pend.n))
                    rc = tl_add(out, pend.v, pend.n);
                else
                    for (size_t b = 0; b < pend.n && !rc; b++) rc = tl_add(out, "\xEF\xBF\xBD", 3);
                pend.n = 0;
            }
            if (s && !rc) rc = tl_add(out, s, len);
        }
        free(pend.v);
        return rc;
    }
    case DC_REPLACE:
        for (size_t i = 0; i < n; i++)
            if (replace_all(d->a, d->a_len, d->re, md, d->b, d->b_len, tl_s(in, i), tl_len(in, i), &out->buf) ||
                tl_end(out))
                return -1;
        return 0;
    case DC_STRIP:
        for (size_t i = 0; i < n; i++) {
            const char *s = tl_s(in, i);
            size_t len = tl_len(in, i), a = 0, b = len;
            for (int c = 0; c < d->start && a < len; c++) {
                size_t k;
                if (utf8_cp(s + a, len - a, &k) != d->ch) break;
                a += k;
            }
            for (int c = 0; c < d->stop && b > a; c++) {
                size_t p = nt_utf8_prev(s, b), k;
                if (p < a || utf8_cp(s + p, b - p, &k) != d->ch) break;
                b = p;
            }
            if (tl_add(out, s + a, b - a)) return -1;
        }
        return 0;
    case DC_METASPACE:
        for (size_t i = 0; i < n; i++) {
            const char *s = tl_s(in, i);
            size_t len = tl_len(in, i);
            for (size_t j = 0; j < len;) {
                if (d->a_len && j + d->a_len <= len && memcmp(s + j, d->a, d->a_len) == 0) {
                    if (!(i == 0 && d->scheme != PREPEND_NEVER) && sbuf_add(&out->buf, " ", 1)) return -1;
                    j += d->a_len;
                } else {
                    size_t k = utf8_len(s + j, len - j);
                    if (sbuf_add(&out->buf, s + j, k)) return -1;
                    j += k;
                }
            }
            if (tl_end(out)) return -1;
        }
        return 0;
    case DC_BPE_SUFFIX:
        for (size_t i = 0; i < n; i++) {
            const char *rep = i + 1 == n ? "" : " ";
            if (replace_all(d->a, d->a_len, NULL, NULL, rep, strlen(rep), tl_s(in, i), tl_len(in, i), &out->buf) ||
                tl_end(out))
                return -1;
        }
        return 0;
    }
    return 0;
}

int nt_tokenizer_decode(const nt_tokenizer *tok, const int32_t *ids, size_t n, bool skip_special, char **text,
                        nt_err *err) {
    const nt_tokenizer *t = tok;
    *text = NULL;
    tlist a = {0}, b = {0};
    sbuf res = {0};
    pcre2_match_data *md = pcre2_match_data_create(8, NULL);
    int rc = md ? tl_begin(&a) : -1;
    for (size_t i = 0; i < n && !rc; i++) {
        int32_t id = ids[i];
        if (id < 0 || id >= t->n_ids) continue; // HF drops ids it does not know
        int32_t ai = t->id_added[id], vi = t->id_vocab[id];
        if (ai >= 0 && skip_special && t->added[ai].special) continue;
        if (ai >= 0) rc = tl_add(&a, t->added[ai].content, t->added[ai].len);
        else if (vi >= 0) rc = tl_add(&a, t->vocab.arena + t->vocab.e[vi].off, t->vocab.e[vi].len);
    }
    tlist *cur = &a, *nxt = &b;
    for (int k = 0; k < t->n_dec && !rc; k++) {
        rc = dec_apply(t, &t->dec[k], md, cur, nxt);
        tlist *x = cur;
        cur = nxt;
        nxt = x;
    }
    // joined: with "" after a decoder, with " " when there is none
    for (size_t i = 0; i < tl_n(cur) && !rc; i++) {
        if (i > 0 && !t->has_decoder) rc = sbuf_add(&res, " ", 1);
        if (!rc) rc = sbuf_add(&res, tl_s(cur, i), tl_len(cur, i));
    }
    if (!rc) rc = sbuf_reserve(&res, 0);
    tl_free(&a);
    tl_free(&b);
    pcre2_match_data_free(md);
    if (rc) {
        free(res.v);
        return nt_fail(err, "%s: out of memory while decoding %zu ids", t->path, n);
    }
    res.v[res.n] = '\0';
    *text = res.v;
    return 0;
}

// ---------------------------------------------------------------------------------------------------
// Queries

int32_t nt_tokenizer_vocab_size(const nt_tokenizer *tok) { return tok->n_ids; }
int32_t nt_tokenizer_bos_id(const nt_tokenizer *tok) { return tok->bos; }
int32_t nt_tokenizer_eos_id(const nt_tokenizer *tok) { return tok->eos; }

const char *nt_tokenizer_piece(const nt_tokenizer *tok, int32_t id) {
    if (id < 0 || id >= tok->n_ids) return NULL;
    if (tok->id_vocab[id] >= 0) return tok->vocab.arena + tok->vocab.e[tok->id_vocab[id]].off;
    if (tok->id_added[id] >= 0) return tok->added[tok->id_added[id]].content;
    return NULL;
}

bool nt_tokenizer_is_special(const nt_tokenizer *tok, int32_t id) {
    if (id < 0 || id >= tok->n_ids || tok->id_added[id] < 0) return false;
    return tok->added[tok->id_added[id]].special;
}
