#!/usr/bin/env python3
"""make_zeroshot_goldens.py: the zero-shot goldens that tests/test_zeroshot.c checks the C scorer against.

A transformers (PyTorch) transcription of lm-evaluation-harness v0.4.5's zero-shot scoring, written from its
definitions (tasks/*/*.yaml and utils, api/task.py, api/model.py TemplateLM._encode_pair, models/huggingface.py
HFLM.tok_encode/_loglikelihood_tokens), not copied. lm-eval itself is not installed in the project venv: its
pip requirements would replace torch 1.13 / transformers 4.46.3. What it reproduces, per request
(context, continuation):
  * trailing whitespace of the context moves to the front of the continuation;
  * context ids = tok.encode(context, add_special_tokens=False); continuation ids =
    tok.encode(context + continuation, add_special_tokens=False)[len(context ids):];
    an empty context is [bos_token_id] (eos_token_id when there is no BOS);
  * input = (context ids + continuation ids)[-(max_length + 1):][:-1], max_length = config
    n_positions / max_position_embeddings / n_ctx; one forward from scratch per request (batch size 1);
    the last len(continuation ids) rows of log_softmax(logits) give loglik (sum) and greedy (all argmax);
  * acc = argmax loglik == gold (lambada: greedy), acc_norm = argmax loglik / len(choice) (characters),
    lambada perplexity = exp(-mean loglik); numpy.argmax tie rule (first maximum).
The models run in float32 (lm-eval's default dtype="auto" would load these float16 checkpoints in float16).

Makes tests/golden/zeroshot/<model>__<task>.json: for the first N items of the task (N = 50 for tiny-opt on
every task; 25 for tiny-llama on lambada_openai, hellaswag, arc_easy, winogrande, boolq): per item its file
line, gold index, and per choice loglik, greedy, continuation token ids and the number of context tokens the
model saw; plus the metrics over those N items.

Rerun (from the repository root; a few minutes on one core):
  /work/venv/bin/python tests/golden/make_zeroshot_goldens.py [--shared ../shared] [--threads 1]
      [--only tiny-opt:piqa,tiny-llama:boolq,...]

The task builders and the scorer below are also used by benchmarks/zeroshot_torch.py.
"""
import argparse
import json
import math
import os
import re
import sys
import time

import numpy as np
import torch

REPO = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
OUT = os.path.join(REPO, "tests", "golden", "zeroshot")

TASK_FILES = {
    "lambada_openai": "lambada/lambada_test.jsonl",
    "hellaswag": "hellaswag/hellaswag_val_full.txt",
    "piqa": "piqa/valid.jsonl",
    "arc_easy": "arc/llmfoundry_arc_easy.jsonl",
    "arc_challenge": "arc/llmfoundry_arc_challenge.jsonl",
    "winogrande": "winogrande/llmfoundry_winogrande.jsonl",
    "boolq": "boolq/llmfoundry_boolq.jsonl",
    "openbookqa": "openbookqa/llmfoundry_openbook_qa.jsonl",
}
ACC_NORM = {"hellaswag", "piqa", "arc_easy", "arc_challenge", "openbookqa"}

GOLDENS = [("tiny-opt", t, 50) for t in TASK_FILES] + [
    ("tiny-llama", t, 25) for t in ("lambada_openai", "hellaswag", "arc_easy", "winogrande", "boolq")
]

# ---------------------------------------------------------------------------------------------
# Tasks: each doc is {"line", "gold", "requests": [(context, continuation)], "choices": [str]}
# ---------------------------------------------------------------------------------------------


def _jsonl(path, limit):
    with open(path, "r", encoding="utf-8", newline="") as f:
        lines = f.read().split("\n")
    out = []
    for i, line in enumerate(lines):
        if line.strip() == "":
            continue
        out.append((i + 1, json.loads(line)))
        if limit and len(out) >= limit:
            break
    return out


def hellaswag_preprocess(text):
    """tasks/hellaswag/utils.py preprocess."""
    text = text.strip()
    text = text.replace(" [title]", ". ")
    text = re.sub("\\[.*?\\]", "", text)
    return text.replace("  ", " ")


def _mc(line, ctx, choices, gold):
    return {"line": line, "gold": gold, "choices": choices, "requests": [(ctx, " " + c) for c in choices]}


def load_task(task, data_dir, limit=0):
    path = os.path.join(data_dir, TASK_FILES[task])
    docs = []
    if task == "lambada_openai":
        for line, d in _jsonl(path, limit):
            words = d["text"].split(" ")
            docs.append({"line": line, "gold": 0, "choices": [words[-1]],
                         "requests": [(" ".join(words[:-1]), " " + words[-1])]})
    elif task == "hellaswag":
        with open(path, "r", encoding="utf-8", newline="") as f:
            lines = f.read().split("\n")
        while lines and lines[-1] == "":
            lines.pop()
        for i in range(0, len(lines) - 5, 6):
            ctx = hellaswag_preprocess(lines[i])
            docs.append(_mc(i + 1, ctx, [hellaswag_preprocess(e) for e in lines[i + 2:i + 6]], int(lines[i + 1])))
            if limit and len(docs) >= limit:
                break
    elif task == "piqa":
        with open(os.path.join(data_dir, "piqa/valid-labels.lst")) as f:
            labels = [int(x) for x in f.read().split()]
        for k, (line, d) in enumerate(_jsonl(path, limit)):
            docs.append(_mc(line, "Question: %s\nAnswer:" % d["goal"], [d["sol1"], d["sol2"]], labels[k]))
    elif task in ("arc_easy", "arc_challenge"):
        for line, d in _jsonl(path, limit):  # query is "Question: {question}"
            docs.append(_mc(line, d["query"] + "\nAnswer:", d["choices"], d["gold"]))
    elif task == "boolq":
        for line, d in _jsonl(path, limit):
            q = d["query"]
            assert q.startswith("Passage: ")
            cut = q.rindex("\nQuestion: ")
            passage, question = q[len("Passage: "):cut], q[cut + len("\nQuestion: "):]
            assert question.endswith("?")
            docs.append(_mc(line, "%s\nQuestion: %s?\nAnswer:" % (passage, question[:-1]), d["choices"], d["gold"]))
    elif task == "openbookqa":
        for line, d in _jsonl(path, limit):
            docs.append(_mc(line, d["query"], d["choices"], d["gold"]))
    elif task == "winogrande":
        for line, d in _jsonl(path, limit):
            opts = d["context_options"]
            docs.append({"line": line, "gold": d["gold"], "choices": opts,
                         "requests": [(o, " " + d["continuation"]) for o in opts]})
    else:
        raise ValueError(task)
    return docs


