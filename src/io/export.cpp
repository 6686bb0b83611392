#include "io/export.h"

#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include "common/error.h"
#include "io/atomic_file.h"
#include "model/projection.h"

namespace linearard::io {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

constexpr const char* kCheckpointJson = "adapter.json";
constexpr const char* kCheckpointTensors = "adapter.safetensors";
constexpr const char* kCheckpointFormat = "linearard.trained_adapter";
// PEFT release whose adapter_config.json fields we write (the venv's peft, scripts/setup.sh).
constexpr const char* kPeftVersion = "0.21.0";

// The linears of a LLaMA layer that an adapter may target, by checkpoint name (model/projection.h).
bool is_target(const std::string& m) { return model::projection_from_name(m).has_value(); }
bool is_qkv(const std::string& m) {
  const auto p = model::projection_from_name(m);
  return p && int(*p) <= int(model::Projection::kValue);
}

model::Projection projection_of(const std::string& m) {
  const auto p = model::projection_from_name(m);
  if (!p) fail("adapter", "'" + m + "' is not one of q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj");
  return *p;
}

// "self_attn.q_proj", "mlp.down_proj", ...: the module's path inside a layer.
std::string module_path(const std::string& m) { return model::projection_path(projection_of(m)); }

std::string shape_of(const at::Tensor& t) { return format_shape(t.sizes().vec()); }

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

std::string read_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail(path, "cannot open");
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

fs::path normalized(const std::string& p) { return fs::path(normalized_path(p)); }

bool within(const fs::path& inner, const fs::path& outer) { return path_within(inner.string(), outer.string()); }

// The export's output: checked before anything is written, built in a temp dir next to OUT, then
// renamed into place so OUT never holds a half-written export.
class StagedDir {
 public:
  explicit StagedDir(const ExportRequest& r) {
    const std::string where = "--out " + r.out_dir;
    if (r.out_dir.empty()) fail("--out", "no output directory given");
    out_ = normalized(r.out_dir);
    const fs::path base = normalized(r.base_model_dir);
    if (within(out_, base))
      fail(where, "is the base model directory or inside it (" + base.string() + "); refusing to write there");
    if (within(base, out_))
      fail(where, "contains the base model directory " + base.string() + "; refusing to replace it");
    for (const auto& p : r.protected_dirs) {
      if (p.empty()) continue;
      if (within(normalized(p), out_))
        fail(where, "contains " + normalized(p).string() + ", an input of this export; refusing to replace it");
      if (within(out_, normalized(p)))
        fail(where, "lies inside " + normalized(p).string() + ", an input of this export; refusing to write there");
    }
    if (fs::exists(out_)) {
      if (!fs::is_directory(out_)) fail(where, "exists and is not a directory");
      if (!fs::is_empty(out_) && !r.overwrite)
        fail(where, "directory is not empty (pass --overwrite to replace it)");
    }
    if (out_.filename().empty() || out_ == out_.root_path()) fail(where, "not a usable output directory");
    std::error_code ec;
    fs::create_directories(out_.parent_path(), ec);
    if (ec) fail(where, "cannot create parent directory: " + ec.message());
    const std::string suffix = "." + std::to_string(::getpid());
    temp_ = out_.parent_path() / ("." + out_.filename().string() + ".tmp" + suffix);
    old_ = out_.parent_path() / ("." + out_.filename().string() + ".old" + suffix);
    fs::remove_all(temp_, ec);
    if (!fs::create_directory(temp_, ec) || ec)
      fail(where, "cannot create temporary directory " + temp_.string() + ": " + ec.message());
  }
  ~StagedDir() {
    std::error_code ec;
    if (!committed_) fs::remove_all(temp_, ec);
  }
  StagedDir(const StagedDir&) = delete;
  StagedDir& operator=(const StagedDir&) = delete;

  const fs::path& temp() const { return temp_; }
  const fs::path& out() const { return out_; }

