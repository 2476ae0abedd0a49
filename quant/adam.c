// adam.c: Adam with torch.optim.Adam's update (see adam.h). Moments in fp32 like torch's state; the bias
// corrections are computed in double as Python floats are.
#include <math.h>
#include <string.h>

#include "adam.h"

int nt_adam_init(nt_adam **out, int n, float lr, nt_err *err) {
    *out = NULL;
    if (n <= 0) return nt_fail(err, "adam: %d parameters", n);
    if (!(lr >= 0.0f)) return nt_fail(err, "adam: learning rate %g must be >= 0", (double)lr);
    nt_adam *a = calloc(1, sizeof(nt_adam));
    if (!a) return nt_fail(err, "adam: out of memory");
    a->n = n;
    a->lr = lr;
    a->beta1 = 0.9f;
    a->beta2 = 0.999f;
    a->eps = 1e-8f;
    a->m = calloc((size_t)n, sizeof(float));
    a->v = calloc((size_t)n, sizeof(float));
    if (!a->m || !a->v) {
        nt_adam_free(&a);
        return nt_fail(err, "adam: out of memory for %d parameters", n);
    }
    *out = a;
    return 0;
}

void nt_adam_free(nt_adam **ap) {
    nt_adam *a = ap ? *ap : NULL;
    if (!a) return;
    free(a->m);
    free(a->v);
    free(a);
    *ap = NULL;
}

void nt_adam_reset(nt_adam *a) {
    a->t = 0;
    memset(a->m, 0, (size_t)a->n * sizeof(float));
    memset(a->v, 0, (size_t)a->n * sizeof(float));
}

void nt_adam_step(nt_adam *a, float *params, const float *grads) {
    a->t++;
    // torch: beta ** step with the betas as Python floats (the fp32 values widened, as here)
    double bc1 = 1.0 - pow((double)a->beta1, (double)a->t), bc2 = 1.0 - pow((double)a->beta2, (double)a->t);
    float step = (float)((double)a->lr / bc1), bc2_sqrt = (float)sqrt(bc2);
    float b1 = a->beta1, b2 = a->beta2, eps = a->eps;
    for (int i = 0; i < a->n; i++) {
        float g = grads[i];
        a->m[i] += (1.0f - b1) * (g - a->m[i]); // torch: exp_avg.lerp_(grad, 1 - beta1)
        a->v[i] = a->v[i] * b2 + (1.0f - b2) * g * g;
        float denom = sqrtf(a->v[i]) / bc2_sqrt + eps;
        params[i] -= step * (a->m[i] / denom);
    }
}
