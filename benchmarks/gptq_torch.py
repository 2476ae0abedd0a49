#!/usr/bin/env python3
"""gptq_torch.py: PyTorch reference for benchmarks/bench_gptq.c: GPTQ over a whole Hugging Face model (OPT or
LLaMA), transcribed from IST-DASLab/gptq's opt_sequential / llama_sequential, on the CPU in float32.

The loop, as the reference runs it:
  - calibration: GPTQ's get_c4 trainloader: random.seed(seed); per sample draw a C4 train document uniformly,
    tokenize it alone (the tokenizer's BOS rule), redraw until it has more than seqlen tokens, then a random
    seqlen slice (the reference tests >= seqlen; with exactly seqlen tokens its randint raises, normtweak
    redraws: datasets.h nt_doc_windows);
  - block 0's inputs captured by a Catcher in place of layers[0] (the embeddings), with the layer's kwargs
    (attention mask, positions / rotary embeddings) that every later call reuses;
  - per block, true-sequential groups (q/k/v, o, MLP input(s), MLP output): forward hooks call add_batch on one
    Hessian per linear (as the reference: q, k and v each accumulate their own), the block runs over every
    sample one at a time, then fasterquant on each linear of the group and the weight is replaced by its
    quantized value; finally the quantized block runs once more and its outputs are the next block's inputs.
Hessian accumulation and fasterquant are imported from tests/golden/make_gptq_goldens.py (the transcription the
C GPTQ is tested against), not written a second time.

Timed (time.perf_counter), as bench_gptq.c reports them:
  windows    building the calibration windows (reading, tokenizing, drawing): reported, not in `total`
  0..L-1     one block: Hessian capture passes + fasterquant + weight replacement + the propagating pass
  quantizer  the part of the blocks spent inside fasterquant
  total      capturing block 0's inputs plus every block (not loading, not tokenizing)
  cpu_seconds (total row) the process's CPU time (time.process_time: all threads, user + system) over the same
             span as total
Prints CSV lines: impl,model,wbits,group,act_order,nsamples,seqlen,threads,layer,seconds,cpu_seconds,ptb_ppl
(cpu_seconds and ptb_ppl only on the total row; ptb_ppl with --ppl-windows N: the quantized model's PTB
perplexity on the first N test windows, untimed).

Usage (from the repository root):
  /work/venv/bin/python benchmarks/gptq_torch.py --model ../shared/models/tiny-opt --wbits 4 --group 128 \
      [--act-order] [--nsamples 128] [--seqlen L] [--threads 2] [--ppl-windows 16] [--header]
"""
import argparse
import json
import math
import os
import random
import sys
import time

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "golden"))
from make_gptq_goldens import Hessian, gptq  # noqa: E402
from make_model_goldens import load_fp32, score_windows, task_windows  # noqa: E402

# true-sequential groups, names relative to a decoder layer (the reference's `sequential` lists)
SEQUENTIAL = {
    "opt": [["self_attn.k_proj", "self_attn.v_proj", "self_attn.q_proj"], ["self_attn.out_proj"], ["fc1"], ["fc2"]],
    "llama": [["self_attn.k_proj", "self_attn.v_proj", "self_attn.q_proj"], ["self_attn.o_proj"],
              ["mlp.up_proj", "mlp.gate_proj"], ["mlp.down_proj"]],
}


def c4_calib_windows(tok, data_dir, nsamples, seqlen, seed):
    """GPTQ get_c4's trainloader (see the module docstring): (nsamples, seqlen) int64."""
    with open(os.path.join(data_dir, "c4", "c4-train.00000-of-01024.first1000.jsonl"), encoding="utf-8") as f:
        docs = [json.loads(ln)["text"] for ln in f if ln.strip()]
    random.seed(seed)
    out = []
    for _ in range(nsamples):
        while True:
            i = random.randint(0, len(docs) - 1)
            ids = tok(docs[i], add_special_tokens=True).input_ids
            if len(ids) > seqlen:
                break
        s = random.randint(0, len(ids) - seqlen - 1)
        out.append(ids[s:s + seqlen])
    return torch.tensor(out, dtype=torch.int64)


def decoder_layers(model):
    if model.config.model_type == "opt":
        return model.model.decoder.layers
    if model.config.model_type == "llama":
        return model.model.layers
    raise SystemExit(f"gptq_torch.py: model type {model.config.model_type} not supported (opt, llama)")


class _Caught(Exception):
    pass


