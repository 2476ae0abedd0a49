// testutil.h: paths and small helpers shared by the Criterion tests.
#pragma once
#include "nt.h"

// $NT_SHARED_DIR/rel (the shared models/datasets/tokenizers folder); malloc'd.
char *tu_shared(const char *rel);
// $NT_SOURCE_DIR/rel (the repository: tests/golden, tests/fixtures); malloc'd.
char *tu_source(const char *rel);
// A fresh empty temporary directory (malloc'd path), removed by tu_rmtree.
char *tu_tmpdir(void);
void tu_rmtree(const char *dir);
// Writes len bytes to path; returns 0 on success.
int tu_write_file(const char *path, const void *data, size_t len);
// Runs the normtweak CLI (NT_BINARY_DIR/normtweak) with a shell argument string; captures stderr into
// *err_out (malloc'd, may be NULL) and returns the exit status (or -1 if it did not exit normally).
int tu_run_cli(const char *args, char **err_out);
