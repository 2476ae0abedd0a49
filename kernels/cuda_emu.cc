// cuda_emu.cc: the CPU emulator behind cuda_emu.h (read its header comment first): the fiber scheduler of a
// block, the warp collectives by the PTX ISA's fragment layouts, cp.async queues, and a small runtime (host
// memory, one emulated device, events, sticky launch errors).
#define NT_CUDA_EMU 1
#include <sanitizer/common_interface_defs.h>
#include <stdio.h>
#include <stdlib.h>
#include <math.h>
#include <time.h>
#include <ucontext.h>

#include <string>
#include <vector>

#include "cuda_emu.h"
extern "C" {
#include "nt.h"
}

#if defined(__SANITIZE_ADDRESS__)
#define EMU_ASAN 1
#else
#define EMU_ASAN 0
#endif

// -------------------------------------------------------------------------------------------------- fp16
float __half2float(__half h) { return nt_f16_to_f32(h.x); }
__half __float2half_rn(float f) { return __half{nt_f32_to_f16(f)}; }

namespace {
// fp16 a * b + c rounded once, as fma.rn.f16 does: the product of two fp16 is exact in double and so is the sum
// but for extreme exponent spreads; double -> fp32 rounded to odd, then fp32 -> fp16 to nearest even, is a
// single correct rounding of the double.
uint16_t h_fma(uint16_t a, uint16_t b, uint16_t c) {
    double d = (double)nt_f16_to_f32(a) * nt_f16_to_f32(b) + nt_f16_to_f32(c);
    float f = (float)d;
    if ((double)f != d && isfinite(f)) {
        if (fabs((double)f) > fabs(d)) f = nextafterf(f, 0.0f);
        uint32_t u;
        memcpy(&u, &f, 4);
        u |= 1u;
        memcpy(&f, &u, 4);
    }
    return nt_f32_to_f16(f);
}
uint32_t per_half(uint32_t a, uint32_t b, uint32_t c, uint16_t (*op)(uint16_t, uint16_t, uint16_t)) {
    return (uint32_t)op((uint16_t)a, (uint16_t)b, (uint16_t)c) |
           (uint32_t)op((uint16_t)(a >> 16), (uint16_t)(b >> 16), (uint16_t)(c >> 16)) << 16;
}
uint16_t h_sub(uint16_t a, uint16_t b, uint16_t) { return h_fma(b, 0xbc00 /* -1 */, a); }
uint16_t h_mul(uint16_t a, uint16_t b, uint16_t) { return h_fma(a, b, 0x8000 /* -0: a * b + -0 is a * b */); }
} // namespace

uint32_t hfma2(uint32_t a, uint32_t b, uint32_t c) { return per_half(a, b, c, h_fma); }
uint32_t hsub2(uint32_t a, uint32_t b) { return per_half(a, b, 0, h_sub); }
uint32_t hmul2(uint32_t a, uint32_t b) { return per_half(a, b, 0, h_mul); }
float h2_lo(uint32_t a) { return nt_f16_to_f32((uint16_t)a); }
float h2_hi(uint32_t a) { return nt_f16_to_f32((uint16_t)(a >> 16)); }
uint32_t prmt(uint32_t a, uint32_t b, uint32_t sel) {
    uint64_t x = (uint64_t)a | (uint64_t)b << 32;
    uint32_t d = 0;
    for (int k = 0; k < 4; k++) d |= (uint32_t)(x >> 8 * ((sel >> 4 * k) & 7) & 0xff) << 8 * k;
    return d;
}

// --------------------------------------------------------------------------------------- context switch
// One fiber per CUDA thread. glibc's swapcontext saves and restores the signal mask with a system call on every
// switch (two per synchronization of every thread: most of the emulator's time); on x86-64 the switch is eight
// pushes and pops instead (the System V callee-saved registers, the SSE and x87 control words), elsewhere
// ucontext remains.
#if defined(__x86_64__)
#define EMU_FAST_SWITCH 1
extern "C" void nt_emu_switch(void **save_sp, void *to_sp);
asm(R"(
    .text
    .globl nt_emu_switch
    .type nt_emu_switch, @function
nt_emu_switch:
    pushq %rbp
    pushq %rbx
    pushq %r12
    pushq %r13
    pushq %r14
    pushq %r15
    subq $8, %rsp
    stmxcsr (%rsp)
    fnstcw 4(%rsp)
    movq %rsp, (%rdi)
    movq %rsi, %rsp
    ldmxcsr (%rsp)
    fldcw 4(%rsp)
    addq $8, %rsp
    popq %r15
    popq %r14
    popq %r13
    popq %r12
    popq %rbx
    popq %rbp
    ret
    .size nt_emu_switch, .-nt_emu_switch
    .section .note.GNU-stack,"",@progbits
    .text
)");
#else
#define EMU_FAST_SWITCH 0
#endif

