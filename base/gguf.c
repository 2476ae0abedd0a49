// gguf.c: the GGUF reader (see gguf.h). Reference code: the file is mapped read-only and parsed with a cursor
// that checks every read against the bytes left, so a hostile header can neither read past the end nor make
// us allocate more than a small multiple of the file's size: each count is bounded by what the remaining bytes
// could hold before anything is allocated for it. Values are read with memcpy (nothing in a GGUF header is
// aligned). All sizes are uint64 from the file; every product and sum on them is checked for overflow.
#define _POSIX_C_SOURCE 200809L
#include "gguf.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "gguf.c assumes a little-endian host (normtweak reads little-endian GGUF files only)"
#endif

#define GGUF_HEADER_BYTES 24      // magic, version, tensor count, key/value count
#define GGUF_MAX_KEY 65535        // the GGUF spec's limit on a key's length
#define GGUF_MAX_NAME 1024        // tensor names: GGML's own limit is 64; longer means a corrupt file
#define GGUF_MIN_KV_BYTES 13      // a key/value at least: key length (8), 1 key byte, type (4)
#define GGUF_MIN_TENSOR_BYTES 33  // a tensor info at least: name length (8), 1 byte, n_dims, 1 dim, type, offset

// ---------------------------------------------------------------------------------------------- types

static const struct {
    const char *name;
    unsigned size; // bytes of a scalar value (0: STRING and ARRAY, which have their own framing)
} vtypes[NT_GGUF_VTYPE_COUNT] = {
    [NT_GGUF_UINT8] = {"UINT8", 1},     [NT_GGUF_INT8] = {"INT8", 1},       [NT_GGUF_UINT16] = {"UINT16", 2},
    [NT_GGUF_INT16] = {"INT16", 2},     [NT_GGUF_UINT32] = {"UINT32", 4},   [NT_GGUF_INT32] = {"INT32", 4},
    [NT_GGUF_FLOAT32] = {"FLOAT32", 4}, [NT_GGUF_BOOL] = {"BOOL", 1},       [NT_GGUF_STRING] = {"STRING", 0},
    [NT_GGUF_ARRAY] = {"ARRAY", 0},     [NT_GGUF_UINT64] = {"UINT64", 8},   [NT_GGUF_INT64] = {"INT64", 8},
    [NT_GGUF_FLOAT64] = {"FLOAT64", 8},
};

const char *nt_gguf_vtype_name(nt_gguf_vtype t) { return (unsigned)t < NT_GGUF_VTYPE_COUNT ? vtypes[t].name : "?"; }

static bool is_int_type(nt_gguf_vtype t) {
    return t == NT_GGUF_UINT8 || t == NT_GGUF_INT8 || t == NT_GGUF_UINT16 || t == NT_GGUF_INT16 ||
           t == NT_GGUF_UINT32 || t == NT_GGUF_INT32 || t == NT_GGUF_UINT64 || t == NT_GGUF_INT64;
}

// The integer of type t at p into *out; false when it does not fit in int64 (a UINT64 >= 2^63).
static bool decode_int(nt_gguf_vtype t, const uint8_t *p, int64_t *out) {
    switch (t) {
    case NT_GGUF_UINT8: *out = p[0]; return true;
    case NT_GGUF_INT8: *out = (int8_t)p[0]; return true;
    case NT_GGUF_UINT16: { uint16_t v; memcpy(&v, p, 2); *out = v; return true; }
    case NT_GGUF_INT16: { int16_t v; memcpy(&v, p, 2); *out = v; return true; }
    case NT_GGUF_UINT32: { uint32_t v; memcpy(&v, p, 4); *out = v; return true; }
    case NT_GGUF_INT32: { int32_t v; memcpy(&v, p, 4); *out = v; return true; }
    case NT_GGUF_INT64: { int64_t v; memcpy(&v, p, 8); *out = v; return true; }
    case NT_GGUF_UINT64: {
        uint64_t v;
        memcpy(&v, p, 8);
        if (v > (uint64_t)INT64_MAX) return false;
        *out = (int64_t)v;
        return true;
    }
    default: NT_ASSERT(!"decode_int on a non-integer type"); return false;
    }
}

// ---------------------------------------------------------------------------------------------- the handle

typedef struct {
    char *key;           // NUL-terminated copy
    nt_gguf_vtype type;
    const uint8_t *val;  // scalars: the value's bytes in the map; STRING: the string's bytes; ARRAY: element 0
    uint64_t len;        // STRING: length in bytes
    char *str;           // STRING: NUL-terminated copy of the value
    nt_gguf_vtype elem;  // ARRAY: element type
    uint64_t count;      // ARRAY: element count
    uint64_t *str_off;   // ARRAY of STRING: (count) offset in the map of each string's 8-byte length
} gguf_kv;

