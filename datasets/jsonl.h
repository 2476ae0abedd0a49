// jsonl.h: a JSON Lines reader shared by the dataset loaders (C4 documents, zero-shot task files).
// Each non-blank line is parsed with cJSON and handed to a callback with its 1-based line number.
#pragma once
#include <cjson/cJSON.h>

#include "nt.h"

// Called once per non-blank line, in file order. Returns 0 to go on, 1 to stop early (not an error), or -1 on
// error after writing the problem into err without the file name (e.g. `missing "text" field`): the
// iterator then prefixes "PATH:LINE: ". obj is freed after the call; copy what you keep.
typedef int (*nt_jsonl_fn)(const cJSON *obj, size_t lineno, void *ctx, nt_err *err);

// Reads path line by line (LF or CRLF endings; blank lines are skipped). Fails with "PATH: <strerror>" if
// the file cannot be read, "PATH: empty dataset file" if it holds no non-blank line, "PATH:LINE: malformed
// JSON" if a line is not one complete JSON value, or the callback's message. *n_objs (may be NULL) gets the
// number of lines handed to fn (including the one that stopped it).
int nt_jsonl_foreach(const char *path, nt_jsonl_fn fn, void *ctx, size_t *n_objs, nt_err *err);
