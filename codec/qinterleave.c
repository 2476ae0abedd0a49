// qinterleave.c: qinterleave.h's tensor-core order of the packed weights, reference version: interleave and its
// inverse through the maps of the header (scalar, one code at a time), the per-group scale/zero order, and the
// scalar model of the kernels' fp16x2 magic-number decode.
#include "qinterleave.h"

#include <math.h>
#include <string.h>

#include "qformat.h"

_Static_assert(NT_QI_TILE_N == NT_QPACK, "a block is 32 channels x one 32-value pack");

// Interleaves (or, with back, de-interleaves) one pack: codes of channels n0..n0+31 read from / written to the
// canonical array through qformat.h's traits, placed by the header's maps.
static void block_codes(const nt_qtraits *t, const uint32_t *qweight, int N, int p, int n, uint8_t codes[NT_QPACK]) {
    if (n < N) t->unpack(qweight + (size_t)p * t->bits * N + n, (size_t)N, codes);
    else memset(codes, 0, NT_QPACK); // padding channel
}

static void put_code(uint32_t *w /*(bits) of the lane*/, int bits, int e, unsigned q) {
    int word, bit, hw, hb;
    nt_qi_code_pos(bits, e, &word, &bit, &hw, &hb);
    unsigned lo_mask = bits == 3 ? 3u : (1u << bits) - 1u;
    w[word] |= (uint32_t)(q & lo_mask) << bit;
    if (hw >= 0) w[hw] |= (uint32_t)(q >> 2 & 1u) << hb;
}

static unsigned get_code(const uint32_t *w, int bits, int e) {
    int word, bit, hw, hb;
    nt_qi_code_pos(bits, e, &word, &bit, &hw, &hb);
    unsigned lo_mask = bits == 3 ? 3u : (1u << bits) - 1u, q = (w[word] >> bit) & lo_mask;
    if (hw >= 0) q |= ((w[hw] >> hb) & 1u) << 2;
    return q;
}

void nt_qi_interleave(const uint32_t *qweight, int N, int npacks, int bits, uint32_t *qi) {
    const nt_qtraits *t = nt_qtraits_get(bits);
    NT_ASSERT(t != NULL);
    const int tiles = nt_qi_tiles(N);
#pragma omp parallel for schedule(static) if ((size_t)npacks * N >= (1u << 16))
    for (int p = 0; p < npacks; p++) {
        uint8_t codes[NT_QI_TILE_N][NT_QPACK]; // [channel in tile][k in pack]
        for (int tile = 0; tile < tiles; tile++) {
            for (int c = 0; c < NT_QI_TILE_N; c++) block_codes(t, qweight, N, p, tile * NT_QI_TILE_N + c, codes[c]);
            for (int l = 0; l < 32; l++) {
                uint32_t w[NT_QBITS_MAX] = {0};
                for (int e = 0; e < 32; e++) put_code(w, bits, e, codes[nt_qi_channel(l, e)][nt_qi_k(l, e)]);
                for (int i = 0; i < bits; i++) qi[nt_qi_word_index(bits, tiles, p, tile, l, i)] = w[i];
            }
        }
    }
}

void nt_qi_deinterleave(const uint32_t *qi, int N, int npacks, int bits, uint32_t *qweight) {
    const nt_qtraits *t = nt_qtraits_get(bits);
    NT_ASSERT(t != NULL);
    const int tiles = nt_qi_tiles(N);
#pragma omp parallel for schedule(static) if ((size_t)npacks * N >= (1u << 16))
    for (int p = 0; p < npacks; p++) {
        uint8_t codes[NT_QI_TILE_N][NT_QPACK];
        for (int tile = 0; tile < tiles; tile++) {
            for (int l = 0; l < 32; l++) {
                uint32_t w[NT_QBITS_MAX];
                for (int i = 0; i < bits; i++) w[i] = qi[nt_qi_word_index(bits, tiles, p, tile, l, i)];
                for (int e = 0; e < 32; e++) codes[nt_qi_channel(l, e)][nt_qi_k(l, e)] = (uint8_t)get_code(w, bits, e);
            }
            for (int c = 0; c < NT_QI_TILE_N && tile * NT_QI_TILE_N + c < N; c++)
                t->pack(codes[c], qweight + (size_t)p * bits * N + tile * NT_QI_TILE_N + c, (size_t)N);
        }
    }
}

int nt_qi_code(const uint32_t *qi, int N, int bits, int n, int kp) {
    const int tiles = nt_qi_tiles(N), tile = n / NT_QI_TILE_N, dn = n % NT_QI_TILE_N, p = kp / NT_QPACK,
              dk = kp % NT_QPACK;
    // invert the fragment map: nt, g, r&1 from the channel offset; kt, t, h, r>>1 from the k offset
    int nt = dn / 16, g = dn % 8, r_lo = (dn / 8) & 1, kt = dk / 16, r_hi = (dk / 8) & 1, t = (dk % 8) / 2,
        h = dk & 1;
    int lane = 4 * g + t, e = 8 * (2 * nt + kt) + 2 * (r_lo + 2 * r_hi) + h;
    uint32_t w[NT_QBITS_MAX];
    for (int i = 0; i < bits; i++) w[i] = qi[nt_qi_word_index(bits, tiles, p, tile, lane, i)];
    return (int)get_code(w, bits, e);
}

