#!/usr/bin/env bash
# gpu_session.sh: everything a session with one GPU (an H200, ~15 minutes of device time in all) should run, in
# order, in one go; every step under a timeout, a failed step does not stop the next (except that no timing runs
# unless the kernel tests passed), and everything is written under one folder:
#
#   benchmarks/gpu_session.sh [OUTDIR]        (default: $OUT, else results/gpu-session-DATE)
#
#   OUTDIR/session.log      what ran, when, exit status and seconds of each step (also steps.csv)
#   OUTDIR/nvidia-smi.txt   the device, driver, clocks and throttle reasons before anything ran
#   OUTDIR/build.log        (unless NT_GPU_BUILD names a ready build folder) cmake + build, sm_90 only
#   OUTDIR/test_*.log       test_kernels, test_gpu_forward (they must pass before any timing)
#   OUTDIR/sanitizer-*.log  compute-sanitizer racecheck and synccheck on test_kernels' gpu/smoke_each_path (every
#                           kernel path once), memcheck on gpu/split_k_under_any_block_order (the counters)
#   OUTDIR/bench-*.csv      normtweak bench kernels, LLaMA-70B shapes, bits 2/3/4, group 128, M 1 4 16 64 1024
#                           4096, asymmetric (twice: the spread between runs), then symmetric and act-order cells, and
#                           bench-w8a8.csv: the int8 IMMA product (abits 8) beside fp16 at M 1 16 1024 4096
#   OUTDIR/eval-*.csv       eval --device cuda beside --device cpu on the default model (RTN 4-bit g128, so the
#                           quantized kernels run), wikitext2; eval-w8a8-*.csv the same at W8A8 (RTN 8-bit per
#                           channel, int8 activations per token: actq.cu's int8 codes and IMMA product)
#   OUTDIR/ncu-*.ncu-rep    Nsight Compute (full set) of the GEMV at M = 1 and the MMA kernel at M = 16 and 1024
#
# Tools: nvcc (to build; NVCC or PATH or /usr/local/cuda/bin), compute-sanitizer ($COMPUTE_SANITIZER, PATH, the
# toolkit, or a folder carried in with the tree: `pip install --target build-gpu/tools nvidia-cuda-sanitizer-api`
# puts it at build-gpu/tools/nvidia/cu13/compute-sanitizer/), ncu ($NCU, PATH, the toolkit). A missing tool skips
# its steps with the reason in the log. The models and data come from $NT_SHARED_DIR (default ../shared).
# Timeouts (seconds): build 420, tests 240 + 240, sanitizers 3 x 150, bench 3 x 240, eval 4 x 120, ncu 3 x 150:
# each well above what the step should take, so one hung step cannot eat the session; expected in all, with a
# build: ~10 minutes (with NT_GPU_BUILD pointing at a build carried in: ~7). The static SASS budget needs no
# device and is not rerun here (benchmarks/sass_budget.sh, results/sass_budget.csv).
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
OUTDIR=${1:-${OUT:-results/gpu-session-$(date +%Y%m%d-%H%M%S)}}
mkdir -p "$OUTDIR" || { echo "gpu_session.sh: cannot create $OUTDIR" >&2; exit 1; }
OUTDIR=$(cd "$OUTDIR" && pwd)
LOG="$OUTDIR/session.log"
export NT_PROGRESS=0 NT_SOURCE_DIR="$ROOT" NT_SHARED_DIR=${NT_SHARED_DIR:-$ROOT/../shared} OMP_WAIT_POLICY=PASSIVE
echo "step,rc,seconds" > "$OUTDIR/steps.csv"

note() { echo "$*" | tee -a "$LOG"; }
# step NAME TIMEOUT CMD...: runs CMD with its output in OUTDIR/NAME.log; returns its status
step() {
    local name=$1 limit=$2 t0 rc
    shift 2
    note "== $(date +%T) $name (timeout ${limit}s): $*"
    t0=$(date +%s)
    timeout -k 10 "$limit" "$@" > "$OUTDIR/$name.log" 2>&1
    rc=$?
    note "   $name: exit $rc after $(( $(date +%s) - t0 ))s$([ $rc = 124 ] && echo ' (timed out)')"
    echo "$name,$rc,$(( $(date +%s) - t0 ))" >> "$OUTDIR/steps.csv"
    return $rc
}
skip() { note "== $1: skipped ($2)"; echo "$1,skipped," >> "$OUTDIR/steps.csv"; }
find_tool() { # NAME ENVVAR [EXTRA_PATH...]: prints the first executable found
    local name=$1 env=$2 p
    shift 2
    if [ -n "${!env:-}" ] && [ -x "${!env}" ]; then echo "${!env}"; return 0; fi
    command -v "$name" 2>/dev/null && return 0
    for p in /usr/local/cuda/bin/$name "$@"; do [ -x "$p" ] && { echo "$p"; return 0; }; done
    return 1
}

note "gpu_session.sh: $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?') -> $OUTDIR"
step nvidia-smi 30 sh -c 'nvidia-smi; echo; nvidia-smi -q -d CLOCK,PERFORMANCE,POWER,MEMORY' || true
mv -f "$OUTDIR/nvidia-smi.log" "$OUTDIR/nvidia-smi.txt" 2>/dev/null

# ------------------------------------------------------------------------------------------------ build
BUILD=${NT_GPU_BUILD:-$ROOT/build-gpu}
if [ -n "${NT_GPU_BUILD:-}" ] && [ -x "$BUILD/normtweak" ]; then
    note "== build: using $BUILD"
