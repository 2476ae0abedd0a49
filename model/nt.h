// nt.h: the basics every part of the normtweak library shares: error reporting, file reading,
// timing, progress on stderr, and fp16/bf16 conversion. Reference code, no speed tricks.
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

// Library functions never exit(): they return 0 on success and -1 on failure, with a one-line message
// in an nt_err that names the file (or option) and the problem, e.g. "model.safetensors: header runs past end".
typedef struct {
    char msg[1024];
} nt_err;

// Formats the message into err (if err is not NULL) and returns -1, so callers write `return nt_fail(err, ...)`.
// err->msg may be one of the arguments (`nt_fail(err, "layer %d: %s", l, err->msg)` prefixes it).
int nt_fail(nt_err *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

// Invariant checks that stay on in release builds: a failure here is a bug in normtweak, not bad input.
#define NT_ASSERT(cond)                                                                              \
    do {                                                                                             \
        if (!(cond)) {                                                                               \
            fprintf(stderr, "normtweak: internal error at %s:%d: %s\n", __FILE__, __LINE__, #cond);  \
            abort();                                                                                 \
        }                                                                                            \
    } while (0)

// Reads a whole file into a NUL-terminated malloc'd buffer; *len (if not NULL) gets its size without the NUL.
char *nt_read_file(const char *path, size_t *len, nt_err *err);
// Joins dir and name with a '/', into a malloc'd string.
char *nt_path_join(const char *dir, const char *name);
bool nt_file_exists(const char *path);
// Monotonic wall-clock seconds.
double nt_time(void);

// Progress on stderr, shown only when stderr is a terminal (and NT_PROGRESS is not "0").
typedef struct {
    const char *label;
    long total;
    double t0, last;
    bool on;
} nt_progress;
void nt_progress_begin(nt_progress *p, const char *label, long total);
void nt_progress_update(nt_progress *p, long done);
void nt_progress_end(nt_progress *p);

// IEEE half and bfloat16 to/from float (round to nearest even).
float nt_f16_to_f32(uint16_t h);
uint16_t nt_f32_to_f16(float f);
float nt_bf16_to_f32(uint16_t h);
uint16_t nt_f32_to_bf16(float f);

// The git commit the binary was built from ("unknown" outside a checkout).
const char *nt_build_commit(void);
