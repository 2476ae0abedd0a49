#!/usr/bin/env python3
"""make_model_goldens.py: regenerates the model fixtures and golden files that the C forward pass,
safetensors loader and perplexity code are tested against. The C test suite only reads what this
writes; it never runs Python.

Makes (paths relative to the repository root):
  tests/fixtures/tiny-random-{opt,opt-postln,llama,llama-tied-bias,qwen2,bloom}/
      seeded random-weight checkpoints built with transformers (config.json + model.safetensors, fp32)
  tests/fixtures/tiny-random-llama-{f16,bf16,sharded}/
      the tiny-random-llama weights saved as F16, as BF16, and fp32 in 3 shards (+ index json)
  tests/golden/model/<name>__<case>.json + .f32
      log_softmax goldens (float32 math, eager attention) for every fixture (cases rand17, rand64: seeded
      random ids) and for the shared models tiny-opt / tiny-llama (cases sent: a short sentence,
      wiki256: the first 256 ids of the GPTQ wikitext2 string), see tests/golden/model/README.md
  tests/golden/model/ppl.json
      GPTQ-protocol perplexities of the shared models at seqlen 256 on wikitext2, ptb, ptb-new, c4, c4-new

Usage (from the repository root):
  /work/venv/bin/python tests/golden/make_model_goldens.py [--shared ../shared] [--only fixtures,logits,ppl]

Deterministic: every random draw is seeded (torch.manual_seed / random.seed); CPU float32 with 2 threads.
The ppl step takes several minutes on two cores. The dataset/window helpers below (task_text,
task_windows, score_windows, fnv1a64) are also used by benchmarks/ppl_torch.py.
"""
import argparse
import hashlib
import json
import math
import os
import random
import shutil
import sys

import numpy as np
import torch

REPO = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
FIXTURES = os.path.join(REPO, "tests", "fixtures")
GOLDEN = os.path.join(REPO, "tests", "golden", "model")

WIKI_CHARS = 1294336
WIKI_SHA_PREFIX = "696cca6b65a171b0"

# ---------------------------------------------------------------------------------------------
# Perplexity datasets (GPTQ datautils protocol, see ../shared/docs/PROTOCOLS.md)
# ---------------------------------------------------------------------------------------------


def _read_lines(path):
    """Lines split on '\\n' only (as Python iterates a text file without '\\r'); each keeps its '\\n'."""
    with open(path, "r", encoding="utf-8", newline="") as f:
        text = f.read()
    parts = text.split("\n")
    lines = [p + "\n" for p in parts[:-1]]
    if parts[-1] != "":
        lines.append(parts[-1])
    return lines


def wikitext2_text(data_dir):
    rows = ["" if ln == " \n" else ln for ln in _read_lines(os.path.join(data_dir, "wikitext2", "wiki.test.raw"))]
    text = "\n\n".join(rows)
    sha = hashlib.sha256(text.encode("utf-8")).hexdigest()
    if len(text) != WIKI_CHARS or not sha.startswith(WIKI_SHA_PREFIX):
        raise RuntimeError(f"wikitext2 string mismatch: {len(text)} chars sha256 {sha}")
    return text


def ptb_rows(data_dir, split):
    # HF ptb_text_only: one row per line, line.strip()
    return [ln.strip() for ln in _read_lines(os.path.join(data_dir, "ptb", f"ptb.{split}.txt"))]


def c4_val_docs(data_dir):
    with open(os.path.join(data_dir, "c4", "c4_validation_2k.jsonl"), "r", encoding="utf-8") as f:
        return [json.loads(ln)["text"] for ln in f if ln.strip()]


def task_text(task, data_dir):
    """The single joined string of a text task (GPTQ get_wikitext2 / get_ptb / get_ptb_new / get_c4_new)."""
    if task == "wikitext2":
        return wikitext2_text(data_dir)
    if task == "ptb":
        return "\n\n".join(ptb_rows(data_dir, "valid"))
    if task == "ptb-new":
        return " ".join(ptb_rows(data_dir, "test"))
    if task == "c4-new":
        return " ".join(c4_val_docs(data_dir)[:1100])
    raise ValueError(f"no single text for task {task}")


def c4_gptq_samples(tok, data_dir, seqlen, n=256):
    """GPTQ get_c4 validation: random.seed(0); 256 times: draw docs uniformly until one tokenizes to
    >= seqlen tokens, then a random start in [0, len - seqlen - 1]. Returns (windows, [(doc, start)])."""
    docs = c4_val_docs(data_dir)
    cache = {}
    random.seed(0)
    wins, picks = [], []
    for _ in range(n):
        while True:
            d = random.randint(0, len(docs) - 1)
            if d not in cache:
                cache[d] = tok(docs[d], add_special_tokens=True).input_ids
            ids = cache[d]
            if len(ids) >= seqlen:
                break
        s = random.randint(0, len(ids) - seqlen - 1)
        wins.append(ids[s:s + seqlen])
        picks.append((d, s))
    return np.asarray(wins, dtype=np.int64), picks