// ------------------------------------------------------------------------------------------ the scheduler
namespace {

enum state { RUNNABLE, AT_BARRIER, AT_WARP, DONE };
enum collective { C_NONE, C_LDMATRIX_X4, C_MMA_16816, C_SHFL_XOR, C_SHFL_IDX };

struct pending_copy {
    void *dst;
    const void *src;
    int bytes, src_bytes, group;
};

const size_t STACK_BYTES = 256 << 10; // the kernels keep ~1 KB of arrays per thread; headroom for ASan

} // namespace

struct nt_emu_thread {
#if EMU_FAST_SWITCH
    void *sp; // saved stack pointer while switched out
#else
    ucontext_t uc;
#endif
    char *stack;
    uint3 tid;
    int lin; // linear index in the block
    state st;
    collective op;
    // collective inputs and outputs
    const void *addr;
    uint32_t a[4], b[2], r[4];
    float c[4], fv;
    int iarg;
    void *asan_fake; // its ASan fake stack while switched out
    // cp.async
    std::vector<pending_copy> copies;
    int n_commits;
};

nt_emu_thread *nt_emu_cur;
uint3 nt_emu_block_idx;
dim3 nt_emu_grid_dim, nt_emu_block_dim;

// The __shared__ section (cuda_emu.h), bounded by the linker's symbols; weak, for a program without one.
extern "C" char __start_nt_emu_smem[] __attribute__((weak));
extern "C" char __stop_nt_emu_smem[] __attribute__((weak));

