// qconfig.c: reading and writing quantize_config.json (qconfig.h).
#define _POSIX_C_SOURCE 200809L
#include "qconfig.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"
#include "qformat.h"

const char *nt_qfmt_name(nt_qfmt fmt) {
    return fmt == NT_QFMT_GPTQ ? "gptq" : fmt == NT_QFMT_GPTQ_V2 ? "gptq_v2" : "normtweak";
}

int nt_qfmt_parse(const char *name, nt_qfmt *fmt) {
    for (int f = NT_QFMT_NORMTWEAK; f <= NT_QFMT_GPTQ_V2; f++)
        if (strcmp(name, nt_qfmt_name((nt_qfmt)f)) == 0) {
            *fmt = (nt_qfmt)f;
            return 0;
        }
    return -1;
}

nt_model_quant nt_model_quant_fp(void) {
    nt_model_quant q = {.wbits = 16, .abits = 16};
    snprintf(q.method, sizeof(q.method), "fp");
    return q;
}

// The format the file names: its "checkpoint_format", or "gptq" when it has none but "quant_method": "gptq"
// (AutoGPTQ <= 0.7 writes no checkpoint_format). Marlin, AWQ and other formats are errors naming path.
static int format_from_json(const cJSON *root, const char *path, nt_qfmt *fmt, nt_err *err) {
    const cJSON *qm = nt_json_item(root, "quant_method");
    if (cJSON_IsTrue(nt_json_item(root, "is_marlin_format")))
        return nt_fail(err, "%s: Marlin-format GPTQ checkpoints (is_marlin_format) are not supported", path);
    if (qm && cJSON_IsString(qm) && strcmp(qm->valuestring, "gptq") != 0)
        return nt_fail(err, "%s: unsupported quant_method '%s' (supported: gptq)", path, qm->valuestring);
    const char *name = nt_json_str(root, "checkpoint_format", NULL);
    if (!name && qm && cJSON_IsString(qm)) name = "gptq";
    if (name && nt_qfmt_parse(name, fmt) == 0) return 0;
    return nt_fail(err, "%s: unsupported checkpoint_format '%s' (supported: normtweak, gptq, gptq_v2)", path,
                   name ? name : "missing");
}

int nt_qcheckpoint_info_read(const char *dir, nt_qcheckpoint_info *info, nt_err *err) {
    memset(info, 0, sizeof(*info));
    info->q = nt_model_quant_fp();
    char *path = nt_path_join(dir, "quantize_config.json");
    bool hf = !nt_file_exists(path); // transformers' GPTQ checkpoints: config.json's quantization_config only
    if (hf) {
        free(path);
        path = nt_path_join(dir, "config.json");
    }
    cJSON *root = nt_json_read_file(path, err);
    int rc = -1;
    if (!root) goto done;
    if (hf) {
        cJSON *qc = cJSON_DetachItemFromObjectCaseSensitive(root, "quantization_config");
        cJSON_Delete(root);
        root = qc;
        if (!root) { // a float checkpoint
            rc = 0;
            goto done;
        }
    }
    if (format_from_json(root, path, &info->fmt, err)) goto done;
    nt_model_quant *q = &info->q;
    if (nt_json_int(root, path, (const char *[]){"bits", NULL}, -1, &q->wbits, err)) goto done;
    const cJSON *g = nt_json_item(root, "group_size");
    if (!g || !cJSON_IsNumber(g) || (g->valueint != -1 && g->valueint <= 0)) {
        nt_fail(err, "%s: 'group_size' must be -1 or a positive integer", path);
        goto done;
    }
    q->group_size = g->valueint;
    bool sym_default = info->fmt != NT_QFMT_NORMTWEAK; // AutoGPTQ's default is sym
    if (nt_json_bool(root, path, "sym", sym_default, &q->sym, err) ||
        nt_json_bool(root, path, "desc_act", false, &q->act_order, err) ||
        nt_json_bool(root, path, "static_groups", false, &q->static_groups, err))
        goto done;
    const char *scheme = nt_json_str(root, "act_scheme", "dynamic");
    if (nt_json_int(root, path, (const char *[]){"abits", NULL}, 16, &q->abits, err)) goto done;
    if (q->abits != 16 && q->abits != 8 && q->abits != 4) {
        nt_fail(err, "%s: 'abits' must be 16, 8 or 4, got %d", path, q->abits);
        goto done;
    }
    if (strcmp(scheme, "dynamic") != 0 && strcmp(scheme, "static") != 0) {
        nt_fail(err, "%s: 'act_scheme' must be dynamic or static, got '%s'", path, scheme);
        goto done;
    }
    q->act_static = q->abits < 16 && strcmp(scheme, "static") == 0;
    nt_err e2;
    if (nt_qformat_check(32, 32 * (q->group_size > 0 ? q->group_size : 1), q->wbits, q->group_size, &e2)) {
        nt_fail(err, "%s: %s", path, e2.msg);
        goto done;
    }
    snprintf(q->method, sizeof(q->method), "%s", nt_json_str(root, "method", "gptq"));
    snprintf(q->calib, sizeof(q->calib), "%s", nt_json_str(root, "calib", ""));
    snprintf(q->options, sizeof(q->options), "%s", nt_json_str(root, "options", ""));
    const char *source = nt_json_str(root, "source", "");
    if (!strchr(source, '/')) snprintf(info->source, sizeof(info->source), "%s", source);
    info->quantized = true;
    rc = 0;
done:
    if (rc) info->q = nt_model_quant_fp();
    cJSON_Delete(root);
    free(path);
    return rc;
}