def task_windows(task, tok, data_dir, seqlen):
    """(windows [n_windows, seqlen] int64, n_tokens before cutting, extra info dict)."""
    info = {}
    if task == "c4":
        w, picks = c4_gptq_samples(tok, data_dir, seqlen)
        info["samples_doc_start"] = [list(p) for p in picks]
        return w, int(w.size), info
    text = task_text(task, data_dir)
    info["text_chars"] = len(text)
    info["text_sha256"] = hashlib.sha256(text.encode("utf-8")).hexdigest()
    ids = np.asarray(tok(text, add_special_tokens=True).input_ids, dtype=np.int64)
    if task == "c4-new":
        info["n_text_tokens"] = len(ids)  # the whole joined text, before GPTQ keeps the first 256*seqlen
        ids = ids[: 256 * seqlen]
    n = len(ids)
    nw = n // seqlen
    return ids[: nw * seqlen].reshape(nw, seqlen), n, info


def fnv1a64(ids):
    """FNV-1a 64-bit over the ids as int32 little-endian bytes."""
    h = 0xCBF29CE484222325
    for b in np.ascontiguousarray(ids, dtype="<i4").tobytes():
        h ^= b
        h = (h * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return h


@torch.no_grad()
def score_windows(model, windows, batch=8):
    """Per-token NLL (float64 array [n_windows, seqlen-1]) of tokens 2..seqlen given their prefix,
    each window from a fresh context, float32 math."""
    out = []
    for i in range(0, len(windows), batch):
        x = torch.from_numpy(windows[i:i + batch])
        logits = model(input_ids=x).logits.float()
        lp = torch.log_softmax(logits[:, :-1, :], dim=-1)
        nll = -lp.gather(-1, x[:, 1:].unsqueeze(-1)).squeeze(-1)
        out.append(nll.double().numpy())
    return np.concatenate(out, axis=0)


def load_fp32(path):
    from transformers import AutoModelForCausalLM

    m = AutoModelForCausalLM.from_pretrained(path, torch_dtype=torch.float32, attn_implementation="eager")
    m.eval()
    return m


# ---------------------------------------------------------------------------------------------
# Fixtures
# ---------------------------------------------------------------------------------------------


def _is_norm(mod):
    return isinstance(mod, torch.nn.LayerNorm) or type(mod).__name__.endswith("RMSNorm")


@torch.no_grad()
def randomize(model, seed):
    """Overwrite every parameter with seeded random values: norm weights U(0.5, 1.5), norm and linear
    biases N(0, 0.1), token embeddings N(0, 0.35), position embeddings N(0, 0.2), linear weights
    N(0, 1/fan_in) (untied lm_head N(0, 4/fan_in)) so logits are far from flat."""
    torch.manual_seed(seed)
    norm_params = set()
    for _, mod in model.named_modules():
        if _is_norm(mod):
            for p in mod.parameters(recurse=False):
                norm_params.add(id(p))
    emb_params = {}
    for _, mod in model.named_modules():
        if isinstance(mod, torch.nn.Embedding):
            emb_params[id(mod.weight)] = mod
    for name, p in model.named_parameters():  # tied weights appear once
        if id(p) in norm_params:
            if name.endswith("weight"):
                p.copy_(torch.rand(p.shape) + 0.5)
            else:
                p.copy_(torch.randn(p.shape) * 0.1)
        elif id(p) in emb_params:
            std = 0.2 if "position" in name else 0.35
            p.copy_(torch.randn(p.shape) * std)
        elif p.dim() == 1:
            p.copy_(torch.randn(p.shape) * 0.1)
        else:
            std = 1.0 / math.sqrt(p.shape[1])
            if name.startswith("lm_head"):
                std *= 2.0
            p.copy_(torch.randn(p.shape) * std)


def fixture_specs():
    from transformers import (BloomConfig, BloomForCausalLM, LlamaConfig, LlamaForCausalLM, OPTConfig,
                              OPTForCausalLM, Qwen2Config, Qwen2ForCausalLM)

    common_opt = dict(vocab_size=128, hidden_size=32, num_hidden_layers=2, ffn_dim=64, num_attention_heads=4,
                      max_position_embeddings=64, activation_function="relu", enable_bias=True, dropout=0.0,
                      attention_dropout=0.0, pad_token_id=1, bos_token_id=2, eos_token_id=2, tie_word_embeddings=True)
    common_llama = dict(vocab_size=128, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                        num_key_value_heads=2, intermediate_size=48, max_position_embeddings=64, rope_theta=10000.0,
                        rms_norm_eps=1e-5, hidden_act="silu", bos_token_id=1, eos_token_id=2)
    return [
        ("tiny-random-opt", OPTForCausalLM,
         OPTConfig(do_layer_norm_before=True, word_embed_proj_dim=32, **common_opt), 1001),
        ("tiny-random-opt-postln", OPTForCausalLM,
         OPTConfig(do_layer_norm_before=False, word_embed_proj_dim=16, **common_opt), 1002),
        ("tiny-random-llama", LlamaForCausalLM,
         LlamaConfig(tie_word_embeddings=False, attention_bias=False, mlp_bias=False, **common_llama), 1003),
        ("tiny-random-llama-tied-bias", LlamaForCausalLM,
         LlamaConfig(tie_word_embeddings=True, attention_bias=True, mlp_bias=False, **common_llama), 1004),
        ("tiny-random-qwen2", Qwen2ForCausalLM,
         Qwen2Config(vocab_size=128, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                     num_key_value_heads=2, intermediate_size=48, max_position_embeddings=64, rope_theta=10000.0,
                     rms_norm_eps=1e-6, hidden_act="silu", tie_word_embeddings=False, use_sliding_window=False,
                     bos_token_id=1, eos_token_id=2), 1005),
        ("tiny-random-bloom", BloomForCausalLM,
         BloomConfig(vocab_size=128, hidden_size=32, n_layer=2, n_head=4, layer_norm_epsilon=1e-5,
                     apply_residual_connection_post_layernorm=False, hidden_dropout=0.0, attention_dropout=0.0,
                     tie_word_embeddings=True, bos_token_id=1, eos_token_id=2, pad_token_id=3), 1006),
    ]


def _save(model, path, **kw):
    if os.path.isdir(path):
        shutil.rmtree(path)
    model.save_pretrained(path, safe_serialization=True, **kw)
    gc = os.path.join(path, "generation_config.json")
    if os.path.exists(gc):
        os.remove(gc)


def make_fixtures():
    os.makedirs(FIXTURES, exist_ok=True)
    for name, cls, cfg, seed in fixture_specs():
        torch.manual_seed(seed)
        cfg._attn_implementation = "eager"
        model = cls(cfg).eval()
        randomize(model, seed)
        _save(model, os.path.join(FIXTURES, name))
        if name == "tiny-random-llama":
            _save(model, os.path.join(FIXTURES, name + "-sharded"), max_shard_size="40KB")
            m16 = cls(cfg).eval()
            m16.load_state_dict(model.state_dict())
            _save(m16.to(torch.float16), os.path.join(FIXTURES, name + "-f16"))
            mbf = cls(cfg).eval()
            mbf.load_state_dict(model.state_dict())
            _save(mbf.to(torch.bfloat16), os.path.join(FIXTURES, name + "-bf16"))
        print("fixture", name, flush=True)


FIXTURE_NAMES = ["tiny-random-opt", "tiny-random-opt-postln", "tiny-random-llama", "tiny-random-llama-tied-bias",
                 "tiny-random-qwen2", "tiny-random-bloom", "tiny-random-llama-f16", "tiny-random-llama-bf16",
                 "tiny-random-llama-sharded"]

# ---------------------------------------------------------------------------------------------
# Logit goldens
# ---------------------------------------------------------------------------------------------

SENTENCE = ("the company said it expects to report a loss for the third quarter because of higher "
            "costs and weaker demand .")


@torch.no_grad()
def write_case(name, case, model_ref, model, ids, cols, extra=None):
    x = torch.tensor([ids], dtype=torch.long)
    logits = model(input_ids=x).logits[0].float()
    lp = torch.log_softmax(logits, dim=-1)
    T, V = lp.shape
    nll = -lp[:-1].gather(-1, x[0, 1:].unsqueeze(-1)).squeeze(-1).double()
    sub = lp if cols is None else lp[:, torch.tensor(cols, dtype=torch.long)]
    fname = f"{name}__{case}.f32"
    sub.contiguous().numpy().astype("<f4").tofile(os.path.join(GOLDEN, fname))
    d = {"model": model_ref, "case": case, "ids": list(map(int, ids)), "T": int(T), "vocab": int(V),
         "cols": cols, "nll_sum": float(nll.sum().item()), "argmax": lp.argmax(-1).tolist(),
         "logprobs_file": fname}
    if extra:
        d.update(extra)
    with open(os.path.join(GOLDEN, f"{name}__{case}.json"), "w") as f:
        json.dump(d, f, separators=(",", ":"))
        f.write("\n")
    top = lp.exp().max(-1).values.mean().item()
    print(f"golden {name}__{case}: T={T} nll/tok={nll.mean().item():.4f} mean top-p={top:.3f}", flush=True)


def make_logit_goldens(shared):
    os.makedirs(GOLDEN, exist_ok=True)
    for name in FIXTURE_NAMES:
        path = os.path.join(FIXTURES, name)
        model = load_fp32(path)
        V = model.config.vocab_size
        for T in (17, 64):
            # same ids for every fixture (all have vocab 128): llama, -f16, -bf16, -sharded are comparable
            g = torch.Generator().manual_seed(2000 + T)
            ids = torch.randint(0, V, (T,), generator=g).tolist()
            write_case(name, f"rand{T}", f"fixtures/{name}", model, ids, None)
    from transformers import AutoTokenizer

    data_dir = os.path.join(shared, "datasets")
    wiki = wikitext2_text(data_dir)
    for mname in ("tiny-opt", "tiny-llama"):
        mpath = os.path.join(shared, "models", mname)
        tok = AutoTokenizer.from_pretrained(mpath)
        tok.model_max_length = 1 << 30  # whole-text tokenization is intended; silence the length warning
        model = load_fp32(mpath)
        V = model.config.vocab_size
        base = [j for j in range(V) if j % 61 == 0]
        sent_ids = tok(SENTENCE, add_special_tokens=True).input_ids
        wiki_ids = tok(wiki, add_special_tokens=True).input_ids[:256]
        for case, ids, extra in (("sent", sent_ids, {"text": SENTENCE}),
                                 ("wiki256", wiki_ids, {"text_source": "first 256 ids of the GPTQ wikitext2 string"})):
            cols = sorted(set(base) | set(ids[1:]))
            write_case(mname, case, f"shared:{mname}", model, ids, cols, extra)


# ---------------------------------------------------------------------------------------------
# Perplexity goldens
# ---------------------------------------------------------------------------------------------

PPL_TASKS = ["wikitext2", "ptb", "ptb-new", "c4", "c4-new"]


def make_ppl(shared, seqlen=256, batch=8):
    from transformers import AutoTokenizer

    data_dir = os.path.join(shared, "datasets")
    out = {"protocol": "GPTQ datautils perplexity, float32 transformers eager, see tests/golden/model/README.md",
           "seqlen": seqlen, "models": {}}
    for mname in ("tiny-opt", "tiny-llama"):
        mpath = os.path.join(shared, "models", mname)
        tok = AutoTokenizer.from_pretrained(mpath)
        tok.model_max_length = 1 << 30  # whole-text tokenization is intended; silence the length warning
        model = load_fp32(mpath)
        res = {}
        for task in PPL_TASKS:
            w, n_tokens, info = task_windows(task, tok, data_dir, seqlen)
            nll = score_windows(model, w, batch=batch)
            flat = nll.reshape(-1)
            s = float(flat.sum())
            r = {"n_tokens": int(n_tokens), "n_windows": int(w.shape[0]), "n_scored": int(flat.size),
                 "nll_sum": s, "mean_nll": s / flat.size, "ppl": math.exp(s / flat.size),
                 "nll_sem": float(flat.std(ddof=1) / math.sqrt(flat.size)),
                 "window_ids_fnv1a64": f"{fnv1a64(w):016x}",
                 "first_window_head": w[0, :8].tolist()}
            r.update(info)
            res[task] = r
            print(f"ppl {mname} {task}: n_tokens={n_tokens} windows={w.shape[0]} ppl={r['ppl']:.4f} "
                  f"sem={r['nll_sem']:.5f}", flush=True)
        out["models"][mname] = {"model": f"shared:{mname}", "tasks": res}
    with open(os.path.join(GOLDEN, "ppl.json"), "w") as f:
        json.dump(out, f, indent=1)
        f.write("\n")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--shared", default=os.path.join(REPO, "..", "shared"),
                    help="shared data folder (models/, datasets/); default ../shared relative to the repo")
    ap.add_argument("--only", default="fixtures,logits,ppl", help="comma list of steps: fixtures,logits,ppl")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    shared = os.path.abspath(args.shared)
    steps = set(args.only.split(","))
    os.makedirs(GOLDEN, exist_ok=True)
    if "fixtures" in steps:
        make_fixtures()
    if "logits" in steps:
        make_logit_goldens(shared)
    if "ppl" in steps:
        make_ppl(shared)


if __name__ == "__main__":
    main()
