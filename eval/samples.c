// samples.c: per-item zero-shot output, written and read back as JSONL through cJSON (see samples.h).
#define _POSIX_C_SOURCE 200809L
#include "samples.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <string.h>
#include <sys/stat.h>

// One item's JSON object (NULL when out of memory).
static cJSON *item_json(const nt_zs_task *t, const nt_zs_result *res, long oi) {
    const nt_zs_task_info *info = t->info;
    const nt_zs_item *it = &t->items[res->item_index[oi]];
    size_t b0 = res->req_start[oi];
    cJSON *o = cJSON_CreateObject();
    bool ok = o && cJSON_AddNumberToObject(o, "doc_id", (double)res->item_index[oi]) &&
              cJSON_AddNumberToObject(o, "line", (double)res->item_line[oi]) &&
              cJSON_AddNumberToObject(o, "gold", res->gold[oi]);
    if (info->kind == NT_ZS_LOGLIK) {
        ok = ok && cJSON_AddNumberToObject(o, "acc", res->greedy[b0] ? 1 : 0);
    } else {
        ok = ok && cJSON_AddNumberToObject(o, "pred", res->pred[oi]) &&
             cJSON_AddNumberToObject(o, "pred_norm", res->pred_norm[oi]) &&
             cJSON_AddNumberToObject(o, "acc", res->pred[oi] == res->gold[oi] ? 1 : 0);
        if (info->acc_norm) ok = ok && cJSON_AddNumberToObject(o, "acc_norm", res->pred_norm[oi] == res->gold[oi] ? 1 : 0);
    }
    cJSON *reqs = ok ? cJSON_AddArrayToObject(o, "requests") : NULL; // owned by o from here on
    ok = ok && reqs;
    for (int c = 0; c < it->n_choices && ok; c++) {
        size_t q = b0 + (size_t)c;
        cJSON *r = cJSON_CreateObject();
        ok = r && cJSON_AddItemToArray(reqs, r);
        if (!ok) {
            cJSON_Delete(r);
            break;
        }
        ok = cJSON_AddStringToObject(r, "context", it->contexts[c]) &&
             cJSON_AddStringToObject(r, "continuation", it->continuations[c]) &&
             cJSON_AddNumberToObject(r, "loglik", res->loglik[q]) && cJSON_AddBoolToObject(r, "greedy", res->greedy[q]) &&
             cJSON_AddNumberToObject(r, "n_ctx_tokens", res->n_ctx_tokens[q]) &&
             cJSON_AddNumberToObject(r, "n_cont_tokens", res->n_cont_tokens[q]);
    }
    if (!ok) {
        cJSON_Delete(o);
        return NULL;
    }
    return o;
}

int nt_samples_write(const char *dir, const char *task, const nt_zs_task *t, const nt_zs_result *res, nt_err *err) {
    if (mkdir(dir, 0777) != 0 && errno != EEXIST) return nt_fail(err, "%s: cannot create: %s", dir, strerror(errno));
    char name[64];
    snprintf(name, sizeof(name), "%s.jsonl", task);
    char *path = nt_path_join(dir, name);
    if (!path) return nt_fail(err, "out of memory");
    nt_atomic_file af;
    if (nt_atomic_open(&af, path, err)) {
        free(path);
        return -1;
    }
    bool ok = true;
    for (long oi = 0; oi < res->n_items && ok; oi++) {
        cJSON *o = item_json(t, res, oi);
        char *line = o ? cJSON_PrintUnformatted(o) : NULL;
        ok = line && fputs(line, af.f) >= 0 && fputc('\n', af.f) != EOF;
        free(line);
        cJSON_Delete(o);
    }
    int rc = nt_atomic_close(&af, ok, err);
    if (!ok && rc == 0) rc = nt_fail(err, "%s: out of memory writing the samples", path);
    free(path);
    return rc;
}

// ------------------------------------------------------------------------------------------------ reading

static int int_field(const cJSON *o, const char *key, bool required, int lo, int hi, int dflt, int *out) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!v) {
        *out = dflt;
        return required ? -1 : 0;
    }
    if (!cJSON_IsNumber(v) || v->valuedouble != (double)(long)v->valuedouble || v->valuedouble < lo ||
        v->valuedouble > hi)
        return -1;
    *out = (int)v->valuedouble;
    return 0;
}

