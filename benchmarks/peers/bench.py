#!/usr/bin/env python3
"""bench.py: WikiText-2 perplexity throughput of normtweak beside llama.cpp (llama-cpp-python, on the Q4_1 GGUF and
on an F32 GGUF of the same weights) and HF transformers (fp32), in one run, on the same cores, over the same
token ids. benchmarks/peers/run.sh is the front end; benchmarks/peers/README.md says what the CSV holds.

The windows: build/bench_ppl_ids writes the first N GPTQ-protocol windows exactly as `normtweak eval` tokenizes
them (the GGUF's own tokenizer); they are checked against HF `tokenizers` on ../shared/tokenizers/smollm2, and
every peer scores those ids. Each measurement is a fresh process (`bench.py worker ...`, or `normtweak eval`)
that loads its model, then times only the forward passes and the NLL of the windows (not loading or
tokenizing), as normtweak's own `seconds` column does; nobody gets a warm-up window. Repetitions alternate the
tools (the order rotates each repetition) so that load drift on the shared machine hits them all alike; the CSV
row of a tool holds the median seconds of its repetitions.

usage: .venv-peers/bin/python benchmarks/peers/bench.py run [--windows N] [--threads T] [--reps R] [--out CSV]
                              [--model GGUF] [--f32 GGUF] [--seqlen S] [--data-dir DIR] [--tokenizer JSON]
                              [--llama-ubatch U] [--llama-kv f16|f32] [--tools a,b,...]
       .venv-peers/bin/python benchmarks/peers/bench.py worker llama|transformers --gguf F --ids F.i32 --threads T
"""
import argparse
import csv
import datetime
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

ROOT = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
VENV = os.path.join(ROOT, ".venv-peers")
DEFAULT_MODEL = os.path.join(os.environ.get("NT_MODELS_DIR", os.path.join(ROOT, "models")),
                             "SmolLM2-135M-Instruct.Q4_1.gguf")
DEFAULT_F32 = os.path.join(VENV, "models", "SmolLM2-135M-Instruct.F32.gguf")
DEFAULT_TOKENIZER = os.path.join(ROOT, "..", "shared", "tokenizers", "smollm2", "tokenizer.json")

HEADER = ["tool", "weights", "model_file", "threads", "windows", "seqlen", "tokens", "scored", "reps", "seconds",
          "seconds_min", "seconds_max", "tokens_per_s", "ppl", "ppl_rel_diff", "nt_speedup", "version", "settings",
          "cpu", "load_1min", "commit", "timestamp"]


class BenchError(Exception):
    pass


# ------------------------------------------------------------------------------------------------------------
# Workers: one process per measurement. Each prints one JSON line: seconds, nll_sum, n_scored, version, settings.
# ------------------------------------------------------------------------------------------------------------

def read_windows(path, seqlen):
    ids = np.fromfile(path, dtype="<i4")
    if ids.size == 0 or ids.size % seqlen:
        raise BenchError(f"{path}: {ids.size} ids are not whole windows of {seqlen}")
    return ids.reshape(-1, seqlen)


def window_nll_sum(logits, targets):
    """Sum over positions of -log softmax(logits)[target], in float64 (logits: (S-1, vocab) float32 tensor)."""
    import torch.nn.functional as F
    return float(F.cross_entropy(logits, targets, reduction="sum").double())


def worker_llama(args):
    import torch  # the NLL: torch's cross_entropy on llama.cpp's logits, the same code as the transformers worker
    import llama_cpp

    torch.set_num_threads(args.threads)
    windows = read_windows(args.ids, args.seqlen)
    S = args.seqlen
    kv = {"f16": llama_cpp.GGML_TYPE_F16, "f32": llama_cpp.GGML_TYPE_F32}[args.kv]
    llm = llama_cpp.Llama(model_path=args.gguf, n_ctx=S, n_batch=S, n_ubatch=args.ubatch, n_threads=args.threads,
                          n_threads_batch=args.threads, logits_all=True, type_k=kv, type_v=kv, verbose=False)
    if llm.n_vocab() <= int(windows.max()):
        raise BenchError(f"{args.gguf}: vocabulary of {llm.n_vocab()} does not hold id {int(windows.max())}")
    nll, t_eval, t0 = 0.0, 0.0, time.perf_counter()
    for w in windows:
        te = time.perf_counter()
        llm.reset()  # n_tokens = 0: eval() then clears the whole KV cache before the window
        llm.eval(w.tolist())
        t_eval += time.perf_counter() - te
        logits = torch.from_numpy(llm.scores[: S - 1])  # (S-1, vocab): position t predicts token t+1
        nll += window_nll_sum(logits, torch.from_numpy(w[1:].astype(np.int64)))
    secs = time.perf_counter() - t0
    return {"seconds": secs, "eval_seconds": t_eval, "nll_sum": nll, "n_scored": int(windows.shape[0] * (S - 1)),
            "version": f"llama-cpp-python {llama_cpp.__version__}",
            "settings": f"n_ctx={S};n_batch={S};n_ubatch={args.ubatch};kv={args.kv};logits_all=1"}


