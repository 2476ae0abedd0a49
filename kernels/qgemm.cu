// qgemm.cu: the fast versions of Y (M, N) fp16 = X (M, K) fp16 . dequant(W)^T over codec/qformat.h's packed format
// (references: nt_ref_qgemm and nt_ref_qgemm_layout in kernels_ref.c). Two kernels, each instantiated once per
// bit width (2, 3, 4, 8), plus small helpers (split-K reduction, X gather, dequantization to dense fp16).
//
// Both read the layout of gpu.h: qweight (npacks*bits, N) uint32 packed along K, every 32-value pack inside one
// group (pack_group[p]), kmap for act-order. Integer codes become floats with the 2^23 trick: OR-ing a code q
// (< 2^23) into the mantissa of 8388608.0f gives exactly 8388608 + q, so one FADD with -(8388608 + zero) yields
// q - zero exactly; `(w >> shift) & mask | 0x4B000000` is a shift and a single LOP3, no I2F.
//
// GEMV (M <= 8, memory-bound): a thread owns CPT consecutive output channels (CPT = 4: one 16-byte load per word
// row when N % 4 == 0; else CPT = 1) and walks a K-split of packs; per pack it loads its `bits` word rows
// (coalesced along N across the warp), forms sums of x * (q - zero) over the 32 values in fp32 and adds
// scale * sum to the accumulators. X of the split is staged once in shared memory as fp32 (gathered by kmap),
// read as broadcasts. Splits write fp32 partials that a second kernel sums into fp16 Y (deterministic).
//
// MMA (M > 8): 64 x 128 (M x N) block tiles, 4 warps of 32 x 64, K steps of one pack (32). Per step the block
// cp.async's the X tile (64 x 32 fp16) and the raw qweight tile (bits x 128 words) into one of two shared
// stages (the next step's copies fly while this one computes), then each thread dequantizes one column of the
// raw tile into an fp16 tile Bs (n-major, k contiguous, rows padded to 80 bytes so ldmatrix is conflict-free),
// and the warps run ldmatrix + mma.sync.m16n8k16 (fp16 in, fp32 accumulate). Grids that would not fill the
// device split K as the GEMV does. Act-order and K % 8 != 0: X is first gathered/padded into scratch (M, Kp).
// Works on sm_80 and sm_90 (mma.sync, cp.async, ldmatrix); Hopper's wgmma/TMA are left for a later version.
//
// Status: compiled for sm_80 + sm_90 (nvcc 13.0: MMA 128 registers, no spills; GEMV 32-128 registers, 4-16 bytes
// of spill in <2,4>, <3,4>, <8,1>) and run only on the CPU emulator (cuda_emu.h: test_kernels_emu passes, every
// bit width, act-order, odd N, K % 8 != 0, split-K); not yet on a GPU, so nothing below about speed is measured.
// Floors on an H100 (~3.35 TB/s, ~990 dense fp16 TFLOP/s), e.g. LLaMA-7B down (4096 x 11008), 4-bit g128,
// M = 1: 22.5 MB of qweight + 0.7 MB of scales and zeros -> ~7 us, vs the fp16 weights' 90 MB -> ~27 us for cuBLASLt: at most ~3.9x. Tuning leads, in order:
// GEMV splits/occupancy (choose_splits), 128-bit shared loads of x, register prefetch of the next pack; for MMA a
// 3-4 stage pipeline, BK = 64, a fused Marlin-style tile layout of qweight made at upload, wgmma on sm_90a.
#include <string.h>

#include "gpu_common.cuh"
#include "ptx.cuh"

// ------------------------------------------------------------------------------------------ bit helpers

// Code j (compile-time after unrolling) of a pack held in w[0..BITS-1]: value j at bit BITS*j of the stream.
template <int BITS>
__device__ __forceinline__ uint32_t pack_code(const uint32_t (&w)[BITS], int j) {
    const int bit = BITS * j, wi = bit >> 5, off = bit & 31;
    uint32_t v = w[wi] >> off;
    if (off + BITS > 32) v |= w[wi + 1 < BITS ? wi + 1 : wi] << (32 - off); // only 3 bits straddles (j = 10, 21)
    return v & ((1u << BITS) - 1u);
}

