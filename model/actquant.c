// actquant.c: activation quantization of a linear's input with an exact integer product (actquant.h).
#include "actquant.h"

#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

const char *nt_act_scheme_name(nt_act_scheme s) { return s == NT_ACT_STATIC ? "static" : "dynamic"; }

int nt_act_scheme_parse(const char *name, nt_act_scheme *s) {
    if (name && strcmp(name, "dynamic") == 0) return *s = NT_ACT_DYNAMIC, 0;
    if (name && strcmp(name, "static") == 0) return *s = NT_ACT_STATIC, 0;
    return -1;
}

void nt_actq_free(nt_actq **ap) {
    nt_actq *a = ap ? *ap : NULL;
    if (!a) return;
    free(a->wint);
    free(a->wscale);
    free(a->col);
    free(a->gstart);
    free(a->noise);
    free(a);
    *ap = NULL;
}

int nt_actq_make(nt_actq **out, const nt_qlinear *q, int out_dim, int in_dim, int bits, nt_act_scheme scheme,
                 float scale, nt_err *err) {
    *out = NULL;
    if (bits < 2 || bits > 8) return nt_fail(err, "activation bits %d: expected 4 or 8", bits);
    if (scheme == NT_ACT_STATIC && !(scale > 0.0f && isfinite(scale)))
        return nt_fail(err, "static activation scale %g: must be positive and finite", (double)scale);
    if (q && (q->out != out_dim || q->in != in_dim))
        return nt_fail(err, "activation quantization: packed %dx%d for a %dx%d linear", q->out, q->in, out_dim, in_dim);
    nt_actq *a = calloc(1, sizeof(nt_actq));
    if (!a) return nt_fail(err, "out of memory");
    *a = (nt_actq){.bits = bits, .scheme = scheme, .scale = scale, .qmax = nt_actq_qmax(bits), .in = in_dim,
                   .out = out_dim, .mode = NT_ACTQ_ROUND};
    if (!q) {
        *out = a;
        return 0;
    }
    size_t N = (size_t)out_dim, K = (size_t)in_dim;
    int G = q->n_groups;
    uint8_t *codes = malloc(N * K);
    a->wint = malloc(N * K * sizeof(float));
    a->wscale = malloc((size_t)G * N * sizeof(float));
    a->col = malloc(K * sizeof(int));
    a->gstart = calloc((size_t)G + 1, sizeof(int));
    if (!codes || !a->wint || !a->wscale || !a->col || !a->gstart) {
        free(codes);
        nt_actq_free(&a);
        return nt_fail(err, "out of memory for the integer weights of a %dx%d linear", out_dim, in_dim);
    }
    a->n_groups = G;
    // columns in group order (stable: ascending k within a group), by counting
    for (size_t k = 0; k < K; k++) a->gstart[q->g_idx[k] + 1]++;
    for (int g = 0; g < G; g++) a->gstart[g + 1] += a->gstart[g];
    int *fill = malloc((size_t)G * sizeof(int));
    if (!fill) {
        free(codes);
        nt_actq_free(&a);
        return nt_fail(err, "out of memory");
    }
    memcpy(fill, a->gstart, (size_t)G * sizeof(int));
    for (size_t k = 0; k < K; k++) a->col[fill[q->g_idx[k]]++] = (int)k;
    free(fill);
    nt_qlinear_unpack(q, codes);
    int sym_zero = nt_qtraits_get(q->bits)->sym_zero, wmax = 1;
    for (size_t n = 0; n < N; n++)
        for (size_t p = 0; p < K; p++) {
            int k = a->col[p], g = q->g_idx[k];
            int z = q->zeros ? q->zeros[(size_t)g * N + n] : sym_zero;
            int v = (int)codes[n * K + k] - z;
            a->wint[n * K + p] = (float)v;
            if (abs(v) > wmax) wmax = abs(v);
        }
    for (size_t i = 0; i < (size_t)G * N; i++) a->wscale[i] = nt_f16_to_f32(q->scales[i]);
    free(codes);
    long run = (1L << 24) / ((long)a->qmax * wmax);
    a->run = run < 1 ? 1 : (run > in_dim ? in_dim : (int)run);
    *out = a;
    return 0;
}

float nt_actq_quantize_row(const nt_actq *a, const float *x, float *xq) {
    float s = a->scale;
    if (a->scheme == NT_ACT_DYNAMIC) {
        float amax = 0.0f;
        for (int k = 0; k < a->in; k++) amax = fmaxf(amax, fabsf(x[k]));
        s = amax > 0.0f ? amax / (float)a->qmax : 1.0f;
    }
    float lim = (float)a->qmax;
    for (int k = 0; k < a->in; k++) {
        float v = rintf(x[k] / s);
        xq[k] = v < -lim ? -lim : (v > lim ? lim : v);
    }
    return s;
}

