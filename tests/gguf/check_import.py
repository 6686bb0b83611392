"""Checks a `linearard import` directory against transformers' own loading of the same GGUF file:
    check_import.py IMPORTED_DIR GGUF_FILE [--dtype f32|bf16]
config fields, every tensor (bit-equal in float32; in bf16, equal to transformers' float32 tensor
rounded with torch), and the ids of `tokenizers` loading our tokenizer.json vs transformers'
AutoTokenizer(gguf_file=...) on the strings of make_gguf_fixtures.edge_strings (plus a text
sample). Exit 0 when all agree; prints the first differences otherwise."""
import json
import os
import sys

import torch
from safetensors.torch import load_file
from tokenizers import Tokenizer
from transformers import AutoModelForCausalLM, AutoTokenizer

sys.path.insert(0, os.path.dirname(__file__))
from make_gguf_fixtures import edge_strings  # noqa: E402

CONFIG_KEYS = ["model_type", "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
               "num_key_value_heads", "head_dim", "max_position_embeddings", "rms_norm_eps", "vocab_size",
               "tie_word_embeddings", "bos_token_id", "eos_token_id", "pad_token_id"]


def main():
    ours, gguf_file = sys.argv[1], sys.argv[2]
    dtype = sys.argv[sys.argv.index("--dtype") + 1] if "--dtype" in sys.argv else "bf16"
    d, f = os.path.dirname(os.path.abspath(gguf_file)), os.path.basename(gguf_file)
    errors = []
    model = AutoModelForCausalLM.from_pretrained(d, gguf_file=f, dtype=torch.float32)
    ref_cfg = model.config.to_dict()
    cfg = json.load(open(os.path.join(ours, "config.json")))
    for k in CONFIG_KEYS:
        if cfg.get(k) != ref_cfg.get(k):
            errors.append(f"config {k}: ours {cfg.get(k)!r}, transformers {ref_cfg.get(k)!r}")
    if cfg["rope_parameters"]["rope_theta"] != ref_cfg["rope_parameters"]["rope_theta"]:
        errors.append("config rope_theta differs")
    tensors = {}
    for name in sorted(os.listdir(ours)):
        if name.endswith(".safetensors"):
            tensors.update(load_file(os.path.join(ours, name)))
    ref = {k: v for k, v in model.state_dict().items() if not (cfg["tie_word_embeddings"] and k == "lm_head.weight")}
    if set(tensors) != set(ref):
        errors.append(f"tensor names differ: {sorted(set(tensors) ^ set(ref))[:5]}")
    for k in sorted(set(tensors) & set(ref)):
        want = ref[k] if dtype == "f32" else ref[k].to({"bf16": torch.bfloat16, "f16": torch.float16}[dtype])
        if tensors[k].dtype != want.dtype or tensors[k].shape != want.shape or not torch.equal(
                tensors[k].view(torch.int16 if want.element_size() == 2 else torch.int32),
                want.view(torch.int16 if want.element_size() == 2 else torch.int32)):
            errors.append(f"tensor {k}: differs ({tensors[k].dtype} {tuple(tensors[k].shape)})")
    print(f"tensors: {len(tensors)} compared ({dtype}), config: {len(CONFIG_KEYS)} keys")
    ours_tok = Tokenizer.from_file(os.path.join(ours, "tokenizer.json"))
    theirs = AutoTokenizer.from_pretrained(d, gguf_file=f)
    strings = edge_strings()
    sample = os.environ.get("GGUF_CHECK_TEXT")
    if sample:
        text = open(sample, encoding="utf-8").read()
        strings += [text[i:i + 2000] for i in range(0, min(len(text), 200000), 2000)]
    bad = 0
    for s in strings:
        a, b = ours_tok.encode(s).ids, theirs(s).input_ids
        if a != b:
            bad += 1
            if bad <= 3:
                errors.append(f"ids of {s[:60]!r}: ours {a[:20]}, transformers {b[:20]}")
    print(f"tokenizer: {len(strings) - bad}/{len(strings)} strings with identical ids")
    for e in errors:
        print("MISMATCH", e)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
