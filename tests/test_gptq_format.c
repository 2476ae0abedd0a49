// test_gptq_format.c: GPTQ-format export and import (quant/gptq_export.h, codec/qtensors.h), against goldens made by transformers
// (optimum + AutoGPTQ) from tests/golden/make_gptq_format_goldens.py:
// - export: our RTN checkpoints (OPT 2/3/4/8 bits, grouped, per channel, sym; BLOOM's fused query_key_value)
//   exported to GPTQ and loaded by transformers give our logits (1e-4 in log-softmax); export -> import gives
//   bit-identical dequantized weights and identical logits, in v1 ("gptq") and v2 ("gptq_v2");
// - import: checkpoints packed by AutoGPTQ itself (act-order g_idx, 2/3/4/8 bits, sym and asym, per channel) load
//   with transformers' logits, our export of them reproduces AutoGPTQ's tensors byte for byte, and a gptq_v2 twin
//   dequantizes to the same weights;
// - bad input: shapes that disagree with quantize_config.json, truncated tensors and files, wrong qzeros, zero
//   points out of range, unsupported formats; export of layers GPTQ cannot hold (K or N not a multiple of 32, zero
//   point 0 in v1): one-line errors naming the file or layer.
#define _POSIX_C_SOURCE 200809L
#include <cjson/cJSON.h>
#include <criterion/criterion.h>
#include <math.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "gptq_export.h"
#include "qcheckpoint.h"
#include "qtensors.h"
#include "quantize_model.h"
#include "safetensors.h"
#include "testutil.h"

#define MAX_T 16

static nt_model *load_ok(const char *dir) {
    nt_model *m = NULL;
    nt_err err = {0};
    cr_assert_eq(nt_model_load(&m, dir, &err), 0, "%s: %s", dir, err.msg);
    return m;
}

// The golden cases and tokens.
static cJSON *read_cases(int32_t *tokens, int *T) {
    char *path = tu_source("tests/golden/gptq_format/cases.json");
    char *text = nt_read_file(path, NULL, NULL);
    cr_assert_not_null(text, "%s missing: run tests/golden/make_gptq_format_goldens.py", path);
    cJSON *root = cJSON_Parse(text);
    cr_assert_not_null(root);
    const cJSON *tok = cJSON_GetObjectItem(root, "tokens");
    *T = cJSON_GetArraySize(tok);
    cr_assert(*T > 0 && *T <= MAX_T);
    for (int t = 0; t < *T; t++) tokens[t] = cJSON_GetArrayItem(tok, t)->valueint;
    free(text);
    free(path);
    return root;
}

static char *golden(const char *name, const char *suffix) {
    char rel[256];
    snprintf(rel, sizeof(rel), "tests/golden/gptq_format/%s%s", name, suffix);
    return tu_source(rel);
}

static float *logits_of(const nt_model *m, const int32_t *tokens, int T) {
    float *out = malloc((size_t)T * m->cfg.vocab * sizeof(float));
    nt_run *r = NULL;
    nt_err err = {0};
    cr_assert_eq(nt_run_init(&r, m, T, T, &err), 0, "%s", err.msg);
    cr_assert_eq(nt_forward(m, r, tokens, T, out, &err), 0, "%s", err.msg);
    nt_run_free(&r);
    return out;
}

// Our log-softmax against transformers' (loading the GPTQ checkpoint, fp32 on another machine): each within
// 1e-4 (atol; rtol 0), as test_forward's goldens, for the same reasons (see LOGPROB_TOL there).
static void check_golden_logits(const nt_model *m, const char *name, const int32_t *tokens, int T) {
    char *path = golden(name, ".logits.f32");
    size_t len = 0;
    float *ref = (float *)nt_read_file(path, &len, NULL);
    cr_assert_not_null(ref, "%s missing", path);
    const int V = m->cfg.vocab;
    cr_assert_eq(len, (size_t)T * V * sizeof(float), "%s: size %zu", path, len);
    float *ours = logits_of(m, tokens, T);
    double *a = malloc((size_t)V * sizeof *a), *b = malloc((size_t)V * sizeof *b);
    for (int t = 0; t < T; t++) {
        tu_log_softmax_row(ours + (size_t)t * V, V, a);
        tu_log_softmax_row(ref + (size_t)t * V, V, b);
        for (int v = 0; v < V; v++)
            TU_ASSERT_CLOSE(a[v], b[v], 1e-4, 0.0, "%s: position %d id %d: log-softmax against transformers'", name, t,
                            v);
    }
    free(a);
    free(b);
    free(ours);
    free(ref);
    free(path);
}

