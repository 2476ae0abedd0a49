// safetensors.c: reads safetensors files through a read-only mmap and writes them through a temporary file
// renamed into place (see safetensors.h). Reference code: every byte of a header is treated as hostile until
// validated (bounded length, JSON shape, dtype, dims, offsets inside the data, no overlaps), and tensor data
// is only ever read with memcpy because offsets in the file need not be aligned.
#define _POSIX_C_SOURCE 200809L
#include "safetensors.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <pthread.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "safetensors.c assumes a little-endian host (safetensors data is little-endian)"
#endif

#define ST_MAX_HEADER (100u * 1000u * 1000u) // a real header is a few hundred KB; more means a corrupt file
#define ST_MAX_JSON_INT 9007199254740992.0  // 2^53: the largest integer a JSON double holds exactly

// ---------------------------------------------------------------------------------------------- dtypes

static const struct {
    const char *name;
    size_t size;
} dtype_traits[NT_DT_COUNT] = {
    [NT_DT_F32] = {"F32", 4}, [NT_DT_F16] = {"F16", 2}, [NT_DT_BF16] = {"BF16", 2}, [NT_DT_F64] = {"F64", 8},
    [NT_DT_I64] = {"I64", 8}, [NT_DT_I32] = {"I32", 4}, [NT_DT_I16] = {"I16", 2},   [NT_DT_I8] = {"I8", 1},
    [NT_DT_U8] = {"U8", 1},   [NT_DT_BOOL] = {"BOOL", 1},
};

const char *nt_dtype_name(nt_dtype dt) {
    return ((unsigned)dt < NT_DT_COUNT) ? dtype_traits[dt].name : "?";
}

size_t nt_dtype_size(nt_dtype dt) {
    return ((unsigned)dt < NT_DT_COUNT) ? dtype_traits[dt].size : 0;
}

int nt_dtype_parse(const char *name, nt_dtype *out) {
    for (int i = 0; i < NT_DT_COUNT; i++)
        if (name && strcmp(name, dtype_traits[i].name) == 0) {
            *out = (nt_dtype)i;
            return 0;
        }
    return -1;
}

// ---------------------------------------------------------------------------------------------- the handle

typedef struct {
    char *path;
    unsigned char *map; // the whole file, PROT_READ
    size_t size;
    char **meta; // (n_meta, 2): key, value
    size_t n_meta;
} st_file;

struct nt_safetensors {
    char *where; // the file or directory opened, for "not found" messages
    st_file *files;
    size_t n_files;
    nt_st_tensor *tensors; // (n): in header order, shard after shard
    size_t n, cap;
    size_t *slots; // (n_slots): open-addressing hash over tensor names, tensor index + 1, 0 = empty
    size_t n_slots;
};

