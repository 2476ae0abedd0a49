// qgemm.cu: the fast versions of Y (M, N) fp16 = X (M, K) fp16 . dequant(W)^T over qformat.h's packed format, read
// in codec/qinterleave.h's tensor-core order (made at upload; references: nt_ref_qgemm, and nt_ref_qgemm_layout
// for the layout, in kernels_ref.c). Three paths, chosen by M (nt_qkernel_pick):
//
// GEMV (M <= 8; template <bits, MP = M rounded up to 1, 2, 4, 8, SPP>): memory-bound, so the measure is
// instructions issued per weight. A warp owns one 32-channel tile; per 32-value pack each lane loads its `bits`
// words (one 16-byte load for 4 bits: the warp's 512 bytes contiguous), lifts pairs of codes into fp16x2 with the
// exponent-bias trick (one LOP3 per pair, two for 3 bits: qinterleave.h) and makes q - zero exactly with one
// fp16x2 FMA/SUB per pair, straight into the A fragments of mma.sync.m16n8k16 (weights 16 channels x 16 k);
// X^T is the B operand (8 columns >= M; the columns past M compute junk that is never stored), staged per block
// in shared memory in the lanes' fragment order (one 16-byte shared load per pack feeds four MMAs). The tensor
// core does the multiply-add in fp32 for all M <= 8 at once: 1/8 instruction per weight per lane. Scales are
// applied in fp32 on the accumulators once per scale step of SPP packs (the layout guarantees every change of
// group falls on a multiple of SPP: 4 for group 128 and per channel, 2 for 64, 1 for 32 or arbitrary g_idx):
// the step's first MMA starts from zero, and acc += scale * step at its end. Zero points come in as fp16x2
// terms built per step from one 4-byte load (PRMT) of qinterleave.h's per-lane order, scales from one 8-byte
// load. The loop over packs keeps four packs of weights (and their scale steps) in flight in registers: the
// loads of pack p + 4 are issued as pack p is decoded, the first four of a segment before the block's X
// staging barrier; weight loads bypass L1 with an L2 evict-first policy.
// Work is split into stripes: the (128-channel block, 4-pack quad) units in channel-major order are cut into
// gridDim.x equal contiguous ranges, one per block (4 warps = 4 tiles); a block walks its range segment by
// segment (a segment = the part of one channel block's K in the range). A segment covering all of K writes Y; a
// partial one writes fp32 partial sums to its slot and counts its arrival on the channel block's counter; the
// last to arrive adds the slots in a fixed order (deterministic whatever the order of arrival), writes Y and
// resets the counter: split-K in one kernel, no second launch.
//
// MMA (M 9..511; template <bits, MT>): Marlin-style. X is the A operand (MT*16 rows per tile: the tile height
// matched to M, 16..64, then 64-row tiles), the weights are B: each lane's words dequantized in registers (the
// same decode, then x scale in fp16x2: the weights the MMA sees are fp16(s * (q - zero)), nt_ref_qgemm's w_f16)
// straight into the B fragments of four n8 tiles per k16 step. A 4-stage cp.async pipeline carries the X tile,
// the raw weight words and the scale/zero entries of two packs per stage into shared memory; warps own 32-channel
// tiles of a 128-channel block; units (row tile x channel block x stage) are striped across the blocks exactly
// as the GEMV's, with the same counter reduction for tiles shared by two blocks.
//
// DENSE (M >= 512): the stop-gap. Hopper's wgmma with TMA and warp specialization (Machete's design) would be the
// real kernel, but neither can be run or checked here (no GPU; the CPU emulator covers mma.sync, not wgmma's
// descriptors, TMA tensor maps or mbarriers), so the large-M path dequantizes the weights to fp16 once per call
// (dequant_kernel: a warp per 32 x 32 block, the same decode, coalesced through shared memory) and calls
// cuBLASLt, whose cost the benchmark measures like every other path.
//
// Status: built for sm_80 and sm_90 and checked on the CPU emulator (test_kernels_emu: every bit width, M from 1
// to past 512, awkward shapes, act-order, a shorter last group, seeded block orders); not yet run on a GPU, so
// nothing here about speed is measured. The static budget from the SASS (benchmarks/sass_budget.sh, nvcc 13,
// sm_90; results/sass_budget.csv): GEMV hot loop 1.6-1.7 instructions per weight at group 128 (2.4 for 3 bits),
// 2.1-2.3 at group 32 (3.0 for 3 bits), against budgets of 2.3 / 3.4 / 4.5 / 9.1; MMA 5.6-6.7 instructions per
// HMMA at 64-row tiles, 16-21 at 16-row tiles (4.2-5.1 per weight: there one B fragment feeds one HMMA, so the
// decode dominates; the GEMV's orientation with two n8 column tiles would serve M <= 16 better); no kernel
// spills. Open questions only a device answers: whether 4 packs in flight per warp at 12 warps per SM hide DRAM
// latency for 2 and 3 bits (their packs are small: ~12-18 KB in flight per SM), and the tensor cores'
// accumulation order against the emulator's.
#include <string.h>

#include "gpu_common.cuh"
#include "ptx.cuh"
#include "qinterleave.h"

// ------------------------------------------------------------------------------------------------- decode
// fp16x2 constants: 2^-s for the pair shifts, and 1024 - 1024 * 2^-s for the zero terms.
#define H2_ONE_16 0x2c002c00u  // 1/16
#define H2_ONE_4 0x34003400u   // 1/4
#define H2_ONE_64 0x24002400u  // 1/64
#define H2_K768 0x62006200u    // 1024 - 256
#define H2_K960 0x63806380u    // 1024 - 64
#define H2_K1008 0x63e063e0u   // 1024 - 16
#define LOP_AND_OR 0xea        // lop3: (a & b) | c

// The zero-point terms of one scale step for the lane's four channels c = 0..3 (32 tile + g + 8c): zm = 1024 +
// zero in both halves (a PRMT of the zero byte under 0x64), and per 16-channel half nt the shifted terms
// -(1024 * 2^-s + zero) its pairs need: 4 bits: channel 2nt+1 at s = 4; 2 and 3 bits: 2nt+1 at s = 2 and 6,
// 2nt at s = 4; 8 bits: none (every pair at s = 0).
struct zterms {
    uint32_t zm[4];
    uint32_t t_odd_a[2], t_odd_b[2], t_even[2];
};

template <int BITS> __device__ __forceinline__ void make_terms(uint32_t zw, zterms &T) {
#pragma unroll
    for (int c = 0; c < 4; c++) T.zm[c] = prmt(zw, 0x64646464u, 0x4040u + 0x0101u * c);
#pragma unroll
    for (int nt = 0; nt < 2; nt++) {
        if constexpr (BITS == 4) {
            T.t_odd_a[nt] = hsub2(H2_K960, T.zm[2 * nt + 1]);
        } else if constexpr (BITS == 2 || BITS == 3) {
            T.t_odd_a[nt] = hsub2(H2_K768, T.zm[2 * nt + 1]);
            T.t_odd_b[nt] = hsub2(H2_K1008, T.zm[2 * nt + 1]);
            T.t_even[nt] = hsub2(H2_K960, T.zm[2 * nt]);
        }
    }
}