namespace {

struct block_state {
    std::vector<nt_emu_thread> th;
#if EMU_FAST_SWITCH
    void *sched_sp;
#else
    ucontext_t sched;
#endif
    const std::function<void()> *body;
    std::vector<char> dyn_smem;
    std::string error; // a launch failure: the rest of the launch is abandoned
    const void *sched_stack_bottom;
    size_t sched_stack_size;
    std::vector<int> order; // the scheduling order of one round (thread indices)
};

block_state *g_blk;
cudaError_t g_sticky = cudaSuccess;
std::string g_error_msg;

// ------------------------------------------------------------------------------------- the seeded order
uint64_t g_seed_state;
bool g_seed_set = false;
bool g_in_order = false; // seed 0: blocks, warps and lanes in index order

void seed_init(void) {
    if (g_seed_set) return;
    const char *e = getenv("NT_EMU_SEED");
    uint64_t s = e && *e ? strtoull(e, NULL, 0) : 1;
    nt_emu_set_seed(s);
}

uint64_t rnd(void) { // xorshift64*
    g_seed_state ^= g_seed_state >> 12;
    g_seed_state ^= g_seed_state << 25;
    g_seed_state ^= g_seed_state >> 27;
    return g_seed_state * 0x2545f4914f6cdd1dull;
}

template <typename T> void shuffle(T *a, size_t n) {
    for (size_t i = n; i > 1; i--) {
        size_t j = (size_t)(rnd() % i);
        T t = a[i - 1];
        a[i - 1] = a[j];
        a[j] = t;
    }
}

// The order of one scheduling round: warps in a random order, the lanes of each warp in a random order.
void round_order(block_state *b) {
    size_t n = b->th.size(), nw = (n + 31) / 32;
    b->order.resize(n);
    int warps[32];
    for (size_t w = 0; w < nw; w++) warps[w] = (int)w;
    if (!g_in_order) shuffle(warps, nw);
    size_t o = 0;
    for (size_t i = 0; i < nw; i++) {
        size_t w0 = (size_t)warps[i] * 32, w1 = w0 + 32 < n ? w0 + 32 : n, first = o;
        for (size_t t = w0; t < w1; t++) b->order[o++] = (int)t;
        if (!g_in_order) shuffle(&b->order[first], w1 - w0);
    }
}

// Fills memory with the poison (0xff bytes) without the sanitizer's checks (the section may hold its redzones).
__attribute__((no_sanitize_address)) void poison(void *p, size_t n) {
    volatile unsigned char *c = static_cast<volatile unsigned char *>(p);
    for (size_t i = 0; i < n; i++) c[i] = 0xff;
}

void poison_shared(block_state *b) {
    char *a = __start_nt_emu_smem, *z = __stop_nt_emu_smem;
    if (a && z > a) poison(a, (size_t)(z - a));
    poison(b->dyn_smem.data(), b->dyn_smem.size());
}

// ------------------------------------------------------------------------------------------- switching
void switch_to_scheduler(nt_emu_thread *t, bool exiting) {
#if EMU_ASAN
    __sanitizer_start_switch_fiber(exiting ? NULL : &t->asan_fake, g_blk->sched_stack_bottom,
                                   g_blk->sched_stack_size);
#else
    (void)exiting;
#endif
#if EMU_FAST_SWITCH
    nt_emu_switch(&t->sp, g_blk->sched_sp);
#else
    swapcontext(&t->uc, &g_blk->sched);
#endif
#if EMU_ASAN
    __sanitizer_finish_switch_fiber(t->asan_fake, NULL, NULL);
#endif
}

void fiber_main(void) {
#if EMU_ASAN
    __sanitizer_finish_switch_fiber(NULL, &g_blk->sched_stack_bottom, &g_blk->sched_stack_size);
#endif
    nt_emu_thread *t = nt_emu_cur;
    (*g_blk->body)();
    t->st = DONE;
    switch_to_scheduler(t, true);
    abort(); // a finished fiber is never resumed
}

void run_fiber(nt_emu_thread *t) {
    nt_emu_cur = t;
#if EMU_ASAN
    void *fake = NULL;
    __sanitizer_start_switch_fiber(&fake, t->stack, STACK_BYTES);
#endif
#if EMU_FAST_SWITCH
    nt_emu_switch(&g_blk->sched_sp, t->sp);
#else
    swapcontext(&g_blk->sched, &t->uc);
#endif
#if EMU_ASAN
    __sanitizer_finish_switch_fiber(fake, NULL, NULL);
#endif
    nt_emu_cur = NULL;
}

void block_until_released(state s) {
    nt_emu_thread *t = nt_emu_cur;
    t->st = s;
    switch_to_scheduler(t, false);
}

// The PTX ISA's fragments, m16n8k16 with .f16 A/B and .f32 C/D (groupID = lane / 4, tig = lane % 4):
//   A (16 x 16, row): a[0] = (row g,     k 2t, 2t+1)  a[1] = (row g + 8, k 2t, 2t+1)
//                     a[2] = (row g,     k 2t+8, +9)  a[3] = (row g + 8, k 2t+8, +9)   (low half: the first)
//   B (16 x 8, col):  b0 = (k 2t, 2t+1; col g)        b1 = (k 2t+8, 2t+9; col g)
//   C, D (16 x 8):    c0, c1 = (row g, cols 2t, 2t+1)  c2, c3 = (row g + 8, cols 2t, 2t+1)
float lo(uint32_t v) { return nt_f16_to_f32((uint16_t)(v & 0xffff)); }
float hi(uint32_t v) { return nt_f16_to_f32((uint16_t)(v >> 16)); }

void do_mma(nt_emu_thread *w) {
    float A[16][16], B[16][8], C[16][8];
    for (int l = 0; l < 32; l++) {
        const nt_emu_thread *t = &w[l];
        int g = l >> 2, q = l & 3;
        for (int i = 0; i < 4; i++) {
            int row = g + (i & 1) * 8, k = 2 * q + (i >> 1) * 8;
            A[row][k] = lo(t->a[i]);
            A[row][k + 1] = hi(t->a[i]);
        }
        B[2 * q][g] = lo(t->b[0]);
        B[2 * q + 1][g] = hi(t->b[0]);
        B[2 * q + 8][g] = lo(t->b[1]);
        B[2 * q + 9][g] = hi(t->b[1]);
        for (int i = 0; i < 4; i++) C[g + (i >> 1) * 8][2 * q + (i & 1)] = t->c[i];
    }
    for (int l = 0; l < 32; l++) {
        nt_emu_thread *t = &w[l];
        int g = l >> 2, q = l & 3;
        for (int i = 0; i < 4; i++) {
            int row = g + (i >> 1) * 8, col = 2 * q + (i & 1);
            float acc = C[row][col];
            for (int k = 0; k < 16; k++) acc = fmaf(A[row][k], B[k][col], acc);
            t->c[i] = acc;
        }
    }
}

// ldmatrix .m8n8 .x4 .b16: lanes 8i .. 8i+7 give the row addresses of matrix i; lane l receives, from each
// matrix i, row l / 4, elements 2 (l % 4) and 2 (l % 4) + 1, in r[i] (low half: the first).
void do_ldmatrix_x4(nt_emu_thread *w) {
    for (int l = 0; l < 32; l++)
        for (int i = 0; i < 4; i++) {
            const uint16_t *row = static_cast<const uint16_t *>(w[i * 8 + (l >> 2)].addr);
            w[l].r[i] = (uint32_t)row[2 * (l & 3)] | (uint32_t)row[2 * (l & 3) + 1] << 16;
        }
}

void do_shfl(nt_emu_thread *w, collective op) {
    float in[32];
    for (int l = 0; l < 32; l++) in[l] = w[l].fv;
    for (int l = 0; l < 32; l++) w[l].fv = in[op == C_SHFL_XOR ? (l ^ w[l].iarg) & 31 : w[l].iarg & 31];
}

// Releases what can be released; false when nothing could (then the block is finished or stuck).
bool release(block_state *b) {
    bool any = false;
    size_t n = b->th.size();
    for (size_t w0 = 0; w0 < n; w0 += 32) {
        size_t w1 = w0 + 32 < n ? w0 + 32 : n;
        int waiting = 0, done = 0;
        collective op = C_NONE;
        bool same = true;
        for (size_t i = w0; i < w1; i++) {
            if (b->th[i].st == DONE) done++;
            if (b->th[i].st != AT_WARP) continue;
            if (waiting++ == 0) op = b->th[i].op;
            else if (b->th[i].op != op) same = false;
        }
        if (!waiting) continue;
        if (w1 - w0 < 32 || done) {
            b->error = "a warp collective with lanes that are missing or have exited";
            return false;
        }
        if (waiting < 32) continue;
        if (!same) {
            b->error = "lanes of one warp wait at different collectives";
            return false;
        }
        nt_emu_thread *w = &b->th[w0];
        if (op == C_MMA_16816) do_mma(w);
        else if (op == C_LDMATRIX_X4) do_ldmatrix_x4(w);
        else do_shfl(w, op);
        for (size_t i = w0; i < w1; i++) b->th[i].st = RUNNABLE;
        any = true;
    }
    if (any) return true;
    size_t at_bar = 0, done = 0;
    for (auto &t : b->th) {
        at_bar += t.st == AT_BARRIER;
        done += t.st == DONE;
    }
    if (at_bar && at_bar + done == n) {
        for (auto &t : b->th)
            if (t.st == AT_BARRIER) t.st = RUNNABLE;
        return true;
    }
    if (done < n) b->error = "deadlock: threads wait at __syncthreads while others wait at a warp collective";
    return false;
}

#if EMU_FAST_SWITCH
[[noreturn]] void fiber_entry(void) {
    fiber_main();
    abort();
}
#endif

// A fresh fiber for thread t (its own function: getcontext returns twice, so no caller variables live across it).
__attribute__((noinline)) void init_fiber(nt_emu_thread *t, char *stack) {
    t->stack = stack;
#if EMU_FAST_SWITCH
    // The frame nt_emu_switch pops: control words, r15..rbp, then "returns" into fiber_entry with the stack
    // aligned as after a call (rsp + 8 a multiple of 16).
    uintptr_t top = ((uintptr_t)stack + STACK_BYTES) & ~(uintptr_t)15;
    void **sp = reinterpret_cast<void **>(top);
    *--sp = NULL;                                   // fiber_entry's return address (it never returns)
    *--sp = reinterpret_cast<void *>(&fiber_entry); // popped by ret
    for (int i = 0; i < 6; i++) *--sp = NULL;       // rbp, rbx, r12..r15
    --sp;
    uint32_t csr;
    uint16_t cw;
    asm volatile("stmxcsr %0\n\tfnstcw %1" : "=m"(csr), "=m"(cw));
    memcpy(reinterpret_cast<char *>(sp), &csr, 4);
    memcpy(reinterpret_cast<char *>(sp) + 4, &cw, 2);
    t->sp = sp;
#else
    getcontext(&t->uc);
    t->uc.uc_stack.ss_sp = stack;
    t->uc.uc_stack.ss_size = STACK_BYTES;
    t->uc.uc_link = NULL;
    makecontext(&t->uc, fiber_main, 0);
#endif
}

// Fiber stacks, reused across launches (one per thread of the largest block so far), freed at exit.
struct stacks {
    std::vector<char *> v;
    ~stacks() {
        for (char *p : v) free(p);
    }
} g_stacks;

// cudaFuncSetAttribute(MaxDynamicSharedMemorySize) per kernel.
struct func_attr {
    const void *kernel;
    int max_dyn_smem;
};
std::vector<func_attr> g_func_attrs;

const size_t SMEM_DEFAULT = 48 << 10, SMEM_OPTIN = 227 << 10;

void launch_fail(cudaError_t e, const std::string &msg) {
    g_sticky = e;
    g_error_msg = msg;
    fprintf(stderr, "cuda_emu: %s\n", msg.c_str());
}

} // namespace