// Every quantized linear of a and b dequantizes to the same bits.
static void check_same_weights(const nt_model *a, const nt_model *b, const char *what) {
    int n = 0;
    for (int l = 0; l < a->cfg.n_layers; l++)
        for (int k = 0; k < NT_LIN_COUNT; k++) {
            nt_linear *x = nt_layer_linear(&a->layers[l], k), *y = nt_layer_linear(&b->layers[l], k);
            if (!x->w) continue;
            cr_assert_not_null(x->q, "%s: layer %d %s not quantized", what, l, nt_lin_name(k));
            cr_assert_not_null(y->q, "%s: layer %d %s not quantized", what, l, nt_lin_name(k));
            cr_assert_eq(memcmp(x->w, y->w, (size_t)x->in * x->out * sizeof(float)), 0,
                         "%s: layer %d %s: dequantized weights differ", what, l, nt_lin_name(k));
            n++;
        }
    cr_assert(n > 0, "%s: no quantized linear", what);
}

static void export_ok(const char *qdir, const char *out, nt_qfmt fmt) {
    nt_err err = {0};
    cr_assert_eq(nt_gptq_export(qdir, out, fmt, &err), 0, "export %s: %s", qdir, err.msg);
}

static char *export_fails(const char *qdir, const char *out, nt_qfmt fmt) {
    nt_err err = {0};
    cr_assert_eq(nt_gptq_export(qdir, out, fmt, &err), -1, "export %s should fail", qdir);
    cr_assert(err.msg[0] && !strchr(err.msg, '\n'), "not one line: '%s'", err.msg);
    struct stat sb;
    cr_assert(stat(out, &sb) != 0, "%s: created although the export failed", out);
    return strdup(err.msg);
}

static char *load_fails(const char *dir) {
    nt_model *m = NULL;
    nt_err err = {0};
    cr_assert_eq(nt_model_load(&m, dir, &err), -1, "%s: loaded although broken", dir);
    cr_assert_null(m);
    cr_assert(err.msg[0] && !strchr(err.msg, '\n'), "not one line: '%s'", err.msg);
    return strdup(err.msg);
}

// The tensor name of st; NULL if absent.
static const nt_st_tensor *find(const nt_safetensors *st, const char *name) { return nt_st_find(st, name); }

static bool ends_with(const char *s, const char *suffix) {
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && strcmp(s + a - b, suffix) == 0;
}

// ------------------------------------------------------------------------------------------ rewriting fixtures
static void copy_file(const char *from_dir, const char *to_dir, const char *name) {
    char *from = nt_path_join(from_dir, name), *to = nt_path_join(to_dir, name);
    size_t len = 0;
    char *buf = nt_read_file(from, &len, NULL);
    cr_assert_not_null(buf, "%s", from);
    cr_assert_eq(tu_write_file(to, buf, len), 0);
    free(buf);
    free(from);
    free(to);
}

// A copy of checkpoint src in dst whose tensors pass through mutate (which may change shape, nbytes, data).
typedef void (*mutate_fn)(nt_st_tensor *t, void *ctx);
static void rewrite(const char *src, const char *dst, mutate_fn mutate, void *ctx) {
    cr_assert_eq(mkdir(dst, 0755), 0, "%s", dst);
    copy_file(src, dst, "config.json");
    copy_file(src, dst, "quantize_config.json");
    nt_safetensors *st = NULL;
    nt_err err = {0};
    cr_assert_eq(nt_st_open_dir(&st, src, &err), 0, "%s", err.msg);
    size_t n = nt_st_count(st);
    nt_st_tensor *t = malloc(n * sizeof(*t));
    for (size_t i = 0; i < n; i++) {
        t[i] = *nt_st_at(st, i);
        if (mutate) mutate(&t[i], ctx);
    }
    char *path = nt_path_join(dst, "model.safetensors");
    const char *meta[] = {"format", "pt"};
    cr_assert_eq(nt_st_write(path, t, n, meta, 1, &err), 0, "%s", err.msg);
    free(path);
    free(t);
    nt_st_close(&st);
}