// The lane's 32 codes of one (pack, tile) block as q - zero in fp16x2: a[f][r] is register r of fragment f
// (qinterleave.h). Compile-time indices throughout (everything unrolled), so the words stay in registers.
template <int BITS>
__device__ __forceinline__ void decode_block(const uint32_t (&w)[BITS], const zterms &T, uint32_t (&a)[4][4]) {
    if constexpr (BITS == 4) {
#pragma unroll
        for (int f = 0; f < 4; f++) {
            const int nt = f >> 1;
            const uint32_t lo = w[f], hi = w[f] >> 8;
            a[f][0] = hsub2(lop3<LOP_AND_OR>(lo, 0x000f000fu, NT_QI_MAGIC), T.zm[2 * nt]);
            a[f][1] = hfma2(lop3<LOP_AND_OR>(lo, 0x00f000f0u, NT_QI_MAGIC), H2_ONE_16, T.t_odd_a[nt]);
            a[f][2] = hsub2(lop3<LOP_AND_OR>(hi, 0x000f000fu, NT_QI_MAGIC), T.zm[2 * nt]);
            a[f][3] = hfma2(lop3<LOP_AND_OR>(hi, 0x00f000f0u, NT_QI_MAGIC), H2_ONE_16, T.t_odd_a[nt]);
        }
    } else if constexpr (BITS == 2 || BITS == 3) {
#pragma unroll
        for (int f = 0; f < 4; f++) {
            const int i = f >> 1, ph = f & 1, nt = i; // lo word i holds fragments 2i (bits 0-7) and 2i+1 (8-15)
            const uint32_t lo = ph ? w[i] >> 8 : w[i];
            uint32_t v[4];
#pragma unroll
            for (int r = 0; r < 4; r++) v[r] = lop3<LOP_AND_OR>(lo, 0x00030003u << (2 * r), NT_QI_MAGIC);
            if constexpr (BITS == 3) { // the high plane, moved so each code's high bit sits at 2r + 2
                const uint32_t h3 = w[2];
                const uint32_t hs = f == 0 ? h3 << 2 : f == 1 ? h3 << 1 : f == 2 ? h3 >> 6 : h3 >> 7;
#pragma unroll
                for (int r = 0; r < 4; r++) v[r] = lop3<LOP_AND_OR>(hs, 0x00040004u << (2 * r), v[r]);
            }
            a[f][0] = hsub2(v[0], T.zm[2 * nt]);
            a[f][1] = hfma2(v[1], H2_ONE_4, T.t_odd_a[nt]);
            a[f][2] = hfma2(v[2], H2_ONE_16, T.t_even[nt]);
            a[f][3] = hfma2(v[3], H2_ONE_64, T.t_odd_b[nt]);
        }
    } else { // 8 bits: word 2f holds registers 0, 1 and word 2f+1 registers 2, 3, one byte per half
#pragma unroll
        for (int f = 0; f < 4; f++) {
            const int nt = f >> 1;
#pragma unroll
            for (int j = 0; j < 2; j++) {
                const uint32_t x = w[2 * f + j];
                a[f][2 * j] = hsub2(prmt(x, 0x64646464u, 0x4240u), T.zm[2 * nt]);
                a[f][2 * j + 1] = hsub2(prmt(x, 0x64646464u, 0x4341u), T.zm[2 * nt + 1]);
            }
        }
    }
}

// The lane's words of pack pl's block of its tile from global memory (chunks of qinterleave.h: one 16-, 8- or
// 4-byte load each). Indices are unsigned 32-bit, in units of the chunk's vector type, from the kernel's base
// pointer: base[pl * stride + lane's offset], one IMAD and one IMAD.WIDE.U32 per load. lane_base(BITS, word
// index of the tile's block in pack 0, lane) gives the offsets.
struct lane_base {
    uint32_t v, v1; // the first chunk (uint4 for 4 and 8 bits, uint2 for 2 and 3) and the 3-bit plane (uint32)
};
template <int BITS> __device__ __forceinline__ lane_base make_lane_base(uint32_t block0, int lane) {
    lane_base b;
    b.v = (BITS == 2 || BITS == 3 ? block0 / 2 : block0 / 4) + (uint32_t)lane;
    b.v1 = block0 + 64u + (uint32_t)lane;
    return b;
}
template <int BITS>
__device__ __forceinline__ void load_block(uint32_t (&w)[BITS], const uint32_t *qi, uint32_t pl, uint32_t pstride,
                                           const lane_base &lb, uint64_t pol) {
    if constexpr (BITS == 2 || BITS == 3) {
        uint2 v = ld_stream2(reinterpret_cast<const uint32_t *>(reinterpret_cast<const uint2 *>(qi) +
                                                                (pl * (pstride / 2) + lb.v)),
                             pol);
        w[0] = v.x;
        w[1] = v.y;
        if constexpr (BITS == 3) w[2] = ld_stream1(qi + (pl * pstride + lb.v1), pol);
    } else {
#pragma unroll
        for (int c = 0; c < BITS / 4; c++) {
            uint4 v = ld_stream4(reinterpret_cast<const uint32_t *>(reinterpret_cast<const uint4 *>(qi) +
                                                                    (pl * (pstride / 4) + lb.v + 32u * c)),
                                 pol);
            w[4 * c] = v.x;
            w[4 * c + 1] = v.y;
            w[4 * c + 2] = v.z;
            w[4 * c + 3] = v.w;
        }
    }
}

// The same from shared memory (a block copied as is by cp.async).
template <int BITS> __device__ __forceinline__ void lds_block(uint32_t (&w)[BITS], const uint32_t *blk, int lane) {
    if constexpr (BITS == 2 || BITS == 3) {
        uint2 v = *reinterpret_cast<const uint2 *>(blk + 2 * lane);
        w[0] = v.x;
        w[1] = v.y;
        if constexpr (BITS == 3) w[2] = blk[64 + lane];
    } else {
#pragma unroll
        for (int c = 0; c < BITS / 4; c++) {
            uint4 v = *reinterpret_cast<const uint4 *>(blk + 128 * c + 4 * lane);
            w[4 * c] = v.x;
            w[4 * c + 1] = v.y;
            w[4 * c + 2] = v.z;
            w[4 * c + 3] = v.w;
        }
    }
}

// ------------------------------------------------------------------------------------------------ stripes
// Units 0..U-1 (channel-major: unit = tile_of_units * per_tile + k unit) cut into gridDim.x contiguous ranges;
// a block's partial segments write slot 2b (its first segment) or 2b + 1 (its last). Unsigned 32-bit arithmetic
// (64-bit division is a register-hungry subroutine): the host guarantees U * (B + 1) < 2^32 (stripe_blocks).
struct stripe {
    uint32_t U, B, per_tile;
};
// The first unit of block b (and one past the last of block b - 1).
__device__ __forceinline__ uint32_t stripe_lo(const stripe &S, uint32_t b) { return S.U * b / S.B; }
// The block whose range holds unit u: the largest b with stripe_lo(b) <= u.
__device__ __forceinline__ uint32_t stripe_block(const stripe &S, uint32_t u) {
    return ((u + 1) * S.B + S.U - 1) / S.U - 1;
}

// The last-arriving reduction of a tile shared by several blocks: called by every thread of the block after
// it wrote its slot; returns true in the block that must add the slots (they are then all visible to it).
__device__ __forceinline__ bool arrive_last(int *counter, int n_contrib, int *flag) {
    __threadfence(); // this block's partial sums before its arrival
    __syncthreads();
    if (threadIdx.x == 0) {
        int old = atomicAdd(counter, 1);
        *flag = old == n_contrib - 1;
        if (*flag) *counter = 0; // every contributor has arrived: ready for the next launch
    }
    __syncthreads();
    bool last = *flag != 0;
    if (last) __threadfence();
    return last;
}

// The slot in which block b keeps its partial sums of tile `tile`.
__device__ __forceinline__ int slot_of(const stripe &S, uint32_t b, uint32_t tile) {
    return 2 * (int)b + (stripe_lo(S, b) >= tile * S.per_tile ? 0 : 1);
}

