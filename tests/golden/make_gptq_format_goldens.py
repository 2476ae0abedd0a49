#!/usr/bin/env python3
# make_gptq_format_goldens.py: goldens for tests/test_gptq_format.c (GPTQ-format export and import).
#
# Two kinds of case, listed in tests/golden/gptq_format/cases.json:
#   export  a normtweak checkpoint (our RTN of a tests/fixtures model, made with `normtweak quantize`) is stored as
#           NAME/; `normtweak export --format gptq` converts it, transformers (optimum + AutoGPTQ) loads the export and
#           its logits for `tokens` are stored as NAME.logits.f32 (T, vocab). The C test compares them with our
#           dequantized model's logits, and checks export -> import gives bit-identical weights.
#   import  a GPTQ checkpoint packed by AutoGPTQ itself (auto_gptq's QuantLinear.pack, act-order g_idx from a random
#           column order per linear, AutoGPTQ's quantize_config.json without checkpoint_format) is stored as NAME/,
#           with transformers' logits. The C test imports it, compares logits, and checks that our export of the
#           import reproduces AutoGPTQ's qweight/qzeros/scales/g_idx byte for byte. One case has a "gptq_v2" twin
#           (NAME_v2/: the same tensors with qzeros holding the zero point itself, as GPTQModel's v2 format),
#           which transformers 4.46 cannot load; the C test checks it dequantizes to the same weights.
# transformers loads with torch_dtype float32 on CPU, so AutoGPTQ's torch fallback dequantizes exactly like ours
# (fp16 scales times small integers is exact in fp32).
#
# Rerun (from the repository root, with normtweak built; needs transformers, optimum and auto-gptq in the venv):
#   /work/venv/bin/python tests/golden/make_gptq_format_goldens.py build-gf/normtweak
import json
import os
import shutil
import subprocess
import sys
import tempfile

import numpy as np
import torch
from safetensors.torch import load_file, save_file

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OUT = os.path.join(ROOT, "tests", "golden", "gptq_format")
TOKENS = [5, 42, 79, 116, 25, 62, 99, 8]

# (name, fixture, bits, group, sym)
EXPORT_CASES = [
    ("opt_b2_g32", "tiny-random-opt", 2, 32, False),
    ("opt_b3_g32", "tiny-random-opt", 3, 32, False),
    ("opt_b4_gch", "tiny-random-opt", 4, -1, False),
    ("opt_b8_g32_sym", "tiny-random-opt", 8, 32, True),
    ("bloom_b4_g32", "tiny-random-bloom", 4, 32, False),
]
# (name, fixture, bits, group, sym, v2 twin)
IMPORT_CASES = [
    ("autogptq_opt_b2_g32_act", "tiny-random-opt", 2, 32, False, False),
    ("autogptq_opt_b3_g32_act", "tiny-random-opt", 3, 32, False, True),
    ("autogptq_opt_b4_g32_act_sym", "tiny-random-opt", 4, 32, True, False),
    ("autogptq_opt_b8_gch_act", "tiny-random-opt", 8, -1, False, False),
]
OPT_LINEARS = ["self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.out_proj", "fc1", "fc2"]


def transformers_logits(d, bits):
    from transformers import AutoModelForCausalLM, GPTQConfig

    m, info = AutoModelForCausalLM.from_pretrained(
        d,
        torch_dtype=torch.float32,
        device_map="cpu",
        quantization_config=GPTQConfig(bits=bits, use_exllama=False),
        output_loading_info=True,
    )
    bad = {k: v for k, v in info.items() if v}
    assert not bad, f"{d}: transformers reports {bad}"
    n_q = sum(1 for mod in m.modules() if type(mod).__name__ == "QuantLinear")
    assert n_q > 0, f"{d}: no QuantLinear modules"
    with torch.no_grad():
        logits = m(torch.tensor([TOKENS])).logits[0].float()
    print(f"  {os.path.basename(d)}: {n_q} QuantLinear ({type(next(mod for mod in m.modules() if type(mod).__name__ == 'QuantLinear')).__module__})")
    return logits.numpy()


def copy_ckpt(src, dst):
    os.makedirs(dst, exist_ok=True)
    for f in ("config.json", "quantize_config.json", "model.safetensors"):
        shutil.copy(os.path.join(src, f), os.path.join(dst, f))


def make_export_case(nt, tmp, name, fixture, bits, group, sym):
    q = os.path.join(tmp, name)
    g = os.path.join(tmp, name + "_gptq")
    cmd = [nt, "quantize", "--model", os.path.join(ROOT, "tests", "fixtures", fixture), "--method", "rtn",
           "--wbits", str(bits), "--group", str(group), "--out", q] + (["--sym"] if sym else [])
    subprocess.run(cmd, check=True)
    subprocess.run([nt, "export", "--model", q, "--format", "gptq", "--out", g], check=True)
    copy_ckpt(q, os.path.join(OUT, name))
    return transformers_logits(g, bits)