// Sets key of dst/quantize_config.json (and of config.json's quantization_config when it has one) to item.
static void set_quantize_config(const char *dir, const char *key, cJSON *item) {
    const char *files[2] = {"quantize_config.json", "config.json"};
    for (int f = 0; f < 2; f++) {
        char *path = nt_path_join(dir, files[f]);
        char *text = nt_read_file(path, NULL, NULL);
        cJSON *root = cJSON_Parse(text);
        cJSON *obj = f == 0 ? root : cJSON_GetObjectItem(root, "quantization_config");
        if (obj) {
            cJSON_DeleteItemFromObject(obj, key);
            cJSON_AddItemToObject(obj, key, cJSON_Duplicate(item, 1));
            char *out = cJSON_Print(root);
            cr_assert_eq(tu_write_file(path, out, strlen(out)), 0);
            free(out);
        }
        cJSON_Delete(root);
        free(text);
        free(path);
    }
    cJSON_Delete(item);
}

// ------------------------------------------------------------------------------------------------ export cases
Test(gptq_format, export_loads_in_transformers_and_round_trips) {
    int32_t tokens[MAX_T];
    int T = 0;
    cJSON *root = read_cases(tokens, &T);
    const cJSON *c;
    int n = 0;
    cJSON_ArrayForEach(c, cJSON_GetObjectItem(root, "cases")) {
        if (strcmp(cJSON_GetObjectItem(c, "kind")->valuestring, "export") != 0) continue;
        const char *name = cJSON_GetObjectItem(c, "name")->valuestring;
        char *qdir = golden(name, "");
        nt_model *m = load_ok(qdir);
        cr_assert_eq(m->quant.wbits, cJSON_GetObjectItem(c, "bits")->valueint);
        check_golden_logits(m, name, tokens, T); // transformers on the export == our model
        char *tmp = tu_tmpdir();
        const nt_qfmt fmts[2] = {NT_QFMT_GPTQ, NT_QFMT_GPTQ_V2};
        for (int f = 0; f < 2; f++) {
            char *g = nt_path_join(tmp, nt_qfmt_name(fmts[f]));
            export_ok(qdir, g, fmts[f]);
            nt_model *m2 = load_ok(g);
            cr_assert_eq(m2->quant.wbits, m->quant.wbits);
            cr_assert_eq(m2->quant.group_size, m->quant.group_size);
            cr_assert_eq(m2->quant.sym, m->quant.sym);
            cr_assert_str_eq(m2->quant.method, m->quant.method);
            cr_assert_str_eq(m2->name, m->name);
            check_same_weights(m, m2, name);
            float *la = logits_of(m, tokens, T), *lb = logits_of(m2, tokens, T);
            cr_assert_eq(memcmp(la, lb, (size_t)T * m->cfg.vocab * sizeof(float)), 0, "%s: logits differ", name);
            free(la);
            free(lb);
            // GPTQ's tensors only, and transformers' quantization_config
            nt_safetensors *st = NULL;
            nt_err err = {0};
            cr_assert_eq(nt_st_open_dir(&st, g, &err), 0, "%s", err.msg);
            int nq = 0;
            for (size_t i = 0; i < nt_st_count(st); i++) {
                const char *tn = nt_st_at(st, i)->name;
                cr_assert(!ends_with(tn, ".zeros") && !ends_with(tn, ".perm"), "%s: normtweak tensor %s", g, tn);
                if (ends_with(tn, ".qzeros")) nq++;
            }
            cr_assert(nq > 0);
            if (strncmp(name, "bloom", 5) == 0)
                cr_assert_not_null(find(st, "transformer.h.0.self_attention.query_key_value.qzeros"),
                                   "BLOOM's query_key_value is stored fused");
            nt_st_close(&st);
            char *cfgp = nt_path_join(g, "config.json");
            char *text = nt_read_file(cfgp, NULL, NULL);
            cJSON *cfg = cJSON_Parse(text);
            const cJSON *qc = cJSON_GetObjectItem(cfg, "quantization_config");
            cr_assert_str_eq(cJSON_GetObjectItem(qc, "quant_method")->valuestring, "gptq");
            cr_assert_str_eq(cJSON_GetObjectItem(qc, "checkpoint_format")->valuestring, nt_qfmt_name(fmts[f]));
            cr_assert_eq(cJSON_GetObjectItem(qc, "bits")->valueint, m->quant.wbits);
            cr_assert_eq(cJSON_GetObjectItem(qc, "group_size")->valueint, m->quant.group_size);
            cJSON_Delete(cfg);
            free(text);
            free(cfgp);
            nt_model_free(&m2);
            free(g);
        }
        tu_rmtree(tmp);
        free(tmp);
        nt_model_free(&m);
        free(qdir);
        n++;
    }
    cr_assert_eq(n, 5);
    cJSON_Delete(root);
}

