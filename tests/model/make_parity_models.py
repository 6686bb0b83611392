"""Writes tiny random LLaMA-family checkpoints (llama, mistral, qwen2, qwen3) with transformers, plus transformers' own outputs on
them: logits and the post-RoPE Q, K and the V that each layer hands to its attention function.
The C++ parity test (test_model_parity.cpp) loads the checkpoints with linearard and compares.

Layout: $LINEARARD_FIXTURES_DIR/parity/cases.json and, per case, <case>/model (the HF directory)
and <case>/expected/expected.safetensors.
"""
import json
import os
import sys

import torch
import transformers
from safetensors.torch import save_file
from transformers.models.llama import modeling_llama
from transformers.models.mistral import modeling_mistral
from transformers.models.qwen2 import modeling_qwen2
from transformers.models.qwen3 import modeling_qwen3

OUT = os.path.join(os.environ["LINEARARD_FIXTURES_DIR"], "parity")
CAPTURED = []


def recording(original):
    """Wraps a modeling file's eager_attention_forward to record its (post-RoPE) inputs."""
    def wrapper(module, query, key, value, attention_mask, **kwargs):
        CAPTURED.append((module.layer_idx, query.detach().clone(), key.detach().clone(), value.detach().clone()))
        return original(module, query, key, value, attention_mask, **kwargs)
    return wrapper


for module in (modeling_llama, modeling_mistral, modeling_qwen2, modeling_qwen3):
    module.eager_attention_forward = recording(module.eager_attention_forward)

BASE = dict(hidden_size=64, intermediate_size=96, num_hidden_layers=2, num_attention_heads=4,
            num_key_value_heads=4, head_dim=16, vocab_size=101, max_position_embeddings=64,
            rms_norm_eps=1e-5, rope_theta=10000.0, tie_word_embeddings=False)
HALF = BASE["head_dim"] // 2
LONGROPE = {"rope_type": "longrope", "original_max_position_embeddings": 32, "factor": 4.0,
            "short_factor": [1.0 + 0.05 * i for i in range(HALF)],
            "long_factor": [1.5 + 0.4 * i for i in range(HALF)]}

# name, model_type, config overrides, T, batch, padding, rope given on the command line instead of in config.json
CASES = [
    ("llama_default_mha", "llama", {}, 24, 1, False, None),
    ("llama_linear_gqa", "llama", {"num_key_value_heads": 2,
                                   "rope_scaling": {"rope_type": "linear", "factor": 4.0}}, 40, 1, False, None),
    ("llama_legacy_type_key", "llama", {"rope_scaling": {"type": "linear", "factor": 2.0}}, 20, 1, False, None),
    ("llama_dynamic_short", "llama", {"rope_scaling": {"rope_type": "dynamic", "factor": 2.0}}, 40, 1, False, None),
    ("llama_dynamic_beyond", "llama", {"num_key_value_heads": 2,
                                       "rope_scaling": {"rope_type": "dynamic", "factor": 2.0}}, 90, 1, False, None),
    ("llama_yarn", "llama", {"rope_scaling": {"rope_type": "yarn", "factor": 4.0,
                                              "original_max_position_embeddings": 64}}, 48, 1, False, None),
    ("llama_yarn_mscale", "llama", {"num_key_value_heads": 1,
                                    "rope_scaling": {"rope_type": "yarn", "factor": 8.0, "mscale": 0.707,
                                                     "mscale_all_dim": 1.0, "beta_fast": 16, "beta_slow": 2,
                                                     "original_max_position_embeddings": 16}}, 30, 1, False, None),
    ("llama_longrope_short", "llama", {"rope_scaling": dict(LONGROPE)}, 24, 1, False, None),
    ("llama_longrope_long", "llama", {"rope_scaling": dict(LONGROPE)}, 50, 1, False, None),
    ("llama3_scaling", "llama", {"num_key_value_heads": 2, "rope_theta": 500000.0,
                                 "rope_scaling": {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                                                  "high_freq_factor": 4.0,
                                                  "original_max_position_embeddings": 32}}, 36, 1, False, None),
    ("llama_bias_tied", "llama", {"attention_bias": True, "mlp_bias": True, "tie_word_embeddings": True},
     16, 1, False, None),
    ("llama_padded_batch", "llama", {"num_key_value_heads": 2,
                                     "rope_scaling": {"rope_type": "linear", "factor": 4.0}}, 20, 3, True, None),
    ("llama_cli_rope_override", "llama", {"num_key_value_heads": 2}, 32, 1, False,
     {"rope_type": "yarn", "factor": 4.0}),
    ("mistral_gqa", "mistral", {"num_key_value_heads": 2, "sliding_window": None}, 28, 2, False, None),
    ("mistral_sliding_window", "mistral", {"num_key_value_heads": 2, "sliding_window": 12}, 30, 1, False, None),
    ("qwen2_gqa_bias", "qwen2", {"num_key_value_heads": 2, "tie_word_embeddings": True,
                                 "rope_scaling": {"rope_type": "yarn", "factor": 2.0,
                                                  "original_max_position_embeddings": 64}}, 26, 2, True, None),
    # Qwen3: per-head q/k RMSNorm before RoPE, head_dim 24 (not hidden_size / heads = 16), GQA, padding.
    ("qwen3_gqa_qk_norm", "qwen3", {"num_key_value_heads": 2, "head_dim": 24}, 26, 2, True, None),
    ("qwen3_bias_tied_linear", "qwen3", {"attention_bias": True, "tie_word_embeddings": True,
                                         "rope_scaling": {"rope_type": "linear", "factor": 2.0}}, 20, 1, False, None),
]


