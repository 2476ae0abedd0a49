#!/usr/bin/env python3
"""make_gguf_goldens.py: goldens for the GGUF reader and dequantizers (tests/test_gguf.c) and for the GGUF model
loader (tests/test_gguf_model.c), all from gguf-py (PyPI `gguf`) and transformers, into tests/golden/gguf/.

Parts (default: all):
  synthetic  synthetic.gguf: written by gguf-py's GGUFWriter: one (2, 512) tensor of each type normtweak
             dequantizes (F32 F16 BF16 Q4_0 Q4_1 Q5_0 Q5_1 Q8_0 Q2_K Q3_K Q4_K Q5_K Q6_K), random block bytes
             (numpy seed 12) whose fp16 scale fields are random *finite* fp16 bit patterns (normals, subnormals,
             zeros, up to 65504) and whose float tensors are random finite values; plus metadata of every type
             (the values are listed in META below and checked by the C test). synthetic.f32: gguf-py's
             `gguf.quants.dequantize` of each tensor, in file order, raw little-endian float32.
  model      smollm2_tensors.json + smollm2_rows.f32, from the SmolLM2-135M-Instruct Q4_1 GGUF: for every
             tensor its type, dims and a checksum of its whole gguf-py dequantization (sum over i of
             bits(x[i]) * (2i + 1) mod 2^64, bits = the float32's bit pattern: any flipped bit changes it),
             and the full values of a few rows of token_embd (Q8_0), two Q4_1 linears and two F32 norms.
  logits     smollm2_logits.json + smollm2_ids.i32 + smollm2_logp.f32 + smollm2_rowlogp.f32: transformers' fp32
             forward of the same GGUF (AutoModelForCausalLM.from_pretrained(..., gguf_file=...,
             tie_word_embeddings=True): 4.46 otherwise reads tie_word_embeddings false and leaves lm_head random)
             on two 2048-token windows of WikiText-2 test (wiki.test.raw tokenized by HF `tokenizers` with
             ../shared/tokenizers/smollm2/tokenizer.json, no special tokens; windows at token 0 and 40 * 2048):
             the ids, the log-probability of each actual next token at every position, and at a few positions
             the full log-softmax over 256 of the vocabulary (the 128 most likely tokens and 128 random ones).
             First it checks that transformers' weights equal gguf-py's dequantization with llama.cpp's Q/K
             row permutation undone (the same weights the C loader must produce), and stops if not.

Usage (from the repository root, with the venv that has gguf, transformers==4.46.3, torch, accelerate):
  /work/venv-oracle/bin/python tests/golden/make_gguf_goldens.py [synthetic|model|logits] [--gguf FILE]
"""
import argparse
import json
import os
import sys

import numpy as np

import gguf
from gguf import GGMLQuantizationType as T

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
OUT = os.path.join(HERE, "gguf")
SMOLLM2 = os.path.join(ROOT, "models", "SmolLM2-135M-Instruct.Q4_1.gguf")

# byte offsets of the fp16 scale fields in one block of each type (the C reader's layouts: base/ggml_quants.c)
SCALE_FIELDS = {
    T.Q4_0: [0], T.Q4_1: [0, 2], T.Q5_0: [0], T.Q5_1: [0, 2], T.Q8_0: [0],
    T.Q2_K: [80, 82], T.Q3_K: [108], T.Q4_K: [0, 2], T.Q5_K: [0, 2], T.Q6_K: [208],
}
ORDER = [T.F32, T.F16, T.BF16, T.Q4_0, T.Q4_1, T.Q5_0, T.Q5_1, T.Q8_0, T.Q2_K, T.Q3_K, T.Q4_K, T.Q5_K, T.Q6_K]
ROWS, COLS = 2, 512

# metadata written into synthetic.gguf; tests/test_gguf.c checks the same values
META = [
    ("test.u8", "uint8", 250), ("test.i8", "int8", -7), ("test.u16", "uint16", 60000), ("test.i16", "int16", -300),
    ("test.u32", "uint32", 3000000000), ("test.i32", "int32", -123456789), ("test.f32", "float32", 0.125),
    ("test.bool", "bool", True), ("test.str", "string", "synthetic"), ("test.u64", "uint64", 2**63 + 5),
    ("test.i64", "int64", -(2**40)), ("test.f64", "float64", 3.5e-300),
    ("test.arr_i32", "array", [3, -1, 2147483647]), ("test.arr_str", "array", ["a", "", "\u00e9t\u00e9"]),
    ("test.arr_f32", "array", [0.5, -1.5]),
]


def finite_f16_bits(rng, n):
    """n random fp16 bit patterns that are finite (exponent field != 31)."""
    out = np.empty(n, dtype=np.uint16)
    k = 0
    while k < n:
        v = rng.integers(0, 65536, size=n, dtype=np.uint32).astype(np.uint16)
        v = v[(v & 0x7C00) != 0x7C00]
        m = min(n - k, v.size)
        out[k:k + m] = v[:m]
        k += m
    return out