// ------------------------------------------------------------------------------------------------ import cases
// Tensors base.{qweight,qzeros,scales,g_idx} of a and b are byte-identical (every one of a that ends so).
static void check_same_gptq_tensors(const char *dir_a, const char *dir_b, bool qzeros) {
    nt_safetensors *a = NULL, *b = NULL;
    nt_err err = {0};
    cr_assert_eq(nt_st_open_dir(&a, dir_a, &err), 0, "%s", err.msg);
    cr_assert_eq(nt_st_open_dir(&b, dir_b, &err), 0, "%s", err.msg);
    int n = 0;
    for (size_t i = 0; i < nt_st_count(a); i++) {
        const nt_st_tensor *x = nt_st_at(a, i);
        bool part = ends_with(x->name, ".qweight") || ends_with(x->name, ".scales") || ends_with(x->name, ".g_idx");
        if (!part && !(qzeros && ends_with(x->name, ".qzeros"))) continue;
        const nt_st_tensor *y = find(b, x->name);
        cr_assert_not_null(y, "%s: '%s' missing", dir_b, x->name);
        cr_assert(x->dtype == y->dtype && x->ndim == y->ndim && x->nbytes == y->nbytes, "%s: '%s' differs in shape",
                  dir_b, x->name);
        cr_assert_eq(memcmp(x->data, y->data, x->nbytes), 0, "%s: '%s' differs from %s's", dir_b, x->name, dir_a);
        n++;
    }
    cr_assert(n > 0);
    nt_st_close(&a);
    nt_st_close(&b);
}

Test(gptq_format, import_autogptq_act_order_and_v2) {
    int32_t tokens[MAX_T];
    int T = 0;
    cJSON *root = read_cases(tokens, &T);
    const cJSON *c;
    int n = 0, n_v2 = 0;
    cJSON_ArrayForEach(c, cJSON_GetObjectItem(root, "cases")) {
        if (strcmp(cJSON_GetObjectItem(c, "kind")->valuestring, "import") != 0) continue;
        const char *name = cJSON_GetObjectItem(c, "name")->valuestring;
        char *dir = golden(name, "");
        nt_model *m = load_ok(dir);
        cr_assert_eq(m->quant.wbits, cJSON_GetObjectItem(c, "bits")->valueint);
        cr_assert(m->quant.act_order);
        cr_assert_eq(m->quant.sym, cJSON_IsTrue(cJSON_GetObjectItem(c, "sym")));
        nt_qlinear *q0 = m->layers[0].q.q;
        cr_assert(q0 && q0->perm, "%s: desc_act gives a perm", name);
        cr_assert_eq(q0->sym, m->quant.sym);
        for (int j = 1; j < q0->in; j++) // rebuilt from g_idx: groups in order
            cr_assert(q0->g_idx[q0->perm[j - 1]] <= q0->g_idx[q0->perm[j]]);
        check_golden_logits(m, name, tokens, T);
        // our export of the import reproduces AutoGPTQ's tensors
        char *tmp = tu_tmpdir(), *g = nt_path_join(tmp, "g"), *g2 = nt_path_join(tmp, "g2");
        export_ok(dir, g, NT_QFMT_GPTQ);
        check_same_gptq_tensors(dir, g, true);
        const cJSON *v2 = cJSON_GetObjectItem(c, "v2");
        if (cJSON_IsString(v2)) { // GPTQModel's v2: zero points as they are
            char *dv2 = golden(v2->valuestring, "");
            nt_model *m2 = load_ok(dv2);
            check_same_weights(m, m2, v2->valuestring);
            export_ok(dir, g2, NT_QFMT_GPTQ_V2);
            check_same_gptq_tensors(dv2, g2, true);
            char *g3 = nt_path_join(tmp, "g3"); // v2 -> v1
            export_ok(dv2, g3, NT_QFMT_GPTQ);
            check_same_gptq_tensors(dir, g3, true);
            free(g3);
            nt_model_free(&m2);
            free(dv2);
            n_v2++;
        }
        tu_rmtree(tmp);
        free(tmp);
        free(g);
        free(g2);
        free(dir);
        nt_model_free(&m);
        n++;
    }
    cr_assert_eq(n, 4);
    cr_assert_eq(n_v2, 1);
    cJSON_Delete(root);
}

