// quantizer.c: GPTQ's Quantizer (IST-DASLab/gptq quant.py) for one row of values: min/max scale and zero point,
// symmetric or asymmetric, with the optional MSE-optimal clipping search. Reference code, in float32 with the
// reference's order of operations so that results match a PyTorch run bit for bit (apart from the MSE search's
// error sums, accumulated here in double).
#include "quant.h"

nt_qconfig nt_qconfig_make(int bits, int group_size, bool sym) {
    return (nt_qconfig){.bits = bits,
                        .group_size = group_size,
                        .sym = sym,
                        .mse = false,
                        .mse_norm = 2.4f,
                        .mse_grid = 100,
                        .mse_maxshrink = 0.8f,
                        .scale_f16 = false};
}

int nt_qconfig_check(const nt_qconfig *c, nt_err *err) {
    if (!nt_qtraits_get(c->bits)) return nt_fail(err, "unsupported bit width %d (supported: 2, 3, 4, 8)", c->bits);
    if (c->group_size != -1 && c->group_size != 32 && c->group_size != 64 && c->group_size != 128)
        return nt_fail(err, "unsupported group size %d (supported: 32, 64, 128, or -1 for per channel)",
                       c->group_size);
    if (c->mse && !(c->mse_grid >= 1 && c->mse_maxshrink > 0.0f && c->mse_maxshrink <= 1.0f && c->mse_norm > 0.0f))
        return nt_fail(err, "bad MSE search settings (grid %d, maxshrink %g, norm %g)", c->mse_grid,
                       (double)c->mse_maxshrink, (double)c->mse_norm);
    return 0;
}

// With scale_f16 every scale the quantizer tries is an fp16 value; one that underflows becomes the smallest one.
static float round_scale(const nt_qconfig *c, float s) {
    if (!c->scale_f16) return s;
    float r = nt_f16_to_f32(nt_f32_to_f16(s));
    return r > 0.0f ? r : 5.9604645e-08f; // 2^-24, the smallest fp16 subnormal
}

void nt_quant_find_params(const nt_qconfig *c, const float *x, size_t n, size_t stride, float *scale_out,
                          float *zero_out) {
    const nt_qtraits *t = nt_qtraits_get(c->bits);
    NT_ASSERT(t != NULL);
    const float maxq = (float)t->maxq;
    float xmin = 0.0f, xmax = 0.0f; // the range always contains 0
    for (size_t i = 0; i < n; i++) {
        float v = x[i * stride];
        xmin = v < xmin ? v : xmin;
        xmax = v > xmax ? v : xmax;
    }
    if (c->sym) {
        xmax = fabsf(xmin) > xmax ? fabsf(xmin) : xmax;
        if (xmin < 0.0f) xmin = -xmax; // GPTQ leaves xmin = 0 when no value is negative
    }
    if (xmin == 0.0f && xmax == 0.0f) {
        xmin = -1.0f;
        xmax = 1.0f;
    }
    const float sym_zero = (float)t->sym_zero;
    float scale = round_scale(c, (xmax - xmin) / maxq);
    float zero = c->sym ? sym_zero : rintf(-xmin / scale);
    if (c->mse) {
        double best = INFINITY;
        int steps = (int)floor((double)c->mse_maxshrink * c->mse_grid + 1e-6);
        for (int i = 0; i < steps; i++) {
            float p = (float)(1.0 - (double)i / c->mse_grid);
            float xmin1 = p * xmin, xmax1 = p * xmax;
            float scale1 = round_scale(c, (xmax1 - xmin1) / maxq);
            float zero1 = c->sym ? sym_zero : rintf(-xmin1 / scale1);
            double e = 0.0;
            for (size_t j = 0; j < n; j++) {
                float v = x[j * stride];
                float d = fabsf(nt_quant_dequant(nt_quant_code(v, scale1, zero1, t->maxq), scale1, zero1) - v);
                e += (double)powf(d, c->mse_norm);
            }
            if (e < best) {
                best = e;
                scale = scale1;
                zero = zero1;
            }
        }
    }
    *scale_out = scale;
    *zero_out = zero;
}