# ------------------------------------------------------------------------------------- AutoGPTQ-packed checkpoints
def quantize_act_order(W, bits, group, sym, gen):
    """Per group of a random column order: min/max params, codes, fake-quantized W; fp16 scales."""
    N, K = W.shape
    maxq = 2**bits - 1
    group = K if group == -1 else group
    perm = torch.randperm(K, generator=gen)
    g_idx = torch.empty(K, dtype=torch.int32)
    g_idx[perm] = torch.arange(K, dtype=torch.int32) // group
    G = K // group
    scales = torch.empty(N, G)
    zeros = torch.empty(N, G)
    for g in range(G):
        x = W[:, g_idx == g]
        xmin = torch.minimum(x.min(1)[0], torch.zeros(N))
        xmax = torch.maximum(x.max(1)[0], torch.zeros(N))
        if sym:
            xmax = torch.maximum(xmin.abs(), xmax)
            xmin = -xmax
        s = ((xmax - xmin) / maxq).half().float()  # stored as fp16: use exactly those values
        z = torch.full([N], float((maxq + 1) // 2)) if sym else torch.clamp(torch.round(-xmin / s), 1, maxq)
        scales[:, g], zeros[:, g] = s, z  # zero >= 1: v1 ("zero - 1") cannot hold 0
    s_k, z_k = scales[:, g_idx.long()], zeros[:, g_idx.long()]
    codes = torch.clamp(torch.round(W / s_k) + z_k, 0, maxq)
    return s_k * (codes - z_k), scales, zeros, g_idx  # exact in fp32: pack() recovers the codes exactly


def pack_autogptq(src, dst, bits, group, sym, seed):
    from auto_gptq.nn_modules.qlinear.qlinear_cuda import QuantLinear

    gen = torch.Generator().manual_seed(seed)
    sd = load_file(os.path.join(src, "model.safetensors"))
    cfg = json.load(open(os.path.join(src, "config.json")))
    out = {}
    for name, t in sd.items():
        base = name[: -len(".weight")]
        if name.endswith(".weight") and any(base.endswith(l) for l in OPT_LINEARS) and ".layers." in name:
            W = t.float()
            N, K = W.shape
            Wq, scales, zeros, g_idx = quantize_act_order(W, bits, group, sym, gen)
            lin = torch.nn.Linear(K, N, bias=False)
            lin.weight.data = Wq
            ql = QuantLinear(bits, group, K, N, bias=False, weight_dtype=torch.float32)
            ql.pack(lin, scales, zeros, g_idx)
            out[base + ".qweight"] = ql.qweight.contiguous()
            out[base + ".qzeros"] = ql.qzeros.contiguous()
            out[base + ".scales"] = ql.scales.half().contiguous()
            out[base + ".g_idx"] = ql.g_idx.to(torch.int32).contiguous()
        else:
            out[name] = t.contiguous()
    os.makedirs(dst, exist_ok=True)
    save_file(out, os.path.join(dst, "model.safetensors"), metadata={"format": "pt"})
    qc = {"bits": bits, "group_size": group, "damp_percent": 0.01, "desc_act": True, "static_groups": False,
          "sym": sym, "true_sequential": True, "model_name_or_path": None, "model_file_base_name": None,
          "is_marlin_format": False, "quant_method": "gptq"}  # AutoGPTQ 0.7's to_dict: no checkpoint_format
    cfg["quantization_config"] = dict(qc)
    json.dump(cfg, open(os.path.join(dst, "config.json"), "w"), indent=2)
    json.dump(qc, open(os.path.join(dst, "quantize_config.json"), "w"), indent=2)


def to_v2(src, dst, bits):
    """The same checkpoint with qzeros holding the zero point itself (GPTQModel's gptq_v2)."""
    os.makedirs(dst, exist_ok=True)
    sd = load_file(os.path.join(src, "model.safetensors"))
    mask = (1 << bits) - 1
    for name in [n for n in sd if n.endswith(".qzeros")]:
        words = sd[name].numpy().view(np.uint32)
        G, W = words.shape
        # each row is one little-endian bit stream with field n at bit bits*n
        stream = [sum(int(w) << (32 * i) for i, w in enumerate(row)) for row in words]
        n_fields = W * 32 // bits
        rows = []
        for v in stream:
            fields = [((v >> (bits * n)) & mask) + 1 for n in range(n_fields)]
            assert max(fields) <= mask
            nv = sum(f << (bits * n) for n, f in enumerate(fields))
            rows.append([(nv >> (32 * i)) & 0xFFFFFFFF for i in range(W)])
        sd[name] = torch.from_numpy(np.array(rows, dtype=np.uint32).view(np.int32).reshape(G, W))
    save_file(sd, os.path.join(dst, "model.safetensors"), metadata={"format": "pt"})
    for f in ("config.json", "quantize_config.json"):
        c = json.load(open(os.path.join(src, f)))
        q = c["quantization_config"] if f == "config.json" else c
        q["checkpoint_format"] = "gptq_v2"
        json.dump(c, open(os.path.join(dst, f), "w"), indent=2)


def main():
    nt = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "build", "normtweak"))
    shutil.rmtree(OUT, ignore_errors=True)
    os.makedirs(OUT)
    cases = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, fixture, bits, group, sym in EXPORT_CASES:
            logits = make_export_case(nt, tmp, name, fixture, bits, group, sym)
            logits.astype("<f4").tofile(os.path.join(OUT, name + ".logits.f32"))
            cases.append({"name": name, "kind": "export", "fixture": fixture, "bits": bits, "group_size": group,
                          "sym": sym, "desc_act": False, "vocab": logits.shape[1]})
        for i, (name, fixture, bits, group, sym, v2) in enumerate(IMPORT_CASES):
            d = os.path.join(OUT, name)
            pack_autogptq(os.path.join(ROOT, "tests", "fixtures", fixture), d, bits, group, sym, seed=1234 + i)
            logits = transformers_logits(d, bits)
            logits.astype("<f4").tofile(os.path.join(OUT, name + ".logits.f32"))
            cases.append({"name": name, "kind": "import", "fixture": fixture, "bits": bits, "group_size": group,
                          "sym": sym, "desc_act": True, "vocab": logits.shape[1], "v2": name + "_v2" if v2 else None})
            if v2:
                to_v2(d, d + "_v2", bits)
    json.dump({"tokens": TOKENS, "cases": cases}, open(os.path.join(OUT, "cases.json"), "w"), indent=1)
    print(f"wrote {len(cases)} cases to {OUT}")


if __name__ == "__main__":
    main()
