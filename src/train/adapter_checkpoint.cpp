#include "train/adapter_checkpoint.h"

#include <filesystem>
#include <fstream>
#include <sstream>

#include "common/error.h"
#include "io/atomic_file.h"
#include "io/checkpoint.h"
#include "model/projection.h"

namespace linearard::train {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

constexpr const char* kCheckpointJson = "adapter.json";
constexpr const char* kCheckpointTensors = "adapter.safetensors";
constexpr const char* kCheckpointFormat = "linearard.trained_adapter";
// nlohmann copies and prints nested values recursively; adapter.json nests 2 levels.
constexpr int kMaxJsonDepth = 64;

std::string read_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail(path, "cannot open");
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

json parse_limited(const std::string& text, const std::string& where) {
  const auto limit_depth = [&](int depth, json::parse_event_t, json&) {
    if (depth > kMaxJsonDepth) fail(where, "JSON nested deeper than " + std::to_string(kMaxJsonDepth) + " levels");
    return true;
  };
  try {
    return json::parse(text, limit_depth);
  } catch (const json::exception& e) {
    fail(where, std::string("not valid JSON (") + e.what() + ")");
  }
}

std::string module_path(const std::string& m) {
  const auto p = model::projection_from_name(m);
  if (!p) fail("adapter", "'" + m + "' is not one of q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj");
  return model::projection_path(*p);
}

}  // namespace

std::string lora_key(int64_t layer, const std::string& module, char which) {
  return "base_model.model.model.layers." + std::to_string(layer) + "." + module_path(module) + ".lora_" +
         std::string(1, which) + ".weight";
}

std::string qkv_delta_key(int64_t layer, const std::string& module) {
  return "model.layers." + std::to_string(layer) + ".self_attn." + module + ".weight_delta";
}

json adapter_checkpoint_json(const AdapterSpec& spec, const std::string& base_model_dir,
                             const model::RopeParams& student_rope, const std::string& tensors_file) {
  json j = to_json(spec);
  j["format"] = kCheckpointFormat;
  j["version"] = 1;
  j["base_model"] = base_model_dir;
  j["student_rope"] = student_rope.to_json();
  j["tensors"] = tensors_file;
  return j;
}

void save_adapter_checkpoint(const std::string& dir, const TrainedAdapter& a, const std::string& base_model_dir,
                             const model::RopeParams& student_rope) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) fail(dir, "cannot create directory: " + ec.message());
  std::vector<std::pair<std::string, at::Tensor>> tensors(a.tensors.begin(), a.tensors.end());
  io::save_tensors(dir + "/" + kCheckpointTensors, tensors, {{"format", "pt"}});
  io::write_file_atomic(dir + "/" + kCheckpointJson,
                        adapter_checkpoint_json(a.spec, base_model_dir, student_rope, kCheckpointTensors).dump(2) + "\n");
}

AdapterCheckpoint load_adapter_checkpoint(const std::string& dir) {
  const std::string path = dir + "/" + kCheckpointJson;
  if (!fs::exists(path)) fail(dir, std::string("missing ") + kCheckpointJson + " (not a linearard training checkpoint?)");
  const json j = parse_limited(read_text(path), path);
  if (!j.is_object() || j.value("format", json()) != kCheckpointFormat)
    fail(path, std::string("'format' must be \"") + kCheckpointFormat + "\"");
  if (!j.contains("version") || j["version"] != 1) fail(path, "unsupported version " + j.value("version", json()).dump());
  auto need = [&](const char* key, bool ok) {
    if (!j.contains(key) || !ok) fail(path, std::string("missing or malformed '") + key + "'");
  };
  need("base_model", j.contains("base_model") && j["base_model"].is_string());
  need("student_rope", j.contains("student_rope") && j["student_rope"].is_object());
  AdapterCheckpoint out;
  TrainedAdapter& a = out.adapter;
  a.spec = adapter_spec_from_json(j, path);
  out.base_model_dir = j["base_model"];
  out.student_rope = j["student_rope"];
  std::string file = kCheckpointTensors;
  if (j.contains("tensors")) {
    need("tensors", j["tensors"].is_string() && !j["tensors"].get<std::string>().empty());
    file = j["tensors"];
    if (file.find('/') != std::string::npos) fail(path, "'tensors' must name a file in " + dir);
  }
  io::CheckpointWeights tensors(dir + "/" + file);
  // Adapter keys only: a trainer's file may also hold other trainable tensors.
  const bool lora = a.spec.is_lora();
  for (const auto& name : tensors.names()) {
    const bool lora_name = name.find(".lora_A.") != std::string::npos || name.find(".lora_B.") != std::string::npos;
    const bool delta_name = name.size() > 13 && name.compare(name.size() - 13, 13, ".weight_delta") == 0;
    if (!(lora ? lora_name : delta_name)) continue;
    // Owned float32 copies: the mapping is read-only.
    a.tensors[name] = tensors.get(name).to(at::kFloat, /*non_blocking=*/false, /*copy=*/true).contiguous();
  }
  if (a.tensors.empty()) fail(dir + "/" + file, "holds no " + a.spec.json_kind() + " adapter tensors");
  return out;
}

}  // namespace linearard::train
