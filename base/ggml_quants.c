// ggml_quants.c: the GGML type traits table and the scalar reference dequantizers (see ggml_quants.h).
// Reference code: one value at a time, in the order of the format's definition. Every block is read byte by
// byte (blocks of 18, 20, 22, 34, 110, 210 bytes are not aligned in a file), little-endian.
//
// Bit-exactness with gguf-py: each value is computed with the same fp32 operations in the same order as its
// numpy code (e.g. Q4_K: (d * sc) * q - (dmin * m), every step rounded to fp32). That needs no contraction of
// a*b - c into an FMA: CMakeLists.txt compiles this file with -ffp-contract=off (and clang gets the pragma).
#include "ggml_quants.h"

#include <string.h>

#include "nt.h"

#ifdef __clang__
#pragma STDC FP_CONTRACT OFF
#endif

#define QK_K 256 // values in a K-quant super-block

static inline float rd_f16(const uint8_t *p) { return nt_f16_to_f32((uint16_t)(p[0] | (p[1] << 8))); }
static inline uint32_t rd_u32(const uint8_t *p) {
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}

// ---------------------------------------------------------------------------------------------- block layouts
// Byte offsets of each field in a block, and the block's size; the sizes are checked against the table below.

enum { Q4_0_D = 0, Q4_0_QS = 2, Q4_0_BYTES = 18 };                             // d, qs[16]
enum { Q4_1_D = 0, Q4_1_M = 2, Q4_1_QS = 4, Q4_1_BYTES = 20 };                 // d, m, qs[16]
enum { Q5_0_D = 0, Q5_0_QH = 2, Q5_0_QS = 6, Q5_0_BYTES = 22 };                // d, qh[4], qs[16]
enum { Q5_1_D = 0, Q5_1_M = 2, Q5_1_QH = 4, Q5_1_QS = 8, Q5_1_BYTES = 24 };    // d, m, qh[4], qs[16]
enum { Q8_0_D = 0, Q8_0_QS = 2, Q8_0_BYTES = 34 };                             // d, qs[32] (int8)
enum { Q2_K_SC = 0, Q2_K_QS = 16, Q2_K_D = 80, Q2_K_DMIN = 82, Q2_K_BYTES = 84 }; // scales[16], qs[64], d, dmin
enum { Q3_K_HM = 0, Q3_K_QS = 32, Q3_K_SC = 96, Q3_K_D = 108, Q3_K_BYTES = 110 }; // hmask[32], qs[64], scales[12], d
enum { Q4_K_D = 0, Q4_K_DMIN = 2, Q4_K_SC = 4, Q4_K_QS = 16, Q4_K_BYTES = 144 };  // d, dmin, scales[12], qs[128]
enum { Q5_K_D = 0, Q5_K_DMIN = 2, Q5_K_SC = 4, Q5_K_QH = 16, Q5_K_QS = 48, Q5_K_BYTES = 176 }; // + qh[32]
enum { Q6_K_QL = 0, Q6_K_QH = 128, Q6_K_SC = 192, Q6_K_D = 208, Q6_K_BYTES = 210 }; // ql[128], qh[64], scales[16]

_Static_assert(Q4_0_QS + 16 == Q4_0_BYTES && Q4_1_QS + 16 == Q4_1_BYTES, "Q4 layouts");
_Static_assert(Q5_0_QS + 16 == Q5_0_BYTES && Q5_1_QS + 16 == Q5_1_BYTES, "Q5 layouts");
_Static_assert(Q8_0_QS + 32 == Q8_0_BYTES, "Q8_0 layout");
_Static_assert(Q2_K_QS == QK_K / 16 && Q2_K_D == Q2_K_QS + QK_K / 4 && Q2_K_BYTES == Q2_K_DMIN + 2, "Q2_K layout");
_Static_assert(Q3_K_QS == QK_K / 8 && Q3_K_SC == Q3_K_QS + QK_K / 4 && Q3_K_D == Q3_K_SC + 12 && Q3_K_BYTES == Q3_K_D + 2,
               "Q3_K layout");
_Static_assert(Q4_K_QS == Q4_K_SC + 12 && Q4_K_BYTES == Q4_K_QS + QK_K / 2, "Q4_K layout");
_Static_assert(Q5_K_QH == Q5_K_SC + 12 && Q5_K_QS == Q5_K_QH + QK_K / 8 && Q5_K_BYTES == Q5_K_QS + QK_K / 2,
               "Q5_K layout");
