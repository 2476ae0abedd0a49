#!/usr/bin/env python3
"""make_dataset_goldens.py: the (document, start) choices of GPTQ's C4 perplexity sampler, for test_datasets.c.

A line-by-line transcription of GPTQ's datautils.get_c4: its validation half (random.seed(0); 256 times:
draw a document until its tokenization has >= seqlen tokens, then draw the slice start) and, as
"calib_c4_train", its trainloader over the C4 train documents (seed 0, the first --n-calib samples), run with
the Hugging Face tokenizer of a shared model. The C code (nt_ppl_c4_windows, nt_calib_windows) must pick the
same slices. "text_windows" summarises the windows of the text tasks (wikitext2, ptb, ptb-new, c4-new).

GPTQ's `>= seqlen` makes randint(0, n - seqlen - 1) raise when a document has exactly seqlen tokens; the C code
redraws a document in that case. This script counts such events in "gptq_would_raise" and, like the C code,
redraws, so the golden stays usable; with 0 the choices are exactly GPTQ's.

Usage (from the repository root):
  /work/venv/bin/python tests/golden/make_dataset_goldens.py [--model ../shared/models/tiny-opt] [--seqlen 256]
writes tests/golden/c4_windows_<model>_<seqlen>.json
"""
import argparse
import json
import os
import random

from transformers import AutoTokenizer


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    root = os.path.dirname(os.path.dirname(here))
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default=os.path.join(root, "..", "shared", "models", "tiny-opt"))
    ap.add_argument("--data", default=os.path.join(root, "..", "shared", "datasets", "c4", "c4_validation_2k.jsonl"))
    ap.add_argument("--seqlen", type=int, default=256)
    ap.add_argument("--n-calib", type=int, default=16, help="calibration samples (c4 train, seed 0) to store")
    ap.add_argument("--n-ids", type=int, default=8, help="leading ids of each window to store")
    args = ap.parse_args()

    tokenizer = AutoTokenizer.from_pretrained(args.model)  # the fast (tokenizers) one
    with open(args.data, encoding="utf-8") as f:
        valdata = [json.loads(line)["text"] for line in f if line.strip()]

    seqlen = args.seqlen
    cache = {}

    def ids_of(i):
        if i not in cache:
            cache[i] = tokenizer(valdata[i])["input_ids"]
        return cache[i]

    random.seed(0)
    picks = []
    would_raise = 0
    for _ in range(256):
        while True:
            i = random.randint(0, len(valdata) - 1)
            ids = ids_of(i)
            if len(ids) >= seqlen:
                if len(ids) == seqlen:  # GPTQ: the randint below raises ValueError; the C code redraws
                    would_raise += 1
                    continue
                break
        start = random.randint(0, len(ids) - seqlen - 1)
        picks.append([i, start, ids[start:start + args.n_ids]])

    # GPTQ's get_c4 trainloader (calibration), seed 0: the same loop over the train documents
    train_path = os.path.join(os.path.dirname(args.data), "c4-train.00000-of-01024.first1000.jsonl")
    with open(train_path, encoding="utf-8") as f:
        traindata = [json.loads(line)["text"] for line in f if line.strip()]
    random.seed(0)
    calib = []
    for _ in range(args.n_calib):
        while True:
            i = random.randint(0, len(traindata) - 1)
            ids = tokenizer(traindata[i])["input_ids"]
            if len(ids) >= seqlen:
                if len(ids) == seqlen:
                    would_raise += 1
                    continue
                break
        start = random.randint(0, len(ids) - seqlen - 1)
        calib.append([i, start, ids[start:start + args.n_ids]])

    # The text tasks, tokenized once as a whole and cut into floor(n/seqlen) windows (c4-new: first
    # 256*seqlen tokens): [n_windows, n_tokens, FNV-1a 64 over the window ids (each id as one 64-bit step)]
    data_dir = os.path.dirname(os.path.dirname(args.data))

    def lines(rel):
        with open(os.path.join(data_dir, rel), encoding="utf-8") as f:
            return f.readlines()

    texts = {
        "wikitext2": "\n\n".join(row if row.strip() else "" for row in lines("wikitext2/wiki.test.raw")),
        "ptb": "\n\n".join(row.strip() for row in lines("ptb/ptb.valid.txt")),
        "ptb-new": " ".join(row.strip() for row in lines("ptb/ptb.test.txt")),
        "c4-new": " ".join(valdata[:1100]),
    }
    text_windows = {}
    for task, text in texts.items():
        ids = tokenizer(text)["input_ids"]
        keep = ids[:256 * seqlen] if task == "c4-new" else ids
        n_windows = len(keep) // seqlen
        h = 0xCBF29CE484222325
        for x in keep[:n_windows * seqlen]:
            h = ((h ^ x) * 0x100000001B3) % 2**64
        text_windows[task] = [n_windows, len(ids), f"{h:016x}"]

    name = os.path.basename(os.path.normpath(args.model))
    out = os.path.join(here, f"c4_windows_{name}_{seqlen}.json")
    doc = {
        "what": "GPTQ get_c4 validation windows: [doc index, start, first ids of the window]",
        "model": name,
        "data": "c4/c4_validation_2k.jsonl",
        "seqlen": seqlen,
        "seed": 0,
        "gptq_would_raise": would_raise,
        "text_windows": text_windows,
        "calib_c4_train": calib,
        "picks": picks,
    }
    with open(out, "w") as f:
        f.write("{\n")
        keys = [k for k in doc if k not in ("picks", "calib_c4_train")]
        for k in keys:
            f.write(f"  {json.dumps(k)}: {json.dumps(doc[k])},\n")
        f.write('  "calib_c4_train": [\n')
        f.write(",\n".join("    " + json.dumps(p) for p in calib))
        f.write("\n  ],\n")
        f.write('  "picks": [\n')
        f.write(",\n".join("    " + json.dumps(p) for p in picks))
        f.write("\n  ]\n}\n")
    print(f"wrote {out} ({len(picks)} picks, {len(cache)} documents tokenized, gptq_would_raise={would_raise})")


if __name__ == "__main__":
    main()
