#!/usr/bin/env python3
"""make_tokenizer_doc_goldens.py: hashes of the token ids of every evaluation document, for tests/test_tokenizer_gguf.c.

The tokenizer is HF `tokenizers` on shared/tokenizers/smollm2/tokenizer.json, the truth for the SmolLM2 GGUF's
tokenizer (shared/tokenizers/README.md); the C test checks both the GGUF's tokenizer and that tokenizer.json
against these hashes. The documents are built as the harness builds them (datasets/datasets.c, datasets/tasks.c),
here independently in Python:
  wikitext2   the GPTQ WikiText-2 test string (rows keep "\\n", a whitespace-only row is "", joined with "\\n\\n")
  ptb         ptb.valid.txt stripped lines joined with "\\n\\n"      ptb-new  ptb.test.txt stripped lines joined with " "
  c4-new      the first 1100 C4 validation documents joined with " "
  c4          every C4 validation document on its own (the c4 task draws its windows from these)
  the eight zero-shot tasks (lambada_openai, hellaswag, piqa, arc_easy, arc_challenge, winogrande, boolq,
  openbookqa), one document per item: for each request (context, continuation) of the item, as
  make_zeroshot_goldens.load_task builds them, the three strings context, continuation, context + continuation
The text tasks are encoded with add_special_tokens=True, the zero-shot strings with False (lm-eval's HFLM for
non-Gemma models; the harness does the same). SmolLM2's tokenizer.json adds nothing either way.

Hash: FNV-1a 64 with one step per 32-bit value (h = (h ^ v) * 0x100000001B3 mod 2^64): for each document, for each of
its strings, the number of ids and then the ids. Per set: the number of documents, strings and ids, the hash over the
whole set, and the hash of each block of 64 documents (each block from a fresh offset basis), so that a failing
test can say which documents differ.

Writes tests/golden/tokenizer/smollm2-docs.json. Rerun (from the repository root; ~1 minute):
    /work/venv-oracle/bin/python tests/golden/make_tokenizer_doc_goldens.py [--shared ../shared]
"""
import argparse
import json
import os
import sys
import time

import tokenizers

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from make_zeroshot_goldens import TASK_FILES, load_task  # noqa: E402  (the harness's strings, built in Python)

BLOCK = 64
OFFSET, PRIME, MASK = 0xCBF29CE484222325, 0x100000001B3, (1 << 64) - 1


def fnv(h, values):
    for v in values:
        h = ((h ^ (v & 0xFFFFFFFF)) * PRIME) & MASK
    return h


def lines(path):
    with open(path, encoding="utf-8") as f:
        return f.readlines()


def document_sets(shared):
    d = os.path.join(shared, "datasets")
    with open(os.path.join(d, "c4/c4_validation_2k.jsonl"), encoding="utf-8") as f:
        c4 = [json.loads(line)["text"] for line in f if line.strip()]
    sets = [
        ("wikitext2", True, [["\n\n".join(r if r.strip() else "" for r in lines(os.path.join(d, "wikitext2/wiki.test.raw")))]]),
        ("ptb", True, [["\n\n".join(r.strip() for r in lines(os.path.join(d, "ptb/ptb.valid.txt")))]]),
        ("ptb-new", True, [[" ".join(r.strip() for r in lines(os.path.join(d, "ptb/ptb.test.txt")))]]),
        ("c4-new", True, [[" ".join(c4[:1100])]]),
        ("c4", True, [[t] for t in c4]),
    ]
    for task in TASK_FILES:
        docs = []
        for item in load_task(task, d):
            strings = []
            for ctx, cont in item["requests"]:
                strings += [ctx, cont, ctx + cont]
            docs.append(strings)
        sets.append((task, False, docs))
    return sets


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--shared", default=os.path.join(HERE, "..", "..", "..", "shared"))
    args = ap.parse_args()
    shared = os.path.abspath(args.shared)
    assert tokenizers.__version__ == "0.20.3", "pinned version"
    tk = tokenizers.Tokenizer.from_file(os.path.join(shared, "tokenizers/smollm2/tokenizer.json"))
    out = {"tokenizer": "shared/tokenizers/smollm2/tokenizer.json", "block": BLOCK, "sets": {}}
    for name, add_special, docs in document_sets(shared):
        t0 = time.time()
        flat = [s for doc in docs for s in doc]
        enc = tk.encode_batch(flat, add_special_tokens=add_special)
        h, n_ids, k, blocks, bh = OFFSET, 0, 0, [], OFFSET
        for i, doc in enumerate(docs):
            if i % BLOCK == 0:
                bh = OFFSET
            for _ in doc:
                ids = enc[k].ids
                k += 1
                h = fnv(fnv(h, [len(ids)]), ids)
                bh = fnv(fnv(bh, [len(ids)]), ids)
                n_ids += len(ids)
            if i % BLOCK == BLOCK - 1 or i == len(docs) - 1:
                blocks.append(f"{bh:016x}")
        out["sets"][name] = {"add_special": add_special, "docs": len(docs), "strings": len(flat), "ids": n_ids,
                             "fnv1a64": f"{h:016x}", "blocks": blocks}
        print(f"{name}: {len(docs)} documents, {len(flat)} strings, {sum(len(s) for s in flat)} characters, "
              f"{n_ids} ids ({time.time() - t0:.1f} s)")
    path = os.path.join(HERE, "tokenizer", "smollm2-docs.json")
    with open(path, "w", encoding="utf-8") as f:
        f.write("{\n")
        f.write(f' "tokenizer": {json.dumps(out["tokenizer"])},\n "block": {BLOCK},\n "sets": {{\n')
        items = list(out["sets"].items())
        for j, (name, s) in enumerate(items):
            f.write(f"  {json.dumps(name)}: {json.dumps(s)}" + (",\n" if j + 1 < len(items) else "\n"))
        f.write(" }\n}\n")
    print(path)


if __name__ == "__main__":
    main()
