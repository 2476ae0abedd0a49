#!/usr/bin/env python3
"""zeroshot.py: zero-shot scoring throughput (items/s) of normtweak (build/bench_zeroshot) beside
lm-evaluation-harness's HF backend (HFLM over transformers fp32) on the same items of LAMBADA (OpenAI: one request
per item) and PIQA (two choices sharing one context: what normtweak's shared-prefix KV cache saves), the same
model, the same threads, in one run; the metrics beside the speed so that a reader sees both did the same work.
benchmarks/peers/README.md says what the CSV holds.

lm-eval runs its own task definitions (lambada_openai.yaml, piqa.yaml, included as they are) with only the data
source changed to ../shared/datasets (no hub here: LAMBADA's lambada_test.jsonl; PIQA's valid.jsonl with the
labels of valid-labels.lst added to each line, written to a temporary file; no training split), HFLM's defaults
(batch size 1, no BOS), the tokenizer ../shared/tokenizers/smollm2/tokenizer.json. Both sides time tokenizing,
forward passes and scoring, not loading the model or reading the task file; lm-eval's bootstrap of standard
errors is off (bootstrap_iters=0: it is statistics, not scoring). Repetitions alternate the tools; rows hold the
medians.

usage: .venv-peers/bin/python benchmarks/peers/zeroshot.py run [--tasks lambada_openai,piqa] [--items 50]
                                                             [--threads 2] [--reps 3] [--out CSV]
       .venv-peers/bin/python benchmarks/peers/zeroshot.py worker --gguf F --task T --items N --threads T
"""
import argparse
import datetime
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

from importlib.metadata import version

import bench  # benchmarks/peers/bench.py: the model loader, the machine's facts, the CSV writer
from bench import ROOT, DEFAULT_MODEL, DEFAULT_TOKENIZER, BenchError

TASKS = ("lambada_openai", "piqa")  # the tasks both sides run here: lm-eval's yaml of each, normtweak's name
HEADER = ["tool", "weights", "model_file", "task", "threads", "items", "reps", "seconds", "seconds_min",
          "seconds_max", "items_per_s", "acc", "acc_norm", "perplexity", "nt_speedup", "version", "settings", "cpu",
          "load_1min", "commit", "timestamp"]


def lm_eval_task_file(task, data_dir, tmp, lm_eval_dir):
    """Writes tmp/<task>_local.yaml: lm-eval's own task definition with only the data source (and, for PIQA, the
    training split it would read few-shot examples from) replaced; returns the local task's name."""
    if task == "lambada_openai":
        own = os.path.join(lm_eval_dir, "tasks", "lambada", "lambada_openai.yaml")
        files = {"test": os.path.join(data_dir, "lambada", "lambada_test.jsonl")}
        extra = {}
    else:  # piqa: valid.jsonl + valid-labels.lst, one label per line, merged as the hub's "label" field
        own = os.path.join(lm_eval_dir, "tasks", "piqa", "piqa.yaml")
        src = os.path.join(data_dir, "piqa")
        merged = os.path.join(tmp, "piqa_validation.jsonl")
        with open(os.path.join(src, "valid.jsonl")) as fj, open(os.path.join(src, "valid-labels.lst")) as fl, \
                open(merged, "w") as out:
            for line, lab in zip(fj, fl):
                d = json.loads(line)
                d["label"] = int(lab)
                out.write(json.dumps(d) + "\n")
        files = {"validation": merged}
        extra = {"training_split": None}
    name = f"{task}_local"
    with open(os.path.join(tmp, f"{name}.yaml"), "w") as f:
        json.dump({"include": own, "task": name, "tag": [], "dataset_path": "json", "dataset_name": None,
                   "dataset_kwargs": {"data_files": {k: os.path.abspath(v) for k, v in files.items()}}, **extra}, f)
    return name


