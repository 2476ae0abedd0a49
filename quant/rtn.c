// rtn.c: round-to-nearest quantization (GPTQ's "nearest" baseline, extended to groups): every output channel, or
// every group of group_size consecutive input columns of it (the last group shorter when group_size does not divide
// the input dimension), gets its own quantizer parameters from its own values.
// Reference code; rows are independent and run in parallel.
#include <string.h>

#include "method.h"
#include "quant.h"

int nt_rtn_quantize(nt_qlinear **out_q, float *Wq, const float *W, int out, int in, const nt_qconfig *c,
                    nt_err *err) {
    *out_q = NULL;
    if (nt_qconfig_check(c, err) || nt_qformat_check(out, in, c->bits, c->group_size, err)) return -1;
    for (size_t i = 0; i < (size_t)out * in; i++)
        if (!isfinite(W[i]))
            return nt_fail(err, "weight (%zu, %zu) is %g: cannot quantize a non-finite weight", i / in, i % in, W[i]);
    nt_qlinear *q;
    if (nt_qlinear_alloc(&q, out, in, c->bits, c->group_size, c->sym, false, err)) return -1;
    const int gs = c->group_size > 0 ? c->group_size : in, ng = q->n_groups, maxq = nt_qtraits_get(c->bits)->maxq;
    float *scale = malloc((size_t)ng * out * sizeof *scale), *zero = malloc((size_t)ng * out * sizeof *zero);
    uint8_t *codes = malloc((size_t)out * in);
    int rc = -1;
    if (!scale || !zero || !codes) {
        nt_fail(err, "out of memory quantizing a %d x %d linear", out, in);
        goto done;
    }
#pragma omp parallel for schedule(dynamic, 16) if ((size_t)out * in >= (1u << 16))
    for (int r = 0; r < out; r++) {
        for (int g = 0; g < ng; g++) {
            const int len = in - g * gs < gs ? in - g * gs : gs; // the last group may be shorter
            const float *x = W + (size_t)r * in + (size_t)g * gs;
            size_t pi = (size_t)g * out + r;
            nt_quant_find_params(c, x, (size_t)len, 1, &scale[pi], &zero[pi]);
            uint8_t *qc = codes + (size_t)r * in + (size_t)g * gs;
            for (int j = 0; j < len; j++) {
                qc[j] = nt_quant_code(x[j], scale[pi], zero[pi], maxq);
                if (Wq) Wq[(size_t)r * in + (size_t)g * gs + j] = nt_quant_dequant(qc[j], scale[pi], zero[pi]);
            }
        }
    }
    if (nt_qlinear_set_params(q, scale, zero, err)) goto done;
    nt_qlinear_pack(q, codes);
    rc = 0;
done:
    free(scale);
    free(zero);
    free(codes);
    if (rc) nt_qlinear_free(&q);
    *out_q = q;
    return rc;
}

// ------------------------------------------------------------------------------------------ as a quantizer
// The quantizer's config from the method options (shared with GPTQ, which uses the same Quantizer).
nt_qconfig nt_qconfig_of_opts(const nt_quant_opts *o) {
    nt_qconfig qc = nt_qconfig_make(o->wbits, o->group_size, o->sym);
    qc.mse = o->mse;
    qc.scale_f16 = !o->fp32_scales;
    return qc;
}

static int rtn_quantize(nt_qlinear **q, float *Wq, const float *W, int out, int in, const float *H,
                        const nt_quant_opts *o, nt_err *err) {
    (void)H;
    nt_qconfig qc = nt_qconfig_of_opts(o);
    return nt_rtn_quantize(q, Wq, W, out, in, &qc, err);
}

static void rtn_describe(const nt_quant_opts *o, char *buf, size_t cap) {
    if (o->sym) nt_opts_append(buf, cap, "sym");
    if (o->mse) nt_opts_append(buf, cap, "mse");
    if (o->fp32_scales) nt_opts_append(buf, cap, "fp32_scales");
}

const nt_quantizer nt_quantizer_rtn = {"rtn", false, false, rtn_quantize, rtn_describe};