# Cases whose config.json is rewritten in the transformers v4 form (top-level rope_theta +
# rope_scaling), one of them with the legacy "type" key, as older checkpoints on the Hub have it.
V4_FORM = {"llama_legacy_type_key", "llama3_scaling", "mistral_gqa"}
LEGACY_TYPE_KEY = {"llama_legacy_type_key"}


def rewrite_config_v4(path, legacy_type_key):
    with open(path) as f:
        config = json.load(f)
    rope = config.pop("rope_parameters")
    config["rope_theta"] = rope.pop("rope_theta")
    if rope.get("rope_type", "default") != "default":
        if legacy_type_key:
            rope["type"] = rope.pop("rope_type")
        config["rope_scaling"] = rope
    with open(path, "w") as f:
        json.dump(config, f, indent=1)


def make_case(index, name, model_type, overrides, T, batch, padded, cli_rope):
    torch.manual_seed(1000 + index)
    fields = dict(BASE)
    fields.update(overrides)
    config_cls = transformers.AutoConfig.for_model(model_type).__class__
    saved_config = config_cls(**fields)
    if cli_rope is not None:  # the checkpoint keeps its native RoPE; the reference runs the scaled one
        run_fields = dict(fields)
        run_fields["rope_scaling"] = dict(cli_rope)
        run_config = config_cls(**run_fields)
    else:
        run_config = saved_config
    run_config._attn_implementation = "eager"
    model = transformers.AutoModelForCausalLM.from_config(run_config, attn_implementation="eager")
    model = model.float().eval()
    with torch.no_grad():  # larger than default init so every layer matters
        for p in model.parameters():
            p.normal_(0.0, 0.08)
        for pname, p in model.named_parameters():  # q/k norm weights near 1: the attention stays peaked
            if pname.endswith(("q_norm.weight", "k_norm.weight")):
                p.normal_(1.0, 0.3)
    case_dir = os.path.join(OUT, name)
    model.config = saved_config
    model.save_pretrained(os.path.join(case_dir, "model"), safe_serialization=True)
    model.config = run_config
    if name in V4_FORM:
        rewrite_config_v4(os.path.join(case_dir, "model", "config.json"), legacy_type_key=name in LEGACY_TYPE_KEY)

    ids = torch.randint(0, fields["vocab_size"], (batch, T))
    mask = torch.ones(batch, T, dtype=torch.long)
    if padded:  # left padding on row 1, right padding on the last row
        mask[1, :5] = 0
        if batch > 2:
            mask[-1, -7:] = 0
    CAPTURED.clear()
    with torch.no_grad():
        logits = model(input_ids=ids, attention_mask=mask).logits
    tensors = {"input_ids": ids, "key_mask": mask, "logits": logits.float().contiguous()}
    assert len(CAPTURED) == fields["num_hidden_layers"], "every layer must be captured once"
    for layer, q, k, v in CAPTURED:
        tensors[f"layer{layer}.q"] = q.float().contiguous()
        tensors[f"layer{layer}.k"] = k.float().contiguous()
        tensors[f"layer{layer}.v"] = v.float().contiguous()
    os.makedirs(os.path.join(case_dir, "expected"), exist_ok=True)
    save_file(tensors, os.path.join(case_dir, "expected", "expected.safetensors"))
    return {"name": name, "model_type": model_type, "T": T, "batch": batch, "padded": padded,
            "rope_override": json.dumps(cli_rope) if cli_rope else "",
            "layers": fields["num_hidden_layers"]}


def main():
    os.makedirs(OUT, exist_ok=True)
    cases = [make_case(i, *c) for i, c in enumerate(CASES)]
    with open(os.path.join(OUT, "cases.json"), "w") as f:
        json.dump({"transformers": transformers.__version__, "cases": cases}, f, indent=1)
    print(f"wrote {len(cases)} parity cases to {OUT} (transformers {transformers.__version__})")


if __name__ == "__main__":
    sys.exit(main())
