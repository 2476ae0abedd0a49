#!/usr/bin/env bash
# bench_gptq.sh: GPTQ wall time over a whole shared model, normtweak (benchmarks/bench_gptq.c: nt_quantize_model)
# beside a PyTorch transcription of GPTQ's sequential loop (benchmarks/gptq_torch.py) on the same CPU, same
# threads, same calibration windows (GPTQ get_c4 trainloader, seed 0, N samples x the model's context).
# Configurations: tiny-opt W4 g128 and W3 g128 act-order; tiny-llama W4 and W3 act-order per channel (its MLP
# width 688 is no multiple of 128). Each configuration runs --runs times per side, the two sides alternating
# (normtweak first on odd runs, PyTorch first on even runs); the min over runs is the number to compare, since
# the machine is shared and a run can only be slowed down by other load, never sped up.
# Both sides run with OMP_WAIT_POLICY=PASSIVE (libgomp's spinning idle threads starve the working ones on a busy
# machine: PyTorch ran ~20x slower with ACTIVE here); an OMP_WAIT_POLICY already set is kept.
# The quantized models are checked once (run 1): PTB perplexity of the first --ppl-windows test windows, after
# the timed part; close values say both sides produced comparable models (not a strict test). Code-for-code
# agreement is not to be expected past the first linears: GPTQ's error feedback amplifies rounding-level input
# differences (a 1e-7 relative nudge of the embeddings changes the PyTorch side's own codes as much as normtweak
# differs from it), while the quantization error and perplexity agree.
#
# Writes --out (default results/bench_gptq_cpu.csv) atomically (temp file + rename); one row per
# impl x configuration x run x layer, plus run=min rows:
#   impl        normtweak | pytorch
#   model       the model folder's name
#   wbits       weight bits
#   group       group size, -1 per channel
#   act_order   1 = GPTQ act-order (columns by descending Hessian diagonal), 0 = natural order
#   nsamples    calibration samples (GPTQ get_c4 trainloader, seed 0)
#   seqlen      tokens per calibration sample (the model's maximum context, capped at 2048)
#   threads     CPU threads of both OpenBLAS/OpenMP (normtweak) and torch.set_num_threads (PyTorch)
#   run         1..R, or min (the minimum over the runs of this impl, configuration and layer; seconds and
#               cpu_seconds minimized separately)
#   layer       0..L-1: one block, wall seconds of its true-sequential Hessian capture passes (the block over every
#                 sample, 4 times), GPTQ on each linear, and the pass that feeds its outputs to the next block;
#               quantizer: seconds inside GPTQ proper (part of the blocks' time);
#               windows: building the calibration windows (read, tokenize, draw; NOT in total);
#               total: capturing block 0's inputs (the embeddings) + every block; excludes loading the model and
#                 the tokenizer and building the windows
#   seconds     wall-clock seconds
#   cpu_seconds total rows only: the process's CPU time over the timed span (all threads, user + system; normtweak's
#               includes its windows, a few hundredths of a second); less sensitive than wall time to other load
#               on shared cores, though not immune (caches, hyperthreads)
#   ptb_ppl     total rows of run 1 (and min): PTB perplexity of the quantized model on the first --ppl-windows
#               test windows of seqlen tokens (untimed); empty elsewhere
#   cpu         /proc/cpuinfo model name
#   commit      git describe --always --dirty of the tree benchmarked
#   timestamp   UTC time the run finished, ISO 8601 (min rows: that of run 1)
#
# usage: benchmarks/bench_gptq.sh [--python PY] [--bin BENCH_GPTQ] [--threads N] [--runs R] [--nsamples N]
#                                 [--seqlen L] [--config "NT_MODEL PT_MODEL WBITS GROUP ACT"]... [--ppl-windows N]
#                                 [--out FILE]
#   PY must import torch and transformers (default python3); BENCH_GPTQ defaults to build/bench_gptq.
#   --seqlen: calibration sample length on both sides (default: the model's context, capped at 2048).
#   --config: one configuration (repeatable; replaces the four above): the model normtweak loads (a folder or a
#     .gguf), the Hugging Face folder of the same weights the PyTorch side loads, bits, group, act-order 0|1.
#     SmolLM2: benchmarks/peers/gguf_to_hf.py --tokenizer ../shared/tokenizers/smollm2/tokenizer.json writes the
#     folder from the GGUF; name it as the GGUF (SmolLM2-135M-Instruct.Q4_1) so that both sides' rows agree, e.g.
#     --config "models/SmolLM2-135M-Instruct.Q4_1.gguf /tmp/hf/SmolLM2-135M-Instruct.Q4_1 3 128 0" --nsamples 32
#     --seqlen 512 (the calibration of eval/grids/paper-smollm2-baselines.json)
set -euo pipefail
cd "$(dirname "$0")/.."
py=python3; bin=build/bench_gptq; threads=$(nproc); runs=2; nsamples=128; pplw=16; out=results/bench_gptq_cpu.csv
seqlen=0; configs=()
while [ $# -gt 0 ]; do
  case "$1" in
    --python) py=$2; shift 2 ;;
    --bin) bin=$2; shift 2 ;;
    --threads) threads=$2; shift 2 ;;
    --runs) runs=$2; shift 2 ;;
    --nsamples) nsamples=$2; shift 2 ;;
    --seqlen) seqlen=$2; shift 2 ;;
    --config) configs+=("$2"); shift 2 ;;
    --ppl-windows) pplw=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    -h|--help) sed -n '2,57p' "$0"; exit 0 ;;
    *) echo "bench_gptq.sh: unknown argument '$1'" >&2; exit 2 ;;
  esac
