#include "eval/eval_model.h"

#include <ATen/Context.h>

#include "common/error.h"

namespace linearard::eval {

at::ScalarType parse_dtype(const std::string& s, const std::string& flag) {
  if (s == "bf16" || s == "bfloat16") return at::kBFloat16;
  if (s == "fp16" || s == "float16") return at::kHalf;
  if (s == "fp32" || s == "float32") return at::kFloat;
  fail(flag, "unknown dtype '" + s + "' (expected bf16, fp16 or fp32)");
}

at::Device parse_device(const std::string& s, const std::string& flag) {
  if (s == "cpu") return at::Device(at::kCPU);
  if (s.rfind("cuda", 0) == 0) {
    if (!at::hasCUDA()) fail(flag, "'" + s + "' asked for but this LibTorch sees no CUDA device");
    try {
      return at::Device(s);
    } catch (const std::exception&) {
      fail(flag, "invalid CUDA device '" + s + "'");
    }
  }
  fail(flag, "unknown device '" + s + "' (expected cpu, cuda or cuda:N)");
}

std::string dtype_name(at::ScalarType t) {
  switch (t) {
    case at::kBFloat16: return "bf16";
    case at::kHalf: return "fp16";
    case at::kFloat: return "fp32";
    default: return c10::toString(t);
  }
}

model::RopeParams resolve_rope(const model::ModelConfig& config, const std::string& rope_override,
                               const std::string& flag) {
  if (rope_override.empty()) return config.rope;
  return model::parse_rope_override(rope_override, config, flag);  // validates too
}

nlohmann::json describe_model(const EvalModel& m) {
  nlohmann::json j;
  j["name"] = m.name;
  j["dir"] = m.dir;
  j["rope"] = m.rope.to_json();
  j["rope_description"] = model::describe_rope(m.rope);
  j["rope_override"] = m.rope_override;
  if (m.model) {
    j["dtype"] = dtype_name(m.model->dtype());
    j["device"] = m.model->device().str();
    j["max_position_embeddings"] = m.model->config().max_position_embeddings;
    j["parameters"] = m.model->parameter_count();
  }
  return j;
}

}  // namespace linearard::eval
