// The "training checkpoint adapter": the two files through which the trainer hands its result to
// the exporter (written into final/ by train/tasks.cpp, read by `linearard export --checkpoint DIR`,
// export/). Anything else in DIR is ignored.
//   DIR/adapter.safetensors  the tensors of TrainedAdapter::tensors under their key names, any float
//                            dtype (float32 recommended), metadata {"format": "pt"}. Other tensors
//                            in the file are ignored, so it may be the trainer's trainable.safetensors:
//                            adapter.json's optional "tensors" names the file (default adapter.safetensors).
//   DIR/adapter.json         the AdapterSpec's JSON form (train/adapter_spec.h) plus
//                            {"format": "linearard.trained_adapter", "version": 1,
//                             "base_model": "<base model dir>",
//                             "student_rope": {<rope_parameters dict, transformers v5 form>},
//                             "tensors": "adapter.safetensors"}  (optional)
//   adapter.json is written last, so its presence means the pair is complete.
// Tensor keys and shapes (C = hidden_size, F = intermediate_size, H/Hk = query/key-value heads,
// D = head_dim; {path} = self_attn.{q,k,v,o}_proj or mlp.{gate,up,down}_proj):
//   lora       base_model.model.model.layers.{i}.{path}.lora_A.weight  (r, in)
//              base_model.model.model.layers.{i}.{path}.lora_B.weight  (out, r)
//              (out, in) of the weight: q (H*D, C), k/v (Hk*D, C), o (C, H*D), gate/up (F, C),
//              down (C, F); delta W = (B @ A) * alpha / r
//   qkv_delta  model.layers.{i}.self_attn.{q,k,v}_proj.weight_delta                    (out, C)
// Every layer must have every target module (both A and B for LoRA).
#pragma once
#include <ATen/ATen.h>

#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <string>

#include "model/model_config.h"
#include "train/adapter_spec.h"

namespace linearard::train {

// What a training run produced.
struct TrainedAdapter {
  AdapterSpec spec;
  std::map<std::string, at::Tensor> tensors;  // key names above
};

// Key names, e.g. lora_key(3, "k_proj", 'B') = "base_model.model.model.layers.3.self_attn.k_proj.lora_B.weight",
// lora_key(0, "up_proj", 'A') = "base_model.model.model.layers.0.mlp.up_proj.lora_A.weight".
std::string lora_key(int64_t layer, const std::string& module, char which);
std::string qkv_delta_key(int64_t layer, const std::string& module);

struct AdapterCheckpoint {
  TrainedAdapter adapter;       // tensors converted to float32, owned (writable)
  std::string base_model_dir;   // as recorded by the trainer
  nlohmann::json student_rope;  // rope_parameters dict; parse with model::parse_rope_override
};

// adapter.json's content; a trainer that already writes the tensors into its own checkpoint file
// writes this with tensors_file = that file's name instead of calling save_adapter_checkpoint.
nlohmann::json adapter_checkpoint_json(const AdapterSpec& spec, const std::string& base_model_dir,
                                       const model::RopeParams& student_rope,
                                       const std::string& tensors_file = "adapter.safetensors");
// Writes DIR/adapter.safetensors (the tensors) then DIR/adapter.json, each atomically.
void save_adapter_checkpoint(const std::string& dir, const TrainedAdapter& adapter,
                             const std::string& base_model_dir, const model::RopeParams& student_rope);
// Reads DIR/adapter.json (adapter_spec_from_json: errors name the file and the field) and the
// tensors it names: the LoRA A/B or weight_delta keys, other tensors of the file are skipped.
// Shapes are checked by the exporter (export/adapter_weights.h), which needs the base config.
AdapterCheckpoint load_adapter_checkpoint(const std::string& dir);

}  // namespace linearard::train