else
    NVCC=$(find_tool nvcc NVCC) || NVCC=""
    if [ -z "$NVCC" ]; then
        skip build "no nvcc"
    else
        step build 420 sh -c "cmake -S '$ROOT' -B '$BUILD' -DCMAKE_CUDA_COMPILER='$NVCC' -DCMAKE_CUDA_ARCHITECTURES=90 \
            -DNT_SHARED_DIR='$NT_SHARED_DIR' && cmake --build '$BUILD' -j\$(nproc) --target normtweak test_kernels test_gpu_forward" || true
    fi
fi
NT=$BUILD/normtweak
export NT_BINARY_DIR=$BUILD
[ -x "$NT" ] || { note "gpu_session.sh: no $NT: nothing more can run"; exit 1; }

# ------------------------------------------------------------------------------------------------ tests
tests_ok=1
step test_kernels 240 "$BUILD/test_kernels" --jobs 1 || tests_ok=0
step test_gpu_forward 240 "$BUILD/test_gpu_forward" --jobs 1 || tests_ok=0

# ------------------------------------------------------------------------------------------- sanitizers
SAN=$(find_tool compute-sanitizer COMPUTE_SANITIZER "$BUILD/tools/nvidia/cu13/compute-sanitizer/compute-sanitizer") || SAN=""
if [ -z "$SAN" ]; then
    skip sanitizers "no compute-sanitizer"
else
    # Criterion forks a process per test: the sanitizer follows them (--target-processes all)
    step sanitizer-racecheck 150 "$SAN" --tool racecheck --target-processes all --error-exitcode 3 \
        "$BUILD/test_kernels" --jobs 1 --filter 'gpu/smoke_each_path' || true
    step sanitizer-memcheck 150 "$SAN" --tool memcheck --target-processes all --error-exitcode 3 \
        "$BUILD/test_kernels" --jobs 1 --filter 'gpu/split_k_under_any_block_order' || true
    step sanitizer-synccheck 150 "$SAN" --tool synccheck --target-processes all --error-exitcode 3 \
        "$BUILD/test_kernels" --jobs 1 --filter 'gpu/smoke_each_path' || true
fi

# ----------------------------------------------------------------------------------------------- timing
BENCH=(bench kernels --shapes llama70b --bits 2,3,4 --group 128 --m 1,4,16,64,1024,4096 --warmup-ms 100 --batches 10)
if [ "$tests_ok" = 1 ]; then
    step bench-1 240 "$NT" "${BENCH[@]}" --variants asym --out "$OUTDIR/bench-1.csv" || true
    step bench-2 240 "$NT" "${BENCH[@]}" --variants asym --out "$OUTDIR/bench-2.csv" || true
    step bench-sym-act 240 "$NT" bench kernels --shapes llama70b --bits 4 --group 128 --m 1,16,1024 \
        --warmup-ms 100 --batches 10 --variants sym,act --out "$OUTDIR/bench-sym-act.csv" || true
    step bench-w8a8 240 "$NT" bench kernels --shapes llama70b --abits 8 --m 1,16,1024,4096 --warmup-ms 100 \
        --batches 10 --out "$OUTDIR/bench-w8a8.csv" || true
    for dev in cuda cpu; do
        step eval-$dev 120 "$NT" eval --tasks wikitext2 --method rtn --wbits 4 --group 128 --device $dev \
            --data-dir "$NT_SHARED_DIR/datasets" --model "$NT_SHARED_DIR/models/tiny-opt" \
            --out "$OUTDIR/eval-$dev.csv" || true
        step eval-w8a8-$dev 120 "$NT" eval --tasks wikitext2 --method rtn --wbits 8 --group -1 --abits 8 \
            --device $dev --data-dir "$NT_SHARED_DIR/datasets" --model "$NT_SHARED_DIR/models/tiny-opt" \
            --out "$OUTDIR/eval-w8a8-$dev.csv" || true
    done
    NCU=$(find_tool ncu NCU /usr/local/cuda/nsight-compute*/ncu) || NCU=""
    if [ -z "$NCU" ]; then
        skip ncu "no ncu"
    else
        one=(bench kernels --shapes llama70b --bits 4 --group 128 --variants asym --warmup-ms 0 --batches 1)
        step ncu-gemv-m1 150 "$NCU" --set full --kernel-name regex:qgemv_kernel --launch-count 1 \
            -o "$OUTDIR/ncu-gemv-m1" "$NT" "${one[@]}" --m 1 --kernel gemv || true
        step ncu-mma-m16 150 "$NCU" --set full --kernel-name regex:qgemm_mma_kernel --launch-count 1 \
            -o "$OUTDIR/ncu-mma-m16" "$NT" "${one[@]}" --m 16 --kernel mma || true
        step ncu-mma-m1024 150 "$NCU" --set full --kernel-name regex:qgemm_mma_kernel --launch-count 1 \
            -o "$OUTDIR/ncu-mma-m1024" "$NT" "${one[@]}" --m 1024 --kernel mma || true
    fi
else
    skip timing "the kernel tests failed: no timing on kernels that are wrong"
fi
note "gpu_session.sh: done; $(grep -c ',0,' "$OUTDIR/steps.csv") steps passed of $(( $(wc -l < "$OUTDIR/steps.csv") - 1 ))"
