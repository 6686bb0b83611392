#include "model/model_config.h"

#include <cmath>
#include <fstream>
#include <sstream>

#include "common/error.h"

namespace linearard::model {
namespace {

using nlohmann::json;

std::optional<double> optional_number(const json& j, const char* key, const std::string& where) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return std::nullopt;
  if (!it->is_number()) fail(where, std::string("'") + key + "' must be a number, got " + it->dump());
  return it->get<double>();
}

std::optional<int64_t> optional_integer(const json& j, const char* key, const std::string& where) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return std::nullopt;
  const auto bad = [&] { fail(where, std::string("'") + key + "' must be an integer, got " + it->dump()); };
  if (!it->is_number()) bad();
  if (it->is_number_unsigned()) {
    if (it->get<uint64_t>() > static_cast<uint64_t>(INT64_MAX)) bad();
    return it->get<int64_t>();
  }
  if (it->is_number_integer()) return it->get<int64_t>();
  // A float such as 4096.0: range-checked before the cast, which is undefined outside int64
  // (-2^63 and 2^63 are exact doubles).
  const double v = it->get<double>();
  if (!(v >= -9223372036854775808.0 && v < 9223372036854775808.0) || v != std::trunc(v)) bad();
  return static_cast<int64_t>(v);
}

int64_t required_positive(const json& j, const char* key, const std::string& where) {
  auto v = optional_integer(j, key, where);
  if (!v) fail(where, std::string("missing required field '") + key + "'");
  if (*v <= 0) fail(where, std::string("'") + key + "' must be positive, got " + std::to_string(*v));
  return *v;
}

bool optional_bool(const json& j, const char* key, bool fallback, const std::string& where) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return fallback;
  if (!it->is_boolean()) fail(where, std::string("'") + key + "' must be true or false, got " + it->dump());
  return it->get<bool>();
}

std::optional<int64_t> optional_token_id(const json& j, const char* key, const std::string& where) {
  auto it = j.find(key);
  if (it != j.end() && it->is_array()) {  // some configs list several eos ids; the first is the EOS
    if (it->empty()) return std::nullopt;
    json first = {{key, it->front()}};
    return optional_integer(first, key, where);
  }
  return optional_integer(j, key, where);
}

std::vector<double> number_list(const json& j, const char* key, const std::string& where) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return {};
  if (!it->is_array()) fail(where, std::string("'") + key + "' must be a list of numbers");
  std::vector<double> out;
  for (const auto& v : *it) {
    if (!v.is_number()) fail(where, std::string("'") + key + "' must be a list of numbers");
    out.push_back(v.get<double>());
  }
  return out;
}

// nlohmann copies and prints nested values recursively, so a few hundred KB of '[' would overflow
// the stack; config.json nests 3 levels.
constexpr int kMaxJsonDepth = 64;