struct nt_gguf {
    char *path;
    const uint8_t *map; // the whole file, PROT_READ (or the caller's buffer)
    size_t size;
    bool mapped;        // map is ours to munmap
    uint32_t version;
    uint64_t alignment, data_off;
    gguf_kv *kv;        // (n_kv) in file order
    size_t n_kv;
    nt_gguf_tensor *t;  // (n_t) in file order
    size_t n_t;
    size_t *kv_slots, *t_slots; // open-addressing hashes over keys / tensor names: index + 1, 0 = empty
    size_t n_kv_slots, n_t_slots;
};

static uint64_t hash_name(const char *s) { // FNV-1a
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

// The names are reached through a callback so one hash serves keys and tensor names.
typedef const char *(*name_of_fn)(const nt_gguf *g, size_t i);
static const char *kv_name(const nt_gguf *g, size_t i) { return g->kv[i].key; }
static const char *t_name(const nt_gguf *g, size_t i) { return g->t[i].name; }

static int64_t table_find(const nt_gguf *g, const size_t *slots, size_t n_slots, name_of_fn name_of,
                          const char *name) {
    if (!slots || !name) return -1;
    size_t mask = n_slots - 1;
    for (size_t i = (size_t)hash_name(name) & mask;; i = (i + 1) & mask) {
        if (slots[i] == 0) return -1;
        if (strcmp(name_of(g, slots[i] - 1), name) == 0) return (int64_t)(slots[i] - 1);
    }
}

// Builds a hash over n names (load factor <= 1/2); returns the index of the first duplicate, or -1.
// *slots is NULL on out-of-memory (checked by the caller).
static int64_t table_build(const nt_gguf *g, size_t n, name_of_fn name_of, size_t **slots, size_t *n_slots) {
    size_t want = 16;
    while (want < 2 * n) want *= 2;
    *slots = calloc(want, sizeof(size_t));
    *n_slots = want;
    if (!*slots) return -1;
    size_t mask = want - 1;
    for (size_t t = 0; t < n; t++) {
        const char *name = name_of(g, t);
        size_t i = (size_t)hash_name(name) & mask;
        for (; (*slots)[i]; i = (i + 1) & mask)
            if (strcmp(name_of(g, (*slots)[i] - 1), name) == 0) return (int64_t)t;
        (*slots)[i] = t + 1;
    }
    return -1;
}

void nt_gguf_close(nt_gguf **pg) {
    if (!pg || !*pg) return;
    nt_gguf *g = *pg;
    for (size_t i = 0; i < g->n_kv; i++) {
        free(g->kv[i].key);
        free(g->kv[i].str);
        free(g->kv[i].str_off);
    }
    for (size_t i = 0; i < g->n_t; i++) free((char *)g->t[i].name);
    free(g->kv);
    free(g->t);
    free(g->kv_slots);
    free(g->t_slots);
    if (g->map && g->mapped) munmap((void *)g->map, g->size);
    free(g->path);
    free(g);
    *pg = NULL;
}

// ---------------------------------------------------------------------------------------------- the cursor

typedef struct {
    const uint8_t *p;
    size_t size, pos;
    const char *path;
} cursor;

// Fails unless n more bytes are there; `what` (and `name`, if not NULL) say what was being read.
static int need(cursor *c, uint64_t n, const char *what, const char *name, nt_err *err) {
    if (n <= c->size - c->pos) return 0;
    return nt_fail(err, "%s: truncated: %s%s%.200s%s needs %llu bytes at offset %zu, the file has %zu", c->path, what,
                   name ? " '" : "", name ? name : "", name ? "'" : "", (unsigned long long)n, c->pos, c->size);
}

static int rd_u32(cursor *c, uint32_t *v, const char *what, const char *name, nt_err *err) {
    if (need(c, 4, what, name, err)) return -1;
    memcpy(v, c->p + c->pos, 4);
    c->pos += 4;
    return 0;
}

static int rd_u64(cursor *c, uint64_t *v, const char *what, const char *name, nt_err *err) {
    if (need(c, 8, what, name, err)) return -1;
    memcpy(v, c->p + c->pos, 8);
    c->pos += 8;
    return 0;
}

// A GGUF string (u64 length + bytes): *s points into the map, *len its length, the cursor moves past it.
static int rd_str(cursor *c, const uint8_t **s, uint64_t *len, const char *what, const char *name, nt_err *err) {
    if (rd_u64(c, len, what, name, err) || need(c, *len, what, name, err)) return -1;
    *s = c->p + c->pos;
    c->pos += (size_t)*len;
    return 0;
}

// A key or tensor name: 1..max bytes, no NUL; returned as a new NUL-terminated string.
static char *rd_name(cursor *c, uint64_t max, const char *what, nt_err *err) {
    size_t at = c->pos;
    const uint8_t *s;
    uint64_t len;
    if (rd_str(c, &s, &len, what, NULL, err)) return NULL;
    if (len == 0) {
        nt_fail(err, "%s: %s at offset %zu is empty", c->path, what, at);
        return NULL;
    }
    if (len > max) {
        nt_fail(err, "%s: %s at offset %zu is %llu bytes long (the limit is %llu)", c->path, what, at,
                (unsigned long long)len, (unsigned long long)max);
        return NULL;
    }
    if (memchr(s, '\0', (size_t)len)) {
        nt_fail(err, "%s: %s at offset %zu contains a NUL byte", c->path, what, at);
        return NULL;
    }
    char *out = malloc((size_t)len + 1);
    if (!out) {
        nt_fail(err, "%s: out of memory", c->path);
        return NULL;
    }
    memcpy(out, s, (size_t)len);
    out[len] = '\0';
    return out;
}

// ---------------------------------------------------------------------------------------------- parsing

// The value of key kv->key, of type kv->type (already read).
static int parse_value(cursor *c, gguf_kv *kv, nt_err *err) {
    const char *key = kv->key;
    if ((unsigned)kv->type >= NT_GGUF_VTYPE_COUNT)
        return nt_fail(err, "%s: metadata key '%.200s' has unknown value type %u", c->path, key, (unsigned)kv->type);
    if (kv->type == NT_GGUF_STRING) {
        if (rd_str(c, &kv->val, &kv->len, "the string value of key", key, err)) return -1;
        kv->str = malloc((size_t)kv->len + 1);
        if (!kv->str) return nt_fail(err, "%s: out of memory for the value of '%.200s'", c->path, key);
        memcpy(kv->str, kv->val, (size_t)kv->len);
        kv->str[kv->len] = '\0';
        return 0;
    }
    if (kv->type != NT_GGUF_ARRAY) {
        if (need(c, vtypes[kv->type].size, "the value of key", key, err)) return -1;
        kv->val = c->p + c->pos;
        c->pos += vtypes[kv->type].size;
        if (kv->type == NT_GGUF_BOOL && kv->val[0] > 1)
            return nt_fail(err, "%s: metadata key '%.200s' is a BOOL of value %u (must be 0 or 1)", c->path, key,
                           kv->val[0]);
        return 0;
    }
    uint32_t elem;
    if (rd_u32(c, &elem, "the array type of key", key, err) || rd_u64(c, &kv->count, "the array length of key", key, err))
        return -1;
    kv->elem = (nt_gguf_vtype)elem;
    if (elem >= NT_GGUF_VTYPE_COUNT)
        return nt_fail(err, "%s: metadata key '%.200s' is an array of unknown element type %u", c->path, key, elem);
    if (elem == NT_GGUF_ARRAY)
        return nt_fail(err, "%s: metadata key '%.200s' is an array of arrays, which normtweak does not read", c->path,
                       key);
    size_t left = c->size - c->pos;
    kv->val = c->p + c->pos;
    if (elem == NT_GGUF_STRING) {
        if (kv->count > left / 8)
            return nt_fail(err, "%s: metadata key '%.200s' claims %llu strings, more than the %zu bytes left can hold",
                           c->path, key, (unsigned long long)kv->count, left);
        kv->str_off = malloc((kv->count ? (size_t)kv->count : 1) * sizeof(uint64_t));
        if (!kv->str_off) return nt_fail(err, "%s: out of memory for the array '%.200s'", c->path, key);
        for (uint64_t i = 0; i < kv->count; i++) {
            kv->str_off[i] = c->pos;
            const uint8_t *s;
            uint64_t len;
            if (rd_str(c, &s, &len, "a string of array", key, err)) return -1;
        }
        return 0;
    }
    unsigned esz = vtypes[elem].size;
    if (kv->count > left / esz)
        return nt_fail(err, "%s: truncated: metadata key '%.200s' claims %llu %s elements, more than the %zu bytes left",
                       c->path, key, (unsigned long long)kv->count, vtypes[elem].name, left);
    if (elem == NT_GGUF_BOOL)
        for (uint64_t i = 0; i < kv->count; i++)
            if (kv->val[i] > 1)
                return nt_fail(err, "%s: metadata key '%.200s' element %llu is a BOOL of value %u (must be 0 or 1)",
                               c->path, key, (unsigned long long)i, kv->val[i]);
    c->pos += (size_t)(kv->count * esz);
    return 0;
}

static int parse_kvs(nt_gguf *g, cursor *c, uint64_t n_kv, nt_err *err) {
    size_t left = c->size - c->pos;
    if (n_kv > left / GGUF_MIN_KV_BYTES)
        return nt_fail(err, "%s: header claims %llu metadata keys, more than the %zu bytes left can hold", g->path,
                       (unsigned long long)n_kv, left);
    g->kv = calloc(n_kv ? (size_t)n_kv : 1, sizeof(gguf_kv));
    if (!g->kv) return nt_fail(err, "%s: out of memory", g->path);
    for (uint64_t i = 0; i < n_kv; i++) {
        gguf_kv *kv = &g->kv[i];
        kv->key = rd_name(c, GGUF_MAX_KEY, "metadata key", err);
        if (!kv->key) return -1;
        g->n_kv++; // from here on nt_gguf_close frees what kv holds
        uint32_t type;
        if (rd_u32(c, &type, "the value type of key", kv->key, err)) return -1;
        kv->type = (nt_gguf_vtype)type;
        if (parse_value(c, kv, err)) return -1;
    }
    int64_t dup = table_build(g, g->n_kv, kv_name, &g->kv_slots, &g->n_kv_slots);
    if (!g->kv_slots) return nt_fail(err, "%s: out of memory", g->path);
    if (dup >= 0) return nt_fail(err, "%s: metadata key '%.200s' appears twice", g->path, g->kv[dup].key);
    return 0;
}

static int parse_alignment(nt_gguf *g, nt_err *err) {
    g->alignment = NT_GGUF_DEFAULT_ALIGNMENT;
    if (!nt_gguf_has(g, "general.alignment")) return 0;
    int64_t a;
    if (nt_gguf_get_int(g, "general.alignment", &a, err)) return -1;
    if (a <= 0 || (a & (a - 1)) != 0)
        return nt_fail(err, "%s: general.alignment is %lld, not a positive power of two", g->path, (long long)a);
    g->alignment = (uint64_t)a;
    return 0;
}

// One tensor info (name, n_dims, dims, type, offset); its data is placed later, once the data section is known.
static int parse_tensor_info(nt_gguf *g, cursor *c, nt_gguf_tensor *t, nt_err *err) {
    t->file = g->path;
    t->name = rd_name(c, GGUF_MAX_NAME, "tensor name", err);
    if (!t->name) return -1;
    g->n_t++;
    const char *nm = t->name;
    uint32_t nd;
    if (rd_u32(c, &nd, "the n_dims of tensor", nm, err)) return -1;
    if (nd < 1 || nd > NT_GGUF_MAX_DIMS)
        return nt_fail(err, "%s: tensor '%.200s' has %u dims (1 to %d are allowed)", g->path, nm, nd, NT_GGUF_MAX_DIMS);
    t->n_dims = (int)nd;
    int64_t numel = 1;
    for (int d = 0; d < NT_GGUF_MAX_DIMS; d++) {
        t->dims[d] = 1;
        if (d >= t->n_dims) continue;
        uint64_t v;
        if (rd_u64(c, &v, "the dims of tensor", nm, err)) return -1;
        if (v == 0) return nt_fail(err, "%s: tensor '%.200s' has a zero dim (dim %d)", g->path, nm, d);
        if (v > (uint64_t)INT64_MAX || __builtin_mul_overflow(numel, (int64_t)v, &numel))
            return nt_fail(err, "%s: tensor '%.200s' has dims whose product overflows (dim %d is %llu)", g->path, nm, d,
                           (unsigned long long)v);
        t->dims[d] = (int64_t)v;
    }
    t->n_elements = numel;
    t->n_rows = numel / t->dims[0];
    uint32_t type;
    if (rd_u32(c, &type, "the type of tensor", nm, err) || rd_u64(c, &t->offset, "the offset of tensor", nm, err))
        return -1;
    const nt_ggml_traits *tr = nt_ggml_traits_of(type);
    if (!tr) return nt_fail(err, "%s: tensor '%.200s' has unknown type %u", g->path, nm, type);
    t->type = (nt_ggml_type)type;
    if (t->dims[0] % tr->block != 0)
        return nt_fail(err, "%s: tensor '%.200s' has rows of %lld values, not a multiple of %s's block of %d", g->path,
                       nm, (long long)t->dims[0], tr->name, tr->block);
    uint64_t nbytes;
    if (__builtin_mul_overflow((uint64_t)(numel / tr->block), (uint64_t)tr->bytes, &nbytes) || nbytes > SIZE_MAX)
        return nt_fail(err, "%s: tensor '%.200s' size overflows (%lld %s values)", g->path, nm, (long long)numel,
                       tr->name);
    t->nbytes = (size_t)nbytes;
    return 0;
}

typedef struct {
    uint64_t begin, end;
    size_t i;
} range;

static int cmp_range(const void *a, const void *b) {
    const range *x = a, *y = b;
    if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
    return x->i < y->i ? -1 : (x->i > y->i);
}

// Places every tensor in the data section: aligned, inside it, no two sharing a byte.
static int place_tensors(nt_gguf *g, nt_err *err) {
    uint64_t data_size = g->size - g->data_off; // data_off <= size, checked by the caller
    range *r = malloc((g->n_t ? g->n_t : 1) * sizeof(range));
    if (!r) return nt_fail(err, "%s: out of memory", g->path);
    int rc = 0;
    for (size_t i = 0; i < g->n_t && rc == 0; i++) {
        nt_gguf_tensor *t = &g->t[i];
        if (t->offset % g->alignment != 0)
            rc = nt_fail(err, "%s: tensor '%.200s' offset %llu is not a multiple of the alignment %llu", g->path,
                         t->name, (unsigned long long)t->offset, (unsigned long long)g->alignment);
        else if (t->offset > data_size || t->nbytes > data_size - t->offset)
            rc = nt_fail(err,
                         "%s: truncated: tensor '%.200s' (%zu bytes at data offset %llu) runs past the end of the "
                         "data section (%llu bytes)",
                         g->path, t->name, t->nbytes, (unsigned long long)t->offset, (unsigned long long)data_size);
        else
            t->data = g->map + g->data_off + t->offset;
        r[i] = (range){t->offset, t->offset + t->nbytes, i};
    }
    if (rc == 0) {
        qsort(r, g->n_t, sizeof(range), cmp_range);
        for (size_t i = 1; i < g->n_t && rc == 0; i++)
            if (r[i].begin < r[i - 1].end)
                rc = nt_fail(err, "%s: tensors '%.200s' [%llu, %llu) and '%.200s' [%llu, %llu) overlap", g->path,
                             g->t[r[i - 1].i].name, (unsigned long long)r[i - 1].begin,
                             (unsigned long long)r[i - 1].end, g->t[r[i].i].name, (unsigned long long)r[i].begin,
                             (unsigned long long)r[i].end);
    }
    free(r);
    return rc;
}

static int parse(nt_gguf *g, nt_err *err) {
    cursor c = {g->map, g->size, 0, g->path};
    if (g->size < 4 || memcmp(g->map, "GGUF", 4) != 0) {
        unsigned char m[4] = {0};
        memcpy(m, g->map, g->size < 4 ? g->size : 4);
        return nt_fail(err, "%s: not a GGUF file (starts with bytes %02x %02x %02x %02x, not 'GGUF')", g->path, m[0],
                       m[1], m[2], m[3]);
    }
    c.pos = 4;
    uint32_t version;
    uint64_t n_t, n_kv;
    if (rd_u32(&c, &version, "the header's version", NULL, err)) return -1;
    if (version == 1) return nt_fail(err, "%s: GGUF version 1 is not supported (only 2 and 3)", g->path);
    if (version != 2 && version != 3) {
        uint32_t swapped = __builtin_bswap32(version);
        if (swapped >= 1 && swapped <= 3)
            return nt_fail(err, "%s: a big-endian GGUF file (version %u), which normtweak does not read", g->path,
                           swapped);
        return nt_fail(err, "%s: unsupported GGUF version %u (only 2 and 3)", g->path, version);
    }
    g->version = version;
    if (rd_u64(&c, &n_t, "the header's tensor count", NULL, err) ||
        rd_u64(&c, &n_kv, "the header's metadata key count", NULL, err))
        return -1;
    if (parse_kvs(g, &c, n_kv, err) || parse_alignment(g, err)) return -1;

    size_t left = c.size - c.pos;
    if (n_t > left / GGUF_MIN_TENSOR_BYTES)
        return nt_fail(err, "%s: header claims %llu tensors, more than the %zu bytes left can hold", g->path,
                       (unsigned long long)n_t, left);
    g->t = calloc(n_t ? (size_t)n_t : 1, sizeof(nt_gguf_tensor));
    if (!g->t) return nt_fail(err, "%s: out of memory", g->path);
    for (uint64_t i = 0; i < n_t; i++)
        if (parse_tensor_info(g, &c, &g->t[i], err)) return -1;
    int64_t dup = table_build(g, g->n_t, t_name, &g->t_slots, &g->n_t_slots);
    if (!g->t_slots) return nt_fail(err, "%s: out of memory", g->path);
    if (dup >= 0) return nt_fail(err, "%s: tensor '%.200s' appears twice", g->path, g->t[dup].name);

    // the data section starts at the first multiple of the alignment after the header
    uint64_t pad = (g->alignment - c.pos % g->alignment) % g->alignment;
    if (pad > g->size - c.pos) {
        if (g->n_t > 0)
            return nt_fail(err, "%s: truncated: the data section would start at offset %llu, past the end (%zu bytes)",
                           g->path, (unsigned long long)(c.pos + pad), g->size);
        pad = g->size - c.pos; // no tensors: the data section may be absent altogether
    }
    g->data_off = c.pos + pad;
    return place_tensors(g, err);
}

int nt_gguf_open(nt_gguf **out, const char *path, nt_err *err) {
    *out = NULL;
    nt_gguf *g = calloc(1, sizeof(*g));
    if (!g || !(g->path = strdup(path))) {
        free(g);
        return nt_fail(err, "%s: out of memory", path);
    }
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        nt_fail(err, "%s: cannot open: %s", path, strerror(errno));
        nt_gguf_close(&g);
        return -1;
    }
    struct stat sb;
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        close(fd);
        nt_fail(err, "%s: not a regular file", path);
        nt_gguf_close(&g);
        return -1;
    }
    if (sb.st_size == 0) {
        close(fd);
        nt_fail(err, "%s: file is empty, not a GGUF file", path);
        nt_gguf_close(&g);
        return -1;
    }
    void *map = mmap(NULL, (size_t)sb.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (map == MAP_FAILED) {
        nt_fail(err, "%s: mmap failed: %s", path, strerror(errno));
        nt_gguf_close(&g);
        return -1;
    }
    g->map = map;
    g->size = (size_t)sb.st_size;
    g->mapped = true;
    if (parse(g, err)) {
        nt_gguf_close(&g);
        return -1;
    }
    *out = g;
    return 0;
}

