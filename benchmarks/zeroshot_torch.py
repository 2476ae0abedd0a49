#!/usr/bin/env python3
"""zeroshot_torch.py: zero-shot scoring throughput of the PyTorch reference (the lm-evaluation-harness v0.4.5
transcription in tests/golden/make_zeroshot_goldens.py: transformers fp32, HF tokenizer, one forward per request
from scratch, batch size 1), to set beside build/bench_zeroshot (the C scorer) on the same items and CPU.
Times tokenizing + forward passes + scoring over the first N items of each task, not loading.

usage: /work/venv/bin/python benchmarks/zeroshot_torch.py [--model DIR] [--shared DIR] [--limit N] [--threads T]
                                                          TASK...
Output: one line per task: task, items, requests, seconds, items/s, and the metrics (same layout as
bench_zeroshot). Compare with, e.g.:
  OMP_NUM_THREADS=1 build/bench_zeroshot ../shared/models/tiny-opt ../shared/datasets --limit 200 piqa
  /work/venv/bin/python benchmarks/zeroshot_torch.py --threads 1 --limit 200 piqa
"""
import argparse
import os
import sys
import time

import torch

REPO = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
sys.path.insert(0, os.path.join(REPO, "tests", "golden"))
import make_zeroshot_goldens as ref  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--shared", default=os.path.join(REPO, "..", "shared"))
    ap.add_argument("--model", default=None, help="model directory (default: SHARED/models/tiny-opt)")
    ap.add_argument("--limit", type=int, default=100)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("tasks", nargs="+", choices=sorted(ref.TASK_FILES))
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    scorer = ref.Scorer(args.model or os.path.join(args.shared, "models", "tiny-opt"))
    for task in args.tasks:
        docs = ref.load_task(task, os.path.join(args.shared, "datasets"), args.limit)
        t0 = time.perf_counter()
        _, metrics = ref.score_docs(scorer, task, docs)
        dt = time.perf_counter() - t0
        n_req = sum(len(d["requests"]) for d in docs)
        print("%-15s items %5d  requests %6d  %8.2f s  %8.2f items/s  %s" % (
            task, len(docs), n_req, dt, len(docs) / dt,
            " ".join("%s %.4f +/- %.4f" % (k, v, s) for k, (v, s) in metrics.items())), flush=True)


if __name__ == "__main__":
    main()
