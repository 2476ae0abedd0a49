// gptq_export.c: GPTQ-format export of a quantized checkpoint (gptq_export.h).
#define _POSIX_C_SOURCE 200809L
#include "gptq_export.h"

#include <stdlib.h>
#include <string.h>

#include "qdir.h"
#include "qtensors.h"
#include "transformer.h"

// The tensors being written and the buffers they point into.
typedef struct {
    nt_st_list list;
    nt_gptq_linear *lin;
    size_t n_lin, cap_lin;
} out_list;

int nt_gptq_export(const char *qdir, const char *out_dir, nt_qfmt fmt, nt_err *err) {
    if (fmt != NT_QFMT_GPTQ && fmt != NT_QFMT_GPTQ_V2)
        return nt_fail(err, "unsupported export format '%s' (supported: gptq, gptq_v2)", nt_qfmt_name(fmt));
    nt_qcheckpoint_info info;
    nt_config cfg_check;
    nt_safetensors *st = NULL;
    out_list L = {0};
    char *qc = NULL, *cfg = NULL;
    int rc = -1;
    char *cfg_path = nt_path_join(qdir, "config.json");
    int cfg_rc = nt_config_load(&cfg_check, cfg_path, err); // the architecture must be one normtweak knows
    free(cfg_path);
    if (cfg_rc || nt_qcheckpoint_info_read(qdir, &info, err)) goto done;
    if (!info.quantized) {
        nt_fail(err, "%s: not a quantized checkpoint (no quantize_config.json); run normtweak quantize first", qdir);
        goto done;
    }
    if (nt_st_open_dir(&st, qdir, err)) goto done;
    nt_model_quant mq = info.q;
    nt_qfmt_spec spec = {info.fmt, mq.wbits, mq.group_size, mq.sym, mq.act_order};
    bool desc_act = mq.act_order;
    size_t n_linear = 0;
    for (size_t i = 0; i < nt_st_count(st); i++) {
        const nt_st_tensor *t = nt_st_at(st, i);
        size_t len = strlen(t->name);
        if (len > 8 && strcmp(t->name + len - 8, ".qweight") == 0) {
            char base[288];
            if (len - 8 >= sizeof(base)) {
                nt_fail(err, "%s: tensor name '%s' is too long", qdir, t->name);
                goto done;
            }
            snprintf(base, sizeof(base), "%.*s", (int)(len - 8), t->name);
            nt_qlinear *q = NULL;
            if (nt_qfmt_read_qlinear(st, base, &spec, -1, -1, &q, err)) goto done;
            if (L.n_lin == L.cap_lin) {
                size_t cap = L.cap_lin ? 2 * L.cap_lin : 64;
                nt_gptq_linear *lin = realloc(L.lin, cap * sizeof(*lin));
                if (!lin) {
                    nt_qlinear_free(&q);
                    goto oom;
                }
                L.lin = lin;
                L.cap_lin = cap;
            }
            for (int k = 0; k < q->in; k++) // AutoGPTQ reads g_idx only with desc_act (else groups are contiguous)
                desc_act = desc_act || q->g_idx[k] != (q->group_size > 0 ? k / q->group_size : 0);
            nt_err e2;
            int r2 = nt_gptq_from_qlinear(&L.lin[L.n_lin], q, fmt, &e2);
            nt_qlinear_free(&q);
            if (r2) {
                nt_fail(err, "%s: layer '%s' cannot be exported to GPTQ format: %s", qdir, base, e2.msg);
                goto done;
            }
            if (nt_gptq_list_add(&L.list, base, &L.lin[L.n_lin++])) goto oom;
            n_linear++;
        } else if (!nt_qtensor_is_part(st, t->name)) { // embeddings, norms, biases, lm_head: as they are
            if (nt_st_list_add(&L.list, t->name, t->dtype, t->ndim, t->shape, t->data, t->nbytes)) goto oom;
        }
    }
    if (n_linear == 0) {
        nt_fail(err, "%s: quantize_config.json names a quantized checkpoint, but no tensor is a quantized linear "
                "(no *.qweight)", qdir);
        goto done;
    }
    mq.act_order = desc_act;
    char name[256];
    nt_path_basename(qdir, name, sizeof(name));
    qc = nt_quantize_config_text(&mq, fmt, info.source[0] ? info.source : name);
    if (!qc) goto oom;
    cfg = nt_config_with_quantization_text(qdir, &mq, fmt, err);
    if (!cfg) goto done;
    {
        const char *meta[] = {"format", "pt", "quantized_by", "normtweak"};
        nt_qcheckpoint_text texts[2] = {{"config.json", cfg, 0}, {"quantize_config.json", qc, 0}};
        if (nt_qcheckpoint_write_dir(out_dir, qdir, L.list.t, L.list.n, meta, 2, texts, 2, err)) goto done;
    }
    rc = 0;
    goto done;
oom:
    nt_fail(err, "out of memory exporting %s", qdir);
done:
    for (size_t i = 0; i < L.n_lin; i++) nt_gptq_linear_free(&L.lin[i]);
    free(L.lin);
    nt_st_list_free(&L.list);
    free(qc);
    free(cfg);
    nt_st_close(&st);
    return rc;
}
