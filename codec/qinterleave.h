// qinterleave.h: the tensor-core order of qformat.h's packed weights: the layout the CUDA kernels of kernels/qgemm.cu
// read, made once at upload from the canonical layout (qformat.h), its inverse, and the scalar reference of the
// fp16x2 "magic number" decode the kernels run on it. Reference code (qinterleave.c); the kernels are the fast
// readers. The canonical layout stays the interchange format; nothing but the kernels' loader makes this one.
//
// ------------------------------------------------------------------------------------------------ the tile
// K (in kernel column order, see gpu.h's layout: K reordered by group for act-order, padded to packs) is cut into
// packs of 32 (NT_QPACK), N into tiles of 32 channels (the last one padded with zero codes). A (pack, tile) block
// of 32 x 32 codes is what one warp of 32 lanes multiplies per step: two 16-channel x 16-k A fragments of
// mma.m16n8k16 (weights as A: the GEMV kernel) or, read the other way round, four 16-k x 8-channel B fragments
// (weights as B: the tensor-core kernel); both orders give each lane the same 32 codes. Lane l (g = l / 4,
// t = l % 4) holds codes e = 0..31 with e = 8f + 2r + h: fragment f = 2 nt + kt (nt: channels 16 nt.., kt: k
// 16 kt..), register r (0..3) and half h (0 low, 1 high) of the PTX ISA's A fragment:
//     channel = 16 nt + g + 8 (r & 1),   k = 16 kt + 2 t + h + 8 (r >> 1)          (offsets inside the block)
// so the two halves of a register are the two consecutive k of one channel, registers 0 and 2 are channel g,
// 1 and 3 channel g + 8. (As B fragments: channel g's b0 = register 0, b1 = register 2; channel g + 8's b0, b1 =
// registers 1, 3.)
//
// ------------------------------------------------------------------------------- the lane's `bits` words
// The lane's 32 codes fill exactly `bits` 32-bit words, placed so that one LOP3 (mask and OR) lifts a pair of
// codes into the mantissas of an fp16x2 (the exponent-bias trick: 0x6400 | x is the fp16 1024 + x for x < 1024),
// with no bit of a code in another word than its pair's (no cross-word shuffles):
//   2, 4, 8 bits: word w = e / (32 / bits) holds the (32 / bits) codes of pair slots j = (e % (32 / bits)) / 2,
//     code (slot j, half h) at bit 16 h + bits * j.
//       4 bits: word = fragment f, slot = register r: (w & 0x000f000f) is register 0, (w & 0x00f000f0) register 1
//         (times 16), (w >> 8) the same for registers 2, 3.
//       2 bits: word i = fragments 2i, 2i+1; slot j = 4 (f % 2) + r: register r of fragment 2i is (w & (3 << 2r))
//         (times 4^r) per half, fragment 2i+1 the same on w >> 8.
//       8 bits: word i = registers 2 (i % 2), +1 of fragment i / 2: a byte permute (PRMT) with 0x64 bytes makes
//         each register.
//   3 bits: two planes. Words 0, 1 hold the low two bits of each code exactly as the 2-bit format does; word 2
//     the high bit of all 32: the high bit of code (lo word i, phase ph = j / 4 (0: bits 0-7 of a half, 1: bits
//     8-15), r = j % 4, half h) sits at bit 16 h + P, P = 2r, 2r+1, 2r+8, 2r+9 for (i, ph) = (0,0), (0,1), (1,0),
//     (1,1): shifted by -2, -1, 6, 7 the high word puts it at bit 2r + 2 of each half, just above its low bits,
//     so (lo & (3 << 2r)) | (hi' & (4 << 2r)) | 0x64006400 is 1024 + 4^r q for a pair (two LOP3s).
// Codes lifted as 1024 + 2^s q (s = 0 or the slot's shift) become q - zero exactly with one fp16x2 FMA:
// (1024 + 2^s q) * 2^-s + (-(1024 * 2^-s + zero)), every operand and the result exact in fp16 (q, zero <= 255).
//
// Storage: qi (npacks, tiles, 32 * bits) uint32; the lane's words are stored in chunks of 4, then 2, then 1 word
// (bits 2: [2]; 3: [2, 1]; 4: [4]; 8: [4, 4]), each chunk lane-major (chunk of size c at word offset o: words
// 32 o + c l .. +c-1), so a warp loads a chunk with one 16-, 8- or 4-byte load per lane, all 32 lanes contiguous.
//
// ------------------------------------------------------------------------------ per-group scale and zero
// qs (n_groups, tiles, 8, 4) fp16 and qz (n_groups, tiles, 8, 4) uint8: entry [G][tile][g][c] is the scale and
// zero point of group G, channel 32 tile + g + 8 c; a lane (g, t) gets the four channels it touches (g, g+8,
// g+16, g+24) with one 8-byte and one 4-byte load, lanes g*4..g*4+3 read the same address. Symmetric linears get
// qz filled with the implied zero point (2^(bits-1)), so the kernels have one path. Padded channels: scale 0,
// zero 0, codes 0 (they compute 0 and are never written).
#pragma once
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define NT_QI_TILE_N 32         // channels per tile
#define NT_QI_MAGIC 0x64006400u // fp16x2 (1024, 1024): OR-ed above a code in the mantissa

