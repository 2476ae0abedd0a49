// test_gguf.c: the GGUF reader (base/gguf.c) on files built byte by byte here: the happy paths (v2 and v3,
// every metadata value type, arrays of numbers and strings, general.alignment, tensor infos and data) and
// malformed files of every kind a hostile file can be (each must fail with one line naming the file and the
// problem, through the library and through `normtweak eval`, which writes no CSV); then the dequantizers
// against gguf-py's numpy dequantization (tests/golden/gguf, made by tests/golden/make_gguf_goldens.py).
#define _POSIX_C_SOURCE 200809L
#include <criterion/criterion.h>
#include <math.h>
#include <string.h>

#include "gguf.h"
#include "testutil.h"

// ---------------------------------------------------------------------------------------------- building files

static void hdr(tu_buf *b, uint32_t version, uint64_t n_t, uint64_t n_kv) {
    tu_buf_bytes(b, "GGUF", 4);
    tu_buf_u32(b, version);
    tu_buf_u64(b, n_t);
    tu_buf_u64(b, n_kv);
}

static void kv_head(tu_buf *b, const char *key, nt_gguf_vtype t) {
    tu_buf_gstr(b, key);
    tu_buf_u32(b, (uint32_t)t);
}
static void kv_str(tu_buf *b, const char *key, const char *v) {
    kv_head(b, key, NT_GGUF_STRING);
    tu_buf_gstr(b, v);
}
static void kv_u32(tu_buf *b, const char *key, uint32_t v) {
    kv_head(b, key, NT_GGUF_UINT32);
    tu_buf_u32(b, v);
}
static void arr_head(tu_buf *b, const char *key, nt_gguf_vtype elem, uint64_t n) {
    kv_head(b, key, NT_GGUF_ARRAY);
    tu_buf_u32(b, (uint32_t)elem);
    tu_buf_u64(b, n);
}

// A tensor info with nd dims (GGML order) of GGML type `type` at data offset off.
static void tinfo(tu_buf *b, const char *name, uint32_t nd, const uint64_t *dims, uint32_t type, uint64_t off) {
    tu_buf_gstr(b, name);
    tu_buf_u32(b, nd);
    for (uint32_t d = 0; dims && d < nd; d++) tu_buf_u64(b, dims[d]); // no dims: a malformed count alone
    tu_buf_u32(b, type);
    tu_buf_u64(b, off);
}

// The data section: padding to align, then n bytes (i * 7 mod 251, so no two tensors hold the same bytes).
static void data(tu_buf *b, size_t align, size_t n) {
    tu_buf_pad(b, align);
    for (size_t i = 0; i < n; i++) tu_buf_u8(b, (uint8_t)(i * 7 % 251));
}

// The standard small valid file most malformed cases are one edit away from: v3, one key, one F32 (2, 8) tensor.
static void std_head(tu_buf *b, uint64_t n_t, uint64_t n_kv) {
    hdr(b, 3, n_t, n_kv);
    kv_str(b, "general.architecture", "test");
}
static const uint64_t dims_8x2[2] = {8, 2};

static char *write_tmp(const char *dir, const char *name, const tu_buf *b) {
    char file[256];
    snprintf(file, sizeof(file), "%s.gguf", name);
    char *path = nt_path_join(dir, file);
    cr_assert_eq(tu_write_file(path, b->b, b->n), 0, "cannot write %s", path);
    return path;
}

// ---------------------------------------------------------------------------------------------- happy paths

// Every value type as a scalar, arrays of every scalar type and of strings (one empty), general.alignment 64,
// and three tensors (F32, F16, Q8_0) at aligned offsets with a gap between two of them.
static void build_all_types(tu_buf *b, uint32_t version) {
    hdr(b, version, 3, 24);
    kv_head(b, "t.u8", NT_GGUF_UINT8), tu_buf_u8(b, 200);
    kv_head(b, "t.i8", NT_GGUF_INT8), tu_buf_u8(b, (uint8_t)-100);
    kv_head(b, "t.u16", NT_GGUF_UINT16), tu_buf_u16(b, 65000);
    kv_head(b, "t.i16", NT_GGUF_INT16), tu_buf_u16(b, (uint16_t)-32000);
    kv_u32(b, "t.u32", 4000000000u);
    kv_head(b, "t.i32", NT_GGUF_INT32), tu_buf_u32(b, (uint32_t)-2000000000);
    kv_head(b, "t.f32", NT_GGUF_FLOAT32), tu_buf_f32(b, 1.5e-5f);
    kv_head(b, "t.bool", NT_GGUF_BOOL), tu_buf_u8(b, 1);
    kv_str(b, "t.str", "h\xc3\xa9llo"); // UTF-8
    kv_head(b, "t.u64", NT_GGUF_UINT64), tu_buf_u64(b, 9000000000000000000ull);
    kv_head(b, "t.i64", NT_GGUF_INT64), tu_buf_u64(b, (uint64_t)INT64_MIN);
    kv_head(b, "t.f64", NT_GGUF_FLOAT64), tu_buf_f64(b, -2.25e300);
    kv_head(b, "t.u64big", NT_GGUF_UINT64), tu_buf_u64(b, 18446744073709551615ull);
    arr_head(b, "a.u8", NT_GGUF_UINT8, 3), tu_buf_u8(b, 1), tu_buf_u8(b, 2), tu_buf_u8(b, 255);
    arr_head(b, "a.i16", NT_GGUF_INT16, 2), tu_buf_u16(b, (uint16_t)-5), tu_buf_u16(b, 7);
    arr_head(b, "a.u32", NT_GGUF_UINT32, 2), tu_buf_u32(b, 1), tu_buf_u32(b, 4294967295u);
    arr_head(b, "a.i32", NT_GGUF_INT32, 3), tu_buf_u32(b, 0), tu_buf_u32(b, (uint32_t)-1), tu_buf_u32(b, 123456);
    arr_head(b, "a.f32", NT_GGUF_FLOAT32, 2), tu_buf_f32(b, 0.25f), tu_buf_f32(b, -3.0f);
    arr_head(b, "a.f64", NT_GGUF_FLOAT64, 1), tu_buf_f64(b, 0.1);
    arr_head(b, "a.bool", NT_GGUF_BOOL, 2), tu_buf_u8(b, 0), tu_buf_u8(b, 1);
    arr_head(b, "a.str", NT_GGUF_STRING, 3), tu_buf_gstr(b, "one"), tu_buf_u64(b, 3), tu_buf_bytes(b, "a\0b", 3),
        tu_buf_gstr(b, "");
    arr_head(b, "a.empty", NT_GGUF_INT64, 0);
    arr_head(b, "a.u64", NT_GGUF_UINT64, 1), tu_buf_u64(b, 18446744073709551615ull);
    kv_u32(b, "general.alignment", 64);
    const uint64_t d_f32[2] = {4, 3}, d_f16[1] = {5}, d_q8[2] = {32, 2};
    tinfo(b, "w.f32", 2, d_f32, NT_GGML_F32, 0);   // 48 bytes
    tinfo(b, "w.f16", 1, d_f16, NT_GGML_F16, 128); // 10 bytes, after a gap
    tinfo(b, "w.q8", 2, d_q8, NT_GGML_Q8_0, 192);  // 68 bytes
    tu_buf_pad(b, 64);
    size_t base = b->n;
    for (int i = 0; i < 12; i++) tu_buf_f32(b, (float)i - 5.5f);
    while (b->n < base + 128) tu_buf_u8(b, 0xee);
    const float h[5] = {1.0f, -2.0f, 0.5f, 65504.0f, 0.0f};
    for (int i = 0; i < 5; i++) tu_buf_u16(b, nt_f32_to_f16(h[i]));
    while (b->n < base + 192) tu_buf_u8(b, 0xee);
    for (int blk = 0; blk < 2; blk++) {
        tu_buf_u16(b, nt_f32_to_f16(blk ? 0.5f : -0.25f));
        for (int j = 0; j < 32; j++) tu_buf_u8(b, (uint8_t)(int8_t)(j - 16));
    }
}