// 8388608 + q exactly, for q < 2^23.
__device__ __forceinline__ float code_plus_magic(uint32_t q) { return __uint_as_float(0x4B000000u | q); }
#define NT_MAGIC 8388608.0f

// ------------------------------------------------------------------------------------------------- GEMV
#define GEMV_THREADS 128
#define GEMV_MAX_PACKS 32 // packs per split: X chunk = M x 1024 fp32 <= 32 KB of shared memory

template <int BITS, int CPT>
__global__ void __launch_bounds__(GEMV_THREADS)
    qgemv_kernel(const uint32_t *__restrict__ qw,      // (npacks*BITS, N)
                 const __half *__restrict__ scales,    // (n_groups, N)
                 const uint8_t *__restrict__ zeros,    // (n_groups, N) or NULL
                 int sym_zero,
                 const int32_t *__restrict__ pack_group, // (npacks)
                 const int32_t *__restrict__ kmap,     // (Kp) or NULL
                 const __half *__restrict__ X,         // (M, K)
                 int M, int K, int N, int npacks, int pps,
                 __half *__restrict__ Y,               // (M, N), when gridDim.y == 1
                 float *__restrict__ partial) {        // (gridDim.y, M, N), when gridDim.y > 1
    NT_DYN_SMEM(float, xs); // (M, pps*32): this split's X, fp32, kernel column order
    const int p0 = blockIdx.y * pps, p1 = min(p0 + pps, npacks);
    const int kc = (p1 - p0) * 32, ldxs = pps * 32;
    for (int i = threadIdx.x; i < M * kc; i += GEMV_THREADS) {
        int m = i / kc, kk = i - m * kc, kp = p0 * 32 + kk;
        int k = kmap ? __ldg(kmap + kp) : kp;
        xs[m * ldxs + kk] = (k >= 0 && k < K) ? __half2float(X[(size_t)m * K + k]) : 0.0f;
    }
    __syncthreads();
    const int n = (blockIdx.x * GEMV_THREADS + threadIdx.x) * CPT;
    if (n >= N) return; // past the only barrier; with CPT = 4, N % 4 == 0 so all 4 channels are in range

    float acc[NT_QGEMV_MAX_M][CPT];
#pragma unroll
    for (int m = 0; m < NT_QGEMV_MAX_M; m++)
#pragma unroll
        for (int c = 0; c < CPT; c++) acc[m][c] = 0.0f;

    for (int p = p0; p < p1; p++) {
        // All word rows of the pack first (BITS independent loads in flight), then the group's scale and zero.
        uint32_t w[CPT][BITS];
#pragma unroll
        for (int b = 0; b < BITS; b++) {
            const uint32_t *row = qw + (size_t)(p * BITS + b) * N + n;
            if (CPT == 4) {
                uint4 v = __ldg(reinterpret_cast<const uint4 *>(row));
                w[0][b] = v.x;
                w[CPT > 1 ? 1 : 0][b] = v.y;
                w[CPT > 2 ? 2 : 0][b] = v.z;
                w[CPT > 3 ? 3 : 0][b] = v.w;
            } else {
                w[0][b] = __ldg(row);
            }
        }
        const size_t gi = (size_t)__ldg(pack_group + p) * N + n;
        float s[CPT], zb[CPT];
#pragma unroll
        for (int c = 0; c < CPT; c++) {
            s[c] = __half2float(scales[gi + c]);
            zb[c] = NT_MAGIC + (float)(zeros ? zeros[gi + c] : sym_zero);
        }
        const float *xp = xs + (p - p0) * 32;
        float part[NT_QGEMV_MAX_M][CPT];
#pragma unroll
        for (int m = 0; m < NT_QGEMV_MAX_M; m++)
#pragma unroll
            for (int c = 0; c < CPT; c++) part[m][c] = 0.0f;
#pragma unroll
        for (int j = 0; j < 32; j++) {
            float f[CPT];
#pragma unroll
            for (int c = 0; c < CPT; c++) f[c] = code_plus_magic(pack_code<BITS>(w[c], j)) - zb[c]; // q - zero
#pragma unroll
            for (int m = 0; m < NT_QGEMV_MAX_M; m++)
                if (m < M) {
                    float x = xp[m * ldxs + j]; // the same address across the warp: a broadcast
#pragma unroll
                    for (int c = 0; c < CPT; c++) part[m][c] = fmaf(x, f[c], part[m][c]);
                }
        }
#pragma unroll
        for (int m = 0; m < NT_QGEMV_MAX_M; m++)
#pragma unroll
            for (int c = 0; c < CPT; c++) acc[m][c] = fmaf(s[c], part[m][c], acc[m][c]);
    }

#pragma unroll
    for (int m = 0; m < NT_QGEMV_MAX_M; m++)
        if (m < M) {
#pragma unroll
            for (int c = 0; c < CPT; c++) {
                if (gridDim.y == 1) Y[(size_t)m * N + n + c] = __float2half_rn(acc[m][c]);
                else partial[((size_t)blockIdx.y * M + m) * N + n + c] = acc[m][c];
            }
        }
}