// ------------------------------------------------------------------------------------------------- GEMV
#define GEMV_THREADS 128 // 4 warps: a 128-channel block
#define GEMV_XPACKS 512  // MP x packs of X staged at once (32 KB of fp16)
// Blocks per SM the registers must allow: 3 (<= 168 registers a thread), 2 for 8 bits (its 4-pack ring is 32
// registers; its packs are twice the 4-bit ones, so bytes in flight per SM stay as large).
#define GEMV_MIN_BLOCKS(bits) ((bits) == 8 ? 2 : 3)

struct gemv_args {
    const uint32_t *qi;       // (npacks, tiles, 32*bits)
    const uint32_t *qs;       // (n_groups, tiles, 8, 4) fp16, read as pairs
    const uint32_t *qz;       // (n_groups, tiles, 8, 4) uint8, read as words
    const int32_t *pack_group; // (npacks)
    const int32_t *kmap;      // (Kp) or NULL
    const __half *X;          // (M, K)
    __half *Y;                // (M, N)
    float *partial;           // (2 * gridDim.x, MP, 128)
    int *counters;            // (channel blocks)
    int M, K, N, npacks, tiles, ncb;
};

template <int BITS, int MP, int SPP>
__global__ void __launch_bounds__(GEMV_THREADS, GEMV_MIN_BLOCKS(BITS)) qgemv_kernel(const gemv_args a) {
    constexpr int XCP = GEMV_XPACKS / MP;  // packs per X chunk (a multiple of 4)
    constexpr int XROW = XCP * 32 + 32;    // halves per staged row: + 64 bytes, so the 8 rows of a warp's
                                           // 16-byte loads fall in different banks
    constexpr int NSTEP = 4 / SPP;         // scale steps per 4 packs
    __shared__ __align__(16) __half xs[MP * XROW];
    __shared__ int last_flag;
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, g = lane >> 2, t = lane & 3;
    const uint64_t pol = l2_evict_first();
    const int nq = (a.npacks + 3) / 4;
    const stripe S = {(uint32_t)a.ncb * nq, gridDim.x, (uint32_t)nq};
    const uint32_t lo = stripe_lo(S, blockIdx.x), hi = stripe_lo(S, blockIdx.x + 1);
    // words from one pack's block of a tile to the next: a multiple of 64 (< 2^31: qi is < 8 GB)
    const uint32_t pstride = (uint32_t)a.tiles * 32 * BITS;

    for (uint32_t u = lo; u < hi;) {
        const int cb = (int)(u / nq);
        const uint32_t tile_lo = (uint32_t)cb * nq, tile_hi = tile_lo + nq, se = hi < tile_hi ? hi : tile_hi;
        const int p0 = (int)(u - tile_lo) * 4, p1 = min((int)(se - tile_lo) * 4, a.npacks);
        const int tile = cb * 4 + warp;
        const bool active = tile < a.tiles;
        const lane_base lb = make_lane_base<BITS>((uint32_t)(active ? tile : 0) * 32 * BITS, lane);
        const uint32_t mt = (uint32_t)(active ? tile : 0) * 8 + g;       // the lane's entry in group 0
        const uint32_t gstride = (uint32_t)a.tiles * 8;                   // entries from one group to the next

        float acc[2][4];
#pragma unroll
        for (int nt = 0; nt < 2; nt++)
#pragma unroll
            for (int r = 0; r < 4; r++) acc[nt][r] = 0.0f;

        // The ring: words of packs p .. p+3 and the scale/zero entries of their steps. A refill reads pack p + 4;
        // in the segment's last quad that can be past its end, and the index is clamped to the last pack there (a
        // redundant load whose value is never used): no predicate, no branch.
        uint32_t ring[4][BITS], mring[NSTEP][3];
        auto load_pack = [&](uint32_t (&w)[BITS], int pn) { load_block<BITS>(w, a.qi, (uint32_t)pn, pstride, lb, pol); };
        auto load_meta = [&](uint32_t (&m)[3], int group) {
            const uint32_t e = (uint32_t)group * gstride + mt;
            const uint2 sv = __ldg(reinterpret_cast<const uint2 *>(a.qs) + e); // the lane's 4 channels
            m[0] = sv.x;
            m[1] = sv.y;
            m[2] = __ldg(a.qz + e);
        };
        if (active)
#pragma unroll
            for (int i = 0; i < 4; i++) {
                const int pn = min(p0 + i, p1 - 1);
                load_pack(ring[i], pn);
                if (i % SPP == 0) load_meta(mring[i / SPP], __ldg(a.pack_group + pn));
            }

        // One pack from ring slot i: decode, four MMAs into the step's accumulators, refill the slot with pack pn
        // (whose group is *pg). Accumulator elements r = 0..3 of a half are rows (channels) g, g+8 x columns (rows
        // of X) 2t, 2t+1; with MP = 1 the odd columns are never stored, so they are not scaled either.
        float cs[2][4];
        zterms T;
        uint32_t sc0 = 0, sc1 = 0;
        auto do_pack = [&](int i, const __half *xp, bool step_end, int pn, const int32_t *pg) {
            if (i % SPP == 0) { // step start: this step's zero terms and scales
                make_terms<BITS>(mring[i / SPP][2], T);
                sc0 = mring[i / SPP][0];
                sc1 = mring[i / SPP][1];
                if (SPP > 1) load_meta(mring[i / SPP], __ldg(pg)); // refilled at once: needed 4 packs on
            }
            uint32_t fr[4][4];
            decode_block<BITS>(ring[i], T, fr);
            load_pack(ring[i], pn);
            const uint4 xv = *reinterpret_cast<const uint4 *>(xp); // B fragments of both k16 halves
#pragma unroll
            for (int nt = 0; nt < 2; nt++) {
                if (i % SPP == 0) mma_16816_zero(cs[nt], fr[2 * nt], xv.x, xv.y);
                else mma_16816(cs[nt], fr[2 * nt], xv.x, xv.y);
                mma_16816(cs[nt], fr[2 * nt + 1], xv.z, xv.w);
            }
            if (step_end) { // rows g and g + 8 of each half: channels 2nt and 2nt+1 of the lane's four
                const float s[4] = {h2_lo(sc0), h2_hi(sc0), h2_lo(sc1), h2_hi(sc1)};
#pragma unroll
                for (int nt = 0; nt < 2; nt++)
#pragma unroll
                    for (int r = 0; r < 4; r++)
                        if (MP > 1 || (r & 1) == 0) acc[nt][r] = fmaf(s[2 * nt + (r >> 1)], cs[nt][r], acc[nt][r]);
            }
            if (SPP == 1) load_meta(mring[i], __ldg(pg)); // one-pack steps: refilled after their last use
        };
        // A quad at p with refills clamped to the segment (its last quad) or not (every other).
        auto quad_clamped = [&](int p, const __half *xp) {
#pragma unroll
            for (int i = 0; i < 4; i++) {
                const int pn = min(p + 4 + i, p1 - 1);
                do_pack(i, xp + 32 * i, i % SPP == SPP - 1, pn, a.pack_group + pn);
            }
        };

        for (int c0 = p0; c0 < p1; c0 += XCP) {
            const int c1 = min(c0 + XCP, p1);
            __syncthreads(); // the previous chunk (or segment) is no longer read
            // X (M, K) -> xs in fragment order: pack pp, lane t, then (k16 half kt, register r>>1, half h)
            const int pairs = MP * (c1 - c0) * 16;
            for (int i = threadIdx.x; i < pairs; i += GEMV_THREADS) {
                const int m = i / ((c1 - c0) * 16), rem = i - m * (c1 - c0) * 16, pp = rem >> 4, q = rem & 15;
                const int kt = q >> 3, rh = (q >> 2) & 1, tt = q & 3; // the pair (2tt, 2tt+1) + 8 rh + 16 kt
                const int kp = (c0 + pp) * 32 + 16 * kt + 8 * rh + 2 * tt;
                __half v[2];
#pragma unroll
                for (int h = 0; h < 2; h++) {
                    const int k = a.kmap ? __ldg(a.kmap + kp + h) : kp + h;
                    v[h] = m < a.M && k >= 0 && k < a.K ? a.X[(size_t)m * a.K + k] : __float2half_rn(0.0f);
                }
                __half *d = xs + m * XROW + pp * 32 + tt * 8 + kt * 4 + rh * 2;
                d[0] = v[0];
                d[1] = v[1];
            }
            __syncthreads();
            if (!active) continue;
            const __half *xp = xs + (g % MP) * XROW + t * 8; // the lane's B fragments of pack c0
            int p = c0;
            const int cfast = min(c1, p1 - 4); // quads starting before cfast - 3 refill inside the segment
            const int32_t *pg = a.pack_group + c0 + 4; // the refills' groups
#pragma unroll 1
            for (; p + 4 <= cfast; p += 4, xp += 128, pg += 4) { // the hot loop: 4 packs, no branch, no clamp
#pragma unroll
                for (int i = 0; i < 4; i++) do_pack(i, xp + 32 * i, i % SPP == SPP - 1, p + 4 + i, pg + i);
            }
            if (p + 4 <= c1) { // the segment's last full quad: refills clamped
                quad_clamped(p, xp);
                p += 4;
                xp += 128;
            }
            const int rem = c1 - p; // only at the end of K (chunks hold whole quads): the same, step closed last
            const int pn = p1 - 1;  // (refills past the end: never used)
            if (rem > 0) do_pack(0, xp, SPP == 1 || rem == 1, pn, a.pack_group + pn);
            if (rem > 1) do_pack(1, xp + 32, SPP == 1 || rem == 2 || SPP == 2, pn, a.pack_group + pn);
            if (rem > 2) do_pack(2, xp + 64, true, pn, a.pack_group + pn);
        }

        // acc[nt][r]: channel 32 tile + 16 nt + g + 8 (r >> 1), row m = 2t + (r & 1)
        if (u == tile_lo && se == tile_hi) {
            if (active)
#pragma unroll
                for (int nt = 0; nt < 2; nt++)
#pragma unroll
                    for (int r = 0; r < 4; r++) {
                        const int n = tile * 32 + nt * 16 + g + 8 * (r >> 1), m = 2 * t + (r & 1);
                        if (m < a.M && n < a.N) a.Y[(size_t)m * a.N + n] = __float2half_rn(acc[nt][r]);
                    }
        } else {
            const int slot = 2 * blockIdx.x + (u == lo ? 0 : 1);
            if (active)
#pragma unroll
                for (int nt = 0; nt < 2; nt++)
#pragma unroll
                    for (int r = 0; r < 4; r++) {
                        const int c = warp * 32 + nt * 16 + g + 8 * (r >> 1), m = 2 * t + (r & 1);
                        if (m < MP) a.partial[((size_t)slot * MP + m) * 128 + c] = acc[nt][r];
                    }
            const uint32_t bf = stripe_block(S, tile_lo), bl = stripe_block(S, tile_hi - 1);
            if (arrive_last(a.counters + cb, (int)(bl - bf + 1), &last_flag)) {
                for (int i = threadIdx.x; i < a.M * 128; i += GEMV_THREADS) {
                    const int m = i >> 7, c = i & 127, n = cb * 128 + c;
                    if (n >= a.N) continue;
                    float sum = 0.0f;
                    for (uint32_t b = bf; b <= bl; b++)
                        sum += ld_cg(a.partial + ((size_t)slot_of(S, b, cb) * MP + m) * 128 + c);
                    a.Y[(size_t)m * a.N + n] = __float2half_rn(sum);
                }
            }
        }
        u = se;
    }
}

