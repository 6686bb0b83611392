#include "export/merged_hf.h"

#include <algorithm>
#include <cctype>
#include <map>
#include <sstream>

#include "common/error.h"
#include "export/adapter_weights.h"
#include "export/student_config.h"
#include "io/atomic_file.h"
#include "io/checkpoint.h"
#include "io/safetensors.h"
#include "model/projection.h"

namespace linearard::exporter {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

std::string shape_of(const at::Tensor& t) { return io::format_shape(t.sizes().vec()); }

// "self_attn.q_proj", "mlp.down_proj", ...: the module's path inside a layer.
std::string module_path(const std::string& m) {
  const auto p = model::projection_from_name(m);
  if (!p) fail("adapter", "'" + m + "' is not one of q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj");
  return model::projection_path(*p);
}

// Numeric-aware order (layers.2 before layers.10), close to the order HF writes a state dict.
bool natural_less(const std::string& a, const std::string& b) {
  size_t i = 0, j = 0;
  while (i < a.size() && j < b.size()) {
    if (std::isdigit(static_cast<unsigned char>(a[i])) && std::isdigit(static_cast<unsigned char>(b[j]))) {
      size_t ie = i, je = j;
      while (ie < a.size() && std::isdigit(static_cast<unsigned char>(a[ie]))) ++ie;
      while (je < b.size() && std::isdigit(static_cast<unsigned char>(b[je]))) ++je;
      const std::string na = a.substr(i, ie - i), nb = b.substr(j, je - j);
      if (na.size() != nb.size()) return na.size() < nb.size();
      if (na != nb) return na < nb;
      i = ie, j = je;
    } else {
      if (a[i] != b[j]) return a[i] < b[j];
      ++i, ++j;
    }
  }
  return a.size() - i < b.size() - j;
}

// Files of the base directory that are neither weights nor config: tokenizer, generation config,
// chat template, license. Hidden files and subdirectories (e.g. Meta's original/) are skipped.
bool copy_with_merged(const std::string& name) {
  if (name.empty() || name[0] == '.' || name == "config.json" || name == "README.md") return false;
  static const char* kWeightSuffixes[] = {".safetensors", ".bin", ".pt", ".pth", ".ckpt", ".h5",
                                          ".msgpack", ".gguf", ".onnx", ".index.json"};
  for (const char* s : kWeightSuffixes) {
    const std::string suffix = s;
    if (name.size() >= suffix.size() && name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0)
      return false;
  }
  return true;
}

}  // namespace

std::vector<std::pair<std::string, at::Tensor>> merged_weights(const std::string& base_model_dir,
                                                               const train::TrainedAdapter& adapter,
                                                               const model::ModelConfig& base) {
  io::CheckpointWeights weights(base_model_dir);
  std::vector<std::string> names = weights.names();
  std::sort(names.begin(), names.end(), natural_less);
  // Which base tensors receive a delta: model.layers.{i}.{self_attn,mlp}.{m}.weight.
  std::map<std::string, std::pair<int64_t, std::string>> merged_at;
  for (int64_t l = 0; l < base.num_hidden_layers; ++l)
    for (const auto& m : adapter.spec.targets)
      merged_at["model.layers." + std::to_string(l) + "." + module_path(m) + ".weight"] = {l, m};

  std::vector<std::pair<std::string, at::Tensor>> tensors;
  tensors.reserve(names.size());
  for (const auto& name : names) {
    at::Tensor w = weights.get(name);
    auto it = merged_at.find(name);
    if (it != merged_at.end()) {
      const auto& [layer, module] = it->second;
      at::Tensor delta = weight_delta(adapter, layer, module);  // (out, C) float32
      if (!w.sizes().equals(delta.sizes()))
        fail(base_model_dir, "tensor '" + name + "' has shape " + shape_of(w) + ", the adapter's delta " +
                                 shape_of(delta));
      w = (w.to(at::kFloat) + delta).to(w.scalar_type());
      merged_at.erase(it);
    }
    tensors.emplace_back(name, w);
  }
  if (!merged_at.empty())
    fail(base_model_dir, "tensor '" + merged_at.begin()->first + "' not found (" + weights.source() + ")");
  return tensors;
}

void write_merged_files(const fs::path& dir, const std::string& base_model_dir, uint64_t max_shard_bytes,
                        const train::TrainedAdapter& adapter, const model::ModelConfig& base,
                        const model::RopeParams& rope) {
  {
    io::CheckpointWeights weights(base_model_dir);
    uint64_t total_bytes = 0;
    for (const auto& n : weights.names()) total_bytes += weights.info(n).nbytes();
    io::check_free_space(dir.string(), total_bytes + (1 << 20));
  }
  const auto tensors = merged_weights(base_model_dir, adapter, base);
  // HF's save_pretrained metadata; transformers refuses safetensors without format "pt".
  io::save_tensors(dir.string(), tensors, {{"format", "pt"}}, max_shard_bytes);

  io::write_file_atomic((dir / "config.json").string(), student_config_json(base, rope).dump(2) + "\n");
  for (const auto& entry : fs::directory_iterator(base_model_dir)) {
    const std::string name = entry.path().filename().string();
    if (!entry.is_regular_file() || !copy_with_merged(name)) continue;
    std::error_code ec;
    fs::copy_file(entry.path(), dir / name, ec);
    if (ec) fail(entry.path().string(), "cannot copy: " + ec.message());
  }
  std::ostringstream md;
  md << "# LinearARD student: merged checkpoint\n\n"
     << "The base model `" << io::normalized_path(base_model_dir) << "` with its trained "
     << (adapter.spec.is_lora() ? "LoRA adapter" : "q/k/v weight deltas") << " on "
     << json(adapter.spec.targets).dump() << " merged into the weights\n"
     << "(W + delta W in float32, stored in the base dtype), exported by `linearard export`.\n"
     << "config.json carries the student's RoPE scaling:\n\n    " << rope.to_json().dump() << "\n\n"
     << "Load it as any Hugging Face checkpoint: `AutoModelForCausalLM.from_pretrained(DIR)`.\n"
     << "Other files (tokenizer, generation config, license) are copied from the base model.\n";
  io::write_file_atomic((dir / "README.md").string(), md.str());
}

}  // namespace linearard::exporter