// Y (M, N) = sum over S splits of partial (S, M, N).
__global__ void splitk_reduce_kernel(const float *__restrict__ partial, int S, size_t MN, __half *__restrict__ Y) {
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < MN; i += (size_t)gridDim.x * blockDim.x) {
        float s = 0.0f;
        for (int z = 0; z < S; z++) s += partial[(size_t)z * MN + i];
        Y[i] = __float2half_rn(s);
    }
}

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

// W (N, K) fp16 in the original column order; one thread per (pack, channel). A utility (the baseline's
// weights), not tuned: its writes stride by K.
__global__ void dequant_kernel(const uint32_t *__restrict__ qw, const __half *__restrict__ scales,
                               const uint8_t *__restrict__ zeros, int sym_zero, const int32_t *__restrict__ pack_group,
                               const int32_t *__restrict__ kmap, int bits, int K, int N, __half *__restrict__ W) {
    const int n = blockIdx.x * blockDim.x + threadIdx.x, p = blockIdx.y;
    if (n >= N) return;
    uint32_t w[9];
    for (int b = 0; b < 9; b++) w[b] = b < bits ? qw[(size_t)(p * bits + b) * N + n] : 0u;
    const size_t gi = (size_t)pack_group[p] * N + n;
    const float s = __half2float(scales[gi]), z = (float)(zeros ? zeros[gi] : sym_zero);
    const uint32_t mask = (1u << bits) - 1u;
    for (int j = 0; j < 32; j++) {
        int kp = p * 32 + j, k = kmap ? kmap[kp] : kp;
        if (k < 0 || k >= K) continue;
        int bit = bits * j, wi = bit >> 5, off = bit & 31;
        uint32_t v = w[wi] >> off;
        if (off + bits > 32) v |= w[wi + 1] << (32 - off);
        W[(size_t)n * K + k] = __float2half_rn(s * ((float)(v & mask) - z));
    }
}

// -------------------------------------------------------------------------------------------------- MMA
#define MMA_BM 64
#define MMA_BN 128
#define MMA_THREADS 128
#define MMA_LDS 40 // halves per shared row: 32 + 8 padding (80 bytes: 8 rows of an ldmatrix hit distinct banks)

