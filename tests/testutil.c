// testutil.c: see testutil.h.
#define _POSIX_C_SOURCE 200809L
#include "testutil.h"

#include <criterion/criterion.h>
#include <math.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static char *env_path(const char *var, const char *fallback, const char *rel) {
    const char *base = getenv(var);
    if (!base || !*base) base = fallback;
    return nt_path_join(base, rel);
}

char *tu_shared(const char *rel) { return env_path("NT_SHARED_DIR", "../shared", rel); }
char *tu_source(const char *rel) { return env_path("NT_SOURCE_DIR", ".", rel); }

char *tu_tmpdir(void) {
    char tmpl[] = "/tmp/nt_test_XXXXXX";
    char *d = mkdtemp(tmpl);
    return d ? strdup(d) : NULL;
}

void tu_rmtree(const char *dir) {
    if (!dir || strncmp(dir, "/tmp/nt_test_", 13) != 0) return; // never anything else
    char cmd[512];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    if (system(cmd) != 0) fprintf(stderr, "warning: could not remove %s\n", dir);
}

int tu_write_file(const char *path, const void *data, size_t len) {
    FILE *f = fopen(path, "wb");
    if (!f) return -1;
    size_t w = len ? fwrite(data, 1, len, f) : 0; // data may be NULL for an empty file
    return (fclose(f) == 0 && w == len) ? 0 : -1;
}

int tu_run_cli(const char *args, char **err_out) {
    const char *bin = getenv("NT_BINARY_DIR");
    char errfile[] = "/tmp/nt_test_stderr_XXXXXX";
    int fd = mkstemp(errfile);
    if (fd < 0) return -1;
    close(fd);
    size_t n = strlen(args) + strlen(bin ? bin : ".") + strlen(errfile) + 64;
    char *cmd = malloc(n);
    snprintf(cmd, n, "NT_PROGRESS=0 '%s/normtweak' %s 2>'%s' >/dev/null", bin ? bin : ".", args, errfile);
    int st = system(cmd);
    free(cmd);
    if (err_out) *err_out = nt_read_file(errfile, NULL, NULL);
    unlink(errfile);
    if (st == -1 || !WIFEXITED(st)) return -1;
    return WEXITSTATUS(st);
}

uint32_t tu_rnd_u32(uint64_t *s) {
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return (uint32_t)((*s * 0x2545f4914f6cdd1dull) >> 32);
}
float tu_rnd_unif(uint64_t *s) { return ((float)(tu_rnd_u32(s) >> 8) + 0.5f) / 16777216.0f; }
float tu_rnd_normal(uint64_t *s) {
    float u = tu_rnd_unif(s);
    return sqrtf(-2.0f * logf(u)) * cosf(6.2831853f * tu_rnd_unif(s));
}

void *tu_read_golden(const char *dir, const char *name, size_t expect_len, const char *hint) {
    char rel[512];
    snprintf(rel, sizeof rel, "tests/golden/%s/%s", dir, name);
    char *path = tu_source(rel);
    size_t len = 0;
    nt_err err = {0};
    void *buf = nt_read_file(path, &len, &err);
    cr_assert(buf != NULL, "%s (rerun %s)", err.msg, hint);
    cr_assert(expect_len == 0 || len == expect_len, "%s: %zu bytes, expected %zu", path, len, expect_len);
    free(path);
    return buf;
}

int tu_json_int(const cJSON *o, const char *k) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    cr_assert(cJSON_IsNumber(v), "missing %s", k);
    return v->valueint;
}
bool tu_json_bool(const cJSON *o, const char *k) { return cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, k)); }
const char *tu_json_str(const cJSON *o, const char *k) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    cr_assert(cJSON_IsString(v), "missing %s", k);
    return v->valuestring;
}

void tu_log_softmax_row(const float *logits, int vocab, double *out) {
    double mx = logits[0];
    for (int j = 1; j < vocab; j++) mx = logits[j] > mx ? logits[j] : mx;
    double s = 0.0;
    for (int j = 0; j < vocab; j++) s += exp(logits[j] - mx);
    double lse = mx + log(s);
    for (int j = 0; j < vocab; j++) out[j] = logits[j] - lse;
}