extern "C" void nt_emu_set_seed(uint64_t seed) {
    g_seed_set = true;
    g_in_order = seed == 0;
    g_seed_state = seed ? seed : 1;
    for (int i = 0; i < 4; i++) rnd();
}

const uint3 &nt_emu_thread_idx(void) { return nt_emu_cur->tid; }

void nt_emu_syncthreads(void) { block_until_released(AT_BARRIER); }

void *nt_emu_dyn_smem(void) { return g_blk->dyn_smem.data(); }

cudaError_t nt_emu_func_set_attribute(const void *kernel, cudaFuncAttribute a, int value) {
    if (a != cudaFuncAttributeMaxDynamicSharedMemorySize || value < 0 || (size_t)value > SMEM_OPTIN)
        return cudaErrorInvalidValue;
    for (auto &f : g_func_attrs)
        if (f.kernel == kernel) {
            f.max_dyn_smem = value;
            return cudaSuccess;
        }
    g_func_attrs.push_back(func_attr{kernel, value});
    return cudaSuccess;
}

void nt_emu_launch(const void *kernel, dim3 grid, dim3 block, size_t smem, const std::function<void()> &body) {
    if (g_sticky != cudaSuccess) return; // as on a device: a failed context fails every later launch
    seed_init();
    size_t nthreads = (size_t)block.x * block.y * block.z, nblocks = (size_t)grid.x * grid.y * grid.z;
    if (nthreads == 0 || nthreads > 1024 || nblocks == 0 || grid.y > 65535 || grid.z > 65535) {
        launch_fail(cudaErrorInvalidValue, "invalid launch configuration");
        return;
    }
    if (smem > SMEM_DEFAULT) { // as on a device: above 48 KB only after cudaFuncSetAttribute
        size_t allowed = SMEM_DEFAULT;
        for (auto &f : g_func_attrs)
            if (f.kernel == kernel) allowed = (size_t)f.max_dyn_smem;
        if (smem > allowed) {
            launch_fail(cudaErrorInvalidValue, "invalid argument: " + std::to_string(smem) +
                                                   " bytes of dynamic shared memory, more than the kernel's limit of " +
                                                   std::to_string(allowed) + " (cudaFuncSetAttribute)");
            return;
        }
    }
    while (g_stacks.v.size() < nthreads) {
        char *p = static_cast<char *>(malloc(STACK_BYTES));
        if (!p) {
            launch_fail(cudaErrorMemoryAllocation, "out of memory for fiber stacks");
            return;
        }
        g_stacks.v.push_back(p);
    }
    block_state b;
    b.body = &body;
    b.dyn_smem.assign(smem ? smem : 1, 0);
    b.th.resize(nthreads);
    b.sched_stack_bottom = NULL;
    b.sched_stack_size = 0;
    block_state *outer = g_blk;
    g_blk = &b;
    nt_emu_grid_dim = grid;
    nt_emu_block_dim = block;
    // the blocks in a seeded random order (index order with seed 0)
    std::vector<uint32_t> blocks(nblocks);
    for (size_t i = 0; i < nblocks; i++) blocks[i] = (uint32_t)i;
    if (!g_in_order) shuffle(blocks.data(), nblocks);
    for (size_t bi = 0; bi < nblocks && b.error.empty(); bi++) {
        size_t id = blocks[bi];
        nt_emu_block_idx = uint3{(unsigned)(id % grid.x), (unsigned)(id / grid.x % grid.y),
                                 (unsigned)(id / ((size_t)grid.x * grid.y))};
        poison_shared(&b);
        for (size_t i = 0; i < nthreads; i++) {
            nt_emu_thread &t = b.th[i];
            t.lin = (int)i;
            t.tid = uint3{(unsigned)(i % block.x), (unsigned)(i / block.x % block.y),
                          (unsigned)(i / ((size_t)block.x * block.y))};
            t.st = RUNNABLE;
            t.op = C_NONE;
            t.copies.clear();
            t.n_commits = 0;
            t.asan_fake = NULL;
            init_fiber(&t, g_stacks.v[i]);
        }
        for (;;) {
            round_order(&b);
            for (int i : b.order)
                if (b.th[i].st == RUNNABLE) run_fiber(&b.th[i]);
            if (!release(&b)) break;
        }
    }
    g_blk = outer;
    if (!b.error.empty()) launch_fail(cudaErrorLaunchFailure, "emulated launch failure: " + b.error);
}

