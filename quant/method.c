// method.c: the method table (method.h). Table order is the order comparison tables show methods in: the float
// model, then each base quantizer followed by its norm-tweaked variant, then SmoothQuant's (smoothing, then RTN or
// GPTQ; quant/smoothquant.h).
#include "method.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static const nt_method methods[] = {
    {"fp", NULL, false, false, NULL, NULL},
    {"rtn", &nt_quantizer_rtn, false, false, NULL, NULL},
    {"rtn+nt", &nt_quantizer_rtn, true, false, "rtn", "gen"},
    {"gptq", &nt_quantizer_gptq, false, false, NULL, "c4"},
    {"gptq+nt", &nt_quantizer_gptq, true, false, "gptq", "gen"},
    {"smoothquant", &nt_quantizer_rtn, false, true, NULL, "c4"},
    {"smoothquant+nt", &nt_quantizer_rtn, true, true, "smoothquant", "gen"},
    {"smoothquant-gptq", &nt_quantizer_gptq, false, true, NULL, "c4"},
};
#define N_METHODS (sizeof(methods) / sizeof(methods[0]))

const nt_method *nt_method_find(const char *name) {
    for (size_t i = 0; name && i < N_METHODS; i++)
        if (strcmp(methods[i].name, name) == 0) return &methods[i];
    return NULL;
}

bool nt_method_calibrates(const nt_method *m) {
    return m && m->quantizer && (m->quantizer->calibrates || m->tweak || m->smooth);
}

bool nt_quant_opts_calibrates(const nt_quant_opts *o) {
    const nt_method *m = nt_method_find(o->method);
    return nt_method_calibrates(m) || (m && m->quantizer && o->abits < 16 && o->act_static);
}

const nt_method *nt_method_at(size_t i) { return i < N_METHODS ? &methods[i] : NULL; }
size_t nt_method_count(void) { return N_METHODS; }

const char *nt_method_names(void) {
    static char buf[256];
    if (!buf[0])
        for (size_t i = 0; i < N_METHODS; i++)
            snprintf(buf + strlen(buf), sizeof(buf) - strlen(buf), "%s%s", i ? ", " : "", methods[i].name);
    return buf;
}

void nt_opts_append(char *buf, size_t cap, const char *fmt, ...) {
    size_t k = strlen(buf);
    if (k && k + 1 < cap) buf[k++] = ';', buf[k] = '\0';
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf + k, cap - k, fmt, ap);
    va_end(ap);
}
