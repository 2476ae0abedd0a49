#!/usr/bin/env bash
# sass_budget.sh: the static issue budget of the quantized kernels (kernels/qgemm.cu), read from their SASS; no
# GPU needed. Compiles qgemm.cu for sm_90 with nvcc (cubin), disassembles it with cuobjdump, and writes one CSV row
# per GEMV and MMA instantiation: instructions per weight in the hot loop, registers, spills, shared memory.
# Exits 1 if a kernel spills, or a GEMV's hot loop issues more instructions per weight than its budget.
#
#   benchmarks/sass_budget.sh [OUT.csv]          (default results/sass_budget.csv)
#
# cuobjdump (and the nvdisasm it runs) come from $CUOBJDUMP, else PATH, else the CUDA toolkit's bin folder, else
# they are installed from PyPI (nvidia-cuda-cuobjdump, nvidia-cuda-nvdisasm) into a venv ($NT_SASS_VENV, default
# build/sass-venv) on first use. nvcc from $NVCC, else PATH.
#
# How the hot loop is identified and counted (so the figure can be reproduced by hand from `cuobjdump -sass`):
#   1. In one kernel's SASS every instruction is 16 bytes at the offset printed as /*xxxx*/. A branch (BRA) whose
#      target offset is at or below its own offset closes a loop: the loop body is [target, branch], both ends
#      included.
#   2. The hot loop is, among the innermost loops (no other backward branch inside), the one holding the most
#      HMMA instructions (ties: the shortest). The kernels write it as a fully unrolled body (the GEMV: 4 packs;
#      the MMA kernel: one pipeline stage of 2 packs); the `branches` column counts the other branches inside it
#      (0: straight-line, every instruction issued every iteration: every GEMV). The MMA kernel's 3-4 are the
#      stage-refill guard (skipped in a segment's last 3 stages), the idle-warp skip and the scale/zero copies of
#      threads 0-47: counting their bodies as issued every iteration makes its figure an upper bound.
#   3. loop_instructions = (branch - target) / 16 + 1: every instruction of the body, predicated or not, is
#      issued once per iteration.
#   4. Weights per thread per iteration come from the HMMA count: the GEMV feeds the weights as the A operand
#      (16 channels x 16 k per m16n8k16, 256 weights per warp: 8 per lane) -> 8 x HMMA; the MMA kernel feeds them
#      as B (16 k x 8 channels, 128 weights, each B fragment used by MT HMMAs, one per 16-row tile) ->
#      4 x HMMA / MT. instr_per_weight = loop_instructions / weights_per_thread.
#   5. Budget: issue at 85% of an H200's ~4.3 TB/s copy rate. 4 warp-instructions per cycle per SM (4 schedulers),
#      132 SMs at 1.98 GHz: 0.85 * 4.3e12 B/s / (132 * 1.98e9) = 14.0 bytes per cycle per SM = 112 / bits weights,
#      and one warp-instruction covers 32 lanes, so a lane may spend 4 * 32 / (112 / bits) = 1.14 * bits
#      instructions per weight: 2.3 (2 bits), 3.4 (3), 4.5 (4), 9.1 (8). CI enforces it for the GEMV (M <= 8:
#      memory-bound at every M); the MMA kernel's rows report it too (binding only for its small tiles).
# Registers, spill stores/loads (bytes) and static shared memory are ptxas's (-v); the MMA kernel's dynamic
# shared memory is 4 stages x mma_stage_bytes(bits, MT) of qgemm.cu (recomputed here by the same formula).
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-results/sass_budget.csv}
NVCC=${NVCC:-nvcc}

die() { echo "sass_budget.sh: $*" >&2; exit 1; }
command -v "$NVCC" >/dev/null 2>&1 || { [ -x /usr/local/cuda/bin/nvcc ] && NVCC=/usr/local/cuda/bin/nvcc; } ||
  die "nvcc not found (set NVCC or put it on PATH)"
command -v "$NVCC" >/dev/null 2>&1 || die "nvcc not found (set NVCC or put it on PATH)"

# cuobjdump that can disassemble (it needs nvdisasm beside it or on PATH)
works() { "$1" --version >/dev/null 2>&1; }
CUOBJ=""
if [ -n "${CUOBJDUMP:-}" ]; then CUOBJ=$CUOBJDUMP
elif command -v cuobjdump >/dev/null 2>&1 && command -v nvdisasm >/dev/null 2>&1; then CUOBJ=$(command -v cuobjdump)
elif [ -x "$(dirname "$(command -v "$NVCC")")/cuobjdump" ] && [ -x "$(dirname "$(command -v "$NVCC")")/nvdisasm" ]; then
  CUOBJ="$(dirname "$(command -v "$NVCC")")/cuobjdump"
