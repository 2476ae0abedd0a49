// nt.c: error reporting, file reading, timing, progress and half-float conversion (see nt.h).
#define _POSIX_C_SOURCE 200809L
#include "nt.h"

#include <cblas.h>
#include <errno.h>
#include <omp.h>
#include <stdarg.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

extern const char *nt_git_commit; // build/nt_commit.c, written at every build (cmake/git_commit.cmake)

static void set_msg(nt_err *err, const char *fmt, va_list ap) {
    // formatted aside first: callers may pass err->msg itself as an argument, to prefix it with context
    char msg[sizeof(err->msg)];
    vsnprintf(msg, sizeof(msg), fmt, ap);
    memcpy(err->msg, msg, sizeof(msg));
    // one line: a message must never spill over several lines of a log
    for (char *c = err->msg; *c; c++)
        if (*c == '\n' || *c == '\r') *c = ' ';
}

int nt_fail(nt_err *err, const char *fmt, ...) {
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        set_msg(err, fmt, ap);
        va_end(ap);
    }
    return -1;
}

int nt_fail_usage(nt_err *err, const char *fmt, ...) {
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        set_msg(err, fmt, ap);
        va_end(ap);
        err->kind = NT_ERR_USAGE;
    }
    return -1;
}

int nt_err_exit_status(const nt_err *err) { return err->kind == NT_ERR_USAGE ? 2 : 1; }

char *nt_read_file(const char *path, size_t *len, nt_err *err) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        nt_fail(err, "%s: %s", path, strerror(errno));
        return NULL;
    }
    struct stat st;
    if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode)) {
        fclose(f);
        nt_fail(err, "%s: not a regular file", path);
        return NULL;
    }
    size_t n = (size_t)st.st_size;
    char *buf = malloc(n + 1);
    if (!buf) {
        fclose(f);
        nt_fail(err, "%s: out of memory reading %zu bytes", path, n);
        return NULL;
    }
    size_t got = fread(buf, 1, n, f);
    int bad = ferror(f);
    fclose(f);
    if (bad || got != n) {
        free(buf);
        nt_fail(err, "%s: read error", path);
        return NULL;
    }
    buf[n] = '\0';
    if (len) *len = n;
    return buf;
}

int nt_atomic_open(nt_atomic_file *a, const char *path, nt_err *err) {
    memset(a, 0, sizeof(*a));
    size_t tl = strlen(path) + 32;
    a->path = strdup(path);
    a->tmp = malloc(tl);
    if (!a->path || !a->tmp) {
        free(a->path), free(a->tmp);
        memset(a, 0, sizeof(*a));
        return nt_fail(err, "%s: out of memory", path);
    }
    snprintf(a->tmp, tl, "%s.tmp.%ld", path, (long)getpid());
    a->f = fopen(a->tmp, "wb");
    if (!a->f) {
        nt_fail(err, "%s: cannot write: %s", a->tmp, strerror(errno));
        free(a->path), free(a->tmp);
        memset(a, 0, sizeof(*a));
        return -1;
    }
    return 0;
}

int nt_atomic_close(nt_atomic_file *a, bool ok, nt_err *err) {
    if (!a->f) return -1;
    bool wrote = fflush(a->f) == 0 && !ferror(a->f) && fsync(fileno(a->f)) == 0;
    wrote = fclose(a->f) == 0 && wrote;
    int rc = 0;
    if (!ok || !wrote || rename(a->tmp, a->path) != 0) {
        if (ok) nt_fail(err, "%s: write failed: %s", a->path, strerror(errno));
        unlink(a->tmp);
        rc = -1;
    }
    free(a->path);
    free(a->tmp);
    memset(a, 0, sizeof(*a));
    return rc;
}

void nt_path_basename(const char *path, char *buf, size_t size) {
    size_t end = strlen(path);
    while (end > 1 && path[end - 1] == '/') end--;
    size_t start = end;
    while (start > 0 && path[start - 1] != '/') start--;
    if (start == end && end > 0) start = 0; // "/" stays "/"
    snprintf(buf, size, "%.*s", (int)(end - start), path + start);
}