int nt_gguf_open_buffer(nt_gguf **out, const char *name, const void *data, size_t size, nt_err *err) {
    *out = NULL;
    if (size == 0) return nt_fail(err, "%s: file is empty, not a GGUF file", name);
    nt_gguf *g = calloc(1, sizeof(*g));
    if (!g || !(g->path = strdup(name))) {
        free(g);
        return nt_fail(err, "%s: out of memory", name);
    }
    g->map = data;
    g->size = size;
    if (parse(g, err)) {
        nt_gguf_close(&g);
        return -1;
    }
    *out = g;
    return 0;
}

bool nt_gguf_is_gguf(const char *path) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return false;
    struct stat sb;
    char m[4];
    bool ok = fstat(fd, &sb) == 0 && S_ISREG(sb.st_mode) && read(fd, m, 4) == 4 && memcmp(m, "GGUF", 4) == 0;
    close(fd);
    return ok;
}

const char *nt_gguf_path(const nt_gguf *g) { return g->path; }
uint32_t nt_gguf_version(const nt_gguf *g) { return g->version; }
uint64_t nt_gguf_alignment(const nt_gguf *g) { return g->alignment; }
uint64_t nt_gguf_data_offset(const nt_gguf *g) { return g->data_off; }

// ---------------------------------------------------------------------------------------------- metadata

