// cell.c: a result cell's identity (cell.h).
#define _POSIX_C_SOURCE 200809L
#include "cell.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

void nt_options_normalize(const char *options, char out[NT_CELL_OPTIONS_MAX], long *limit) {
    char buf[NT_CELL_OPTIONS_MAX * 2], *items[128];
    size_t n = 0;
    snprintf(buf, sizeof(buf), "%s", options ? options : "");
    *limit = 0;
    for (char *save = NULL, *t = strtok_r(buf, ";", &save); t && n < 128; t = strtok_r(NULL, ";", &save)) {
        while (isspace((unsigned char)*t)) t++;
        size_t len = strlen(t);
        while (len && isspace((unsigned char)t[len - 1])) t[--len] = '\0';
        if (!len || strncmp(t, "error=", 6) == 0) continue;
        char *eq = strchr(t, '=');
        for (char *p = t; *p && p != eq; p++) *p = *p == '-' ? '_' : (char)tolower((unsigned char)*p);
        bool is_limit = strncmp(t, "limit=", 6) == 0; // a count, never a flag: "limit=1" stays as it is
        if (is_limit) *limit = strtol(t + 6, NULL, 10);
        if (!is_limit && eq && (strcmp(eq, "=1") == 0 || strcmp(eq, "=true") == 0)) *eq = '\0';
        if (strncmp(t, "no_", 3) == 0 && !eq) {
            memmove(t, t + 3, len - 2); // "no_true_sequential" -> "true_sequential=0": 3 chars out, 2 in
            strcat(t, "=0");
        }
        items[n++] = t;
    }
    qsort(items, n, sizeof(char *), cmp_str);
    size_t k = 0;
    out[0] = '\0';
    for (size_t i = 0; i < n && k < NT_CELL_OPTIONS_MAX; i++)
        k += (size_t)snprintf(out + k, NT_CELL_OPTIONS_MAX - k, "%s%s", i ? ";" : "", items[i]);
}

void nt_cell_of_row(const nt_result_row *r, nt_cell *c) {
    *c = (nt_cell){.model = r->model, .method = r->method, .wbits = r->wbits,
                   .abits = r->abits ? r->abits : 16, .group_size = r->group_size,
                   .task = r->task, .metric = r->metric, .seqlen = r->seqlen, .calib = r->calib};
    nt_options_normalize(r->options, c->options, &c->limit);
}

static bool same_run(const nt_cell *a, const nt_cell *b) {
    return strcmp(a->model, b->model) == 0 && strcmp(a->method, b->method) == 0 && a->wbits == b->wbits &&
           a->abits == b->abits && a->group_size == b->group_size && strcmp(a->task, b->task) == 0;
}

bool nt_cell_same(const nt_cell *a, const nt_cell *b) {
    return same_run(a, b) && strcmp(a->metric, b->metric) == 0 && a->seqlen == b->seqlen &&
           strcmp(a->calib, b->calib) == 0 && strcmp(a->options, b->options) == 0;
}

// The options without their "limit=N" item.
static void without_limit(const char *options, char out[NT_CELL_OPTIONS_MAX]) {
    size_t k = 0;
    out[0] = '\0';
    for (const char *p = options; *p;) {
        const char *e = strchr(p, ';');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        if (strncmp(p, "limit=", 6) != 0) k += (size_t)snprintf(out + k, NT_CELL_OPTIONS_MAX - k, "%s%.*s", k ? ";" : "", (int)len, p);
        p += len + (e ? 1 : 0);
    }
}

void nt_options_without_limit(const char *options, char out[NT_CELL_OPTIONS_MAX]) { without_limit(options, out); }

bool nt_cell_matches(const nt_cell *p, const nt_cell *row) {
    if (!same_run(p, row) || (p->metric && strcmp(p->metric, row->metric) != 0)) return false;
    char a[NT_CELL_OPTIONS_MAX], b[NT_CELL_OPTIONS_MAX];
    without_limit(p->options, a);
    without_limit(row->options, b);
    if (strcmp(a, b) != 0) return false;
    if (p->seqlen && row->seqlen != p->seqlen) return false;
    if (p->calib[0]) { // ":NxL" (the method's own source): compare from the row's first ':'
        const char *rc = row->calib;
        if (p->calib[0] == ':' && !(rc = strchr(row->calib, ':'))) return false;
        size_t n = strlen(p->calib);
        if (strncmp(rc, p->calib, n) != 0 || (rc[n] && rc[n] != ':')) return false;
    }
    return row->limit == 0 || row->limit == p->limit;
}

void nt_cell_describe(const nt_cell *c, bool with_run, char *buf, size_t size) {
    char a[16] = "";
    if (c->abits && c->abits < 16) snprintf(a, sizeof(a), "a%d", c->abits);
    int k = snprintf(buf, size, "%s %s w%d%s g%d %s %s", c->model, c->method, c->wbits, a, c->group_size, c->task,
                     c->metric);
    if (!with_run || k < 0 || (size_t)k >= size) return;
    snprintf(buf + k, size - (size_t)k, " seqlen=%d calib=%s options=%s", c->seqlen, c->calib[0] ? c->calib : "-",
             c->options[0] ? c->options : "-");
}