  void commit() {
    std::error_code ec;
    const bool replace = fs::exists(out_);
    if (replace) {
      fs::rename(out_, old_, ec);
      if (ec) fail(out_.string(), "cannot move the old directory aside: " + ec.message());
    }
    fs::rename(temp_, out_, ec);
    if (ec) {
      if (replace) fs::rename(old_, out_);
      fail(out_.string(), "cannot rename " + temp_.string() + " into place: " + ec.message());
    }
    committed_ = true;
    if (replace) fs::remove_all(old_, ec);
  }

 private:
  fs::path out_, temp_, old_;
  bool committed_ = false;
};

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

std::string rope_line(const model::RopeParams& rope) { return rope.to_json().dump(); }

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

void write_peft_into(const fs::path& dir, const ExportRequest& r, const TrainedAdapter& adapter,
                     const model::ModelConfig& base, const model::RopeParams& rope) {
  std::vector<std::pair<std::string, at::Tensor>> tensors;
  for (const auto& [name, t] : adapter.tensors) tensors.emplace_back(name, t.to(at::kFloat).contiguous());
  save_tensors((dir / "adapter_model.safetensors").string(), tensors, {{"format", "pt"}});

  const std::string base_path = normalized(r.base_model_dir).string();
  json config = {
      {"peft_type", "LORA"},
      {"task_type", "CAUSAL_LM"},
      {"r", adapter.rank},
      {"lora_alpha", json_number(adapter.alpha)},
      {"lora_dropout", adapter.dropout},
      {"target_modules", adapter.target_modules},
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
  write_file_atomic((dir / "adapter_config.json").string(), config.dump(2) + "\n");
  write_file_atomic((dir / "student_config.json").string(), student_config_json(base, rope).dump(2) + "\n");

  std::ostringstream md;
  md << "# LinearARD student: LoRA adapter\n\n"
     << "LoRA on " << json(adapter.target_modules).dump() << ", r = " << adapter.rank
     << ", lora_alpha = " << number_text(adapter.alpha) << ", trained by `linearard` on the base model\n"
     << "`" << base_path << "` with the RoPE scaling\n\n    " << rope_line(rope) << "\n\n"
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
  write_file_atomic((dir / "README.md").string(), md.str());
}

void write_merged_into(const fs::path& dir, const ExportRequest& r, const TrainedAdapter& adapter,
                       const model::ModelConfig& base, const model::RopeParams& rope) {
  {
    CheckpointWeights weights(r.base_model_dir);
    uint64_t total_bytes = 0;
    for (const auto& n : weights.names()) total_bytes += weights.info(n).nbytes();
    check_free_space(dir.string(), total_bytes + (1 << 20));
  }
  const auto tensors = merged_weights(r.base_model_dir, adapter, base);
  // HF's save_pretrained metadata; transformers refuses safetensors without format "pt".
  save_tensors(dir.string(), tensors, {{"format", "pt"}}, r.max_shard_bytes);

  write_file_atomic((dir / "config.json").string(), student_config_json(base, rope).dump(2) + "\n");
  for (const auto& entry : fs::directory_iterator(r.base_model_dir)) {
    const std::string name = entry.path().filename().string();
    if (!entry.is_regular_file() || !copy_with_merged(name)) continue;
    std::error_code ec;
    fs::copy_file(entry.path(), dir / name, ec);
    if (ec) fail(entry.path().string(), "cannot copy: " + ec.message());
  }
  std::ostringstream md;
  md << "# LinearARD student: merged checkpoint\n\n"
     << "The base model `" << normalized(r.base_model_dir).string() << "` with its trained "
     << (adapter.kind == "lora" ? "LoRA adapter" : "q/k/v weight deltas") << " on "
     << json(adapter.target_modules).dump() << " merged into the weights\n"
     << "(W + delta W in float32, stored in the base dtype), exported by `linearard export`.\n"
     << "config.json carries the student's RoPE scaling:\n\n    " << rope_line(rope) << "\n\n"
     << "Load it as any Hugging Face checkpoint: `AutoModelForCausalLM.from_pretrained(DIR)`.\n"
     << "Other files (tokenizer, generation config, license) are copied from the base model.\n";
  write_file_atomic((dir / "README.md").string(), md.str());
}

}  // namespace

std::vector<std::pair<std::string, at::Tensor>> merged_weights(const std::string& base_model_dir,
                                                               const TrainedAdapter& adapter,
                                                               const model::ModelConfig& base) {
  CheckpointWeights weights(base_model_dir);
  std::vector<std::string> names = weights.names();
  std::sort(names.begin(), names.end(), natural_less);
  // Which base tensors receive a delta: model.layers.{i}.{self_attn,mlp}.{m}.weight.
  std::map<std::string, std::pair<int64_t, std::string>> merged_at;
  for (int64_t l = 0; l < base.num_hidden_layers; ++l)
    for (const auto& m : adapter.target_modules)
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

std::string lora_key(int64_t layer, const std::string& module, char which) {
  return "base_model.model.model.layers." + std::to_string(layer) + "." + module_path(module) + ".lora_" +
         std::string(1, which) + ".weight";
}

std::string qkv_delta_key(int64_t layer, const std::string& module) {
  return "model.layers." + std::to_string(layer) + ".self_attn." + module + ".weight_delta";
}

void validate_adapter(const TrainedAdapter& a, const model::ModelConfig& c, const std::string& where) {
  if (a.kind != "lora" && a.kind != "qkv_delta")
    fail(where, "unknown adapter kind '" + a.kind + "' (expected lora or qkv_delta)");
  if (a.target_modules.empty()) fail(where, "no target modules");
  std::set<std::string> seen;
  for (const auto& m : a.target_modules) {
    if (!is_target(m))
      fail(where, "target module '" + m +
                      "' is not one of q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj");
    if (a.kind == "qkv_delta" && !is_qkv(m))
      fail(where, "target module '" + m + "' of a qkv_delta adapter is not one of q_proj, k_proj, v_proj");
    if (!seen.insert(m).second) fail(where, "target module '" + m + "' listed twice");
  }
  if (a.kind == "lora") {
    if (a.rank <= 0) fail(where, "LoRA rank must be positive, got " + std::to_string(a.rank));
    if (!std::isfinite(a.alpha) || a.alpha == 0) fail(where, "LoRA alpha must be a non-zero number");
    if (!(a.dropout >= 0 && a.dropout < 1)) fail(where, "LoRA dropout must be in [0, 1)");
  }
  std::map<std::string, std::vector<int64_t>> expected;  // key -> shape
  for (int64_t l = 0; l < c.num_hidden_layers; ++l)
    for (const auto& m : a.target_modules) {
      const auto [out, in] = model::projection_shape(c, projection_of(m));
      if (a.kind == "lora") {
        expected[lora_key(l, m, 'A')] = {a.rank, in};
        expected[lora_key(l, m, 'B')] = {out, a.rank};
      } else {
        expected[qkv_delta_key(l, m)] = {out, in};
      }
    }
  for (const auto& [name, t] : a.tensors)
    if (!expected.count(name))
      fail(where, "unexpected tensor '" + name + "' for a " + a.kind + " adapter on " +
                      std::to_string(c.num_hidden_layers) + " layers");
  for (const auto& [name, shape] : expected) {
    auto it = a.tensors.find(name);
    if (it == a.tensors.end()) fail(where, "missing tensor '" + name + "'");
    const at::Tensor& t = it->second;
    if (!t.defined() || !t.sizes().equals(shape))
      fail(where, "tensor '" + name + "' has shape " + (t.defined() ? shape_of(t) : "(undefined)") +
                      ", expected " + format_shape(shape));
    if (!at::isFloatingType(t.scalar_type())) fail(where, "tensor '" + name + "' is not floating point");
    if (!at::isfinite(t).all().item<bool>()) fail(where, "tensor '" + name + "' holds NaN or Inf");
  }
}

at::Tensor weight_delta(const TrainedAdapter& a, int64_t layer, const std::string& module) {
  if (a.kind == "qkv_delta") return a.tensors.at(qkv_delta_key(layer, module)).to(at::kFloat);
  const at::Tensor A = a.tensors.at(lora_key(layer, module, 'A')).to(at::kFloat);  // (r, C)
  const at::Tensor B = a.tensors.at(lora_key(layer, module, 'B')).to(at::kFloat);  // (out, r)
  return at::matmul(B, A) * (a.alpha / static_cast<double>(a.rank));               // (out, C)
}

json adapter_checkpoint_json(const TrainedAdapter& a, const std::string& base_model_dir,
                             const model::RopeParams& student_rope, const std::string& tensors_file) {
  return {{"format", kCheckpointFormat},
          {"version", 1},
          {"kind", a.kind},
          {"rank", a.rank},
          {"alpha", a.alpha},
          {"dropout", a.dropout},
          {"target_modules", a.target_modules},
          {"base_model", base_model_dir},
          {"student_rope", student_rope.to_json()},
          {"tensors", tensors_file}};
}

void save_adapter_checkpoint(const std::string& dir, const TrainedAdapter& a, const std::string& base_model_dir,
                             const model::RopeParams& student_rope) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) fail(dir, "cannot create directory: " + ec.message());
  std::vector<std::pair<std::string, at::Tensor>> tensors(a.tensors.begin(), a.tensors.end());
  save_tensors(dir + "/" + kCheckpointTensors, tensors, {{"format", "pt"}});
  write_file_atomic(dir + "/" + kCheckpointJson,
                    adapter_checkpoint_json(a, base_model_dir, student_rope, kCheckpointTensors).dump(2) + "\n");
}