static void check_all_types(uint32_t version) {
    char *dir = tu_tmpdir();
    tu_buf b = {0};
    build_all_types(&b, version);
    char *path = write_tmp(dir, "all", &b);
    nt_gguf *g = NULL;
    nt_err err = {0};
    cr_assert_eq(nt_gguf_open(&g, path, &err), 0, "%s", err.msg);
    cr_expect_eq(nt_gguf_version(g), version);
    cr_expect_eq(nt_gguf_alignment(g), 64);
    cr_expect_eq(nt_gguf_kv_count(g), 24);
    cr_expect_str_eq(nt_gguf_kv_key(g, 0), "t.u8");
    cr_expect_eq(nt_gguf_kv_type(g, 13), NT_GGUF_ARRAY);

    int64_t v = 0;
    const struct {
        const char *key;
        int64_t want;
    } ints[] = {{"t.u8", 200},         {"t.i8", -100},        {"t.u16", 65000},
                {"t.i16", -32000},     {"t.u32", 4000000000}, {"t.i32", -2000000000},
                {"t.u64", 9000000000000000000ll}, {"t.i64", INT64_MIN}, {"general.alignment", 64}};
    for (size_t i = 0; i < sizeof(ints) / sizeof(ints[0]); i++) {
        cr_expect_eq(nt_gguf_get_int(g, ints[i].key, &v, &err), 0, "%s", err.msg);
        cr_expect_eq(v, ints[i].want, "%s: %lld", ints[i].key, (long long)v);
    }
    cr_expect_eq(nt_gguf_get_int(g, "t.u64big", &v, &err), -1);
    cr_expect(strstr(err.msg, "all.gguf") && strstr(err.msg, "too large for int64"), "%s", err.msg);
    cr_expect_eq(nt_gguf_get_int_range(g, "t.u8", 0, 100, &v, &err), -1);
    cr_expect(strstr(err.msg, "'t.u8' is 200, must be in [0, 100]"), "%s", err.msg);
    cr_expect_eq(nt_gguf_get_int_range(g, "t.u8", 0, 200, &v, &err), 0);

    double f = 0;
    cr_expect_eq(nt_gguf_get_float(g, "t.f32", &f, &err), 0);
    cr_expect_eq(f, (double)1.5e-5f);
    cr_expect_eq(nt_gguf_get_float(g, "t.f64", &f, &err), 0);
    cr_expect_eq(f, -2.25e300);
    bool bo = false;
    cr_expect_eq(nt_gguf_get_bool(g, "t.bool", &bo, &err), 0);
    cr_expect(bo);
    const char *s = NULL;
    size_t len = 0;
    cr_expect_eq(nt_gguf_get_str(g, "t.str", &s, &len, &err), 0);
    cr_expect_str_eq(s, "h\xc3\xa9llo");
    cr_expect_eq(len, 6);

    // wrong types and missing keys: one line naming the file, the key and both types
    cr_expect_eq(nt_gguf_get_str(g, "t.u8", &s, &len, &err), -1);
    cr_expect(strstr(err.msg, "all.gguf: metadata key 't.u8' is UINT8, expected a STRING"), "%s", err.msg);
    cr_expect_eq(nt_gguf_get_int(g, "t.f32", &v, &err), -1);
    cr_expect(strstr(err.msg, "'t.f32' is FLOAT32, expected an integer"), "%s", err.msg);
    cr_expect_eq(nt_gguf_get_float(g, "t.i32", &f, &err), -1);
    cr_expect(strstr(err.msg, "'t.i32' is INT32, expected FLOAT32 or FLOAT64"), "%s", err.msg);
    cr_expect_eq(nt_gguf_get_bool(g, "a.bool", &bo, &err), -1);
    cr_expect(strstr(err.msg, "'a.bool' is an ARRAY of BOOL, expected a BOOL"), "%s", err.msg);
    cr_expect_eq(nt_gguf_get_int(g, "nope.key", &v, &err), -1);
    cr_expect(strstr(err.msg, "all.gguf: metadata key 'nope.key' is missing"), "%s", err.msg);
    cr_expect(!nt_gguf_has(g, "nope.key") && nt_gguf_has(g, "a.str") && nt_gguf_find_key(g, "t.i8") == 1);

    // arrays
    nt_gguf_vtype et;
    uint64_t n = 0;
    cr_expect_eq(nt_gguf_get_arr(g, "a.str", &et, &n, &err), 0);
    cr_expect(et == NT_GGUF_STRING && n == 3);
    cr_expect_eq(nt_gguf_get_arr(g, "t.str", &et, &n, &err), -1);
    cr_expect(strstr(err.msg, "'t.str' is STRING, expected an ARRAY"), "%s", err.msg);
    cr_expect_eq(nt_gguf_get_arr_str(g, "a.str", 0, &s, &len, &err), 0);
    cr_expect(len == 3 && memcmp(s, "one", 3) == 0);
    cr_expect_eq(nt_gguf_get_arr_str(g, "a.str", 1, &s, &len, &err), 0);
    cr_expect(len == 3 && memcmp(s, "a\0b", 3) == 0, "embedded NUL kept");
    cr_expect_eq(nt_gguf_get_arr_str(g, "a.str", 2, &s, &len, &err), 0);
    cr_expect_eq(len, 0);
    cr_expect_eq(nt_gguf_get_arr_str(g, "a.str", 3, &s, &len, &err), -1);
    cr_expect(strstr(err.msg, "index 3 is past its 3 strings"), "%s", err.msg);
    cr_expect_eq(nt_gguf_get_arr_str(g, "a.u8", 0, &s, &len, &err), -1);
    cr_expect(strstr(err.msg, "'a.u8' is an ARRAY of UINT8, expected an ARRAY of STRING"), "%s", err.msg);

    int32_t *i32 = NULL;
    cr_expect_eq(nt_gguf_get_arr_i32(g, "a.i32", &i32, &n, &err), 0, "%s", err.msg);
    cr_expect(n == 3 && i32[0] == 0 && i32[1] == -1 && i32[2] == 123456);
    free(i32);
    cr_expect_eq(nt_gguf_get_arr_i32(g, "a.u8", &i32, &n, &err), 0);
    cr_expect(n == 3 && i32[2] == 255);
    free(i32);
    cr_expect_eq(nt_gguf_get_arr_i32(g, "a.i16", &i32, &n, &err), 0);
    cr_expect(n == 2 && i32[0] == -5 && i32[1] == 7);
    free(i32);
    cr_expect_eq(nt_gguf_get_arr_i32(g, "a.u32", &i32, &n, &err), -1);
    cr_expect(strstr(err.msg, "'a.u32' element 1 is 4294967295, does not fit in int32"), "%s", err.msg);
    int64_t *i64 = NULL;
    cr_expect_eq(nt_gguf_get_arr_i64(g, "a.u32", &i64, &n, &err), 0);
    cr_expect(n == 2 && i64[1] == 4294967295ll);
    free(i64);
    cr_expect_eq(nt_gguf_get_arr_i64(g, "a.u64", &i64, &n, &err), -1);
    cr_expect(strstr(err.msg, "'a.u64' element 0 is a UINT64 too large for int64"), "%s", err.msg);
    cr_expect_eq(nt_gguf_get_arr_i64(g, "a.empty", &i64, &n, &err), 0);
    cr_expect(n == 0 && i64 != NULL);
    free(i64);
    float *f32 = NULL;
    cr_expect_eq(nt_gguf_get_arr_f32(g, "a.f32", &f32, &n, &err), 0);
    cr_expect(n == 2 && f32[0] == 0.25f && f32[1] == -3.0f);
    free(f32);
    cr_expect_eq(nt_gguf_get_arr_f32(g, "a.f64", &f32, &n, &err), 0);
    cr_expect(n == 1 && f32[0] == 0.1f);
    free(f32);
    cr_expect_eq(nt_gguf_get_arr_f32(g, "a.i32", &f32, &n, &err), -1);
    cr_expect(strstr(err.msg, "'a.i32' is an ARRAY of INT32, expected an ARRAY of FLOAT32 or FLOAT64"), "%s", err.msg);

    // tensors
    cr_assert_eq(nt_gguf_tensor_count(g), 3);
    const nt_gguf_tensor *t = nt_gguf_find_tensor(g, "w.f32");
    cr_assert_not_null(t);
    cr_expect(t == nt_gguf_tensor_at(g, 0) && t->type == NT_GGML_F32 && t->n_dims == 2 && t->dims[0] == 4 &&
              t->dims[1] == 3 && t->dims[2] == 1 && t->n_elements == 12 && t->n_rows == 3 && t->nbytes == 48);
    cr_expect_eq(nt_gguf_data_offset(g) % 64, 0);
    cr_expect_eq((const unsigned char *)t->data - (const unsigned char *)nt_gguf_tensor_at(g, 1)->data, -128);
    float out[64];
    cr_assert_eq(nt_gguf_dequantize_rows(t, 1, 2, out, &err), 0, "%s", err.msg);
    for (int i = 0; i < 8; i++) cr_expect_eq(out[i], (float)(i + 4) - 5.5f);
    cr_expect_eq(nt_gguf_dequantize_rows(t, 2, 2, out, &err), -1);
    cr_expect(strstr(err.msg, "all.gguf: tensor 'w.f32': rows [2, 2 + 2) are outside its 3 rows"), "%s", err.msg);
    t = nt_gguf_find_tensor(g, "w.f16");
    cr_assert(t && t->n_dims == 1 && t->dims[0] == 5 && t->n_rows == 1 && t->offset == 128);
    cr_assert_eq(nt_gguf_dequantize_rows(t, 0, 1, out, &err), 0);
    cr_expect(out[0] == 1.0f && out[1] == -2.0f && out[2] == 0.5f && out[3] == 65504.0f && out[4] == 0.0f);
    t = nt_gguf_find_tensor(g, "w.q8");
    float *all = NULL;
    cr_assert_eq(nt_gguf_dequantize(t, &all, &err), 0, "%s", err.msg);
    for (int j = 0; j < 32; j++) {
        cr_expect_eq(all[j], (float)(j - 16) * -0.25f);
        cr_expect_eq(all[32 + j], (float)(j - 16) * 0.5f);
    }
    free(all);
    cr_expect_null(nt_gguf_find_tensor(g, "w"));
    cr_expect_null(nt_gguf_tensor_at(g, 3));
    nt_gguf_close(&g);
    cr_expect_null(g);
    nt_gguf_close(&g); // closing twice is harmless
    free(path);
    tu_buf_free(&b);
    tu_rmtree(dir);
    free(dir);
}

