"""Tiny random LLaMA-family checkpoints and a small token corpus for the training tests.

Layout under $LINEARARD_FIXTURES_DIR/train/: llama_mha/, llama_gqa/ and qwen3_gqa/ (HF model
directories written by transformers; the Qwen3 one has q/k norms and head_dim 24 != 64 / 4), corpus.json (a list of token-id documents with learnable structure) and
corpus.bin (the same ids, int32, one document).
"""
import json
import os
import sys

import numpy as np
import torch
import transformers

OUT = os.path.join(os.environ["LINEARARD_FIXTURES_DIR"], "train")

BASE = dict(hidden_size=64, intermediate_size=96, num_hidden_layers=2, num_attention_heads=4,
            num_key_value_heads=4, head_dim=16, vocab_size=101, max_position_embeddings=64,
            rms_norm_eps=1e-5, rope_theta=10000.0, tie_word_embeddings=False)
MODELS = {
    "llama_mha": {},
    "llama_gqa": {"num_key_value_heads": 2, "num_hidden_layers": 3},
    "qwen3_gqa": {"model_type": "qwen3", "num_key_value_heads": 2, "head_dim": 24},
}


def make_model(name, overrides, seed):
    torch.manual_seed(seed)
    fields = dict(BASE, **overrides)
    model_type = fields.pop("model_type", "llama")
    config = transformers.AutoConfig.for_model(model_type, **fields)
    model = transformers.AutoModelForCausalLM.from_config(config).float().eval()
    with torch.no_grad():
        # Linear weights larger than the default init and norm weights near 1, so that relation
        # logits are O(1): the KLs are then well above float32 rounding.
        for pname, p in model.named_parameters():
            if "norm" in pname:
                p.normal_(1.0, 0.1)
            else:
                p.normal_(0.0, 0.1)
    model.save_pretrained(os.path.join(OUT, name), safe_serialization=True)


def make_corpus():
    """Documents made of short motifs repeated with noise: an LM can learn them quickly."""
    rng = np.random.default_rng(7)
    docs = []
    for _ in range(12):
        motif = rng.integers(0, 101, size=int(rng.integers(3, 8)))
        doc = np.tile(motif, 200 // len(motif) + 1)[:200]
        noise = rng.random(200) < 0.05
        doc[noise] = rng.integers(0, 101, size=int(noise.sum()))
        docs.append([int(t) for t in doc])
    with open(os.path.join(OUT, "corpus.json"), "w") as f:
        json.dump(docs, f)
    np.array(sum(docs, []), dtype="<i4").tofile(os.path.join(OUT, "corpus.bin"))


def main():
    os.makedirs(OUT, exist_ok=True)
    for i, (name, overrides) in enumerate(MODELS.items()):
        make_model(name, overrides, 2000 + i)
    make_corpus()
    print(f"wrote training fixtures to {OUT}")


if __name__ == "__main__":
    sys.exit(main())