AdapterCheckpoint load_adapter_checkpoint(const std::string& dir) {
  const std::string path = dir + "/" + kCheckpointJson;
  if (!fs::exists(path)) fail(dir, std::string("missing ") + kCheckpointJson + " (not a linearard training checkpoint?)");
  json j;
  try {
    j = json::parse(read_text(path));
  } catch (const json::exception& e) {
    fail(path, std::string("not valid JSON (") + e.what() + ")");
  }
  if (!j.is_object() || j.value("format", "") != kCheckpointFormat)
    fail(path, std::string("'format' must be \"") + kCheckpointFormat + "\"");
  if (!j.contains("version") || j["version"] != 1) fail(path, "unsupported version " + j.value("version", json()).dump());
  auto need = [&](const char* key, bool ok) {
    if (!j.contains(key) || !ok) fail(path, std::string("missing or malformed '") + key + "'");
  };
  need("kind", j["kind"].is_string());
  need("target_modules", j["target_modules"].is_array());
  need("base_model", j["base_model"].is_string());
  need("student_rope", j["student_rope"].is_object());
  AdapterCheckpoint out;
  TrainedAdapter& a = out.adapter;
  a.kind = j["kind"];
  if (a.kind == "lora") {
    need("rank", j["rank"].is_number_integer());
    need("alpha", j["alpha"].is_number());
    a.rank = j["rank"];
    a.alpha = j["alpha"];
    if (j.contains("dropout")) need("dropout", j["dropout"].is_number());
    a.dropout = j.value("dropout", 0.0);
  }
  a.target_modules.clear();
  for (const auto& m : j["target_modules"]) {
    if (!m.is_string()) fail(path, "'target_modules' must be a list of strings");
    a.target_modules.push_back(m);
  }
  out.base_model_dir = j["base_model"];
  out.student_rope = j["student_rope"];
  std::string file = kCheckpointTensors;
  if (j.contains("tensors")) {
    need("tensors", j["tensors"].is_string() && !j["tensors"].get<std::string>().empty());
    file = j["tensors"];
    if (file.find('/') != std::string::npos) fail(path, "'tensors' must name a file in " + dir);
  }
  CheckpointWeights tensors(dir + "/" + file);
  // Adapter keys only: a trainer's file may also hold other trainable tensors.
  for (const auto& name : tensors.names()) {
    const bool lora_key = name.find(".lora_A.") != std::string::npos || name.find(".lora_B.") != std::string::npos;
    const bool delta_key = name.size() > 13 && name.compare(name.size() - 13, 13, ".weight_delta") == 0;
    if (!(a.kind == "lora" ? lora_key : delta_key)) continue;
    // Owned float32 copies: the mapping is read-only.
    a.tensors[name] = tensors.get(name).to(at::kFloat, /*non_blocking=*/false, /*copy=*/true).contiguous();
  }
  if (a.tensors.empty()) fail(dir + "/" + file, "holds no " + a.kind + " adapter tensors");
  return out;
}

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