static uint64_t hash_name(const char *s) { // FNV-1a
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

static const nt_st_tensor *table_find(const nt_safetensors *st, const char *name) {
    if (!st || !name || st->n_slots == 0) return NULL;
    size_t mask = st->n_slots - 1;
    for (size_t i = (size_t)hash_name(name) & mask;; i = (i + 1) & mask) {
        size_t k = st->slots[i];
        if (k == 0) return NULL;
        if (strcmp(st->tensors[k - 1].name, name) == 0) return &st->tensors[k - 1];
    }
}

// Rebuilds the hash over all tensors (load factor <= 1/2); reports the first duplicate name.
static int table_build(nt_safetensors *st, nt_err *err) {
    size_t want = 16;
    while (want < 2 * st->n) want *= 2;
    free(st->slots);
    st->slots = calloc(want, sizeof(size_t));
    st->n_slots = st->slots ? want : 0;
    if (!st->slots) return nt_fail(err, "%s: out of memory for the tensor index", st->where);
    size_t mask = want - 1;
    for (size_t t = 0; t < st->n; t++) {
        size_t i = (size_t)hash_name(st->tensors[t].name) & mask;
        for (; st->slots[i]; i = (i + 1) & mask) {
            const nt_st_tensor *o = &st->tensors[st->slots[i] - 1];
            if (strcmp(o->name, st->tensors[t].name) == 0) {
                if (o->file == st->tensors[t].file)
                    return nt_fail(err, "%s: tensor '%s' appears twice in the header", o->file, o->name);
                return nt_fail(err, "%s: tensor '%s' appears in both %s and %s", st->where, o->name, o->file,
                               st->tensors[t].file);
            }
        }
        st->slots[i] = t + 1;
    }
    return 0;
}

void nt_st_close(nt_safetensors **pst) {
    if (!pst || !*pst) return;
    nt_safetensors *st = *pst;
    for (size_t i = 0; i < st->n; i++) free(st->tensors[i].name);
    for (size_t f = 0; f < st->n_files; f++) {
        st_file *fl = &st->files[f];
        if (fl->map) munmap(fl->map, fl->size);
        for (size_t k = 0; k < 2 * fl->n_meta; k++) free(fl->meta[k]);
        free(fl->meta);
        free(fl->path);
    }
    free(st->files);
    free(st->tensors);
    free(st->slots);
    free(st->where);
    free(st);
    *pst = NULL;
}

size_t nt_st_count(const nt_safetensors *st) { return st ? st->n : 0; }

const nt_st_tensor *nt_st_at(const nt_safetensors *st, size_t i) {
    return (st && i < st->n) ? &st->tensors[i] : NULL;
}

const nt_st_tensor *nt_st_find(const nt_safetensors *st, const char *name) { return table_find(st, name); }

const char *nt_st_metadata(const nt_safetensors *st, const char *key) {
    if (!st || !key) return NULL;
    for (size_t f = 0; f < st->n_files; f++)
        for (size_t k = 0; k < st->files[f].n_meta; k++)
            if (strcmp(st->files[f].meta[2 * k], key) == 0) return st->files[f].meta[2 * k + 1];
    return NULL;
}

static nt_safetensors *st_new(const char *where, nt_err *err) {
    nt_safetensors *st = calloc(1, sizeof(*st));
    if (st) st->where = strdup(where);
    if (!st || !st->where) {
        free(st);
        nt_fail(err, "%s: out of memory", where);
        return NULL;
    }
    return st;
}

// ---------------------------------------------------------------------------------------------- reading

// A JSON number that is a whole number in [0, 2^53]; -1 otherwise.
static int json_uint(const cJSON *v, uint64_t *out) {
    if (!cJSON_IsNumber(v)) return -1;
    double d = v->valuedouble;
    if (!(d >= 0.0) || d > ST_MAX_JSON_INT || floor(d) != d) return -1;
    *out = (uint64_t)d;
    return 0;
}

// Parses one header entry into t (name not yet set). Messages name the file and the tensor.
static int parse_entry(const char *path, const cJSON *e, uint64_t data_size, nt_st_tensor *t, uint64_t *begin,
                       nt_err *err) {
    const char *name = e->string;
    if (!cJSON_IsObject(e)) return nt_fail(err, "%s: tensor '%s' entry is not a JSON object", path, name);

    const cJSON *dt = cJSON_GetObjectItemCaseSensitive(e, "dtype");
    if (!dt) return nt_fail(err, "%s: tensor '%s' has no dtype", path, name);
    if (!cJSON_IsString(dt)) return nt_fail(err, "%s: tensor '%s' dtype is not a string", path, name);
    if (nt_dtype_parse(dt->valuestring, &t->dtype) != 0)
        return nt_fail(err, "%s: tensor '%s' has unknown dtype '%.32s'", path, name, dt->valuestring);

    const cJSON *sh = cJSON_GetObjectItemCaseSensitive(e, "shape");
    if (!sh) return nt_fail(err, "%s: tensor '%s' has no shape", path, name);
    if (!cJSON_IsArray(sh)) return nt_fail(err, "%s: tensor '%s' shape is not an array", path, name);
    int nd = cJSON_GetArraySize(sh);
    if (nd > NT_ST_MAX_DIMS)
        return nt_fail(err, "%s: tensor '%s' has %d dims, at most %d are supported", path, name, nd, NT_ST_MAX_DIMS);
    t->ndim = nd;
    uint64_t numel = 1;
    bool overflow = false;
    int d = 0;
    for (const cJSON *v = sh->child; v; v = v->next, d++) {
        uint64_t dim;
        if (json_uint(v, &dim) != 0) {
            if (cJSON_IsNumber(v) && v->valuedouble < 0)
                return nt_fail(err, "%s: tensor '%s' has a negative dim (%g) in its shape", path, name,
                               v->valuedouble);
            return nt_fail(err, "%s: tensor '%s' shape dim %d is not a non-negative integer", path, name, d);
        }
        t->shape[d] = (int64_t)dim;
        if (dim != 0 && numel > (uint64_t)INT64_MAX / dim) overflow = true;
        else numel *= dim;
    }
    // a zero dim makes the product 0 whatever the other dims are; only a nonzero product can overflow
    for (int i = 0; i < nd; i++)
        if (t->shape[i] == 0) overflow = false, numel = 0;
    size_t esz = nt_dtype_size(t->dtype);
    if (overflow || numel > (uint64_t)INT64_MAX / esz)
        return nt_fail(err, "%s: tensor '%s' shape overflows (element count too large)", path, name);
    t->numel = (int64_t)numel;

    const cJSON *off = cJSON_GetObjectItemCaseSensitive(e, "data_offsets");
    if (!off) return nt_fail(err, "%s: tensor '%s' has no data_offsets", path, name);
    uint64_t b, en;
    if (!cJSON_IsArray(off) || cJSON_GetArraySize(off) != 2 || json_uint(off->child, &b) != 0 ||
        json_uint(off->child->next, &en) != 0)
        return nt_fail(err, "%s: tensor '%s' data_offsets is not a pair of non-negative integers", path, name);
    if (en < b)
        return nt_fail(err, "%s: tensor '%s' data_offsets [%llu, %llu] end before they begin", path, name,
                       (unsigned long long)b, (unsigned long long)en);
    if (en > data_size)
        return nt_fail(err, "%s: tensor '%s' data_offsets [%llu, %llu] run past the end of the data (%llu bytes)",
                       path, name, (unsigned long long)b, (unsigned long long)en, (unsigned long long)data_size);
    if (en - b != numel * esz)
        return nt_fail(err,
                       "%s: tensor '%s' size mismatch: data_offsets [%llu, %llu] hold %llu bytes, "
                       "dtype %s x %llu elements needs %llu",
                       path, name, (unsigned long long)b, (unsigned long long)en, (unsigned long long)(en - b),
                       nt_dtype_name(t->dtype), (unsigned long long)numel, (unsigned long long)(numel * esz));
    t->nbytes = (size_t)(en - b);
    *begin = b;
    return 0;
}

static int parse_metadata(st_file *fl, const cJSON *m, nt_err *err) {
    if (!cJSON_IsObject(m)) return nt_fail(err, "%s: __metadata__ is not a JSON object", fl->path);
    size_t n = (size_t)cJSON_GetArraySize(m);
    fl->meta = calloc(2 * n + 1, sizeof(char *));
    if (!fl->meta) return nt_fail(err, "%s: out of memory for __metadata__", fl->path);
    for (const cJSON *v = m->child; v; v = v->next) {
        if (!cJSON_IsString(v))
            return nt_fail(err, "%s: __metadata__ value for '%s' is not a string", fl->path, v->string);
        fl->meta[2 * fl->n_meta] = strdup(v->string);
        fl->meta[2 * fl->n_meta + 1] = strdup(v->valuestring);
        fl->n_meta++; // counted before the check so that close frees a half-made pair
        if (!fl->meta[2 * fl->n_meta - 2] || !fl->meta[2 * fl->n_meta - 1])
            return nt_fail(err, "%s: out of memory for __metadata__", fl->path);
    }
    return 0;
}

typedef struct {
    uint64_t begin, end;
    size_t t;
} st_range;

static int cmp_range(const void *a, const void *b) {
    const st_range *x = a, *y = b;
    if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
    if (x->end != y->end) return x->end < y->end ? -1 : 1;
    return 0;
}

// Checks that no two non-empty tensors of one file share a byte.
static int check_overlaps(const char *path, const nt_st_tensor *ts, const uint64_t *begins, size_t n, nt_err *err) {
    st_range *r = malloc((n ? n : 1) * sizeof(*r));
    if (!r) return nt_fail(err, "%s: out of memory checking offsets", path);
    size_t m = 0;
    for (size_t i = 0; i < n; i++)
        if (ts[i].nbytes > 0) r[m++] = (st_range){begins[i], begins[i] + ts[i].nbytes, i};
    qsort(r, m, sizeof(*r), cmp_range);
    for (size_t i = 1; i < m; i++)
        if (r[i].begin < r[i - 1].end) {
            int rc = nt_fail(err, "%s: tensors '%s' [%llu, %llu] and '%s' [%llu, %llu] overlap", path,
                             ts[r[i - 1].t].name, (unsigned long long)r[i - 1].begin,
                             (unsigned long long)r[i - 1].end, ts[r[i].t].name, (unsigned long long)r[i].begin,
                             (unsigned long long)r[i].end);
            free(r);
            return rc;
        }
    free(r);
    return 0;
}

// Maps `path` and appends its tensors to st (the hash is not rebuilt here).
static int add_file(nt_safetensors *st, const char *path, nt_err *err) {
    st_file *nf = realloc(st->files, (st->n_files + 1) * sizeof(*nf));
    if (!nf) return nt_fail(err, "%s: out of memory", path);
    st->files = nf;
    st_file *fl = &st->files[st->n_files];
    memset(fl, 0, sizeof(*fl));
    fl->path = strdup(path);
    if (!fl->path) return nt_fail(err, "%s: out of memory", path);
    st->n_files++; // from here on nt_st_close releases whatever fl holds

    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return nt_fail(err, "%s: cannot open: %s", path, strerror(errno));
    struct stat sb;
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        close(fd);
        return nt_fail(err, "%s: not a regular file", path);
    }
    size_t size = (size_t)sb.st_size;
    if (size == 0) {
        close(fd);
        return nt_fail(err, "%s: file is empty, not a safetensors file", path);
    }
    if (size < 8) {
        close(fd);
        return nt_fail(err, "%s: file is truncated: %zu bytes, too short for the 8-byte header length", path, size);
    }
    void *map = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (map == MAP_FAILED) return nt_fail(err, "%s: mmap failed: %s", path, strerror(errno));
    fl->map = map;
    fl->size = size;

    uint64_t hlen;
    memcpy(&hlen, fl->map, 8);
    if (hlen > ST_MAX_HEADER)
        return nt_fail(err, "%s: header length %llu is absurd (limit %u bytes): corrupt or not a safetensors file",
                       path, (unsigned long long)hlen, ST_MAX_HEADER);
    if (hlen > size - 8)
        return nt_fail(err, "%s: header length %llu runs past the end of the file (%zu bytes): file truncated?", path,
                       (unsigned long long)hlen, size);
    const char *hdr = (const char *)fl->map + 8;
    if (memchr(hdr, '\0', (size_t)hlen)) return nt_fail(err, "%s: header is not valid JSON (contains a NUL byte)", path);
    const unsigned char *data = fl->map + 8 + hlen;
    uint64_t data_size = size - 8 - hlen;

    // cJSON needs a NUL-terminated string and the mapping has none: parse a copy
    char *txt = malloc((size_t)hlen + 1);
    if (!txt) return nt_fail(err, "%s: out of memory for a %llu-byte header", path, (unsigned long long)hlen);
    memcpy(txt, hdr, (size_t)hlen);
    txt[hlen] = '\0';
    cJSON *root = cJSON_ParseWithOpts(txt, NULL, 1);
    free(txt);
    if (!root) return nt_fail(err, "%s: header is not valid JSON", path);
    if (!cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return nt_fail(err, "%s: header is not a JSON object", path);
    }

    size_t n_entries = (size_t)cJSON_GetArraySize(root);
    if (st->n + n_entries > st->cap) {
        size_t cap = st->cap ? st->cap : 64;
        while (cap < st->n + n_entries) cap *= 2;
        nt_st_tensor *nt = realloc(st->tensors, cap * sizeof(*nt));
        if (!nt) {
            cJSON_Delete(root);
            return nt_fail(err, "%s: out of memory for %zu tensors", path, n_entries);
        }
        st->tensors = nt;
        st->cap = cap;
    }
    uint64_t *begins = malloc((n_entries ? n_entries : 1) * sizeof(uint64_t));
    if (!begins) {
        cJSON_Delete(root);
        return nt_fail(err, "%s: out of memory", path);
    }
    size_t first = st->n, k = 0;
    int rc = 0;
    bool seen_meta = false;
    for (const cJSON *e = root->child; e && rc == 0; e = e->next) {
        if (strcmp(e->string, "__metadata__") == 0) {
            if (seen_meta) rc = nt_fail(err, "%s: __metadata__ appears twice", path);
            else rc = parse_metadata(fl, e, err);
            seen_meta = true;
            continue;
        }
        nt_st_tensor t;
        memset(&t, 0, sizeof(t));
        uint64_t b = 0;
        rc = parse_entry(path, e, data_size, &t, &b, err);
        if (rc != 0) break;
        t.name = strdup(e->string);
        if (!t.name) {
            rc = nt_fail(err, "%s: out of memory", path);
            break;
        }
        t.data = data + b;
        t.file = fl->path;
        st->tensors[st->n++] = t;
        begins[k++] = b;
    }
    cJSON_Delete(root);
    if (rc == 0) rc = check_overlaps(path, st->tensors + first, begins, k, err);
    free(begins);
    return rc;
}

