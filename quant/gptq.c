// gptq.c: GPTQ (Frantar, Ashkboos, Hoefler, Alistarh 2022), a faithful float32 transcription of the reference
// implementation's fasterquant (IST-DASLab/gptq gptq.py) plus its Hessian accumulation (add_batch). CPU code,
// made fast where it matters: the weights are kept transposed, Wt (in, out), so that a column of W is a contiguous
// row; the O(out * blocksize^2) column loop of each lazy batch runs in parallel over tiles of output channels
// (rows of W are independent within a block); the trailing update of each block and the Hessian are BLAS calls.
// Timing-free: the caller (the block driver) measures and reports.
#include <cblas.h>
#include <limits.h>
#include <string.h>

#include "method.h"
#include "quant.h"

// LAPACK from libopenblas (Debian ships no lapacke.h with it): the Fortran interface, column-major, with the hidden
// length of the character argument that gfortran-compiled routines expect (C implementations ignore it).
extern void spotrf_(const char *uplo, const int *n, float *a, const int *lda, int *info, size_t uplo_len);
extern void spotri_(const char *uplo, const int *n, float *a, const int *lda, int *info, size_t uplo_len);

// Output channels per task of the column loop: a (blocksize x TILE) fp32 slice of the block (128 KiB at 128 x 256)
// stays in L2 while every column of the block updates it.
#define GPTQ_TILE 256

nt_gptq_config nt_gptq_config_make(int bits, int group_size, bool sym) {
    return (nt_gptq_config){.quant = nt_qconfig_make(bits, group_size, sym),
                            .percdamp = 0.01f,
                            .blocksize = 128,
                            .act_order = false,
                            .static_groups = false};
}

// ------------------------------------------------------------------------------------------------ Hessian
int nt_gptq_hessian_add(float *H, int in, long *nsamples, const float *X, long n_rows, long batch, nt_err *err) {
    if (in < 1 || n_rows < 0 || n_rows > INT_MAX || batch < 1 || *nsamples < 0)
        return nt_fail(err, "GPTQ Hessian: bad sizes (in %d, rows %ld, batch %ld, nsamples so far %ld)", in, n_rows,
                       batch, *nsamples);
    long ns = *nsamples;
    if (ns == 0) memset(H, 0, (size_t)in * in * sizeof *H); // the first call overwrites H
    float beta = (float)((double)ns / (double)(ns + batch));
    ns += batch;
    float alpha = (float)(2.0 / (double)ns);
    // H = beta H + alpha X^T X on the upper triangle, then mirrored so that H stays a full symmetric matrix
    cblas_ssyrk(CblasRowMajor, CblasUpper, CblasTrans, in, (int)n_rows, alpha, X, in, beta, H, in);
#pragma omp parallel for schedule(dynamic, 16) if (in >= 512)
    for (int i = 1; i < in; i++)
        for (int j = 0; j < i; j++) H[(size_t)i * in + j] = H[(size_t)j * in + i];
    *nsamples = ns;
    return 0;
}

// ---------------------------------------------------------------------------------------------- helpers
typedef struct {
    float v;
    int i;
} diag_entry;

// Descending value; ties keep column order (torch.argsort is not stable; the reference never relies on ties).
static int cmp_diag_desc(const void *a, const void *b) {
    const diag_entry *x = a, *y = b;
    if (x->v != y->v) return x->v > y->v ? -1 : 1;
    return (x->i > y->i) - (x->i < y->i);
}

// H^-1's upper Cholesky factor, in place, as the reference computes it (cholesky, cholesky_inverse, cholesky
// upper). A is symmetric and row-major, so LAPACK's column-major 'L' is our upper triangle: after the three
// calls the row-major upper triangle (j >= i) holds U with H^-1 = U^T U; the lower triangle is stale.
static int hinv_upper_cholesky(float *A, int n, float percdamp, nt_err *err) {
    int info = 0;
    spotrf_("L", &n, A, &n, &info, 1);
    if (info > 0)
        return nt_fail(err, "GPTQ: the Hessian is not positive definite even after dampening (percdamp %g; leading "
                            "minor %d); raise percdamp or use more calibration data", (double)percdamp, info);
    NT_ASSERT(info == 0);
    spotri_("L", &n, A, &n, &info, 1);
    if (info > 0) return nt_fail(err, "GPTQ: the Hessian is singular (pivot %d)", info);
    NT_ASSERT(info == 0);
    spotrf_("L", &n, A, &n, &info, 1);
    if (info > 0)
        return nt_fail(err, "GPTQ: the inverse Hessian is not positive definite in float32 (leading minor %d); "
                            "raise percdamp", info);
    NT_ASSERT(info == 0);
    return 0;
}