// --------------------------------------------------------------------------------------------- collectives

static void warp_collective(collective op) {
    nt_emu_cur->op = op;
    block_until_released(AT_WARP);
}

void ldmatrix_x4(uint32_t (&r)[4], const void *p) {
    nt_emu_thread *t = nt_emu_cur;
    t->addr = p;
    warp_collective(C_LDMATRIX_X4);
    for (int i = 0; i < 4; i++) r[i] = t->r[i];
}

void mma_16816(float (&c)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
    nt_emu_thread *t = nt_emu_cur;
    memcpy(t->a, a, sizeof t->a);
    t->b[0] = b0;
    t->b[1] = b1;
    memcpy(t->c, c, sizeof t->c);
    warp_collective(C_MMA_16816);
    memcpy(c, t->c, sizeof t->c);
}

static float shfl(float v, int arg, collective op) {
    nt_emu_thread *t = nt_emu_cur;
    t->fv = v;
    t->iarg = arg;
    warp_collective(op);
    return t->fv;
}

float __shfl_xor_sync(unsigned mask, float v, int lane_mask) {
    (void)mask;
    return shfl(v, lane_mask, C_SHFL_XOR);
}

float __shfl_sync(unsigned mask, float v, int src_lane) {
    (void)mask;
    return shfl(v, src_lane, C_SHFL_IDX);
}