Test(gguf, v3_every_metadata_type_and_alignment) { check_all_types(3); }
Test(gguf, v2_every_metadata_type_and_alignment) { check_all_types(2); }

// No tensors and no data section at all; the default alignment; a file that is its header.
Test(gguf, no_tensors_no_data_section) {
    char *dir = tu_tmpdir();
    tu_buf b = {0};
    std_head(&b, 0, 1);
    char *path = write_tmp(dir, "empty", &b);
    nt_gguf *g = NULL;
    nt_err err = {0};
    cr_assert_eq(nt_gguf_open(&g, path, &err), 0, "%s", err.msg);
    cr_expect(nt_gguf_tensor_count(g) == 0 && nt_gguf_alignment(g) == 32 && nt_gguf_kv_count(g) == 1);
    cr_expect(nt_gguf_is_gguf(path));
    nt_gguf_close(&g);
    cr_expect(!nt_gguf_is_gguf(dir));
    free(path);
    tu_buf_free(&b);
    tu_rmtree(dir);
    free(dir);
}

// A type the file may hold but normtweak does not dequantize: the file opens, dequantizing it says why.
Test(gguf, known_type_without_dequantizer) {
    char *dir = tu_tmpdir();
    tu_buf b = {0};
    std_head(&b, 1, 1);
    const uint64_t d[1] = {256};
    tinfo(&b, "iq", 1, d, NT_GGML_IQ2_XS, 0);
    data(&b, 32, 74);
    char *path = write_tmp(dir, "iq", &b);
    nt_gguf *g = NULL;
    nt_err err = {0};
    cr_assert_eq(nt_gguf_open(&g, path, &err), 0, "%s", err.msg);
    float out[256];
    cr_expect_eq(nt_gguf_dequantize_rows(nt_gguf_tensor_at(g, 0), 0, 1, out, &err), -1);
    cr_expect(strstr(err.msg, "iq.gguf: tensor 'iq' is IQ2_XS, which normtweak cannot dequantize (supported: F32, F16, "
                              "Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K, BF16)"),
              "%s", err.msg);
    nt_gguf_close(&g);
    free(path);
    tu_buf_free(&b);
    tu_rmtree(dir);
    free(dir);
}

