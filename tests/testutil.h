// testutil.h: paths and small helpers shared by the Criterion tests.
#pragma once
#include <cjson/cJSON.h>

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
