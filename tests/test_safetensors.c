// test_safetensors.c: the safetensors reader/writer (base/safetensors.c): the shared fixture models against
// their config.json, bit-exact write/read round trips, fp16/bf16 conversion, sharded checkpoints, and one test
// per kind of bad input (each must fail with -1 and a one-line message naming the file and the problem).
#define _POSIX_C_SOURCE 200809L
#include <criterion/criterion.h>
#include <cjson/cJSON.h>
#include <dirent.h>
#include <math.h>
#include <string.h>
#include <sys/stat.h>

#include "safetensors.h"
#include "testutil.h"

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

TestSuite(st, .init = setup, .fini = teardown);

// g_dir/name, malloc'd.
static char *tmp_path(const char *name) { return nt_path_join(g_dir, name); }

// Writes a file by hand: 8-byte header length hlen, the header text, then data_len bytes of data (0..255).
static char *write_raw(const char *name, uint64_t hlen, const char *hdr, size_t data_len) {
    size_t hl = strlen(hdr), total = 8 + hl + data_len;
    unsigned char *buf = malloc(total);
    memcpy(buf, &hlen, 8);
    memcpy(buf + 8, hdr, hl);
    for (size_t i = 0; i < data_len; i++) buf[8 + hl + i] = (unsigned char)i;
    char *path = tmp_path(name);
    cr_assert(tu_write_file(path, buf, total) == 0);
    free(buf);
    return path;
}

// A file whose header length is exactly its header text.
static char *write_header(const char *name, const char *hdr, size_t data_len) {
    return write_raw(name, strlen(hdr), hdr, data_len);
}

// Opening `path` must fail, leave *out NULL, and say which file and (via `word`) what is wrong.
static void expect_open_fail(const char *path, const char *word) {
    nt_safetensors *st = (nt_safetensors *)1;
    nt_err err = {0};
    int rc = nt_st_open_file(&st, path, &err);
    cr_assert_eq(rc, -1, "%s opened but should not have", path);
    cr_assert(st == NULL);
    cr_assert(strstr(err.msg, path) != NULL, "message does not name the file: %s", err.msg);
    cr_assert(strstr(err.msg, word) != NULL, "message does not say '%s': %s", word, err.msg);
    cr_assert(strchr(err.msg, '\n') == NULL);
}

static void expect_dir_fail(const char *dir, const char *name_in_msg, const char *word) {
    nt_safetensors *st = (nt_safetensors *)1;
    nt_err err = {0};
    cr_assert_eq(nt_st_open_dir(&st, dir, &err), -1, "%s opened but should not have", dir);
    cr_assert(st == NULL);
    cr_assert(strstr(err.msg, name_in_msg) != NULL, "message does not name %s: %s", name_in_msg, err.msg);
    cr_assert(strstr(err.msg, word) != NULL, "message does not say '%s': %s", word, err.msg);
}

static cJSON *read_json(const char *path) {
    nt_err err;
    char *txt = nt_read_file(path, NULL, &err);
    cr_assert(txt != NULL, "%s", err.msg);
    cJSON *j = cJSON_Parse(txt);
    free(txt);
    cr_assert(j != NULL, "%s: bad JSON", path);
    return j;
}

static int64_t cfg_int(const cJSON *cfg, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(cfg, key);
    cr_assert(cJSON_IsNumber(v), "config.json has no %s", key);
    return (int64_t)v->valuedouble;
}

// Asserts that st has tensor `name` in F16 with shape [d0] (d1 < 0) or [d0, d1].
static void expect_f16(const nt_safetensors *st, const char *name, int64_t d0, int64_t d1) {
    const nt_st_tensor *t = nt_st_find(st, name);
    cr_assert(t != NULL, "tensor %s missing", name);
    cr_assert_str_eq(t->name, name);
    cr_assert_eq(t->dtype, NT_DT_F16, "%s: dtype %s", name, nt_dtype_name(t->dtype));
    cr_assert_eq(t->ndim, d1 < 0 ? 1 : 2, "%s: ndim %d", name, t->ndim);
    cr_assert_eq(t->shape[0], d0, "%s: dim 0 is %lld, want %lld", name, (long long)t->shape[0], (long long)d0);
    if (d1 >= 0) cr_assert_eq(t->shape[1], d1, "%s: dim 1 is %lld, want %lld", name, (long long)t->shape[1], (long long)d1);
    cr_assert_eq(t->nbytes, (size_t)(t->numel * 2));
}

static bool has_temp_files(const char *dir) {
    DIR *d = opendir(dir);
    cr_assert(d != NULL);
    bool found = false;
    for (struct dirent *e; (e = readdir(d));)
        if (strstr(e->d_name, ".tmp.")) found = true;
    closedir(d);
    return found;
}

static nt_st_tensor mk(const char *name, nt_dtype dt, int ndim, const int64_t *shape, const void *data) {
    nt_st_tensor t;
    memset(&t, 0, sizeof(t));
    t.name = (char *)name;
    t.dtype = dt;
    t.ndim = ndim;
    t.numel = 1;
    for (int i = 0; i < ndim; i++) t.shape[i] = shape[i], t.numel *= shape[i];
    t.data = data;
    t.nbytes = (size_t)t.numel * nt_dtype_size(dt);
    return t;
}

// ---------------------------------------------------------------------------------------------- shared models

