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
// The kind says what went wrong for a caller that maps errors to exit statuses: a failure (bad input file,
// I/O, a computation that could not be done: exit 1) or a usage error (an impossible option or request: exit 2).
typedef enum { NT_ERR_FAILURE = 0, NT_ERR_USAGE = 1 } nt_err_kind;
typedef struct {
    char msg[1024];
    nt_err_kind kind;
} nt_err;

// Formats the message into err (if err is not NULL) and returns -1, so callers write `return nt_fail(err, ...)`.
// err->msg may be one of the arguments (`nt_fail(err, "layer %d: %s", l, err->msg)` prefixes it). The kind is
// left as it is, so prefixing keeps a usage error a usage error (a fresh nt_err is a failure).
int nt_fail(nt_err *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
// The same for a usage error: sets err->kind = NT_ERR_USAGE.
int nt_fail_usage(nt_err *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
// The exit status a command returns for err: 1 for a failure, 2 for a usage error.
int nt_err_exit_status(const nt_err *err);

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
// The last component of path (trailing slashes ignored: "a/b/" -> "b") into buf (truncated to size).
void nt_path_basename(const char *path, char *buf, size_t size);
bool nt_file_exists(const char *path);
// A file written atomically: created as PATH.tmp.PID, renamed over PATH only when complete, so readers never see
// a half-written file and a failure (or a kill) leaves the previous file as it was.
typedef struct {
    FILE *f; // write here
    char *path, *tmp;
} nt_atomic_file;
int nt_atomic_open(nt_atomic_file *a, const char *path, nt_err *err);
// Closes a->f; when ok (and every write succeeded), syncs and renames it into place, else removes the temporary.
// Returns -1 with "PATH: write failed: ..." when the file could not be completed (or ok is false: no message).
int nt_atomic_close(nt_atomic_file *a, bool ok, nt_err *err);

// Monotonic wall-clock seconds.
double nt_time(void);

// Progress on stderr with the time elapsed and an estimate of the time left (from the mean rate so far):
// "label: 37/140 (26%) 1m12s elapsed, ETA 3m21s". On a terminal the line is redrawn in place (at most 5 times a
// second); into a file or pipe (a long grid's log) one line is written every 30 s, so short steps stay silent.
// NT_PROGRESS=0 turns it off; NT_PROGRESS=tty shows it on a terminal only.
typedef struct {
    const char *label;
    long total;
    double t0, last;
    bool on, tty;
} nt_progress;
// Formats seconds as "8.2s", "4m05s" or "2h03m" into buf.
void nt_format_seconds(double s, char *buf, size_t cap);
void nt_progress_begin(nt_progress *p, const char *label, long total);
void nt_progress_update(nt_progress *p, long done);
void nt_progress_end(nt_progress *p);

// IEEE half and bfloat16 to/from float (round to nearest even).
float nt_f16_to_f32(uint16_t h);
uint16_t nt_f32_to_f16(float f);
float nt_bf16_to_f32(uint16_t h);
uint16_t nt_f32_to_bf16(float f);

// Sets the thread count of OpenBLAS and OpenMP (n <= 0: leave the defaults).
void nt_set_threads(int n);

// The CPU a result was computed on, as the results' device column names it: "cpu:T threads:CORE", T the OpenMP
// thread count and CORE the OpenBLAS kernel set (e.g. "cpu:2 threads:Haswell"). Both change a GPTQ result at
// rounding level (its Hessians' sums), so a row says which it had.
void nt_cpu_device(char *buf, size_t size);

// Settings that libgomp and OpenBLAS read only when they are loaded, before main: a program's main calls this
// first and, when one of them has to change, the program is executed again (once) with argv under the new
// environment. A variable the user has set is never changed.
//   OMP_WAIT_POLICY=PASSIVE: OpenMP threads spin after each parallel region by default; on a busy machine (or
//     one whose cores are shared) the spinning threads starve the ones doing the work (measured here: --threads 2
//     ran 5x slower than --threads 1 while other processes were running).
//   OPENBLAS_CORETYPE=SkylakeX: OpenBLAS 0.3.21 (Debian 12) does not know AMD Zen 4 and runs its AVX2 (Haswell)
//     kernels on it; its AVX-512 (SkylakeX) kernels run sgemm 1.8x faster there. On an Intel CPU it does not
//     know (an Emerald Rapids Xeon under a VM here) it falls back to its SSE3 kernels (Prescott), 4x slower.
//     SkylakeX is set when the CPU has the AVX-512 subsets those kernels use (F, CD, BW, DQ, VL) and OpenBLAS
//     chose a core without them; Haswell when it has AVX2 + FMA only and OpenBLAS chose an older core.
// Returns only when nothing had to change or the exec failed (then the program runs on as it is).
void nt_tune_runtime(char **argv);

// The git commit the binary was built from ("unknown" outside a checkout).
const char *nt_build_commit(void);
