"""Independent reference of the distillation loss and its LoRA gradients (float64).

Usage: reference_distill.py MODEL_DIR CASE_DIR. CASE_DIR holds what the C++ test dumped:
inputs.safetensors (input_ids and the LoRA tensors under PEFT's adapter keys) and case.json (the
objective's options and the LoRA's "targets", default q_proj, k_proj, v_proj). Writes CASE_DIR/reference.safetensors: the loss, its parts and grad.<key> for
every LoRA tensor.

Teacher: transformers with the checkpoint's RoPE. Student: transformers with the scaled RoPE
wrapped by PEFT LoRA on the target modules, loaded from the dumped tensors. Post-RoPE Q, K and V (K/V not
repeated for GQA) are captured by wrapping eager_attention_forward; the relation KL is a naive
materialised float64 computation.
"""
import json
import math
import os
import sys

import peft
import torch
import transformers
from safetensors.torch import load_file, save_file
from transformers.models.llama import modeling_llama

CAPTURED = {}
LAYER_OUT = {}  # id(model) -> {layer: the decoder layer's output (B, T, C)}


def record_layer_outputs(model):
    """Forward hooks on every decoder layer: the residual stream after the layer (the hidden-state
    term's h; transformers' hidden_states holds it too, except the last layer's, which it gives
    after the final norm)."""
    store = LAYER_OUT.setdefault(id(model), {})
    for m in model.modules():
        if isinstance(m, modeling_llama.LlamaDecoderLayer):
            idx = m.self_attn.layer_idx
            m.register_forward_hook(lambda mod, inp, out, idx=idx: store.__setitem__(
                idx, out[0] if isinstance(out, tuple) else out))
    return store


def recording(original):
    def wrapper(module, query, key, value, attention_mask, **kwargs):
        CAPTURED[module.layer_idx] = (query, key, value)
        return original(module, query, key, value, attention_mask, **kwargs)
    return wrapper


modeling_llama.eager_attention_forward = recording(modeling_llama.eager_attention_forward)


def relation_kl_sum(xs, xt, scale):
    """sum over (b, h, i) of KL(p_t(i, .) || p_s(i, .)), causal rows including the diagonal."""
    T = xs.shape[-2]
    causal = torch.ones(T, T, dtype=torch.bool).tril()
    ls = torch.log_softmax((xs @ xs.transpose(-1, -2) * scale).masked_fill(~causal, -math.inf), -1)
    lt = torch.log_softmax((xt @ xt.transpose(-1, -2) * scale).masked_fill(~causal, -math.inf), -1)
    return (lt.exp() * (lt - ls)).masked_fill(~causal, 0.0).sum()


def load(model_dir, rope):
    config = transformers.AutoConfig.from_pretrained(model_dir)
    if rope is not None:
        config.rope_parameters = dict(rope, rope_theta=config.rope_parameters["rope_theta"])
    return transformers.AutoModelForCausalLM.from_pretrained(
        model_dir, config=config, dtype=torch.float64, attn_implementation="eager").eval()


def main(model_dir, case_dir):
    case = json.load(open(os.path.join(case_dir, "case.json")))
    inputs = load_file(os.path.join(case_dir, "inputs.safetensors"))
    ids = inputs.pop("input_ids")
    B, T = ids.shape

    teacher = load(model_dir, None)
    t_out = record_layer_outputs(teacher)
    with torch.no_grad():
        CAPTURED.clear()
        t_logits = teacher(input_ids=ids).logits
        t_caps = {l: tuple(x.detach() for x in c) for l, c in CAPTURED.items()}

    student = load(model_dir, case["rope"])
    lora = peft.LoraConfig(r=case["r"], lora_alpha=case["alpha"], lora_dropout=0.0,
                           target_modules=case.get("targets", ["q_proj", "k_proj", "v_proj"]), bias="none")
    student = peft.get_peft_model(student, lora)
    lora_tensors = {k: v.double() for k, v in inputs.items()}
    result = peft.set_peft_model_state_dict(student, lora_tensors)
    assert not result.unexpected_keys, result.unexpected_keys
    lora_names = {n.replace(".default", "") for n, _ in student.named_parameters() if "lora_" in n}
    assert lora_names == set(lora_tensors), sorted(lora_names ^ set(lora_tensors))[:4]
    s_out = record_layer_outputs(student)
    CAPTURED.clear()
    s_logits = student(input_ids=ids).logits
    s_caps = dict(CAPTURED)

    cfg = teacher.config
    H, Hk, D = cfg.num_attention_heads, cfg.num_key_value_heads, cfg.head_dim
    heads_kv = Hk if case["kv_normalization"] == "kv-heads" else H
    layers = case["layers"] or list(range(cfg.num_hidden_layers))
    scale = 1.0 / math.sqrt(D)
    parts = {}
    for rel, idx, heads in (("q", 0, H), ("k", 1, heads_kv), ("v", 2, heads_kv)):
        if rel not in case["relations"]:
            continue
        total = sum(relation_kl_sum(s_caps[l][idx], t_caps[l][idx], scale) for l in layers)
        parts[rel] = total * case["weight_" + rel] / (B * T * heads) / len(layers)
    if case["logits_kl_weight"]:
        k = min(case["logits_kl_last"] or T, T)  # 0 = every position
        tau = case["temperature"]
        ls = torch.log_softmax(s_logits[:, -k:] / tau, -1)
        lt = torch.log_softmax(t_logits[:, -k:] / tau, -1)
        parts["logits"] = (lt.exp() * (lt - ls)).sum() / (B * k)
    if case["lm_weight"]:
        parts["lm"] = torch.nn.functional.cross_entropy(s_logits[:, :-1].reshape(-1, s_logits.shape[-1]),
                                                        ids[:, 1:].reshape(-1))
    if case.get("hidden_weight", 0):
        cos = [torch.nn.functional.cosine_similarity(s_out[l], t_out[l].detach(), dim=-1) for l in layers]
        parts["hidden"] = case["hidden_weight"] * sum((1 - c).mean() for c in cos) / len(layers)
    loss = sum(v for k, v in parts.items() if k in ("q", "k", "v", "hidden"))
    if "logits" in parts:
        loss = loss + case["logits_kl_weight"] * parts["logits"]
    if "lm" in parts:
        loss = loss + case["lm_weight"] * parts["lm"]
    loss.backward()

    out = {"loss": loss.detach()}
    out.update({k: v.detach() for k, v in parts.items()})
    for name, p in student.named_parameters():
        if "lora_" in name:
            key = name.replace(".default", "")
            out["grad." + key] = p.grad if p.grad is not None else torch.zeros_like(p)
    save_file({k: v.reshape(v.shape).contiguous() for k, v in out.items()},
              os.path.join(case_dir, "reference.safetensors"))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