size_t nt_gguf_kv_count(const nt_gguf *g) { return g ? g->n_kv : 0; }
const char *nt_gguf_kv_key(const nt_gguf *g, size_t i) { return (g && i < g->n_kv) ? g->kv[i].key : NULL; }
nt_gguf_vtype nt_gguf_kv_type(const nt_gguf *g, size_t i) {
    return (g && i < g->n_kv) ? g->kv[i].type : NT_GGUF_VTYPE_COUNT;
}

int64_t nt_gguf_find_key(const nt_gguf *g, const char *key) {
    return g ? table_find(g, g->kv_slots, g->n_kv_slots, kv_name, key) : -1;
}

bool nt_gguf_has(const nt_gguf *g, const char *key) { return nt_gguf_find_key(g, key) >= 0; }

static const gguf_kv *get_kv(const nt_gguf *g, const char *key, nt_err *err) {
    int64_t i = nt_gguf_find_key(g, key);
    if (i < 0) {
        nt_fail(err, "%s: metadata key '%s' is missing", g->path, key);
        return NULL;
    }
    return &g->kv[i];
}

// "FILE: metadata key 'K' is ARRAY of UINT8, expected EXPECT"
static int wrong_type(const nt_gguf *g, const gguf_kv *kv, const char *expect, nt_err *err) {
    if (kv->type == NT_GGUF_ARRAY)
        return nt_fail(err, "%s: metadata key '%s' is an ARRAY of %s, expected %s", g->path, kv->key,
                       nt_gguf_vtype_name(kv->elem), expect);
    return nt_fail(err, "%s: metadata key '%s' is %s, expected %s", g->path, kv->key, nt_gguf_vtype_name(kv->type),
                   expect);
}