int nt_st_open_file(nt_safetensors **out, const char *path, nt_err *err) {
    *out = NULL;
    nt_safetensors *st = st_new(path, err);
    if (!st) return -1;
    if (add_file(st, path, err) != 0 || table_build(st, err) != 0) {
        nt_st_close(&st);
        return -1;
    }
    *out = st;
    return 0;
}

// The index of the shard named `name` in names[0..n), or n.
static size_t shard_lookup(const char *const *names, size_t n, const char *name) {
    for (size_t i = 0; i < n; i++)
        if (strcmp(names[i], name) == 0) return i;
    return n;
}

// True when path has a ".." component (a shard name must stay inside the model directory).
static bool has_dotdot(const char *path) {
    for (const char *p = path; (p = strstr(p, "..")) != NULL; p += 2)
        if ((p == path || p[-1] == '/') && (p[2] == '\0' || p[2] == '/')) return true;
    return false;
}

static int open_index(nt_safetensors *st, const char *dir, const char *ipath, nt_err *err) {
    char *txt = nt_read_file(ipath, NULL, err);
    if (!txt) return -1;
    cJSON *root = cJSON_Parse(txt);
    free(txt);
    if (!root) return nt_fail(err, "%s: not valid JSON", ipath);
    int rc = 0;
    const char **shards = NULL; // distinct shard names, in order of first appearance (point into root)
    size_t n_shards = 0;
    const cJSON *wm = cJSON_GetObjectItemCaseSensitive(root, "weight_map");
    if (!cJSON_IsObject(root)) rc = nt_fail(err, "%s: not a JSON object", ipath);
    else if (!wm) rc = nt_fail(err, "%s: no weight_map", ipath);
    else if (!cJSON_IsObject(wm)) rc = nt_fail(err, "%s: weight_map is not a JSON object", ipath);
    else if (!wm->child) rc = nt_fail(err, "%s: weight_map is empty", ipath);
    if (rc == 0) {
        shards = malloc((size_t)cJSON_GetArraySize(wm) * sizeof(*shards));
        if (!shards) rc = nt_fail(err, "%s: out of memory", ipath);
    }
    for (const cJSON *e = rc == 0 ? wm->child : NULL; e && rc == 0; e = e->next) {
        const char *s = cJSON_GetStringValue(e);
        if (!s || !*s) {
            rc = nt_fail(err, "%s: weight_map entry for '%s' is not a file name", ipath, e->string);
        } else if (s[0] == '/' || has_dotdot(s)) {
            rc = nt_fail(err, "%s: weight_map names shard '%s' outside the model directory", ipath, s);
        } else if (shard_lookup(shards, n_shards, s) == n_shards) {
            shards[n_shards++] = s;
        }
    }
    for (size_t i = 0; i < n_shards && rc == 0; i++) {
        char *sp = nt_path_join(dir, shards[i]);
        if (!sp) rc = nt_fail(err, "%s: out of memory", ipath);
        else if (!nt_file_exists(sp)) rc = nt_fail(err, "%s: shard %s is missing (listed in %s)", sp, shards[i], ipath);
        else rc = add_file(st, sp, err);
        free(sp);
    }
    if (rc == 0) rc = table_build(st, err);
    // every tensor the index promises must be in the shard it names (files[i] is shards[i])
    for (const cJSON *e = rc == 0 ? wm->child : NULL; e && rc == 0; e = e->next) {
        const nt_st_tensor *t = table_find(st, e->string);
        const st_file *want = &st->files[shard_lookup(shards, n_shards, e->valuestring)];
        if (!t || t->file != want->path)
            rc = nt_fail(err, "%s: tensor '%s' is listed in %s but missing from this shard", want->path, e->string,
                         ipath);
    }
    free(shards);
    cJSON_Delete(root);
    return rc;
}