template <int BITS>
__global__ void __launch_bounds__(MMA_THREADS)
    qgemm_mma_kernel(const uint32_t *__restrict__ qw, const __half *__restrict__ scales,
                     const uint8_t *__restrict__ zeros, int sym_zero, const int32_t *__restrict__ pack_group,
                     const __half *__restrict__ X, // (M, ldx), kernel column order; columns >= kvalid read as 0
                     int ldx, int kvalid, int M, int N, int npacks, int pps, int vec4,
                     __half *__restrict__ Y, float *__restrict__ partial) {
    __shared__ __align__(16) __half As[2][MMA_BM * MMA_LDS];  // X tiles, two stages
    __shared__ __align__(16) uint32_t Braw[2][BITS * MMA_BN]; // raw qweight tiles, two stages
    __shared__ __align__(16) __half Bs[MMA_BN * MMA_LDS];     // the dequantized tile: Bs[n][k]

    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
    const int wm = warp >> 1, wn = warp & 1; // warp tile: rows wm*32 .. +31, channels wn*64 .. +63
    const int m0 = blockIdx.y * MMA_BM, n0 = blockIdx.x * MMA_BN;
    const int p0 = blockIdx.z * pps, p1 = min(p0 + pps, npacks);

    auto load_tile = [&](int p, int st) {
        for (int i = tid; i < MMA_BM * 4; i += MMA_THREADS) { // 64 rows x 4 chunks of 8 halves
            int r = i >> 2, ch = i & 3, row = m0 + r, k = p * 32 + ch * 8;
            bool ok = row < M && k < kvalid; // kvalid % 8 == 0: a chunk is wholly in or out
            cp_async16(&As[st][r * MMA_LDS + ch * 8], ok ? (const void *)(X + (size_t)row * ldx + k) : (const void *)X,
                       ok ? 16 : 0);
        }
        if (vec4) {
            for (int i = tid; i < BITS * MMA_BN / 4; i += MMA_THREADS) {
                int b = i / (MMA_BN / 4), c = (i % (MMA_BN / 4)) * 4, n = n0 + c;
                bool ok = n < N;
                cp_async16(&Braw[st][b * MMA_BN + c], ok ? (const void *)(qw + (size_t)(p * BITS + b) * N + n) : (const void *)qw,
                           ok ? 16 : 0);
            }
        } else {
            for (int i = tid; i < BITS * MMA_BN; i += MMA_THREADS) {
                int b = i / MMA_BN, c = i % MMA_BN, n = n0 + c;
                bool ok = n < N;
                cp_async4(&Braw[st][b * MMA_BN + c], ok ? (const void *)(qw + (size_t)(p * BITS + b) * N + n) : (const void *)qw,
                          ok ? 4 : 0);
            }
        }
    };

    float acc[2][8][4];
#pragma unroll
    for (int mi = 0; mi < 2; mi++)
#pragma unroll
        for (int ni = 0; ni < 8; ni++)
#pragma unroll
            for (int e = 0; e < 4; e++) acc[mi][ni][e] = 0.0f;

    if (p0 < p1) load_tile(p0, 0);
    cp_async_commit();
    for (int p = p0; p < p1; p++) {
        const int st = (p - p0) & 1;
        if (p + 1 < p1) load_tile(p + 1, st ^ 1);
        cp_async_commit();   // possibly empty: keeps "all but the newest group" meaning "tile p"
        cp_async_wait<1>();
        __syncthreads();

        { // dequantize channel n0 + tid of the raw tile into Bs[tid][0..31]
            const int n = n0 + tid;
            float s = 0.0f, zb = NT_MAGIC + (float)sym_zero;
            if (n < N) {
                size_t gi = (size_t)__ldg(pack_group + p) * N + n;
                s = __half2float(scales[gi]);
                if (zeros) zb = NT_MAGIC + (float)zeros[gi];
            }
            uint32_t w[BITS];
#pragma unroll
            for (int b = 0; b < BITS; b++) w[b] = Braw[st][b * MMA_BN + tid]; // consecutive words: no conflicts
            uint32_t h[16];
#pragma unroll
            for (int j = 0; j < 16; j++) {
                // s * (q - zero) in fp32, then rounded to fp16: the reference with w_f16 computes the same bits
                float f0 = s * (code_plus_magic(pack_code<BITS>(w, 2 * j)) - zb);
                float f1 = s * (code_plus_magic(pack_code<BITS>(w, 2 * j + 1)) - zb);
                __half2 v = __floats2half2_rn(f0, f1);
                h[j] = *reinterpret_cast<uint32_t *>(&v);
            }
            uint4 *dst = reinterpret_cast<uint4 *>(&Bs[tid * MMA_LDS]);
#pragma unroll
            for (int q = 0; q < 4; q++) dst[q] = make_uint4(h[4 * q], h[4 * q + 1], h[4 * q + 2], h[4 * q + 3]);
        }
        __syncthreads();

#pragma unroll
        for (int ks = 0; ks < 2; ks++) { // two k16 steps per pack
            uint32_t a[2][4];
#pragma unroll
            for (int mi = 0; mi < 2; mi++) // matrices: rows 0-7|8-15 x k 0-7|8-15, in a0..a3 order
                ldmatrix_x4(a[mi], &As[st][(wm * 32 + mi * 16 + (lane & 15)) * MMA_LDS + ks * 16 + (lane >> 4) * 8]);
#pragma unroll
            for (int nj = 0; nj < 4; nj++) { // two n8 tiles per ldmatrix: (n 0-7, k 0-7 | 8-15), (n 8-15, ...)
                uint32_t b[4];
                ldmatrix_x4(b, &Bs[(wn * 64 + nj * 16 + (lane >> 4) * 8 + (lane & 7)) * MMA_LDS + ks * 16 +
                                   ((lane >> 3) & 1) * 8]);
#pragma unroll
                for (int mi = 0; mi < 2; mi++) {
                    mma_16816(acc[mi][2 * nj], a[mi], b[0], b[1]);
                    mma_16816(acc[mi][2 * nj + 1], a[mi], b[2], b[3]);
                }
            }
        }
        __syncthreads(); // Bs and stage st are rewritten next
    }
    cp_async_wait<0>();

    // c0, c1: (row g, channels 2t, 2t+1); c2, c3: (row g + 8, same channels)
    const int g = lane >> 2, t = lane & 3;
#pragma unroll
    for (int mi = 0; mi < 2; mi++)
#pragma unroll
        for (int ni = 0; ni < 8; ni++)
#pragma unroll
            for (int hh = 0; hh < 2; hh++) {
                int row = m0 + wm * 32 + mi * 16 + g + hh * 8, col = n0 + wn * 64 + ni * 8 + 2 * t;
                if (row >= M) continue;
#pragma unroll
                for (int e = 0; e < 2; e++) {
                    if (col + e >= N) continue;
                    float v = acc[mi][ni][hh * 2 + e];
                    if (gridDim.z == 1) Y[(size_t)row * N + col + e] = __float2half_rn(v);
                    else partial[((size_t)blockIdx.z * M + row) * N + col + e] = v;
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
    d->bits = lay->bits;
    d->group_size = lay->group_size;
    d->n_groups = lay->n_groups;
    d->sym_zero = lay->sym_zero;
    size_t nq = (size_t)lay->npacks * lay->bits * lay->N, ng = (size_t)lay->n_groups * lay->N;
    cudaError_t e = cudaMalloc(&d->qweight, nq * 4);
    if (e == cudaSuccess) e = cudaMemcpy(d->qweight, lay->qweight, nq * 4, cudaMemcpyHostToDevice);
    if (e == cudaSuccess) e = cudaMalloc(&d->scales, ng * 2);
    if (e == cudaSuccess) e = cudaMemcpy(d->scales, lay->scales, ng * 2, cudaMemcpyHostToDevice);
    if (e == cudaSuccess && lay->zeros) e = cudaMalloc(&d->zeros, ng);
    if (e == cudaSuccess && lay->zeros) e = cudaMemcpy(d->zeros, lay->zeros, ng, cudaMemcpyHostToDevice);
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

void nt_gpu_qlinear_free(nt_gpu_qlinear **d) {
    if (!d || !*d) return;
    nt_gpu_qlinear *q = *d;
    if (q->qweight) cudaFree(q->qweight);
    if (q->scales) cudaFree(q->scales);
    if (q->zeros) cudaFree(q->zeros);
    if (q->pack_group) cudaFree(q->pack_group);
    if (q->kmap) cudaFree(q->kmap);
    free(q);
    *d = NULL;
}

size_t nt_gpu_qlinear_weight_bytes(const nt_gpu_qlinear *d) {
    size_t ng = (size_t)d->n_groups * d->N;
    return (size_t)d->npacks * d->bits * d->N * 4 + ng * 2 + (d->zeros ? ng : 0);
}

// ---------------------------------------------------------------------------------------------- dispatch

const char *nt_qkernel_name(nt_qkernel k) {
    switch (k) {
    case NT_QKERNEL_AUTO: return "auto";
    case NT_QKERNEL_GEMV: return "gemv";
    case NT_QKERNEL_MMA: return "mma";
    }
    return "?";
}

nt_qkernel nt_qkernel_pick(int M) { return M <= NT_QGEMV_MAX_M ? NT_QKERNEL_GEMV : NT_QKERNEL_MMA; }

static size_t align256(size_t x) { return (x + 255) & ~(size_t)255; }

static int ceil_div(int a, int b) { return (a + b - 1) / b; }

// Splits of npacks that bring `blocks` up to about `target` blocks, at least min_pps packs each, at most
// max_pps; *pps gets the packs per split. Returns the number of splits (every split non-empty).
static int choose_splits(int npacks, int blocks, int target, int min_pps, int max_pps, int *pps) {
    int s = blocks >= target ? 1 : ceil_div(target, blocks);
    int smax = ceil_div(npacks, min_pps);
    if (s > smax) s = smax;
    if (s < ceil_div(npacks, max_pps)) s = ceil_div(npacks, max_pps);
    if (s < 1) s = 1;
    *pps = ceil_div(npacks, s);
    return ceil_div(npacks, *pps);
}

template <int BITS>
static void launch_gemv(const nt_gpu_qlinear *w, const __half *X, __half *Y, float *partial, int M, int cpt, int S,
                        int pps, cudaStream_t stream) {
    dim3 grid(ceil_div(w->N, GEMV_THREADS * cpt), S);
    size_t smem = (size_t)M * pps * 32 * sizeof(float);
    if (cpt == 4)
        nt_launch(qgemv_kernel<BITS, 4>, grid, GEMV_THREADS, smem, stream, w->qweight, w->scales, w->zeros,
                  w->sym_zero, w->pack_group, w->kmap, X, M, w->K, w->N, w->npacks, pps, Y, partial);
    else
        nt_launch(qgemv_kernel<BITS, 1>, grid, GEMV_THREADS, smem, stream, w->qweight, w->scales, w->zeros,
                  w->sym_zero, w->pack_group, w->kmap, X, M, w->K, w->N, w->npacks, pps, Y, partial);
}

template <int BITS>
static void launch_mma(const nt_gpu_qlinear *w, const __half *X, int ldx, int kvalid, __half *Y, float *partial,
                       int M, int S, int pps, cudaStream_t stream) {
    dim3 grid(ceil_div(w->N, MMA_BN), ceil_div(M, MMA_BM), S);
    nt_launch(qgemm_mma_kernel<BITS>, grid, MMA_THREADS, 0, stream, w->qweight, w->scales, w->zeros, w->sym_zero,
              w->pack_group, X, ldx, kvalid, M, w->N, w->npacks, pps, (int)(w->N % 4 == 0), Y, partial);
}

int nt_gpu_qgemm(nt_gpu_ctx *ctx, const nt_gpu_qlinear *w, const uint16_t *Xh, uint16_t *Yh, int M, nt_qkernel kernel,
                 nt_err *err) {
    if (M < 1) return nt_fail(err, "qgemm: M = %d rows", M);
    if (!Xh || !Yh) return nt_fail(err, "qgemm: NULL X or Y");
    if (kernel == NT_QKERNEL_AUTO) kernel = nt_qkernel_pick(M);
    if (kernel == NT_QKERNEL_GEMV && M > NT_QGEMV_MAX_M)
        return nt_fail(err, "qgemm: the GEMV kernel takes at most %d rows, got M = %d", NT_QGEMV_MAX_M, M);
    const __half *X = reinterpret_cast<const __half *>(Xh);
    __half *Y = reinterpret_cast<__half *>(Yh);
    const int N = w->N, sms = ctx->info.sm_count > 0 ? ctx->info.sm_count : 1;
    cudaStream_t stream = ctx->stream;

    int S = 1, pps = w->npacks;
    size_t partial_bytes = 0, xg_bytes = 0;
    int cpt = N % 4 == 0 ? 4 : 1;
    const __half *Xk = X;
    int ldx = w->K, kvalid = w->K;
    if (kernel == NT_QKERNEL_GEMV) {
        // ~4 blocks per SM of 128 threads; splits of at most GEMV_MAX_PACKS packs (the shared X chunk).
        int blocks = ceil_div(N, GEMV_THREADS * cpt);
        S = choose_splits(w->npacks, blocks, 4 * sms, 1, GEMV_MAX_PACKS, &pps);
    } else {
        int blocks = ceil_div(N, MMA_BN) * ceil_div(M, MMA_BM);
        S = choose_splits(w->npacks, blocks, 2 * sms, 8, w->npacks, &pps);
        // Act-order, K % 8 != 0 or an unaligned X: gather/pad X into (M, Kp) so every 16-byte chunk is aligned.
        if (w->kmap || w->K % 8 != 0 || ((uintptr_t)X & 15) != 0) {
            xg_bytes = align256((size_t)M * w->Kp * sizeof(__half));
            ldx = kvalid = w->Kp;
        }
    }
    if (S > 1) partial_bytes = align256((size_t)S * M * N * sizeof(float));
    if (nt_gpu_ws_reserve(ctx, partial_bytes + xg_bytes, err)) return -1;
    float *partial = S > 1 ? (float *)ctx->ws : NULL;
    if (xg_bytes) {
        __half *Xg = (__half *)((char *)ctx->ws + partial_bytes);
        size_t total = (size_t)M * w->Kp;
        int blocks = (int)((total + 255) / 256 < (size_t)sms * 8 ? (total + 255) / 256 : (size_t)sms * 8);
        nt_launch(gather_x_kernel, blocks, 256, 0, stream, X, w->kmap, M, w->K, w->Kp, Xg);
        NT_CUDA_LAUNCHED("gather_x_kernel");
        Xk = Xg;
    }

    if (kernel == NT_QKERNEL_GEMV) {
        switch (w->bits) {
        case 2: launch_gemv<2>(w, Xk, Y, partial, M, cpt, S, pps, stream); break;
        case 3: launch_gemv<3>(w, Xk, Y, partial, M, cpt, S, pps, stream); break;
        case 4: launch_gemv<4>(w, Xk, Y, partial, M, cpt, S, pps, stream); break;
        case 8: launch_gemv<8>(w, Xk, Y, partial, M, cpt, S, pps, stream); break;
        default: return nt_fail(err, "qgemm: unsupported bit width %d", w->bits);
        }
        NT_CUDA_LAUNCHED("qgemv_kernel");
    } else {
        switch (w->bits) {
        case 2: launch_mma<2>(w, Xk, ldx, kvalid, Y, partial, M, S, pps, stream); break;
        case 3: launch_mma<3>(w, Xk, ldx, kvalid, Y, partial, M, S, pps, stream); break;
        case 4: launch_mma<4>(w, Xk, ldx, kvalid, Y, partial, M, S, pps, stream); break;
        case 8: launch_mma<8>(w, Xk, ldx, kvalid, Y, partial, M, S, pps, stream); break;
        default: return nt_fail(err, "qgemm: unsupported bit width %d", w->bits);
        }
        NT_CUDA_LAUNCHED("qgemm_mma_kernel");
    }
    if (S > 1) {
        size_t MN = (size_t)M * N;
        int blocks = (int)((MN + 255) / 256 < (size_t)sms * 8 ? (MN + 255) / 256 : (size_t)sms * 8);
        nt_launch(splitk_reduce_kernel, blocks, 256, 0, stream, partial, S, MN, Y);
        NT_CUDA_LAUNCHED("splitk_reduce_kernel");
    }
    return 0;
}

int nt_gpu_qdequantize(nt_gpu_ctx *ctx, const nt_gpu_qlinear *w, uint16_t *W, nt_err *err) {
    dim3 grid(ceil_div(w->N, 128), w->npacks);
    nt_launch(dequant_kernel, grid, 128, 0, ctx->stream, w->qweight, w->scales, w->zeros, w->sym_zero, w->pack_group,
              w->kmap, w->bits, w->K, w->N, reinterpret_cast<__half *>(W));
    NT_CUDA_LAUNCHED("dequant_kernel");
    return 0;
}
