"""Writes the base model for the export tests: a tiny random LLaMA with GQA in float32, saved by
transformers as sharded safetensors, with a tokenizer, a generation config and a LICENSE so the
merged export's file copying is exercised. test_export.cpp trains nothing: it makes a random
adapter, exports it, and checks the exports with check_export.py.

Layout: $LINEARARD_FIXTURES_DIR/export/base (the HF directory).
"""
import os
import shutil

import torch
import transformers
from tokenizers import Tokenizer, models, pre_tokenizers

OUT = os.path.join(os.environ["LINEARARD_FIXTURES_DIR"], "export", "base")
VOCAB = 101

torch.manual_seed(4242)
config = transformers.LlamaConfig(hidden_size=64, intermediate_size=96, num_hidden_layers=2,
                                  num_attention_heads=4, num_key_value_heads=2, head_dim=16,
                                  vocab_size=VOCAB, max_position_embeddings=64, rms_norm_eps=1e-5,
                                  rope_theta=10000.0, tie_word_embeddings=False,
                                  bos_token_id=1, eos_token_id=2, pad_token_id=0)
model = transformers.AutoModelForCausalLM.from_config(config).float().eval()
with torch.no_grad():  # larger than the default init so every layer matters
    for p in model.parameters():
        p.normal_(0.0, 0.08)

shutil.rmtree(OUT, ignore_errors=True)
# ~300 KB of float32 weights in 100 KB shards: the exporter must read a sharded base.
model.save_pretrained(OUT, safe_serialization=True, max_shard_size="100KB")

words = {"<pad>": 0, "<s>": 1, "</s>": 2, "<unk>": 3}
words.update({f"w{i}": i for i in range(4, VOCAB)})
tok = Tokenizer(models.WordLevel(vocab=words, unk_token="<unk>"))
tok.pre_tokenizer = pre_tokenizers.Whitespace()
fast = transformers.PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>",
                                            pad_token="<pad>", unk_token="<unk>")
fast.save_pretrained(OUT)
with open(os.path.join(OUT, "LICENSE"), "w") as f:
    f.write("test license: copied verbatim into merged exports\n")
with open(os.path.join(OUT, "README.md"), "w") as f:
    f.write("base model card: replaced by the export's own README\n")
print("export base model:", sorted(os.listdir(OUT)))