int nt_st_open_dir(nt_safetensors **out, const char *dir, nt_err *err) {
    *out = NULL;
    char *single = nt_path_join(dir, "model.safetensors");
    char *index = nt_path_join(dir, "model.safetensors.index.json");
    nt_safetensors *st = (single && index) ? st_new(dir, err) : NULL;
    int rc = -1;
    if (!single || !index) nt_fail(err, "%s: out of memory", dir);
    else if (!st) rc = -1;
    else if (nt_file_exists(single)) rc = (add_file(st, single, err) == 0 && table_build(st, err) == 0) ? 0 : -1;
    else if (nt_file_exists(index)) rc = open_index(st, dir, index, err);
    else nt_fail(err, "%s: no model.safetensors or model.safetensors.index.json", dir);
    free(single);
    free(index);
    if (rc != 0) {
        nt_st_close(&st);
        return -1;
    }
    *out = st;
    return 0;
}

// ---------------------------------------------------------------------------------------------- to float32

static float lut_f16[65536], lut_bf16[65536];
static pthread_once_t lut_once = PTHREAD_ONCE_INIT;

static void lut_init(void) {
    for (uint32_t h = 0; h < 65536; h++) {
        lut_f16[h] = nt_f16_to_f32((uint16_t)h);
        lut_bf16[h] = nt_bf16_to_f32((uint16_t)h);
    }
}