// Tiles along N: ceil(N / 32).
static inline int nt_qi_tiles(int N) { return (N + NT_QI_TILE_N - 1) / NT_QI_TILE_N; }

// Channel (0..31) and k (0..31) offsets inside the block of code e (0..31) of lane l (0..31).
static inline int nt_qi_channel(int lane, int e) {
    int f = e >> 3, r = (e >> 1) & 3;
    return 16 * (f >> 1) + (lane >> 2) + 8 * (r & 1);
}
static inline int nt_qi_k(int lane, int e) {
    int f = e >> 3, r = (e >> 1) & 3, h = e & 1;
    return 16 * (f & 1) + 2 * (lane & 3) + h + 8 * (r >> 1);
}

// Chunk of the lane's word w: its size c and first word o (see Storage above).
static inline void nt_qi_chunk(int bits, int w, int *size, int *first) {
    int o = w >= 4 ? 4 : (bits == 3 && w == 2 ? 2 : 0);
    int rest = bits - o;
    *first = o;
    *size = rest >= 4 ? 4 : (rest >= 2 ? 2 : 1);
}

// Index in qi of word w of lane l of block (pack, tile).
static inline size_t nt_qi_word_index(int bits, int tiles, int pack, int tile, int lane, int w) {
    int c, o;
    nt_qi_chunk(bits, w, &c, &o);
    return ((size_t)pack * tiles + tile) * 32 * bits + 32 * o + c * lane + (w - o);
}

// Where code e of a lane lives among its words: the word and bit of its low part (all of it, except for 3 bits:
// the low two bits) and, for 3 bits, the word (2) and bit of its high bit (else *hi_word = -1).
static inline void nt_qi_code_pos(int bits, int e, int *word, int *bit, int *hi_word, int *hi_bit) {
    int lb = bits == 3 ? 2 : bits, per = 32 / lb, j = (e % per) / 2, h = e & 1;
    *word = e / per;
    *bit = 16 * h + lb * j;
    *hi_word = -1;
    *hi_bit = 0;
    if (bits == 3) {
        int ph = j >> 2, r = j & 3, sel = 2 * *word + ph;
        *hi_word = 2;
        *hi_bit = 16 * h + 2 * r + (sel & 1) + 8 * (sel >> 1);
    }
}

// canonical qweight (npacks * bits, N) (qformat.h's packing along K) -> qi (npacks, tiles, 32 * bits); padding
// channels get code 0. bits 2, 3, 4 or 8.
void nt_qi_interleave(const uint32_t *qweight, int N, int npacks, int bits, uint32_t *qi);
// qi -> canonical qweight (npacks * bits, N) (the padding channels are dropped).
void nt_qi_deinterleave(const uint32_t *qi, int N, int npacks, int bits, uint32_t *qweight);
// The code of channel n, kernel column kp, read from qi through the maps above (scalar).
int nt_qi_code(const uint32_t *qi, int N, int bits, int n, int kp);
// scales (n_groups, N) fp16 and zeros (n_groups, N) (NULL: symmetric, every zero sym_zero) -> qs, qz
// (n_groups, tiles, 8, 4).
void nt_qi_meta(const uint16_t *scales, const uint8_t *zeros, int sym_zero, int n_groups, int N, uint16_t *qs,
                uint8_t *qz);
// The kernels' decode of one lane's words, in scalar C with fp16 arithmetic: out[e] = the fp16 bits of
// q_e - zero_c for code e, where zero_c (c = channel offset / 8, 0..3) is zero4[c]: masks, the 0x6400 exponent
// bias and one fp16 FMA per pair, exactly as documented above. The round-trip test checks it against the codes.
void nt_qi_decode_lane_ref(int bits, const uint32_t *words /*(bits)*/, const uint8_t zero4[4], uint16_t out[32]);

#ifdef __cplusplus
}
#endif
