// testutil.c: see testutil.h.
#define _POSIX_C_SOURCE 200809L
#include "testutil.h"

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
    size_t w = fwrite(data, 1, len, f);
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
