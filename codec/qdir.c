// qdir.c: atomic checkpoint directories (qdir.h).
#define _POSIX_C_SOURCE 200809L
#include "qdir.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int write_text(const char *path, const char *text, size_t len, nt_err *err) {
    FILE *f = fopen(path, "wb");
    int ok = f && (len ? fwrite(text, 1, len, f) == len : fputs(text, f) >= 0 && fputc('\n', f) != EOF);
    ok = f && fclose(f) == 0 && ok;
    return ok ? 0 : nt_fail(err, "%s: cannot write: %s", path, strerror(errno));
}

static int copy_file(const char *from, const char *to, nt_err *err) {
    size_t len;
    char *buf = nt_read_file(from, &len, err);
    if (!buf) return -1;
    FILE *f = fopen(to, "wb");
    int ok = f && fwrite(buf, 1, len, f) == len;
    ok = f && fclose(f) == 0 && ok;
    free(buf);
    return ok ? 0 : nt_fail(err, "%s: cannot write: %s", to, strerror(errno));
}

static int dir_is_empty_or_absent(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return errno == ENOENT;
    struct dirent *e;
    int empty = 1;
    while ((e = readdir(d)))
        if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0) empty = 0;
    closedir(d);
    return empty;
}

int nt_qcheckpoint_dir_usable(const char *out_dir, nt_err *err) {
    if (!dir_is_empty_or_absent(out_dir))
        return nt_fail(err, "%s: exists and is not empty; choose a new --out directory", out_dir);
    return 0;
}

static void remove_tree(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
        char *p = nt_path_join(dir, e->d_name);
        if (p) unlink(p);
        free(p);
    }
    closedir(d);
    rmdir(dir);
}

int nt_qcheckpoint_write_dir(const char *out_dir, const char *src_dir, const nt_st_tensor *tensors, size_t n,
                             const char *const *meta_kv, size_t n_meta, const nt_qcheckpoint_text *texts,
                             size_t n_texts, nt_err *err) {
    if (nt_qcheckpoint_dir_usable(out_dir, err)) return -1;
    int rc = -1;
    size_t tl = strlen(out_dir) + 32;
    char *tmp = malloc(tl);
    if (!tmp) return nt_fail(err, "out of memory writing %s", out_dir);
    snprintf(tmp, tl, "%s.tmp.%ld", out_dir, (long)getpid());
    remove_tree(tmp);
    if (mkdir(tmp, 0755) != 0) {
        nt_fail(err, "%s: cannot create: %s", tmp, strerror(errno));
        free(tmp);
        return -1;
    }
    char *p = nt_path_join(tmp, "model.safetensors");
    int r2 = nt_st_write(p, tensors, n, meta_kv, n_meta, err);
    free(p);
    for (size_t i = 0; i < n_texts && r2 == 0; i++) {
        p = nt_path_join(tmp, texts[i].name);
        r2 = write_text(p, texts[i].text, texts[i].len, err);
        free(p);
    }
    const char *copies[] = {"config.json", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
                            "vocab.json", "merges.txt", "tokenizer.model", "generation_config.json"};
    for (size_t i = 0; i < sizeof(copies) / sizeof(copies[0]) && r2 == 0; i++) {
        bool given = false;
        for (size_t j = 0; j < n_texts; j++) given = given || strcmp(texts[j].name, copies[i]) == 0;
        if (given) continue;
        if (!src_dir) break;
        char *from = nt_path_join(src_dir, copies[i]), *to = nt_path_join(tmp, copies[i]);
        r2 = nt_file_exists(from) ? copy_file(from, to, err) : 0;
        free(from);
        free(to);
    }
    if (r2) goto done;
    rmdir(out_dir); // empty or absent
    if (rename(tmp, out_dir) != 0) {
        nt_fail(err, "%s: cannot rename into place: %s", out_dir, strerror(errno));
        goto done;
    }
    rc = 0;
done:
    if (rc) remove_tree(tmp);
    free(tmp);
    return rc;
}

