#!/usr/bin/env bash
# setup.sh: the peers' venv for benchmarks/peers/run.sh, in .venv-peers/ (git-ignored): llama-cpp-python (built
# from its PyPI sdist, so llama.cpp is compiled for this CPU: GGML_NATIVE), HF transformers over PyPI's torch,
# lm-evaluation-harness, gguf-py; then the F32 GGUF of the default model's weights (benchmarks/peers/gguf_to_f32.py)
# in .venv-peers/models/. Benchmark-only: nothing in the build or the tests needs any of this.
# Building llama.cpp takes several minutes on two cores; the torch wheel and its dependencies are a few GB.
#
# usage: benchmarks/peers/setup.sh [--python PY] [--model GGUF]
#   PY: the interpreter the venv is made from (default python3); GGUF: default models/SmolLM2-135M-Instruct.Q4_1.gguf
set -euo pipefail
cd "$(dirname "$0")/../.."
py=python3; model=${NT_MODELS_DIR:-models}/SmolLM2-135M-Instruct.Q4_1.gguf
while [ $# -gt 0 ]; do
  case "$1" in
    --python) py=$2; shift 2 ;;
    --model) model=$2; shift 2 ;;
    -h|--help) sed -n '2,10p' "$0"; exit 0 ;;
    *) echo "setup.sh: unknown option $1" >&2; exit 2 ;;
  esac
done
[ -f "$model" ] || { echo "setup.sh: $model not found: run .ci/install-deps (it fetches the model)" >&2; exit 1; }
venv=.venv-peers
[ -x "$venv/bin/python" ] || "$py" -m venv "$venv"
pip=("$venv/bin/pip" install --disable-pip-version-check -q)
# the versions measured in results/bench_peers*_cpu.csv; transformers 4.46.3 is the one tests/golden was made with
# (peft and datasets pinned so that lm_eval's dependencies leave it there)
"${pip[@]}" "torch==2.5.1" "transformers==4.46.3" "tokenizers==0.20.3" "accelerate==1.1.1" "gguf==0.17.1" "numpy<2.3" \
  "lm_eval==0.4.5" "peft==0.13.2" "datasets==3.1.0"
CMAKE_ARGS="-DGGML_NATIVE=ON -DLLAMA_CURL=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF" \
  CMAKE_BUILD_PARALLEL_LEVEL=$(nproc) nice "${pip[@]}" --no-binary llama-cpp-python "llama-cpp-python==0.3.16"
"$venv/bin/python" -c 'import llama_cpp, transformers, torch, gguf, tokenizers, accelerate, lm_eval' \
  || { echo "setup.sh: the venv cannot import its packages" >&2; exit 1; }
f32="$venv/models/$(basename "$model" .gguf | sed 's/\.Q[0-9A-Z_]*$//').F32.gguf"
mkdir -p "$venv/models"
[ -f "$f32" ] || "$venv/bin/python" benchmarks/peers/gguf_to_f32.py "$model" "$f32"
echo "setup.sh: $venv ready ($f32)"