class Catcher(torch.nn.Module):
    """Stands in for layers[0]: records its input and kwargs, then stops the forward pass."""

    def __init__(self, module, inps):
        super().__init__()
        self.module, self.inps, self.i, self.kwargs = module, inps, 0, None

    def forward(self, x, **kwargs):
        self.inps[self.i] = x[0]
        self.i += 1
        self.kwargs = kwargs
        raise _Caught


@torch.no_grad()
def quantize_model(model, windows, args):
    """GPTQ over every block in place; returns (per-block seconds, seconds in fasterquant, total seconds,
    total CPU seconds)."""
    layers = decoder_layers(model)
    seq = SEQUENTIAL[model.config.model_type]
    n, T = windows.shape
    t_start, cpu_start = time.perf_counter(), time.process_time()
    inps = torch.zeros(n, T, model.config.hidden_size)
    cat = Catcher(layers[0], inps)
    layers[0] = cat
    for j in range(n):
        try:
            model(windows[j:j + 1])
        except _Caught:
            pass
    layers[0] = cat.module
    kw = cat.kwargs
    kw["use_cache"] = False
    outs = torch.zeros_like(inps)

    per_layer, t_quant = [], 0.0
    for layer in layers:
        t_layer = time.perf_counter()
        mods = dict(layer.named_modules())
        for names in seq:
            hess = {name: Hessian(mods[name].in_features) for name in names}
            hooks = [mods[name].register_forward_hook(lambda _m, inp, _o, h=hess[name]: h.add_batch(inp[0].data))
                     for name in names]
            for j in range(n):
                layer(inps[j].unsqueeze(0), **kw)
            for h in hooks:
                h.remove()
            for name in names:
                t0 = time.perf_counter()
                lin = mods[name]
                # returns (codes, scales, zeros, g_idx, dequantized W, loss)
                Q = gptq(lin.weight.data, hess[name].H, args.wbits, args.group, False, actorder=args.act_order)[4]
                lin.weight.data = Q.to(lin.weight.dtype)
                t_quant += time.perf_counter() - t0
            del hess
        for j in range(n):
            outs[j] = layer(inps[j].unsqueeze(0), **kw)[0]
        inps, outs = outs, inps
        per_layer.append(time.perf_counter() - t_layer)
    return per_layer, t_quant, time.perf_counter() - t_start, time.process_time() - cpu_start


def main():
    ap = argparse.ArgumentParser(description="PyTorch GPTQ whole-model benchmark (reference for bench_gptq.c)")
    ap.add_argument("--model", required=True, help="HF model folder (opt or llama)")
    ap.add_argument("--data-dir", default=os.path.join(HERE, "..", "..", "shared", "datasets"))
    ap.add_argument("--wbits", type=int, default=4)
    ap.add_argument("--group", type=int, default=128, help="group size, -1 per channel")
    ap.add_argument("--act-order", action="store_true")
    ap.add_argument("--nsamples", type=int, default=128)
    ap.add_argument("--seqlen", type=int, default=0, help="default: the model's maximum context, capped at 2048")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--ppl-windows", type=int, default=0, help="PTB perplexity on the first N windows afterwards")
    ap.add_argument("--header", action="store_true", help="print the CSV header line first")
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(args.model)
    tok.model_max_length = 1 << 30
    model = load_fp32(args.model)
    model.config.use_cache = False
    T = args.seqlen or min(2048, model.config.max_position_embeddings)

    t0 = time.perf_counter()
    windows = c4_calib_windows(tok, args.data_dir, args.nsamples, T, args.seed)
    t_windows = time.perf_counter() - t0
    per_layer, t_quant, t_total, cpu_total = quantize_model(model, windows, args)

    ppl = ""
    if args.ppl_windows > 0:
        ptb, _, _ = task_windows("ptb", tok, args.data_dir, T)
        nll = score_windows(model, ptb[:args.ppl_windows])
        ppl = f"{math.exp(float(np.mean(nll))):.6f}"

    name = os.path.basename(os.path.normpath(args.model))
    pre = f"pytorch,{name},{args.wbits},{args.group},{int(args.act_order)},{args.nsamples},{T},{args.threads}"
    if args.header:
        print("impl,model,wbits,group,act_order,nsamples,seqlen,threads,layer,seconds,cpu_seconds,ptb_ppl")
    for i, s in enumerate(per_layer):
        print(f"{pre},{i},{s:.6f},,")
    print(f"{pre},quantizer,{t_quant:.6f},,")
    print(f"{pre},windows,{t_windows:.6f},,")
    print(f"{pre},total,{t_total:.6f},{cpu_total:.6f},{ppl}")


if __name__ == "__main__":
    main()