// The traits table: every id it knows has a sane block size and a name that maps back to the id.
Test(gguf, traits_table) {
    int dequant = 0;
    for (uint32_t id = 0; id < 64; id++) {
        const nt_ggml_traits *t = nt_ggml_traits_of(id);
        if (!t) {
            cr_expect_str_eq(nt_ggml_type_name(id), "?");
            continue;
        }
        cr_expect_eq((uint32_t)t->id, id, "%s", t->name);
        cr_expect(t->block >= 1 && t->bytes >= 1, "%s", t->name);
        dequant += t->dequant != NULL;
    }
    cr_expect_eq(dequant, 13, "F32 F16 BF16 Q8_0 Q4_0 Q4_1 Q5_0 Q5_1 Q2_K..Q6_K");
    cr_expect_null(nt_ggml_traits_of(4), "Q4_2 is gone");
    cr_expect_null(nt_ggml_traits_of(UINT32_MAX));
}

// ---------------------------------------------------------------------------------------------- malformed files

typedef struct {
    const char *name;      // the file is NAME.gguf
    void (*build)(tu_buf *b);
    const char *needle;    // what the message must say, beside the file name
} bad_case;

static void bad_empty(tu_buf *b) { (void)b; }
static void bad_magic(tu_buf *b) {
    std_head(b, 0, 1);
    memcpy(b->b, "GGUX", 4);
}
static void bad_short(tu_buf *b) { tu_buf_bytes(b, "GG", 2); }
static void bad_trunc_version(tu_buf *b) { tu_buf_bytes(b, "GGUF\3\0", 6); }
static void bad_trunc_counts(tu_buf *b) {
    tu_buf_bytes(b, "GGUF", 4);
    tu_buf_u32(b, 3);
    tu_buf_u64(b, 0);
}
static void bad_version1(tu_buf *b) { hdr(b, 1, 0, 0); }
static void bad_version4(tu_buf *b) { hdr(b, 4, 0, 0); }
static void bad_big_endian(tu_buf *b) { hdr(b, 0x03000000u, 0, 0); }
static void bad_kv_count(tu_buf *b) { std_head(b, 0, 1ull << 60); }
static void bad_tensor_count(tu_buf *b) { std_head(b, 1ull << 60, 1); }
static void bad_key_len(tu_buf *b) {
    hdr(b, 3, 0, 1);
    tu_buf_u64(b, 1ull << 40);
    tu_buf_bytes(b, "general.x", 9);
}
static void bad_key_len_max(tu_buf *b) {
    hdr(b, 3, 0, 1);
    tu_buf_u64(b, UINT64_MAX);
    tu_buf_u64(b, 0); // enough bytes for one key/value, so the length itself is what fails
}
static void bad_key_empty(tu_buf *b) {
    hdr(b, 3, 0, 1);
    kv_u32(b, "", 1);
}
static void bad_key_nul(tu_buf *b) {
    hdr(b, 3, 0, 1);
    tu_buf_u64(b, 5);
    tu_buf_bytes(b, "ab\0cd", 5);
    tu_buf_u32(b, NT_GGUF_UINT8);
    tu_buf_u8(b, 0);
}
static void bad_key_too_long(tu_buf *b) {
    hdr(b, 3, 0, 1);
    tu_buf_u64(b, 70000);
    for (int i = 0; i < 70000; i++) tu_buf_u8(b, 'k');
    tu_buf_u32(b, NT_GGUF_UINT8);
    tu_buf_u8(b, 0);
}
static void bad_value_type(tu_buf *b) {
    hdr(b, 3, 0, 1);
    kv_head(b, "general.x", (nt_gguf_vtype)13);
    tu_buf_u32(b, 0);
}
static void bad_trunc_value_type(tu_buf *b) {
    hdr(b, 3, 0, 1);
    tu_buf_gstr(b, "general.x");
    tu_buf_u16(b, 4);
}
static void bad_trunc_scalar(tu_buf *b) {
    hdr(b, 3, 0, 1);
    kv_head(b, "general.x", NT_GGUF_UINT64);
    tu_buf_u32(b, 0);
}
static void bad_string_len(tu_buf *b) {
    hdr(b, 3, 0, 1);
    kv_head(b, "general.name", NT_GGUF_STRING);
    tu_buf_u64(b, 1000);
    tu_buf_bytes(b, "short", 5);
}
static void bad_array_count(tu_buf *b) {
    hdr(b, 3, 0, 1);
    arr_head(b, "general.nums", NT_GGUF_UINT32, 1ull << 62);
    tu_buf_u32(b, 1);
}
static void bad_string_array_count(tu_buf *b) {
    hdr(b, 3, 0, 1);
    arr_head(b, "tokenizer.ggml.tokens", NT_GGUF_STRING, UINT64_MAX);
    tu_buf_gstr(b, "a");
}
static void bad_string_array_elem(tu_buf *b) {
    hdr(b, 3, 0, 1);
    arr_head(b, "tokenizer.ggml.tokens", NT_GGUF_STRING, 2);
    tu_buf_gstr(b, "a");
    tu_buf_u64(b, 1ull << 50);
    tu_buf_bytes(b, "b", 1);
}
static void bad_nested_array(tu_buf *b) {
    hdr(b, 3, 0, 1);
    arr_head(b, "general.nested", NT_GGUF_ARRAY, 1);
    tu_buf_u32(b, NT_GGUF_UINT8);
    tu_buf_u64(b, 1);
    tu_buf_u8(b, 1);
}
static void bad_array_elem_type(tu_buf *b) {
    hdr(b, 3, 0, 1);
    arr_head(b, "general.x", (nt_gguf_vtype)77, 1);
    tu_buf_u32(b, 1);
}
static void bad_bool(tu_buf *b) {
    hdr(b, 3, 0, 1);
    kv_head(b, "tokenizer.ggml.add_bos_token", NT_GGUF_BOOL);
    tu_buf_u8(b, 2);
}
static void bad_bool_array(tu_buf *b) {
    hdr(b, 3, 0, 1);
    arr_head(b, "general.flags", NT_GGUF_BOOL, 3);
    tu_buf_bytes(b, "\1\0\7", 3);
}
static void bad_dup_key(tu_buf *b) {
    std_head(b, 0, 3);
    kv_u32(b, "general.x", 1);
    kv_str(b, "general.architecture", "other");
}
static void bad_align_zero(tu_buf *b) {
    std_head(b, 0, 2);
    kv_u32(b, "general.alignment", 0);
}
static void bad_align_npot(tu_buf *b) {
    std_head(b, 0, 2);
    kv_u32(b, "general.alignment", 48);
}
static void bad_align_type(tu_buf *b) {
    std_head(b, 0, 2);
    kv_str(b, "general.alignment", "32");
}
static void bad_align_huge(tu_buf *b) {
    std_head(b, 0, 2);
    kv_head(b, "general.alignment", NT_GGUF_UINT64);
    tu_buf_u64(b, 1ull << 63);
}
static void bad_n_dims5(tu_buf *b) {
    std_head(b, 1, 1);
    const uint64_t d[5] = {1, 1, 1, 1, 1};
    tinfo(b, "t5", 5, d, NT_GGML_F32, 0);
    data(b, 32, 4);
}
static void bad_n_dims0(tu_buf *b) {
    std_head(b, 1, 1);
    tinfo(b, "t0", 0, NULL, NT_GGML_F32, 0);
    data(b, 32, 64);
}
static void bad_n_dims_huge(tu_buf *b) {
    std_head(b, 1, 1);
    tinfo(b, "tx", UINT32_MAX, NULL, NT_GGML_F32, 0);
    data(b, 32, 64);
}
static void bad_zero_dim(tu_buf *b) {
    std_head(b, 1, 1);
    const uint64_t d[2] = {8, 0};
    tinfo(b, "z", 2, d, NT_GGML_F32, 0);
    data(b, 32, 4);
}
static void bad_dims_overflow(tu_buf *b) {
    std_head(b, 1, 1);
    const uint64_t d[3] = {1ull << 32, 1ull << 32, 1ull << 32};
    tinfo(b, "big", 3, d, NT_GGML_F32, 0);
    data(b, 32, 4);
}
static void bad_dim_negative(tu_buf *b) {
    std_head(b, 1, 1);
    const uint64_t d[2] = {8, (uint64_t)-2};
    tinfo(b, "neg", 2, d, NT_GGML_F32, 0);
    data(b, 32, 4);
}
static void bad_size_overflow(tu_buf *b) {
    std_head(b, 1, 1);
    const uint64_t d[1] = {1ull << 61}; // 2^61 F64 values: 2^64 bytes
    tinfo(b, "huge", 1, d, NT_GGML_F64, 0);
    data(b, 32, 4);
}
static void bad_f32_size_overflow(tu_buf *b) {
    std_head(b, 1, 1);
    const uint64_t d[2] = {1ull << 31, 1ull << 31}; // 2^62 elements x 4 bytes
    tinfo(b, "huge", 2, d, NT_GGML_F32, 0);
    data(b, 32, 4);
}
static void bad_tensor_type(tu_buf *b) {
    std_head(b, 1, 1);
    tinfo(b, "a", 2, dims_8x2, 4, 0); // Q4_2: removed
    data(b, 32, 64);
}
static void bad_tensor_type_big(tu_buf *b) {
    std_head(b, 1, 1);
    tinfo(b, "a", 2, dims_8x2, 100000, 0);
    data(b, 32, 64);
}
static void bad_block_multiple(tu_buf *b) {
    std_head(b, 1, 1);
    const uint64_t d[2] = {48, 2};
    tinfo(b, "q", 2, d, NT_GGML_Q4_0, 0);
    data(b, 32, 64);
}
static void bad_misaligned(tu_buf *b) {
    std_head(b, 1, 1);
    tinfo(b, "a", 2, dims_8x2, NT_GGML_F32, 4);
    data(b, 32, 128);
}
static void bad_offset_past_end(tu_buf *b) {
    std_head(b, 1, 1);
    tinfo(b, "a", 2, dims_8x2, NT_GGML_F32, 1ull << 40);
    data(b, 32, 64);
}
static void bad_offset_wraps(tu_buf *b) {
    std_head(b, 1, 1);
    tinfo(b, "a", 2, dims_8x2, NT_GGML_F32, UINT64_MAX - 31); // a multiple of 32 whose end wraps around
    data(b, 32, 64);
}
static void bad_data_truncated(tu_buf *b) {
    std_head(b, 1, 1);
    tinfo(b, "a", 2, dims_8x2, NT_GGML_F32, 0);
    data(b, 32, 63);
}
static void bad_no_data_section(tu_buf *b) {
    std_head(b, 1, 1);
    tinfo(b, "a", 2, dims_8x2, NT_GGML_F32, 0);
    while (b->n % 32 == 0) tu_buf_u8(b, 0); // the header must not end on a boundary for this case
}
static void bad_overlap(tu_buf *b) {
    std_head(b, 2, 1);
    tinfo(b, "a", 2, dims_8x2, NT_GGML_F32, 0);
    tinfo(b, "b", 2, dims_8x2, NT_GGML_F32, 32); // a is 64 bytes
    data(b, 32, 128);
}
static void bad_same_offset(tu_buf *b) {
    std_head(b, 2, 1);
    const uint64_t d[1] = {8};
    tinfo(b, "a", 1, d, NT_GGML_F32, 0);
    tinfo(b, "b", 1, d, NT_GGML_F32, 0);
    data(b, 32, 64);
}
static void bad_dup_tensor(tu_buf *b) {
    std_head(b, 2, 1);
    tinfo(b, "a", 2, dims_8x2, NT_GGML_F32, 0);
    tinfo(b, "a", 2, dims_8x2, NT_GGML_F32, 64);
    data(b, 32, 128);
}
static void bad_tensor_name_empty(tu_buf *b) {
    std_head(b, 1, 1);
    tinfo(b, "", 2, dims_8x2, NT_GGML_F32, 0);
    data(b, 32, 64);
}
static void bad_tensor_name_long(tu_buf *b) {
    std_head(b, 1, 1);
    char name[2001];
    memset(name, 'n', 2000);
    name[2000] = '\0';
    tinfo(b, name, 2, dims_8x2, NT_GGML_F32, 0);
    data(b, 32, 64);
}
static void bad_trunc_dims(tu_buf *b) {
    std_head(b, 1, 1);
    tu_buf_gstr(b, "blk.0.attn_q.weight"); // a long name: the file holds at least one tensor info's minimum
    tu_buf_u32(b, 2);
    tu_buf_u64(b, 8);
    tu_buf_u32(b, 2); // half of the second dim
}
static void bad_trunc_tensor_type(tu_buf *b) {
    std_head(b, 1, 1);
    tu_buf_gstr(b, "blk.0.attn_q.weight");
    tu_buf_u32(b, 1);
    tu_buf_u64(b, 8);
}
static void bad_trunc_offset(tu_buf *b) {
    std_head(b, 1, 1);
    tu_buf_gstr(b, "blk.0.attn_q.weight");
    tu_buf_u32(b, 1);
    tu_buf_u64(b, 8);
    tu_buf_u32(b, NT_GGML_F32);
    tu_buf_u32(b, 0);
}

