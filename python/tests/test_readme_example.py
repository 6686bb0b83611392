"""The README's HF Trainer + PEFT + RelationDistillLoss example runs as written on a tiny model
and trains the adapter it saves."""
import json
import re
import subprocess
import sys

import torch
from safetensors.torch import load_file

from conftest import REPO


def readme_example():
    text = (REPO / "README.md").read_text()
    section = text.split("## From Python (PyTorch, transformers, PEFT)", 1)[1]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_readme_example_runs(tiny_models, tmp_path):
    (tmp_path / "distill_hf.py").write_text(readme_example())
    blocks = torch.randint(0, 101, (8, 32), generator=torch.Generator().manual_seed(5))
    (tmp_path / "blocks.json").write_text(json.dumps(blocks.tolist()))
    run = subprocess.run([sys.executable, "distill_hf.py", tiny_models["llama"], "blocks.json"], cwd=tmp_path,
                         capture_output=True, text=True)
    assert run.returncode == 0, run.stderr[-4000:]
    adapter = load_file(tmp_path / "out" / "distill" / "adapter" / "adapter_model.safetensors")
    lora_b = [t for name, t in adapter.items() if "lora_B" in name]
    assert lora_b and all(t.abs().max() > 0 for t in lora_b)  # B starts at 0: the Trainer's steps moved it