// ------------------------------------------------------------------------------------------------- GPTQ
int nt_gptq_quantize(nt_qlinear **out_q, float *Wq, double *loss_out, const float *W, int out, int in, const float *H,
                     const nt_gptq_config *c, nt_err *err) {
    *out_q = NULL;
    const nt_qconfig *qc = &c->quant;
    if (nt_qconfig_check(qc, err) || nt_qformat_check(out, in, qc->bits, qc->group_size, err)) return -1;
    if (!(c->percdamp >= 0.0f) || c->blocksize < 1)
        return nt_fail(err, "GPTQ: bad settings (percdamp %g, blocksize %d)", (double)c->percdamp, c->blocksize);
    const int N = out, K = in;
    for (size_t i = 0; i < (size_t)N * K; i++)
        if (!isfinite(W[i]))
            return nt_fail(err, "GPTQ: weight (%zu, %zu) is %g: cannot quantize a non-finite weight", i / K, i % K,
                           W[i]);
    for (size_t i = 0; i < (size_t)K * K; i++)
        if (!isfinite(H[i])) return nt_fail(err, "GPTQ: Hessian entry (%zu, %zu) is %g", i / K, i % K, H[i]);

    const bool grouped = qc->group_size > 0, static_g = grouped && c->static_groups;
    const int gs = grouped ? qc->group_size : K, ng = nt_qgroups(K, qc->group_size), bs = c->blocksize;
    const int maxq = nt_qtraits_get(qc->bits)->maxq, ntiles = (N + GPTQ_TILE - 1) / GPTQ_TILE;

    float *Hinv = malloc((size_t)K * K * sizeof *Hinv);      // (K, K) permuted, damped H, then H^-1's upper factor
    float *Wt = malloc((size_t)K * N * sizeof *Wt);          // (K, N) permuted columns of W, trailing-updated
    float *W1 = malloc((size_t)bs * N * sizeof *W1);         // (bs, N) the block's working copy
    float *E1 = malloc((size_t)bs * N * sizeof *E1);         // (bs, N) the block's scaled errors
    float *scale = malloc((size_t)ng * N * sizeof *scale);   // (ng, N) fp32 params in group order
    float *zero = malloc((size_t)ng * N * sizeof *zero);     // (ng, N)
    uint8_t *codes_t = malloc((size_t)K * N);                // (K, N) codes in quantization order
    uint8_t *codes = malloc((size_t)N * K);                  // (N, K) codes in column order
    int *perm = malloc((size_t)K * sizeof *perm);            // (K) quantization order
    float *diag = malloc((size_t)K * sizeof *diag);          // (K) diag(H) with dead columns set to 1
    diag_entry *order = malloc((size_t)K * sizeof *order);   // (K)
    double *tile_loss = calloc((size_t)ntiles, sizeof *tile_loss);
    nt_qlinear *q = NULL;
    int rc = -1;
    if (!Hinv || !Wt || !W1 || !E1 || !scale || !zero || !codes_t || !codes || !perm || !diag || !order ||
        !tile_loss) {
        nt_fail(err, "GPTQ: out of memory for a %d x %d linear", N, K);
        goto done;
    }

    // Per-channel params come from the original W, before dead columns are zeroed (the reference's find_params
    // runs first). With groups they are recomputed per group below.
    const bool par = (size_t)N * K >= (1u << 16); // below this, waking the thread team costs more than the work
    if (!grouped) {
#pragma omp parallel for schedule(dynamic, 16) if (par)
        for (int r = 0; r < N; r++) nt_quant_find_params(qc, W + (size_t)r * K, (size_t)K, 1, &scale[r], &zero[r]);
    }
    // Dead inputs (never active in the calibration data): H_cc = 1, W[:, c] = 0.
    for (int k = 0; k < K; k++) {
        float h = H[(size_t)k * K + k];
        diag[k] = h == 0.0f ? 1.0f : h;
    }
#define W_LIVE(r, k) (H[(size_t)(k) * K + (k)] == 0.0f ? 0.0f : W[(size_t)(r) * K + (k)])
    if (static_g) { // params of the contiguous groups of the un-permuted (dead-zeroed) W
#pragma omp parallel for schedule(dynamic, 16) if (par)
        for (int r = 0; r < N; r++) {
            float buf[128];
            for (int g = 0; g < ng; g++) {
                const int len = K - g * gs < gs ? K - g * gs : gs; // the reference's W[:, i:i+groupsize] slice
                for (int k = 0; k < len; k++) buf[k] = W_LIVE(r, g * gs + k);
                nt_quant_find_params(qc, buf, (size_t)len, 1, &scale[(size_t)g * N + r], &zero[(size_t)g * N + r]);
            }
        }
    }
    for (int k = 0; k < K; k++) order[k] = (diag_entry){diag[k], k};
    if (c->act_order) qsort(order, (size_t)K, sizeof *order, cmp_diag_desc);
    for (int k = 0; k < K; k++) perm[k] = order[k].i;

    // Wt = W[:, perm]^T, in 64 x 64 tiles so that both sides stay in cache.
#pragma omp parallel for collapse(2) schedule(static) if (par)
    for (int j0 = 0; j0 < K; j0 += 64)
        for (int r0 = 0; r0 < N; r0 += 64)
            for (int j = j0; j < K && j < j0 + 64; j++)
                for (int r = r0; r < N && r < r0 + 64; r++) Wt[(size_t)j * N + r] = W_LIVE(r, perm[j]);
#undef W_LIVE
    // H[perm][:, perm] with the dead fix, then the dampening: percdamp * mean(diag).
    double dsum = 0.0;
    for (int k = 0; k < K; k++) dsum += diag[k];
    const float damp = c->percdamp * (float)(dsum / K);
#pragma omp parallel for schedule(static) if ((size_t)K * K >= (1u << 16))
    for (int i = 0; i < K; i++) {
        const float *src = H + (size_t)perm[i] * K;
        float *dst = Hinv + (size_t)i * K;
        for (int j = 0; j < K; j++) dst[j] = src[perm[j]];
        dst[i] = diag[perm[i]] + damp;
    }
    if (hinv_upper_cholesky(Hinv, K, c->percdamp, err)) goto done;

    for (int i1 = 0; i1 < K; i1 += bs) {
        const int i2 = i1 + bs < K ? i1 + bs : K, count = i2 - i1;
        memcpy(W1, Wt + (size_t)i1 * N, (size_t)count * N * sizeof *W1);
#pragma omp parallel for schedule(dynamic, 1) if (ntiles > 1)
        for (int t = 0; t < ntiles; t++) {
            const int r0 = t * GPTQ_TILE, r1 = r0 + GPTQ_TILE < N ? r0 + GPTQ_TILE : N;
            double lsum = 0.0;
            for (int i = 0; i < count; i++) {
                const int col = i1 + i;
                if (grouped && !static_g && col % gs == 0) {
                    // Group params from W (not W1): columns updated by earlier blocks, not by this one.
                    const int g = col / gs, len = K - col < gs ? K - col : gs; // the last group may be shorter
                    float buf[128];
                    for (int r = r0; r < r1; r++) {
                        for (int k = 0; k < len; k++) buf[k] = Wt[(size_t)(col + k) * N + r];
                        nt_quant_find_params(qc, buf, (size_t)len, 1, &scale[(size_t)g * N + r],
                                             &zero[(size_t)g * N + r]);
                    }
                }
                const int g = !grouped ? 0 : static_g ? perm[col] / gs : col / gs;
                const float *s = scale + (size_t)g * N, *z = zero + (size_t)g * N;
                const float d = Hinv[(size_t)col * K + col];
                const float *w = W1 + (size_t)i * N;
                float *e = E1 + (size_t)i * N;
                uint8_t *qrow = codes_t + (size_t)col * N;
                for (int r = r0; r < r1; r++) {
                    uint8_t qv = nt_quant_code(w[r], s[r], z[r], maxq);
                    float diff = w[r] - nt_quant_dequant(qv, s[r], z[r]);
                    qrow[r] = qv;
                    lsum += (double)(diff * diff / (d * d));
                    e[r] = diff / d;
                }
                // W1[:, i+1:] -= err (x) Hinv[col, i+1:]: the rank-1 update of the rest of the block.
                const float *hrow = Hinv + (size_t)col * K + i1;
                for (int j = i + 1; j < count; j++) {
                    const float h = hrow[j];
                    float *restrict wj = W1 + (size_t)j * N;
                    const float *restrict ee = e;
                    for (int r = r0; r < r1; r++) wj[r] -= ee[r] * h;
                }
            }
            tile_loss[t] += lsum;
        }
        // The lazy batch update: W[:, i2:] -= Err1 . Hinv[i1:i2, i2:], i.e. Wt[i2:] -= Hinv[i1:i2, i2:]^T . E1.
        if (i2 < K)
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, K - i2, N, count, -1.0f, Hinv + (size_t)i1 * K + i2,
                        K, E1, N, 1.0f, Wt + (size_t)i2 * N, N);
    }

    if (nt_qlinear_alloc(&q, N, K, qc->bits, qc->group_size, qc->sym, c->act_order, err)) goto done;
    for (int j = 0; j < K; j++) {
        const int col = perm[j];
        q->g_idx[col] = !grouped ? 0 : static_g ? col / gs : j / gs;
        if (q->perm) q->perm[j] = col;
    }