static const bad_case bad_cases[] = {
    {"empty", bad_empty, "file is empty"},
    {"magic", bad_magic, "not a GGUF file (starts with bytes 47 47 55 58"},
    {"short", bad_short, "not a GGUF file"},
    {"trunc_version", bad_trunc_version, "truncated: the header's version needs 4 bytes at offset 4"},
    {"trunc_counts", bad_trunc_counts, "truncated: the header's metadata key count"},
    {"version1", bad_version1, "GGUF version 1 is not supported"},
    {"version4", bad_version4, "unsupported GGUF version 4"},
    {"big_endian", bad_big_endian, "a big-endian GGUF file (version 3)"},
    {"kv_count", bad_kv_count, "header claims 1152921504606846976 metadata keys, more than"},
    {"tensor_count", bad_tensor_count, "header claims 1152921504606846976 tensors, more than"},
    {"key_len", bad_key_len, "truncated: metadata key needs 1099511627776 bytes"},
    {"key_len_max", bad_key_len_max, "truncated: metadata key needs 18446744073709551615 bytes"},
    {"key_empty", bad_key_empty, "metadata key at offset 24 is empty"},
    {"key_nul", bad_key_nul, "metadata key at offset 24 contains a NUL byte"},
    {"key_too_long", bad_key_too_long, "is 70000 bytes long (the limit is 65535)"},
    {"value_type", bad_value_type, "metadata key 'general.x' has unknown value type 13"},
    {"trunc_value_type", bad_trunc_value_type, "truncated: the value type of key 'general.x'"},
    {"trunc_scalar", bad_trunc_scalar, "truncated: the value of key 'general.x' needs 8 bytes"},
    {"string_len", bad_string_len, "truncated: the string value of key 'general.name' needs 1000 bytes"},
    {"array_count", bad_array_count, "'general.nums' claims 4611686018427387904 UINT32 elements"},
    {"string_array_count", bad_string_array_count, "'tokenizer.ggml.tokens' claims 18446744073709551615 strings"},
    {"string_array_elem", bad_string_array_elem, "truncated: a string of array 'tokenizer.ggml.tokens'"},
    {"nested_array", bad_nested_array, "'general.nested' is an array of arrays"},
    {"array_elem_type", bad_array_elem_type, "'general.x' is an array of unknown element type 77"},
    {"bool", bad_bool, "'tokenizer.ggml.add_bos_token' is a BOOL of value 2 (must be 0 or 1)"},
    {"bool_array", bad_bool_array, "'general.flags' element 2 is a BOOL of value 7"},
    {"dup_key", bad_dup_key, "metadata key 'general.architecture' appears twice"},
    {"align_zero", bad_align_zero, "general.alignment is 0, not a positive power of two"},
    {"align_npot", bad_align_npot, "general.alignment is 48, not a positive power of two"},
    {"align_type", bad_align_type, "metadata key 'general.alignment' is STRING, expected an integer"},
    {"align_huge", bad_align_huge, "'general.alignment' is a UINT64 too large for int64"},
    {"n_dims5", bad_n_dims5, "tensor 't5' has 5 dims (1 to 4 are allowed)"},
    {"n_dims0", bad_n_dims0, "tensor 't0' has 0 dims"},
    {"n_dims_huge", bad_n_dims_huge, "tensor 'tx' has 4294967295 dims"},
    {"zero_dim", bad_zero_dim, "tensor 'z' has a zero dim (dim 1)"},
    {"dims_overflow", bad_dims_overflow, "tensor 'big' has dims whose product overflows (dim 1 is 4294967296)"},
    {"dim_negative", bad_dim_negative, "tensor 'neg' has dims whose product overflows (dim 1 is 18446744073709551614)"},
    {"size_overflow", bad_size_overflow, "tensor 'huge' size overflows"},
    {"f32_size_overflow", bad_f32_size_overflow, "tensor 'huge' size overflows"},
    {"tensor_type", bad_tensor_type, "tensor 'a' has unknown type 4"},
    {"tensor_type_big", bad_tensor_type_big, "tensor 'a' has unknown type 100000"},
    {"block_multiple", bad_block_multiple, "tensor 'q' has rows of 48 values, not a multiple of Q4_0's block of 32"},
    {"misaligned", bad_misaligned, "tensor 'a' offset 4 is not a multiple of the alignment 32"},
    {"offset_past_end", bad_offset_past_end, "truncated: tensor 'a' (64 bytes at data offset 1099511627776) runs past"},
    {"offset_wraps", bad_offset_wraps, "tensor 'a' (64 bytes at data offset 18446744073709551584) runs past"},
    {"data_truncated", bad_data_truncated, "tensor 'a' (64 bytes at data offset 0) runs past the end of the data section (63 bytes)"},
    {"no_data_section", bad_no_data_section, "truncated: the data section would start at offset"},
    {"overlap", bad_overlap, "tensors 'a' [0, 64) and 'b' [32, 96) overlap"},
    {"same_offset", bad_same_offset, "tensors 'a' [0, 32) and 'b' [0, 32) overlap"},
    {"dup_tensor", bad_dup_tensor, "tensor 'a' appears twice"},
    {"tensor_name_empty", bad_tensor_name_empty, "tensor name at offset"},
    {"tensor_name_long", bad_tensor_name_long, "is 2000 bytes long (the limit is 1024)"},
    {"trunc_dims", bad_trunc_dims, "truncated: the dims of tensor 'blk.0.attn_q.weight' needs 8 bytes"},
    {"trunc_tensor_type", bad_trunc_tensor_type, "truncated: the type of tensor 'blk.0.attn_q.weight'"},
    {"trunc_offset", bad_trunc_offset, "truncated: the offset of tensor 'blk.0.attn_q.weight'"},
};
#define N_BAD (sizeof(bad_cases) / sizeof(bad_cases[0]))