// The keys GPTQ loaders read (AutoGPTQ's BaseQuantizeConfig, transformers' GPTQConfig).
static cJSON *gptq_config_json(const nt_model_quant *q, nt_qfmt fmt) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "bits", q->wbits);
    cJSON_AddNumberToObject(o, "group_size", q->group_size);
    cJSON_AddNumberToObject(o, "damp_percent", 0.01);
    cJSON_AddBoolToObject(o, "desc_act", q->act_order);
    cJSON_AddBoolToObject(o, "static_groups", q->static_groups);
    cJSON_AddBoolToObject(o, "sym", q->sym);
    cJSON_AddBoolToObject(o, "true_sequential", true);
    cJSON_AddStringToObject(o, "quant_method", "gptq");
    cJSON_AddStringToObject(o, "checkpoint_format", nt_qfmt_name(fmt));
    return o;
}

char *nt_quantize_config_text(const nt_model_quant *q, nt_qfmt fmt, const char *source) {
    cJSON *o;
    if (fmt == NT_QFMT_NORMTWEAK) {
        o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "checkpoint_format", nt_qfmt_name(fmt));
        cJSON_AddNumberToObject(o, "bits", q->wbits);
        cJSON_AddNumberToObject(o, "group_size", q->group_size);
        cJSON_AddBoolToObject(o, "sym", q->sym);
        cJSON_AddBoolToObject(o, "desc_act", q->act_order);
        cJSON_AddBoolToObject(o, "static_groups", q->static_groups);
    } else {
        o = gptq_config_json(q, fmt);
    }
    if (q->abits < 16) {
        cJSON_AddNumberToObject(o, "abits", q->abits);
        cJSON_AddStringToObject(o, "act_scheme", q->act_static ? "static" : "dynamic");
    }
    cJSON_AddStringToObject(o, "method", q->method);
    cJSON_AddStringToObject(o, "calib", q->calib);
    cJSON_AddStringToObject(o, "options", q->options);
    cJSON_AddStringToObject(o, "source", source);
    cJSON_AddStringToObject(o, "normtweak_commit", nt_build_commit());
    char *text = cJSON_Print(o);
    cJSON_Delete(o);
    return text;
}

char *nt_config_with_quantization_text(const char *dir, const nt_model_quant *q, nt_qfmt fmt, nt_err *err) {
    char *path = nt_path_join(dir, "config.json");
    cJSON *root = nt_json_read_file(path, err);
    char *out = NULL;
    if (root && !cJSON_IsObject(root)) {
        nt_fail(err, "%s: not a JSON object", path);
    } else if (root) {
        cJSON_DeleteItemFromObjectCaseSensitive(root, "quantization_config");
        cJSON_AddItemToObject(root, "quantization_config", gptq_config_json(q, fmt));
        out = cJSON_Print(root);
        if (!out) nt_fail(err, "%s: out of memory", path);
    }
    cJSON_Delete(root);
    free(path);
    return out;
}