json parse_json_text(const std::string& text, const std::string& where) {
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

std::string read_file(const std::string& path, const std::string& what) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail(path, "cannot open " + what);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Reads a rope dict (v4 rope_scaling or v5 rope_parameters). theta and L0 default to the caller's.
RopeParams parse_rope_dict(const json& d, double default_theta, const std::string& where) {
  if (!d.is_object()) fail(where, "RoPE parameters must be a JSON object, got " + d.dump());
  RopeParams r;
  r.theta = default_theta;
  if (auto it = d.find("rope_type"); it != d.end() && !it->is_null()) {
    if (!it->is_string()) fail(where, "'rope_type' must be a string");
    r.type = it->get<std::string>();
  } else if (auto t = d.find("type"); t != d.end() && !t->is_null()) {
    if (!t->is_string()) fail(where, "'type' must be a string");
    r.type = t->get<std::string>();
  }
  if (auto th = optional_number(d, "rope_theta", where)) r.theta = *th;
  r.factor = optional_number(d, "factor", where);
  r.original_max_position_embeddings = optional_integer(d, "original_max_position_embeddings", where);
  r.attention_factor = optional_number(d, "attention_factor", where);
  r.beta_fast = optional_number(d, "beta_fast", where);
  r.beta_slow = optional_number(d, "beta_slow", where);
  r.mscale = optional_number(d, "mscale", where);
  r.mscale_all_dim = optional_number(d, "mscale_all_dim", where);
  r.truncate = optional_bool(d, "truncate", true, where);
  r.low_freq_factor = optional_number(d, "low_freq_factor", where);
  r.high_freq_factor = optional_number(d, "high_freq_factor", where);
  r.short_factor = number_list(d, "short_factor", where);
  r.long_factor = number_list(d, "long_factor", where);
  if (auto p = optional_number(d, "partial_rotary_factor", where); p && *p != 1.0)
    fail(where, "partial_rotary_factor != 1 is not supported for LLaMA-family models");
  return r;
}

// transformers 5.x standardize_rope_params(): yarn, longrope and llama3 get L0 from a top-level
// original_max_position_embeddings (the Phi-3 case) or else from max_position_embeddings.
void default_original_length(RopeParams& r, const json& top, int64_t max_position_embeddings,
                             const std::string& where) {
  if (r.type != "yarn" && r.type != "longrope" && r.type != "llama3") return;
  if (auto top_l0 = optional_integer(top, "original_max_position_embeddings", where)) {
    r.original_max_position_embeddings = *top_l0;
  } else if (!r.original_max_position_embeddings) {
    r.original_max_position_embeddings = max_position_embeddings;
  }
}

std::string format_number(double v) {
  std::ostringstream ss;
  ss << v;
  return ss.str();
}

}  // namespace

json RopeParams::to_json() const {
  json j = {{"rope_type", type}, {"rope_theta", theta}};
  if (factor) j["factor"] = *factor;
  if (original_max_position_embeddings) j["original_max_position_embeddings"] = *original_max_position_embeddings;
  if (attention_factor) j["attention_factor"] = *attention_factor;
  if (beta_fast) j["beta_fast"] = *beta_fast;
  if (beta_slow) j["beta_slow"] = *beta_slow;
  if (mscale) j["mscale"] = *mscale;
  if (mscale_all_dim) j["mscale_all_dim"] = *mscale_all_dim;
  if (type == "yarn" && !truncate) j["truncate"] = false;
  if (low_freq_factor) j["low_freq_factor"] = *low_freq_factor;
  if (high_freq_factor) j["high_freq_factor"] = *high_freq_factor;
  if (!short_factor.empty()) j["short_factor"] = short_factor;
  if (!long_factor.empty()) j["long_factor"] = long_factor;
  return j;
}

void validate_rope(const RopeParams& r, const ModelConfig& config, const std::string& where) {
  static const char* kTypes[] = {"default", "linear", "dynamic", "yarn", "longrope", "llama3"};
  bool known = false;
  for (const char* t : kTypes) known = known || r.type == t;
  if (!known)
    fail(where, "unknown rope_type '" + r.type +
                    "' (supported: default, linear, dynamic, yarn, longrope, llama3)");
  if (!(r.theta > 0)) fail(where, "rope_theta must be positive, got " + format_number(r.theta));
  auto need = [&](bool present, const char* field) {
    if (!present) fail(where, "rope_type '" + r.type + "' requires '" + field + "'");
  };
  if (r.type == "linear" || r.type == "dynamic" || r.type == "yarn" || r.type == "llama3")
    need(r.factor.has_value(), "factor");
  if (r.type == "llama3") {
    need(r.low_freq_factor.has_value(), "low_freq_factor");
    need(r.high_freq_factor.has_value(), "high_freq_factor");
    if (*r.high_freq_factor <= *r.low_freq_factor)
      fail(where, "llama3 high_freq_factor must be greater than low_freq_factor");
  }
  if (r.type == "longrope") {
    need(!r.short_factor.empty(), "short_factor");
    need(!r.long_factor.empty(), "long_factor");
    const size_t half = static_cast<size_t>(config.head_dim / 2);
    if (r.short_factor.size() != half || r.long_factor.size() != half)
      fail(where, "longrope short_factor and long_factor must have head_dim/2 = " +
                      std::to_string(half) + " entries, got " + std::to_string(r.short_factor.size()) +
                      " and " + std::to_string(r.long_factor.size()));
  }
  if (r.factor && !(*r.factor >= 1.0))
    fail(where, "rope factor must be >= 1, got " + format_number(*r.factor));
  if (r.original_max_position_embeddings && *r.original_max_position_embeddings <= 0)
    fail(where, "original_max_position_embeddings must be positive");
  if (r.attention_factor && !(*r.attention_factor > 0))
    fail(where, "attention_factor must be positive");
}