_Static_assert(Q6_K_QH == QK_K / 2 && Q6_K_SC == Q6_K_QH + QK_K / 4 && Q6_K_D == Q6_K_SC + QK_K / 16 &&
                   Q6_K_BYTES == Q6_K_D + 2,
               "Q6_K layout");

// ---------------------------------------------------------------------------------------------- plain types

static void deq_f32(const uint8_t *src, float *dst, int64_t n) { memcpy(dst, src, (size_t)n * sizeof(float)); }

static void deq_f16(const uint8_t *src, float *dst, int64_t n) {
    for (int64_t i = 0; i < n; i++) dst[i] = rd_f16(src + 2 * i);
}

static void deq_bf16(const uint8_t *src, float *dst, int64_t n) {
    for (int64_t i = 0; i < n; i++) dst[i] = nt_bf16_to_f32((uint16_t)(src[2 * i] | (src[2 * i + 1] << 8)));
}

// ---------------------------------------------------------------------------------------------- 32-value blocks
// Value j of a block (j < 16) is the low nibble of qs[j], value j + 16 its high nibble.

// Q4_0: x = d * (q - 8), q in 0..15.
static void deq_q4_0(const uint8_t *src, float *dst, int64_t nb) {
    for (int64_t b = 0; b < nb; b++, src += Q4_0_BYTES, dst += 32) {
        float d = rd_f16(src + Q4_0_D);
        const uint8_t *qs = src + Q4_0_QS;
        for (int j = 0; j < 16; j++) {
            dst[j] = d * (float)((qs[j] & 0x0F) - 8);
            dst[j + 16] = d * (float)((qs[j] >> 4) - 8);
        }
    }
}

// Q4_1: x = d * q + m, q in 0..15.
static void deq_q4_1(const uint8_t *src, float *dst, int64_t nb) {
    for (int64_t b = 0; b < nb; b++, src += Q4_1_BYTES, dst += 32) {
        float d = rd_f16(src + Q4_1_D), m = rd_f16(src + Q4_1_M);
        const uint8_t *qs = src + Q4_1_QS;
        for (int j = 0; j < 16; j++) {
            dst[j] = d * (float)(qs[j] & 0x0F) + m;
            dst[j + 16] = d * (float)(qs[j] >> 4) + m;
        }
    }
}

// Q5_0 / Q5_1: the nibble of value j is its low 4 bits, bit j of the 32-bit word qh its 5th bit.
// Q5_0: x = d * (q - 16); Q5_1: x = d * q + m; q in 0..31.
static void deq_q5_0(const uint8_t *src, float *dst, int64_t nb) {
    for (int64_t b = 0; b < nb; b++, src += Q5_0_BYTES, dst += 32) {
        float d = rd_f16(src + Q5_0_D);
        uint32_t qh = rd_u32(src + Q5_0_QH);
        const uint8_t *qs = src + Q5_0_QS;
        for (int j = 0; j < 16; j++) {
            int lo = (qs[j] & 0x0F) | (int)(((qh >> j) & 1) << 4);
            int hi = (qs[j] >> 4) | (int)(((qh >> (j + 16)) & 1) << 4);
            dst[j] = d * (float)(lo - 16);
            dst[j + 16] = d * (float)(hi - 16);
        }
    }
}

static void deq_q5_1(const uint8_t *src, float *dst, int64_t nb) {
    for (int64_t b = 0; b < nb; b++, src += Q5_1_BYTES, dst += 32) {
        float d = rd_f16(src + Q5_1_D), m = rd_f16(src + Q5_1_M);
        uint32_t qh = rd_u32(src + Q5_1_QH);
        const uint8_t *qs = src + Q5_1_QS;
        for (int j = 0; j < 16; j++) {
            int lo = (qs[j] & 0x0F) | (int)(((qh >> j) & 1) << 4);
            int hi = (qs[j] >> 4) | (int)(((qh >> (j + 16)) & 1) << 4);
            dst[j] = d * (float)lo + m;
            dst[j + 16] = d * (float)hi + m;
        }
    }
}

