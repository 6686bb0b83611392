// The config.json of an exported student (merged export's config.json, PEFT export's
// student_config.json, the GGUF export's metadata source).
#pragma once
#include <nlohmann/json.hpp>

#include "model/model_config.h"

namespace linearard::exporter {

// The base config.json with the student's RoPE: rope_parameters (v5 form), a v4 mirror
// (top-level rope_theta + rope_scaling without rope_theta, null for default; transformers 5.x reads
// rope_scaling first when present, so the mirror must and does say the same thing), and
// max_position_embeddings = native length x factor for linear, yarn, llama3 and longrope with a
// factor (native = original_max_position_embeddings, else the base's max_position_embeddings).
// dynamic keeps max_position_embeddings: transformers' dynamic NTK measures lengths against it.
// Every other field is kept.
nlohmann::json student_config_json(const model::ModelConfig& base, const model::RopeParams& student_rope);

}  // namespace linearard::exporter