ModelConfig parse_model_config(const std::string& json_text, const std::string& path) {
  const json j = parse_json_text(json_text, path);
  if (!j.is_object()) fail(path, "config.json must hold a JSON object");
  ModelConfig c;
  c.raw = j;
  auto type = j.find("model_type");
  if (type == j.end() || !type->is_string()) fail(path, "missing 'model_type'");
  c.model_type = type->get<std::string>();
  if (c.model_type != "llama" && c.model_type != "mistral" && c.model_type != "qwen2" && c.model_type != "qwen3")
    fail(path, "unsupported model_type '" + c.model_type + "' (supported: llama, mistral, qwen2, qwen3)");
  const bool qwen = c.model_type == "qwen2" || c.model_type == "qwen3";

  c.hidden_size = required_positive(j, "hidden_size", path);
  c.intermediate_size = required_positive(j, "intermediate_size", path);
  c.num_hidden_layers = required_positive(j, "num_hidden_layers", path);
  c.num_attention_heads = required_positive(j, "num_attention_heads", path);
  c.vocab_size = required_positive(j, "vocab_size", path);
  c.num_key_value_heads =
      optional_integer(j, "num_key_value_heads", path).value_or(c.num_attention_heads);
  if (c.num_key_value_heads <= 0 || c.num_attention_heads % c.num_key_value_heads != 0)
    fail(path, "num_attention_heads (" + std::to_string(c.num_attention_heads) +
                   ") must be a multiple of num_key_value_heads (" +
                   std::to_string(c.num_key_value_heads) + ")");
  // Qwen3Config's head_dim is its own field (default 128, not hidden_size / heads): required here.
  if (c.model_type == "qwen3") c.head_dim = required_positive(j, "head_dim", path);
  else c.head_dim = optional_integer(j, "head_dim", path).value_or(c.hidden_size / c.num_attention_heads);
  if (c.head_dim <= 0 || c.head_dim % 2 != 0)
    fail(path, "head_dim must be a positive even number, got " + std::to_string(c.head_dim));
  // Defaults are those of transformers 5.x's LlamaConfig / MistralConfig / Qwen2Config / Qwen3Config.
  const int64_t default_max_pos = c.model_type == "llama" ? 2048 : c.model_type == "mistral" ? 131072 : 32768;
  c.max_position_embeddings = optional_integer(j, "max_position_embeddings", path).value_or(default_max_pos);
  c.rms_norm_eps = optional_number(j, "rms_norm_eps", path).value_or(1e-6);
  c.tie_word_embeddings = optional_bool(j, "tie_word_embeddings", false, path);
  c.mlp_bias = optional_bool(j, "mlp_bias", false, path);
  if (c.model_type == "llama" || c.model_type == "qwen3")
    c.attention_bias = optional_bool(j, "attention_bias", false, path);
  if (c.model_type == "qwen2") c.qkv_bias = true;
  if (c.model_type == "qwen3") c.qk_norm = true;  // Qwen3Attention's q_norm / k_norm
  if (auto act = j.find("hidden_act"); act != j.end() && act->is_string()) c.hidden_act = *act;
  if (c.hidden_act != "silu")
    fail(path, "hidden_act '" + c.hidden_act + "' is not supported (LLaMA-family models use silu)");
  if (auto dt = j.find("torch_dtype"); dt != j.end() && dt->is_string()) c.torch_dtype = *dt;
  if (auto dt = j.find("dtype"); dt != j.end() && dt->is_string()) c.torch_dtype = *dt;
  if (c.model_type == "mistral") {
    c.sliding_window = optional_integer(j, "sliding_window", path);
  } else if (qwen && optional_bool(j, "use_sliding_window", false, path)) {
    // Qwen2/Qwen3 slide only on the layers past max_window_layers; we refuse sequences that reach it.
    c.sliding_window = optional_integer(j, "sliding_window", path);
    c.sliding_window_partial = true;
  }
  c.bos_token_id = optional_token_id(j, "bos_token_id", path);
  c.eos_token_id = optional_token_id(j, "eos_token_id", path);
  c.pad_token_id = optional_token_id(j, "pad_token_id", path);

  const double top_theta = optional_number(j, "rope_theta", path).value_or(10000.0);
  // transformers 5.x: `rope_scaling or rope_parameters`, so a non-empty v4 rope_scaling wins.
  json rope_dict = json::object();
  if (auto rs = j.find("rope_scaling"); rs != j.end() && !rs->is_null() && !rs->empty()) {
    rope_dict = *rs;
  } else if (auto rp = j.find("rope_parameters"); rp != j.end() && !rp->is_null()) {
    rope_dict = *rp;
  }
  if (auto p = optional_number(j, "partial_rotary_factor", path); p && *p != 1.0)
    fail(path, "partial_rotary_factor != 1 is not supported for LLaMA-family models");
  c.rope = parse_rope_dict(rope_dict, top_theta, path);
  default_original_length(c.rope, j, c.max_position_embeddings, path);
  validate_rope(c.rope, c, path);
  return c;
}

