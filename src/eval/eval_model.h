// A model as the evaluations see it: one DecoderModel plus the RoPE it runs with. The "scaled"
// model of a restoration report is the teacher's weights with another RoPE, so one loaded
// DecoderModel can serve several EvalModels (see report.h).
#pragma once
#include <ATen/ATen.h>

#include <nlohmann/json.hpp>
#include <string>

#include "model/llama.h"

namespace linearard::eval {

struct EvalModel {
  const model::DecoderModel* model = nullptr;
  model::RopeParams rope;  // the checkpoint's RoPE or a --rope-scaling override
  std::string name;        // "teacher", "scaled", ... or the directory
  std::string dir;         // checkpoint directory
  std::string rope_override;  // the --rope-scaling text, empty when the checkpoint's RoPE is used
};

// "bf16" | "fp16" | "fp32" (flag names the option in errors).
at::ScalarType parse_dtype(const std::string& s, const std::string& flag);
// "cpu" | "cuda" | "cuda:N"; fails clearly when CUDA is asked for and absent.
at::Device parse_device(const std::string& s, const std::string& flag);
std::string dtype_name(at::ScalarType t);

// The RoPE a model runs with: the checkpoint's, or `rope_override` (inline JSON or a file) parsed
// against its config. `flag` names the option in errors.
model::RopeParams resolve_rope(const model::ModelConfig& config, const std::string& rope_override,
                               const std::string& flag);

// What a results file records about the model: directory, RoPE (rope_parameters form and a
// one-line description), dtype, device, native context.
nlohmann::json describe_model(const EvalModel& m);

}  // namespace linearard::eval