// Each malformed file fails to open with one line that names it and says what is wrong.
Test(gguf, malformed_files_library) {
    char *dir = tu_tmpdir();
    for (size_t i = 0; i < N_BAD; i++) {
        tu_buf b = {0};
        bad_cases[i].build(&b);
        char *path = write_tmp(dir, bad_cases[i].name, &b);
        nt_gguf *g = (nt_gguf *)&b; // must come back NULL
        nt_err err = {0};
        int rc = nt_gguf_open(&g, path, &err);
        cr_expect_eq(rc, -1, "%s: opened", bad_cases[i].name);
        cr_expect_null(g, "%s: handle not NULL on failure", bad_cases[i].name);
        cr_expect(strncmp(err.msg, path, strlen(path)) == 0 && err.msg[strlen(path)] == ':',
                  "%s: message does not start with the file: %s", bad_cases[i].name, err.msg);
        cr_expect(strstr(err.msg, bad_cases[i].needle), "%s: message '%s' lacks '%s'", bad_cases[i].name, err.msg,
                  bad_cases[i].needle);
        cr_expect(!strchr(err.msg, '\n'), "%s: message spans lines", bad_cases[i].name);
        if (rc == 0) nt_gguf_close(&g);
        free(path);
        tu_buf_free(&b);
    }
    tu_rmtree(dir);
    free(dir);
}

