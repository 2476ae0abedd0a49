// ggml_quants.h: the GGML tensor types a GGUF file can hold, in ONE traits table: type id, name, values per
// block, bytes per block and a scalar reference dequantizer (block bytes -> fp32). The layouts are GGML's
// (ggml-common.h), written here from the format's definition; the dequantizers are the reference versions,
// bit-exact with gguf-py's numpy `gguf.quants.dequantize` (tests/test_gguf.c checks every type).
//
// Types that are known (so a file holding them can be opened and its layout checked) but that normtweak does
// not dequantize have dequant == NULL: Q8_1, Q8_K, the IQ* and TQ* types, MXFP4, NVFP4, Q1_0, I8..I64, F64.
#pragma once
#include <stdint.h>

typedef enum {
    NT_GGML_F32 = 0,
    NT_GGML_F16 = 1,
    NT_GGML_Q4_0 = 2,
    NT_GGML_Q4_1 = 3,
    // 4, 5: Q4_2, Q4_3, removed from GGML long ago (a file holding them is refused)
    NT_GGML_Q5_0 = 6,
    NT_GGML_Q5_1 = 7,
    NT_GGML_Q8_0 = 8,
    NT_GGML_Q8_1 = 9,
    NT_GGML_Q2_K = 10,
    NT_GGML_Q3_K = 11,
    NT_GGML_Q4_K = 12,
    NT_GGML_Q5_K = 13,
    NT_GGML_Q6_K = 14,
    NT_GGML_Q8_K = 15,
    NT_GGML_IQ2_XXS = 16,
    NT_GGML_IQ2_XS = 17,
    NT_GGML_IQ3_XXS = 18,
    NT_GGML_IQ1_S = 19,
    NT_GGML_IQ4_NL = 20,
    NT_GGML_IQ3_S = 21,
    NT_GGML_IQ2_S = 22,
    NT_GGML_IQ4_XS = 23,
    NT_GGML_I8 = 24,
    NT_GGML_I16 = 25,
    NT_GGML_I32 = 26,
    NT_GGML_I64 = 27,
    NT_GGML_F64 = 28,
    NT_GGML_IQ1_M = 29,
    NT_GGML_BF16 = 30,
    NT_GGML_TQ1_0 = 34,
    NT_GGML_TQ2_0 = 35,
    NT_GGML_MXFP4 = 39,
    NT_GGML_NVFP4 = 40,
    NT_GGML_Q1_0 = 41,
    NT_GGML_TYPE_END // one past the largest id
} nt_ggml_type;

// Dequantizes n_blocks consecutive blocks at src (n_blocks * bytes bytes, no alignment needed) into
// dst (n_blocks * block floats).
typedef void (*nt_ggml_dequant_fn)(const uint8_t *src, float *dst, int64_t n_blocks);

typedef struct {
    nt_ggml_type id;
    const char *name;           // "Q4_K", as GGML spells it
    int block;                  // values per block (1 for the plain types)
    int bytes;                  // bytes per block
    nt_ggml_dequant_fn dequant; // NULL: known, but not dequantized by normtweak
} nt_ggml_traits;

// The traits of type id `type`, or NULL for an id no GGML version defines.
const nt_ggml_traits *nt_ggml_traits_of(uint32_t type);
// Its name, or "?" for an unknown id.
const char *nt_ggml_type_name(uint32_t type);
