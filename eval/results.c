// results.c: writing the results CSV with libcsv quoting, atomically (see results.h).
#define _POSIX_C_SOURCE 200809L
#include "results.h"

#include "csv_read.h"

#include <csv.h>
#include <errno.h>
#include <math.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

// A field, quoted by libcsv only when it needs it (comma, quote, newline, surrounding space).
static void put_field(FILE *f, const char *s, bool last) {
    if (!s) s = "";
    size_t len = strlen(s);
    bool quote = len > 0 && (strpbrk(s, ",\"\r\n") != NULL || s[0] == ' ' || s[len - 1] == ' ');
    if (quote) csv_fwrite(f, s, len);
    else fputs(s, f);
    fputc(last ? '\n' : ',', f);
}

static void put_num(FILE *f, double v, const char *fmt) {
    if (isnan(v)) {
        fputc(',', f);
        return;
    }
    fprintf(f, fmt, v);
    fputc(',', f);
}

static void write_row(FILE *f, const nt_result_row *r, const char *stamp) {
    put_field(f, r->model, false);
    put_field(f, r->method, false);
    fprintf(f, "%d,%d,%d,", r->wbits, r->abits ? r->abits : 16, r->group_size);
    put_field(f, r->task, false);
    put_field(f, r->metric, false);
    put_num(f, r->value, "%.10g");
    put_num(f, r->stderr_, "%.6g");
    fprintf(f, "%ld,%d,%.3f,", r->n, r->seqlen, r->seconds);
    put_field(f, r->calib, false);
    put_field(f, r->options, false);
    put_field(f, r->device ? r->device : "cpu", false);
    put_field(f, nt_build_commit(), false);
    put_field(f, stamp, true);
}

// The rows of a file with the old header (NT_RESULTS_HEADER_V1), every field kept, abits 16 inserted after wbits,
// as text without the header (malloc'd, *len its length); NULL with a message.
static char *upgrade_v1(const char *path, size_t *len, nt_err *err) {
    nt_csv c;
    if (nt_csv_read(path, &c, err)) return NULL;
    char *buf = NULL;
    FILE *f = open_memstream(&buf, len);
    if (!f) {
        nt_csv_free(&c);
        nt_fail(err, "%s: out of memory", path);
        return NULL;
    }
    int wcol = nt_csv_col(&c, "wbits");
    for (size_t i = 0; i < c.n_rows; i++)
        for (size_t j = 0; j < c.n_cols; j++) {
            nt_csv_put(f, nt_csv_cell(&c, i, (int)j), j + 1 == c.n_cols);
            if ((int)j == wcol) nt_csv_put(f, "16", false);
        }
    fclose(f);
    nt_csv_free(&c);
    return buf;
}

int nt_results_append(const char *path, const nt_result_row *rows, size_t n, nt_err *err) {
    size_t old_len = 0;
    char *old = NULL;
    if (nt_file_exists(path)) {
        old = nt_read_file(path, &old_len, err);
        if (!old) return -1;
        size_t h1 = strlen(NT_RESULTS_HEADER_V1);
        if (old_len > h1 && strncmp(old, NT_RESULTS_HEADER_V1, h1) == 0 &&
            (old[h1] == '\n' || (old[h1] == '\r' && old[h1 + 1] == '\n'))) {
            free(old);
            size_t body_len = 0;
            char *body = upgrade_v1(path, &body_len, err);
            if (!body) return -1;
            size_t hl = strlen(NT_RESULTS_HEADER);
            old = malloc(hl + 1 + body_len + 1);
            if (!old) {
                free(body);
                return nt_fail(err, "%s: out of memory", path);
            }
            memcpy(old, NT_RESULTS_HEADER "\n", hl + 1);
            memcpy(old + hl + 1, body, body_len);
            old_len = hl + 1 + body_len;
            old[old_len] = '\0';
            free(body);
        }
        size_t hl = strlen(NT_RESULTS_HEADER);
        bool header_ok = old_len > hl && strncmp(old, NT_RESULTS_HEADER, hl) == 0 &&
                         (old[hl] == '\n' || (old[hl] == '\r' && old[hl + 1] == '\n'));
        if (old_len > 0 && !header_ok) {
            free(old);
            return nt_fail(err, "%s: not a normtweak results file (its header differs); not appending", path);
        }
        if (old_len > 0 && old[old_len - 1] != '\n') {
            free(old);
            return nt_fail(err, "%s: last line is incomplete; not appending", path);
        }
    }
    nt_atomic_file af;
    if (nt_atomic_open(&af, path, err)) {
        free(old);
        return -1;
    }
    char stamp[32];
    time_t now = time(NULL);
    struct tm tmv;
    gmtime_r(&now, &tmv);
    strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%SZ", &tmv);
    if (old_len > 0) fwrite(old, 1, old_len, af.f);
    else fputs(NT_RESULTS_HEADER "\n", af.f);
    free(old);
    for (size_t i = 0; i < n; i++) write_row(af.f, &rows[i], stamp);
    return nt_atomic_close(&af, true, err);
}

void nt_results_print(FILE *f, const nt_result_row *rows, size_t n) {
    fprintf(f, "%-16s %-8s %5s %5s %5s %-12s %-8s %12s %10s %9s %6s %8s\n", "model", "method", "wbits", "abits", "group",
            "task", "metric", "value", "stderr", "n", "seqlen", "seconds");
    for (size_t i = 0; i < n; i++) {
        const nt_result_row *r = &rows[i];
        fprintf(f, "%-16s %-8s %5d %5d %5d %-12s %-8s %12.4f %10.4f %9ld %6d %8.1f\n", r->model, r->method, r->wbits,
                r->abits ? r->abits : 16, r->group_size, r->task, r->metric, r->value, r->stderr_, r->n, r->seqlen, r->seconds);
    }
}