// -------------------------------------------------------------------------------------------------- MMA
#define MMA_THREADS 128 // 4 warps: a 128-channel block, each warp a 32-channel tile
#define MMA_STAGES 4
#define MMA_AROW 72 // halves per staged X row: 64 + 8, so the 8 rows of an ldmatrix fall in different banks

struct mma_args {
    const uint32_t *qi;
    const uint32_t *qs;        // read as 16-byte chunks
    const uint32_t *qz;
    const int32_t *pack_group;
    const __half *X;           // (M, ldx), kernel column order, 16-byte aligned rows; columns >= kvalid read as 0
    __half *Y;
    float *partial;            // (2 * gridDim.x, MT*16, 128)
    int *counters;             // (row tiles * channel blocks)
    int ldx, kvalid, M, N, npacks, tiles, ncb, rtiles;
};

// Bytes of one pipeline stage: X tile, the raw words of 2 packs x 4 tiles, their scales and zeros.
__host__ __device__ constexpr int mma_stage_bytes(int bits, int mt) {
    return mt * 16 * MMA_AROW * 2 + 2 * 4 * 32 * bits * 4 + 2 * 4 * 32 * 2 + 2 * 4 * 32;
}

template <int BITS, int MT>
__global__ void __launch_bounds__(MMA_THREADS) qgemm_mma_kernel(const mma_args a) {
    constexpr int ROWS = MT * 16, SB = mma_stage_bytes(BITS, MT);
    constexpr int A_BYTES = ROWS * MMA_AROW * 2, B_BYTES = 2 * 4 * 32 * BITS * 4; // then scales, zeros
    NT_DYN_SMEM(char, smem);
    __shared__ int last_flag;
    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5, g = lane >> 2, t = lane & 3;
    const uint64_t pol = l2_evict_first();
    const int ks = (a.npacks + 1) / 2; // stages of 2 packs per tile
    const stripe S = {(uint32_t)a.rtiles * a.ncb * ks, gridDim.x, (uint32_t)ks};
    const uint32_t lo = stripe_lo(S, blockIdx.x), hi = stripe_lo(S, blockIdx.x + 1);

    for (uint32_t u = lo; u < hi;) {
        const int T = (int)(u / ks), rt = T / a.ncb, cb = T - rt * a.ncb;
        const uint32_t tile_lo = (uint32_t)T * ks, tile_hi = tile_lo + ks, se = hi < tile_hi ? hi : tile_hi;
        const int s0 = (int)(u - tile_lo), s1 = (int)(se - tile_lo);
        const int tile = cb * 4 + warp, row0 = rt * ROWS;
        const bool active = tile < a.tiles;

        // Every thread's share of a stage's 16-byte copies, in compile-time trip counts (no loop in the hot loop),
        // as unsigned 32-bit element offsets from the kernel's base pointers (one IMAD.WIDE.U32 an address: X has
        // < 2^31 halves, qi < 2^31 words) computed once per segment; a stage s adds s * (its stride).
        constexpr int NA = ROWS * 8, NB = 2 * 32 * BITS, NS = 2 * 24;
        constexpr int JA = (NA + MMA_THREADS - 1) / MMA_THREADS, JB = (NB + MMA_THREADS - 1) / MMA_THREADS;
        uint32_t a_off[JA];
        int a_k[JA];
        bool a_ok[JA];
#pragma unroll
        for (int j = 0; j < JA; j++) { // rows x 8 chunks of 8 halves
            const int i = tid + j * MMA_THREADS, r = (i >> 3) % ROWS, ch = i & 7, row = row0 + r;
            a_ok[j] = (NA % MMA_THREADS == 0 || i < NA) && row < a.M;
            a_off[j] = (uint32_t)(a_ok[j] ? row : 0) * (uint32_t)a.ldx + ch * 8;
            a_k[j] = ch * 8;
        }
        uint32_t b_off[JB];
        int b_pi[JB];
        bool b_ok[JB];
#pragma unroll
        for (int j = 0; j < JB; j++) { // 2 packs x 4 tiles x 128*BITS bytes
            const int i = tid + j * MMA_THREADS, pi = (i / (32 * BITS)) & 1, c = i % (32 * BITS), tl = c / (8 * BITS);
            b_ok[j] = (NB % MMA_THREADS == 0 || i < NB) && cb * 4 + tl < a.tiles;
            b_pi[j] = pi;
            b_off[j] = ((uint32_t)pi * a.tiles + cb * 4) * 32 * BITS + 4 * c;
        }
        const uint32_t b_stride = 2u * a.tiles * 32 * BITS; // words from one stage's 2 packs to the next
        // scales and zeros: per pack 16 chunks of scales, 8 of zeros (threads 0..47)
        const int s_pi = tid / 24, s_c = tid % 24, s_tl = s_c < 16 ? s_c / 4 : (s_c - 16) / 2;
        const bool s_ok = tid < NS && cb * 4 + s_tl < a.tiles, s_sc = s_c < 16;
        const int s_dst = s_sc ? s_pi * 64 + 4 * s_c : 128 + s_pi * 32 + 4 * (s_c - 16);
        const uint32_t s_off = s_sc ? (uint32_t)cb * 64 + 4 * s_c : (uint32_t)cb * 32 + 4 * (s_c - 16);
        const uint32_t s_gstride = s_sc ? (uint32_t)a.tiles * 16 : (uint32_t)a.tiles * 8; // words per group
        const uint32_t *s_base = s_sc ? a.qs : a.qz;
        auto load_stage = [&](int s, int slot) {
            char *st = smem + (size_t)slot * SB;
            __half *As = reinterpret_cast<__half *>(st);
#pragma unroll
            for (int j = 0; j < JA; j++) {
                const int i = tid + j * MMA_THREADS, r = (i >> 3) % ROWS, ch = i & 7;
                const bool ok = a_ok[j] && s * 64 + a_k[j] < a.kvalid; // kvalid % 8 == 0: wholly in or out
                if (NA % MMA_THREADS == 0 || i < NA)
                    cp_async16(As + r * MMA_AROW + ch * 8, a.X + (ok ? a_off[j] + (uint32_t)s * 64u : 0u), ok ? 16 : 0);
            }
            uint32_t *Bs = reinterpret_cast<uint32_t *>(st + A_BYTES);
#pragma unroll
            for (int j = 0; j < JB; j++) {
                const int i = tid + j * MMA_THREADS, pi = (i / (32 * BITS)) & 1, c = i % (32 * BITS);
                const bool ok = b_ok[j] && 2 * s + b_pi[j] < a.npacks;
                if (NB % MMA_THREADS == 0 || i < NB)
                    cp_async16_hint(Bs + pi * 128 * BITS + 4 * c, a.qi + (ok ? b_off[j] + (uint32_t)s * b_stride : 0u),
                                    ok ? 16 : 0, pol);
            }
            uint32_t *Ss = reinterpret_cast<uint32_t *>(st + A_BYTES + B_BYTES);
            if (tid < NS) {
                const int p = 2 * s + s_pi;
                const bool ok = s_ok && p < a.npacks;
                const uint32_t o = ok ? (uint32_t)__ldg(a.pack_group + p) * s_gstride + s_off : 0u;
                cp_async16(Ss + s_dst, s_base + o, ok ? 16 : 0);
            }
        };

        float acc[MT][4][4];
#pragma unroll
        for (int mt = 0; mt < MT; mt++)
#pragma unroll
            for (int j = 0; j < 4; j++)
#pragma unroll
                for (int e = 0; e < 4; e++) acc[mt][j][e] = 0.0f;

#pragma unroll
        for (int i = 0; i < MMA_STAGES - 1; i++) {
            if (s0 + i < s1) load_stage(s0 + i, i);
            cp_async_commit();
        }
#pragma unroll 1
        for (int s = s0; s < s1; s++) { // the hot loop: one stage of 2 packs
            cp_async_wait<MMA_STAGES - 2>();
            __syncthreads(); // stage s has landed for every thread; stage s - 1 is no longer read
            const int sn = s + MMA_STAGES - 1;
            if (sn < s1) load_stage(sn, (sn - s0) % MMA_STAGES);
            cp_async_commit(); // possibly empty: keeps "all but the newest 2 groups" meaning "stage s"
            if (!active) continue;
            const char *st = smem + (size_t)((s - s0) % MMA_STAGES) * SB;
            const __half *As = reinterpret_cast<const __half *>(st);
            const uint32_t *Bs = reinterpret_cast<const uint32_t *>(st + A_BYTES);
            const uint32_t *Ss = reinterpret_cast<const uint32_t *>(st + A_BYTES + B_BYTES);
#pragma unroll
            for (int pi = 0; pi < 2; pi++) {
                const uint2 sc = reinterpret_cast<const uint2 *>(Ss + pi * 64 + warp * 16)[g];
                zterms Z;
                make_terms<BITS>(Ss[128 + pi * 32 + warp * 8 + g], Z);
                const uint32_t sh[4] = {prmt(sc.x, sc.x, 0x1010u), prmt(sc.x, sc.x, 0x3232u),
                                        prmt(sc.y, sc.y, 0x1010u), prmt(sc.y, sc.y, 0x3232u)};
                uint32_t w[BITS], fr[4][4];
                lds_block<BITS>(w, Bs + pi * 128 * BITS + warp * 32 * BITS, lane);
                decode_block<BITS>(w, Z, fr);
#pragma unroll
                for (int f = 0; f < 4; f++)
#pragma unroll
                    for (int r = 0; r < 4; r++) fr[f][r] = hmul2(fr[f][r], sh[2 * (f >> 1) + (r & 1)]);
#pragma unroll
                for (int kt = 0; kt < 2; kt++) {
                    uint32_t af[MT][4];
#pragma unroll
                    for (int mt = 0; mt < MT; mt++) // rows 0-7 | 8-15 x k 0-7 | 8-15, in a0..a3 order
                        ldmatrix_x4(af[mt], As + (mt * 16 + (lane & 15)) * MMA_AROW + pi * 32 + kt * 16 +
                                                (lane >> 4) * 8);
#pragma unroll
                    for (int nt = 0; nt < 2; nt++) {
                        const uint32_t *b = fr[2 * nt + kt]; // channel g: registers 0, 2; channel g + 8: 1, 3
#pragma unroll
                        for (int mt = 0; mt < MT; mt++) {
                            mma_16816(acc[mt][2 * nt], af[mt], b[0], b[2]);
                            mma_16816(acc[mt][2 * nt + 1], af[mt], b[1], b[3]);
                        }
                    }
                }
            }
        }
        __syncthreads(); // the stages are refilled by the next segment

        // acc[mt][j][e]: row row0 + 16 mt + g + 8 (e >> 1), channel 32 tile + 8 j + 2t + (e & 1)
        if (u == tile_lo && se == tile_hi) {
            if (active)
#pragma unroll
                for (int mt = 0; mt < MT; mt++)
#pragma unroll
                    for (int j = 0; j < 4; j++)
#pragma unroll
                        for (int e = 0; e < 4; e++) {
                            const int m = row0 + mt * 16 + g + 8 * (e >> 1), n = tile * 32 + j * 8 + 2 * t + (e & 1);
                            if (m < a.M && n < a.N) a.Y[(size_t)m * a.N + n] = __float2half_rn(acc[mt][j][e]);
                        }
        } else {
            const int slot = 2 * blockIdx.x + (u == lo ? 0 : 1);
            if (active)
#pragma unroll
                for (int mt = 0; mt < MT; mt++)
#pragma unroll
                    for (int j = 0; j < 4; j++)
#pragma unroll
                        for (int e = 0; e < 4; e++) {
                            const int r = mt * 16 + g + 8 * (e >> 1), c = warp * 32 + j * 8 + 2 * t + (e & 1);
                            a.partial[((size_t)slot * ROWS + r) * 128 + c] = acc[mt][j][e];
                        }
            const uint32_t bf = stripe_block(S, tile_lo), bl = stripe_block(S, tile_hi - 1);
            if (arrive_last(a.counters + T, (int)(bl - bf + 1), &last_flag)) {
                for (int i = tid; i < ROWS * 128; i += MMA_THREADS) {
                    const int r = i >> 7, c = i & 127, m = row0 + r, n = cb * 128 + c;
                    if (m >= a.M || n >= a.N) continue;
                    float sum = 0.0f;
                    for (uint32_t b = bf; b <= bl; b++)
                        sum += ld_cg(a.partial + ((size_t)slot_of(S, b, T) * ROWS + r) * 128 + c);
                    a.Y[(size_t)m * a.N + n] = __float2half_rn(sum);
                }
            }
        }
        u = se;
    }
}

