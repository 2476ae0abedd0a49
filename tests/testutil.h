// testutil.h: paths and small helpers shared by the Criterion tests.
#pragma once
#include <cjson/cJSON.h>
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>

#include "gpu.h"
#include "nt.h"
#include "tokenizer.h"

// $NT_SHARED_DIR/rel (the shared models/datasets/tokenizers folder); malloc'd.
char *tu_shared(const char *rel);
// $NT_SOURCE_DIR/rel (the repository: tests/golden, tests/fixtures); malloc'd.
char *tu_source(const char *rel);
// A fresh empty temporary directory (malloc'd path), removed by tu_rmtree.
char *tu_tmpdir(void);
void tu_rmtree(const char *dir);
// Writes len bytes to path; returns 0 on success.
int tu_write_file(const char *path, const void *data, size_t len);
// Runs the normtweak CLI (NT_BINARY_DIR/normtweak) with a shell argument string; captures stderr into
// *err_out (malloc'd, may be NULL) and returns the exit status (or -1 if it did not exit normally).
int tu_run_cli(const char *args, char **err_out);

// Deterministic test data: xorshift64* on a caller-held state; uniform in (0, 1); standard normal (Box-Muller).
uint32_t tu_rnd_u32(uint64_t *state);
float tu_rnd_unif(uint64_t *state);
float tu_rnd_normal(uint64_t *state);

// out (vocab) = log softmax of one row of logits, in double.
void tu_log_softmax_row(const float *logits, int vocab, double *out);
// A context on CUDA device 0 (the emulator's, in a test built with NT_CUDA_EMU); skips the test, with the reason,
// when there is no device.
nt_gpu_ctx *tu_need_gpu(void);

// A golden file $NT_SOURCE_DIR/tests/golden/DIR/NAME, read whole (malloc'd); fails the test if it is missing
// or (expect_len > 0) not expect_len bytes long. hint names the script that makes it.
void *tu_read_golden(const char *dir, const char *name, size_t expect_len, const char *hint);
// A JSON member that must exist (fails the test otherwise).
int tu_json_int(const cJSON *o, const char *key);
bool tu_json_bool(const cJSON *o, const char *key);
const char *tu_json_str(const cJSON *o, const char *key);

// A growable byte buffer for building binary files byte by byte (tests/test_gguf*.c build valid and malformed
// GGUF files with it). Out of memory fails the test.
typedef struct {
    unsigned char *b;
    size_t n, cap;
} tu_buf;
void tu_buf_bytes(tu_buf *b, const void *p, size_t n);
void tu_buf_u8(tu_buf *b, uint8_t v);
void tu_buf_u16(tu_buf *b, uint16_t v);
void tu_buf_u32(tu_buf *b, uint32_t v);
void tu_buf_u64(tu_buf *b, uint64_t v);
void tu_buf_f32(tu_buf *b, float v);
void tu_buf_f64(tu_buf *b, double v);
void tu_buf_gstr(tu_buf *b, const char *s); // a GGUF string: u64 length, then the bytes (no NUL)
void tu_buf_pad(tu_buf *b, size_t align);   // zero bytes up to a multiple of align
void tu_buf_free(tu_buf *b);

// Tokenizer goldens (tests/golden/make_tokenizer_goldens.py): $NT_SOURCE_DIR/tests/golden/tokenizer/NAME, malloc'd.
char *tu_tok_golden(const char *name);
// A JSON file, parsed (fails the test if it cannot be read or parsed).
cJSON *tu_read_json(const char *path);
// Every line of tests/golden/tokenizer/NAME.jsonl through tok: encode with and without specials, decode, decode
// skipping specials, against HF; differences go to stderr, and the test fails if any.
void tu_tok_check_golden(const nt_tokenizer *tok, const char *name);
// ---------------------------------------------------------------------------------------------- tolerances
// The suite's one floating-point comparison, llm.c's validate_result: |a - ref| <= atol + rtol * |ref|, false when
// either is NaN (or the difference is). Every tolerance is an (atol, rtol) pair, both stated where it is chosen
// with what justifies each part (summation order, fp16 rounding, threads, the BLAS kernel a CPU gets).
double tu_bound(double ref, double atol, double rtol); // atol + rtol * |ref|
bool tu_close(double a, double ref, double atol, double rtol);
// For aggregates (a norm of differences, a mean |difference|, a one-sided excess): diff <= atol + rtol * ref_mag.
bool tu_within(double diff, double ref_mag, double atol, double rtol);

// cr_expect / cr_assert of tu_close, the message (printf-style) followed by a, ref, |a - ref| and the bound with
// its two parts. Formats only on failure: cheap in loops over every element.
#define TU_EXPECT_CLOSE(a, ref, atol, rtol, ...) TU_CLOSE_(cr_expect, a, ref, atol, rtol, __VA_ARGS__)
#define TU_ASSERT_CLOSE(a, ref, atol, rtol, ...) TU_CLOSE_(cr_assert, a, ref, atol, rtol, __VA_ARGS__)
// The same for tu_within: "diff" is already the difference measure (>= 0), ref_mag the reference's magnitude.
#define TU_EXPECT_WITHIN(diff, ref_mag, atol, rtol, ...) TU_WITHIN_(cr_expect, diff, ref_mag, atol, rtol, __VA_ARGS__)
#define TU_ASSERT_WITHIN(diff, ref_mag, atol, rtol, ...) TU_WITHIN_(cr_assert, diff, ref_mag, atol, rtol, __VA_ARGS__)

#define TU_CLOSE_(check, a, ref, atol, rtol, ...)                                                                   \
    do {                                                                                                            \
        double tu_a_ = (a), tu_r_ = (ref), tu_at_ = (atol), tu_rt_ = (rtol);                                        \
        if (!tu_close(tu_a_, tu_r_, tu_at_, tu_rt_)) {                                                              \
            char tu_what_[512];                                                                                     \
            snprintf(tu_what_, sizeof tu_what_, __VA_ARGS__);                                                       \
            check(0, "%s: %.9g vs ref %.9g: |diff| %.3g > %.3g = atol %.3g + rtol %.3g * |ref|", tu_what_, tu_a_,   \
                  tu_r_, fabs(tu_a_ - tu_r_), tu_bound(tu_r_, tu_at_, tu_rt_), tu_at_, tu_rt_);                     \
        }                                                                                                           \
    } while (0)
#define TU_WITHIN_(check, diff, ref_mag, atol, rtol, ...)                                                           \
    do {                                                                                                            \
        double tu_d_ = (diff), tu_m_ = (ref_mag), tu_at_ = (atol), tu_rt_ = (rtol);                                 \
        if (!tu_within(tu_d_, tu_m_, tu_at_, tu_rt_)) {                                                             \
            char tu_what_[512];                                                                                     \
            snprintf(tu_what_, sizeof tu_what_, __VA_ARGS__);                                                       \
            check(0, "%s: %.3g > %.3g = atol %.3g + rtol %.3g * %.3g", tu_what_, tu_d_,                             \
                  tu_bound(tu_m_, tu_at_, tu_rt_), tu_at_, tu_rt_, tu_m_);                                          \
        }                                                                                                           \
    } while (0)

// tu_close over n pairs of floats: returns how many fail, logs the first `show` of them (index, a, ref, |diff|,
// bound) with cr_log_error, and sets *max_diff (if not NULL) to max |a - ref| (infinite if any a is not finite).
size_t tu_count_far(const char *what, const float *a, const float *ref, size_t n, double atol, double rtol, int show,
                    double *max_diff);
