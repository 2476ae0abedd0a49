// gpu_upload.c: nt_gpu_qlinear_upload, the C entry point from a quant.h nt_qlinear to a device linear (the
// layout of gpu.h, then its upload), and nt_gpu_actq_upload, the same for actquant.h's nt_actq. Its own file
// because the emulated build (cuda_emu.h) compiles it a second time, with the emulator's names.
#include "gpu.h"

int nt_gpu_qlinear_upload(nt_gpu_qlinear **d, const nt_qlinear *q, nt_err *err) {
    *d = NULL;
    nt_qgemm_layout lay;
    if (nt_qgemm_layout_make(&lay, q, err)) return -1;
    int rc = nt_gpu_qlinear_upload_layout(d, &lay, err);
    nt_qgemm_layout_free(&lay);
    return rc;
}

int nt_gpu_actq_upload(nt_gpu_actq **d, const nt_actq *a, nt_err *err) {
    *d = NULL;
    nt_actq_layout lay;
    if (nt_actq_layout_make(&lay, a, err)) return -1;
    int rc = nt_gpu_actq_upload_layout(d, &lay, err);
    nt_actq_layout_free(&lay);
    return rc;
}