// ---------------------------------------------------------------------------------------------- helpers

// Xg (M, Kp) = X (M, K) gathered by kmap (identity when NULL), zero for padding.
__global__ void gather_x_kernel(const __half *__restrict__ X, const int32_t *__restrict__ kmap, int M, int K, int Kp,
                                __half *__restrict__ Xg) {
    size_t total = (size_t)M * Kp;
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < total; i += (size_t)gridDim.x * blockDim.x) {
        int m = (int)(i / Kp), kp = (int)(i - (size_t)m * Kp);
        int k = kmap ? kmap[kp] : kp;
        Xg[i] = (k >= 0 && k < K) ? X[(size_t)m * K + k] : __float2half_rn(0.0f);
    }
}

// W fp16 = fp16(scale * (q - zero)) (what the MMA kernel feeds the tensor cores), one warp per (pack, tile)
// block, the same decode. Kernel column order into W (N, ldw) (orig == 0: columns 0..Kp-1, coalesced through
// shared memory), or the original column order into W (N, K) (orig: columns kmap[k'], padding dropped).
#define DQ_THREADS 128
__global__ void __launch_bounds__(DQ_THREADS)
    dequant_kernel(const uint32_t *__restrict__ qi, const uint32_t *__restrict__ qs, const uint32_t *__restrict__ qz,
                   const int32_t *__restrict__ pack_group, const int32_t *__restrict__ kmap, int bits, int K, int N,
                   int tiles, int ldw, int orig, __half *__restrict__ W) {
    __shared__ __align__(16) uint32_t tr[4][32][20]; // per warp: 32 channels x 32 k fp16 (+8 halves of padding)
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, g = lane >> 2, t = lane & 3;
    const int tile = blockIdx.x * 4 + warp, p = blockIdx.y;
    if (tile < tiles) {
        const size_t e = ((size_t)pack_group[p] * tiles + tile) * 8 + g;
        const uint2 sc = reinterpret_cast<const uint2 *>(qs)[e];
        zterms Z;
        uint32_t fr[4][4];
        const uint32_t *blk = qi + ((size_t)p * tiles + tile) * 32 * bits;
        switch (bits) { // plain loads: a utility, read once
        case 2: {
            uint32_t w[2];
            lds_block<2>(w, blk, lane);
            make_terms<2>(qz[e], Z);
            decode_block<2>(w, Z, fr);
        } break;
        case 3: {
            uint32_t w[3];
            lds_block<3>(w, blk, lane);
            make_terms<3>(qz[e], Z);
            decode_block<3>(w, Z, fr);
        } break;
        case 4: {
            uint32_t w[4];
            lds_block<4>(w, blk, lane);
            make_terms<4>(qz[e], Z);
            decode_block<4>(w, Z, fr);
        } break;
        default: {
            uint32_t w[8];
            lds_block<8>(w, blk, lane);
            make_terms<8>(qz[e], Z);
            decode_block<8>(w, Z, fr);
        } break;
        }
        const uint32_t sh[4] = {prmt(sc.x, sc.x, 0x1010u), prmt(sc.x, sc.x, 0x3232u), prmt(sc.y, sc.y, 0x1010u),
                                prmt(sc.y, sc.y, 0x3232u)};
#pragma unroll
        for (int f = 0; f < 4; f++)
#pragma unroll
            for (int r = 0; r < 4; r++) { // channel 16 nt + g + 8 (r & 1), k pair 16 kt + 2t + 8 (r >> 1)
                const int ch = 16 * (f >> 1) + g + 8 * (r & 1), kk = 16 * (f & 1) + 2 * t + 8 * (r >> 1);
                tr[warp][ch][kk / 2] = hmul2(fr[f][r], sh[2 * (f >> 1) + (r & 1)]);
            }
    }
    __syncthreads();
    if (tile >= tiles) return;
    const int n = tile * 32 + lane; // lane writes channel n's 32 values
    if (n >= N) return;
    const uint32_t *row = tr[warp][lane];
    if (!orig) {
        uint4 *dst = reinterpret_cast<uint4 *>(W + (size_t)n * ldw + (size_t)p * 32);
#pragma unroll
        for (int q = 0; q < 4; q++) dst[q] = make_uint4(row[4 * q], row[4 * q + 1], row[4 * q + 2], row[4 * q + 3]);
    } else {
        for (int j = 0; j < 32; j++) {
            const int kp = p * 32 + j, k = kmap ? kmap[kp] : kp;
            if (k < 0 || k >= K) continue;
            reinterpret_cast<uint16_t *>(W)[(size_t)n * K + k] = (uint16_t)(j & 1 ? row[j / 2] >> 16 : row[j / 2]);
        }
    }
}

