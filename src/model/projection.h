// The seven linear projections of a decoder layer (model::Projection, llama.h): their checkpoint
// names, module paths and weight shapes, as transformers' modeling_llama.py lays them out. One place
// for the adapters (train/qkv_adapter) and the exporters (export/).
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <utility>

#include "model/llama.h"
#include "model/model_config.h"

namespace linearard::model {

// "q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"
const char* projection_name(Projection p);
// The inverse of projection_name (long names only); nullopt for anything else.
std::optional<Projection> projection_from_name(const std::string& name);
// The module path inside a layer: "self_attn.q_proj" ... "mlp.down_proj".
std::string projection_path(Projection p);
// (out, in) of a projection's weight: q (H*D, C), k/v (Hk*D, C), o (C, H*D), gate/up (F, C), down (C, F).
std::pair<int64_t, int64_t> projection_shape(const ModelConfig& config, Projection p);

}  // namespace linearard::model