// --------------------------------------------------------------------------------------------------- bad input
typedef struct {
    const char *suffix; // tensors whose names end so
    int mode;           // 0: one row less (truncated), 1: one column less, 2: fill with 0xff bytes, 3: g_idx 99
    void *buf;
} mut_ctx;

static void mutate(nt_st_tensor *t, void *vctx) {
    mut_ctx *c = vctx;
    if (!ends_with(t->name, c->suffix)) return;
    if (c->mode == 0) {
        t->nbytes -= t->nbytes / (size_t)t->shape[0];
        t->shape[0]--;
        t->numel = t->nbytes / nt_dtype_size(t->dtype);
    } else if (c->mode == 1) {
        t->nbytes -= t->nbytes / (size_t)t->shape[1];
        t->shape[1]--;
        t->numel = t->nbytes / nt_dtype_size(t->dtype);
    } else if (!c->buf) { // modes 2, 3: the first matching tensor only
        c->buf = malloc(t->nbytes);
        memcpy(c->buf, t->data, t->nbytes);
        if (c->mode == 2) memset(c->buf, 0xff, t->nbytes);
        else ((int32_t *)c->buf)[0] = 99;
        t->data = c->buf;
    }
}

static char *broken_copy(const char *tmp, const char *case_name, const char *label, const char *suffix, int mode) {
    char *src = golden(case_name, ""), *dst = nt_path_join(tmp, label);
    mut_ctx ctx = {suffix, mode, NULL};
    rewrite(src, dst, suffix ? mutate : NULL, &ctx);
    free(ctx.buf);
    free(src);
    return dst;
}

static void expect_load_error(const char *dir, const char *a, const char *b) {
    char *msg = load_fails(dir);
    cr_assert(strstr(msg, a) && (!b || strstr(msg, b)), "%s: message '%s' should name '%s' and '%s'", dir, msg, a,
              b ? b : "");
    free(msg);
}