def synthetic_tensor(rng, qtype):
    """(2, 512) values of qtype as the raw bytes the file stores: uint8 (2, bytes_per_row)."""
    block, tsize = gguf.GGML_QUANT_SIZES[qtype]
    if qtype == T.F32:
        return (rng.standard_normal((ROWS, COLS)) * 3).astype(np.float32).view(np.uint8)
    if qtype == T.F16:
        return finite_f16_bits(rng, ROWS * COLS).reshape(ROWS, COLS).view(np.uint8)
    if qtype == T.BF16:
        f = (rng.standard_normal((ROWS, COLS)) * 100).astype(np.float32)
        return (f.view(np.uint32) >> 16).astype(np.uint16).view(np.uint8)  # truncated: finite
    nb = ROWS * COLS // block
    raw = rng.integers(0, 256, size=(nb, tsize), dtype=np.uint32).astype(np.uint8)
    for off in SCALE_FIELDS[qtype]:
        raw[:, off:off + 2] = finite_f16_bits(rng, nb).view(np.uint8).reshape(nb, 2)
    return raw.reshape(ROWS, -1)


def make_synthetic():
    rng = np.random.default_rng(12)
    path = os.path.join(OUT, "synthetic.gguf")
    w = gguf.GGUFWriter(path, "synthetic")
    for key, kind, val in META:
        if kind == "array":
            w.add_array(key, val)
        else:
            getattr(w, "add_" + kind)(key, val)
    expected = []
    for qtype in ORDER:
        raw = synthetic_tensor(rng, qtype)
        w.add_tensor(qtype.name.lower(), raw, raw_dtype=qtype)
        deq = np.asarray(gguf.quants.dequantize(raw, qtype), dtype=np.float32).reshape(ROWS, COLS)
        assert np.isfinite(deq).all(), qtype
        expected.append(deq)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    np.concatenate([e.reshape(-1) for e in expected]).astype("<f4").tofile(os.path.join(OUT, "synthetic.f32"))
    print(f"wrote {path} ({os.path.getsize(path)} bytes) and synthetic.f32 ({len(ORDER)} tensors)")


def checksum(x):
    bits = np.ascontiguousarray(x, dtype=np.float32).reshape(-1).view(np.uint32).astype(np.uint64)
    idx = np.arange(bits.size, dtype=np.uint64) * np.uint64(2) + np.uint64(1)
    with np.errstate(over="ignore"):
        return int((bits * idx).sum(dtype=np.uint64))


MODEL_ROWS = [  # (tensor, rows): the rows stored in full
    ("token_embd.weight", [0, 1, 2, 12345, 49151]),
    ("blk.0.attn_k.weight", [0, 1, 191]),
    ("blk.29.ffn_down.weight", [0, 575]),
    ("blk.0.attn_norm.weight", [0]),
    ("output_norm.weight", [0]),
]


def deq_tensor(t):
    return np.asarray(gguf.quants.dequantize(t.data, t.tensor_type), dtype=np.float32)


def make_model(path):
    r = gguf.GGUFReader(path)
    tensors = []
    for t in r.tensors:
        x = deq_tensor(t)
        tensors.append({"name": t.name, "type": int(t.tensor_type), "dims": [int(d) for d in t.shape],
                        "checksum": str(checksum(x))})
    rows, vals = [], []
    by_name = {t.name: t for t in r.tensors}
    for name, idx in MODEL_ROWS:
        x = deq_tensor(by_name[name])
        x = x.reshape(-1, int(by_name[name].shape[0]))
        rows.append({"name": name, "rows": idx})
        vals.append(x[idx].reshape(-1))
    with open(os.path.join(OUT, "smollm2_tensors.json"), "w") as f:
        json.dump({"file": os.path.basename(path), "size": os.path.getsize(path), "n_tensors": len(tensors),
                   "tensors": tensors, "rows": rows}, f, indent=0)
    np.concatenate(vals).astype("<f4").tofile(os.path.join(OUT, "smollm2_rows.f32"))
    print(f"wrote smollm2_tensors.json ({len(tensors)} tensors) and smollm2_rows.f32")


SEQLEN = 2048
WINDOW_STARTS = [0, 40 * SEQLEN]
ROW_POSITIONS = [(0, 0), (0, 1000), (0, SEQLEN - 2), (1, SEQLEN - 2)]  # (window, position) of the full rows
N_TOP, N_RANDOM = 128, 128