else
  VENV=${NT_SASS_VENV:-build/sass-venv}
  if ! ls "$VENV"/lib/python3*/site-packages/nvidia/cu*/bin/cuobjdump >/dev/null 2>&1; then
    echo "sass_budget.sh: installing cuobjdump and nvdisasm from PyPI into $VENV" >&2
    python3 -m venv "$VENV" || die "cannot create the venv $VENV"
    "$VENV/bin/pip" install --quiet nvidia-cuda-cuobjdump nvidia-cuda-nvdisasm ||
      die "pip install nvidia-cuda-cuobjdump nvidia-cuda-nvdisasm failed"
  fi
  CUOBJ=$(ls "$VENV"/lib/python3*/site-packages/nvidia/cu*/bin/cuobjdump | head -1)
fi
export PATH="$(dirname "$CUOBJ"):$PATH" # nvdisasm beside it
works "$CUOBJ" || die "$CUOBJ does not run"

TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
echo "sass_budget.sh: compiling kernels/qgemm.cu for sm_90 ($("$NVCC" --version | tail -1))" >&2
"$NVCC" -std=c++17 -O3 -arch=sm_90 -cubin -Xptxas -v -Ikernels -Ibase -Icodec -Imodel -Iquant -Ieval -Idatasets \
  -o "$TMP/qgemm.cubin" kernels/qgemm.cu 2> "$TMP/ptxas.log" || { cat "$TMP/ptxas.log" >&2; die "nvcc failed"; }
"$CUOBJ" -sass "$TMP/qgemm.cubin" > "$TMP/qgemm.sass" || die "cuobjdump -sass failed"