int nt_gguf_get_str(const nt_gguf *g, const char *key, const char **s, size_t *len, nt_err *err) {
    const gguf_kv *kv = get_kv(g, key, err);
    if (!kv) return -1;
    if (kv->type != NT_GGUF_STRING) return wrong_type(g, kv, "a STRING", err);
    *s = kv->str;
    if (len) *len = (size_t)kv->len;
    return 0;
}

int nt_gguf_get_int(const nt_gguf *g, const char *key, int64_t *out, nt_err *err) {
    const gguf_kv *kv = get_kv(g, key, err);
    if (!kv) return -1;
    if (!is_int_type(kv->type)) return wrong_type(g, kv, "an integer", err);
    int64_t v;
    if (!decode_int(kv->type, kv->val, &v))
        return nt_fail(err, "%s: metadata key '%s' is a UINT64 too large for int64", g->path, key);
    *out = v;
    return 0;
}

int nt_gguf_get_int_range(const nt_gguf *g, const char *key, int64_t lo, int64_t hi, int64_t *out, nt_err *err) {
    int64_t v = 0; // set by nt_gguf_get_int; initialized for GCC, which warns without -fPIC once it inlines that
    if (nt_gguf_get_int(g, key, &v, err)) return -1;
    if (v < lo || v > hi)
        return nt_fail(err, "%s: metadata key '%s' is %lld, must be in [%lld, %lld]", g->path, key, (long long)v,
                       (long long)lo, (long long)hi);
    *out = v;
    return 0;
}

