#!/usr/bin/env python3
"""make_corpus.py: the seed corpus of the GGUF fuzz harness (tests/fuzz/fuzz_gguf.c), into tests/fuzz/gguf_corpus/.

Tiny valid files written by gguf-py's GGUFWriter (PyPI `gguf`): metadata of every value type with arrays of
numbers and strings; one file per tensor type normtweak dequantizes (two rows of one block each, random bytes
with finite fp16 scales, numpy seed 3); a file with general.alignment 64 and tensors of three types; the same
as GGUF v2 (v2 and v3 share the layout; the version field is patched); a file that holds only metadata; and the
first 8 KiB of models/SmolLM2-135M-Instruct.Q4_1.gguf (a real header, truncated inside the token list).

Usage (from the repository root): /work/venv-oracle/bin/python tests/fuzz/make_corpus.py
"""
import os

import numpy as np

import gguf
from gguf import GGMLQuantizationType as T

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
OUT = os.path.join(HERE, "gguf_corpus")
SCALES = {T.Q4_0: [0], T.Q4_1: [0, 2], T.Q5_0: [0], T.Q5_1: [0, 2], T.Q8_0: [0], T.Q2_K: [80, 82], T.Q3_K: [108],
          T.Q4_K: [0, 2], T.Q5_K: [0, 2], T.Q6_K: [208]}


def finite_f16(rng, n):
    v = rng.integers(0, 65536, size=4 * n + 16, dtype=np.uint32).astype(np.uint16)
    return v[(v & 0x7C00) != 0x7C00][:n]


def raw_rows(rng, qtype, rows=2):
    block, size = gguf.GGML_QUANT_SIZES[qtype]
    if qtype in (T.F32, T.F16, T.BF16):
        x = rng.standard_normal((rows, 8)).astype(np.float32)
        if qtype == T.F32:
            return x.view(np.uint8)
        if qtype == T.F16:
            return x.astype(np.float16).view(np.uint8)
        return (x.view(np.uint32) >> 16).astype(np.uint16).view(np.uint8)
    raw = rng.integers(0, 256, size=(rows, size), dtype=np.uint32).astype(np.uint8)
    for off in SCALES[qtype]:
        raw[:, off:off + 2] = finite_f16(rng, rows).view(np.uint8).reshape(rows, 2)
    return raw


def write(name, fill, alignment=None):
    path = os.path.join(OUT, name)
    w = gguf.GGUFWriter(path, "llama")
    if alignment:
        w.add_custom_alignment(alignment)
    fill(w)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


def main():
    os.makedirs(OUT, exist_ok=True)
    rng = np.random.default_rng(3)

    def meta(w):
        w.add_uint8("m.u8", 7), w.add_int8("m.i8", -7), w.add_uint16("m.u16", 700), w.add_int16("m.i16", -700)
        w.add_uint32("m.u32", 70000), w.add_int32("m.i32", -70000), w.add_float32("m.f32", 0.5)
        w.add_uint64("m.u64", 2**40), w.add_int64("m.i64", -(2**40)), w.add_float64("m.f64", 1e-9)
        w.add_bool("m.bool", True), w.add_string("m.str", "hello")
        w.add_array("m.arr_i", [1, 2, 3]), w.add_array("m.arr_f", [0.25, 4.0]), w.add_array("m.arr_s", ["a", "bc", ""])
        w.add_array("m.arr_b", [True, False])
        w.add_tensor("t", np.arange(8, dtype=np.float32))
    write("meta_all.gguf", meta)
    write("meta_only.gguf", lambda w: (w.add_string("general.name", "x"), w.add_uint32("llama.block_count", 1)))
    for qtype in [T.F32, T.F16, T.BF16, T.Q4_0, T.Q4_1, T.Q5_0, T.Q5_1, T.Q8_0, T.Q2_K, T.Q3_K, T.Q4_K, T.Q5_K, T.Q6_K]:
        raw = raw_rows(rng, qtype)
        write(f"type_{qtype.name.lower()}.gguf", lambda w, raw=raw, q=qtype: w.add_tensor("w", raw, raw_dtype=q))

    def three(w):
        w.add_tensor("a.weight", raw_rows(rng, T.Q8_0), raw_dtype=T.Q8_0)
        w.add_tensor("b.weight", raw_rows(rng, T.F16), raw_dtype=T.F16)
        w.add_tensor("c.weight", raw_rows(rng, T.Q4_K, rows=1), raw_dtype=T.Q4_K)
    p = write("align64.gguf", three, alignment=64)
    with open(p, "rb") as f:
        b = bytearray(f.read())
    b[4:8] = (2).to_bytes(4, "little")
    with open(os.path.join(OUT, "align64_v2.gguf"), "wb") as f:
        f.write(b)
    with open(os.path.join(ROOT, "models", "SmolLM2-135M-Instruct.Q4_1.gguf"), "rb") as f:
        head = f.read(8192)
    with open(os.path.join(OUT, "smollm2_head8k.gguf"), "wb") as f:
        f.write(head)
    sizes = {n: os.path.getsize(os.path.join(OUT, n)) for n in sorted(os.listdir(OUT))}
    print(f"wrote {len(sizes)} files, {sum(sizes.values())} bytes: {sizes}")


if __name__ == "__main__":
    main()