// ------------------------------------------------------------------------------------------------ upload

int nt_gpu_qlinear_upload_layout(nt_gpu_qlinear **out, const nt_qgemm_layout *lay, nt_err *err) {
    *out = NULL;
    nt_gpu_qlinear *d = (nt_gpu_qlinear *)calloc(1, sizeof *d);
    if (!d) return nt_fail(err, "out of memory");
    d->N = lay->N;
    d->K = lay->K;
    d->Kp = lay->Kp;
    d->npacks = lay->npacks;
    d->tiles = lay->tiles;
    d->bits = lay->bits;
    d->group_size = lay->group_size;
    d->n_groups = lay->n_groups;
    d->sym_zero = lay->sym_zero;
    d->spp = lay->spp;
    size_t nqi = (size_t)lay->npacks * lay->tiles * 32 * lay->bits, nmeta = (size_t)lay->n_groups * lay->tiles * 32;
    cudaError_t e = cudaMalloc(&d->qi, nqi * 4);
    if (e == cudaSuccess) e = cudaMemcpy(d->qi, lay->qi, nqi * 4, cudaMemcpyHostToDevice);
    if (e == cudaSuccess) e = cudaMalloc(&d->qs, nmeta * 2);
    if (e == cudaSuccess) e = cudaMemcpy(d->qs, lay->qs, nmeta * 2, cudaMemcpyHostToDevice);
    if (e == cudaSuccess) e = cudaMalloc(&d->qz, nmeta);
    if (e == cudaSuccess) e = cudaMemcpy(d->qz, lay->qz, nmeta, cudaMemcpyHostToDevice);
    if (e == cudaSuccess) e = cudaMalloc(&d->pack_group, (size_t)lay->npacks * 4);
    if (e == cudaSuccess) e = cudaMemcpy(d->pack_group, lay->pack_group, (size_t)lay->npacks * 4, cudaMemcpyHostToDevice);
    if (e == cudaSuccess && lay->kmap) e = cudaMalloc(&d->kmap, (size_t)lay->Kp * 4);
    if (e == cudaSuccess && lay->kmap) e = cudaMemcpy(d->kmap, lay->kmap, (size_t)lay->Kp * 4, cudaMemcpyHostToDevice);
    if (e != cudaSuccess) {
        nt_gpu_qlinear_free(&d);
        return nt_fail(err, "%s:%d: uploading a %d x %d %d-bit linear: %s", __FILE__, __LINE__, lay->N, lay->K,
                       lay->bits, cudaGetErrorString(e));
    }
    *out = d;
    return 0;
}

