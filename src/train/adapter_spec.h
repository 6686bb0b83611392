// What the student trains on top of the frozen base weights: the one description of an adapter
// that the flags fill (train_options.h), the trainer builds (qkv_adapter.h), the checkpoint records
// (adapter.json and train_state.json's task.adapter, checkpoint_format.md) and the exporter reads
// (export/): one struct, one JSON form, one reader. PEFT's adapter_config.json spelling (r,
// lora_alpha, ...) exists only in the exporter (export/peft_adapter.cpp). Torch-free.
//
// JSON form (to_json / adapter_spec_from_json):
//   {"kind": "lora" | "qkv_delta", "rank": r, "alpha": a, "dropout": p,   (0, 0.0, 0.0 for qkv_delta)
//    "target_modules": ["q_proj", "k_proj", "v_proj"]}                     (layer order, no repeats)
// The reader also takes the spelling that train_state.json's task.adapter had before this form:
// {"kind": "lora" | "full", "r", "lora_alpha", "lora_dropout", "target_modules"}.
#pragma once
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace linearard::train {

struct AdapterSpec {
  // lora: LoRA on `targets`; full (--train-qkv full, "qkv_delta" in JSON): float32 deltas of the
  // q/k/v weights (targets q/k/v, rank/alpha/dropout unused).
  std::string kind = "lora";
  int64_t rank = 1024;  // reference r = 1024, alpha = 2048, dropout 0.05 (LinearARD's released training scripts)
  double alpha = 2048;  // scaling = alpha / rank (no rsLoRA)
  double dropout = 0.05;
  // --lora-targets: the LoRA's modules, canonical names in layer order (parse_lora_targets).
  std::vector<std::string> targets = {"q_proj", "k_proj", "v_proj"};

  bool is_lora() const { return kind == "lora"; }
  // The kind as adapter.json and the exporter's messages spell it: "lora" or "qkv_delta".
  std::string json_kind() const { return is_lora() ? "lora" : "qkv_delta"; }
};

// The seven linears of a LLaMA layer in checkpoint order (transformers' modeling_llama.py).
const std::vector<std::string>& adapter_modules();
// q_proj, k_proj, v_proj: the default targets, and the only ones of a full (qkv_delta) adapter.
const std::vector<std::string>& default_adapter_targets();

// --lora-targets: a comma list (or several items) of q_proj, k_proj, v_proj, o_proj, gate_proj,
// up_proj, down_proj, their short forms q, k, v, o, gate, up, down, or all; returns the canonical
// names without repeats in that order. Errors are OptionErrors of `lora-targets`.
std::vector<std::string> parse_lora_targets(const std::vector<std::string>& items);

// The JSON form above; a full adapter writes rank 0, alpha 0.0, dropout 0.0.
nlohmann::json to_json(const AdapterSpec& spec);
// Reads and checks the JSON form (or the older spelling); errors are one line "<where>: <field> ...".
// Other keys of the object are ignored (adapter.json keeps its base model and RoPE next to these).
AdapterSpec adapter_spec_from_json(const nlohmann::json& j, const std::string& where);

bool operator==(const AdapterSpec& a, const AdapterSpec& b);
inline bool operator!=(const AdapterSpec& a, const AdapterSpec& b) { return !(a == b); }

}  // namespace linearard::train