int nt_gguf_get_float(const nt_gguf *g, const char *key, double *out, nt_err *err) {
    const gguf_kv *kv = get_kv(g, key, err);
    if (!kv) return -1;
    if (kv->type == NT_GGUF_FLOAT32) {
        float f;
        memcpy(&f, kv->val, 4);
        *out = f;
    } else if (kv->type == NT_GGUF_FLOAT64) {
        memcpy(out, kv->val, 8);
    } else {
        return wrong_type(g, kv, "FLOAT32 or FLOAT64", err);
    }
    return 0;
}

int nt_gguf_get_bool(const nt_gguf *g, const char *key, bool *out, nt_err *err) {
    const gguf_kv *kv = get_kv(g, key, err);
    if (!kv) return -1;
    if (kv->type != NT_GGUF_BOOL) return wrong_type(g, kv, "a BOOL", err);
    *out = kv->val[0] != 0;
    return 0;
}

int nt_gguf_get_arr(const nt_gguf *g, const char *key, nt_gguf_vtype *elem, uint64_t *count, nt_err *err) {
    const gguf_kv *kv = get_kv(g, key, err);
    if (!kv) return -1;
    if (kv->type != NT_GGUF_ARRAY) return wrong_type(g, kv, "an ARRAY", err);
    *elem = kv->elem;
    *count = kv->count;
    return 0;
}