Test(st, tiny_opt_matches_config) {
    char *dir = tu_shared("models/tiny-opt"), *cfgp = nt_path_join(dir, "config.json");
    cJSON *cfg = read_json(cfgp);
    int64_t V = cfg_int(cfg, "vocab_size"), H = cfg_int(cfg, "hidden_size"), F = cfg_int(cfg, "ffn_dim"),
            L = cfg_int(cfg, "num_hidden_layers"), P = cfg_int(cfg, "max_position_embeddings");
    nt_safetensors *st;
    nt_err err;
    cr_assert_eq(nt_st_open_dir(&st, dir, &err), 0, "%s", err.msg);
    // tied embeddings: no lm_head; OPT's learned positions carry 2 extra rows
    cr_assert_eq(nt_st_count(st), (size_t)(4 + 16 * L), "count %zu", nt_st_count(st));
    expect_f16(st, "model.decoder.embed_tokens.weight", V, H);
    expect_f16(st, "model.decoder.embed_positions.weight", P + 2, H);
    expect_f16(st, "model.decoder.final_layer_norm.weight", H, -1);
    expect_f16(st, "model.decoder.final_layer_norm.bias", H, -1);
    cr_assert(nt_st_find(st, "lm_head.weight") == NULL);
    char name[128];
    for (int64_t l = 0; l < L; l++) {
        const char *proj[] = {"q_proj", "k_proj", "v_proj", "out_proj"};
        for (int p = 0; p < 4; p++) {
            snprintf(name, sizeof(name), "model.decoder.layers.%lld.self_attn.%s.weight", (long long)l, proj[p]);
            expect_f16(st, name, H, H);
            snprintf(name, sizeof(name), "model.decoder.layers.%lld.self_attn.%s.bias", (long long)l, proj[p]);
            expect_f16(st, name, H, -1);
        }
        const char *norms[] = {"self_attn_layer_norm", "final_layer_norm"};
        for (int p = 0; p < 2; p++) {
            snprintf(name, sizeof(name), "model.decoder.layers.%lld.%s.weight", (long long)l, norms[p]);
            expect_f16(st, name, H, -1);
            snprintf(name, sizeof(name), "model.decoder.layers.%lld.%s.bias", (long long)l, norms[p]);
            expect_f16(st, name, H, -1);
        }
        snprintf(name, sizeof(name), "model.decoder.layers.%lld.fc1.weight", (long long)l);
        expect_f16(st, name, F, H);
        snprintf(name, sizeof(name), "model.decoder.layers.%lld.fc1.bias", (long long)l);
        expect_f16(st, name, F, -1);
        snprintf(name, sizeof(name), "model.decoder.layers.%lld.fc2.weight", (long long)l);
        expect_f16(st, name, H, F);
        snprintf(name, sizeof(name), "model.decoder.layers.%lld.fc2.bias", (long long)l);
        expect_f16(st, name, H, -1);
    }
    cr_assert(nt_st_metadata(st, "format") != NULL);
    cr_assert_str_eq(nt_st_metadata(st, "format"), "pt");
    cr_assert(nt_st_metadata(st, "nope") == NULL);

    // the embedding through the fast (LUT + OpenMP) path equals the reference conversion, element by element
    const char *emb = "model.decoder.embed_tokens.weight";
    int64_t shape[2] = {V, H};
    float *w;
    cr_assert_eq(nt_st_load_f32(st, emb, 2, shape, &w, &err), 0, "%s", err.msg);
    const nt_st_tensor *t = nt_st_find(st, emb);
    const unsigned char *raw = t->data;
    for (int64_t i = 0; i < t->numel; i++) {
        uint16_t h;
        memcpy(&h, raw + 2 * i, 2);
        float ref = nt_f16_to_f32(h);
        cr_assert(memcmp(&ref, &w[i], 4) == 0, "element %lld differs", (long long)i);
        cr_assert(isfinite(w[i]));
    }
    free(w);

    // a wrong shape names the file, the tensor and both shapes
    int64_t bad[2] = {V, H + 1};
    cr_assert_eq(nt_st_load_f32(st, emb, 2, bad, &w, &err), -1);
    cr_assert(w == NULL);
    cr_assert(strstr(err.msg, "tiny-opt/model.safetensors") && strstr(err.msg, emb) && strstr(err.msg, "shape"),
              "%s", err.msg);
    cr_assert(strstr(err.msg, "[50272, 256]") && strstr(err.msg, "[50272, 257]"), "%s", err.msg);
    cr_assert_eq(nt_st_load_f32(st, emb, 1, shape, &w, &err), -1);

    nt_st_close(&st);
    cr_assert(st == NULL);
    nt_st_close(&st); // a second close is harmless
    cJSON_Delete(cfg);
    free(cfgp);
    free(dir);
}

Test(st, tiny_llama_matches_config) {
    char *dir = tu_shared("models/tiny-llama"), *cfgp = nt_path_join(dir, "config.json");
    cJSON *cfg = read_json(cfgp);
    int64_t V = cfg_int(cfg, "vocab_size"), H = cfg_int(cfg, "hidden_size"), I = cfg_int(cfg, "intermediate_size"),
            L = cfg_int(cfg, "num_hidden_layers"), NH = cfg_int(cfg, "num_attention_heads"),
            KV = cfg_int(cfg, "num_key_value_heads");
    int64_t KVD = KV * (H / NH);
    nt_safetensors *st;
    nt_err err;
    cr_assert_eq(nt_st_open_dir(&st, dir, &err), 0, "%s", err.msg);
    cr_assert_eq(nt_st_count(st), (size_t)(3 + 9 * L), "count %zu", nt_st_count(st));
    expect_f16(st, "model.embed_tokens.weight", V, H);
    expect_f16(st, "lm_head.weight", V, H); // untied
    expect_f16(st, "model.norm.weight", H, -1);
    char name[128];
    for (int64_t l = 0; l < L; l++) {
        struct {
            const char *n;
            int64_t d0, d1;
        } want[] = {{"self_attn.q_proj.weight", H, H},   {"self_attn.k_proj.weight", KVD, H},
                    {"self_attn.v_proj.weight", KVD, H}, {"self_attn.o_proj.weight", H, H},
                    {"mlp.gate_proj.weight", I, H},      {"mlp.up_proj.weight", I, H},
                    {"mlp.down_proj.weight", H, I},      {"input_layernorm.weight", H, -1},
                    {"post_attention_layernorm.weight", H, -1}};
        for (size_t k = 0; k < sizeof(want) / sizeof(want[0]); k++) {
            snprintf(name, sizeof(name), "model.layers.%lld.%s", (long long)l, want[k].n);
            expect_f16(st, name, want[k].d0, want[k].d1);
        }
    }
    // every tensor is reachable by index and by name, and names are unique
    for (size_t i = 0; i < nt_st_count(st); i++) {
        const nt_st_tensor *t = nt_st_at(st, i);
        cr_assert(t != NULL && nt_st_find(st, t->name) == t);
        cr_assert(strstr(t->file, "tiny-llama/model.safetensors") != NULL);
    }
    cr_assert(nt_st_at(st, nt_st_count(st)) == NULL);
    float *w;
    int64_t shp[1] = {H};
    cr_assert_eq(nt_st_load_f32(st, "model.norm.weight", 1, shp, &w, &err), 0, "%s", err.msg);
    free(w);
    // missing tensor: the message names the directory that was opened
    cr_assert_eq(nt_st_load_f32(st, "model.nope.weight", 0, NULL, &w, &err), -1);
    cr_assert(w == NULL);
    cr_assert(strstr(err.msg, dir) && strstr(err.msg, "'model.nope.weight' not found"), "%s", err.msg);
    nt_st_close(&st);
    cJSON_Delete(cfg);
    free(cfgp);
    free(dir);
}

