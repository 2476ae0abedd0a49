// fuzz_gguf.c: libFuzzer harness over the GGUF reader (base/gguf.c, base/ggml_quants.c). Each input is a GGUF
// image: open it; on success read every metadata value through the getter of its type (and the wrong-type
// getters, which must fail cleanly), every string of every string array, every numeric array converted, every
// tensor info, and dequantize the first, a middle and the last rows of every tensor. On failure the message must
// be one non-empty line naming the input. ASan/UBSan catch any read outside the input.
//
// Build (clang only): cmake -S . -B build-fuzz -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ -DNT_FUZZ=ON
//   -DNT_TESTS=OFF -DNT_CUDA=OFF && cmake --build build-fuzz --target fuzz_gguf
// Run:   mkdir -p /tmp/gguf-corpus && build-fuzz/fuzz_gguf -max_total_time=60 /tmp/gguf-corpus tests/fuzz/gguf_corpus
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "gguf.h"

#define NAME "fuzz.gguf"
#define MAX_ROW_FLOATS (1 << 22) // a row this long needs more input bytes than libFuzzer gives; skip it

static volatile uint64_t sink; // keeps the reads from being optimized away

static void check_message(const nt_err *err) {
    if (strncmp(err->msg, NAME ": ", strlen(NAME) + 2) != 0 || strchr(err->msg, '\n') ||
        err->msg[strlen(NAME) + 2] == '\0')
        abort(); // a message that does not name the file, spans lines or says nothing
}

static void read_metadata(const nt_gguf *g) {
    nt_err err;
    for (size_t i = 0; i < nt_gguf_kv_count(g); i++) {
        const char *key = nt_gguf_kv_key(g, i);
        if (nt_gguf_find_key(g, key) != (int64_t)i) abort(); // keys are unique
        int64_t v;
        double f;
        bool b;
        const char *s;
        size_t len;
        int ok_int = nt_gguf_get_int(g, key, &v, &err) == 0;
        int ok_f = nt_gguf_get_float(g, key, &f, &err) == 0;
        int ok_b = nt_gguf_get_bool(g, key, &b, &err) == 0;
        int ok_s = nt_gguf_get_str(g, key, &s, &len, &err) == 0;
        if (ok_int + ok_f + ok_b + ok_s > 1) abort(); // a value has one type
        if (ok_s) sink += len ? (unsigned char)s[len - 1] : 0;
        if (ok_int) sink += (uint64_t)v;
        (void)nt_gguf_get_int_range(g, key, -5, 5, &v, &err);
        nt_gguf_vtype et;
        uint64_t n;
        if (nt_gguf_get_arr(g, key, &et, &n, &err) != 0) continue;
        if (et == NT_GGUF_STRING) {
            for (uint64_t k = 0; k < n; k++) {
                if (nt_gguf_get_arr_str(g, key, k, &s, &len, &err) != 0) abort();
                for (size_t c = 0; c < len; c++) sink += (unsigned char)s[c];
            }
            if (nt_gguf_get_arr_str(g, key, n, &s, &len, &err) == 0) abort();
            check_message(&err);
        }
        float *fa = NULL;
        int32_t *ia = NULL;
        int64_t *la = NULL;
        uint64_t m = 0;
        if (nt_gguf_get_arr_f32(g, key, &fa, &m, &err) == 0) sink += m, free(fa);
        if (nt_gguf_get_arr_i32(g, key, &ia, &m, &err) == 0) sink += m, free(ia);
        if (nt_gguf_get_arr_i64(g, key, &la, &m, &err) == 0) sink += m, free(la);
    }
}

static void read_tensors(const nt_gguf *g) {
    nt_err err;
    for (size_t i = 0; i < nt_gguf_tensor_count(g); i++) {
        const nt_gguf_tensor *t = nt_gguf_tensor_at(g, i);
        if (nt_gguf_find_tensor(g, t->name) != t) abort();
        if (t->n_dims < 1 || t->n_dims > NT_GGUF_MAX_DIMS || t->n_rows * t->dims[0] != t->n_elements) abort();
        if (t->dims[0] > MAX_ROW_FLOATS) continue;
        float *row = malloc((size_t)t->dims[0] * sizeof(float));
        if (!row) continue;
        int64_t rows[3] = {0, t->n_rows / 2, t->n_rows - 1};
        for (int k = 0; k < 3; k++) {
            if (nt_gguf_dequantize_rows(t, rows[k], 1, row, &err) != 0) {
                check_message(&err);
                break; // a type without a dequantizer
            }
            uint32_t bits;
            memcpy(&bits, &row[0], 4); // not a float -> int cast: NaN or 1e30 would be UB
            sink += bits;
        }
        if (nt_gguf_dequantize_rows(t, t->n_rows, 1, row, &err) == 0) abort(); // past the end must fail
        free(row);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    nt_gguf *g = NULL;
    nt_err err;
    if (nt_gguf_open_buffer(&g, NAME, data, size, &err) != 0) {
        if (g) abort();
        check_message(&err);
        return 0;
    }
    read_metadata(g);
    read_tensors(g);
    nt_gguf_close(&g);
    return 0;
}
