"""GPU reference for the bf16 CUDA forward: a small random LLaMA (GQA, linear x4 RoPE) saved in
float32, and transformers' logits on CUDA in float32 and in bf16. The C++ test requires our bf16 CUDA
error (vs transformers float32) to be at most 2x transformers' own bf16-vs-float32 error.
Writes nothing (and exits 0) where there is no GPU."""
import os

import torch
import transformers
from safetensors.torch import save_file

if not torch.cuda.is_available():
    print("no CUDA device: nothing to write")
    raise SystemExit(0)

out = os.path.join(os.environ["LINEARARD_FIXTURES_DIR"], "cuda_parity")
torch.manual_seed(7)
config = transformers.LlamaConfig(hidden_size=512, intermediate_size=1376, num_hidden_layers=4,
                                  num_attention_heads=8, num_key_value_heads=2, vocab_size=1000,
                                  max_position_embeddings=512, rms_norm_eps=1e-5,
                                  rope_scaling={"rope_type": "linear", "factor": 4.0})
model = transformers.LlamaForCausalLM(config).float().eval()
with torch.no_grad():
    for p in model.parameters():
        p.normal_(0.0, 0.05)
model.save_pretrained(os.path.join(out, "model"), safe_serialization=True)
ids = torch.randint(0, config.vocab_size, (2, 384))
tensors = {"input_ids": ids}
with torch.no_grad():
    model = model.cuda()
    tensors["logits_fp32"] = model(input_ids=ids.cuda()).logits.float().cpu()
    model = model.to(torch.bfloat16)
    tensors["logits_bf16"] = model(input_ids=ids.cuda()).logits.float().cpu()
os.makedirs(os.path.join(out, "expected"), exist_ok=True)
save_file({k: v.contiguous() for k, v in tensors.items()}, os.path.join(out, "expected", "expected.safetensors"))
print(f"wrote CUDA parity reference to {out} ({torch.cuda.get_device_name()})")