// ---------------------------------------------------------------------------------------------- round trip

Test(st, write_read_round_trip_bit_exact) {
    uint8_t u8[3] = {1, 200, 255}; // first, so that every later tensor sits at an odd offset
    float f32[6] = {1.5f, -2.25f, 0.0f, -0.0f, 3.4e38f, 1e-45f};
    uint16_t f16[5] = {0x3c00, 0x8001, 0x7bff, 0x7c00, 0xfe01};
    uint16_t bf16[4] = {0x3f80, 0xc2f7, 0x0001, 0x7f80};
    int32_t i32[5] = {0, -1, INT32_MAX, INT32_MIN, 42};
    float scalar = 7.0f;
    int64_t s3[1] = {3}, s23[2] = {2, 3}, s5[1] = {5}, s221[3] = {2, 2, 1}, s04[2] = {0, 4};
    nt_st_tensor ts[] = {
        mk("u8", NT_DT_U8, 1, s3, u8),           mk("weight.f32", NT_DT_F32, 2, s23, f32),
        mk("weight.f16", NT_DT_F16, 1, s5, f16), mk("weight.bf16", NT_DT_BF16, 3, s221, bf16),
        mk("i32", NT_DT_I32, 1, s5, i32),        mk("scalar", NT_DT_F32, 0, NULL, &scalar),
        mk("empty", NT_DT_F32, 2, s04, NULL),
    };
    size_t n = sizeof(ts) / sizeof(ts[0]);
    const char *meta[] = {"format", "pt", "note", "h\xc3\xa9llo \"quoted\" \\ tab\t"};
    char *path = tmp_path("rt.safetensors");
    nt_err err;
    cr_assert_eq(nt_st_write(path, ts, n, meta, 2, &err), 0, "%s", err.msg);
    cr_assert(!has_temp_files(g_dir));

    // the header is padded to a multiple of 8 and the data follows it contiguously
    size_t len;
    char *bytes = nt_read_file(path, &len, &err);
    cr_assert(bytes != NULL);
    uint64_t hlen;
    memcpy(&hlen, bytes, 8);
    cr_assert_eq(hlen % 8, 0);
    size_t data = 0;
    for (size_t i = 0; i < n; i++) data += ts[i].nbytes;
    cr_assert_eq(len, 8 + hlen + data);
    free(bytes);

    nt_safetensors *st;
    cr_assert_eq(nt_st_open_file(&st, path, &err), 0, "%s", err.msg);
    cr_assert_eq(nt_st_count(st), n);
    for (size_t i = 0; i < n; i++) {
        const nt_st_tensor *t = nt_st_at(st, i);
        cr_assert_str_eq(t->name, ts[i].name); // header order is the order given
        cr_assert_eq(t->dtype, ts[i].dtype);
        cr_assert_eq(t->ndim, ts[i].ndim);
        for (int d = 0; d < t->ndim; d++) cr_assert_eq(t->shape[d], ts[i].shape[d]);
        cr_assert_eq(t->numel, ts[i].numel);
        cr_assert_eq(t->nbytes, ts[i].nbytes);
        if (t->nbytes) cr_assert(memcmp(t->data, ts[i].data, t->nbytes) == 0, "%s differs", t->name);
        cr_assert_str_eq(t->file, path);
    }
    cr_assert_str_eq(nt_st_metadata(st, "format"), "pt");
    cr_assert_str_eq(nt_st_metadata(st, "note"), meta[3]);

    float *w;
    cr_assert_eq(nt_st_load_f32(st, "weight.f32", 2, s23, &w, &err), 0, "%s", err.msg);
    cr_assert(memcmp(w, f32, sizeof(f32)) == 0);
    free(w);
    cr_assert_eq(nt_st_load_f32(st, "weight.f16", 1, s5, &w, &err), 0, "%s", err.msg);
    for (int i = 0; i < 5; i++) {
        float r = nt_f16_to_f32(f16[i]);
        cr_assert(memcmp(&w[i], &r, 4) == 0, "f16 element %d", i);
    }
    free(w);
    cr_assert_eq(nt_st_load_f32(st, "weight.bf16", 0, NULL, &w, &err), 0, "%s", err.msg);
    for (int i = 0; i < 4; i++) {
        float r = nt_bf16_to_f32(bf16[i]);
        cr_assert(memcmp(&w[i], &r, 4) == 0, "bf16 element %d", i);
    }
    free(w);
    cr_assert_eq(nt_st_load_f32(st, "scalar", 0, NULL, &w, &err), 0, "%s", err.msg);
    cr_assert_eq(w[0], 7.0f);
    free(w);
    cr_assert_eq(nt_st_load_f32(st, "empty", 2, s04, &w, &err), 0, "%s", err.msg);
    free(w);
    cr_assert_eq(nt_st_load_f32(st, "i32", 0, NULL, &w, &err), -1);
    cr_assert(strstr(err.msg, path) && strstr(err.msg, "dtype I32, expected a float type"), "%s", err.msg);
    nt_st_close(&st);

    // writing again replaces the file in place; metadata is optional
    cr_assert_eq(nt_st_write(path, ts + 1, 1, NULL, 0, &err), 0, "%s", err.msg);
    cr_assert_eq(nt_st_open_file(&st, path, &err), 0, "%s", err.msg);
    cr_assert_eq(nt_st_count(st), 1);
    cr_assert(nt_st_metadata(st, "format") == NULL);
    nt_st_close(&st);

    // no tensors at all is a valid (empty) file
    cr_assert_eq(nt_st_write(path, NULL, 0, NULL, 0, &err), 0, "%s", err.msg);
    cr_assert_eq(nt_st_open_file(&st, path, &err), 0, "%s", err.msg);
    cr_assert_eq(nt_st_count(st), 0);
    cr_assert(nt_st_find(st, "u8") == NULL);
    nt_st_close(&st);
    free(path);
}

