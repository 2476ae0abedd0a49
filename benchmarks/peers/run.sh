#!/usr/bin/env bash
# run.sh: perplexity throughput of normtweak beside llama.cpp (Q4_1 and F32) and transformers (fp32), same model,
# same WikiText-2 windows, same threads, in one run; writes the CSV (default results/bench_peers_cpu.csv, columns in
# benchmarks/peers/README.md). Needs build/ (normtweak, bench_ppl_ids) and the venv of benchmarks/peers/setup.sh.
#
# usage: benchmarks/peers/run.sh [--windows N] [--threads T] [--reps R] [--out FILE] [--model GGUF] [--f32 GGUF]
#                                [--llama-ubatch U] [--llama-kv f16|f32] [--tools normtweak,llama-q4_1,llama-f32,transformers]
#   defaults: 4 windows of 2048 tokens, 2 threads, 3 repetitions (median), .venv-peers/models/*.F32.gguf
#        benchmarks/peers/run.sh --zeroshot [--tasks lambada_openai,piqa] [--items 50] [--threads T] [--reps R]
#                                   [--out FILE] [--model GGUF]
#   zero-shot items/s beside lm-evaluation-harness's HF backend on the first items of LAMBADA and PIQA
#   (default results/bench_peers_zeroshot_cpu.csv)
set -euo pipefail
cd "$(dirname "$0")/../.."
case "${1:-}" in -h|--help) sed -n '2,12p' "$0"; exit 0 ;; esac
py=.venv-peers/bin/python
[ -x "$py" ] && "$py" -c 'import llama_cpp, transformers, torch, tokenizers, lm_eval' 2>/dev/null \
  || { echo "run.sh: the peers' venv .venv-peers is missing or incomplete: run benchmarks/peers/setup.sh" >&2; exit 1; }
if [ "${1:-}" = --zeroshot ]; then shift; exec "$py" benchmarks/peers/zeroshot.py run "$@"; fi
exec "$py" benchmarks/peers/bench.py run "$@"
