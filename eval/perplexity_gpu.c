// perplexity_gpu.c: perplexity on a CUDA device (eval --device cuda; see perplexity.h): perplexity.c's windows
// loop over the device forward pass's window NLLs (gpu.h). A file of its own so that the CPU emulator's build
// (CMakeLists.txt, nt_cuda_emu) compiles it a second time against the emulated device, with nt_perplexity_gpu
// renamed nt_emu_perplexity_gpu as the gpu.h symbols are (gpu_emu_names.h): the emulated tests then run the very
// entry point the CLI calls.
#include "perplexity.h"

typedef struct {
    nt_gpu_ctx *ctx;
    nt_gpu_model *g;
} gpu_scorer;

static int gpu_window(void *arg, const int32_t *ids, int S, double *nll, double *kld, bool *top, nt_err *err) {
    gpu_scorer *c = arg;
    (void)kld, (void)top; // the device pass scores perplexity only
    return nt_gpu_window_nll(c->ctx, c->g, ids, S, nll, err);
}

int nt_perplexity_gpu(nt_gpu_ctx *ctx, nt_gpu_model *g, const nt_windows *w, size_t max_windows, const char *label,
                      nt_ppl_result *res, nt_err *err) {
    gpu_scorer c = {ctx, g};
    return nt_ppl_score_windows(gpu_window, &c, w, max_windows, label, res, NULL, err);
}