static int parse_line(const char *text, nt_sample *s, const char **what) {
    cJSON *o = cJSON_Parse(text);
    int rc = -1, doc = 0, line = 0;
    *what = "not a JSON object";
    if (!cJSON_IsObject(o)) goto done;
    *what = "doc_id, line, gold and acc must be non-negative integers (acc 0 or 1)";
    if (int_field(o, "doc_id", true, 0, 1 << 30, 0, &doc) || int_field(o, "line", true, 0, 1 << 30, 0, &line) ||
        int_field(o, "gold", true, 0, 1 << 20, 0, &s->gold) || int_field(o, "acc", true, 0, 1, 0, &s->acc) ||
        int_field(o, "pred", false, 0, 1 << 20, -1, &s->pred) || int_field(o, "acc_norm", false, 0, 1, -1, &s->acc_norm))
        goto done;
    s->doc_id = doc;
    s->line = line;
    const cJSON *reqs = cJSON_GetObjectItemCaseSensitive(o, "requests"), *r;
    *what = "\"requests\" must be an array of objects with string \"context\" and \"continuation\"";
    if (!cJSON_IsArray(reqs)) goto done;
    size_t len = 1;
    cJSON_ArrayForEach(r, reqs) {
        const cJSON *c = cJSON_GetObjectItemCaseSensitive(r, "context"), *k = cJSON_GetObjectItemCaseSensitive(r, "continuation");
        if (!cJSON_IsString(c) || !cJSON_IsString(k)) goto done;
        len += strlen(c->valuestring) + strlen(k->valuestring) + 2;
    }
    s->requests = malloc(len);
    *what = "out of memory";
    if (!s->requests) goto done;
    size_t at = 0;
    cJSON_ArrayForEach(r, reqs) {
        const char *parts[2] = {cJSON_GetObjectItemCaseSensitive(r, "context")->valuestring,
                                cJSON_GetObjectItemCaseSensitive(r, "continuation")->valuestring};
        for (int i = 0; i < 2; i++) {
            size_t n = strlen(parts[i]);
            memcpy(s->requests + at, parts[i], n);
            at += n;
            s->requests[at++] = '\x1f'; // a separator no task text holds
        }
    }
    s->requests[at] = '\0';
    rc = 0;
done:
    cJSON_Delete(o);
    return rc;
}

int nt_samples_read(const char *path, nt_samples *out, nt_err *err) {
    memset(out, 0, sizeof(*out));
    size_t len = 0;
    char *text = nt_read_file(path, &len, err);
    if (!text) return -1;
    out->path = strdup(path);
    int rc = out->path ? 0 : nt_fail(err, "out of memory");
    size_t cap = 0;
    long lineno = 0;
    for (char *p = text, *next; rc == 0 && p < text + len; p = next) {
        char *nl = strchr(p, '\n');
        next = nl ? nl + 1 : text + len;
        if (nl) *nl = '\0';
        lineno++;
        if (!*p) continue;
        if (out->n == cap) {
            cap = cap ? 2 * cap : 256;
            nt_sample *g = realloc(out->items, cap * sizeof(nt_sample));
            if (!g) {
                rc = nt_fail(err, "%s: out of memory", path);
                break;
            }
            out->items = g;
        }
        nt_sample *s = &out->items[out->n];
        memset(s, 0, sizeof(*s));
        const char *what = NULL;
        if (parse_line(p, s, &what)) {
            free(s->requests);
            rc = nt_fail(err, "%s:%ld: %s", path, lineno, what);
            break;
        }
        out->n++;
    }
    free(text);
    if (rc == 0 && out->n == 0) rc = nt_fail(err, "%s: no samples", path);
    if (rc) nt_samples_free(out);
    return rc;
}

void nt_samples_free(nt_samples *s) {
    for (size_t i = 0; s->items && i < s->n; i++) free(s->items[i].requests);
    free(s->items);
    free(s->path);
    memset(s, 0, sizeof(*s));
}