// The destination is poisoned at once: whatever reads it before the issuing thread's wait (and the barrier
// after it) reads NaN, as it could read anything on a device.
void nt_emu_cp_async(void *dst, const void *src, int bytes, int src_bytes) {
    nt_emu_thread *t = nt_emu_cur;
    poison(dst, (size_t)bytes);
    t->copies.push_back(pending_copy{dst, src, bytes, src_bytes, t->n_commits});
}

void cp_async_commit(void) { nt_emu_cur->n_commits++; }

// Completes every copy of the committed groups but the newest n (later copies may stay in flight).
void nt_emu_cp_async_wait(int n) {
    nt_emu_thread *t = nt_emu_cur;
    int upto = t->n_commits - n; // groups 0 .. upto-1 must be complete
    std::vector<pending_copy> keep;
    for (const pending_copy &c : t->copies) {
        if (c.group < upto) {
            memcpy(c.dst, c.src, (size_t)c.src_bytes);
            memset(static_cast<char *>(c.dst) + c.src_bytes, 0, (size_t)(c.bytes - c.src_bytes));
        } else {
            keep.push_back(c);
        }
    }
    t->copies.swap(keep);
}

// ------------------------------------------------------------------------------------------------- runtime

cudaError_t cudaGetDeviceCount(int *n) {
    *n = 1;
    return cudaSuccess;
}