// Q8_0: x = q * d, q a signed byte.
static void deq_q8_0(const uint8_t *src, float *dst, int64_t nb) {
    for (int64_t b = 0; b < nb; b++, src += Q8_0_BYTES, dst += 32) {
        float d = rd_f16(src + Q8_0_D);
        for (int j = 0; j < 32; j++) dst[j] = (float)(int8_t)src[Q8_0_QS + j] * d;
    }
}

// ---------------------------------------------------------------------------------------------- K-quants
// A super-block of 256 values in sub-blocks of 16 (Q2_K, Q3_K, Q6_K) or 32 (Q4_K, Q5_K), each with its own
// scale; the scale codes are quantized again against the super-block's fp16 d (and dmin for the minima).

// Q2_K: 2-bit q. Value v = 128h + 32j + l (h < 2, j < 4, l < 32) is bits 2j..2j+1 of qs[32h + l]; sub-block
// v / 16 has the code byte scales[v / 16]: low nibble the scale, high nibble the minimum.
// x = (d * sc) * q - (dmin * mn).
static void deq_q2_k(const uint8_t *src, float *dst, int64_t nb) {
    for (int64_t b = 0; b < nb; b++, src += Q2_K_BYTES, dst += QK_K) {
        float d = rd_f16(src + Q2_K_D), dmin = rd_f16(src + Q2_K_DMIN);
        const uint8_t *sc = src + Q2_K_SC, *qs = src + Q2_K_QS;
        for (int s = 0; s < 16; s++) {
            float dl = d * (float)(sc[s] & 0x0F), ml = dmin * (float)(sc[s] >> 4);
            for (int i = 0; i < 16; i++) {
                int v = 16 * s + i, h = v / 128, j = (v % 128) / 32, l = v % 32;
                int q = (qs[32 * h + l] >> (2 * j)) & 3;
                dst[v] = dl * (float)q - ml;
            }
        }
    }
}

// Q3_K: 3-bit q in -4..3: the low 2 bits as in Q2_K, minus 4 when the high bit (bit v / 32 of hmask[v % 32]) is 0.
// 16 signed 6-bit scales (minus 32): the low nibble of scale s is in scales[s] (s < 8) or the high nibble of
// scales[s - 8]; its top two bits are bits 2(s / 4)..2(s / 4)+1 of scales[8 + s % 4]. x = (d * sc) * q.
static void deq_q3_k(const uint8_t *src, float *dst, int64_t nb) {
    for (int64_t b = 0; b < nb; b++, src += Q3_K_BYTES, dst += QK_K) {
        float d = rd_f16(src + Q3_K_D);
        const uint8_t *hm = src + Q3_K_HM, *qs = src + Q3_K_QS, *sc = src + Q3_K_SC;
        for (int s = 0; s < 16; s++) {
            int lo = s < 8 ? (sc[s] & 0x0F) : (sc[s - 8] >> 4);
            int hi = (sc[8 + s % 4] >> (2 * (s / 4))) & 3;
            float dl = d * (float)((lo | (hi << 4)) - 32);
            for (int i = 0; i < 16; i++) {
                int v = 16 * s + i, h = v / 128, j = (v % 128) / 32, l = v % 32;
                int q = (qs[32 * h + l] >> (2 * j)) & 3;
                if (!((hm[v % 32] >> (v / 32)) & 1)) q -= 4;
                dst[v] = dl * (float)q;
            }
        }
    }
}

// The 6-bit scale and minimum of sub-block s (< 8) of a Q4_K/Q5_K super-block from its 12 code bytes:
// s < 4: the low 6 bits of bytes s (scale) and 4 + s (minimum); s >= 4: a nibble of byte 8 + (s - 4) (low:
// scale, high: minimum) below the top 2 bits of bytes s - 4 (scale) and s (minimum).
static void k_scale_min(const uint8_t *sc, int s, int *scale, int *min) {
    if (s < 4) {
        *scale = sc[s] & 0x3F;
        *min = sc[s + 4] & 0x3F;
    } else {
        *scale = (sc[s + 4] & 0x0F) | ((sc[s - 4] >> 6) << 4);
        *min = (sc[s + 4] >> 4) | ((sc[s] >> 6) << 4);
    }
}