def worker(argv):
    ap = argparse.ArgumentParser(prog="zeroshot.py worker")
    ap.add_argument("--gguf", required=True)
    ap.add_argument("--task", choices=TASKS, required=True)
    ap.add_argument("--items", type=int, required=True)
    ap.add_argument("--threads", type=int, required=True)
    ap.add_argument("--tokenizer", default=DEFAULT_TOKENIZER)
    ap.add_argument("--data-dir", required=True)
    a = ap.parse_args(argv)
    import torch
    import lm_eval
    from lm_eval.evaluator import evaluate
    from lm_eval.models.huggingface import HFLM
    from lm_eval.tasks import TaskManager, get_task_dict
    from transformers import PreTrainedTokenizerFast

    torch.set_num_threads(a.threads)
    model = bench.load_transformers(a.gguf)
    tok = PreTrainedTokenizerFast(tokenizer_file=a.tokenizer, eos_token="<|im_end|>")  # the GGUF's eos, id 2
    lm = HFLM(pretrained=model, tokenizer=tok, batch_size=1)
    with tempfile.TemporaryDirectory(prefix="zs-tasks-") as d:
        name = lm_eval_task_file(a.task, a.data_dir, d, os.path.dirname(lm_eval.__file__))
        tasks = get_task_dict([name], TaskManager(include_path=d))
        t0 = time.perf_counter()
        res = evaluate(lm=lm, task_dict=tasks, limit=a.items, bootstrap_iters=0, log_samples=False,
                       verbosity="ERROR")
        secs = time.perf_counter() - t0
    r = res["results"][name]
    n = res["n-samples"][name]["effective"]
    print(f"lm-eval: {secs:.2f} s", file=sys.stderr)
    print(json.dumps({"seconds": secs, "items": n, "acc": r["acc,none"], "acc_norm": r.get("acc_norm,none"),
                      "perplexity": r.get("perplexity,none"),
                      "version": f"lm_eval {version('lm_eval')} transformers {version('transformers')} torch {torch.__version__}",
                      "settings": "HFLM;batch_size=1;bootstrap_iters=0"}))