mkdir -p "$(dirname "$OUT")"
awk -v out="$OUT.tmp" -v ptx="$TMP/ptxas.log" '
function hex(s,   i, v) { v = 0; s = tolower(s); sub(/^0x/, "", s); for (i = 1; i <= length(s); i++) v = v * 16 + index("0123456789abcdef", substr(s, i, 1)) - 1; return v }
function flush(   i, j, best, bi, n, loops_inside, cnt, w, ipw, iph, budget, ok, kind, bits, m, spp, mt, dyn, fname) {
  if (fn == "") return
  kind = ""
  if (match(fn, /qgemv_kernelILi[0-9]+ELi[0-9]+ELi[0-9]+E/)) {
    split(substr(fn, RSTART, RLENGTH), p, /ILi|ELi|E/); kind = "gemv"; bits = p[2]; m = p[3]; spp = p[4]; mt = 0
  } else if (match(fn, /qgemm_mma_kernelILi[0-9]+ELi[0-9]+E/)) {
    split(substr(fn, RSTART, RLENGTH), p, /ILi|ELi|E/); kind = "mma"; bits = p[2]; mt = p[3]; m = 16 * mt; spp = ""
  }
  if (kind == "") { fn = ""; n_ins = 0; return }
  # loops: backward branches
  best = -1
  for (i = 1; i <= n_ins; i++) {
    if (op[i] != "BRA" || tgt[i] < 0 || tgt[i] > addr[i]) continue
    inner = 0 # innermost only: no other backward branch inside [target, branch]
    for (j = 1; j <= n_ins; j++)
      if (j != i && op[j] == "BRA" && tgt[j] >= 0 && tgt[j] <= addr[j] && tgt[j] >= tgt[i] && addr[j] <= addr[i]) inner++
    if (inner) continue
    cnt = 0
    for (j = 1; j <= n_ins; j++) if (addr[j] >= tgt[i] && addr[j] <= addr[i] && op[j] == "HMMA") cnt++
    len = (addr[i] - tgt[i]) / 16 + 1
    if (cnt > 0 && (best < 0 || cnt > bh || (cnt == bh && len < blen))) { best = i; bh = cnt; blen = len }
  }
  if (best < 0) { printf "sass_budget.sh: %s: no loop with HMMA found\n", fn > "/dev/stderr"; bad = 1; fn = ""; n_ins = 0; return }
  # branches inside the hot loop (forward ones: the body is not straight-line; expected 0)
  loops_inside = 0
  for (i = 1; i <= n_ins; i++)
    if (i != best && op[i] == "BRA" && addr[i] >= tgt[best] && addr[i] <= addr[best]) loops_inside++
  w = kind == "gemv" ? 8 * bh : 4 * bh / mt
  ipw = blen / w; iph = blen / bh
  budget = bits == 2 ? 2.3 : bits == 3 ? 3.4 : bits == 4 ? 4.5 : 9.1
  ok = ipw <= budget ? 1 : 0
  dyn = kind == "mma" ? 4 * (mt * 16 * 72 * 2 + 2 * 4 * 32 * bits * 4 + 2 * 4 * 32 * 2 + 2 * 4 * 32) : 0
  mrange = kind == "gemv" ? (m == 1 ? "1" : m == 2 ? "2" : m == 4 ? "3-4" : "5-8") : (mt == 1 ? "9-16" : mt == 2 ? "17-32" : mt == 3 ? "33-48" : "49-511 (64-row tiles)")
  printf "%s,%d,%d,%s,%s,%d,%d,%d,%.3f,%.2f,%.1f,%d,%d,%s,%s,%s,%s,%d,%d,%s\n", kind, bits, m, mrange, spp, blen, bh, w, ipw, iph, budget, ok, loops_inside, reg[fn], sst[fn], sld[fn], smem[fn], dyn, tgt[best], fn >> out
  if (sst[fn] + 0 > 0 || sld[fn] + 0 > 0) { printf "sass_budget.sh: %s spills (%s bytes stored, %s loaded)\n", fn, sst[fn], sld[fn] > "/dev/stderr"; bad = 1 }
  if (kind == "gemv" && !ok) { printf "sass_budget.sh: %s: %.3f instructions per weight, over the %d-bit budget %.1f\n", fn, ipw, bits, budget > "/dev/stderr"; bad = 1 }
  rows++
  fn = ""; n_ins = 0
}
BEGIN {
  # ptxas -v: per entry function, registers, spills and static shared memory
  while ((getline line < ptx) > 0) {
    if (match(line, /Compiling entry function .[_A-Za-z0-9]+/)) { cur = substr(line, RSTART + 26, RLENGTH - 26) }
    else if (match(line, /[0-9]+ bytes spill stores, [0-9]+ bytes spill loads/)) { split(substr(line, RSTART, RLENGTH), q, " "); sst[cur] = q[1]; sld[cur] = q[5] }
    else if (match(line, /Used [0-9]+ registers/)) {
      split(substr(line, RSTART, RLENGTH), q, " "); reg[cur] = q[2]
      smem[cur] = match(line, /[0-9]+ bytes smem/) ? substr(line, RSTART, RLENGTH) + 0 : 0
    }
  }
  print "kernel,bits,M,m_range,spp,loop_instructions,hmma,weights_per_thread,instr_per_weight,instr_per_hmma,budget_instr_per_weight,within_budget,branches,registers,spill_store_bytes,spill_load_bytes,static_smem_bytes,dynamic_smem_bytes,loop_start,function" > out
}
/Function : / { flush(); fn = $3; n_ins = 0; next }
/^[ \t]+\/\*[0-9a-f]+\*\// {
  if (fn == "") next
  a = $0; sub(/^[ \t]+\/\*/, "", a); h = substr(a, 1, index(a, "*") - 1)
  text = a; sub(/^[0-9a-f]+\*\/[ \t]+/, "", text); sub(/[ \t]*;.*$/, "", text)
  if (text ~ /^@/) sub(/^@!?U?P[T0-9]+[ \t]+/, "", text)
  split(text, f, /[ \t.]+/)
  n_ins++; addr[n_ins] = hex(h); op[n_ins] = f[1]; tgt[n_ins] = -1
  if (f[1] == "BRA" && match(text, /0x[0-9a-f]+[ \t]*$/)) tgt[n_ins] = hex(substr(text, RSTART, RLENGTH))
}
END { flush(); if (rows == 0) { print "sass_budget.sh: no kernel found in the SASS" > "/dev/stderr"; bad = 1 }; exit bad }
' "$TMP/qgemm.sass" && status=0 || status=$?
# rows sorted (kernel, bits, M, spp) under the header
{ head -1 "$OUT.tmp"; tail -n +2 "$OUT.tmp" | sort -t, -k1,1 -k2,2n -k3,3n -k5,5n; } > "$OUT"
rm -f "$OUT.tmp"
column -s, -t < <(cut -d, -f1-5,6,7,9,10,12,14-18 "$OUT") >&2 || true
[ "$status" = 0 ] && echo "sass_budget.sh: wrote $OUT; every kernel within budget, no spills" >&2 ||
  echo "sass_budget.sh: wrote $OUT; FAILED (see above)" >&2
exit "$status"