ExportFormat parse_export_format(const std::string& text, const std::string& flag) {
  if (text == "peft") return ExportFormat::kPeft;
  if (text == "merged") return ExportFormat::kMerged;
  if (text == "both") return ExportFormat::kBoth;
  fail(flag, "unknown format '" + text + "' (expected peft, merged or both)");
}

uint64_t parse_size_bytes(const std::string& text, const std::string& flag) {
  size_t end = 0;
  double value = 0;
  try {
    value = std::stod(text, &end);
  } catch (const std::exception&) {
    fail(flag, "'" + text + "' is not a size such as 5GB, 500MB or 123456");
  }
  std::string unit = text.substr(end);
  std::transform(unit.begin(), unit.end(), unit.begin(), [](unsigned char ch) { return std::toupper(ch); });
  static const std::map<std::string, double> kUnits = {
      {"", 1},       {"B", 1},          {"KB", 1e3},          {"MB", 1e6},          {"GB", 1e9},
      {"TB", 1e12},  {"KIB", 1024.0},   {"MIB", 1048576.0},   {"GIB", 1073741824.0}, {"TIB", 1099511627776.0}};
  auto it = kUnits.find(unit);
  if (it == kUnits.end() || !(value > 0) || !std::isfinite(value))
    fail(flag, "'" + text + "' is not a size such as 5GB, 500MB or 123456");
  return static_cast<uint64_t>(value * it->second);
}