int nt_gguf_get_arr_str(const nt_gguf *g, const char *key, uint64_t i, const char **s, size_t *len, nt_err *err) {
    const gguf_kv *kv = get_kv(g, key, err);
    if (!kv) return -1;
    if (kv->type != NT_GGUF_ARRAY || kv->elem != NT_GGUF_STRING) return wrong_type(g, kv, "an ARRAY of STRING", err);
    if (i >= kv->count)
        return nt_fail(err, "%s: metadata key '%s': index %llu is past its %llu strings", g->path, key,
                       (unsigned long long)i, (unsigned long long)kv->count);
    uint64_t n;
    memcpy(&n, g->map + kv->str_off[i], 8);
    *s = (const char *)g->map + kv->str_off[i] + 8;
    *len = (size_t)n;
    return 0;
}

// A numeric array's elements converted by conv into a new malloc'd array of esz-byte slots.
typedef int (*conv_fn)(nt_gguf_vtype elem, const uint8_t *src, void *dst); // 0, or -1 when the value does not fit
static int get_arr_num(const nt_gguf *g, const char *key, bool want_float, size_t esz, conv_fn conv, const char *what,
                       void **out, uint64_t *n, nt_err *err) {
    const gguf_kv *kv = get_kv(g, key, err);
    if (!kv) return -1;
    bool ok = kv->type == NT_GGUF_ARRAY &&
              (want_float ? (kv->elem == NT_GGUF_FLOAT32 || kv->elem == NT_GGUF_FLOAT64) : is_int_type(kv->elem));
    if (!ok) return wrong_type(g, kv, want_float ? "an ARRAY of FLOAT32 or FLOAT64" : "an ARRAY of integers", err);
    uint8_t *buf = malloc((kv->count ? (size_t)kv->count : 1) * esz);
    if (!buf) return nt_fail(err, "%s: out of memory for the array '%s'", g->path, key);
    unsigned src_size = vtypes[kv->elem].size;
    for (uint64_t i = 0; i < kv->count; i++)
        if (conv(kv->elem, kv->val + i * src_size, buf + i * esz)) {
            int64_t v = 0;
            bool fits = decode_int(kv->elem, kv->val + i * src_size, &v);
            free(buf);
            if (!fits)
                return nt_fail(err, "%s: metadata key '%s' element %llu is a UINT64 too large for %s", g->path, key,
                               (unsigned long long)i, what);
            return nt_fail(err, "%s: metadata key '%s' element %llu is %lld, does not fit in %s", g->path, key,
                           (unsigned long long)i, (long long)v, what);
        }
    *out = buf;
    *n = kv->count;
    return 0;
}

