// gpu_emu_names.h: in the emulated build (-DNT_CUDA_EMU, see cuda_emu.h) every public symbol of gpu.h that the
// .cu files define is renamed nt_emu_* (the plain-C parts, kernels_ref.c and gpu_clock.c, exist once), so the
// emulated kernels link into the same test executable as the library (whose gpu.h symbols are the real CUDA
// ones, or gpu_none.c's). gpu.h includes this first; a TU compiled with NT_CUDA_EMU calls the emulator through
// the ordinary names. Also renamed: the library's device entry points above gpu.h that the emulator's build
// compiles again (eval/perplexity_gpu.c's nt_perplexity_gpu).
#pragma once
#define nt_gpu_device_count nt_emu_gpu_device_count
#define nt_gpu_info_get nt_emu_gpu_info_get
#define nt_gpu_ctx_create nt_emu_gpu_ctx_create
#define nt_gpu_ctx_free nt_emu_gpu_ctx_free
#define nt_gpu_ctx_info nt_emu_gpu_ctx_info
#define nt_gpu_ws_reserve nt_emu_gpu_ws_reserve
#define nt_gpu_lt_free nt_emu_gpu_lt_free
#define nt_gpu_malloc nt_emu_gpu_malloc
#define nt_gpu_free nt_emu_gpu_free
#define nt_gpu_upload nt_emu_gpu_upload
#define nt_gpu_download nt_emu_gpu_download
#define nt_gpu_memset nt_emu_gpu_memset
#define nt_gpu_sync nt_emu_gpu_sync
#define nt_gpu_time nt_emu_gpu_time
#define nt_gpu_copy_gbps nt_emu_gpu_copy_gbps
#define nt_gpu_qlinear_upload_layout nt_emu_gpu_qlinear_upload_layout
#define nt_gpu_qlinear_upload nt_emu_gpu_qlinear_upload
#define nt_gpu_qlinear_free nt_emu_gpu_qlinear_free
#define nt_gpu_qlinear_weight_bytes nt_emu_gpu_qlinear_weight_bytes
#define nt_gpu_qlinear_clone nt_emu_gpu_qlinear_clone
#define nt_gpu_counters_reserve nt_emu_gpu_counters_reserve
#define nt_gpu_qgemm nt_emu_gpu_qgemm
#define nt_gpu_qdequantize nt_emu_gpu_qdequantize
#define nt_gpu_gemm_f16 nt_emu_gpu_gemm_f16
#define nt_gpu_gemm_f16_f32 nt_emu_gpu_gemm_f16_f32
#define nt_gpu_gemm_i8 nt_emu_gpu_gemm_i8
#define nt_gpu_gemm_i8_i32 nt_emu_gpu_gemm_i8_i32
#define nt_gpu_actq_upload_layout nt_emu_gpu_actq_upload_layout
#define nt_gpu_actq_upload nt_emu_gpu_actq_upload
#define nt_gpu_actq_free nt_emu_gpu_actq_free
#define nt_gpu_actq_linear nt_emu_gpu_actq_linear
#define nt_gpu_model_upload nt_emu_gpu_model_upload
#define nt_gpu_model_free nt_emu_gpu_model_free
#define nt_gpu_forward nt_emu_gpu_forward
#define nt_gpu_logits nt_emu_gpu_logits
#define nt_gpu_window_nll nt_emu_gpu_window_nll
#define nt_perplexity_gpu nt_emu_perplexity_gpu
#define nt_gpu_op_embed nt_emu_gpu_op_embed
#define nt_gpu_op_add_rows nt_emu_gpu_op_add_rows
#define nt_gpu_op_norm nt_emu_gpu_op_norm
#define nt_gpu_op_to_f16 nt_emu_gpu_op_to_f16
#define nt_gpu_op_bias nt_emu_gpu_op_bias
#define nt_gpu_op_residual nt_emu_gpu_op_residual
#define nt_gpu_op_rope nt_emu_gpu_op_rope
#define nt_gpu_op_attention nt_emu_gpu_op_attention
#define nt_gpu_op_act nt_emu_gpu_op_act
