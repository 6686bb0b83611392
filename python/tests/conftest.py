"""Shared pieces of the package tests: tiny random checkpoints of the supported architectures and
the `linearard` binary (LINEARARD_BIN, default build/linearard, which scripts/test.sh builds)."""
import os
import pathlib

import pytest
import torch

REPO = pathlib.Path(__file__).resolve().parents[2]
STUDENT_ROPE = {"rope_type": "linear", "factor": 4.0}


def write_tiny_model(directory, model_type="llama", seed=0):
    """A 2-3 layer GQA model of `model_type`; weights drawn larger than the default init so that the
    relation logits are O(1) and the KLs stand well above float32 rounding."""
    import transformers

    fields = dict(hidden_size=64, intermediate_size=96, num_hidden_layers=3, num_attention_heads=4,
                  num_key_value_heads=2, head_dim=16, vocab_size=101, max_position_embeddings=64,
                  rms_norm_eps=1e-5, rope_theta=10000.0, tie_word_embeddings=False)
    if model_type == "qwen3":
        fields.update(head_dim=24, num_hidden_layers=2)
    torch.manual_seed(seed)
    config = transformers.AutoConfig.for_model(model_type, **fields)
    model = transformers.AutoModelForCausalLM.from_config(config).float()
    with torch.no_grad():
        for name, p in model.named_parameters():
            p.normal_(1.0 if "norm" in name else 0.0, 0.1)
    model.save_pretrained(directory, safe_serialization=True)
    return str(directory)


def load_student(model_dir, rope=STUDENT_ROPE, **kwargs):
    """The checkpoint with the student's RoPE, as the README shows."""
    import transformers

    config = transformers.AutoConfig.from_pretrained(model_dir)
    config.rope_parameters = {**config.rope_parameters, **rope}
    return transformers.AutoModelForCausalLM.from_pretrained(model_dir, config=config, **kwargs)


def lora(model, targets=("q_proj", "k_proj", "v_proj"), r=4, alpha=8):
    import peft

    return peft.get_peft_model(model, peft.LoraConfig(r=r, lora_alpha=alpha, lora_dropout=0.0,
                                                      target_modules=list(targets)))


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory):
    root = tmp_path_factory.mktemp("models")
    return {t: write_tiny_model(root / t, t, seed=i) for i, t in enumerate(("llama", "mistral", "qwen2", "qwen3"))}


@pytest.fixture(scope="session")
def linearard_bin():
    path = pathlib.Path(os.environ.get("LINEARARD_BIN", REPO / "build" / "linearard"))
    if not path.is_file():
        pytest.fail(f"the linearard binary is not at {path}: build it (scripts/test.sh does) or set LINEARARD_BIN")
    return str(path)
