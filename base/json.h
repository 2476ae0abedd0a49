// json.h: reading JSON files and typed fields through cJSON, with one-line errors that name the file and the key
// ("config.json: 'num_hidden_layers' must be a non-negative integer"). Shared by every JSON reader of the library
// (config.json, quantize_config.json, experiment grids).
#pragma once
#include <cjson/cJSON.h>
#include <stdbool.h>

#include "nt.h"

// Parses the file at path: NULL with "PATH: malformed JSON" (or the read error) on failure.
cJSON *nt_json_read_file(const char *path, nt_err *err);
// The field `key` of an object, or NULL when absent or JSON null.
const cJSON *nt_json_item(const cJSON *root, const char *key);
// An integer field: the first of the NULL-terminated keys that is present, else def (def < 0: required).
// Values must be integers in [0, 1e9].
int nt_json_int(const cJSON *root, const char *path, const char *const *keys, int def, int *out, nt_err *err);
// A number field (def when absent).
int nt_json_float(const cJSON *root, const char *path, const char *key, double def, float *out, nt_err *err);
// A boolean field (def when absent).
int nt_json_bool(const cJSON *root, const char *path, const char *key, bool def, bool *out, nt_err *err);
// A string field: its value, or def when absent or not a string.
const char *nt_json_str(const cJSON *root, const char *key, const char *def);
