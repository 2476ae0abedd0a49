#!/usr/bin/env python3
"""make_tokenizer_goldens.py: writes the golden files that tests/test_tokenizer.c compares model/tokenizer.c with.

What it makes (under tests/golden/tokenizer/):
  texts are chosen deterministically from every dataset in ../shared/datasets (including non-ASCII lines:
  accents, CJK, emoji) plus hand-written edge cases; for each tokenizer below one JSON-lines file
  <name>.jsonl, a line per text:
      {"text": ..., "ids": [... add_special_tokens=True ...], "ids_nospecial": [...],
       "decoded": decode(ids_nospecial, skip_special_tokens=False, clean_up_tokenization_spaces=False),
       "decoded_skip": decode(ids, skip_special_tokens=True, clean_up_tokenization_spaces=False)}
  tokenizers:
    gpt2-bpe          GPT2TokenizerFast(vocab_file=encoder.json, merges_file=vocab.bpe) from shared/tokenizers/gpt2-bpe
                      (the C test loads those two files with nt_tokenizer_load_bpe_files)
    tiny-opt          AutoTokenizer of shared/models/tiny-opt (tokenizer.json); the script also checks that the
                      same directory without tokenizer.json (vocab.json + merges.txt + tokenizer_config.json)
                      gives the same ids, which the C test checks too
    tiny-llama        AutoTokenizer of shared/models/tiny-llama: the same tokenizer as tiny-opt (asserted here), so
                      no file of its own; the C test compares it with tiny-opt.jsonl
    llama2            LlamaTokenizerFast converted from shared/tokenizers/llama2-sp32000/tokenizer.model
                      (LlamaTokenizerFast.from_pretrained(dir, from_slow=True), legacy default); its tokenizer.json
                      and tokenizer_config.json are saved in llama2/ (generated files, 1.4 MB) and the goldens come
                      from reloading that directory
    smollm2           tokenizers.Tokenizer of shared/tokenizers/smollm2/tokenizer.json (Digits(individual_digits) then
                      ByteLevel; the truth for the SmolLM2 GGUF's tokenizer), on the texts plus EXTRA_CASES
    gpt2-qwen2        Qwen2TokenizerFast(vocab_file=encoder.json, merges_file=vocab.bpe): transformers' Qwen2Converter
                      (NFC normalizer, Qwen2's Split regex, ByteLevel without regex, no BOS) over GPT-2's vocabulary,
                      on the texts plus NORM_CASES and EXTRA_CASES; written as a variant of tiny-opt's tokenizer.json
                      (the converter's normalizer, pre_tokenizer, post_processor, decoder and added_tokens), which
                      the script checks gives the same ids
    variants: a base tokenizer.json with some top-level keys replaced (<name>.patch.json: {"base": ...,
    "set": {key: value}, "model_set": {key: value}}), encoded with the `tokenizers` library directly; the C
    test applies the same patch and loads the result:
    gpt2-split        Llama-3/Qwen2 style: Sequence[Split(regex, Isolated), ByteLevel(use_regex=false)] + ignore_merges
    llama2-metaspace  LlamaTokenizerFast(legacy=False): Metaspace pre-tokenizer, prepend_scheme "first", no normalizer
    llama2-metaspace-split  Metaspace(prepend_scheme "always", split=true) and the Metaspace decoder
    gpt2-nfkc         tiny-opt with an NFKC normalizer (texts plus NORM_CASES)
  The texts NORM_CASES and EXTRA_CASES are only in the files above that name them, so the older files stay as
  they were.
  wikitext2-gptq.json: for tiny-opt (add_special_tokens=True) over the GPTQ WikiText-2 test string (lines of
    wiki.test.raw keeping "\\n", a line " \\n" becomes "", joined with "\\n\\n"), the number of ids, the sha256
    and the FNV-1a 64 hash of the ids as little-endian int32 bytes.

Rerun (from the repository root; needs transformers 4.46.3 / tokenizers 0.20.3, e.g. the venv in /work/venv):
    /work/venv/bin/python tests/golden/make_tokenizer_goldens.py [--shared ../shared]
The output is deterministic: rerunning rewrites the same files.
"""
import argparse
import copy
import hashlib
import json
import os
import re
import shutil
import struct
import tempfile
import unicodedata

import tokenizers
import transformers
from transformers import AutoTokenizer, GPT2TokenizerFast, LlamaTokenizerFast, Qwen2TokenizerFast

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "tokenizer")
MAX_CHARS = 400  # texts longer than this are cut (at a character boundary) to keep the goldens small