def load_transformers(gguf_path):
    """transformers' fp32 model of a GGUF (it dequantizes the weights), in eval mode."""
    import torch
    from transformers import AutoModelForCausalLM

    # tie_word_embeddings: transformers 4.46 reads it as false from a GGUF and would leave lm_head random
    model = AutoModelForCausalLM.from_pretrained(os.path.dirname(os.path.abspath(gguf_path)),
                                                 gguf_file=os.path.basename(gguf_path), torch_dtype=torch.float32,
                                                 tie_word_embeddings=True)
    model.eval()
    if not torch.equal(model.lm_head.weight, model.model.embed_tokens.weight):
        raise BenchError("transformers did not tie lm_head to the embeddings")
    return model


def worker_transformers(args):
    import torch
    import transformers

    torch.set_num_threads(args.threads)
    windows = read_windows(args.ids, args.seqlen)
    S = args.seqlen
    model = load_transformers(args.gguf)
    attn = model.config._attn_implementation
    nll, t0 = 0.0, time.perf_counter()
    with torch.inference_mode():
        for w in windows:
            x = torch.from_numpy(w.astype(np.int64))[None]
            logits = model(x, use_cache=False).logits[0, :-1]
            nll += window_nll_sum(logits, x[0, 1:])
    secs = time.perf_counter() - t0
    return {"seconds": secs, "nll_sum": nll, "n_scored": int(windows.shape[0] * (S - 1)),
            "version": f"transformers {transformers.__version__} torch {torch.__version__}",
            "settings": f"attn={attn};use_cache=0;batch=1"}


def worker_main(argv):
    ap = argparse.ArgumentParser(prog="bench.py worker")
    ap.add_argument("kind", choices=["llama", "transformers"])
    ap.add_argument("--gguf", required=True)
    ap.add_argument("--ids", required=True)
    ap.add_argument("--seqlen", type=int, default=2048)
    ap.add_argument("--threads", type=int, required=True)
    ap.add_argument("--ubatch", type=int, default=2048)
    ap.add_argument("--kv", choices=["f16", "f32"], default="f16")
    args = ap.parse_args(argv)
    res = worker_llama(args) if args.kind == "llama" else worker_transformers(args)
    print(json.dumps(res))


# ------------------------------------------------------------------------------------------------------------
# The run: windows, id check, alternating repetitions, the CSV.
# ------------------------------------------------------------------------------------------------------------

def check_ids_against_hf(windows, tokenizer_json, data_dir):
    """The GPTQ wikitext2 string tokenized by HF `tokenizers` must give normtweak's ids for the windows used."""
    import tokenizers
    sys.path.insert(0, os.path.join(ROOT, "tests", "golden"))
    from make_model_goldens import wikitext2_text  # the one Python definition of the joined string

    tok = tokenizers.Tokenizer.from_file(tokenizer_json)
    ids = np.array(tok.encode(wikitext2_text(data_dir), add_special_tokens=False).ids, dtype=np.int32)
    n = windows.size
    if ids.size < n or not np.array_equal(ids[:n], windows.reshape(-1)):
        bad = int(np.argmax(ids[:n] != windows.reshape(-1)[: ids[:n].size])) if ids.size else 0
        raise BenchError(f"normtweak's wikitext2 ids differ from HF tokenizers' ({tokenizer_json}) at token {bad}")
    return int(ids.size)


def run_normtweak(a, tmp):
    out = os.path.join(tmp, "nt.csv")
    if os.path.exists(out):
        os.unlink(out)
    cmd = [os.path.join(ROOT, "build", "normtweak"), "eval", "--model", a.model, "--tasks", "wikitext2", "--seqlen",
           str(a.seqlen), "--limit", str(a.windows), "--threads", str(a.threads), "--data-dir", a.data_dir,
           "--out", out]
    p = subprocess.run(cmd, cwd=ROOT, env=dict(a.env, NT_PROGRESS="0"), stdout=subprocess.DEVNULL,
                       stderr=subprocess.PIPE, text=True)
    if p.returncode:
        raise BenchError(f"normtweak eval failed: {p.stderr.strip().splitlines()[-1] if p.stderr.strip() else p.returncode}")
    with open(out, newline="") as f:
        rows = [r for r in csv.DictReader(f) if r["metric"] == "ppl"]
    if len(rows) != 1:
        raise BenchError(f"normtweak eval wrote {len(rows)} ppl rows, expected 1")
    r = rows[0]
    n = int(r["n"])
    return {"seconds": float(r["seconds"]), "nll_sum": math.log(float(r["value"])) * n, "n_scored": n,
            "version": f"normtweak {r['commit']}", "settings": f"eval;device={r['device']}"}