int nt_actq_set_mode(nt_actq *a, nt_actq_mode mode, int rows, nt_err *err) {
    free(a->noise);
    a->noise = NULL;
    a->noise_rows = 0;
    a->mode = mode;
    if (mode == NT_ACTQ_ROUND) return 0;
    a->noise = calloc((size_t)rows * a->in, sizeof(float));
    if (!a->noise) return nt_fail(err, "out of memory for the noise of %d rows", rows);
    a->noise_rows = rows;
    return 0;
}

enum { CHUNK_ROWS = 256 };

static void add_bias(const float *b, float *y, int n, int out) {
    if (!b) return;
#pragma omp parallel for if (n > 1)
    for (int t = 0; t < n; t++)
        for (int j = 0; j < out; j++) y[(size_t)t * out + j] += b[j];
}

void nt_actq_forward(nt_actq *a, const float *W, const float *b, const float *x, int n, float *y) {
    int K = a->in, N = a->out;
    if (a->mode == NT_ACTQ_REPLAY) { // the straight-through surrogate: (x + e) W^T in fp32
        NT_ASSERT(n <= a->noise_rows);
        float *xe = malloc((size_t)n * K * sizeof(float));
        NT_ASSERT(xe);
        for (size_t i = 0; i < (size_t)n * K; i++) xe[i] = x[i] + a->noise[i];
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, N, K, 1.0f, xe, K, W, K, 0.0f, y, N);
        free(xe);
        add_bias(b, y, n, N);
        return;
    }
    int rows = n < CHUNK_ROWS ? n : CHUNK_ROWS;
    float *xq = malloc((size_t)rows * K * sizeof(float)), *sx = malloc((size_t)rows * sizeof(float));
    float *part = a->wint ? malloc((size_t)rows * N * sizeof(float)) : NULL;
    double *acc = a->wint ? malloc((size_t)rows * N * sizeof(double)) : NULL;
    double *gsum = a->wint ? malloc((size_t)rows * N * sizeof(double)) : NULL;
    NT_ASSERT(xq && sx && (!a->wint || (part && acc && gsum)));
    for (int t0 = 0; t0 < n; t0 += rows) {
        int m = n - t0 < rows ? n - t0 : rows;
        const float *xc = x + (size_t)t0 * K;
        float *yc = y + (size_t)t0 * N;
        float *row = malloc((size_t)K * sizeof(float));
        NT_ASSERT(row);
        for (int t = 0; t < m; t++) { // codes in the integer weights' column order
            sx[t] = nt_actq_quantize_row(a, xc + (size_t)t * K, row);
            float *dst = xq + (size_t)t * K;
            if (a->wint)
                for (int p = 0; p < K; p++) dst[p] = row[a->col[p]];
            else
                memcpy(dst, row, (size_t)K * sizeof(float));
            if (a->mode == NT_ACTQ_RECORD && t0 + t < a->noise_rows)
                for (int k = 0; k < K; k++)
                    a->noise[(size_t)(t0 + t) * K + k] = sx[t] * row[k] - xc[(size_t)t * K + k];
        }
        free(row);
        if (!a->wint) { // float weights: fake-quantized activations
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, m, N, K, 1.0f, xq, K, W, K, 0.0f, yc, N);
            for (int t = 0; t < m; t++)
                for (int j = 0; j < N; j++) yc[(size_t)t * N + j] *= sx[t];
            continue;
        }
        memset(acc, 0, (size_t)m * N * sizeof(double));
        for (int g = 0; g < a->n_groups; g++) {
            memset(gsum, 0, (size_t)m * N * sizeof(double));
            for (int p0 = a->gstart[g]; p0 < a->gstart[g + 1]; p0 += a->run) {
                int kc = a->gstart[g + 1] - p0 < a->run ? a->gstart[g + 1] - p0 : a->run;
                // exact: every partial sum is an integer of magnitude <= qmax * wmax * run <= 2^24
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, m, N, kc, 1.0f, xq + p0, K, a->wint + p0, K,
                            0.0f, part, N);
                for (size_t i = 0; i < (size_t)m * N; i++) gsum[i] += part[i];
            }
            const float *sg = a->wscale + (size_t)g * N;
#pragma omp parallel for if (m > 1)
            for (int t = 0; t < m; t++)
                for (int j = 0; j < N; j++) acc[(size_t)t * N + j] += (double)sg[j] * gsum[(size_t)t * N + j];
        }
        for (int t = 0; t < m; t++)
            for (int j = 0; j < N; j++) yc[(size_t)t * N + j] = (float)((double)sx[t] * acc[(size_t)t * N + j]);
    }
    free(xq);
    free(sx);
    free(part);
    free(acc);
    free(gsum);
    add_bias(b, y, n, N);
}
