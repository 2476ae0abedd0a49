#!/usr/bin/env python3
"""gguf_to_f32.py: writes an all-F32 GGUF of a quantized GGUF's weights (every tensor dequantized by gguf-py,
`gguf.quants.dequantize`, the same values normtweak's loader and transformers' GGUF loader produce), with the
source's metadata, so that llama.cpp can run the same weights in float32 beside its native quantized path.

Then reads the written file back and checks every tensor against the dequantized source, bit for bit.

usage: .venv-peers/bin/python benchmarks/peers/gguf_to_f32.py SRC.gguf OUT.gguf
"""
import os
import sys

import numpy as np

import gguf
from gguf import GGMLQuantizationType, GGUFValueType

# fields the writer makes itself (the header's counts, the architecture, the data alignment it pads to)
SKIP = {"general.architecture", "general.alignment"}
LLAMA_FTYPE_ALL_F32 = 0  # llama.cpp's llama_ftype for general.file_type


def dequantized(t):
    """The tensor as float32, numpy order (reversed GGUF dims)."""
    x = gguf.quants.dequantize(t.data, t.tensor_type)
    return np.ascontiguousarray(x, dtype=np.float32).reshape([int(d) for d in reversed(t.shape)])


def main():
    if len(sys.argv) != 3:
        sys.exit("usage: gguf_to_f32.py SRC.gguf OUT.gguf")
    src, out = sys.argv[1], sys.argv[2]
    r = gguf.GGUFReader(src)
    arch = r.fields["general.architecture"].contents()
    tmp = f"{out}.tmp.{os.getpid()}"
    w = gguf.GGUFWriter(tmp, arch)
    for name, f in r.fields.items():
        if name.startswith("GGUF.") or name in SKIP:
            continue
        if name == "general.file_type":
            w.add_uint32(name, LLAMA_FTYPE_ALL_F32)
            continue
        vtype = f.types[0]
        sub = f.types[-1] if vtype == GGUFValueType.ARRAY else None
        w.add_key_value(name, f.contents(), vtype, sub)
    for t in r.tensors:
        w.add_tensor(t.name, dequantized(t))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()

    back = {t.name: t for t in gguf.GGUFReader(tmp).tensors}
    for t in r.tensors:
        b = back[t.name]
        if b.tensor_type != GGMLQuantizationType.F32 or not np.array_equal(
                np.asarray(b.data).reshape(-1), dequantized(t).reshape(-1)):
            os.unlink(tmp)
            sys.exit(f"gguf_to_f32.py: {t.name}: the written tensor differs from the dequantized source")
    os.replace(tmp, out)
    kinds = sorted({t.tensor_type.name for t in r.tensors})
    print(f"gguf_to_f32.py: {out}: {len(r.tensors)} tensors ({', '.join(kinds)} -> F32), "
          f"{os.path.getsize(out) / 2**20:.0f} MiB, checked")


if __name__ == "__main__":
    main()