Test(gptq_format, import_bad_input) {
    char *tmp = tu_tmpdir();
    const char *act = "autogptq_opt_b3_g32_act", *lin = "model.decoder.layers.0.self_attn.q_proj";
    char want[256];
    // truncated qweight (one pack row less), qzeros with a column missing, wrong bits in quantize_config.json
    char *d = broken_copy(tmp, act, "trunc", ".qweight", 0);
    snprintf(want, sizeof(want), "%s/model.safetensors", d);
    expect_load_error(d, want, ".qweight");
    free(d);
    d = broken_copy(tmp, act, "qzeros", ".qzeros", 1);
    snprintf(want, sizeof(want), "%s/model.safetensors", d);
    expect_load_error(d, want, ".qzeros");
    free(d);
    d = broken_copy(tmp, act, "bits", NULL, 0);
    set_quantize_config(d, "bits", cJSON_CreateNumber(4));
    snprintf(want, sizeof(want), "%s/model.safetensors", d);
    expect_load_error(d, want, "qweight");
    free(d);
    d = broken_copy(tmp, act, "group", NULL, 0);
    set_quantize_config(d, "group_size", cJSON_CreateNumber(-1));
    expect_load_error(d, "model.safetensors", "qzeros");
    free(d);
    // a v1 qzeros field of all ones: zero point 2^bits, which our format (and a sane checkpoint) cannot hold
    d = broken_copy(tmp, act, "zero8", ".qzeros", 2);
    expect_load_error(d, "model.safetensors", "outside 0..7");
    free(d);
    // g_idx outside the groups
    d = broken_copy(tmp, act, "gidx", ".g_idx", 3);
    expect_load_error(d, "model.safetensors", "g_idx");
    free(d);
    // a byte-truncated file
    d = broken_copy(tmp, act, "bytes", NULL, 0);
    char *st = nt_path_join(d, "model.safetensors");
    size_t len = 0;
    char *buf = nt_read_file(st, &len, NULL);
    cr_assert_eq(tu_write_file(st, buf, len - 100), 0);
    expect_load_error(d, st, NULL);
    free(buf);
    free(st);
    free(d);
    // transformers' own GPTQ checkpoints carry only config.json's quantization_config
    d = broken_copy(tmp, act, "hf", NULL, 0);
    char *qcp = nt_path_join(d, "quantize_config.json"), *orig = golden(act, "");
    cr_assert_eq(unlink(qcp), 0);
    nt_model *a = load_ok(d), *b = load_ok(orig);
    cr_assert(a->quant.act_order && a->quant.wbits == 3 && !a->quant.sym);
    check_same_weights(a, b, "config.json's quantization_config");
    nt_model_free(&a);
    nt_model_free(&b);
    free(qcp);
    qcp = nt_path_join(d, "config.json");
    char *text = nt_read_file(qcp, NULL, NULL);
    cJSON *cfg = cJSON_Parse(text), *awq = cJSON_CreateObject();
    cJSON_AddStringToObject(awq, "quant_method", "awq");
    cJSON_ReplaceItemInObject(cfg, "quantization_config", awq);
    char *out = cJSON_Print(cfg);
    cr_assert_eq(tu_write_file(qcp, out, strlen(out)), 0);
    expect_load_error(d, qcp, "awq");
    free(out);
    free(text);
    cJSON_Delete(cfg);
    free(qcp);
    free(orig);
    free(d);
    // unsupported formats
    d = broken_copy(tmp, act, "marlin", NULL, 0);
    set_quantize_config(d, "checkpoint_format", cJSON_CreateString("marlin"));
    snprintf(want, sizeof(want), "%s/quantize_config.json", d);
    expect_load_error(d, want, "marlin");
    free(d);
    d = broken_copy(tmp, act, "ismarlin", NULL, 0);
    set_quantize_config(d, "is_marlin_format", cJSON_CreateTrue());
    expect_load_error(d, "quantize_config.json", "Marlin");
    free(d);
    // the reader alone, on a tensor that is not there
    nt_safetensors *s = NULL;
    nt_err err = {0};
    char *good = golden(act, "");
    cr_assert_eq(nt_st_open_dir(&s, good, &err), 0);
    nt_qfmt_spec spec = {NT_QFMT_GPTQ, 3, 32, false, true};
    nt_qlinear *q = NULL;
    cr_assert_eq(nt_qfmt_read_qlinear(s, "model.decoder.layers.0.nothing", &spec, -1, -1, &q, &err), -1);
    cr_assert(strstr(err.msg, "nothing.qweight"), "%s", err.msg);
    cr_assert_eq(nt_qfmt_read_qlinear(s, lin, &spec, -1, -1, &q, &err), 0, "%s", err.msg);
    cr_assert_eq(q->out, 32);
    cr_assert_eq(q->in, 32);
    nt_qlinear_free(&q);
    nt_st_close(&s);
    free(good);
    tu_rmtree(tmp);
    free(tmp);
}

static void zero_first_zero(nt_st_tensor *t, void *vctx) {
    mut_ctx *c = vctx;
    if (strcmp(t->name, "model.decoder.layers.1.fc1.zeros") != 0) return;
    c->buf = malloc(t->nbytes);
    memcpy(c->buf, t->data, t->nbytes);
    ((uint8_t *)c->buf)[5] = 0;
    t->data = c->buf;
}