Test(st, large_half_tensors_convert_in_parallel) {
    // above the OpenMP threshold, at an odd offset, every f16 and bf16 bit pattern several times over
    size_t n = 5 * 65536 + 3;
    uint16_t *h = malloc(n * 2);
    for (size_t i = 0; i < n; i++) h[i] = (uint16_t)(i * 40503u);
    uint8_t pad = 9;
    int64_t s1[1] = {1}, sn[1] = {(int64_t)n};
    nt_st_tensor ts[] = {mk("pad", NT_DT_U8, 1, s1, &pad), mk("h", NT_DT_F16, 1, sn, h), mk("b", NT_DT_BF16, 1, sn, h)};
    char *path = tmp_path("big.safetensors");
    nt_err err;
    cr_assert_eq(nt_st_write(path, ts, 3, NULL, 0, &err), 0, "%s", err.msg);
    nt_safetensors *st;
    cr_assert_eq(nt_st_open_file(&st, path, &err), 0, "%s", err.msg);
    float *a, *b;
    cr_assert_eq(nt_st_load_f32(st, "h", 1, sn, &a, &err), 0, "%s", err.msg);
    cr_assert_eq(nt_st_load_f32(st, "b", 1, sn, &b, &err), 0, "%s", err.msg);
    for (size_t i = 0; i < n; i++) {
        float ra = nt_f16_to_f32(h[i]), rb = nt_bf16_to_f32(h[i]);
        cr_assert(memcmp(&a[i], &ra, 4) == 0 && memcmp(&b[i], &rb, 4) == 0, "element %zu (0x%04x)", i, h[i]);
    }
    free(a);
    free(b);
    nt_st_close(&st);
    free(h);
    free(path);
}

Test(st, thousands_of_tensors_found_by_name) {
    enum { N = 6000 };
    nt_st_tensor *ts = calloc(N, sizeof(*ts));
    char(*names)[32] = calloc(N, 32);
    uint8_t *vals = malloc(N);
    int64_t s1[1] = {1};
    for (int i = 0; i < N; i++) {
        snprintf(names[i], 32, "model.layers.%d.w", (i * 7919) % N); // a permutation: not in sorted order
        vals[i] = (uint8_t)(i * 31);
        ts[i] = mk(names[i], NT_DT_U8, 1, s1, &vals[i]);
    }
    char *path = tmp_path("many.safetensors");
    nt_err err;
    cr_assert_eq(nt_st_write(path, ts, N, NULL, 0, &err), 0, "%s", err.msg);
    nt_safetensors *st;
    cr_assert_eq(nt_st_open_file(&st, path, &err), 0, "%s", err.msg);
    cr_assert_eq(nt_st_count(st), N);
    double t0 = nt_time();
    for (int rep = 0; rep < 20; rep++)
        for (int i = 0; i < N; i++) {
            const nt_st_tensor *t = nt_st_find(st, names[i]);
            cr_assert(t != NULL && t == nt_st_at(st, (size_t)i), "%s", names[i]);
            cr_assert_eq(*(const uint8_t *)t->data, vals[i]);
        }
    cr_assert(nt_time() - t0 < 5.0, "120000 lookups took %.2fs: lookup is not O(1)", nt_time() - t0);
    cr_assert(nt_st_find(st, "model.layers.6000.w") == NULL);
    nt_st_close(&st);
    free(path);
    free(vals);
    free(names);
    free(ts);
}

// ---------------------------------------------------------------------------------------------- conversions

Test(st, f16_all_bit_patterns_round_trip) {
    int nans = 0;
    for (uint32_t h = 0; h < 65536; h++) {
        float f = nt_f16_to_f32((uint16_t)h);
        if (isnan(f)) {
            nans++;
            cr_assert(isnan(nt_f16_to_f32(nt_f32_to_f16(f))), "NaN 0x%04x does not stay NaN", h);
            continue;
        }
        cr_assert_eq(nt_f32_to_f16(f), h, "0x%04x -> %g -> 0x%04x", h, f, nt_f32_to_f16(f));
    }
    cr_assert_eq(nans, 2 * 1023);
}

Test(st, f16_known_values) {
    struct {
        uint16_t h;
        float f;
    } k[] = {{0x0000, 0.0f},          {0x8000, -0.0f},         {0x3c00, 1.0f},        {0xc000, -2.0f},
             {0x3800, 0.5f},          {0x3555, 0.333251953125f}, {0x7bff, 65504.0f},    {0x0400, 6.103515625e-05f},
             {0x0001, 5.9604644775390625e-08f}, {0x03ff, 6.097555160522461e-05f}, {0x7c00, INFINITY},
             {0xfc00, -INFINITY}};
    for (size_t i = 0; i < sizeof(k) / sizeof(k[0]); i++) {
        float f = nt_f16_to_f32(k[i].h);
        cr_assert(memcmp(&f, &k[i].f, 4) == 0, "0x%04x -> %g, want %g", k[i].h, f, k[i].f);
        cr_assert_eq(nt_f32_to_f16(k[i].f), k[i].h);
    }
    // round to nearest even at the half-ulp ties, overflow to infinity, underflow to zero
    cr_assert_eq(nt_f32_to_f16(1.0f + 0x1p-11f), 0x3c00);        // tie, down to even
    cr_assert_eq(nt_f32_to_f16(1.0f + 3 * 0x1p-11f), 0x3c02);    // tie, up to even
    cr_assert_eq(nt_f32_to_f16(1.0f + 0x1p-11f + 0x1p-20f), 0x3c01);
    cr_assert_eq(nt_f32_to_f16(65519.0f), 0x7bff);
    cr_assert_eq(nt_f32_to_f16(65520.0f), 0x7c00);
    cr_assert_eq(nt_f32_to_f16(0x1p-25f), 0x0000);               // tie between 0 and the smallest subnormal
    cr_assert_eq(nt_f32_to_f16(0x1p-25f + 0x1p-40f), 0x0001);
    cr_assert_eq(nt_f32_to_f16(3 * 0x1p-25f), 0x0002);           // subnormal tie, up to even
    cr_assert(isnan(nt_f16_to_f32(nt_f32_to_f16(NAN))));
}

