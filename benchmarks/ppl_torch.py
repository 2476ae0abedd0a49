#!/usr/bin/env python3
"""ppl_torch.py: PyTorch reference perplexity benchmark (GPTQ protocol), the baseline the C harness is
compared against.

Loads the model in float32 with transformers (eager attention), builds the task's windows exactly as
tests/golden/make_model_goldens.py does (same code, imported from there), then times ONLY the forward
passes + log_softmax/NLL (not loading or tokenizing), and prints one CSV line:

  impl,model,task,seqlen,n_tokens,seconds,tokens_per_s,ppl

impl = pytorch; model = the model folder's name; n_tokens = tokens pushed through the model
(n_windows * seqlen); tokens_per_s = n_tokens / seconds.

Usage (from the repository root):
  /work/venv/bin/python benchmarks/ppl_torch.py --model ../shared/models/tiny-opt --task wikitext2 \
      --seqlen 256 --threads 2 [--batch 1] [--max-windows N] [--header]
"""
import argparse
import math
import os
import sys
import time

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "golden"))
from make_model_goldens import PPL_TASKS, load_fp32, score_windows, task_windows  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description="PyTorch reference perplexity benchmark")
    ap.add_argument("--model", required=True, help="HF model folder")
    ap.add_argument("--task", default="wikitext2", choices=PPL_TASKS)
    ap.add_argument("--seqlen", type=int, default=256)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--data-dir", default="../shared/datasets")
    ap.add_argument("--batch", type=int, default=1, help="windows per forward pass")
    ap.add_argument("--max-windows", type=int, default=0, help="score only the first N windows (0 = all)")
    ap.add_argument("--header", action="store_true", help="print the CSV header line first")
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(args.model)
    tok.model_max_length = 1 << 30
    windows, _, _ = task_windows(args.task, tok, args.data_dir, args.seqlen)
    if args.max_windows > 0:
        windows = windows[: args.max_windows]
    model = load_fp32(args.model)

    t0 = time.perf_counter()
    nll = score_windows(model, windows, batch=args.batch)
    secs = time.perf_counter() - t0

    n_tokens = int(windows.size)
    ppl = math.exp(float(nll.sum()) / nll.size)
    if args.header:
        print("impl,model,task,seqlen,n_tokens,seconds,tokens_per_s,ppl")
    name = os.path.basename(os.path.normpath(args.model))
    print(f"pytorch,{name},{args.task},{args.seqlen},{n_tokens},{secs:.3f},{n_tokens / secs:.1f},{ppl:.4f}")


if __name__ == "__main__":
    main()