cudaError_t cudaGetDeviceProperties(cudaDeviceProp *p, int device) {
    if (device != 0) return cudaErrorInvalidValue;
    memset(p, 0, sizeof *p);
    snprintf(p->name, sizeof p->name, "normtweak CPU emulator");
    p->major = 8;
    p->minor = 0;
    p->multiProcessorCount = 4; // few: the split-K paths get exercised on small shapes
    p->l2CacheSize = 1 << 20;
    p->memoryBusWidth = 64;
    p->totalGlobalMem = (size_t)8 << 30;
    p->sharedMemPerBlockOptin = 227 << 10;
    return cudaSuccess;
}

cudaError_t cudaDeviceGetAttribute(int *v, cudaDeviceAttr a, int device) {
    (void)a;
    if (device != 0) return cudaErrorInvalidValue;
    *v = 1000000; // kHz
    return cudaSuccess;
}

cudaError_t cudaSetDevice(int device) { return device == 0 ? cudaSuccess : cudaErrorInvalidValue; }

cudaError_t cudaDeviceGetPCIBusId(char *id, int len, int device) {
    if (device != 0 || len < 1) return cudaErrorInvalidValue;
    snprintf(id, (size_t)len, "emulator");
    return cudaSuccess;
}

cudaError_t nt_emu_malloc(void **p, size_t bytes) {
    *p = malloc(bytes ? bytes : 1); // exact sizes: ASan sees a kernel's out-of-bounds access
    return *p ? cudaSuccess : cudaErrorMemoryAllocation;
}

cudaError_t cudaFree(void *p) {
    free(p);
    return cudaSuccess;
}

cudaError_t cudaMemcpy(void *dst, const void *src, size_t bytes, cudaMemcpyKind kind) {
    (void)kind;
    if (g_sticky != cudaSuccess) return g_sticky;
    memmove(dst, src, bytes);
    return cudaSuccess;
}

cudaError_t cudaMemcpyAsync(void *dst, const void *src, size_t bytes, cudaMemcpyKind kind, cudaStream_t s) {
    (void)s;
    return cudaMemcpy(dst, src, bytes, kind);
}

cudaError_t cudaMemset(void *p, int v, size_t bytes) {
    if (g_sticky != cudaSuccess) return g_sticky;
    memset(p, v, bytes);
    return cudaSuccess;
}

cudaError_t cudaMemsetAsync(void *p, int v, size_t bytes, cudaStream_t s) {
    (void)s;
    return cudaMemset(p, v, bytes);
}

cudaError_t cudaDeviceSynchronize(void) { return g_sticky; }

cudaError_t cudaGetLastError(void) { return g_sticky; }

const char *cudaGetErrorString(cudaError_t e) {
    if (e != cudaSuccess && e == g_sticky && !g_error_msg.empty()) return g_error_msg.c_str(); // the launch's why
    switch (e) {
    case cudaSuccess: return "no error";
    case cudaErrorInvalidValue: return "invalid argument";
    case cudaErrorMemoryAllocation: return "out of memory";
    case cudaErrorLaunchFailure: return g_error_msg.c_str();
    }
    return "unknown error";
}

struct nt_emu_event {
    double t;
};

cudaError_t cudaEventCreate(cudaEvent_t *e) {
    *e = new nt_emu_event{0.0};
    return cudaSuccess;
}

cudaError_t cudaEventDestroy(cudaEvent_t e) {
    delete e;
    return cudaSuccess;
}

cudaError_t cudaEventRecord(cudaEvent_t e, cudaStream_t s) {
    (void)s;
    e->t = nt_time();
    return cudaSuccess;
}

cudaError_t cudaEventSynchronize(cudaEvent_t e) {
    (void)e;
    return g_sticky;
}

cudaError_t cudaEventElapsedTime(float *ms, cudaEvent_t a, cudaEvent_t b) {
    *ms = (float)((b->t - a->t) * 1e3);
    return cudaSuccess;
}