done
[ -x "$bin" ] || { echo "bench_gptq.sh: $bin not found: build the bench_gptq target first" >&2; exit 1; }
"$py" -c 'import torch, transformers' 2>/dev/null || { echo "bench_gptq.sh: $py cannot import torch and transformers" >&2; exit 1; }
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-PASSIVE} NT_PROGRESS=0

models=../shared/models data=../shared/datasets
if [ ${#configs[@]} = 0 ]; then
  for c in "tiny-opt 4 128 0" "tiny-opt 3 128 1" "tiny-llama 4 -1 0" "tiny-llama 3 -1 1"; do
    read -r m rest <<< "$c"; configs+=("$models/$m $models/$m $rest")
  done
fi
for c in "${configs[@]}"; do
  read -r ntm ptm _ <<< "$c"
  [ -e "$ntm" ] && [ -d "$ptm" ] || { echo "bench_gptq.sh: --config '$c': $ntm or the folder $ptm not found" >&2; exit 1; }
done
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//; s/,/ /g')
commit=$(git describe --always --dirty --abbrev=12 2>/dev/null || echo unknown)
hdr="impl,model,wbits,group,act_order,nsamples,seqlen,threads,run,layer,seconds,cpu_seconds,ptb_ppl,cpu,commit,timestamp"
echo "$hdr" > "$tmp/rows.csv"

# one side, one run: its CSV lines (impl,...,threads,layer,seconds,cpu_seconds,ptb_ppl) with run, cpu, commit, timestamp added
run_side() { # impl nt_model pt_model wbits group act run
  local impl=$1 ntm=$2 ptm=$3 wbits=$4 group=$5 act=$6 run=$7 flags=()
  [ "$act" = 1 ] && flags+=(--act-order)
  [ "$seqlen" -gt 0 ] && flags+=(--seqlen "$seqlen")
  [ "$run" = 1 ] && [ "$pplw" -gt 0 ] && flags+=(--ppl-windows "$pplw")
  if [ "$impl" = normtweak ]; then
    "$bin" "$ntm" "$data" --wbits "$wbits" --group "$group" --nsamples "$nsamples" --threads "$threads" \
      "${flags[@]}" > "$tmp/side.csv"
  else
    "$py" benchmarks/gptq_torch.py --model "$ptm" --data-dir "$data" --wbits "$wbits" --group "$group" \
      --nsamples "$nsamples" --threads "$threads" "${flags[@]}" > "$tmp/side.csv"
  fi
  local ts; ts=$(date -u +%FT%TZ)
  awk -F, -v OFS=, -v run="$run" -v cpu="$cpu" -v c="$commit" -v ts="$ts" \
    '{ print $1,$2,$3,$4,$5,$6,$7,$8,run,$9,$10,$11,$12,cpu,c,ts }' "$tmp/side.csv" >> "$tmp/rows.csv"
  printf '  %-9s %-10s W%s g%-3s act%s run %s: total %s\n' "$impl" "$(basename "$ptm")" "$wbits" "$group" "$act" "$run" \
    "$(awk -F, '$9 == "total" { print $10 " s, cpu " $11 " s" }' "$tmp/side.csv")" >&2
}

for cfg in "${configs[@]}"; do
  read -r ntm ptm wbits group act <<< "$cfg"
  for run in $(seq 1 "$runs"); do
    if [ $((run % 2)) = 1 ]; then order="normtweak pytorch"; else order="pytorch normtweak"; fi
    for impl in $order; do run_side "$impl" "$ntm" "$ptm" "$wbits" "$group" "$act" "$run"; done
  done
done

# run=min rows: per impl x configuration x layer, the minimum seconds over the runs (ppl from run 1)
awk -F, -v OFS=, 'NR > 1 {
    k = $1 FS $2 FS $3 FS $4 FS $5 FS $6 FS $7 FS $8 SUBSEP $10
    if (!(k in best) || $11 + 0 < best[k] + 0) best[k] = $11
    if ($12 != "" && (!(k in bcpu) || $12 + 0 < bcpu[k] + 0)) bcpu[k] = $12
    if ($13 != "") ppl[k] = $13
    if (!(k in first)) { first[k] = NR; keys[NR] = k; tail[k] = $14 FS $15 FS $16 }
  } END {
    for (i = 2; i <= NR; i++) if (i in keys) {
      k = keys[i]; split(k, p, SUBSEP)
      print p[1], "min", p[2], best[k], bcpu[k], ppl[k], tail[k]
    }
  }' "$tmp/rows.csv" > "$tmp/min.csv"
cat "$tmp/min.csv" >> "$tmp/rows.csv"

mkdir -p "$(dirname "$out")"
cp "$tmp/rows.csv" "$out.tmp.$$" && mv "$out.tmp.$$" "$out"

# summary: min total of each side, the ratios, the quantizer's share, the perplexities
echo "min over $runs runs per side, $threads threads, $nsamples samples; ratio = pytorch / normtweak (> 1: normtweak faster)"
awk -F, '$9 == "min" {
    cfg = $2 " W" $3 (($4 > 0) ? " g" $4 : " per-channel") (($5 == 1) ? " act-order" : "")
    if (!(cfg in seen)) { seen[cfg] = 1; order[++n] = cfg }
    v[cfg, $1, $10] = $11
    if ($10 == "total") { cpu[cfg, $1] = $12; ppl[cfg, $1] = $13 }
  } END {
    printf "%-36s %8s %8s %6s %8s %8s %6s %8s %8s %10s %10s\n", "config", "nt_s", "pt_s", "ratio", "nt_cpu_s",
           "pt_cpu_s", "ratio", "nt_gptq", "pt_gptq", "nt_ptb_ppl", "pt_ptb_ppl"
    for (i = 1; i <= n; i++) {
      c = order[i]
      printf "%-36s %8.3f %8.3f %6.2f %8.3f %8.3f %6.2f %8.3f %8.3f %10.3f %10.3f\n", c, v[c, "normtweak", "total"],
             v[c, "pytorch", "total"], v[c, "pytorch", "total"] / v[c, "normtweak", "total"], cpu[c, "normtweak"],
             cpu[c, "pytorch"], cpu[c, "pytorch"] / cpu[c, "normtweak"], v[c, "normtweak", "quantizer"],
             v[c, "pytorch", "quantizer"], ppl[c, "normtweak"], ppl[c, "pytorch"]
    }
    print "(nt_gptq / pt_gptq: seconds inside GPTQ proper, part of the totals)"
  }' "$out"
echo "wrote $out"