ModelConfig load_model_config(const std::string& model_dir) {
  const std::string path = model_dir + "/config.json";
  std::ifstream probe(path);
  if (!probe) fail(model_dir, "missing config.json (not a Hugging Face model directory?)");
  return parse_model_config(read_file(path, "config.json"), path);
}

RopeParams parse_rope_override(const std::string& json_or_path, const ModelConfig& base,
                               const std::string& flag) {
  std::string text = json_or_path;
  std::string where = flag;
  const auto first = json_or_path.find_first_not_of(" \t\n");
  if (first == std::string::npos) fail(flag, "empty RoPE scaling");
  if (json_or_path[first] != '{') {  // a file holding the JSON
    text = read_file(json_or_path, "RoPE scaling file");
    where = flag + " " + json_or_path;
  }
  json d = parse_json_text(text, where);
  // A whole config.json may be given too: take its rope section.
  if (d.is_object() && d.contains("rope_parameters")) d = d["rope_parameters"];
  else if (d.is_object() && d.contains("rope_scaling")) d = d["rope_scaling"];
  RopeParams r = parse_rope_dict(d, base.rope.theta, where);
  default_original_length(r, json::object(), base.max_position_embeddings, where);
  validate_rope(r, base, where);
  return r;
}

std::string describe_rope(const RopeParams& r) {
  std::string s = r.type;
  if (r.factor) s += " factor=" + format_number(*r.factor);
  s += " theta=" + format_number(r.theta);
  if (r.original_max_position_embeddings)
    s += " original_max_position_embeddings=" + std::to_string(*r.original_max_position_embeddings);
  if (r.attention_factor) s += " attention_factor=" + format_number(*r.attention_factor);
  if (r.low_freq_factor) s += " low_freq_factor=" + format_number(*r.low_freq_factor);
  if (r.high_freq_factor) s += " high_freq_factor=" + format_number(*r.high_freq_factor);
  if (r.beta_fast) s += " beta_fast=" + format_number(*r.beta_fast);
  if (r.beta_slow) s += " beta_slow=" + format_number(*r.beta_slow);
  return s;
}

}  // namespace linearard::model
