// nt_loss.c: the norm-tweaking losses and their gradients (see nt_loss.h). Column statistics are
// accumulated row by row in double (rows are contiguous), two passes for the variance.
#include <math.h>
#include <string.h>

#include "nt_loss.h"

#define NT_LOSS_SD_EPS 1e-6 // the authors' sqrt(var + 1e-6)

static const char *const loss_names[NT_LOSS_COUNT] = {"dist", "mean-std", "mean-std-sse", "mse"};

const char *nt_loss_name(nt_loss_kind kind) {
    return (kind >= 0 && kind < NT_LOSS_COUNT) ? loss_names[kind] : "?";
}

int nt_loss_parse(const char *name, nt_loss_kind *kind, nt_err *err) {
    for (int k = 0; k < NT_LOSS_COUNT; k++)
        if (name && strcmp(name, loss_names[k]) == 0) {
            *kind = (nt_loss_kind)k;
            return 0;
        }
    return nt_fail(err, "unknown loss '%s' (one of: dist, mean-std, mean-std-sse, mse)", name ? name : "");
}

// Per-column mean and unbiased variance of y (T, C) into mu, var (C).
static void column_stats(const float *y, int T, int C, double *mu, double *var) {
    for (int c = 0; c < C; c++) mu[c] = var[c] = 0.0;
    for (int t = 0; t < T; t++)
        for (int c = 0; c < C; c++) mu[c] += y[(size_t)t * C + c];
    for (int c = 0; c < C; c++) mu[c] /= T;
    for (int t = 0; t < T; t++)
        for (int c = 0; c < C; c++) {
            double d = y[(size_t)t * C + c] - mu[c];
            var[c] += d * d;
        }
    for (int c = 0; c < C; c++) var[c] /= (T - 1);
}

static double sign(double x) { return x > 0.0 ? 1.0 : (x < 0.0 ? -1.0 : 0.0); }

int nt_loss_eval(nt_loss_kind kind, const float *yf, const float *yq, int T, int C, double *loss, float *dyq,
                 nt_err *err) {
    if (kind < 0 || kind >= NT_LOSS_COUNT) return nt_fail(err, "loss: unknown kind %d", (int)kind);
    if (T <= 0 || C <= 0) return nt_fail(err, "loss: empty output (%d tokens x %d channels)", T, C);
    size_t n = (size_t)T * C;
    if (kind == NT_LOSS_MSE) {
        double s = 0.0, k = -2.0 / (double)n;
        for (size_t i = 0; i < n; i++) {
            double d = (double)yf[i] - yq[i];
            s += d * d;
            if (dyq) dyq[i] = (float)(k * d);
        }
        *loss = s / (double)n;
        return 0;
    }
    if (T < 2) return nt_fail(err, "loss %s: needs at least 2 tokens per sample for a variance, got %d",
                              nt_loss_name(kind), T);
    double *buf = malloc((size_t)6 * C * sizeof(double));
    if (!buf) return nt_fail(err, "loss: out of memory for %d channels", C);
    double *muf = buf, *varf = buf + C, *muq = buf + 2 * C, *varq = buf + 3 * C;
    double *a = buf + 4 * C, *b = buf + 5 * C; // dL/dy_q[t][c] = a[c] + b[c] * (y_q[t][c] - mu_q[c])
    column_stats(yf, T, C, muf, varf);
    column_stats(yq, T, C, muq, varq);
    double L = 0.0;
    for (int c = 0; c < C; c++) {
        double dm = muf[c] - muq[c], dv = varf[c] - varq[c];
        if (kind == NT_LOSS_DIST) {
            // d mu_q / dy = 1/T;  d var_q / dy = 2 (y - mu_q) / (T - 1)
            L += (fabs(dm) + fabs(dv)) / C;
            a[c] = -sign(dm) / ((double)C * T);
            b[c] = -sign(dv) * 2.0 / ((double)C * (T - 1));
        } else {
            double sf = sqrt(varf[c] + NT_LOSS_SD_EPS), sq = sqrt(varq[c] + NT_LOSS_SD_EPS), ds = sf - sq;
            // d sd_q / dy = (y - mu_q) / ((T - 1) sd_q)
            L += dm * dm + ds * ds;
            a[c] = -2.0 * dm / T;
            b[c] = -2.0 * ds / ((T - 1) * sq);
        }
    }
    bool sse = kind == NT_LOSS_MEANSTD_SSE;
    for (int t = 0; t < T; t++)
        for (int c = 0; c < C; c++) {
            size_t i = (size_t)t * C + c;
            double d = (double)yf[i] - yq[i];
            if (sse) L += d * d;
            if (dyq) dyq[i] = (float)(a[c] + b[c] * ((double)yq[i] - muq[c]) - (sse ? 2.0 * d : 0.0));
        }
    free(buf);
    *loss = L;
    return 0;
}