static void format_shape(char *buf, size_t cap, int ndim, const int64_t *shape) {
    size_t k = (size_t)snprintf(buf, cap, "[");
    for (int i = 0; i < ndim && k < cap; i++)
        k += (size_t)snprintf(buf + k, cap - k, "%s%lld", i ? ", " : "", (long long)shape[i]);
    if (k < cap) snprintf(buf + k, cap - k, "]");
}

int nt_st_load_f32(const nt_safetensors *st, const char *name, int ndim, const int64_t *shape, float **out,
                   nt_err *err) {
    *out = NULL;
    const nt_st_tensor *t = nt_st_find(st, name);
    if (!t) return nt_fail(err, "%s: tensor '%s' not found", st ? st->where : "(null)", name);
    if (t->dtype != NT_DT_F32 && t->dtype != NT_DT_F16 && t->dtype != NT_DT_BF16)
        return nt_fail(err, "%s: tensor '%s' has dtype %s, expected a float type (F32, F16 or BF16)", t->file,
                       name, nt_dtype_name(t->dtype));
    if (shape) {
        bool same = ndim == t->ndim;
        for (int i = 0; same && i < ndim; i++) same = shape[i] == t->shape[i];
        if (!same) {
            char have[256], want[256];
            format_shape(have, sizeof(have), t->ndim, t->shape);
            format_shape(want, sizeof(want), ndim, shape);
            return nt_fail(err, "%s: tensor '%s' has shape %s, expected %s", t->file, name, have, want);
        }
    }
    size_t n = (size_t)t->numel;
    float *dst = malloc(n ? n * sizeof(float) : 1);
    if (!dst) return nt_fail(err, "%s: out of memory for tensor '%s' (%zu floats)", t->file, name, n);
    const unsigned char *src = t->data;
    if (t->dtype == NT_DT_F32) {
        if (n) memcpy(dst, src, n * sizeof(float));
    } else {
        pthread_once(&lut_once, lut_init);
        const float *lut = t->dtype == NT_DT_F16 ? lut_f16 : lut_bf16;
        long long nn = (long long)n;
#pragma omp parallel for schedule(static) if (nn >= (1 << 18))
        for (long long i = 0; i < nn; i++) {
            uint16_t h;
            memcpy(&h, src + 2 * i, 2); // the data may sit at an odd offset
            dst[i] = lut[h];
        }
    }
    *out = dst;
    return 0;
}