static int conv_f32(nt_gguf_vtype elem, const uint8_t *src, void *dst) {
    float f;
    if (elem == NT_GGUF_FLOAT32) {
        memcpy(&f, src, 4);
    } else {
        double d;
        memcpy(&d, src, 8);
        f = (float)d;
    }
    memcpy(dst, &f, 4);
    return 0;
}

static int conv_i32(nt_gguf_vtype elem, const uint8_t *src, void *dst) {
    int64_t v;
    if (!decode_int(elem, src, &v) || v < INT32_MIN || v > INT32_MAX) return -1;
    int32_t w = (int32_t)v;
    memcpy(dst, &w, 4);
    return 0;
}

static int conv_i64(nt_gguf_vtype elem, const uint8_t *src, void *dst) {
    int64_t v;
    if (!decode_int(elem, src, &v)) return -1;
    memcpy(dst, &v, 8);
    return 0;
}

int nt_gguf_get_arr_f32(const nt_gguf *g, const char *key, float **out, uint64_t *n, nt_err *err) {
    return get_arr_num(g, key, true, sizeof(float), conv_f32, "float", (void **)out, n, err);
}

int nt_gguf_get_arr_i32(const nt_gguf *g, const char *key, int32_t **out, uint64_t *n, nt_err *err) {
    return get_arr_num(g, key, false, sizeof(int32_t), conv_i32, "int32", (void **)out, n, err);
}

int nt_gguf_get_arr_i64(const nt_gguf *g, const char *key, int64_t **out, uint64_t *n, nt_err *err) {
    return get_arr_num(g, key, false, sizeof(int64_t), conv_i64, "int64", (void **)out, n, err);
}

// ---------------------------------------------------------------------------------------------- tensors

size_t nt_gguf_tensor_count(const nt_gguf *g) { return g ? g->n_t : 0; }

const nt_gguf_tensor *nt_gguf_tensor_at(const nt_gguf *g, size_t i) { return (g && i < g->n_t) ? &g->t[i] : NULL; }

const nt_gguf_tensor *nt_gguf_find_tensor(const nt_gguf *g, const char *name) {
    int64_t i = g ? table_find(g, g->t_slots, g->n_t_slots, t_name, name) : -1;
    return i >= 0 ? &g->t[i] : NULL;
}

int nt_gguf_dequantize_rows(const nt_gguf_tensor *t, int64_t row0, int64_t n_rows, float *out, nt_err *err) {
    const nt_ggml_traits *tr = nt_ggml_traits_of(t->type);
    NT_ASSERT(tr); // an opened file has known types only
    if (!tr->dequant) {
        char list[256] = "";
        size_t k = 0;
        for (uint32_t id = 0; id < NT_GGML_TYPE_END; id++) {
            const nt_ggml_traits *o = nt_ggml_traits_of(id);
            if (o && o->dequant && k < sizeof(list))
                k += (size_t)snprintf(list + k, sizeof(list) - k, "%s%s", k ? ", " : "", o->name);
        }
        return nt_fail(err, "%s: tensor '%s' is %s, which normtweak cannot dequantize (supported: %s)", t->file,
                       t->name, tr->name, list);
    }
    if (row0 < 0 || n_rows < 0 || row0 > t->n_rows || n_rows > t->n_rows - row0)
        return nt_fail(err, "%s: tensor '%s': rows [%lld, %lld + %lld) are outside its %lld rows", t->file, t->name,
                       (long long)row0, (long long)row0, (long long)n_rows, (long long)t->n_rows);
    int64_t blocks_per_row = t->dims[0] / tr->block;
    size_t row_bytes = (size_t)blocks_per_row * (size_t)tr->bytes; // <= nbytes: checked at open
    tr->dequant((const uint8_t *)t->data + (size_t)row0 * row_bytes, out, n_rows * blocks_per_row);
    return 0;
}

int nt_gguf_dequantize(const nt_gguf_tensor *t, float **out, nt_err *err) {
    *out = NULL;
    if ((uint64_t)t->n_elements > SIZE_MAX / sizeof(float))
        return nt_fail(err, "%s: tensor '%s' is too large to dequantize here", t->file, t->name);
    float *buf = malloc((size_t)t->n_elements * sizeof(float));
    if (!buf)
        return nt_fail(err, "%s: out of memory dequantizing tensor '%s' (%lld values)", t->file, t->name,
                       (long long)t->n_elements);
    if (nt_gguf_dequantize_rows(t, 0, t->n_rows, buf, err)) {
        free(buf);
        return -1;
    }
    *out = buf;
    return 0;
}