Test(st, bf16_conversion_and_rounding) {
    for (uint32_t h = 0; h < 65536; h++) {
        float f = nt_bf16_to_f32((uint16_t)h);
        uint32_t bits;
        memcpy(&bits, &f, 4);
        cr_assert_eq(bits, h << 16);
        if (!isnan(f)) cr_assert_eq(nt_f32_to_bf16(f), h, "0x%04x", h);
        else cr_assert(isnan(nt_bf16_to_f32(nt_f32_to_bf16(f))));
    }
    cr_assert_eq(nt_f32_to_bf16(1.0f), 0x3f80);
    cr_assert_eq(nt_f32_to_bf16(-2.0f), 0xc000);
    cr_assert_eq(nt_f32_to_bf16(1.0f + 0x1p-8f), 0x3f80);         // tie, down to even
    cr_assert_eq(nt_f32_to_bf16(1.0f + 3 * 0x1p-8f), 0x3f82);     // tie, up to even
    cr_assert_eq(nt_f32_to_bf16(1.0f + 0x1p-8f + 0x1p-20f), 0x3f81);
    cr_assert_eq(nt_f32_to_bf16(1.0f + 0x1p-8f - 0x1p-20f), 0x3f80);
    cr_assert_eq(nt_f32_to_bf16(3.4028235e38f), 0x7f80);          // FLT_MAX rounds up to infinity
    cr_assert(isnan(nt_bf16_to_f32(nt_f32_to_bf16(NAN))));
}

Test(st, dtype_table) {
    for (int i = 0; i < NT_DT_COUNT; i++) {
        nt_dtype d;
        cr_assert_eq(nt_dtype_parse(nt_dtype_name((nt_dtype)i), &d), 0);
        cr_assert_eq(d, (nt_dtype)i);
        cr_assert(nt_dtype_size((nt_dtype)i) >= 1);
    }
    nt_dtype d;
    cr_assert_eq(nt_dtype_parse("F8_E4M3", &d), -1);
    cr_assert_eq(nt_dtype_size(NT_DT_BF16), 2);
    cr_assert_eq(nt_dtype_size(NT_DT_I64), 8);
}

// ---------------------------------------------------------------------------------------------- sharded

static void write_two_shards(void) {
    float a[4] = {1, 2, 3, 4}, c[2] = {5, 6};
    uint16_t b[3] = {0x3c00, 0x4000, 0x4200};
    int64_t s22[2] = {2, 2}, s3[1] = {3}, s2[1] = {2};
    nt_st_tensor t1[] = {mk("layer.0.a", NT_DT_F32, 2, s22, a), mk("layer.0.b", NT_DT_F16, 1, s3, b)};
    nt_st_tensor t2[] = {mk("layer.1.c", NT_DT_F32, 1, s2, c)};
    const char *meta[] = {"format", "pt"};
    nt_err err;
    char *p1 = tmp_path("model-00001-of-00002.safetensors"), *p2 = tmp_path("model-00002-of-00002.safetensors");
    cr_assert_eq(nt_st_write(p1, t1, 2, meta, 1, &err), 0, "%s", err.msg);
    cr_assert_eq(nt_st_write(p2, t2, 1, NULL, 0, &err), 0, "%s", err.msg);
    free(p1);
    free(p2);
}

static char *write_index(const char *json) {
    char *p = tmp_path("model.safetensors.index.json");
    cr_assert(tu_write_file(p, json, strlen(json)) == 0);
    return p;
}

Test(st, sharded_checkpoint_loads) {
    write_two_shards();
    char *ip = write_index("{\"metadata\": {\"total_size\": 28}, \"weight_map\": {"
                           "\"layer.0.a\": \"model-00001-of-00002.safetensors\","
                           "\"layer.1.c\": \"model-00002-of-00002.safetensors\","
                           "\"layer.0.b\": \"model-00001-of-00002.safetensors\"}}");
    nt_safetensors *st;
    nt_err err;
    cr_assert_eq(nt_st_open_dir(&st, g_dir, &err), 0, "%s", err.msg);
    cr_assert_eq(nt_st_count(st), 3);
    const nt_st_tensor *c = nt_st_find(st, "layer.1.c");
    cr_assert(c != NULL && strstr(c->file, "model-00002-of-00002.safetensors"));
    cr_assert(strstr(nt_st_find(st, "layer.0.b")->file, "model-00001-of-00002.safetensors"));
    cr_assert_str_eq(nt_st_metadata(st, "format"), "pt");
    float *w;
    int64_t s3[1] = {3};
    cr_assert_eq(nt_st_load_f32(st, "layer.0.b", 1, s3, &w, &err), 0, "%s", err.msg);
    cr_assert(w[0] == 1.0f && w[1] == 2.0f && w[2] == 3.0f);
    free(w);
    cr_assert_eq(nt_st_load_f32(st, "layer.1.c", 0, NULL, &w, &err), 0, "%s", err.msg);
    cr_assert(w[0] == 5.0f && w[1] == 6.0f);
    free(w);
    cr_assert_eq(nt_st_load_f32(st, "layer.9.z", 0, NULL, &w, &err), -1);
    cr_assert(strstr(err.msg, g_dir) && strstr(err.msg, "not found"), "%s", err.msg);
    nt_st_close(&st);
    free(ip);
}

Test(st, index_naming_a_missing_shard) {
    write_two_shards();
    char *ip = write_index("{\"weight_map\": {\"layer.0.a\": \"model-00001-of-00002.safetensors\","
                           "\"layer.2.x\": \"model-00003-of-00003.safetensors\"}}");
    expect_dir_fail(g_dir, "model-00003-of-00003.safetensors", "missing");
    free(ip);
}

