#include "export/student_config.h"

#include <cmath>
#include <cstdint>

namespace linearard::exporter {

using nlohmann::json;

json student_config_json(const model::ModelConfig& base, const model::RopeParams& rope) {
  json j = base.raw;
  j.erase("rope_scaling");
  j.erase("rope_parameters");
  json params = rope.to_json();
  j["rope_parameters"] = params;
  j["rope_theta"] = rope.theta;
  if (rope.type == "default") {
    j["rope_scaling"] = nullptr;
  } else {
    json mirror = params;
    mirror.erase("rope_theta");  // v4 reads the top-level rope_theta
    j["rope_scaling"] = mirror;
  }
  // transformers 5.x prefers a top-level original_max_position_embeddings (Phi-3 case) over the dict's.
  if (j.contains("original_max_position_embeddings") && rope.original_max_position_embeddings)
    j["original_max_position_embeddings"] = *rope.original_max_position_embeddings;
  const bool sized = rope.type == "linear" || rope.type == "yarn" || rope.type == "llama3" ||
                     (rope.type == "longrope" && rope.factor.has_value());
  if (sized && rope.factor) {
    const int64_t native = rope.original_max_position_embeddings.value_or(base.max_position_embeddings);
    j["max_position_embeddings"] = static_cast<int64_t>(std::llround(static_cast<double>(native) * *rope.factor));
  }
  return j;
}

}  // namespace linearard::exporter