#pragma omp parallel for collapse(2) schedule(static) if (par)
    for (int j0 = 0; j0 < K; j0 += 64)
        for (int r0 = 0; r0 < N; r0 += 64)
            for (int j = j0; j < K && j < j0 + 64; j++)
                for (int r = r0; r < N && r < r0 + 64; r++)
                    codes[(size_t)r * K + perm[j]] = codes_t[(size_t)j * N + r];
    if (nt_qlinear_set_params(q, scale, zero, err)) goto done;
    nt_qlinear_pack(q, codes);
    if (Wq) {
#pragma omp parallel for schedule(static) if (par)
        for (int r = 0; r < N; r++)
            for (int k = 0; k < K; k++) {
                size_t pi = (size_t)q->g_idx[k] * N + r;
                Wq[(size_t)r * K + k] = nt_quant_dequant(codes[(size_t)r * K + k], scale[pi], zero[pi]);
            }
    }
    if (loss_out) {
        double total = 0.0;
        for (int t = 0; t < ntiles; t++) total += tile_loss[t];
        *loss_out = total / 2.0;
    }
    rc = 0;
done:
    free(Hinv);
    free(Wt);
    free(W1);
    free(E1);
    free(scale);
    free(zero);
    free(codes_t);
    free(codes);
    free(perm);
    free(diag);
    free(order);
    free(tile_loss);
    if (rc) nt_qlinear_free(&q);
    *out_q = q;
    return rc;
}