int nt_gpu_qlinear_clone(nt_gpu_qlinear **out, const nt_gpu_qlinear *s, nt_err *err) {
    *out = NULL;
    nt_gpu_qlinear *d = (nt_gpu_qlinear *)calloc(1, sizeof *d);
    if (!d) return nt_fail(err, "out of memory");
    *d = *s;
    d->qi = NULL, d->qs = NULL, d->qz = NULL, d->pack_group = NULL, d->kmap = NULL;
    size_t nqi = (size_t)s->npacks * s->tiles * 32 * s->bits, nmeta = (size_t)s->n_groups * s->tiles * 32;
    cudaError_t e = cudaMalloc(&d->qi, nqi * 4);
    if (e == cudaSuccess) e = cudaMemcpy(d->qi, s->qi, nqi * 4, cudaMemcpyDeviceToDevice);
    if (e == cudaSuccess) e = cudaMalloc(&d->qs, nmeta * 2);
    if (e == cudaSuccess) e = cudaMemcpy(d->qs, s->qs, nmeta * 2, cudaMemcpyDeviceToDevice);
    if (e == cudaSuccess) e = cudaMalloc(&d->qz, nmeta);
    if (e == cudaSuccess) e = cudaMemcpy(d->qz, s->qz, nmeta, cudaMemcpyDeviceToDevice);
    if (e == cudaSuccess) e = cudaMalloc(&d->pack_group, (size_t)s->npacks * 4);
    if (e == cudaSuccess) e = cudaMemcpy(d->pack_group, s->pack_group, (size_t)s->npacks * 4, cudaMemcpyDeviceToDevice);
    if (e == cudaSuccess && s->kmap) e = cudaMalloc(&d->kmap, (size_t)s->Kp * 4);
    if (e == cudaSuccess && s->kmap) e = cudaMemcpy(d->kmap, s->kmap, (size_t)s->Kp * 4, cudaMemcpyDeviceToDevice);
    if (e != cudaSuccess) {
        nt_gpu_qlinear_free(&d);
        return nt_fail(err, "%s:%d: copying a %d x %d linear: %s", __FILE__, __LINE__, s->N, s->K, cudaGetErrorString(e));
    }
    *out = d;
    return 0;
}

void nt_gpu_qlinear_free(nt_gpu_qlinear **d) {
    if (!d || !*d) return;
    nt_gpu_qlinear *q = *d;
    if (q->qi) cudaFree(q->qi);
    if (q->qs) cudaFree(q->qs);
    if (q->qz) cudaFree(q->qz);
    if (q->pack_group) cudaFree(q->pack_group);
    if (q->kmap) cudaFree(q->kmap);
    free(q);
    *d = NULL;
}

size_t nt_gpu_qlinear_weight_bytes(const nt_gpu_qlinear *d) {
    size_t nmeta = (size_t)d->n_groups * d->tiles * 32;
    return (size_t)d->npacks * d->tiles * 32 * d->bits * 4 + nmeta * 3;
}

// ---------------------------------------------------------------------------------------------- dispatch



static int ceil_div(int a, int b) { return (a + b - 1) / b; }

// Blocks of a striped launch: enough for `per_sm` per SM, never more than there are units, and few enough that
// the kernels' 32-bit stripe arithmetic cannot overflow (units * (blocks + 1) < 2^32); 0 when units alone are too
// many (a layer of more than ~2^31 weights per 128 channels: refused).
static int stripe_blocks(long long units, int sms, int per_sm) {
    long long b = (long long)sms * per_sm;
    if (b > units) b = units;
    while (b > 1 && units * (b + 1) >= (1ll << 32)) b /= 2;
    return units * (b + 1) < (1ll << 32) ? (int)b : 0;
}

template <int BITS, int MP, int SPP> static void launch_gemv_3(dim3 grid, const gemv_args &a, cudaStream_t st) {
    nt_launch(qgemv_kernel<BITS, MP, SPP>, grid, GEMV_THREADS, 0, st, a);
}
template <int BITS, int MP> static void launch_gemv_2(int spp, dim3 grid, const gemv_args &a, cudaStream_t st) {
    if (spp == 4) launch_gemv_3<BITS, MP, 4>(grid, a, st);
    else if (spp == 2) launch_gemv_3<BITS, MP, 2>(grid, a, st);
    else launch_gemv_3<BITS, MP, 1>(grid, a, st);
}
template <int BITS> static void launch_gemv_1(int mp, int spp, dim3 grid, const gemv_args &a, cudaStream_t st) {
    switch (mp) {
    case 1: launch_gemv_2<BITS, 1>(spp, grid, a, st); break;
    case 2: launch_gemv_2<BITS, 2>(spp, grid, a, st); break;
    case 4: launch_gemv_2<BITS, 4>(spp, grid, a, st); break;
    default: launch_gemv_2<BITS, 8>(spp, grid, a, st); break;
    }
}

template <int BITS, int MT> static int launch_mma_2(int grid, const mma_args &a, cudaStream_t st, nt_err *err) {
    constexpr int smem = MMA_STAGES * mma_stage_bytes(BITS, MT);
#ifndef NT_CUDA_EMU
    static bool raised = false; // once per instantiation: above 48 KB needs the opt-in
    if (smem > 48 * 1024 && !raised) {
        NT_CUDA_TRY(cudaFuncSetAttribute(qgemm_mma_kernel<BITS, MT>, cudaFuncAttributeMaxDynamicSharedMemorySize, smem));
        raised = true;
    }
#else
    if (smem > 48 * 1024)
        NT_CUDA_TRY(cudaFuncSetAttribute(qgemm_mma_kernel<BITS, MT>, cudaFuncAttributeMaxDynamicSharedMemorySize, smem));
#endif
    nt_launch(qgemm_mma_kernel<BITS, MT>, grid, MMA_THREADS, (size_t)smem, st, a);
    return 0;
}
template <int BITS> static int launch_mma_1(int mt, int grid, const mma_args &a, cudaStream_t st, nt_err *err) {
    switch (mt) {
    case 1: return launch_mma_2<BITS, 1>(grid, a, st, err);
    case 2: return launch_mma_2<BITS, 2>(grid, a, st, err);
    case 3: return launch_mma_2<BITS, 3>(grid, a, st, err);
    default: return launch_mma_2<BITS, 4>(grid, a, st, err);
    }
}