def run_worker(a, kind, gguf_path):
    cmd = [sys.executable, os.path.abspath(__file__), "worker", kind, "--gguf", gguf_path, "--ids", a.ids_path,
           "--seqlen", str(a.seqlen), "--threads", str(a.threads), "--ubatch", str(a.llama_ubatch), "--kv", a.llama_kv]
    p = subprocess.run(cmd, cwd=ROOT, env=a.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines = p.stdout.strip().splitlines()
    if p.returncode or not lines:
        err = p.stderr.strip().splitlines()
        raise BenchError(f"{kind} worker on {os.path.basename(gguf_path)} failed: {err[-1] if err else p.returncode}")
    return json.loads(lines[-1])


def load_1min():
    with open("/proc/loadavg") as f:
        return float(f.read().split()[0])


def cpu_model():
    with open("/proc/cpuinfo") as f:
        for ln in f:
            if ln.startswith("model name"):
                return ln.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def git_commit():
    p = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], cwd=ROOT, stdout=subprocess.PIPE,
                       stderr=subprocess.DEVNULL, text=True)
    if p.returncode:
        return "unknown"
    dirty = subprocess.run(["git", "diff", "--quiet", "HEAD", "--"], cwd=ROOT).returncode != 0
    return p.stdout.strip() + ("-dirty" if dirty else "")


