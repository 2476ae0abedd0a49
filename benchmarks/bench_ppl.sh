#!/usr/bin/env bash
# bench_ppl.sh: WikiText-2 perplexity throughput, normtweak (CPU, fp32) beside PyTorch computing the same
# perplexity (benchmarks/ppl_torch.py: transformers fp32, eager attention) on the same CPU, run one after the
# other for each model. Both time only the forward passes and the NLL, not loading or tokenizing.
# Writes results/bench_ppl_cpu.csv (atomically) with the ratio normtweak/pytorch tokens per second.
#
# usage: benchmarks/bench_ppl.sh [--python PY] [--threads N] [--max-windows N] [--torch-batch B] [--out FILE] [MODEL_DIR...]
#   --torch-batch: windows per PyTorch forward (default 8, its fastest setting here; normtweak runs one at a time)
#   PY must import torch (Debian's python3-torch) and transformers (pip); default: python3.
#   MODEL_DIR defaults to ../shared/models/tiny-opt and ../shared/models/tiny-llama.
set -euo pipefail
cd "$(dirname "$0")/.."
py=python3; threads=$(nproc); maxw=0; tbatch=8; out=results/bench_ppl_cpu.csv; models=()
while [ $# -gt 0 ]; do
  case "$1" in
    --python) py=$2; shift 2 ;;
    --threads) threads=$2; shift 2 ;;
    --max-windows) maxw=$2; shift 2 ;;
    --torch-batch) tbatch=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    -h|--help) sed -n '2,10p' "$0"; exit 0 ;;
    *) models+=("$1"); shift ;;
  esac
done
[ ${#models[@]} -gt 0 ] || models=(../shared/models/tiny-opt ../shared/models/tiny-llama)
[ -x build/normtweak ] || { echo "bench_ppl.sh: build/normtweak not found: build first" >&2; exit 1; }
"$py" -c 'import torch, transformers' 2>/dev/null || { echo "bench_ppl.sh: $py cannot import torch and transformers" >&2; exit 1; }

tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//; s/,/ /g')
commit=$(git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)
echo "model,task,seqlen,n_tokens,threads,normtweak_seconds,normtweak_tokens_per_s,pytorch_seconds,pytorch_tokens_per_s,speedup,normtweak_ppl,pytorch_ppl,cpu,commit,timestamp" > "$tmp/out.csv"
for m in "${models[@]}"; do
  name=$(basename "$m")
  limit=(); [ "$maxw" -gt 0 ] && limit=(--limit "$maxw")
  NT_PROGRESS=0 build/normtweak eval --model "$m" --tasks wikitext2 --threads "$threads" "${limit[@]}" --out "$tmp/nt.csv" > /dev/null
  # the row just written: value (ppl), n (scored tokens), seqlen, seconds
  IFS=, read -r _ _ _ _ _ _ nt_ppl _ nt_n seqlen nt_s _ < <(tail -n 1 "$tmp/nt.csv")
  pt=$("$py" benchmarks/ppl_torch.py --model "$m" --task wikitext2 --seqlen "$seqlen" --threads "$threads" --max-windows "$maxw" --batch "$tbatch" | tail -n 1)
  IFS=, read -r _ _ _ _ pt_tokens pt_s pt_tps pt_ppl <<< "$pt"
  windows=$(( nt_n / (seqlen - 1) )); tokens=$(( windows * seqlen ))
  [ "$tokens" = "$pt_tokens" ] || { echo "bench_ppl.sh: $name: normtweak scored $tokens tokens, pytorch $pt_tokens" >&2; exit 1; }
  awk -v m="$name" -v sl="$seqlen" -v tok="$tokens" -v th="$threads" -v ns="$nt_s" -v ps="$pt_s" -v np="$nt_ppl" \
      -v pp="$pt_ppl" -v cpu="$cpu" -v c="$commit" -v ts="$(date -u +%FT%TZ)" 'BEGIN {
    printf "%s,wikitext2,%d,%d,%d,%.3f,%.1f,%.3f,%.1f,%.3f,%.6f,%.6f,%s,%s,%s\n", m, sl, tok, th, ns, tok / ns, ps, tok / ps, ps / ns, np, pp, cpu, c, ts }' >> "$tmp/out.csv"
  tail -n 1 "$tmp/out.csv" >&2
done
mkdir -p "$(dirname "$out")"
cp "$tmp/out.csv" "$out.tmp.$$" && mv "$out.tmp.$$" "$out"
column -s, -t < "$out"