nt_gpu_ctx *tu_need_gpu(void) {
    nt_err err = {0};
    if (nt_gpu_device_count(&err) <= 0) cr_skip_test("no CUDA device: %s", err.msg);
    nt_gpu_ctx *ctx = NULL;
    cr_assert(nt_gpu_ctx_create(&ctx, 0, &err) == 0, "%s", err.msg);
    return ctx;
}

void tu_buf_bytes(tu_buf *b, const void *p, size_t n) {
    if (b->n + n > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->n + n) cap *= 2;
        b->b = realloc(b->b, cap);
        cr_assert_not_null(b->b, "out of memory building a test file");
        b->cap = cap;
    }
    if (n) memcpy(b->b + b->n, p, n);
    b->n += n;
}
void tu_buf_u8(tu_buf *b, uint8_t v) { tu_buf_bytes(b, &v, 1); }
void tu_buf_u16(tu_buf *b, uint16_t v) { tu_buf_bytes(b, &v, 2); }
void tu_buf_u32(tu_buf *b, uint32_t v) { tu_buf_bytes(b, &v, 4); }
void tu_buf_u64(tu_buf *b, uint64_t v) { tu_buf_bytes(b, &v, 8); }
void tu_buf_f32(tu_buf *b, float v) { tu_buf_bytes(b, &v, 4); }
void tu_buf_f64(tu_buf *b, double v) { tu_buf_bytes(b, &v, 8); }
void tu_buf_gstr(tu_buf *b, const char *s) {
    tu_buf_u64(b, strlen(s));
    tu_buf_bytes(b, s, strlen(s));
}
void tu_buf_pad(tu_buf *b, size_t align) {
    while (b->n % align) tu_buf_u8(b, 0);
}
void tu_buf_free(tu_buf *b) {
    free(b->b);
    b->b = NULL;
    b->n = b->cap = 0;
}

// ---------------------------------------------------------------------------------------------- tokenizer goldens

char *tu_tok_golden(const char *name) {
    char rel[256];
    snprintf(rel, sizeof(rel), "tests/golden/tokenizer/%s", name);
    return tu_source(rel);
}

cJSON *tu_read_json(const char *path) {
    nt_err err = {0};
    char *txt = nt_read_file(path, NULL, &err);
    cr_assert(txt != NULL, "%s", err.msg);
    cJSON *j = cJSON_Parse(txt);
    cr_assert(j != NULL, "%s: bad JSON", path);
    free(txt);
    return j;
}

// Compares ids with a JSON list; on a difference prints the first differing position. Returns true if equal.
static bool ids_equal(const int32_t *ids, size_t n, const cJSON *want, const char *what, const char *text) {
    size_t wn = (size_t)cJSON_GetArraySize(want), i = 0;
    const cJSON *w = want->child;
    for (; i < n && w; i++, w = w->next)
        if (ids[i] != (int32_t)w->valuedouble) break;
    if (i == n && i == wn) return true;
    fprintf(stderr, "%s: %zu ids, want %zu; first difference at %zu (got %d, want %d) for text \"%.200s\"\n", what, n,
            wn, i, i < n ? ids[i] : -1, w ? (int)w->valuedouble : -1, text);
    return false;
}

