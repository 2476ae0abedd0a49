// test_cuda_emu.cc: the CPU emulator of CUDA (kernels/cuda_emu.h) catches the bugs it is there to catch. Each check
// is shown failing on a planted bug in a tiny kernel (and passing on the fixed kernel):
//   - shared memory nobody wrote reads the poison (NaN), not a friendly zero;
//   - a kernel that relies on block order fails for a seeded random block order;
//   - a kernel in which one warp reads what another wrote without a barrier fails for some seed;
//   - a cp.async stage refilled while other threads still read it (a stage reused too early) reads the poison;
//   - more than 48 KB of dynamic shared memory without cudaFuncSetAttribute is a launch error, as on a device.
// Before these checks the emulator zeroed __shared__ arrays, ran blocks, warps and lanes in index order and
// performed a cp.async only at its wait: every planted bug below passed unnoticed (the expected values the buggy
// kernels would have produced are noted beside each). Each test runs in its own process (Criterion's default),
// so the sticky launch error of one does not leak into another.
#include <criterion/criterion.h>
#include <math.h>

#include "cuda_emu.h"

// ------------------------------------------------------------------------------------ planted-bug kernels

// Sum of a 256-entry shared array, each of the block's threads writing per_thread entries. Bug: 128 threads
// writing one entry each leave half of it unwritten.
__global__ void sum_shared(float *out, int per_thread) {
    __shared__ float s[256];
    for (int j = 0; j < per_thread; j++) s[threadIdx.x * per_thread + j] = 1.0f;
    __syncthreads();
    if (threadIdx.x == 0) {
        float t = 0.0f;
        for (int i = 0; i < 256; i++) t += s[i];
        *out = t;
    }
}

// Bug: block b reads what block b - 1 wrote in the same launch (there is no order between blocks).
__global__ void chain(int *v) {
    if (threadIdx.x == 0) v[blockIdx.x] = (blockIdx.x ? v[blockIdx.x - 1] : 0) + 1;
}

// Warp 0 writes, warp 1 reads; the bug: no __syncthreads between them.
__global__ void warp_handoff(float *out, int sync) {
    __shared__ float s[32];
    if (threadIdx.x < 32) s[threadIdx.x] = (float)threadIdx.x;
    if (sync) __syncthreads();
    if (threadIdx.x >= 32) out[threadIdx.x - 32] = s[threadIdx.x - 32];
}

// 64 threads stream `iters` tiles of 256 floats through shared memory with cp.async, each thread adding its
// neighbour's element of every tile. Fixed: two stages (tile it + 1 lands in the other stage). Bug: one stage,
// refilled with tile it + 1 while the neighbours still read tile it.
__global__ void stage_reuse(const float *in, float *out, int iters, int stages) {
    __shared__ __align__(16) float buf[2][256];
    const int i = threadIdx.x, nb = 4 * ((i + 1) % 64);
    cp_async16(&buf[0][4 * i], in + 4 * i, 16);
    cp_async_commit();
    cp_async_wait<0>();
    __syncthreads();
    float acc = 0.0f;
    for (int it = 0; it < iters; it++) {
        const int cur = stages == 2 ? it & 1 : 0, next = stages == 2 ? cur ^ 1 : 0;
        if (it + 1 < iters) cp_async16(&buf[next][4 * i], in + (size_t)(it + 1) * 256 + 4 * i, 16);
        cp_async_commit();
        acc += buf[cur][nb];
        __syncthreads(); // every read of tile it is done (so the old emulator, copying at the wait, saw no race)
        cp_async_wait<0>();
        __syncthreads();
    }
    out[i] = acc;
}

__global__ void big_dynamic(float *out) {
    NT_DYN_SMEM(float, d);
    d[threadIdx.x] = 1.0f;
    __syncthreads();
    if (threadIdx.x == 0) *out = d[0] + d[1];
}

// ------------------------------------------------------------------------------------------------- tests

Test(cuda_emu, unwritten_shared_memory_reads_nan) {
    float out = 0.0f;
    nt_launch(sum_shared, 1, 128, 0, NULL, &out, 2); // fixed: 128 threads x 2 entries
    cr_assert_eq(cudaGetLastError(), cudaSuccess);
    cr_assert_eq(out, 256.0f);
    nt_launch(sum_shared, 1, 128, 0, NULL, &out, 1); // planted: half of the array unwritten (old emulator: 128)
    cr_assert(isnan(out), "the unwritten half must read as the poison, got %g", out);
}