LLAMA3_SPLIT = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)

EDGE_CASES = [
    "",
    " ",
    "   ",
    "  leading",
    "trailing  ",
    "\n\n",
    "\n",
    "a\n\nb",
    "tabs\tand\t\tmore\t",
    "12345",
    "1234567890 3.14159 -42 1,000,000",
    "don't I'll we've they're she'd it's I'M DON'T",
    "<|endoftext|>",
    "hello<|endoftext|>world",
    "hello <|endoftext|> world",
    "<s>",
    "<s> hello </s>",
    "text <s>inside</s> text",
    "<unk>",
    "Hello world",
    " Hello world",
    "Hello   world  \n  again",
    "café naïve résumé Zürich",
    "日本語のテキスト、中文文本，한국어 텍스트",
    "emoji 😀👍🏽 and 🇫🇷 flags",
    "mixed Ελληνικά русский עברית العربية हिन्दी English",
    "Supercalifragilisticexpialidocious" * 8,
    "a" * 300,
    "      many     spaces      ",
    "line1\r\nline2\rline3",
    "\u00a0non-breaking\u00a0spaces\u2003em",
    "zero\u200bwidth",
    "ß ẞ ǅ ﬁ",
    "'s 're 've 'm 'll 'd",
    "!!!??? ... --- ***",
    "▁already▁has▁metaspace",
    "<0x41> literal byte token text",
    "\u0301combining at start e\u0301",
    "\x01\x1f\x7f control",
]


# Text that the Unicode normalization forms change (decomposed accents, singletons, reordering of marks, Hangul
# jamo, compatibility characters, composition exclusions, a mark next to an added token)
NORM_CASES = [
    "cafe\u0301 re\u0301sume\u0301 nai\u0308ve",
    "\u212b ohm \u2126 kelvin \u212a signs",
    "A\u030a versus \u00c5",
    "a\u0323\u0302 a\u0302\u0323 \u1ea1\u0302",
    "\u1100\u1161\u11a8 \u1112\u1161\u11ab\u1100\u1173\u11af jamo",
    "\uf900\uf901 compatibility ideographs",
    "\ufb01nance \ufb02ow",
    "\u2460\u2461 \u00bd \u00b2 x\u00b3",
    "\uff21\uff22\uff23 \uff11\uff12\uff13 \uff76\uff9e",
    "\u2026 \u2122 \u3392 \u337f",
    "\u1e9b\u0323",
    "\u0958 \u0915\u093c exclusions",
    "e\u0301<|endoftext|>\u0301e",
    "\u00e9\u0301 double",
    "\u0301\u0301 marks only",
]

# Pre-tokenizer cases: numbers of every kind (Digits, \p{N}, \p{N}{1,3}), contractions in both cases, runs of
# spaces and newlines
EXTRA_CASES = [
    "\u216b \u2177 \u0663\u0664 \u06f5 \u0bf0 \u00bd\u00be digits of other scripts",
    "123456789 1,234.5678 0x1F 3rd 2nd",
    "x  \n\n  y\t\t\n z   ",
    "\n \n\n\n   \n\t\n",
    "I'M DON'T we'VE You'RE it'S THEY'LL he'D",
    "a    b\r\n\r\nc",
]


def cut(s):
    return s if len(s) <= MAX_CHARS else s[:MAX_CHARS]


def jsonl(path):
    with open(path, encoding="utf-8") as f:
        return [json.loads(l) for l in f if l.strip()]


def nonascii(s):
    return any(ord(c) > 127 for c in s)


CJK = re.compile("[\u3040-\u30ff\u4e00-\u9fff\uac00-\ud7af]")
EMOJI = re.compile("[\U0001F300-\U0001FAFF\u2600-\u27bf]")


