#!/usr/bin/env bash
# bench_zeroshot.sh: zero-shot scoring throughput, normtweak (build/bench_zeroshot) beside the PyTorch reference
# (benchmarks/zeroshot_torch.py, the lm-evaluation-harness definitions in transformers fp32), on the first N items
# of every task, same model, same CPU, same thread count, one after the other. Both time tokenizing + forward
# passes + scoring, not loading. Writes results/bench_zeroshot_cpu.csv (atomically):
#   model,task,items,threads,normtweak_seconds,normtweak_items_per_s,pytorch_seconds,pytorch_items_per_s,speedup,
#   cpu,commit,timestamp
# usage: benchmarks/bench_zeroshot.sh [--python PY] [--limit N] [--threads N] [--model DIR] [--out FILE]
set -euo pipefail
cd "$(dirname "$0")/.."
py=python3; limit=100; threads=1; model=../shared/models/tiny-opt; out=results/bench_zeroshot_cpu.csv
while [ $# -gt 0 ]; do
  case "$1" in
    --python) py=$2; shift 2 ;; --limit) limit=$2; shift 2 ;; --threads) threads=$2; shift 2 ;;
    --model) model=$2; shift 2 ;; --out) out=$2; shift 2 ;;
    -h|--help) sed -n '2,9p' "$0"; exit 0 ;;
    *) echo "bench_zeroshot.sh: unknown option $1" >&2; exit 2 ;;
  esac
done
[ -x build/bench_zeroshot ] || { echo "bench_zeroshot.sh: build/bench_zeroshot not found: build first" >&2; exit 1; }
tasks=(lambada_openai hellaswag piqa arc_easy arc_challenge winogrande boolq openbookqa)
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//; s/,/ /g')
commit=$(git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)
echo "model,task,items,threads,normtweak_seconds,normtweak_items_per_s,pytorch_seconds,pytorch_items_per_s,speedup,cpu,commit,timestamp" > "$tmp/out.csv"
for t in "${tasks[@]}"; do
  c=$(OMP_NUM_THREADS=$threads OPENBLAS_NUM_THREADS=$threads build/bench_zeroshot "$model" ../shared/datasets --limit "$limit" "$t" | grep "^$t ")
  p=$("$py" benchmarks/zeroshot_torch.py --model "$model" --limit "$limit" --threads "$threads" "$t" | grep "^$t ")
  # "task items N requests R S s X items/s ..."
  read -r _ _ items _ _ cs _ _ _ <<< "$c"
  read -r _ _ pitems _ _ ps _ _ _ <<< "$p"
  [ "$items" = "$pitems" ] || { echo "bench_zeroshot.sh: $t: $items vs $pitems items" >&2; exit 1; }
  awk -v m="$(basename "$model")" -v t="$t" -v n="$items" -v th="$threads" -v cs="$cs" -v ps="$ps" -v cpu="$cpu" \
      -v c="$commit" -v ts="$(date -u +%FT%TZ)" 'BEGIN {
    printf "%s,%s,%d,%d,%.3f,%.2f,%.3f,%.2f,%.2f,%s,%s,%s\n", m, t, n, th, cs, n / cs, ps, n / ps, ps / cs, cpu, c, ts }' >> "$tmp/out.csv"
  tail -n 1 "$tmp/out.csv" >&2
done
mkdir -p "$(dirname "$out")"
cp "$tmp/out.csv" "$out.tmp.$$" && mv "$out.tmp.$$" "$out"
column -s, -t < "$out"