void export_student(const ExportRequest& r, const TrainedAdapter& adapter, const model::RopeParams& rope) {
  const model::ModelConfig base = model::load_model_config(r.base_model_dir);
  model::validate_rope(rope, base, "student RoPE");
  validate_adapter(adapter, base, "adapter");
  if (r.format != ExportFormat::kMerged && adapter.kind != "lora")
    fail("--format", "only LoRA adapters can be exported as PEFT adapters (this one is '" + adapter.kind +
                         "'); use --format merged");
  StagedDir staged(r);
  switch (r.format) {
    case ExportFormat::kPeft:
      write_peft_into(staged.temp(), r, adapter, base, rope);
      break;
    case ExportFormat::kMerged:
      write_merged_into(staged.temp(), r, adapter, base, rope);
      break;
    case ExportFormat::kBoth:
      fs::create_directory(staged.temp() / "peft");
      fs::create_directory(staged.temp() / "merged");
      write_peft_into(staged.temp() / "peft", r, adapter, base, rope);
      write_merged_into(staged.temp() / "merged", r, adapter, base, rope);
      break;
  }
  staged.commit();
}

void write_peft_adapter(const ExportRequest& request, const TrainedAdapter& adapter,
                        const model::RopeParams& student_rope) {
  ExportRequest r = request;
  r.format = ExportFormat::kPeft;
  export_student(r, adapter, student_rope);
}

void write_merged_checkpoint(const ExportRequest& request, const TrainedAdapter& adapter,
                             const model::RopeParams& student_rope) {
  ExportRequest r = request;
  r.format = ExportFormat::kMerged;
  export_student(r, adapter, student_rope);
}

}  // namespace linearard::io
