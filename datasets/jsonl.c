// jsonl.c: JSON Lines reader (see jsonl.h). Reference code: reads the whole file, parses line by line.
#include "jsonl.h"

#include <string.h>

static bool is_json_space(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; }

int nt_jsonl_foreach(const char *path, nt_jsonl_fn fn, void *ctx, size_t *n_objs, nt_err *err) {
    if (n_objs) *n_objs = 0;
    size_t len = 0;
    char *buf = nt_read_file(path, &len, err);
    if (!buf) return -1;
    size_t pos = 0, lineno = 0, count = 0;
    if (len >= 3 && memcmp(buf, "\xEF\xBB\xBF", 3) == 0) pos = 3; // a UTF-8 byte-order mark is not JSON
    int rc = 0;
    while (pos < len) {
        lineno++;
        const char *line = buf + pos;
        const char *nl = memchr(line, '\n', len - pos);
        size_t n = nl ? (size_t)(nl - line) : len - pos;
        pos += n + (nl ? 1 : 0);
        size_t a = 0, b = n;
        while (a < b && is_json_space(line[a])) a++;
        while (b > a && is_json_space(line[b - 1])) b--;
        if (a == b) continue;
        const char *end = NULL;
        cJSON *obj = cJSON_ParseWithLengthOpts(line + a, b - a, &end, false);
        // one complete value and nothing after it (cJSON stops at the end of the first value)
        if (!obj || !end || end != line + b) {
            cJSON_Delete(obj);
            rc = nt_fail(err, "%s:%zu: malformed JSON", path, lineno);
            break;
        }
        count++;
        nt_err cb_err = {0};
        int r = fn(obj, lineno, ctx, &cb_err);
        cJSON_Delete(obj);
        if (r < 0) {
            rc = nt_fail(err, "%s:%zu: %s", path, lineno, cb_err.msg[0] ? cb_err.msg : "invalid record");
            break;
        }
        if (r > 0) break;
    }
    free(buf);
    if (rc == 0 && count == 0) rc = nt_fail(err, "%s: empty dataset file", path);
    if (n_objs) *n_objs = count;
    return rc;
}