def unpermute(w, n_head):
    """Undo llama.cpp's convert_hf_to_gguf permutation of Q/K rows: GGUF row h*hd + 2i + s is HF row h*hd + s*hd/2 + i."""
    rows = w.shape[0]
    hd = rows // n_head
    return w.reshape(n_head, hd // 2, 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


HF_NAMES = {"attn_q": "self_attn.q_proj", "attn_k": "self_attn.k_proj", "attn_v": "self_attn.v_proj",
            "attn_output": "self_attn.o_proj", "ffn_gate": "mlp.gate_proj", "ffn_up": "mlp.up_proj",
            "ffn_down": "mlp.down_proj", "attn_norm": "input_layernorm", "ffn_norm": "post_attention_layernorm"}


def hf_name(gguf_name):
    if gguf_name == "token_embd.weight":
        return "model.embed_tokens.weight"
    if gguf_name == "output_norm.weight":
        return "model.norm.weight"
    if gguf_name == "output.weight":
        return "lm_head.weight"
    _, layer, part, suffix = gguf_name.split(".")
    return f"model.layers.{layer}.{HF_NAMES[part]}.{suffix}"


def make_logits(args):
    import torch
    import tokenizers
    from transformers import AutoModelForCausalLM

    torch.set_num_threads(max(1, (os.cpu_count() or 2)))
    r = gguf.GGUFReader(args.gguf)
    n_head = int(r.fields["llama.attention.head_count"].contents())
    n_kv = int(r.fields["llama.attention.head_count_kv"].contents())
    model = AutoModelForCausalLM.from_pretrained(os.path.dirname(os.path.abspath(args.gguf)),
                                                 gguf_file=os.path.basename(args.gguf), torch_dtype=torch.float32,
                                                 tie_word_embeddings=True)
    model.eval()
    sd = model.state_dict()
    worst = 0.0
    for t in r.tensors:
        x = deq_tensor(t).reshape([int(d) for d in reversed(t.shape)])  # numpy order (out, in)
        if ".attn_q." in t.name:
            x = unpermute(x, n_head)
        elif ".attn_k." in t.name:
            x = unpermute(x, n_kv)
        y = sd[hf_name(t.name)].numpy()
        assert y.shape == x.shape, (t.name, y.shape, x.shape)
        worst = max(worst, float(np.abs(y - x).max()))
    assert np.array_equal(sd["lm_head.weight"].numpy(), sd["model.embed_tokens.weight"].numpy()), "lm_head not tied"
    print(f"transformers' weights vs gguf-py dequantized + unpermuted: max |diff| = {worst}")
    if worst != 0.0:
        sys.exit("transformers does not hold the exact dequantized weights: refusing to make goldens")

    tok = tokenizers.Tokenizer.from_file(os.path.join(ROOT, "..", "shared", "tokenizers", "smollm2", "tokenizer.json"))
    with open(os.path.join(ROOT, "..", "shared", "datasets", "wikitext2", "wiki.test.raw"), encoding="utf-8") as f:
        text = f.read()
    ids = tok.encode(text, add_special_tokens=False).ids
    windows = [ids[s:s + SEQLEN] for s in WINDOW_STARTS]
    assert all(len(w) == SEQLEN for w in windows)
    rng = np.random.default_rng(7)
    logp_next, row_ids, row_vals = [], [], []
    lsm = []
    with torch.no_grad():
        for w in windows:
            logits = model(torch.tensor([w])).logits[0].double()
            ls = torch.log_softmax(logits, dim=-1).numpy()
            lsm.append(ls)
            logp_next.append(ls[np.arange(SEQLEN - 1), np.array(w[1:])])
    for wi, pos in ROW_POSITIONS:
        ls = lsm[wi][pos]
        top = np.argsort(-ls)[:N_TOP]
        rest = np.setdiff1d(np.arange(ls.size), top)
        pick = np.concatenate([top, rng.choice(rest, N_RANDOM, replace=False)]).astype(np.int32)
        row_ids.append(pick)
        row_vals.append(ls[pick])
    np.array(windows, dtype="<i4").tofile(os.path.join(OUT, "smollm2_ids.i32"))
    np.concatenate(logp_next).astype("<f4").tofile(os.path.join(OUT, "smollm2_logp.f32"))
    np.concatenate(row_vals).astype("<f4").tofile(os.path.join(OUT, "smollm2_rowlogp.f32"))
    meta = {"file": os.path.basename(args.gguf), "seqlen": SEQLEN, "window_starts": WINDOW_STARTS,
            "rows": [{"window": wi, "pos": pos, "ids": [int(i) for i in pick]}
                     for (wi, pos), pick in zip(ROW_POSITIONS, row_ids)],
            "mean_nll": [float(-lp.mean()) for lp in logp_next]}
    with open(os.path.join(OUT, "smollm2_logits.json"), "w") as f:
        json.dump(meta, f)
    print(f"wrote smollm2_logits.json, smollm2_ids.i32, smollm2_logp.f32, smollm2_rowlogp.f32; "
          f"mean NLL per window {meta['mean_nll']}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("part", nargs="?", default="all", choices=["all", "synthetic", "model", "logits"])
    ap.add_argument("--gguf", default=SMOLLM2)
    args = ap.parse_args()
    os.makedirs(OUT, exist_ok=True)
    if args.part in ("all", "synthetic"):
        make_synthetic()
    if args.part in ("all", "model"):
        make_model(args.gguf)
    if args.part in ("all", "logits"):
        make_logits(args)


if __name__ == "__main__":
    main()