def run_normtweak(a, task):
    exe = os.path.join(ROOT, "build", "bench_zeroshot")
    p = subprocess.run([exe, "--limit", str(a.items), a.model, a.data_dir, task], cwd=ROOT, env=a.env,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = next((ln for ln in p.stdout.splitlines() if ln.startswith(task + " ")), None)
    if p.returncode or line is None:
        raise BenchError(f"bench_zeroshot failed: {p.stderr.strip() or p.returncode}")
    # "TASK items N requests R S s X items/s batch B [METRIC V +/- E]..."
    f = line.split()
    metric = lambda k: float(f[f.index(k) + 1]) if k in f else None  # noqa: E731
    return {"seconds": float(f[5]), "items": int(f[2]), "acc": metric("acc"), "acc_norm": metric("acc_norm"),
            "perplexity": metric("perplexity"), "version": "normtweak bench_zeroshot",
            # batch=8: whole requests 8 at a time; batch=1: one at a time after the prefix they share
            "settings": f"batch={int(metric('batch'))}"}


def run_lm_eval(a, task):
    cmd = [sys.executable, os.path.abspath(__file__), "worker", "--gguf", a.model, "--task", task, "--items",
           str(a.items), "--threads", str(a.threads), "--tokenizer", a.tokenizer, "--data-dir", a.data_dir]
    p = subprocess.run(cmd, cwd=ROOT, env=a.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines = p.stdout.strip().splitlines()
    if p.returncode or not lines:
        err = p.stderr.strip().splitlines()
        raise BenchError(f"lm-eval worker failed: {err[-1] if err else p.returncode}")
    return json.loads(lines[-1])


def run(argv):
    ap = argparse.ArgumentParser(prog="zeroshot.py run")
    ap.add_argument("--tasks", default=",".join(TASKS), help="comma-separated, of " + ", ".join(TASKS))
    ap.add_argument("--items", type=int, default=50, help="the first N items of each task (default 50)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--out", default=os.path.join(ROOT, "results", "bench_peers_zeroshot_cpu.csv"))
    ap.add_argument("--model", default=DEFAULT_MODEL)
    ap.add_argument("--data-dir", default=os.path.join(ROOT, "..", "shared", "datasets"))
    ap.add_argument("--tokenizer", default=DEFAULT_TOKENIZER)
    a = ap.parse_args(argv)
    tasks = a.tasks.split(",")
    for t in tasks:
        if t not in TASKS:
            raise BenchError(f"--tasks: unknown task '{t}' (known: {', '.join(TASKS)})")
    for name, v in (("--items", a.items), ("--threads", a.threads), ("--reps", a.reps)):
        if v < 1:
            raise BenchError(f"{name} needs a positive integer, got {v}")
    for path, what in ((a.model, "model"), (a.tokenizer, "tokenizer")):
        if not os.path.isfile(path):
            raise BenchError(f"{what} {path} not found (models: .ci/fetch-models)")
    if not os.access(os.path.join(ROOT, "build", "bench_zeroshot"), os.X_OK):
        raise BenchError("build/bench_zeroshot not found: build first")
    a.model, a.data_dir = os.path.abspath(a.model), os.path.abspath(a.data_dir)
    n = str(a.threads)  # bench_zeroshot takes its threads from OMP_NUM_THREADS
    a.env = dict(os.environ, OMP_NUM_THREADS=n, OPENBLAS_NUM_THREADS=n, MKL_NUM_THREADS=n, HF_HUB_OFFLINE="1",
                 HF_DATASETS_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
    tools = [("normtweak", run_normtweak), ("lm-eval", run_lm_eval)]
    load0 = bench.load_1min()
    results = {(task, t): [] for task in tasks for t, _ in tools}
    for task in tasks:
        for rep in range(a.reps):
            for t, fn in tools[rep % 2:] + tools[: rep % 2]:
                r = fn(a, task)
                if r["items"] != a.items:
                    raise BenchError(f"{t} scored {r['items']} {task} items, expected {a.items}")
                results[task, t].append(r)
                print(f"zeroshot.py: {task} rep {rep + 1}/{a.reps} {t:9s} {r['seconds']:7.2f} s  "
                      f"{a.items / r['seconds']:6.2f} items/s  acc {r['acc']:.4f}  load {bench.load_1min():.2f}",
                      file=sys.stderr)
    med = {k: statistics.median(r["seconds"] for r in v) for k, v in results.items()}
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    cpu, commit = bench.cpu_model(), bench.git_commit()
    opt = lambda v: "" if v is None else f"{v:.4f}"  # noqa: E731
    rows = []
    for task in tasks:
        for t, _ in tools:
            secs = [r["seconds"] for r in results[task, t]]
            r0 = results[task, t][0]
            m = med[task, t]
            rows.append([t, "fp32", os.path.basename(a.model), task, a.threads, a.items, a.reps, f"{m:.3f}",
                         f"{min(secs):.3f}", f"{max(secs):.3f}", f"{a.items / m:.2f}", opt(r0["acc"]),
                         opt(r0["acc_norm"]), opt(r0["perplexity"]), f"{m / med[task, 'normtweak']:.3f}",
                         r0["version"], r0["settings"], cpu, f"{load0:.2f}", commit, stamp])
    bench.write_csv(a.out, HEADER, rows, shown=15)


def main():
    if len(sys.argv) < 2 or sys.argv[1] not in ("run", "worker"):
        sys.exit("usage: zeroshot.py run [options] | zeroshot.py worker ... (--help for each)")
    try:
        (run if sys.argv[1] == "run" else worker)(sys.argv[2:])
    except BenchError as e:
        sys.exit(f"zeroshot.py: {e}")


if __name__ == "__main__":
    main()
