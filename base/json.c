// json.c: typed JSON fields with one-line errors (json.h).
#include "json.h"

#include <math.h>
#include <stdlib.h>

cJSON *nt_json_read_file(const char *path, nt_err *err) {
    char *text = nt_read_file(path, NULL, err);
    if (!text) return NULL;
    cJSON *root = cJSON_Parse(text);
    free(text);
    if (!root) nt_fail(err, "%s: malformed JSON", path);
    return root;
}

const cJSON *nt_json_item(const cJSON *root, const char *key) {
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(root, key);
    return (it && !cJSON_IsNull(it)) ? it : NULL;
}

int nt_json_int(const cJSON *root, const char *path, const char *const *keys, int def, int *out, nt_err *err) {
    for (int i = 0; keys[i]; i++) {
        const cJSON *it = nt_json_item(root, keys[i]);
        if (!it) continue;
        if (!cJSON_IsNumber(it) || it->valuedouble != floor(it->valuedouble) || it->valuedouble < 0 ||
            it->valuedouble > 1e9)
            return nt_fail(err, "%s: '%s' must be a non-negative integer", path, keys[i]);
        *out = (int)it->valuedouble;
        return 0;
    }
    if (def < 0) return nt_fail(err, "%s: missing '%s'", path, keys[0]);
    *out = def;
    return 0;
}

int nt_json_float(const cJSON *root, const char *path, const char *key, double def, float *out, nt_err *err) {
    const cJSON *it = nt_json_item(root, key);
    if (!it) {
        *out = (float)def;
        return 0;
    }
    if (!cJSON_IsNumber(it)) return nt_fail(err, "%s: '%s' must be a number", path, key);
    *out = (float)it->valuedouble;
    return 0;
}

int nt_json_bool(const cJSON *root, const char *path, const char *key, bool def, bool *out, nt_err *err) {
    const cJSON *it = nt_json_item(root, key);
    if (!it) {
        *out = def;
        return 0;
    }
    if (!cJSON_IsBool(it)) return nt_fail(err, "%s: '%s' must be true or false", path, key);
    *out = cJSON_IsTrue(it);
    return 0;
}

const char *nt_json_str(const cJSON *root, const char *key, const char *def) {
    const cJSON *it = nt_json_item(root, key);
    return it && cJSON_IsString(it) ? it->valuestring : def;
}