void nt_qi_meta(const uint16_t *scales, const uint8_t *zeros, int sym_zero, int n_groups, int N, uint16_t *qs,
                uint8_t *qz) {
    const int tiles = nt_qi_tiles(N);
    for (int G = 0; G < n_groups; G++)
        for (int tile = 0; tile < tiles; tile++)
            for (int g = 0; g < 8; g++)
                for (int c = 0; c < 4; c++) {
                    size_t o = (((size_t)G * tiles + tile) * 8 + g) * 4 + c;
                    int n = tile * NT_QI_TILE_N + g + 8 * c;
                    qs[o] = n < N ? scales[(size_t)G * N + n] : 0;
                    qz[o] = n < N ? (zeros ? zeros[(size_t)G * N + n] : (uint8_t)sym_zero) : 0;
                }
}

// ---------------------------------------------------------------------------------- the decode, in scalar C
// fp16 a * b + c rounded once (as fma.rn.f16x2 does per half): the exact product and sum in double, then to
// fp16 through fp32 rounded to odd (so the second rounding is a correct single rounding).
static uint16_t h_fma(uint16_t a, uint16_t b, uint16_t c) {
    double d = (double)nt_f16_to_f32(a) * nt_f16_to_f32(b) + nt_f16_to_f32(c);
    float f = (float)d;
    if ((double)f != d && isfinite(f)) {
        if (fabs((double)f) > fabs(d)) f = nextafterf(f, 0.0f);
        uint32_t u;
        memcpy(&u, &f, 4);
        u |= 1u; // round to odd
        memcpy(&f, &u, 4);
    }
    return nt_f32_to_f16(f);
}
static uint16_t h_sub(uint16_t a, uint16_t b) { return h_fma(b, 0xbc00 /* -1 */, a); }

// fp16x2 d = a * b + c, per half.
static uint32_t h2_fma(uint32_t a, uint32_t b, uint32_t c) {
    return (uint32_t)h_fma((uint16_t)a, (uint16_t)b, (uint16_t)c) |
           (uint32_t)h_fma((uint16_t)(a >> 16), (uint16_t)(b >> 16), (uint16_t)(c >> 16)) << 16;
}

// PRMT: byte k of the result is byte sel[4k..4k+3] of the 8 bytes {a (0-3), b (4-7)}.
static uint32_t prmt(uint32_t a, uint32_t b, uint32_t sel) {
    uint64_t x = (uint64_t)a | (uint64_t)b << 32;
    uint32_t d = 0;
    for (int k = 0; k < 4; k++) d |= (uint32_t)(x >> 8 * ((sel >> 4 * k) & 7) & 0xff) << 8 * k;
    return d;
}

void nt_qi_decode_lane_ref(int bits, const uint32_t *words, const uint8_t zero4[4], uint16_t out[32]) {
    for (int f = 0; f < 4; f++)
        for (int r = 0; r < 4; r++) {
            const int c = 2 * (f >> 1) + (r & 1); // zero of channel g + 8c
            uint32_t v = 0;
            int s = 0; // the pair sits at 2^s in the mantissa
            if (bits == 4) {
                uint32_t w = words[f] >> (r >> 1) * 8;
                s = 4 * (r & 1);
                v = (w & (0x000f000fu << s)) | NT_QI_MAGIC;
            } else if (bits == 2 || bits == 3) {
                const int i = f >> 1, ph = f & 1;
                uint32_t lo = words[i] >> 8 * ph;
                s = 2 * r;
                v = (lo & (0x00030003u << s)) | NT_QI_MAGIC;
                if (bits == 3) {
                    const int sel = 2 * i + ph; // the high plane moved so the bit sits at 2r + 2
                    uint32_t hi = sel == 0 ? words[2] << 2 : sel == 1 ? words[2] << 1 : sel == 2 ? words[2] >> 6
                                                                                               : words[2] >> 7;
                    v |= hi & (0x00040004u << s);
                }
            } else { // 8 bits: bytes (q_lo, 0x64, q_hi, 0x64)
                v = prmt(words[2 * f + (r >> 1)], 0x64646464u, (r & 1) ? 0x4341u : 0x4240u);
            }
            // zm = 1024 + zero (fp16, both halves), term = (1024 - 1024 * 2^-s) - zm = -(1024 * 2^-s + zero)
            const uint16_t zm = (uint16_t)(0x6400u | zero4[c]);
            const uint16_t k_s = nt_f32_to_f16(1024.0f - ldexpf(1024.0f, -s)), term = h_sub(k_s, zm);
            const uint16_t mul = nt_f32_to_f16(ldexpf(1.0f, -s));
            uint32_t d = h2_fma(v, (uint32_t)mul * 0x10001u, (uint32_t)term * 0x10001u);
            out[8 * f + 2 * r] = (uint16_t)d;
            out[8 * f + 2 * r + 1] = (uint16_t)(d >> 16);
        }
}