// ---------------------------------------------------------------------------------------------- writing

static int cmp_str_ptr(const void *a, const void *b) {
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

// Returns the first string that occurs twice among strs[0], strs[stride], ..., or NULL.
static const char *first_duplicate(const char *const *strs, size_t n, size_t stride, bool *oom) {
    *oom = false;
    if (n < 2) return NULL;
    const char **s = malloc(n * sizeof(*s));
    if (!s) {
        *oom = true;
        return NULL;
    }
    for (size_t i = 0; i < n; i++) s[i] = strs[i * stride];
    qsort(s, n, sizeof(*s), cmp_str_ptr);
    const char *dup = NULL;
    for (size_t i = 1; i < n && !dup; i++)
        if (strcmp(s[i - 1], s[i]) == 0) dup = s[i];
    free(s);
    return dup;
}

static int write_all(int fd, const void *buf, size_t len) {
    const unsigned char *p = buf;
    while (len > 0) {
        size_t chunk = len > (1u << 30) ? (1u << 30) : len;
        ssize_t w = write(fd, p, chunk);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return -1;
        p += w;
        len -= (size_t)w;
    }
    return 0;
}

// Builds the padded header: returns malloc'd text whose length (*len) is a multiple of 8.
static char *build_header(const char *path, const nt_st_tensor *ts, size_t n, const char *const *meta_kv,
                          size_t n_meta, size_t *len, nt_err *err) {
    cJSON *root = cJSON_CreateObject();
    bool ok = root != NULL;
    if (ok && n_meta > 0) {
        cJSON *m = cJSON_AddObjectToObject(root, "__metadata__");
        ok = m != NULL;
        for (size_t i = 0; ok && i < n_meta; i++) ok = cJSON_AddStringToObject(m, meta_kv[2 * i], meta_kv[2 * i + 1]);
    }
    uint64_t off = 0;
    for (size_t i = 0; ok && i < n; i++) {
        cJSON *e = cJSON_AddObjectToObject(root, ts[i].name);
        cJSON *dt = e ? cJSON_AddStringToObject(e, "dtype", nt_dtype_name(ts[i].dtype)) : NULL;
        cJSON *sh = dt ? cJSON_AddArrayToObject(e, "shape") : NULL;
        cJSON *of = sh ? cJSON_AddArrayToObject(e, "data_offsets") : NULL;
        ok = of != NULL;
        for (int d = 0; ok && d < ts[i].ndim; d++) {
            cJSON *v = cJSON_CreateNumber((double)ts[i].shape[d]);
            ok = v && cJSON_AddItemToArray(sh, v);
        }
        cJSON *b = ok ? cJSON_CreateNumber((double)off) : NULL;
        ok = b && cJSON_AddItemToArray(of, b);
        off += ts[i].nbytes;
        cJSON *en = ok ? cJSON_CreateNumber((double)off) : NULL;
        ok = en && cJSON_AddItemToArray(of, en);
    }
    char *txt = ok ? cJSON_PrintUnformatted(root) : NULL;
    cJSON_Delete(root);
    if (!txt) {
        nt_fail(err, "%s: out of memory building the header", path);
        return NULL;
    }
    size_t l = strlen(txt), padded = (l + 7) & ~(size_t)7;
    char *p = realloc(txt, padded + 1);
    if (!p) {
        free(txt);
        nt_fail(err, "%s: out of memory building the header", path);
        return NULL;
    }
    memset(p + l, ' ', padded - l); // safetensors pads with spaces so the data starts 8-byte aligned
    p[padded] = '\0';
    *len = padded;
    return p;
}

static int validate_write(const char *path, const nt_st_tensor *ts, size_t n, const char *const *meta_kv,
                          size_t n_meta, nt_err *err) {
    if (n > 0 && !ts) return nt_fail(err, "%s: no tensors given", path);
    if (n_meta > 0 && !meta_kv) return nt_fail(err, "%s: no metadata given", path);
    uint64_t total = 0;
    for (size_t i = 0; i < n; i++) {
        const nt_st_tensor *t = &ts[i];
        if (!t->name) return nt_fail(err, "%s: tensor %zu has no name", path, i);
        if (strcmp(t->name, "__metadata__") == 0)
            return nt_fail(err, "%s: a tensor cannot be named '__metadata__'", path);
        if ((unsigned)t->dtype >= NT_DT_COUNT) return nt_fail(err, "%s: tensor '%s' has an invalid dtype", path, t->name);
        if (t->ndim < 0 || t->ndim > NT_ST_MAX_DIMS)
            return nt_fail(err, "%s: tensor '%s' has %d dims (0..%d allowed)", path, t->name, t->ndim, NT_ST_MAX_DIMS);
        uint64_t numel = 1;
        bool zero = false, overflow = false;
        for (int d = 0; d < t->ndim; d++) {
            if (t->shape[d] < 0 || (double)t->shape[d] > ST_MAX_JSON_INT)
                return nt_fail(err, "%s: tensor '%s' has an invalid dim %lld", path, t->name, (long long)t->shape[d]);
            uint64_t dim = (uint64_t)t->shape[d];
            if (dim == 0) zero = true;
            else if (numel > (uint64_t)INT64_MAX / dim) overflow = true;
            else numel *= dim;
        }
        if (zero) numel = 0, overflow = false;
        if (overflow || numel > (uint64_t)INT64_MAX / nt_dtype_size(t->dtype))
            return nt_fail(err, "%s: tensor '%s' shape overflows", path, t->name);
        uint64_t want = numel * nt_dtype_size(t->dtype);
        if (t->nbytes != want)
            return nt_fail(err, "%s: tensor '%s' size mismatch: nbytes %zu, dtype %s x %llu elements needs %llu", path,
                           t->name, t->nbytes, nt_dtype_name(t->dtype), (unsigned long long)numel,
                           (unsigned long long)want);
        if (t->nbytes > 0 && !t->data) return nt_fail(err, "%s: tensor '%s' has no data", path, t->name);
        total += want;
        if ((double)total > ST_MAX_JSON_INT) return nt_fail(err, "%s: total tensor data too large", path);
    }
    for (size_t i = 0; i < 2 * n_meta; i++)
        if (!meta_kv[i]) return nt_fail(err, "%s: metadata %s %zu is NULL", path, i % 2 ? "value" : "key", i / 2);
    bool oom;
    const char **names = malloc((n ? n : 1) * sizeof(*names));
    if (!names) return nt_fail(err, "%s: out of memory", path);
    for (size_t i = 0; i < n; i++) names[i] = ts[i].name;
    const char *dup = first_duplicate(names, n, 1, &oom);
    int rc = 0;
    if (oom) rc = nt_fail(err, "%s: out of memory", path);
    else if (dup) rc = nt_fail(err, "%s: duplicate tensor name '%s'", path, dup);
    free(names);
    if (rc != 0) return rc;
    dup = first_duplicate(meta_kv, n_meta, 2, &oom);
    if (oom) return nt_fail(err, "%s: out of memory", path);
    if (dup) return nt_fail(err, "%s: duplicate metadata key '%s'", path, dup);
    return 0;
}

int nt_st_write(const char *path, const nt_st_tensor *tensors, size_t n, const char *const *meta_kv, size_t n_meta,
                nt_err *err) {
    if (validate_write(path, tensors, n, meta_kv, n_meta, err) != 0) return -1;
    size_t hlen;
    char *hdr = build_header(path, tensors, n, meta_kv, n_meta, &hlen, err);
    if (!hdr) return -1;

    size_t tl = strlen(path) + 32;
    char *tmp = malloc(tl);
    if (!tmp) {
        free(hdr);
        return nt_fail(err, "%s: out of memory", path);
    }
    snprintf(tmp, tl, "%s.tmp.%ld", path, (long)getpid());
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        int rc = nt_fail(err, "%s: cannot create %s: %s", path, tmp, strerror(errno));
        free(tmp);
        free(hdr);
        return rc;
    }
    uint64_t hl = hlen;
    unsigned char le[8];
    memcpy(le, &hl, 8); // little-endian host (checked at the top)
    const char *what = "write";
    bool ok = write_all(fd, le, 8) == 0 && write_all(fd, hdr, hlen) == 0;
    for (size_t i = 0; ok && i < n; i++)
        if (tensors[i].nbytes) ok = write_all(fd, tensors[i].data, tensors[i].nbytes) == 0;
    if (ok && fsync(fd) != 0) ok = false, what = "fsync";
    if (close(fd) != 0 && ok) ok = false, what = "close";
    if (ok && rename(tmp, path) != 0) ok = false, what = "rename";
    int rc = 0;
    if (!ok) {
        rc = nt_fail(err, "%s: %s failed: %s", path, what, strerror(errno));
        unlink(tmp);
    }
    free(tmp);
    free(hdr);
    return rc;
}

int nt_st_list_add(nt_st_list *L, const char *name, nt_dtype dt, int ndim, const int64_t *shape, const void *data,
                   size_t nbytes) {
    if (ndim < 0 || ndim > NT_ST_MAX_DIMS) return -1;
    if (L->n == L->cap) {
        size_t cap = L->cap ? 2 * L->cap : 256;
        nt_st_tensor *t = realloc(L->t, cap * sizeof(*t));
        if (!t) return -1;
        L->t = t;
        L->cap = cap;
    }
    char *nm = strdup(name);
    if (!nm) return -1;
    nt_st_tensor *t = &L->t[L->n++];
    memset(t, 0, sizeof(*t));
    t->name = nm;
    t->dtype = dt;
    t->ndim = ndim;
    t->numel = 1;
    for (int i = 0; i < ndim; i++) t->shape[i] = shape[i], t->numel *= shape[i];
    t->data = data;
    t->nbytes = nbytes;
    return 0;
}

void nt_st_list_free(nt_st_list *L) {
    for (size_t i = 0; i < L->n; i++) free(L->t[i].name);
    free(L->t);
    memset(L, 0, sizeof(*L));
}