char *nt_path_join(const char *dir, const char *name) {
    size_t a = strlen(dir), b = strlen(name);
    char *p = malloc(a + b + 2);
    if (!p) return NULL;
    memcpy(p, dir, a);
    size_t k = a;
    if (a > 0 && dir[a - 1] != '/') p[k++] = '/';
    memcpy(p + k, name, b + 1);
    return p;
}

bool nt_file_exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0;
}

double nt_time(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

void nt_format_seconds(double s, char *buf, size_t cap) {
    if (!(s >= 0.0)) s = 0.0;
    if (s < 60.0) snprintf(buf, cap, "%.1fs", s);
    else if (s < 3600.0) snprintf(buf, cap, "%dm%02ds", (int)(s / 60.0), (int)s % 60);
    else snprintf(buf, cap, "%dh%02dm", (int)(s / 3600.0), ((int)s % 3600) / 60);
}

enum { PROGRESS_LOG_EVERY_S = 30 }; // seconds between lines when stderr is not a terminal

void nt_progress_begin(nt_progress *p, const char *label, long total) {
    const char *env = getenv("NT_PROGRESS");
    p->label = label;
    p->total = total;
    p->t0 = p->last = nt_time();
    p->tty = isatty(STDERR_FILENO);
    p->on = !(env && strcmp(env, "0") == 0) && (p->tty || !(env && strcmp(env, "tty") == 0));
}

void nt_progress_update(nt_progress *p, long done) {
    if (!p->on) return;
    double now = nt_time();
    if (p->tty ? (now - p->last < 0.2 && done < p->total) : (now - p->last < PROGRESS_LOG_EVERY_S)) return;
    p->last = now;
    double el = now - p->t0;
    char e[32], left[32];
    nt_format_seconds(el, e, sizeof(e));
    if (done > 0) nt_format_seconds(el * (double)(p->total - done) / (double)done, left, sizeof(left));
    else snprintf(left, sizeof(left), "?");
    fprintf(stderr, "%s%s: %ld/%ld (%.0f%%) %s elapsed, ETA %s%s", p->tty ? "\r" : "", p->label, done, p->total,
            p->total ? 100.0 * (double)done / (double)p->total : 100.0, e, left, p->tty ? "   " : "\n");
    fflush(stderr);
}

void nt_progress_end(nt_progress *p) {
    if (!p->on) return;
    double el = nt_time() - p->t0;
    if (!p->tty && el < PROGRESS_LOG_EVERY_S) return; // never reported: stays silent
    char e[32];
    nt_format_seconds(el, e, sizeof(e));
    fprintf(stderr, "%s%s: done in %s%s\n", p->tty ? "\r" : "", p->label, e, p->tty ? "                              " : "");
}

float nt_f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000) << 16, exp = (h >> 10) & 0x1f, man = h & 0x3ff, bits;
    if (exp == 0) {
        if (man == 0) {
            bits = sign;
        } else { // subnormal: renormalize
            int e = -1;
            do {
                e++;
                man <<= 1;
            } while (!(man & 0x400));
            bits = sign | ((uint32_t)(127 - 15 - e) << 23) | ((man & 0x3ff) << 13);
        }
    } else if (exp == 31) {
        bits = sign | 0x7f800000u | (man << 13);
    } else {
        bits = sign | ((exp + 127 - 15) << 23) | (man << 13);
    }
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

