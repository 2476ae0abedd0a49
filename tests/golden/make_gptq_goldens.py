#!/usr/bin/env python3
# make_gptq_goldens.py: goldens for tests/test_quant.c (RTN) and tests/test_gptq.c (GPTQ, Hessian accumulation).
#
# A straightforward PyTorch (float32, CPU) transcription of GPTQ's Quantizer (IST-DASLab/gptq quant.py: min/max,
# sym/asym, all-zero rows, MSE clipping search), of RTN per channel and per group, of add_batch (the running-average
# Hessian) and of fasterquant (dead columns, act-order, static groups, dampening, Cholesky inverse, lazy batches,
# groups formed on the fly from W, not W1), written from the paper and the reference's semantics. It stores
# inputs and outputs as raw little-endian files under tests/golden/gptq/ with an index, cases.json:
#   *.f32  float32 arrays, row-major (shapes in cases.json)
#   *.bin  one case's output: codes uint8 (out, in) | scale f32 (n_groups, out) | zero f32 (n_groups, out)
#          | g_idx int32 (in); the dequantized W is scale[g_idx[k]][n] * (code - zero[g_idx[k]][n]) exactly
# The groups need not divide the input dimension: the last one is then shorter (rtn_partial, input C: K = 576,
# SmolLM2's hidden size, with groups of 128), as the reference's W[:, i:i+groupsize] slices truncate.
# The random inputs depend on torch's generator: the committed cases A, B and the RTN set were drawn with the
# torch of the session that first made them; rtn_partial and C with torch 2.15. A rerun with another torch draws
# other (equally valid) inputs and rewrites every file consistently; the C tests follow cases.json.
# Rerun (from the repository root; deterministic, needs only torch):
#   /work/venv/bin/python tests/golden/make_gptq_goldens.py
import json
import os

import numpy as np
import torch

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "gptq")


# ------------------------------------------------------------------------------------------------ quantizer
class Quantizer:
    """GPTQ's Quantizer in weight mode, per row of a 2-D x."""

    def __init__(self, bits, sym, mse=False, norm=2.4, grid=100, maxshrink=0.8):
        self.bits, self.maxq, self.sym, self.mse = bits, 2**bits - 1, sym, mse
        self.norm, self.grid, self.maxshrink = norm, grid, maxshrink

    def find_params(self, x):
        maxq = torch.tensor(float(self.maxq))
        zeros = torch.zeros(x.shape[0])
        xmin = torch.minimum(x.min(1)[0], zeros)
        xmax = torch.maximum(x.max(1)[0], zeros)
        if self.sym:
            xmax = torch.maximum(torch.abs(xmin), xmax)
            neg = xmin < 0
            xmin[neg] = -xmax[neg]
        both0 = (xmin == 0) & (xmax == 0)
        xmin[both0] = -1
        xmax[both0] = +1
        scale = (xmax - xmin) / maxq
        if self.sym:
            zero = torch.full_like(scale, (self.maxq + 1) / 2)
        else:
            zero = torch.round(-xmin / scale)
        if self.mse:
            best = torch.full([x.shape[0]], float("inf"))
            for i in range(int(self.maxshrink * self.grid)):
                p = 1 - i / self.grid
                xmin1, xmax1 = p * xmin, p * xmax
                scale1 = (xmax1 - xmin1) / maxq
                zero1 = torch.round(-xmin1 / scale1) if not self.sym else zero
                _, q = quantize(x, scale1.unsqueeze(1), zero1.unsqueeze(1), self.maxq)
                err = (q - x).abs().pow(self.norm).sum(1)
                better = err < best
                best[better] = err[better]
                scale[better] = scale1[better]
                zero = zero.clone()
                zero[better] = zero1[better]
        self.scale, self.zero = scale, zero
        return scale, zero


def quantize(x, scale, zero, maxq):
    """GPTQ's quantize(), split into the integer code and its dequantized value."""
    code = torch.clamp(torch.round(x / scale) + zero, 0, maxq)
    return code, scale * (code - zero)