def run_main(argv):
    ap = argparse.ArgumentParser(prog="bench.py run")
    ap.add_argument("--windows", type=int, default=4, help="first N WikiText-2 windows (default 4)")
    ap.add_argument("--threads", type=int, default=2, help="threads for every tool (default 2)")
    ap.add_argument("--reps", type=int, default=3, help="repetitions of each tool, alternating (default 3)")
    ap.add_argument("--out", default=os.path.join(ROOT, "results", "bench_peers_cpu.csv"))
    ap.add_argument("--model", default=DEFAULT_MODEL, help="the quantized GGUF (default SmolLM2-135M-Instruct Q4_1)")
    ap.add_argument("--f32", default=DEFAULT_F32, help="its F32 GGUF (benchmarks/peers/setup.sh makes it)")
    ap.add_argument("--seqlen", type=int, default=2048)
    ap.add_argument("--data-dir", default=os.path.join(ROOT, "..", "shared", "datasets"))
    ap.add_argument("--tokenizer", default=DEFAULT_TOKENIZER, help="HF tokenizer.json the ids are checked against")
    ap.add_argument("--llama-ubatch", type=int, default=2048,
                    help="llama.cpp's n_ubatch (default 2048 = n_batch: faster here than its own default 512)")
    ap.add_argument("--llama-kv", choices=["f16", "f32"], default="f16",
                    help="llama.cpp's KV cache type (default f16, its own)")
    ap.add_argument("--tools", default="normtweak,llama-q4_1,llama-f32,transformers")
    a = ap.parse_args(argv)
    for name, v in (("--windows", a.windows), ("--threads", a.threads), ("--reps", a.reps), ("--seqlen", a.seqlen),
                    ("--llama-ubatch", a.llama_ubatch)):
        if v < 1:
            raise BenchError(f"{name} needs a positive integer, got {v}")
    tools = a.tools.split(",")
    known = ["normtweak", "llama-q4_1", "llama-f32", "transformers"]
    if any(t not in known for t in tools) or "normtweak" not in tools:
        raise BenchError(f"--tools: a comma list of {', '.join(known)}, with normtweak (the ratios' base)")
    for path, what in ((a.model, "model"), (a.tokenizer, "tokenizer")):
        if not os.path.isfile(path):
            raise BenchError(f"{what} {path} not found (models: .ci/fetch-models)")
    if "llama-f32" in tools and not os.path.isfile(a.f32):
        raise BenchError(f"F32 GGUF {a.f32} not found: run benchmarks/peers/setup.sh")
    for exe in ("normtweak", "bench_ppl_ids"):
        if not os.access(os.path.join(ROOT, "build", exe), os.X_OK):
            raise BenchError(f"build/{exe} not found: build first (cmake -S . -B build && cmake --build build -j)")
    a.model, a.f32 = os.path.abspath(a.model), os.path.abspath(a.f32)
    a.data_dir = os.path.abspath(a.data_dir)
    # every tool's threads: its own option, and the OpenMP / BLAS pools' environment
    n = str(a.threads)
    a.env = dict(os.environ, OMP_NUM_THREADS=n, OPENBLAS_NUM_THREADS=n, MKL_NUM_THREADS=n)

    with tempfile.TemporaryDirectory(prefix="bench-peers-") as tmp:
        a.ids_path = os.path.join(tmp, "windows.i32")
        p = subprocess.run([os.path.join(ROOT, "build", "bench_ppl_ids"), "--seqlen", str(a.seqlen), "--limit",
                            str(a.windows), "--data-dir", a.data_dir, a.model, "wikitext2", a.ids_path],
                           cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        if p.returncode:
            raise BenchError(p.stderr.strip() or "bench_ppl_ids failed")
        windows = read_windows(a.ids_path, a.seqlen)
        if windows.shape[0] != a.windows:
            raise BenchError(f"wikitext2 has only {windows.shape[0]} windows of {a.seqlen}")
        n_text = check_ids_against_hf(windows, a.tokenizer, a.data_dir)
        print(f"bench.py: {a.windows} windows of {a.seqlen} (of {n_text} tokens): normtweak's ids = HF tokenizers' ids",
              file=sys.stderr)

        runs = {
            "normtweak": lambda: run_normtweak(a, tmp),
            "llama-q4_1": lambda: run_worker(a, "llama", a.model),
            "llama-f32": lambda: run_worker(a, "llama", a.f32),
            "transformers": lambda: run_worker(a, "transformers", a.model),
        }
        meta = {
            "normtweak": ("normtweak", "fp32", a.model),
            "llama-q4_1": ("llama.cpp", "q4_1", a.model),
            "llama-f32": ("llama.cpp", "f32", a.f32),
            "transformers": ("transformers", "fp32", a.model),
        }
        load0 = load_1min()
        results = {t: [] for t in tools}
        for rep in range(a.reps):
            order = tools[rep % len(tools):] + tools[: rep % len(tools)]
            for t in order:
                r = runs[t]()
                if r["n_scored"] != a.windows * (a.seqlen - 1):
                    raise BenchError(f"{t} scored {r['n_scored']} tokens, expected {a.windows * (a.seqlen - 1)}")
                results[t].append(r)
                ppl = math.exp(r["nll_sum"] / r["n_scored"])
                extra = f" (eval {r['eval_seconds']:.2f} s)" if "eval_seconds" in r else ""
                print(f"bench.py: rep {rep + 1}/{a.reps} {t:13s} {r['seconds']:8.2f} s{extra}  "
                      f"{a.windows * a.seqlen / r['seconds']:8.1f} tokens/s  ppl {ppl:.6f}  load {load_1min():.2f}",
                      file=sys.stderr)

    cpu, commit = cpu_model(), git_commit()
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    tokens, scored = a.windows * a.seqlen, a.windows * (a.seqlen - 1)
    med = {t: statistics.median(r["seconds"] for r in results[t]) for t in tools}
    nt_tps = tokens / med["normtweak"]
    nt_ppl = math.exp(results["normtweak"][0]["nll_sum"] / scored)
    rows = []
    for t in tools:
        tool, weights, path = meta[t]
        secs = [r["seconds"] for r in results[t]]
        ppl = math.exp(results[t][0]["nll_sum"] / scored)  # the same ids each repetition: the first run's ppl
        tps = tokens / med[t]
        rows.append([tool, weights, os.path.basename(path), a.threads, a.windows, a.seqlen, tokens, scored, a.reps,
                     f"{med[t]:.3f}", f"{min(secs):.3f}", f"{max(secs):.3f}", f"{tps:.1f}", f"{ppl:.6f}",
                     f"{(ppl - nt_ppl) / nt_ppl:.2e}", f"{nt_tps / tps:.3f}", results[t][0]["version"],
                     results[t][0]["settings"], cpu, f"{load0:.2f}", commit, stamp])
    write_csv(a.out, HEADER, rows, shown=17)


def write_csv(out, header, rows, shown):
    """Writes the CSV atomically (a temporary file renamed over it) and prints its first `shown` columns."""
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    tmp_out = f"{out}.tmp.{os.getpid()}"
    with open(tmp_out, "w", newline="") as f:
        wr = csv.writer(f, lineterminator="\n")
        wr.writerow(header)
        wr.writerows(rows)
    os.replace(tmp_out, out)
    width = [max(len(str(x)) for x in col) for col in zip(header, *rows)]
    for r in [header] + rows:
        print("  ".join(str(x).ljust(w) for x, w in zip(r[:shown], width[:shown])))
    print(f"wrote {out}")


def main():
    if len(sys.argv) < 2 or sys.argv[1] not in ("run", "worker"):
        sys.exit("usage: bench.py run [options] | bench.py worker llama|transformers ... (--help for each)")
    try:
        (run_main if sys.argv[1] == "run" else worker_main)(sys.argv[2:])
    except BenchError as e:
        sys.exit(f"bench.py: {e}")


if __name__ == "__main__":
    main()