Test(st, index_malformed_json) {
    write_two_shards();
    char *ip = write_index("{\"weight_map\": {\"layer.0.a\": ");
    expect_dir_fail(g_dir, ip, "JSON");
    free(ip);
    ip = write_index("[\"weight_map\"]");
    expect_dir_fail(g_dir, ip, "object");
    free(ip);
    ip = write_index("{\"metadata\": {}}");
    expect_dir_fail(g_dir, ip, "weight_map");
    free(ip);
    ip = write_index("{\"weight_map\": {\"layer.0.a\": 7}}");
    expect_dir_fail(g_dir, ip, "file name");
    free(ip);
    ip = write_index("{\"weight_map\": {\"layer.0.a\": \"../../etc/passwd\"}}");
    expect_dir_fail(g_dir, ip, "outside");
    free(ip);
}

Test(st, index_lists_a_tensor_missing_from_its_shard) {
    write_two_shards();
    char *ip = write_index("{\"weight_map\": {\"layer.0.a\": \"model-00001-of-00002.safetensors\","
                           "\"layer.1.c\": \"model-00001-of-00002.safetensors\"}}");
    expect_dir_fail(g_dir, "model-00001-of-00002.safetensors", "layer.1.c");
    expect_dir_fail(g_dir, "model-00001-of-00002.safetensors", "missing");
    free(ip);
}

Test(st, shard_with_a_bad_header_names_the_shard) {
    write_two_shards();
    char *bad = write_header("model-00002-of-00002.safetensors", "{\"x\": 1}", 0);
    char *ip = write_index("{\"weight_map\": {\"layer.0.a\": \"model-00001-of-00002.safetensors\","
                           "\"x\": \"model-00002-of-00002.safetensors\"}}");
    expect_dir_fail(g_dir, bad, "not a JSON object");
    free(ip);
    free(bad);
}

Test(st, directory_with_no_weights) {
    char msg[600];
    snprintf(msg, sizeof(msg), "%s: no model.safetensors or model.safetensors.index.json", g_dir);
    nt_safetensors *st;
    nt_err err;
    cr_assert_eq(nt_st_open_dir(&st, g_dir, &err), -1);
    cr_assert(st == NULL);
    cr_assert_str_eq(err.msg, msg);
    char *missing = tmp_path("no/such/dir");
    expect_dir_fail(missing, missing, "no model.safetensors");
    free(missing);
}

// ---------------------------------------------------------------------------------------------- bad files

static char *write_valid(const char *name, size_t *len, uint64_t *hlen) {
    float a[16];
    uint16_t b[7];
    for (int i = 0; i < 16; i++) a[i] = (float)i;
    for (int i = 0; i < 7; i++) b[i] = (uint16_t)(0x3c00 + i);
    int64_t s44[2] = {4, 4}, s7[1] = {7};
    nt_st_tensor ts[] = {mk("a", NT_DT_F32, 2, s44, a), mk("b", NT_DT_BF16, 1, s7, b)};
    const char *meta[] = {"format", "pt"};
    char *path = tmp_path(name);
    nt_err err;
    cr_assert_eq(nt_st_write(path, ts, 2, meta, 1, &err), 0, "%s", err.msg);
    char *bytes = nt_read_file(path, len, &err);
    cr_assert(bytes != NULL);
    memcpy(hlen, bytes, 8);
    free(path);
    return bytes;
}

Test(st, truncated_files) {
    size_t len;
    uint64_t hlen;
    char *bytes = write_valid("full.safetensors", &len, &hlen);
    struct {
        size_t cut;
        const char *word;
    } cuts[] = {{0, "empty"},
                {3, "truncated"},
                {7, "truncated"},
                {8, "past the end"},
                {8 + (size_t)hlen / 2, "past the end"},
                {8 + (size_t)hlen - 1, "past the end"},
                {8 + (size_t)hlen, "past the end"},
                {8 + (size_t)hlen + 1, "past the end"},
                {len - 1, "past the end"}};
    for (size_t i = 0; i < sizeof(cuts) / sizeof(cuts[0]); i++) {
        char *p = tmp_path("cut.safetensors");
        cr_assert(tu_write_file(p, bytes, cuts[i].cut) == 0);
        expect_open_fail(p, cuts[i].word);
        free(p);
    }
    // every cut point fails cleanly (all tensors are non-empty, so no prefix is a valid file)
    for (size_t cut = 0; cut < len; cut++) {
        char *p = tmp_path("cut.safetensors");
        cr_assert(tu_write_file(p, bytes, cut) == 0);
        expect_open_fail(p, "");
        free(p);
    }
    free(bytes);
}

Test(st, mutated_headers_never_crash) {
    size_t len;
    uint64_t hlen;
    char *bytes = write_valid("full.safetensors", &len, &hlen);
    char *mut = malloc(len);
    char *p = tmp_path("mut.safetensors");
    const char alphabet[] = "{}[],:\"0123456789-.eE aFIU_\\";
    uint32_t rng = 12345;
    int opened = 0;
    for (int it = 0; it < 3000; it++) {
        memcpy(mut, bytes, len);
        int flips = 1 + it % 3;
        for (int f = 0; f < flips; f++) {
            rng = rng * 1664525u + 1013904223u;
            size_t pos = 8 + (rng >> 8) % hlen;
            rng = rng * 1664525u + 1013904223u;
            mut[pos] = alphabet[(rng >> 8) % (sizeof(alphabet) - 1)];
        }
        cr_assert(tu_write_file(p, mut, len) == 0);
        nt_safetensors *st;
        nt_err err;
        if (nt_st_open_file(&st, p, &err) == 0) {
            opened++;
            for (size_t i = 0; i < nt_st_count(st); i++) {
                const nt_st_tensor *t = nt_st_at(st, i);
                cr_assert(t->nbytes <= len - 8 - hlen);
                float *w;
                if (nt_st_load_f32(st, t->name, 0, NULL, &w, &err) == 0) free(w);
            }
            nt_st_close(&st);
        } else {
            cr_assert(strstr(err.msg, p) != NULL, "%s", err.msg);
        }
    }
    cr_assert(opened > 0 && opened < 3000);
    free(p);
    free(mut);
    free(bytes);
}