void tu_tok_check_golden(const nt_tokenizer *tok, const char *name) {
    char file[128];
    snprintf(file, sizeof(file), "%s.jsonl", name);
    char *path = tu_tok_golden(file);
    nt_err err = {0};
    char *all = nt_read_file(path, NULL, &err);
    cr_assert(all != NULL, "%s", err.msg);
    int lines = 0, bad = 0;
    for (char *line = all, *nl; line && *line; line = nl ? nl + 1 : NULL) {
        nl = strchr(line, '\n');
        if (nl) *nl = '\0';
        cJSON *row = cJSON_Parse(line);
        cr_assert(row != NULL, "%s: line %d is not JSON", path, lines + 1);
        const char *text = cJSON_GetObjectItem(row, "text")->valuestring;
        const char *decoded = cJSON_GetObjectItem(row, "decoded")->valuestring;
        const char *decoded_skip = cJSON_GetObjectItem(row, "decoded_skip")->valuestring;
        int32_t *ids = NULL, *ids_ns = NULL;
        size_t n = 0, n_ns = 0;
        cr_assert_eq(nt_tokenizer_encode(tok, text, strlen(text), true, &ids, &n, &err), 0, "%s", err.msg);
        cr_assert_eq(nt_tokenizer_encode(tok, text, strlen(text), false, &ids_ns, &n_ns, &err), 0, "%s", err.msg);
        bool ok = ids_equal(ids, n, cJSON_GetObjectItem(row, "ids"), name, text);
        ok &= ids_equal(ids_ns, n_ns, cJSON_GetObjectItem(row, "ids_nospecial"), name, text);
        char *dec = NULL, *dec_skip = NULL;
        cr_assert_eq(nt_tokenizer_decode(tok, ids_ns, n_ns, false, &dec, &err), 0, "%s", err.msg);
        cr_assert_eq(nt_tokenizer_decode(tok, ids, n, true, &dec_skip, &err), 0, "%s", err.msg);
        if (strcmp(dec, decoded) != 0) {
            fprintf(stderr, "%s: decode \"%.200s\", want \"%.200s\"\n", name, dec, decoded);
            ok = false;
        }
        if (strcmp(dec_skip, decoded_skip) != 0) {
            fprintf(stderr, "%s: decode(skip_special) \"%.200s\", want \"%.200s\"\n", name, dec_skip, decoded_skip);
            ok = false;
        }
        bad += !ok;
        lines++;
        free(ids);
        free(ids_ns);
        free(dec);
        free(dec_skip);
        cJSON_Delete(row);
    }
    free(all);
    free(path);
    cr_log_info("%s: %d golden texts, %d differ", name, lines, bad);
    cr_assert(lines > 100, "%s: only %d golden lines", name, lines);
    cr_assert_eq(bad, 0, "%s: %d of %d golden texts differ from HF (see stderr)", name, bad, lines);
}

double tu_bound(double ref, double atol, double rtol) { return atol + rtol * fabs(ref); }
bool tu_within(double diff, double ref_mag, double atol, double rtol) {
    return diff <= tu_bound(ref_mag, atol, rtol); // false for NaN
}
bool tu_close(double a, double ref, double atol, double rtol) { return tu_within(fabs(a - ref), ref, atol, rtol); }

size_t tu_count_far(const char *what, const float *a, const float *ref, size_t n, double atol, double rtol, int show,
                    double *max_diff) {
    size_t bad = 0;
    double worst = 0.0;
    for (size_t i = 0; i < n; i++) {
        double d = isfinite(a[i]) ? fabs((double)a[i] - ref[i]) : INFINITY;
        worst = fmax(worst, d);
        if (tu_close(a[i], ref[i], atol, rtol)) continue;
        if ((int)bad < show)
            cr_log_error("%s: [%zu] %.9g vs ref %.9g: |diff| %.3g > %.3g = atol %.3g + rtol %.3g * |ref|", what, i,
                         (double)a[i], (double)ref[i], d, tu_bound(ref[i], atol, rtol), atol, rtol);
        bad++;
    }
    if (max_diff) *max_diff = worst;
    return bad;
}

// Before Criterion's main: the settings OpenBLAS and libgomp read only at load (nt_tune_runtime, nt.h), as the
// normtweak program takes them, so the suite runs the sgemm kernels this CPU can (on a CPU OpenBLAS 0.3.21 does
// not know it falls back to SSE3 ones, 3-4x slower, and the whole-dataset test ran past its timeout). The
// tolerances hold on every OpenBLAS core (they were checked on Haswell, SkylakeX, Sandybridge and Prescott).
// glibc passes a constructor of the executable its argc, argv and envp.
static void tune_runtime(int argc, char **argv, char **envp) __attribute__((constructor));
static void tune_runtime(int argc, char **argv, char **envp) {
    (void)argc;
    (void)envp;
    nt_tune_runtime(argv);
}