// Q4_K: 4-bit q; value v = 64c + 32h + l is nibble h (0 low, 1 high) of qs[32c + l]; sub-block v / 32.
// x = (d * sc) * q - (dmin * mn).
static void deq_q4_k(const uint8_t *src, float *dst, int64_t nb) {
    for (int64_t b = 0; b < nb; b++, src += Q4_K_BYTES, dst += QK_K) {
        float d = rd_f16(src + Q4_K_D), dmin = rd_f16(src + Q4_K_DMIN);
        const uint8_t *qs = src + Q4_K_QS;
        for (int s = 0; s < 8; s++) {
            int scale, min;
            k_scale_min(src + Q4_K_SC, s, &scale, &min);
            float dl = d * (float)scale, ml = dmin * (float)min;
            for (int l = 0; l < 32; l++) {
                int v = 32 * s + l, q = (qs[32 * (s / 2) + l] >> (4 * (s % 2))) & 0x0F;
                dst[v] = dl * (float)q - ml;
            }
        }
    }
}

// Q5_K: Q4_K's nibbles plus a 5th bit: bit v / 32 of qh[v % 32].
static void deq_q5_k(const uint8_t *src, float *dst, int64_t nb) {
    for (int64_t b = 0; b < nb; b++, src += Q5_K_BYTES, dst += QK_K) {
        float d = rd_f16(src + Q5_K_D), dmin = rd_f16(src + Q5_K_DMIN);
        const uint8_t *qh = src + Q5_K_QH, *qs = src + Q5_K_QS;
        for (int s = 0; s < 8; s++) {
            int scale, min;
            k_scale_min(src + Q5_K_SC, s, &scale, &min);
            float dl = d * (float)scale, ml = dmin * (float)min;
            for (int l = 0; l < 32; l++) {
                int v = 32 * s + l;
                int q = ((qs[32 * (s / 2) + l] >> (4 * (s % 2))) & 0x0F) | (((qh[l] >> s) & 1) << 4);
                dst[v] = dl * (float)q - ml;
            }
        }
    }
}

