// actq_layout.c: the load-time layout of a linear with quantized activations for the device (gpu.h's
// nt_actq_layout; the kernels are in actq.cu), built from the CPU's own nt_actq (model/actquant.h), so both
// multiply the very same integers. Plain C, built with or without CUDA.
#include <string.h>

#include "gpu.h"

// The int32 sums of one slice stay exact while Lg * qmax * 128 < 2^31 (|xq| <= qmax, |w8| <= 128).
#define SLICE_LIMIT INT32_MAX

void nt_actq_layout_free(nt_actq_layout *lay) {
    if (!lay) return;
    free(lay->col);
    free(lay->w8);
    free(lay->corr);
    free(lay->wscale);
    memset(lay, 0, sizeof *lay);
}

int nt_actq_layout_make(nt_actq_layout *lay, const nt_actq *a, nt_err *err) {
    memset(lay, 0, sizeof *lay);
    if (!a->wint)
        return nt_fail(err, "activation quantization of a float linear (%dx%d, no packed weights): the device "
                            "multiplies integer weights only", a->out, a->in);
    if (a->mode != NT_ACTQ_ROUND) return nt_fail(err, "activation quantization: the noise tape is CPU-only");
    const int N = a->out, K = a->in, G = a->n_groups;
    int longest = 0;
    for (int g = 0; g < G; g++) {
        int len = a->gstart[g + 1] - a->gstart[g];
        longest = len > longest ? len : longest;
    }
    int Lg = (longest + 15) / 16 * 16;
    if (Lg == 0) Lg = 16;
    if ((int64_t)Lg * a->qmax * 128 > SLICE_LIMIT)
        return nt_fail(err, "activation quantization: a group of %d columns with %d-bit codes could overflow the int32 "
                            "sums", longest, a->bits);
    if (G > 65535) return nt_fail(err, "activation quantization: %d groups (the device takes at most 65535)", G);
    *lay = (nt_actq_layout){.N = N, .K = K, .Np = (N + 3) / 4 * 4, .G = G, .Lg = Lg, .Kp = G * Lg, .qmax = a->qmax,
                            .is_static = a->scheme == NT_ACT_STATIC, .scale = a->scale};
    const size_t Kp = (size_t)lay->Kp, GN = (size_t)G * N;
    lay->col = malloc(Kp * sizeof *lay->col);
    lay->w8 = calloc((size_t)lay->Np * Kp, 1);
    lay->corr = calloc(GN, sizeof *lay->corr);
    lay->wscale = malloc(GN * sizeof *lay->wscale);
    if (!lay->col || !lay->w8 || !lay->corr || !lay->wscale) {
        nt_actq_layout_free(lay);
        return nt_fail(err, "out of memory for the device layout of a %dx%d linear", N, K);
    }
    memcpy(lay->wscale, a->wscale, GN * sizeof *lay->wscale);
    for (size_t p = 0; p < Kp; p++) lay->col[p] = -1;
    bool any_corr = false;
    for (int g = 0; g < G; g++) {
        const int p0 = a->gstart[g], len = a->gstart[g + 1] - p0;
        for (int i = 0; i < len; i++) lay->col[(size_t)g * Lg + i] = a->col[p0 + i];
        for (int n = 0; n < N; n++) {
            const float *w = a->wint + (size_t)n * K + p0; // integer-valued: q - zero
            int lo = 0, hi = 0;
            for (int i = 0; i < len; i++) {
                int v = (int)w[i];
                lo = i == 0 || v < lo ? v : lo;
                hi = i == 0 || v > hi ? v : hi;
            }
            if (hi - lo > 255) {
                nt_actq_layout_free(lay);
                return nt_fail(err, "activation quantization: integer weights %d..%d in one group do not fit int8 "
                                    "with one offset", lo, hi);
            }
            const int c = lo >= -128 && hi <= 127 ? 0 : lo + 128;
            lay->corr[(size_t)g * N + n] = c;
            any_corr |= c != 0;
            int8_t *dst = lay->w8 + (size_t)n * Kp + (size_t)g * Lg;
            for (int i = 0; i < len; i++) dst[i] = (int8_t)((int)w[i] - c);
        }
    }
    if (!any_corr) {
        free(lay->corr);
        lay->corr = NULL;
    }
    return 0;
}