uint16_t nt_f32_to_f16(float f) {
    uint32_t x;
    memcpy(&x, &f, 4);
    uint32_t sign = (x >> 16) & 0x8000;
    uint32_t absx = x & 0x7fffffffu;
    if (absx >= 0x7f800000u) return (uint16_t)(sign | 0x7c00 | (absx > 0x7f800000u ? 0x200 : 0)); // inf/nan
    if (absx >= 0x477ff000u) return (uint16_t)(sign | 0x7c00); // rounds to overflow
    if (absx < 0x38800000u) { // subnormal or zero in half
        if (absx < 0x33000000u) return (uint16_t)sign;
        // value = man * 2^(e-150); the half subnormal unit is 2^-24, so q = man >> (126 - e), rounded to even
        uint32_t man = (absx & 0x7fffff) | 0x800000;
        int rs = 126 - (int)(absx >> 23); // 14..24
        uint32_t q = man >> rs, rem = man & ((1u << rs) - 1), mid = 1u << (rs - 1);
        if (rem > mid || (rem == mid && (q & 1))) q++;
        return (uint16_t)(sign | q);
    }
    uint32_t e = (absx >> 23) - 127 + 15, man = absx & 0x7fffff;
    uint32_t q = (e << 10) | (man >> 13), rem = man & 0x1fff;
    if (rem > 0x1000 || (rem == 0x1000 && (q & 1))) q++; // may carry into exponent: still correct
    return (uint16_t)(sign | q);
}

float nt_bf16_to_f32(uint16_t h) {
    uint32_t bits = (uint32_t)h << 16;
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

uint16_t nt_f32_to_bf16(float f) {
    uint32_t x;
    memcpy(&x, &f, 4);
    if ((x & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((x >> 16) | 0x40); // quiet nan
    x += 0x7fff + ((x >> 16) & 1);
    return (uint16_t)(x >> 16);
}

const char *nt_build_commit(void) { return nt_git_commit; }

void nt_set_threads(int n) {
    if (n <= 0) return;
    openblas_set_num_threads(n);
    omp_set_num_threads(n);
}

void nt_cpu_device(char *buf, size_t size) {
    const char *core = openblas_get_corename();
    snprintf(buf, size, "cpu:%d threads:%s", omp_get_max_threads(), core && core[0] ? core : "unknown");
}

static bool cpu_runs_skylakex_kernels(void) {
#if defined(__x86_64__) && defined(__GNUC__)
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512cd") &&
           __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512dq") &&
           __builtin_cpu_supports("avx512vl");
#else
    return false;
#endif
}

static bool cpu_runs_haswell_kernels(void) {
#if defined(__x86_64__) && defined(__GNUC__)
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#else
    return false;
#endif
}

// The OpenBLAS core to run instead of the one it chose, or NULL to keep it. OpenBLAS 0.3.21 falls back to its
// SSE3 kernels ("Prescott") on x86-64 CPUs it does not know (seen here: an Emerald Rapids Xeon, family 6 model
// 207, under a VM: sgemm 4x slower), and to AVX2 ones on AMD Zen 4.
static const char *better_openblas_core(const char *core) {
    if (!core) return NULL;
    static const char *const avx512[] = {"SkylakeX", "Cooperlake", "SapphireRapids"};
    for (size_t i = 0; i < sizeof(avx512) / sizeof(avx512[0]); i++)
        if (strcmp(core, avx512[i]) == 0) return NULL;
    if (cpu_runs_skylakex_kernels()) return "SkylakeX";
    bool avx2 = strcmp(core, "Haswell") == 0 || strcmp(core, "Zen") == 0;
    if (!avx2 && cpu_runs_haswell_kernels()) return "Haswell";
    return NULL;
}

void nt_tune_runtime(char **argv) {
    // each variable is set only when unset: the re-executed program finds them set and goes on
    bool again = false;
    if (!getenv("OMP_WAIT_POLICY")) {
        setenv("OMP_WAIT_POLICY", "PASSIVE", 1);
        again = true;
    }
    const char *better = better_openblas_core(openblas_get_corename());
    if (!getenv("OPENBLAS_CORETYPE") && better) {
        setenv("OPENBLAS_CORETYPE", better, 1);
        again = true;
    }
    if (!again) return;
    execv("/proc/self/exe", argv);
    // exec failed (no /proc): run on as loaded
}
