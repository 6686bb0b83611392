#include "model/projection.h"

namespace linearard::model {

const char* projection_name(Projection p) {
  switch (p) {
    case Projection::kQuery: return "q_proj";
    case Projection::kKey: return "k_proj";
    case Projection::kValue: return "v_proj";
    case Projection::kOutput: return "o_proj";
    case Projection::kGate: return "gate_proj";
    case Projection::kUp: return "up_proj";
    default: return "down_proj";
  }
}

std::optional<Projection> projection_from_name(const std::string& name) {
  for (int i = 0; i < kProjectionCount; ++i)
    if (name == projection_name(Projection(i))) return Projection(i);
  return std::nullopt;
}

std::string projection_path(Projection p) {
  return std::string(int(p) <= int(Projection::kOutput) ? "self_attn." : "mlp.") + projection_name(p);
}

std::pair<int64_t, int64_t> projection_shape(const ModelConfig& c, Projection p) {
  const int64_t C = c.hidden_size, F = c.intermediate_size, D = c.head_dim;
  switch (p) {
    case Projection::kQuery: return {c.num_attention_heads * D, C};
    case Projection::kKey:
    case Projection::kValue: return {c.num_key_value_heads * D, C};
    case Projection::kOutput: return {C, c.num_attention_heads * D};
    case Projection::kGate:
    case Projection::kUp: return {F, C};
    default: return {C, F};
  }
}

}  // namespace linearard::model
