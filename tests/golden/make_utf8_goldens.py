#!/usr/bin/env python3
"""make_utf8_goldens.py: writes tests/golden/utf8/utf8.json, what tests/test_utf8.c checks model/utf8.c against (CPython's
own UTF-8 decoder and unicodedata, no third-party package).

What it holds:
  decode: every byte string of length 1..4 over 26 bytes that sit on the edges of UTF-8's ranges (26^1 + ... + 26^4
    = 475,254 strings, in the order itertools.product gives them, shorter first), decoded by CPython with an error
    handler that records each error's span: per string the list of (code point, byte length), -1 for a U+FFFD
    standing for the maximal invalid subpart [start, end) CPython reports. Stored as the count of strings and the
    FNV-1a 64 hash over all items, each item as two little-endian int32 (code point, length), strings one after
    another with an int32 -2 after each.
  py_space: the code points c with chr(c).isspace() (str.strip's whitespace).
  normalize: texts with their unicodedata NFC, NFD, NFKC and NFKD forms (characters old enough that every Unicode
    version since 6 agrees).

Rerun (from the repository root, any Python 3): python3 tests/golden/make_utf8_goldens.py
The output is deterministic.
"""
import codecs
import itertools
import json
import os
import struct
import unicodedata

HERE = os.path.dirname(os.path.abspath(__file__))
EDGE_BYTES = [0x00, 0x41, 0x7F, 0x80, 0x8F, 0x90, 0x9F, 0xA0, 0xBF, 0xC0, 0xC1, 0xC2, 0xDF, 0xE0, 0xE1, 0xEC, 0xED,
              0xEE, 0xEF, 0xF0, 0xF1, 0xF3, 0xF4, 0xF5, 0xFE, 0xFF]
NORMALIZE = [
    "plain ASCII",
    "cafe\u0301 re\u0301sume\u0301",            # decomposed accents: NFC composes them
    "caf\u00e9",                                 # composed: NFD decomposes
    "\u212b ohm \u2126 kelvin \u212a",           # singletons: Angstrom, Ohm, Kelvin signs
    "a\u0302\u0323 a\u0323\u0302",               # combining marks in the two orders: canonical reordering
    "\u1100\u1161\u11a8 \uac01",                 # Hangul jamo and a precomposed syllable
    "\ufb01 \ufb02 \u2460 \u00b2 \uff21\uff22 \uff76 \u2026 \u2122",  # ligatures, circled, superscript, fullwidth, ...
    "\u1e9b\u0323",                              # long s with dots (the UAX #15 example)
    "\uf900 \u00c5 \u0041\u030a",                # a CJK compatibility ideograph, two spellings of A with ring
    "\u0301 leading combining mark",
]


def fnv1a64(data, h=0xCBF29CE484222325):
    for b in data:
        h = ((h ^ b) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return h


def decode_items(bs):
    """(code point, length) per character of bs decoded by CPython, -1 for each maximal invalid subpart."""
    spans = []

    def handler(e):
        spans.append((e.start, e.end))
        return ("\ufffd", e.end)

    codecs.register_error("nt_record", handler)
    text = bs.decode("utf-8", "nt_record")
    items, pos, k = [], 0, 0
    for ch in text:
        if k < len(spans) and spans[k][0] == pos:  # the U+FFFD the handler put here
            items.append((-1, spans[k][1] - spans[k][0]))
            pos = spans[k][1]
            k += 1
        else:
            n = len(ch.encode("utf-8"))
            items.append((ord(ch), n))
            pos += n
    assert pos == len(bs) and k == len(spans), bs
    return items


def main():
    h, count = 0xCBF29CE484222325, 0
    for n in range(1, 5):
        for t in itertools.product(EDGE_BYTES, repeat=n):
            raw = b"".join(struct.pack("<ii", cp, ln) for cp, ln in decode_items(bytes(t))) + struct.pack("<i", -2)
            h = fnv1a64(raw, h)
            count += 1
    out = {
        "edge_bytes": EDGE_BYTES,
        "decode": {"n_strings": count, "fnv1a64": f"{h:016x}"},
        "py_space": [c for c in range(0x110000) if chr(c).isspace()],
        "normalize": [{"text": s, "NFC": unicodedata.normalize("NFC", s), "NFD": unicodedata.normalize("NFD", s),
                       "NFKC": unicodedata.normalize("NFKC", s), "NFKD": unicodedata.normalize("NFKD", s)}
                      for s in NORMALIZE],
    }
    path = os.path.join(HERE, "utf8", "utf8.json")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        json.dump(out, f, ensure_ascii=False, indent=1)
        f.write("\n")
    print(f"{path}: {count} byte strings, hash {out['decode']['fnv1a64']}, {len(out['py_space'])} spaces")


if __name__ == "__main__":
    main()