// The same files through `normtweak eval --model FILE.gguf`: exit 1, one line naming the file and the problem,
// no CSV written.
Test(gguf, malformed_files_cli) {
    char *dir = tu_tmpdir(), *out = nt_path_join(dir, "out.csv"), *data = tu_shared("datasets");
    for (size_t i = 0; i < N_BAD; i++) {
        tu_buf b = {0};
        bad_cases[i].build(&b);
        char *path = write_tmp(dir, bad_cases[i].name, &b);
        char args[2048];
        snprintf(args, sizeof(args), "eval --model '%s' --tasks wikitext2 --data-dir '%s' --out '%s'", path, data, out);
        char *err = NULL;
        int st = tu_run_cli(args, &err);
        cr_expect_eq(st, 1, "%s: exit %d, stderr: %s", bad_cases[i].name, st, err ? err : "");
        cr_expect(err && strstr(err, path) && strstr(err, bad_cases[i].needle), "%s: stderr '%s' lacks '%s'",
                  bad_cases[i].name, err ? err : "", bad_cases[i].needle);
        char *nl = err ? strchr(err, '\n') : NULL;
        cr_expect(nl && nl[1] == '\0', "%s: not exactly one line: '%s'", bad_cases[i].name, err ? err : "");
        cr_expect(!nt_file_exists(out), "%s: a CSV was written", bad_cases[i].name);
        free(err);
        free(path);
        tu_buf_free(&b);
    }
    free(out);
    free(data);
    tu_rmtree(dir);
    free(dir);
}

// Every prefix of a valid file (a truncation anywhere) fails cleanly, and every single-byte corruption of the
// header either opens or fails cleanly (run under ASan in CI: no read outside the file).
Test(gguf, every_truncation_and_byte_flip) {
    char *dir = tu_tmpdir();
    tu_buf b = {0};
    build_all_types(&b, 3);
    char *path = nt_path_join(dir, "cut.gguf");
    nt_err err = {0};
    nt_gguf *g = NULL;
    // the last tensor ends exactly at the file's end, so every proper prefix is missing something
    for (size_t n = 0; n < b.n; n++) {
        cr_assert_eq(tu_write_file(path, b.b, n), 0);
        int rc = nt_gguf_open(&g, path, &err);
        cr_expect_eq(rc, -1, "a %zu-byte prefix of %zu opened", n, b.n);
        if (rc == 0) nt_gguf_close(&g);
        cr_expect(strstr(err.msg, "cut.gguf: ") == err.msg + strlen(dir) + 1, "prefix %zu: %s", n, err.msg);
    }
    int opened = 0, failed = 0;
    size_t header = 0;
    cr_assert_eq(tu_write_file(path, b.b, b.n), 0);
    cr_assert_eq(nt_gguf_open(&g, path, &err), 0, "%s", err.msg);
    header = (size_t)nt_gguf_data_offset(g);
    nt_gguf_close(&g);
    for (size_t i = 0; i < header; i++) {
        const uint8_t flips[3] = {0x01, 0x80, 0xff};
        for (int k = 0; k < 3; k++) {
            b.b[i] ^= flips[k];
            cr_assert_eq(tu_write_file(path, b.b, b.n), 0);
            if (nt_gguf_open(&g, path, &err) == 0) {
                opened++;
                for (size_t t = 0; t < nt_gguf_tensor_count(g); t++) { // whatever opened must read safely
                    float *f = NULL;
                    if (nt_gguf_dequantize(nt_gguf_tensor_at(g, t), &f, &err) == 0) free(f);
                }
                nt_gguf_close(&g);
            } else {
                failed++;
                cr_expect(strstr(err.msg, "cut.gguf: ") && !strchr(err.msg, '\n'), "%s", err.msg);
            }
            b.b[i] ^= flips[k];
        }
    }
    cr_expect(opened > 0 && failed > 0, "opened %d, failed %d", opened, failed);
    free(path);
    tu_buf_free(&b);
    tu_rmtree(dir);
    free(dir);
}

// A path that is not a regular file, or does not exist.
Test(gguf, not_a_file) {
    char *dir = tu_tmpdir();
    nt_gguf *g = NULL;
    nt_err err = {0};
    cr_expect_eq(nt_gguf_open(&g, dir, &err), -1);
    cr_expect(strstr(err.msg, "not a regular file"), "%s", err.msg);
    char *missing = nt_path_join(dir, "missing.gguf");
    cr_expect_eq(nt_gguf_open(&g, missing, &err), -1);
    cr_expect(strstr(err.msg, "missing.gguf: cannot open: No such file"), "%s", err.msg);
    free(missing);
    tu_rmtree(dir);
    free(dir);
}

// ---------------------------------------------------------------------------------------------- dequantization

// The first index where a and b differ bitwise, or -1 (bitwise: -0.0 vs 0.0 or NaN payloads count).
static int64_t first_bit_diff(const float *a, const float *b, int64_t n) {
    for (int64_t i = 0; i < n; i++)
        if (memcmp(&a[i], &b[i], sizeof(float)) != 0) return i;
    return -1;
}