def pick(items, n_plain, n_nonascii, extra_filters=()):
    """Deterministic choice: n_plain items at an even stride, the first n_nonascii non-ASCII items, and the
    first item matching each extra filter (CJK, emoji)."""
    items = [s for s in items if s is not None]
    out = []
    if items and n_plain:
        step = max(1, len(items) // n_plain)
        out += items[::step][:n_plain]
    out += [s for s in items if nonascii(s)][:n_nonascii]
    for filt in extra_filters:
        out += [s for s in items if filt.search(s)][:1]
    seen, res = set(), []
    for s in out:
        s = cut(s)
        if s not in seen:
            seen.add(s)
            res.append(s)
    return res


def collect_texts(shared):
    d = os.path.join(shared, "datasets")
    texts = []
    # wikitext2: lines with the trailing newline, headings, non-ASCII, CJK, emoji
    with open(os.path.join(d, "wikitext2/wiki.test.raw"), encoding="utf-8") as f:
        wl = f.read().split("\n")
    wl = [l + "\n" for l in wl]
    heads = [l for l in wl if l.startswith(" = ")]
    texts += pick(wl[:200], 6, 0) + heads[:2] + [l for l in wl if l.startswith(" = = ")][:1]
    texts += pick(wl, 4, 6, (CJK, EMOJI))
    for name in ["ptb.test.txt", "ptb.valid.txt", "ptb.train.txt"]:
        with open(os.path.join(d, "ptb", name), encoding="utf-8") as f:
            texts += pick(f.read().split("\n"), 2, 0)
    texts += pick([j["text"] for j in jsonl(os.path.join(d, "c4/c4_validation_2k.jsonl"))], 4, 4, (CJK, EMOJI))
    texts += pick([j["text"] for j in jsonl(os.path.join(d, "c4/c4-train.00000-of-01024.first1000.jsonl"))], 4, 2)
    texts += pick([j["text"] for j in jsonl(os.path.join(d, "lambada/lambada_test.jsonl"))], 4, 2)
    with open(os.path.join(d, "hellaswag/hellaswag_val_full.txt"), encoding="utf-8") as f:
        hl = f.read().split("\n")
    texts += pick(hl, 4, 2)
    pj = jsonl(os.path.join(d, "piqa/valid.jsonl"))
    texts += pick([p["goal"] + " " + p["sol1"] for p in pj], 3, 1)
    for name in ["llmfoundry_arc_easy.jsonl", "llmfoundry_arc_challenge.jsonl"]:
        aj = jsonl(os.path.join(d, "arc", name))
        texts += pick([a["query"] + " " + a["choices"][a["gold"]] for a in aj], 2, 1)
    wj = jsonl(os.path.join(d, "winogrande/llmfoundry_winogrande.jsonl"))
    texts += pick([w["context_options"][0] + " " + w["continuation"] for w in wj], 3, 1)
    texts += pick([b["query"] for b in jsonl(os.path.join(d, "boolq/llmfoundry_boolq.jsonl"))], 3, 2, (CJK, EMOJI))
    oj = jsonl(os.path.join(d, "openbookqa/llmfoundry_openbook_qa.jsonl"))
    texts += pick([o["query"] + " " + o["choices"][0] for o in oj], 2, 1)
    with open(os.path.join(d, "openbookqa/test.tsv"), encoding="utf-8") as f:
        texts += pick(f.read().split("\n")[1:], 1, 0)
    texts += EDGE_CASES
    seen, res = set(), []
    for t in texts:
        if t not in seen:
            seen.add(t)
            res.append(t)
    return res


def golden_rows(enc, dec, texts):
    rows = []
    for t in texts:
        ids = enc(t, True)
        ids_ns = enc(t, False)
        rows.append({"text": t, "ids": ids, "ids_nospecial": ids_ns, "decoded": dec(ids_ns, False),
                     "decoded_skip": dec(ids, True)})
    return rows


def hf_funcs(tok):
    enc = lambda t, sp: tok(t, add_special_tokens=sp)["input_ids"]
    dec = lambda ids, skip: tok.decode(ids, skip_special_tokens=skip, clean_up_tokenization_spaces=False)
    return enc, dec


def raw_funcs(tk):
    enc = lambda t, sp: tk.encode(t, add_special_tokens=sp).ids
    dec = lambda ids, skip: tk.decode(ids, skip_special_tokens=skip)
    return enc, dec


def write_jsonl(name, rows):
    path = os.path.join(OUT, name + ".jsonl")
    with open(path, "w", encoding="utf-8") as f:
        for r in rows:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")
    n_ids = sum(len(r["ids"]) for r in rows)
    print(f"{path}: {len(rows)} texts, {n_ids} ids, {os.path.getsize(path)} bytes")


def make_variant(name, base_name, base_json, set_keys, model_set, texts):
    d = copy.deepcopy(base_json)
    d.update(set_keys)
    d["model"].update(model_set)
    tk = tokenizers.Tokenizer.from_str(json.dumps(d))
    with open(os.path.join(OUT, name + ".patch.json"), "w", encoding="utf-8") as f:
        json.dump({"base": base_name, "set": set_keys, "model_set": model_set}, f, ensure_ascii=False, indent=1)
        f.write("\n")
    write_jsonl(name, golden_rows(*raw_funcs(tk), texts))


def fnv1a64(data):
    h = 0xCBF29CE484222325
    for b in data:
        h ^= b
        h = (h * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return h


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--shared", default=os.path.join(HERE, "..", "..", "..", "shared"))
    args = ap.parse_args()
    shared = os.path.abspath(args.shared)
    assert transformers.__version__ == "4.46.3" and tokenizers.__version__ == "0.20.3", "pinned versions"
    os.makedirs(OUT, exist_ok=True)
    texts = collect_texts(shared)
    print(f"{len(texts)} texts")

    # (a) GPT-2 encoder.json + vocab.bpe
    g = os.path.join(shared, "tokenizers/gpt2-bpe")
    gpt2 = GPT2TokenizerFast(vocab_file=os.path.join(g, "encoder.json"), merges_file=os.path.join(g, "vocab.bpe"))
    write_jsonl("gpt2-bpe", golden_rows(*hf_funcs(gpt2), texts))

    # (c) the fixture models' tokenizers
    model_tok, model_tok_rows = {}, {}
    for m in ["tiny-opt", "tiny-llama"]:
        md = os.path.join(shared, "models", m)
        tok = AutoTokenizer.from_pretrained(md)
        model_tok[m] = tok
        rows = golden_rows(*hf_funcs(tok), texts)
        if m == "tiny-opt":
            write_jsonl(m, rows)
        else:  # tiny-llama ships the same GPT-2 tokenizer: the test compares it with tiny-opt.jsonl
            assert rows == model_tok_rows["tiny-opt"], f"{m}: differs from tiny-opt"
        model_tok_rows[m] = rows
        # the same directory without tokenizer.json: vocab.json + merges.txt + tokenizer_config.json
        with tempfile.TemporaryDirectory() as td:
            for fn in ["vocab.json", "merges.txt", "tokenizer_config.json", "special_tokens_map.json"]:
                shutil.copy(os.path.join(md, fn), td)
            tok2 = AutoTokenizer.from_pretrained(td)
            assert golden_rows(*hf_funcs(tok2), texts) == rows, f"{m}: vocab.json+merges.txt differs"

    # (b) Llama-2 SentencePiece converted to tokenizer.json
    sp = os.path.join(shared, "tokenizers/llama2-sp32000/tokenizer.model")
    ld = os.path.join(OUT, "llama2")
    os.makedirs(ld, exist_ok=True)
    with tempfile.TemporaryDirectory() as td:
        converted = LlamaTokenizerFast.from_pretrained(os.path.dirname(sp), from_slow=True)
        converted.save_pretrained(td)
        # add_prefix_space in the config would make LlamaTokenizerFast reconvert from tokenizer.model on load;
        # Llama-2's own tokenizer_config.json does not have it, so drop it
        with open(os.path.join(td, "tokenizer_config.json"), encoding="utf-8") as f:
            tc = json.load(f)
        tc.pop("add_prefix_space", None)
        with open(os.path.join(ld, "tokenizer_config.json"), "w", encoding="utf-8") as f:
            json.dump(tc, f, ensure_ascii=False, indent=2)
            f.write("\n")
        with open(os.path.join(td, "tokenizer.json"), encoding="utf-8") as f:
            tj = json.load(f)
        with open(os.path.join(ld, "tokenizer.json"), "w", encoding="utf-8") as f:  # compact: ~2 MB, not 3.6
            json.dump(tj, f, ensure_ascii=False, separators=(",", ":"))
    llama = LlamaTokenizerFast.from_pretrained(ld)
    rows = golden_rows(*hf_funcs(llama), texts)
    assert rows == golden_rows(*hf_funcs(converted), texts), "llama2: the saved tokenizer.json differs"
    write_jsonl("llama2", rows)

    # variants
    with open(os.path.join(OUT, "llama2/tokenizer.json"), encoding="utf-8") as f:
        llama_json = json.load(f)
    with open(os.path.join(shared, "models/tiny-opt/tokenizer.json"), encoding="utf-8") as f:
        opt_json = json.load(f)
    split_pre = {
        "type": "Sequence",
        "pretokenizers": [
            {"type": "Split", "pattern": {"Regex": LLAMA3_SPLIT}, "behavior": "Isolated", "invert": False},
            {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": False},
        ],
    }
    make_variant("gpt2-split", "shared:models/tiny-opt/tokenizer.json", opt_json,
                 {"pre_tokenizer": split_pre}, {"ignore_merges": True}, texts)
    with tempfile.TemporaryDirectory() as td:
        LlamaTokenizerFast.from_pretrained(os.path.dirname(sp), from_slow=True, legacy=False).save_pretrained(td)
        with open(os.path.join(td, "tokenizer.json"), encoding="utf-8") as f:
            nl_json = json.load(f)
    diff = {k: nl_json[k] for k in nl_json if k != "model" and nl_json[k] != llama_json.get(k)}
    assert nl_json["model"] == llama_json["model"]
    assert diff.get("pre_tokenizer", {}).get("type") == "Metaspace", diff
    make_variant("llama2-metaspace", "llama2/tokenizer.json", llama_json, diff, {}, texts)
    make_variant("llama2-metaspace-split", "llama2/tokenizer.json", llama_json,
                 {"normalizer": None,
                  "pre_tokenizer": {"type": "Metaspace", "replacement": "\u2581", "prepend_scheme": "always",
                                    "split": True},
                  "decoder": {"type": "Metaspace", "replacement": "\u2581", "prepend_scheme": "always", "split": True}},
                 {"fuse_unk": False}, texts)

    # SmolLM2's tokenizer.json (Digits + ByteLevel)
    smol = tokenizers.Tokenizer.from_file(os.path.join(shared, "tokenizers/smollm2/tokenizer.json"))
    write_jsonl("smollm2", golden_rows(*raw_funcs(smol), texts + EXTRA_CASES))

    # Qwen2's converter over GPT-2's vocabulary (NFC), as a variant of tiny-opt's tokenizer.json
    g = os.path.join(shared, "tokenizers/gpt2-bpe")
    qwen = Qwen2TokenizerFast(vocab_file=os.path.join(g, "encoder.json"), merges_file=os.path.join(g, "vocab.bpe"))
    qj = json.loads(qwen.backend_tokenizer.to_str())
    assert qj["model"]["vocab"] == opt_json["model"]["vocab"]
    qset = {k: qj[k] for k in ["normalizer", "pre_tokenizer", "post_processor", "decoder", "added_tokens"]}
    qtexts = texts + NORM_CASES + EXTRA_CASES
    rows = golden_rows(*hf_funcs(qwen), qtexts)
    make_variant("gpt2-qwen2", "shared:models/tiny-opt/tokenizer.json", opt_json, qset,
                 {"ignore_merges": qj["model"]["ignore_merges"]}, qtexts)
    assert jsonl(os.path.join(OUT, "gpt2-qwen2.jsonl")) == rows, "gpt2-qwen2: the variant differs from Qwen2TokenizerFast"
    nfc_changed = sum(unicodedata.normalize("NFC", t) != t for t in qtexts)
    no_nfc = tokenizers.Tokenizer.from_str(qwen.backend_tokenizer.to_str())
    no_nfc.normalizer = None
    ids_changed = sum(no_nfc.encode(t).ids != r["ids"] for t, r in zip(qtexts, rows))
    print(f"gpt2-qwen2: NFC changes {nfc_changed} of {len(qtexts)} texts and the ids of {ids_changed}")
    make_variant("gpt2-nfkc", "shared:models/tiny-opt/tokenizer.json", opt_json,
                 {"normalizer": {"type": "NFKC"}}, {}, texts + NORM_CASES)

    # whole-file golden: GPTQ WikiText-2 test string through tiny-opt
    with open(os.path.join(shared, "datasets/wikitext2/wiki.test.raw"), encoding="utf-8") as f:
        lines = f.read().splitlines(keepends=True)
    rows = ["" if l == " \n" else l for l in lines]
    joined = "\n\n".join(rows)
    jh = hashlib.sha256(joined.encode("utf-8")).hexdigest()
    assert jh.startswith("696cca6b65a171b0"), jh
    ids = model_tok["tiny-opt"](joined, add_special_tokens=True)["input_ids"]
    raw = struct.pack(f"<{len(ids)}i", *ids)
    whole = {"tokenizer": "tiny-opt", "text": "wikitext2 GPTQ test string", "text_sha256": jh,
             "n_ids": len(ids), "ids_sha256": hashlib.sha256(raw).hexdigest(),
             "ids_fnv1a64": f"{fnv1a64(raw):016x}", "first_ids": ids[:16]}
    with open(os.path.join(OUT, "wikitext2-gptq.json"), "w", encoding="utf-8") as f:
        json.dump(whole, f, indent=1)
        f.write("\n")
    print(whole)


if __name__ == "__main__":
    main()