Test(cuda_emu, block_order_is_random) {
    enum { B = 16 };
    int v[B];
    nt_emu_set_seed(0); // index order: the bug hides (this was the old emulator's only order)
    memset(v, 0, sizeof v);
    nt_launch(chain, B, 32, 0, NULL, v);
    for (int b = 0; b < B; b++) cr_assert_eq(v[b], b + 1);
    for (uint64_t seed = 1; seed <= 3; seed++) { // every seeded order breaks the chain somewhere
        nt_emu_set_seed(seed);
        memset(v, 0, sizeof v);
        nt_launch(chain, B, 32, 0, NULL, v);
        int wrong = 0;
        for (int b = 0; b < B; b++) wrong += v[b] != b + 1;
        cr_assert(wrong > 0, "seed %d ran the blocks in index order", (int)seed);
    }
}

Test(cuda_emu, warp_order_is_random) {
    float out[32];
    nt_emu_set_seed(0); // index order: warp 0 runs to its end first, the bug hides (old emulator)
    nt_launch(warp_handoff, 1, 64, 0, NULL, out, 0);
    for (int i = 0; i < 32; i++) cr_assert_eq(out[i], (float)i);
    int caught = 0;
    for (uint64_t seed = 1; seed <= 8; seed++) {
        nt_emu_set_seed(seed);
        nt_launch(warp_handoff, 1, 64, 0, NULL, out, 0);
        caught += isnan(out[0]);
        nt_launch(warp_handoff, 1, 64, 0, NULL, out, 1); // fixed: correct under every order
        for (int i = 0; i < 32; i++) cr_assert_eq(out[i], (float)i, "seed %d", (int)seed);
    }
    cr_assert(caught > 0, "no seed of 8 ran warp 1 before warp 0");
    cr_assert_eq(cudaGetLastError(), cudaSuccess);
}

Test(cuda_emu, cp_async_stage_reused_too_early_reads_nan) {
    enum { IT = 5 };
    float in[IT * 256], out[64], want[64];
    for (int i = 0; i < IT * 256; i++) in[i] = (float)(i % 97) + 0.25f * (float)(i / 256);
    for (int i = 0; i < 64; i++) {
        want[i] = 0.0f;
        for (int it = 0; it < IT; it++) want[i] += in[it * 256 + 4 * ((i + 1) % 64)];
    }
    for (uint64_t seed = 0; seed <= 2; seed++) {
        nt_emu_set_seed(seed);
        nt_launch(stage_reuse, 1, 64, 0, NULL, (const float *)in, out, (int)IT, 2); // fixed: two stages
        for (int i = 0; i < 64; i++) cr_assert_eq(out[i], want[i], "seed %d thread %d", (int)seed, i);
        nt_launch(stage_reuse, 1, 64, 0, NULL, (const float *)in, out, (int)IT, 1); // planted (old emulator: want)
        int nan = 0;
        for (int i = 0; i < 64; i++) nan += isnan(out[i]);
        cr_assert(nan > 0, "seed %d: reads of a stage being refilled must see the poison", (int)seed);
    }
}

Test(cuda_emu, dynamic_shared_memory_over_48k_needs_the_attribute) {
    float out = 0.0f;
    const size_t smem = 64 << 10;
    nt_launch(big_dynamic, 1, 32, smem, NULL, &out); // planted: no cudaFuncSetAttribute (a device refuses it)
    cr_assert_neq(cudaGetLastError(), cudaSuccess, "64 KB of dynamic shared memory without the attribute");
    cr_assert(strstr(cudaGetErrorString(cudaGetLastError()), "dynamic shared memory") != NULL, "%s",
              cudaGetErrorString(cudaGetLastError()));
}

Test(cuda_emu, dynamic_shared_memory_over_48k_with_the_attribute) {
    float out = 0.0f;
    const size_t smem = 64 << 10;
    cr_assert_eq(cudaFuncSetAttribute(big_dynamic, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem),
                 cudaSuccess);
    nt_launch(big_dynamic, 1, 32, smem, NULL, &out);
    cr_assert_eq(cudaGetLastError(), cudaSuccess);
    cr_assert_eq(out, 2.0f);
}