Test(gptq_format, export_errors) {
    char *tmp = tu_tmpdir();
    // a float checkpoint
    char *fp = tu_source("tests/fixtures/tiny-random-opt"), *out = nt_path_join(tmp, "out");
    char *msg = export_fails(fp, out, NT_QFMT_GPTQ);
    cr_assert(strstr(msg, "not a quantized checkpoint"), "%s", msg);
    free(msg);
    // LLaMA's MLP width 48: neither K (down_proj) nor N (gate/up) is a multiple of 32
    char *llama = tu_source("tests/fixtures/tiny-random-llama");
    nt_model *m = load_ok(llama);
    nt_err err = {0};
    nt_quant_opts o = nt_quant_opts_make("rtn", 4, -1);
    char *data = tu_shared("datasets");
    cr_assert_eq(nt_quantize_model(m, NULL, data, &o, NULL, &err), 0, "%s", err.msg);
    char *qd = nt_path_join(tmp, "llama_q");
    cr_assert_eq(nt_qcheckpoint_save(m, qd, &err), 0, "%s", err.msg);
    msg = export_fails(qd, out, NT_QFMT_GPTQ);
    cr_assert(strstr(msg, "mlp.") && strstr(msg, "48") && strstr(msg, "multiple of 32") && strstr(msg, qd), "%s",
              msg);
    free(msg);
    nt_model_free(&m);
    // a zero point 0: not in v1 (zero-1 wraps), fine in v2
    char *src = golden("opt_b2_g32", ""), *z0 = nt_path_join(tmp, "z0");
    mut_ctx ctx = {NULL, 0, NULL};
    rewrite(src, z0, zero_first_zero, &ctx);
    free(ctx.buf);
    msg = export_fails(z0, out, NT_QFMT_GPTQ);
    cr_assert(strstr(msg, "layers.1.fc1") && strstr(msg, "zero point 0") && strstr(msg, "gptq_v2"), "%s", msg);
    free(msg);
    char *v2 = nt_path_join(tmp, "v2");
    export_ok(z0, v2, NT_QFMT_GPTQ_V2);
    nt_model *a = load_ok(z0), *b = load_ok(v2);
    check_same_weights(a, b, "zero point 0 through v2");
    nt_model_free(&a);
    nt_model_free(&b);
    // an --out that is not empty
    cr_assert_eq(nt_gptq_export(src, tmp, NT_QFMT_GPTQ, &err), -1);
    cr_assert(strstr(err.msg, "not empty"), "%s", err.msg);
    free(v2);
    free(src);
    free(z0);
    free(qd);
    free(data);
    free(llama);
    free(fp);
    free(out);
    tu_rmtree(tmp);
    free(tmp);
}

// ------------------------------------------------------------------------------------------------------ the CLI
Test(gptq_format, cli_export) {
    char *bin = nt_path_join(getenv("NT_BINARY_DIR") ? getenv("NT_BINARY_DIR") : ".", "normtweak");
    bool have = nt_file_exists(bin);
    free(bin);
    if (!have) cr_skip_test("the normtweak binary is not built");
    char *tmp = tu_tmpdir(), *q = golden("opt_b3_g32", ""), args[2048], *err = NULL;
    snprintf(args, sizeof(args), "export --model '%s' --format gptq --out '%s/g'", q, tmp);
    cr_assert_eq(tu_run_cli(args, &err), 0, "%s", err ? err : "");
    free(err);
    snprintf(args, sizeof(args), "%s/g/quantize_config.json", tmp);
    cr_assert(nt_file_exists(args));
    const char *bad[][3] = {{"--format gptq --out X", "2", "required"},
                            {"--model Q --format awq --out X", "2", "unsupported --format 'awq'"},
                            {"--model Q --format gptq --out G", "1", "not empty"}};
    for (int i = 0; i < 3; i++) {
        char opts[1024] = "";
        for (const char *s = bad[i][0]; *s; s++) { // Q: the checkpoint, G: the existing export, X: a new dir
            size_t n = strlen(opts);
            if (*s == 'Q') snprintf(opts + n, sizeof(opts) - n, "'%s'", q);
            else if (*s == 'G') snprintf(opts + n, sizeof(opts) - n, "'%s/g'", tmp);
            else if (*s == 'X') snprintf(opts + n, sizeof(opts) - n, "'%s/x'", tmp);
            else snprintf(opts + n, sizeof(opts) - n, "%c", *s);
        }
        snprintf(args, sizeof(args), "export %s", opts);
        int rc = tu_run_cli(args, &err);
        cr_assert_eq(rc, atoi(bad[i][1]), "%s: exit %d: %s", args, rc, err ? err : "");
        cr_assert(err && strstr(err, bad[i][2]) && strchr(err, '\n') == err + strlen(err) - 1, "%s: '%s'", args,
                  err ? err : "");
        free(err);
    }
    tu_rmtree(tmp);
    free(tmp);
    free(q);
}