# -------------------------------------------------------------------------------------------------- RTN
def rtn(W, bits, group_size, sym, mse):
    out, in_ = W.shape
    gs = group_size if group_size > 0 else in_
    qz = Quantizer(bits, sym, mse)
    codes, scales, zeros = torch.zeros(out, in_), [], []
    for g in range((in_ + gs - 1) // gs):  # the last group is shorter when gs does not divide in (slices truncate)
        s, z = qz.find_params(W[:, g * gs:(g + 1) * gs])
        codes[:, g * gs:(g + 1) * gs], _ = quantize(W[:, g * gs:(g + 1) * gs], s.unsqueeze(1), z.unsqueeze(1), qz.maxq)
        scales.append(s.clone())
        zeros.append(z.clone())
    g_idx = torch.arange(in_, dtype=torch.int32) // gs
    return codes, torch.stack(scales), torch.stack(zeros), g_idx


# ------------------------------------------------------------------------------------------------- GPTQ
class Hessian:
    """add_batch: H = 2/nsamples * sum x x^T as a running average; nsamples counts sequences."""

    def __init__(self, in_):
        self.H, self.nsamples = torch.zeros(in_, in_), 0

    def add_batch(self, inp):  # inp (sequences, tokens, in)
        tmp = inp.shape[0]
        inp = inp.reshape(-1, inp.shape[-1]).t().float()
        self.H *= self.nsamples / (self.nsamples + tmp)
        self.nsamples += tmp
        inp = (2 / self.nsamples) ** 0.5 * inp
        self.H += inp.matmul(inp.t())


def gptq(W, H, bits, group_size, sym, mse=False, actorder=False, static_groups=False, percdamp=0.01, blocksize=128):
    W, H = W.clone().float(), H.clone()
    rows, columns = W.shape
    qz = Quantizer(bits, sym, mse)
    qz.find_params(W)  # per-channel params from the original W

    dead = torch.diag(H) == 0
    H[dead, dead] = 1
    W[:, dead] = 0

    groups = []
    if static_groups and group_size > 0:
        for i in range(0, columns, group_size):
            g = Quantizer(bits, sym, mse)
            g.find_params(W[:, i:i + group_size])
            groups.append(g)

    perm = torch.arange(columns)
    if actorder:
        perm = torch.sort(torch.diag(H), descending=True, stable=True).indices
        W = W[:, perm]
        H = H[perm][:, perm]
    invperm = torch.argsort(perm)

    Q = torch.zeros_like(W)
    C = torch.zeros_like(W)
    Losses = torch.zeros_like(W)
    found = []  # on-the-fly groups' params, in the order they are formed

    damp = percdamp * torch.mean(torch.diag(H))
    idx = torch.arange(columns)
    H[idx, idx] += damp
    H = torch.linalg.cholesky(H)
    H = torch.cholesky_inverse(H)
    Hinv = torch.linalg.cholesky(H, upper=True)

    for i1 in range(0, columns, blocksize):
        i2 = min(i1 + blocksize, columns)
        count = i2 - i1
        W1 = W[:, i1:i2].clone()
        Q1, C1 = torch.zeros_like(W1), torch.zeros_like(W1)
        Err1, Losses1 = torch.zeros_like(W1), torch.zeros_like(W1)
        Hinv1 = Hinv[i1:i2, i1:i2]
        for i in range(count):
            w = W1[:, i]
            d = Hinv1[i, i]
            if group_size > 0:
                if not static_groups:
                    if (i1 + i) % group_size == 0:
                        qz.find_params(W[:, (i1 + i):(i1 + i + group_size)])  # W, not W1: as the reference
                        found.append((qz.scale.clone(), qz.zero.clone()))
                else:
                    qz = groups[int(perm[i1 + i]) // group_size]
            c, q = quantize(w.unsqueeze(1), qz.scale.unsqueeze(1), qz.zero.unsqueeze(1), qz.maxq)
            q, c = q.flatten(), c.flatten()
            Q1[:, i], C1[:, i] = q, c
            Losses1[:, i] = (w - q) ** 2 / d**2
            err1 = (w - q) / d
            W1[:, i:] -= err1.unsqueeze(1).matmul(Hinv1[i, i:].unsqueeze(0))
            Err1[:, i] = err1
        Q[:, i1:i2], C[:, i1:i2] = Q1, C1
        Losses[:, i1:i2] = Losses1 / 2
        W[:, i2:] -= Err1.matmul(Hinv[i1:i2, i2:])

    loss = torch.sum(Losses).item()
    Q, C = Q[:, invperm], C[:, invperm]
    gs = group_size if group_size > 0 else columns
    if group_size <= 0:
        scales, zeros = qz.scale.unsqueeze(0), qz.zero.unsqueeze(0)
    elif static_groups:
        scales = torch.stack([g.scale for g in groups])
        zeros = torch.stack([g.zero for g in groups])
    else:
        scales = torch.stack([s for s, _ in found])
        zeros = torch.stack([z for _, z in found])
    if static_groups or not actorder:
        g_idx = torch.arange(columns, dtype=torch.int32) // gs
    else:
        g_idx = (invperm // gs).to(torch.int32)  # column c was quantized at position invperm[c]
    if group_size <= 0:
        g_idx = torch.zeros(columns, dtype=torch.int32)
    return C, scales, zeros, g_idx, Q, loss


# ------------------------------------------------------------------------------------------------- data
def correlated_x(gen, seqs, tokens, in_):
    """Activations with correlated channels and a few outlier channels, like a transformer's."""
    M = torch.eye(in_) + 0.6 * torch.randn(in_, in_, generator=gen) / in_**0.5
    col = torch.exp(0.75 * torch.randn(in_, generator=gen))
    col[torch.randperm(in_, generator=gen)[:3]] *= 8
    Z = torch.randn(seqs * tokens, in_, generator=gen)
    return ((Z @ M) * col).reshape(seqs, tokens, in_).float()


def weights(gen, out, in_):
    W = 0.05 * torch.randn(out, in_, generator=gen) * torch.exp(0.5 * torch.randn(out, 1, generator=gen))
    W[torch.randint(0, out, (4,), generator=gen), torch.randint(0, in_, (4,), generator=gen)] *= 6
    return W.float()


def save(name, t):
    a = t.detach().numpy()
    a = a.astype({torch.float32: "<f4", torch.int32: "<i4", torch.uint8: "u1"}[t.dtype])
    a.tofile(os.path.join(OUT, name))


def save_case(name, C, scales, zeros, g_idx, Q):
    # the stored pieces must reproduce the transcription's dequantized W exactly
    Qr = scales[g_idx.long()].t() * (C - zeros[g_idx.long()].t())
    assert torch.equal(Qr, Q), name
    assert C.min() >= 0 and C.max() <= 255
    with open(os.path.join(OUT, name), "wb") as f:
        f.write(C.to(torch.uint8).numpy().tobytes())
        f.write(scales.float().numpy().astype("<f4").tobytes())
        f.write(zeros.float().numpy().astype("<f4").tobytes())
        f.write(g_idx.numpy().astype("<i4").tobytes())


def main():
    torch.set_num_threads(1)
    os.makedirs(OUT, exist_ok=True)
    gen = torch.Generator().manual_seed(20240229)
    index = {}

    # Hessian accumulation: two add_batch calls (3 and 2 sequences of 16 tokens, 64 channels)
    x1, x2 = correlated_x(gen, 3, 16, 64), correlated_x(gen, 2, 16, 64)
    hs = Hessian(64)
    hs.add_batch(x1)
    hs.add_batch(x2)
    save("hess_x1.f32", x1)
    save("hess_x2.f32", x2)
    save("hess_h.f32", hs.H)
    index["hessian"] = {"in": 64, "tokens": 16, "batches": [{"file": "hess_x1.f32", "seqs": 3},
                                                         {"file": "hess_x2.f32", "seqs": 2}],
                        "h": "hess_h.f32", "nsamples": hs.nsamples}

    # RTN: a 16 x 128 W with the awkward rows GPTQ's quantizer special-cases
    W = weights(gen, 16, 128)
    W[0] = 0                                        # all zero: min -1, max +1
    W[1] = W[1].abs() + 0.01                        # no negative value (sym keeps xmin = 0)
    W[2] = -W[2].abs() - 0.01                       # no positive value
    W[3] = 0
    W[3, 5] = 0.3                                   # one nonzero
    W[4, :32] = 0                                   # one all-zero group of 32
    W[5, 77] = 4.0                                  # a large outlier
    W[6] *= 1e-3                                    # tiny weights
    W[7] = torch.round(W[7] * 64) / 64              # values on a coarse grid (exact ties are likely)
    save("rtn_w.f32", W)
    cases = []
    for bits in (2, 3, 4, 8):
        for gsz in (-1, 32, 64):
            for sym in (False, True):
                for mse in (False, True):
                    name = f"rtn_b{bits}_g{gsz if gsz > 0 else 'ch'}_{'sym' if sym else 'asym'}{'_mse' if mse else ''}"
                    C, S, Z, G = rtn(W, bits, gsz, sym, mse)
                    Q = S[G.long()].t() * (C - Z[G.long()].t())
                    save_case(name + ".bin", C, S, Z, G, Q)
                    cases.append({"name": name, "bits": bits, "group_size": gsz, "sym": sym, "mse": mse,
                                  "n_groups": S.shape[0], "file": name + ".bin"})
    index["rtn"] = {"w": "rtn_w.f32", "out": 16, "in": 128, "cases": cases}

    # GPTQ: two layers with realistic Hessians from correlated activations
    inputs = {}
    for key, out, in_ in (("A", 48, 128), ("B", 64, 256)):
        Wl = weights(gen, out, in_)
        hs = Hessian(in_)
        for _ in range(4):  # 8 sequences of 64 tokens, two per call
            hs.add_batch(correlated_x(gen, 2, 64, in_))
        save(f"gptq_{key}_w.f32", Wl)
        save(f"gptq_{key}_h.f32", hs.H)
        inputs[key] = {"w": f"gptq_{key}_w.f32", "h": f"gptq_{key}_h.f32", "out": out, "in": in_, "W": Wl, "H": hs.H}
    specs = [  # input, bits, group, sym, act_order, static_groups, mse, dead, blocksize
        ("A", 4, -1, False, False, False, False, [], 128),
        ("A", 3, 32, False, False, False, False, [], 128),
        ("A", 2, 64, False, False, False, False, [], 128),
        ("B", 4, -1, False, True, False, False, [], 128),
        ("B", 4, 64, False, True, False, False, [], 128),
        ("B", 4, 64, False, True, True, False, [], 128),
        ("A", 8, -1, False, False, False, False, [], 128),
        ("A", 4, 32, False, False, False, False, [3, 77], 128),
        ("B", 3, 128, True, False, False, False, [], 128),
        ("B", 2, -1, True, False, False, True, [], 128),
        ("A", 4, 32, False, True, False, False, [5], 128),
        ("B", 4, 64, False, False, False, False, [], 32),
        ("B", 3, 32, True, True, True, False, [200], 64),
    ]
    cases = []
    for key, bits, gsz, sym, act, static, mse, dead, bsz in specs:
        H = inputs[key]["H"].clone()
        for k in dead:
            H[k, :] = 0
            H[:, k] = 0
        C, S, Z, G, Q, loss = gptq(inputs[key]["W"], H, bits, gsz, sym, mse, act, static, 0.01, bsz)
        name = (f"gptq_{key}_b{bits}_g{gsz if gsz > 0 else 'ch'}_{'sym' if sym else 'asym'}"
                f"{'_act' if act else ''}{'_static' if static else ''}{'_mse' if mse else ''}"
                f"{'_dead' if dead else ''}_bs{bsz}")
        save_case(name + ".bin", C, S, Z, G, Q)
        cases.append({"name": name, "input": key, "bits": bits, "group_size": gsz, "sym": sym, "act_order": act,
                      "static_groups": static, "mse": mse, "dead": dead, "percdamp": 0.01, "blocksize": bsz,
                      "n_groups": S.shape[0], "loss": loss, "file": name + ".bin"})
    # Groups that do not divide the input dimension (SmolLM2's hidden size 576 with groups of 128): the last group
    # is shorter, as the reference's W[:, i:i+groupsize] slices are. Drawn from a generator of their own, after
    # everything above, so the earlier goldens stay byte for byte as they were.
    gen2 = torch.Generator().manual_seed(576)
    Wp = weights(gen2, 16, 200)
    save("rtn_partial_w.f32", Wp)
    pcases = []
    for bits, gsz, sym in ((4, 32, False), (3, 64, False), (2, 128, True), (4, 128, False), (8, 64, True)):
        name = f"rtn_partial_b{bits}_g{gsz}_{'sym' if sym else 'asym'}"
        C, S, Z, G = rtn(Wp, bits, gsz, sym, False)
        Q = S[G.long()].t() * (C - Z[G.long()].t())
        save_case(name + ".bin", C, S, Z, G, Q)
        pcases.append({"name": name, "bits": bits, "group_size": gsz, "sym": sym, "mse": False,
                       "n_groups": S.shape[0], "file": name + ".bin"})
    index["rtn_partial"] = {"w": "rtn_partial_w.f32", "out": 16, "in": 200, "cases": pcases}
    Wc = weights(gen2, 48, 576)
    hs = Hessian(576)
    for _ in range(4):
        hs.add_batch(correlated_x(gen2, 2, 64, 576))
    save("gptq_C_w.f32", Wc)
    save("gptq_C_h.f32", hs.H)
    inputs["C"] = {"w": "gptq_C_w.f32", "h": "gptq_C_h.f32", "out": 48, "in": 576, "W": Wc, "H": hs.H}
    for key, bits, gsz, sym, act, static, mse, dead, bsz in (
            ("C", 4, 128, False, False, False, False, [], 128),
            ("C", 3, 128, False, True, False, False, [], 128),
            ("C", 4, 128, False, True, True, False, [], 128),
            ("C", 2, 128, True, False, False, False, [], 96)):
        C, S, Z, G, Q, loss = gptq(inputs[key]["W"], inputs[key]["H"], bits, gsz, sym, mse, act, static, 0.01, bsz)
        name = (f"gptq_{key}_b{bits}_g{gsz}_{'sym' if sym else 'asym'}{'_act' if act else ''}"
                f"{'_static' if static else ''}_bs{bsz}")
        assert S.shape[0] == 5, name  # 4 groups of 128 and one of 64
        save_case(name + ".bin", C, S, Z, G, Q)
        cases.append({"name": name, "input": key, "bits": bits, "group_size": gsz, "sym": sym, "act_order": act,
                      "static_groups": static, "mse": mse, "dead": dead, "percdamp": 0.01, "blocksize": bsz,
                      "n_groups": S.shape[0], "loss": loss, "file": name + ".bin"})
    index["gptq"] = {"inputs": {k: {f: v[f] for f in ("w", "h", "out", "in")} for k, v in inputs.items()},
                     "cases": cases}
    with open(os.path.join(OUT, "cases.json"), "w") as f:
        json.dump(index, f, indent=1)
        f.write("\n")
    total = sum(os.path.getsize(os.path.join(OUT, n)) for n in os.listdir(OUT))
    print(f"wrote {len(os.listdir(OUT))} files, {total} bytes, to {OUT}")


if __name__ == "__main__":
    main()