// Gathers / pads X into the workspace at offset off when the kernel needs (M, Kp) rows: act-order, K % 8 != 0,
// or an unaligned X; returns the X to read (and its leading dimension and valid columns).
static int prepare_x(nt_gpu_ctx *ctx, const nt_gpu_qlinear *w, const __half *X, int M, bool need_kp, size_t off,
                     const __half **Xk, int *ldx, int *kvalid, nt_err *err) {
    *Xk = X;
    *ldx = *kvalid = w->K;
    if (!(w->kmap || w->K % 8 != 0 || ((uintptr_t)X & 15) != 0 || (need_kp && w->Kp != w->K))) return 0;
    __half *Xg = (__half *)((char *)ctx->ws + off);
    size_t total = (size_t)M * w->Kp;
    const int sms = ctx->info.sm_count > 0 ? ctx->info.sm_count : 1;
    int blocks = (int)((total + 255) / 256 < (size_t)sms * 8 ? (total + 255) / 256 : (size_t)sms * 8);
    nt_launch(gather_x_kernel, blocks, 256, 0, ctx->stream, X, (const int32_t *)w->kmap, M, w->K, w->Kp, Xg);
    NT_CUDA_LAUNCHED("gather_x_kernel");
    *Xk = Xg;
    *ldx = *kvalid = w->Kp;
    return 0;
}

static void dequant_launch(nt_gpu_ctx *ctx, const nt_gpu_qlinear *w, int orig, int ldw, __half *W) {
    dim3 grid(ceil_div(w->tiles, 4), w->npacks);
    nt_launch(dequant_kernel, grid, DQ_THREADS, 0, ctx->stream, (const uint32_t *)w->qi, (const uint32_t *)w->qs,
              (const uint32_t *)w->qz, (const int32_t *)w->pack_group, (const int32_t *)w->kmap, w->bits, w->K, w->N,
              w->tiles, ldw, orig, W);
}

int nt_gpu_qgemm(nt_gpu_ctx *ctx, const nt_gpu_qlinear *w, const uint16_t *Xh, uint16_t *Yh, int M, nt_qkernel kernel,
                 nt_err *err) {
    if (M < 1) return nt_fail(err, "qgemm: M = %d rows", M);
    if (!Xh || !Yh) return nt_fail(err, "qgemm: NULL X or Y");
    if (kernel == NT_QKERNEL_AUTO) kernel = nt_qkernel_pick(M);
    if (kernel == NT_QKERNEL_GEMV && M > NT_QGEMV_MAX_M)
        return nt_fail(err, "qgemm: the GEMV kernel takes at most %d rows, got M = %d", NT_QGEMV_MAX_M, M);
    if (w->bits != 2 && w->bits != 3 && w->bits != 4 && w->bits != 8)
        return nt_fail(err, "qgemm: unsupported bit width %d", w->bits);
    const __half *X = reinterpret_cast<const __half *>(Xh);
    __half *Y = reinterpret_cast<__half *>(Yh);
    const int sms = ctx->info.sm_count > 0 ? ctx->info.sm_count : 1, ncb = ceil_div(w->tiles, 4);
    cudaStream_t stream = ctx->stream;

    if (kernel == NT_QKERNEL_GEMV) {
        const int mp = M <= 1 ? 1 : M <= 2 ? 2 : M <= 4 ? 4 : 8, nq = ceil_div(w->npacks, 4);
        const int B = stripe_blocks((long long)ncb * nq, sms, GEMV_MIN_BLOCKS(w->bits));
        if (B < 1) return nt_fail(err, "qgemm: a %d x %d linear is too large for the GEMV's stripes", w->N, w->K);
        if (nt_gpu_ws_reserve(ctx, (size_t)2 * B * mp * 128 * sizeof(float), err) ||
            nt_gpu_counters_reserve(ctx, (size_t)ncb, err))
            return -1;
        gemv_args a = {w->qi, (const uint32_t *)w->qs, (const uint32_t *)w->qz, w->pack_group, w->kmap, X, Y,
                       (float *)ctx->ws, ctx->counters, M, w->K, w->N, w->npacks, w->tiles, ncb};
        switch (w->bits) {
        case 2: launch_gemv_1<2>(mp, w->spp, B, a, stream); break;
        case 3: launch_gemv_1<3>(mp, w->spp, B, a, stream); break;
        case 4: launch_gemv_1<4>(mp, w->spp, B, a, stream); break;
        default: launch_gemv_1<8>(mp, w->spp, B, a, stream); break;
        }
        NT_CUDA_LAUNCHED("qgemv_kernel");
        return 0;
    }

    if (kernel == NT_QKERNEL_MMA) {
        const int mt = M <= 16 ? 1 : M <= 32 ? 2 : M <= 48 ? 3 : 4, rows = mt * 16, rtiles = ceil_div(M, rows);
        const int ks = ceil_div(w->npacks, 2), B = stripe_blocks((long long)rtiles * ncb * ks, sms, 2);
        if (B < 1) return nt_fail(err, "qgemm: %d rows of a %d x %d linear are too many for the MMA stripes", M, w->N, w->K);
        const size_t part = nt_align256((size_t)2 * B * rows * 128 * sizeof(float));
        const size_t xg = nt_align256((size_t)M * w->Kp * sizeof(__half));
        if (nt_gpu_ws_reserve(ctx, part + xg, err) || nt_gpu_counters_reserve(ctx, (size_t)rtiles * ncb, err))
            return -1;
        const __half *Xk = NULL;
        int ldx = 0, kvalid = 0;
        if (prepare_x(ctx, w, X, M, false, part, &Xk, &ldx, &kvalid, err)) return -1;
        mma_args a = {w->qi, (const uint32_t *)w->qs, (const uint32_t *)w->qz, w->pack_group, Xk, Y,
                      (float *)ctx->ws, ctx->counters, ldx, kvalid, M, w->N, w->npacks, w->tiles, ncb, rtiles};
        int rc = 0;
        switch (w->bits) {
        case 2: rc = launch_mma_1<2>(mt, B, a, stream, err); break;
        case 3: rc = launch_mma_1<3>(mt, B, a, stream, err); break;
        case 4: rc = launch_mma_1<4>(mt, B, a, stream, err); break;
        default: rc = launch_mma_1<8>(mt, B, a, stream, err); break;
        }
        if (rc) return -1;
        NT_CUDA_LAUNCHED("qgemm_mma_kernel");
        return 0;
    }

    // DENSE: W (N, Kp) fp16 in kernel column order, X gathered to (M, Kp) when the orders or lengths differ.
    const size_t wb = nt_align256((size_t)w->N * w->Kp * sizeof(__half)), xg = nt_align256((size_t)M * w->Kp * sizeof(__half));
    if (nt_gpu_ws_reserve(ctx, wb + xg, err)) return -1;
    __half *Wd = (__half *)ctx->ws;
    dequant_launch(ctx, w, 0, w->Kp, Wd);
    NT_CUDA_LAUNCHED("dequant_kernel");
    const __half *Xk = NULL;
    int ldx = 0, kvalid = 0;
    if (prepare_x(ctx, w, X, M, true, wb, &Xk, &ldx, &kvalid, err)) return -1;
    if (ldx == w->K && w->Kp != w->K) return nt_fail(err, "qgemm: internal: X not padded to the kernel's K");
    return nt_gpu_gemm_f16(ctx, reinterpret_cast<const uint16_t *>(Xk), reinterpret_cast<const uint16_t *>(Wd), Yh, M,
                           w->N, ldx, err);
}

int nt_gpu_qdequantize(nt_gpu_ctx *ctx, const nt_gpu_qlinear *w, uint16_t *W, nt_err *err) {
    dequant_launch(ctx, w, 1, w->K, reinterpret_cast<__half *>(W));
    NT_CUDA_LAUNCHED("dequant_kernel");
    return 0;
}