Test(st, empty_file) {
    char *p = tmp_path("empty.safetensors");
    cr_assert(tu_write_file(p, "", 0) == 0);
    expect_open_fail(p, "empty");
    free(p);
}

Test(st, nonexistent_file) {
    char *p = tmp_path("nope.safetensors");
    expect_open_fail(p, "cannot open");
    free(p);
    expect_open_fail(g_dir, "not a regular file");
}

Test(st, absurd_header_length) {
    char *p = write_raw("absurd.safetensors", 1ull << 40, "{}", 16);
    expect_open_fail(p, "absurd");
    free(p);
    p = write_raw("absurd2.safetensors", UINT64_MAX, "{}", 16);
    expect_open_fail(p, "absurd");
    free(p);
}

Test(st, header_length_past_eof) {
    char *p = write_raw("past.safetensors", 1000, "{}", 10);
    expect_open_fail(p, "past the end of the file");
    free(p);
}

Test(st, malformed_json_header) {
    char *p = write_header("bad.safetensors", "{\"a\": {\"dtype\": \"F32\",", 0);
    expect_open_fail(p, "not valid JSON");
    free(p);
    p = write_header("trail.safetensors", "{} x", 0);
    expect_open_fail(p, "not valid JSON");
    free(p);
    const unsigned char nul[12] = {4, 0, 0, 0, 0, 0, 0, 0, '{', '}', 0, ' '};
    p = tmp_path("nul.safetensors");
    cr_assert(tu_write_file(p, nul, sizeof(nul)) == 0);
    expect_open_fail(p, "NUL");
    free(p);
    p = write_header("zero.safetensors", "", 0);
    expect_open_fail(p, "not valid JSON");
    free(p);
}

Test(st, header_is_a_json_array) {
    char *p = write_header("arr.safetensors", "[{\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [0, 4]}]", 4);
    expect_open_fail(p, "not a JSON object");
    free(p);
    p = write_header("entry.safetensors", "{\"a\": [1, 2]}", 0);
    expect_open_fail(p, "not a JSON object");
    free(p);
}

Test(st, unknown_dtype) {
    char *p = write_header("dt.safetensors", "{\"a\": {\"dtype\": \"F7\", \"shape\": [1], \"data_offsets\": [0, 4]}}", 4);
    expect_open_fail(p, "unknown dtype 'F7'");
    free(p);
    p = write_header("dt2.safetensors", "{\"a\": {\"dtype\": 32, \"shape\": [1], \"data_offsets\": [0, 4]}}", 4);
    expect_open_fail(p, "dtype is not a string");
    free(p);
}

Test(st, missing_fields) {
    char *p = write_header("f1.safetensors", "{\"a\": {\"shape\": [1], \"data_offsets\": [0, 4]}}", 4);
    expect_open_fail(p, "no dtype");
    free(p);
    p = write_header("f2.safetensors", "{\"a\": {\"dtype\": \"F32\", \"data_offsets\": [0, 4]}}", 4);
    expect_open_fail(p, "no shape");
    free(p);
    p = write_header("f3.safetensors", "{\"a\": {\"dtype\": \"F32\", \"shape\": [1]}}", 4);
    expect_open_fail(p, "no data_offsets");
    free(p);
    p = write_header("f4.safetensors", "{\"a\": {\"dtype\": \"F32\", \"shape\": 1, \"data_offsets\": [0, 4]}}", 4);
    expect_open_fail(p, "shape is not an array");
    free(p);
    p = write_header("f5.safetensors", "{\"a\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [0]}}", 4);
    expect_open_fail(p, "data_offsets");
    free(p);
    p = write_header("f6.safetensors", "{\"a\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [0, \"4\"]}}", 4);
    expect_open_fail(p, "data_offsets");
    free(p);
}

Test(st, overlapping_offsets) {
    char *p = write_header("ov.safetensors",
                           "{\"x\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [4, 12]},"
                           " \"y\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [0, 8]}}",
                           12);
    expect_open_fail(p, "overlap");
    expect_open_fail(p, "'x'");
    free(p);
    // two tensors on exactly the same bytes
    p = write_header("ov2.safetensors",
                     "{\"x\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [0, 8]},"
                     " \"y\": {\"dtype\": \"I32\", \"shape\": [2], \"data_offsets\": [0, 8]}}",
                     8);
    expect_open_fail(p, "overlap");
    free(p);
    // touching ranges and empty tensors are fine
    p = write_header("ok.safetensors",
                     "{\"x\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [0, 8]},"
                     " \"e\": {\"dtype\": \"F32\", \"shape\": [0], \"data_offsets\": [4, 4]},"
                     " \"y\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [8, 16]}}",
                     16);
    nt_safetensors *st;
    nt_err err;
    cr_assert_eq(nt_st_open_file(&st, p, &err), 0, "%s", err.msg);
    nt_st_close(&st);
    free(p);
}

Test(st, offsets_past_end) {
    const char *name = "model.decoder.layers.0.fc1.weight";
    char hdr[256], want[1024];
    snprintf(hdr, sizeof(hdr), "{\"%s\": {\"dtype\": \"U8\", \"shape\": [1990], \"data_offsets\": [10, 2000]}}", name);
    char *p = write_header("pe.safetensors", hdr, 1500);
    nt_safetensors *st;
    nt_err err;
    cr_assert_eq(nt_st_open_file(&st, p, &err), -1);
    snprintf(want, sizeof(want), "%s: tensor '%s' data_offsets [10, 2000] run past the end of the data (1500 bytes)",
             p, name);
    cr_assert_str_eq(err.msg, want);
    free(p);
}

Test(st, offsets_reversed) {
    char *p = write_header("rev.safetensors", "{\"a\": {\"dtype\": \"U8\", \"shape\": [4], \"data_offsets\": [8, 4]}}", 8);
    expect_open_fail(p, "end before they begin");
    free(p);
}

Test(st, size_mismatch) {
    char *p = write_header("sm.safetensors", "{\"a\": {\"dtype\": \"F32\", \"shape\": [2, 2], \"data_offsets\": [0, 12]}}",
                           16);
    expect_open_fail(p, "size mismatch");
    free(p);
}