// synthetic.gguf, written by gguf-py's GGUFWriter (so also a file from another writer): its metadata as the
// script wrote it, and every tensor dequantized bit for bit as gguf-py's numpy code does. Exact equality is the
// right test: each value is one or two fp32 roundings of the same operations in the same order
// (see base/ggml_quants.c), so any difference is a layout or arithmetic-order bug.
Test(gguf, dequantize_synthetic_every_type_vs_gguf_py) {
    static const char *const names[] = {"f32",  "f16",  "bf16", "q4_0", "q4_1", "q5_0", "q5_1",
                                        "q8_0", "q2_k", "q3_k", "q4_k", "q5_k", "q6_k"};
    static const nt_ggml_type types[] = {NT_GGML_F32,  NT_GGML_F16,  NT_GGML_BF16, NT_GGML_Q4_0, NT_GGML_Q4_1,
                                         NT_GGML_Q5_0, NT_GGML_Q5_1, NT_GGML_Q8_0, NT_GGML_Q2_K, NT_GGML_Q3_K,
                                         NT_GGML_Q4_K, NT_GGML_Q5_K, NT_GGML_Q6_K};
    const int n_types = 13, rows = 2, cols = 512;
    const char *hint = "tests/golden/make_gguf_goldens.py synthetic";
    float *want = tu_read_golden("gguf", "synthetic.f32", (size_t)n_types * rows * cols * sizeof(float), hint);
    char *path = tu_source("tests/golden/gguf/synthetic.gguf");
    nt_gguf *g = NULL;
    nt_err err = {0};
    cr_assert_eq(nt_gguf_open(&g, path, &err), 0, "%s (rerun %s)", err.msg, hint);

    const char *s = NULL;
    size_t len = 0;
    int64_t v = 0;
    double f = 0;
    bool bo = false;
    cr_expect(nt_gguf_get_str(g, "general.architecture", &s, &len, &err) == 0 && strcmp(s, "synthetic") == 0);
    const struct {
        const char *key;
        nt_gguf_vtype type;
        int64_t want;
    } ints[] = {{"test.u8", NT_GGUF_UINT8, 250},          {"test.i8", NT_GGUF_INT8, -7},
                {"test.u16", NT_GGUF_UINT16, 60000},      {"test.i16", NT_GGUF_INT16, -300},
                {"test.u32", NT_GGUF_UINT32, 3000000000}, {"test.i32", NT_GGUF_INT32, -123456789},
                {"test.i64", NT_GGUF_INT64, -(1ll << 40)}};
    for (size_t i = 0; i < sizeof(ints) / sizeof(ints[0]); i++) {
        cr_expect_eq(nt_gguf_kv_type(g, (size_t)nt_gguf_find_key(g, ints[i].key)), ints[i].type, "%s", ints[i].key);
        cr_expect(nt_gguf_get_int(g, ints[i].key, &v, &err) == 0 && v == ints[i].want, "%s: %lld %s", ints[i].key,
                  (long long)v, err.msg);
    }
    cr_expect_eq(nt_gguf_kv_type(g, (size_t)nt_gguf_find_key(g, "test.u64")), NT_GGUF_UINT64);
    cr_expect_eq(nt_gguf_get_int(g, "test.u64", &v, &err), -1, "2^63 + 5 does not fit in int64");
    cr_expect(nt_gguf_get_float(g, "test.f32", &f, &err) == 0 && f == 0.125);
    cr_expect(nt_gguf_get_float(g, "test.f64", &f, &err) == 0 && f == 3.5e-300);
    cr_expect(nt_gguf_get_bool(g, "test.bool", &bo, &err) == 0 && bo);
    cr_expect(nt_gguf_get_str(g, "test.str", &s, &len, &err) == 0 && strcmp(s, "synthetic") == 0);
    int32_t *i32 = NULL;
    uint64_t n = 0;
    cr_expect(nt_gguf_get_arr_i32(g, "test.arr_i32", &i32, &n, &err) == 0 && n == 3 && i32[0] == 3 && i32[1] == -1 &&
              i32[2] == 2147483647);
    free(i32);
    float *f32 = NULL;
    cr_expect(nt_gguf_get_arr_f32(g, "test.arr_f32", &f32, &n, &err) == 0 && n == 2 && f32[0] == 0.5f &&
              f32[1] == -1.5f);
    free(f32);
    const char *want_str[3] = {"a", "", "\xc3\xa9t\xc3\xa9"};
    for (int i = 0; i < 3; i++) {
        cr_expect_eq(nt_gguf_get_arr_str(g, "test.arr_str", (uint64_t)i, &s, &len, &err), 0);
        cr_expect(len == strlen(want_str[i]) && memcmp(s, want_str[i], len) == 0, "string %d", i);
    }

    cr_assert_eq(nt_gguf_tensor_count(g), (size_t)n_types);
    float *got = malloc((size_t)rows * cols * sizeof(float)), *row = malloc((size_t)cols * sizeof(float));
    for (int k = 0; k < n_types; k++) {
        const nt_gguf_tensor *t = nt_gguf_tensor_at(g, (size_t)k);
        cr_assert_str_eq(t->name, names[k]);
        cr_expect(t->type == types[k] && t->n_dims == 2 && t->dims[0] == cols && t->dims[1] == rows, "%s", t->name);
        cr_assert_eq(nt_gguf_dequantize_rows(t, 0, rows, got, &err), 0, "%s", err.msg);
        const float *w = want + (size_t)k * rows * cols;
        int64_t d = first_bit_diff(got, w, (int64_t)rows * cols);
        cr_expect_eq(d, -1, "%s: value %lld is %.9g, gguf-py %.9g", t->name, (long long)d, d >= 0 ? got[d] : 0.0,
                     d >= 0 ? w[d] : 0.0);
        // row 1 alone: the row offset arithmetic
        cr_assert_eq(nt_gguf_dequantize_rows(t, 1, 1, row, &err), 0, "%s", err.msg);
        cr_expect_eq(first_bit_diff(row, w + cols, cols), -1, "%s: row 1 alone differs", t->name);
    }
    free(got);
    free(row);
    nt_gguf_close(&g);
    free(path);
    free(want);
}

// The fuzz seeds (tests/fuzz/gguf_corpus, written by gguf-py's writer: tests/fuzz/make_corpus.py) are valid
// files of every type, v2 and v3, with general.alignment 64; the truncated SmolLM2 header fails as truncated.
Test(gguf, fuzz_seeds_open) {
    const char *names[] = {"meta_all",    "meta_only",   "align64",     "align64_v2",  "type_f32",    "type_f16",
                           "type_bf16",   "type_q4_0",   "type_q4_1",   "type_q5_0",   "type_q5_1",   "type_q8_0",
                           "type_q2_k",   "type_q3_k",   "type_q4_k",   "type_q5_k",   "type_q6_k"};
    nt_err err = {0};
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        char rel[128];
        snprintf(rel, sizeof(rel), "tests/fuzz/gguf_corpus/%s.gguf", names[i]);
        char *path = tu_source(rel);
        nt_gguf *g = NULL;
        cr_expect_eq(nt_gguf_open(&g, path, &err), 0, "%s", err.msg);
        if (!g) {
            free(path);
            continue;
        }
        for (size_t t = 0; t < nt_gguf_tensor_count(g); t++) {
            float *f = NULL;
            cr_expect_eq(nt_gguf_dequantize(nt_gguf_tensor_at(g, t), &f, &err), 0, "%s", err.msg);
            free(f);
        }
        if (strcmp(names[i], "align64_v2") == 0) cr_expect(nt_gguf_version(g) == 2 && nt_gguf_alignment(g) == 64);
        nt_gguf_close(&g);
        free(path);
    }
    char *head = tu_source("tests/fuzz/gguf_corpus/smollm2_head8k.gguf");
    nt_gguf *g = NULL;
    cr_expect_eq(nt_gguf_open(&g, head, &err), -1);
    cr_expect(strstr(err.msg, "smollm2_head8k.gguf: metadata key 'tokenizer.ggml.tokens' claims 49152 strings, more than"), "%s",
              err.msg);
    free(head);
}
