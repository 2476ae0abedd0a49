#!/usr/bin/env python3
"""gguf_to_hf.py: writes a Hugging Face model folder (config.json, model.safetensors in float32, the tokenizer)
of a GGUF's weights as transformers' GGUF loader dequantizes them, for peers that take only a folder
(benchmarks/gptq_torch.py, the GPTQ speed peer of benchmarks/bench_gptq.sh).

transformers 4.46 reads tie_word_embeddings as false from a GGUF and would leave lm_head random: it is tied here
and checked. Then the folder is loaded back and its lm_head and embeddings checked bit for bit against the GGUF's.

The tokenizer: with --tokenizer TOKENIZER.json (SmolLM2's real one, ../shared/tokenizers/smollm2/tokenizer.json,
the truth for that model's ids) the folder gets that file as a plain PreTrainedTokenizerFast; without it, the
one transformers builds from the GGUF, which adds a BOS token the real SmolLM2 tokenizer does not.

usage: .venv-peers/bin/python benchmarks/peers/gguf_to_hf.py [--tokenizer TOKENIZER.json] SRC.gguf OUT_DIR
"""
import json
import os
import shutil
import sys

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer


def main():
    args = sys.argv[1:]
    tok_json = None
    if len(args) == 4 and args[0] == "--tokenizer":
        tok_json, args = args[1], args[2:]
    if len(args) != 2:
        sys.exit("usage: gguf_to_hf.py [--tokenizer TOKENIZER.json] SRC.gguf OUT_DIR")
    src, out = args
    if tok_json and not os.path.isfile(tok_json):
        sys.exit(f"gguf_to_hf.py: {tok_json}: no such file")
    if not os.path.isfile(src):
        sys.exit(f"gguf_to_hf.py: {src}: no such file")
    d, f = os.path.dirname(os.path.abspath(src)), os.path.basename(src)
    model = AutoModelForCausalLM.from_pretrained(d, gguf_file=f, torch_dtype=torch.float32, tie_word_embeddings=True)
    if not torch.equal(model.lm_head.weight, model.model.embed_tokens.weight):
        sys.exit("gguf_to_hf.py: transformers did not tie lm_head to the embeddings")
    model.save_pretrained(out, safe_serialization=True)
    if tok_json:
        for name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
            if os.path.exists(os.path.join(out, name)):
                os.remove(os.path.join(out, name))
        shutil.copyfile(tok_json, os.path.join(out, "tokenizer.json"))
        with open(os.path.join(out, "tokenizer_config.json"), "w") as fh:
            json.dump({"tokenizer_class": "PreTrainedTokenizerFast"}, fh)
    else:
        AutoTokenizer.from_pretrained(d, gguf_file=f).save_pretrained(out)
    back = AutoModelForCausalLM.from_pretrained(out, torch_dtype=torch.float32)
    for (n, a), (_, b) in zip(model.state_dict().items(), back.state_dict().items()):
        if not torch.equal(a, b):
            sys.exit(f"gguf_to_hf.py: {out}: tensor {n} differs after the round trip")
    print(f"wrote {out} (tokenizer: {tok_json or 'from the GGUF'}): {sum(p.numel() for p in back.parameters())} parameters, tied lm_head")


if __name__ == "__main__":
    main()