Test(st, negative_dim) {
    char *p = write_header("neg.safetensors", "{\"a\": {\"dtype\": \"F32\", \"shape\": [-1, 4], \"data_offsets\": [0, 16]}}",
                           16);
    expect_open_fail(p, "negative");
    free(p);
}

Test(st, non_integer_dim) {
    char *p = write_header("frac.safetensors", "{\"a\": {\"dtype\": \"U8\", \"shape\": [2.5], \"data_offsets\": [0, 2]}}", 2);
    expect_open_fail(p, "not a non-negative integer");
    free(p);
    p = write_header("str.safetensors", "{\"a\": {\"dtype\": \"U8\", \"shape\": [\"2\"], \"data_offsets\": [0, 2]}}", 2);
    expect_open_fail(p, "not a non-negative integer");
    free(p);
    p = write_header("huge.safetensors", "{\"a\": {\"dtype\": \"U8\", \"shape\": [1e300], \"data_offsets\": [0, 2]}}", 2);
    expect_open_fail(p, "not a non-negative integer");
    free(p);
}

Test(st, numel_overflow) {
    char *p = write_header("of.safetensors",
                           "{\"a\": {\"dtype\": \"F32\", \"shape\": [1099511627776, 1099511627776], \"data_offsets\": [0, 0]}}",
                           0);
    expect_open_fail(p, "overflow");
    free(p);
    // 2^61 elements fit int64 but 2^61 x 4 bytes do not
    p = write_header("of2.safetensors",
                     "{\"a\": {\"dtype\": \"F32\", \"shape\": [2147483648, 1073741824], \"data_offsets\": [0, 0]}}", 0);
    expect_open_fail(p, "overflow");
    free(p);
    p = write_header("dims.safetensors",
                     "{\"a\": {\"dtype\": \"U8\", \"shape\": [1,1,1,1,1,1,1,1,1], \"data_offsets\": [0, 1]}}", 1);
    expect_open_fail(p, "dims");
    free(p);
}

Test(st, bad_metadata) {
    char *p = write_header("m1.safetensors", "{\"__metadata__\": {\"format\": \"pt\", \"n\": 1}}", 0);
    expect_open_fail(p, "__metadata__ value for 'n' is not a string");
    free(p);
    p = write_header("m2.safetensors", "{\"__metadata__\": [\"pt\"]}", 0);
    expect_open_fail(p, "__metadata__ is not a JSON object");
    free(p);
}

Test(st, duplicate_tensor_in_header) {
    char *p = write_header("dup.safetensors",
                           "{\"a\": {\"dtype\": \"U8\", \"shape\": [1], \"data_offsets\": [0, 1]},"
                           " \"a\": {\"dtype\": \"U8\", \"shape\": [1], \"data_offsets\": [1, 2]}}",
                           2);
    expect_open_fail(p, "twice");
    free(p);
}

Test(st, missing_tensor) {
    size_t len;
    uint64_t hlen;
    free(write_valid("m.safetensors", &len, &hlen));
    char *p = tmp_path("m.safetensors");
    nt_safetensors *st;
    nt_err err;
    cr_assert_eq(nt_st_open_file(&st, p, &err), 0, "%s", err.msg);
    cr_assert(nt_st_find(st, "zzz") == NULL);
    float *w = (float *)1;
    cr_assert_eq(nt_st_load_f32(st, "zzz", 0, NULL, &w, &err), -1);
    cr_assert(w == NULL);
    char want[1024];
    snprintf(want, sizeof(want), "%s: tensor 'zzz' not found", p);
    cr_assert_str_eq(err.msg, want);
    nt_st_close(&st);
    free(p);
}

// ---------------------------------------------------------------------------------------------- bad writes

Test(st, write_rejects_bad_input) {
    float a[2] = {1, 2};
    int64_t s2[1] = {2};
    nt_st_tensor ts[] = {mk("w", NT_DT_F32, 1, s2, a), mk("w", NT_DT_F32, 1, s2, a)};
    char *p = tmp_path("w.safetensors");
    nt_err err;
    cr_assert_eq(nt_st_write(p, ts, 2, NULL, 0, &err), -1);
    cr_assert(strstr(err.msg, p) && strstr(err.msg, "duplicate tensor name 'w'"), "%s", err.msg);
    cr_assert(!nt_file_exists(p));

    ts[1].name = "v";
    ts[1].nbytes = 7;
    cr_assert_eq(nt_st_write(p, ts, 2, NULL, 0, &err), -1);
    cr_assert(strstr(err.msg, p) && strstr(err.msg, "size mismatch"), "%s", err.msg);

    ts[1].nbytes = 8;
    const char *meta[] = {"k", "1", "k", "2"};
    cr_assert_eq(nt_st_write(p, ts, 2, meta, 2, &err), -1);
    cr_assert(strstr(err.msg, "duplicate metadata key 'k'"), "%s", err.msg);

    ts[1].name = "__metadata__";
    cr_assert_eq(nt_st_write(p, ts, 2, NULL, 0, &err), -1);
    cr_assert(strstr(err.msg, "__metadata__"), "%s", err.msg);
    ts[1].name = "v";
    ts[1].shape[0] = -2;
    cr_assert_eq(nt_st_write(p, ts, 2, NULL, 0, &err), -1);
    cr_assert(strstr(err.msg, "invalid dim"), "%s", err.msg);
    ts[1].shape[0] = 2;

    // an unwritable place: the error names the path and no temporary file is left anywhere
    char *q = tmp_path("no_such_dir/w.safetensors");
    cr_assert_eq(nt_st_write(q, ts, 2, NULL, 0, &err), -1);
    cr_assert(strstr(err.msg, q) != NULL, "%s", err.msg);
    free(q);
    // a rename onto a directory fails after the data is written: the temporary file must go
    char *d = tmp_path("a_directory");
    cr_assert(mkdir(d, 0755) == 0);
    cr_assert_eq(nt_st_write(d, ts, 2, NULL, 0, &err), -1);
    cr_assert(strstr(err.msg, d) && strstr(err.msg, "rename"), "%s", err.msg);
    cr_assert(!has_temp_files(g_dir));
    free(d);
    free(p);
}
