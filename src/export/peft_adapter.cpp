#include "export/peft_adapter.h"

#include <cmath>
#include <sstream>

#include "common/error.h"
#include "export/student_config.h"
#include "io/atomic_file.h"
#include "io/checkpoint.h"

namespace linearard::exporter {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

// PEFT release whose adapter_config.json fields we write (the venv's peft, scripts/setup.sh).
constexpr const char* kPeftVersion = "0.21.0";

std::string number_text(double v) {
  std::ostringstream ss;
  ss << v;
  return ss.str();
}

// An integral double as a JSON integer (lora_alpha 8, not 8.0), as PEFT writes it.
json json_number(double v) {
  if (std::isfinite(v) && v == std::floor(v) && std::fabs(v) < 9e15) return static_cast<int64_t>(v);
  return v;
}

}  // namespace

json peft_adapter_config(const train::AdapterSpec& spec, const std::string& base_path) {
  return {
      {"peft_type", "LORA"},
      {"task_type", "CAUSAL_LM"},
      {"r", spec.rank},
      {"lora_alpha", json_number(spec.alpha)},
      {"lora_dropout", spec.dropout},
      {"target_modules", spec.targets},
      {"bias", "none"},
      {"base_model_name_or_path", base_path},
      {"revision", nullptr},
      {"inference_mode", true},
      {"fan_in_fan_out", false},
      {"use_rslora", false},
      {"use_dora", false},
      {"modules_to_save", nullptr},
      {"init_lora_weights", true},
      {"layers_to_transform", nullptr},
      {"layers_pattern", nullptr},
      {"rank_pattern", json::object()},
      {"alpha_pattern", json::object()},
      {"peft_version", kPeftVersion},
  };
}

void write_peft_files(const fs::path& dir, const std::string& base_model_dir, const train::TrainedAdapter& adapter,
                      const model::ModelConfig& base, const model::RopeParams& rope) {
  std::vector<std::pair<std::string, at::Tensor>> tensors;
  for (const auto& [name, t] : adapter.tensors) tensors.emplace_back(name, t.to(at::kFloat).contiguous());
  io::save_tensors((dir / "adapter_model.safetensors").string(), tensors, {{"format", "pt"}});

  const std::string base_path = io::normalized_path(base_model_dir);
  io::write_file_atomic((dir / "adapter_config.json").string(), peft_adapter_config(adapter.spec, base_path).dump(2) + "\n");
  io::write_file_atomic((dir / "student_config.json").string(), student_config_json(base, rope).dump(2) + "\n");

  std::ostringstream md;
  md << "# LinearARD student: LoRA adapter\n\n"
     << "LoRA on " << json(adapter.spec.targets).dump() << ", r = " << adapter.spec.rank
     << ", lora_alpha = " << number_text(adapter.spec.alpha) << ", trained by `linearard` on the base model\n"
     << "`" << base_path << "` with the RoPE scaling\n\n    " << rope.to_json().dump() << "\n\n"
     << "**The adapter does not carry that RoPE scaling.** Loading it on the base model with the base\n"
     << "model's own config gives a student with the wrong positions. Load the base with\n"
     << "`student_config.json` (the base config.json with the student's `rope_parameters`, a\n"
     << "transformers v4 `rope_scaling` mirror and `max_position_embeddings`), ADAPTER_DIR being\n"
     << "this directory:\n\n"
     << "```python\n"
     << "from transformers import AutoConfig, AutoModelForCausalLM\n"
     << "from peft import PeftModel\n\n"
     << "config = AutoConfig.from_pretrained(\"ADAPTER_DIR/student_config.json\")\n"
     << "base = AutoModelForCausalLM.from_pretrained(\"" << base_path << "\", config=config)\n"
     << "model = PeftModel.from_pretrained(base, \"ADAPTER_DIR\")\n"
     << "```\n\n"
     << "`AutoPeftModelForCausalLM.from_pretrained(ADAPTER_DIR)` loads the base with its own config\n"
     << "and therefore without the scaling. For servers and tools that take one model directory\n"
     << "(vLLM, llama.cpp conversion), use the merged export: `linearard export --format merged`.\n";
  io::write_file_atomic((dir / "README.md").string(), md.str());
}

}  // namespace linearard::exporter