# ---------------------------------------------------------------------------------------------
# Scoring (HFLM semantics, batch size 1)
# ---------------------------------------------------------------------------------------------


class Scorer:
    def __init__(self, model_dir):
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.tok = AutoTokenizer.from_pretrained(model_dir)
        self.model = AutoModelForCausalLM.from_pretrained(model_dir, torch_dtype=torch.float32).eval()
        cfg = self.model.config
        self.max_length = next(getattr(cfg, a) for a in ("n_positions", "max_position_embeddings", "n_ctx")
                               if hasattr(cfg, a))
        self.add_special = "gemma" in getattr(cfg, "model_type", "")
        self.prefix = self.tok.bos_token_id if self.tok.bos_token_id is not None else self.tok.eos_token_id

    def encode_pair(self, ctx, cont):
        if ctx == "":
            return [self.prefix], self.tok.encode(cont, add_special_tokens=self.add_special)
        n = len(ctx) - len(ctx.rstrip())
        if n > 0:
            cont = ctx[-n:] + cont
            ctx = ctx[:-n]
        whole = self.tok.encode(ctx + cont, add_special_tokens=self.add_special)
        cids = self.tok.encode(ctx, add_special_tokens=self.add_special)
        return cids, whole[len(cids):]

    @torch.no_grad()
    def loglikelihood(self, ctx, cont):
        cids, kids = self.encode_pair(ctx, cont)
        assert len(cids) > 0 and 0 < len(kids) <= self.max_length
        full = (cids + kids)[-(self.max_length + 1):]
        inp = torch.tensor([full[:-1]], dtype=torch.long)
        logp = torch.log_softmax(self.model(inp).logits[0, -len(kids):].float(), dim=-1)
        target = torch.tensor(kids, dtype=torch.long)
        ll = float(logp.gather(1, target[:, None]).sum())
        greedy = bool((logp.argmax(dim=-1) == target).all())
        n_ctx_seen = len(full) - len(kids)
        return ll, greedy, kids, n_ctx_seen


def mean_stderr(xs):
    n = len(xs)
    mu = sum(xs) / n
    return mu, (math.sqrt(sum((x - mu) ** 2 for x in xs) / (n - 1)) / math.sqrt(n) if n > 1 else float("nan"))


def score_docs(scorer, task, docs):
    """Per-item results and the task's metrics {name: (value, stderr)}."""
    items, acc, accn, lls = [], [], [], []
    for d in docs:
        res = [scorer.loglikelihood(c, k) for c, k in d["requests"]]
        ll = np.array([r[0] for r in res])
        items.append({"line": d["line"], "gold": d["gold"], "ll": [r[0] for r in res], "greedy": [r[1] for r in res],
                      "cont_ids": [r[2] for r in res], "n_ctx": [r[3] for r in res]})
        if task == "lambada_openai":
            acc.append(1.0 if res[0][1] else 0.0)
            lls.append(res[0][0])
        else:
            lens = np.array([float(len(c)) for c in d["choices"]])
            acc.append(1.0 if int(np.argmax(ll)) == d["gold"] else 0.0)
            accn.append(1.0 if int(np.argmax(ll / lens)) == d["gold"] else 0.0)
    metrics = {"acc": mean_stderr(acc)}
    if task in ACC_NORM:
        metrics["acc_norm"] = mean_stderr(accn)
    if task == "lambada_openai":
        mu, se = mean_stderr(lls)
        metrics["perplexity"] = (math.exp(-mu), math.exp(-mu) * se)
    return items, metrics


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--shared", default=os.path.join(REPO, "..", "shared"))
    ap.add_argument("--only", default="", help="comma-separated model:task pairs")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    os.makedirs(OUT, exist_ok=True)
    only = set(args.only.split(",")) if args.only else None
    scorers = {}
    for model, task, n in GOLDENS:
        if only and "%s:%s" % (model, task) not in only:
            continue
        if model not in scorers:
            scorers[model] = Scorer(os.path.join(args.shared, "models", model))
        t0 = time.time()
        docs = load_task(task, os.path.join(args.shared, "datasets"), n)
        items, metrics = score_docs(scorers[model], task, docs)
        out = {"model": model, "task": task, "limit": n, "max_length": scorers[model].max_length,
               "metrics": {k: {"value": v, "stderr": s} for k, (v, s) in metrics.items()}, "items": items}
        path = os.path.join(OUT, "%s__%s.json" % (model, task))
        with open(path, "w") as f:
            json.dump(out, f, separators=(",", ":"))
            f.write("\n")
        print("%s: %d items, %s (%.1fs)" % (os.path.relpath(path, REPO), len(items),
              ", ".join("%s=%.4f" % (k, v[0]) for k, v in metrics.items()), time.time() - t0), file=sys.stderr)


if __name__ == "__main__":
    main()
