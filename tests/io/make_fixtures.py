"""Writes safetensors files with the reference implementation (the `safetensors` PyPI package and
huggingface_hub's sharded saver) plus manifest.json describing what was written, so the C++ reader
can be checked against bytes it did not produce.

Output: $LINEARARD_FIXTURES_DIR/io/{single/model.safetensors, numpy.safetensors,
sharded/model-0000k-of-0000n.safetensors + index, other_name/weights.safetensors, manifest.json}
"""
import json
import os
import shutil

import numpy as np
import torch
from huggingface_hub import save_torch_state_dict
from safetensors.numpy import save_file as save_numpy
from safetensors.torch import save_file as save_torch

out = os.path.join(os.environ["LINEARARD_FIXTURES_DIR"], "io")
shutil.rmtree(out, ignore_errors=True)
os.makedirs(out)
g = torch.Generator().manual_seed(1234)


def randn(*shape, dtype=torch.float32):
    return torch.randn(*shape, generator=g).to(dtype)


def torch_entry(t):
    # Raw little-endian C-order bytes exactly as safetensors stores them.
    raw = t.contiguous().reshape(-1).view(torch.uint8).numpy().tobytes()
    tag = {torch.bool: "BOOL", torch.uint8: "U8", torch.int8: "I8", torch.float8_e5m2: "F8_E5M2",
           torch.float8_e4m3fn: "F8_E4M3", torch.int16: "I16", torch.float16: "F16",
           torch.bfloat16: "BF16", torch.int32: "I32", torch.float32: "F32", torch.float64: "F64",
           torch.int64: "I64"}[t.dtype]
    return {"dtype": tag, "torch_dtype": str(t.dtype).removeprefix("torch."), "shape": list(t.shape),
            "hex": raw.hex()}


torch_tensors = {
    "model.embed_tokens.weight": randn(11, 8, dtype=torch.bfloat16),
    "half": randn(7, dtype=torch.float16),
    "f32.block": randn(2, 3, 4),
    "f64": randn(3, dtype=torch.float64),
    "i64": torch.arange(-3, 5, dtype=torch.int64) * 1_000_000_007,
    "i32": torch.arange(-6, 6, dtype=torch.int32).reshape(3, 4),
    "i16": torch.tensor([-32768, 0, 32767], dtype=torch.int16),
    "i8": torch.tensor([-128, -1, 0, 127], dtype=torch.int8),
    "u8": torch.arange(250, 256, dtype=torch.uint8),
    "mask": torch.tensor([[True, False, True], [False, False, True], [True, True, True]]),
    "f8_e4m3": randn(5).to(torch.float8_e4m3fn),
    "f8_e5m2": randn(3).to(torch.float8_e5m2),
    "scalar": torch.tensor(3.25, dtype=torch.float32),  # 0-dim
    "empty": torch.zeros(0, 4, dtype=torch.float32),  # zero elements
    "odd.bf16": randn(3, dtype=torch.bfloat16),  # 6 bytes: an odd-sized tensor
}
single_meta = {"format": "pt", "note": "written by safetensors.torch"}
os.makedirs(os.path.join(out, "single"))
save_torch(torch_tensors, os.path.join(out, "single", "model.safetensors"), metadata=single_meta)

numpy_tensors = {
    "u16": np.array([0, 1, 65535], dtype=np.uint16),
    "u32": np.array([[0, 4294967295]], dtype=np.uint32),
    "u64": np.array([18446744073709551615, 7], dtype=np.uint64),
    "f32": np.linspace(-1, 1, 6, dtype=np.float32).reshape(2, 3),
    "flags": np.array([True, False]),
}
save_numpy(numpy_tensors, os.path.join(out, "numpy.safetensors"), metadata={"writer": "numpy"})
numpy_tags = {np.uint16: "U16", np.uint32: "U32", np.uint64: "U64", np.float32: "F32", np.bool_: "BOOL"}
numpy_manifest = {name: {"dtype": numpy_tags[a.dtype.type], "shape": list(a.shape), "hex": a.tobytes().hex()}
                  for name, a in numpy_tensors.items()}

# A small LLaMA-named checkpoint, sharded the way HF save_pretrained does (5-digit names + index).
sharded = {}
for i in range(3):
    for p in ("q", "k", "v", "o"):
        sharded[f"model.layers.{i}.self_attn.{p}_proj.weight"] = randn(16, 16, dtype=torch.bfloat16)
    sharded[f"model.layers.{i}.input_layernorm.weight"] = randn(16, dtype=torch.bfloat16)
sharded["model.norm.weight"] = randn(16)
sharded["lm_head.weight"] = randn(32, 16, dtype=torch.bfloat16)
os.makedirs(os.path.join(out, "sharded"))
save_torch_state_dict(sharded, os.path.join(out, "sharded"), max_shard_size=1500)
assert os.path.exists(os.path.join(out, "sharded", "model.safetensors.index.json"))

os.makedirs(os.path.join(out, "other_name"))
save_torch({"w": randn(4, 4)}, os.path.join(out, "other_name", "weights.safetensors"))

manifest = {
    "single": {"file": "single/model.safetensors", "metadata": single_meta,
               "tensors": {k: torch_entry(v) for k, v in torch_tensors.items()}},
    "numpy": {"file": "numpy.safetensors", "metadata": {"writer": "numpy"}, "tensors": numpy_manifest},
    "sharded": {"dir": "sharded", "tensors": {k: torch_entry(v) for k, v in sharded.items()},
                "shards": sorted(f for f in os.listdir(os.path.join(out, "sharded")) if f.endswith(".safetensors"))},
}
with open(os.path.join(out, "manifest.json"), "w") as f:
    json.dump(manifest, f, indent=1)
print(f"wrote fixtures to {out}: {len(manifest['sharded']['shards'])} shards")