// Q6_K: 6-bit q minus 32. Value v = 128h + 64n + l (l < 64) has low 4 bits = nibble n of ql[64h + l]; written
// v = 128h + 32j + m (m < 32), its top 2 bits are bits 2j..2j+1 of qh[32h + m]. 16 signed 8-bit scales, one
// per 16 values. x = (d * sc) * q.
static void deq_q6_k(const uint8_t *src, float *dst, int64_t nb) {
    for (int64_t b = 0; b < nb; b++, src += Q6_K_BYTES, dst += QK_K) {
        float d = rd_f16(src + Q6_K_D);
        const uint8_t *ql = src + Q6_K_QL, *qh = src + Q6_K_QH, *sc = src + Q6_K_SC;
        for (int s = 0; s < 16; s++) {
            float dl = d * (float)(int8_t)sc[s];
            for (int i = 0; i < 16; i++) {
                int v = 16 * s + i, h = v / 128, r = v % 128;
                int lo = (ql[64 * h + r % 64] >> (4 * (r / 64))) & 0x0F;
                int hi = (qh[32 * h + r % 32] >> (2 * (r / 32))) & 3;
                dst[v] = dl * (float)((lo | (hi << 4)) - 32);
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------- the table

static const nt_ggml_traits traits[NT_GGML_TYPE_END] = {
    [NT_GGML_F32] = {NT_GGML_F32, "F32", 1, 4, deq_f32},
    [NT_GGML_F16] = {NT_GGML_F16, "F16", 1, 2, deq_f16},
    [NT_GGML_Q4_0] = {NT_GGML_Q4_0, "Q4_0", 32, Q4_0_BYTES, deq_q4_0},
    [NT_GGML_Q4_1] = {NT_GGML_Q4_1, "Q4_1", 32, Q4_1_BYTES, deq_q4_1},
    [NT_GGML_Q5_0] = {NT_GGML_Q5_0, "Q5_0", 32, Q5_0_BYTES, deq_q5_0},
    [NT_GGML_Q5_1] = {NT_GGML_Q5_1, "Q5_1", 32, Q5_1_BYTES, deq_q5_1},
    [NT_GGML_Q8_0] = {NT_GGML_Q8_0, "Q8_0", 32, Q8_0_BYTES, deq_q8_0},
    [NT_GGML_Q8_1] = {NT_GGML_Q8_1, "Q8_1", 32, 36, NULL}, // fp16 d and s, 32 int8
    [NT_GGML_Q2_K] = {NT_GGML_Q2_K, "Q2_K", QK_K, Q2_K_BYTES, deq_q2_k},
    [NT_GGML_Q3_K] = {NT_GGML_Q3_K, "Q3_K", QK_K, Q3_K_BYTES, deq_q3_k},
    [NT_GGML_Q4_K] = {NT_GGML_Q4_K, "Q4_K", QK_K, Q4_K_BYTES, deq_q4_k},
    [NT_GGML_Q5_K] = {NT_GGML_Q5_K, "Q5_K", QK_K, Q5_K_BYTES, deq_q5_k},
    [NT_GGML_Q6_K] = {NT_GGML_Q6_K, "Q6_K", QK_K, Q6_K_BYTES, deq_q6_k},
    [NT_GGML_Q8_K] = {NT_GGML_Q8_K, "Q8_K", QK_K, 4 + QK_K + QK_K / 8, NULL},
    [NT_GGML_IQ2_XXS] = {NT_GGML_IQ2_XXS, "IQ2_XXS", QK_K, 2 + QK_K / 4, NULL},
    [NT_GGML_IQ2_XS] = {NT_GGML_IQ2_XS, "IQ2_XS", QK_K, 2 + QK_K / 4 + QK_K / 32, NULL},
    [NT_GGML_IQ3_XXS] = {NT_GGML_IQ3_XXS, "IQ3_XXS", QK_K, 2 + QK_K / 4 + QK_K / 8, NULL},
    [NT_GGML_IQ1_S] = {NT_GGML_IQ1_S, "IQ1_S", QK_K, 2 + QK_K / 8 + QK_K / 16, NULL},
    [NT_GGML_IQ4_NL] = {NT_GGML_IQ4_NL, "IQ4_NL", 32, 2 + 16, NULL},
    [NT_GGML_IQ3_S] = {NT_GGML_IQ3_S, "IQ3_S", QK_K, 2 + QK_K / 4 + QK_K / 8 + QK_K / 32 + 4, NULL},
    [NT_GGML_IQ2_S] = {NT_GGML_IQ2_S, "IQ2_S", QK_K, 2 + QK_K / 4 + QK_K / 16, NULL},
    [NT_GGML_IQ4_XS] = {NT_GGML_IQ4_XS, "IQ4_XS", QK_K, 2 + 2 + QK_K / 2 + QK_K / 64, NULL},
    [NT_GGML_I8] = {NT_GGML_I8, "I8", 1, 1, NULL},
    [NT_GGML_I16] = {NT_GGML_I16, "I16", 1, 2, NULL},
    [NT_GGML_I32] = {NT_GGML_I32, "I32", 1, 4, NULL},
    [NT_GGML_I64] = {NT_GGML_I64, "I64", 1, 8, NULL},
    [NT_GGML_F64] = {NT_GGML_F64, "F64", 1, 8, NULL},
    [NT_GGML_IQ1_M] = {NT_GGML_IQ1_M, "IQ1_M", QK_K, QK_K / 8 + QK_K / 16 + QK_K / 32, NULL},
    [NT_GGML_BF16] = {NT_GGML_BF16, "BF16", 1, 2, deq_bf16},
    [NT_GGML_TQ1_0] = {NT_GGML_TQ1_0, "TQ1_0", QK_K, 2 + 4 * 13, NULL},
    [NT_GGML_TQ2_0] = {NT_GGML_TQ2_0, "TQ2_0", QK_K, 2 + 64, NULL},
    [NT_GGML_MXFP4] = {NT_GGML_MXFP4, "MXFP4", 32, 1 + 16, NULL},
    [NT_GGML_NVFP4] = {NT_GGML_NVFP4, "NVFP4", 64, 4 + 32, NULL},
    [NT_GGML_Q1_0] = {NT_GGML_Q1_0, "Q1_0", 128, 2 + 16, NULL},
};

const nt_ggml_traits *nt_ggml_traits_of(uint32_t type) {
    return (type < NT_GGML_TYPE_END && traits[type].name) ? &traits[type] : NULL;
}

const char *nt_ggml_type_name(uint32_t type) {
    const nt_ggml_traits *t = nt_ggml_traits_of(type);
    return t ? t->name : "?";
}