// ------------------------------------------------------------------------------------------ as a quantizer
static int gptq_quantize(nt_qlinear **q, float *Wq, const float *W, int out, int in, const float *H,
                         const nt_quant_opts *o, nt_err *err) {
    if (!H) return nt_fail(err, "GPTQ needs the input Hessian of the linear");
    nt_gptq_config gc = nt_gptq_config_make(o->wbits, o->group_size, o->sym);
    gc.quant = nt_qconfig_of_opts(o);
    gc.percdamp = o->percdamp;
    gc.blocksize = o->blocksize;
    gc.act_order = o->act_order;
    gc.static_groups = o->static_groups;
    return nt_gptq_quantize(q, Wq, NULL, W, out, in, H, &gc, err);
}

static void gptq_describe(const nt_quant_opts *o, char *buf, size_t cap) {
    if (o->sym) nt_opts_append(buf, cap, "sym");
    if (o->mse) nt_opts_append(buf, cap, "mse");
    if (o->act_order) nt_opts_append(buf, cap, "act_order");
    if (o->static_groups) nt_opts_append(buf, cap, "static_groups");
    if (!o->true_sequential) nt_opts_append(buf, cap, "true_sequential=0");
    if (o->percdamp != 0.01f) nt_opts_append(buf, cap, "percdamp=%g", o->percdamp);
    if (o->fp32_scales) nt_opts_append(buf, cap, "fp32_scales");
}

const nt_quantizer nt_quantizer_gptq = {"gptq", true, true, gptq_quantize, gptq_describe};
