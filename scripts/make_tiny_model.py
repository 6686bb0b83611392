"""Writes a tiny random LLaMA checkpoint (HF layout) for the demo: python make_tiny_model.py DIR."""
import sys

import torch
import transformers

torch.manual_seed(0)
config = transformers.LlamaConfig(hidden_size=128, intermediate_size=352, num_hidden_layers=4,
                                  num_attention_heads=4, num_key_value_heads=2, vocab_size=512,
                                  max_position_embeddings=256, rope_theta=10000.0)
model = transformers.LlamaForCausalLM(config)
model.save_pretrained(sys.argv[1], safe_serialization=True)
print(f"wrote a tiny random LLaMA ({sum(p.numel() for p in model.parameters())} parameters) to {sys.argv[1]}")
