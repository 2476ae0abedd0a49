#!/usr/bin/env python3
"""zeroshot.py: zero-shot scoring throughput (items/s) of normtweak (build/bench_zeroshot) beside
lm-evaluation-harness's HF backend (HFLM over transformers fp32) on the same LAMBADA (OpenAI) items, the same
model, the same threads, in one run; accuracy and perplexity beside the speed so that a reader sees both did the
same work. benchmarks/peers/README.md says what the CSV holds.

lm-eval runs its own task definition (its lambada_openai.yaml, included as it is) with only the data source
changed to ../shared/datasets/lambada/lambada_test.jsonl (no hub here), HFLM's defaults (batch size 1, no BOS),
the tokenizer ../shared/tokenizers/smollm2/tokenizer.json. Both sides time tokenizing, forward passes and
scoring, not loading the model or reading the task file; lm-eval's bootstrap of standard errors is off
(bootstrap_iters=0: it is statistics, not scoring). Repetitions alternate the tools; rows hold the medians.

usage: .venv-peers/bin/python benchmarks/peers/zeroshot.py run [--items 50] [--threads 2] [--reps 3] [--out CSV]
       .venv-peers/bin/python benchmarks/peers/zeroshot.py worker --gguf F --items N --threads T
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

LAMBADA = os.path.join(ROOT, "..", "shared", "datasets", "lambada", "lambada_test.jsonl")
HEADER = ["tool", "weights", "model_file", "task", "threads", "items", "reps", "seconds", "seconds_min",
          "seconds_max", "items_per_s", "acc", "perplexity", "nt_speedup", "version", "settings", "cpu", "load_1min",
          "commit", "timestamp"]


def worker(argv):
    ap = argparse.ArgumentParser(prog="zeroshot.py worker")
    ap.add_argument("--gguf", required=True)
    ap.add_argument("--items", type=int, required=True)
    ap.add_argument("--threads", type=int, required=True)
    ap.add_argument("--tokenizer", default=DEFAULT_TOKENIZER)
    ap.add_argument("--data", default=LAMBADA)
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
        own = os.path.join(os.path.dirname(lm_eval.__file__), "tasks", "lambada", "lambada_openai.yaml")
        with open(os.path.join(d, "lambada_openai_local.yaml"), "w") as f:
            json.dump({"include": own, "task": "lambada_openai_local", "tag": [], "dataset_path": "json",
                       "dataset_name": None, "dataset_kwargs": {"data_files": {"test": os.path.abspath(a.data)}}}, f)
        tasks = get_task_dict(["lambada_openai_local"], TaskManager(include_path=d))
        t0 = time.perf_counter()
        res = evaluate(lm=lm, task_dict=tasks, limit=a.items, bootstrap_iters=0, log_samples=False,
                       verbosity="ERROR")
        secs = time.perf_counter() - t0
    r = res["results"]["lambada_openai_local"]
    n = res["n-samples"]["lambada_openai_local"]["effective"]
    print(f"lm-eval: {secs:.2f} s", file=sys.stderr)
    print(json.dumps({"seconds": secs, "items": n, "acc": r["acc,none"], "perplexity": r["perplexity,none"],
                      "version": f"lm_eval {version('lm_eval')} transformers {version('transformers')} torch {torch.__version__}",
                      "settings": "HFLM;batch_size=1;bootstrap_iters=0"}))


def run_normtweak(a):
    exe = os.path.join(ROOT, "build", "bench_zeroshot")
    p = subprocess.run([exe, "--limit", str(a.items), a.model, a.data_dir, "lambada_openai"], cwd=ROOT, env=a.env,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = next((ln for ln in p.stdout.splitlines() if ln.startswith("lambada_openai ")), None)
    if p.returncode or line is None:
        raise BenchError(f"bench_zeroshot failed: {p.stderr.strip() or p.returncode}")
    # "lambada_openai items N requests R S s X items/s acc A +/- E perplexity P +/- E"
    f = line.split()
    return {"seconds": float(f[5]), "items": int(f[2]), "acc": float(f[f.index("acc") + 1]),
            "perplexity": float(f[f.index("perplexity") + 1]), "version": "normtweak bench_zeroshot",
            "settings": "one request per forward"}


def run_lm_eval(a):
    cmd = [sys.executable, os.path.abspath(__file__), "worker", "--gguf", a.model, "--items", str(a.items),
           "--threads", str(a.threads), "--tokenizer", a.tokenizer, "--data", os.path.join(a.data_dir, "lambada",
                                                                                            "lambada_test.jsonl")]
    p = subprocess.run(cmd, cwd=ROOT, env=a.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines = p.stdout.strip().splitlines()
    if p.returncode or not lines:
        err = p.stderr.strip().splitlines()
        raise BenchError(f"lm-eval worker failed: {err[-1] if err else p.returncode}")
    return json.loads(lines[-1])


def run(argv):
    ap = argparse.ArgumentParser(prog="zeroshot.py run")
    ap.add_argument("--items", type=int, default=50, help="the first N LAMBADA items (default 50)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--out", default=os.path.join(ROOT, "results", "bench_peers_zeroshot_cpu.csv"))
    ap.add_argument("--model", default=DEFAULT_MODEL)
    ap.add_argument("--data-dir", default=os.path.join(ROOT, "..", "shared", "datasets"))
    ap.add_argument("--tokenizer", default=DEFAULT_TOKENIZER)
    a = ap.parse_args(argv)
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
    results = {t: [] for t, _ in tools}
    for rep in range(a.reps):
        for t, fn in tools[rep % 2:] + tools[: rep % 2]:
            r = fn(a)
            if r["items"] != a.items:
                raise BenchError(f"{t} scored {r['items']} items, expected {a.items}")
            results[t].append(r)
            print(f"zeroshot.py: rep {rep + 1}/{a.reps} {t:9s} {r['seconds']:7.2f} s  {a.items / r['seconds']:6.2f} "
                  f"items/s  acc {r['acc']:.4f}  ppl {r['perplexity']:.4f}  load {bench.load_1min():.2f}",
                  file=sys.stderr)
    med = {t: statistics.median(r["seconds"] for r in results[t]) for t in results}
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    cpu, commit = bench.cpu_model(), bench.git_commit()
    rows = []
    for t, _ in tools:
        secs = [r["seconds"] for r in results[t]]
        r0 = results[t][0]
        rows.append([t, "fp32", os.path.basename(a.model), "lambada_openai", a.threads, a.items, a.reps,
                     f"{med[t]:.3f}", f"{min(secs):.3f}", f"{max(secs):.3f}", f"{a.items / med[t]:.2f}",
                     f"{r0['acc']:.4f}", f"{r0['perplexity']:.4f}", f"{med[t] / med['normtweak']:.3f}",
                     r0["version"], r0["settings"], cpu, f"{load0:.2f}", commit, stamp])
    bench.write_csv(a.out, HEADER, rows, shown=14)


def main():
    if len(sys.argv) < 2 or sys.argv[1] not in ("run", "worker"):
        sys.exit("usage: zeroshot.py run [options] | zeroshot.py worker ... (--help for each)")
    try:
        (run if sys.argv[1] == "run" else worker)(sys.argv[2:])
    except BenchError as e:
        sys.exit(f"zeroshot.py: {e}")


if __name__ == "__main__":
    main()
