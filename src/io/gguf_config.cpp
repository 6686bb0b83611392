// config.json from GGUF metadata (see gguf_import.h). Key names: llama.cpp's gguf-py
// constants.py (Keys.LLM / Keys.Attention / Keys.Rope); their config.json names: transformers
// integrations/ggml.py GGUF_CONFIG_MAPPING.
#include <cmath>
#include <cstdio>

#include "common/error.h"
#include "io/gguf_import.h"

namespace linearard::io {
namespace {

using json = nlohmann::json;

class ArchKeys {
 public:
  ArchKeys(const GgufFile& f, std::string arch) : f_(f), arch_(std::move(arch)) {}
  std::string key(const std::string& suffix) const { return arch_ + "." + suffix; }
  const GgufValue* get(const std::string& suffix) const { return f_.find(key(suffix)); }
  int64_t required_int(const std::string& suffix) const {
    const GgufValue* v = get(suffix);
    if (!v) fail(f_.path(), key(suffix) + ": missing (required)");
    const int64_t n = v->as_int(f_.path() + ": " + key(suffix));
    if (n <= 0) fail(f_.path(), key(suffix) + ": must be positive, found " + std::to_string(n));
    return n;
  }
  std::optional<int64_t> optional_int(const std::string& suffix) const {
    if (!get(suffix)) return std::nullopt;
    return required_int(suffix);
  }
  std::optional<double> optional_number(const std::string& suffix) const {
    const GgufValue* v = get(suffix);
    if (!v) return std::nullopt;
    return v->as_double(f_.path() + ": " + key(suffix));
  }

 private:
  const GgufFile& f_;
  std::string arch_;
};

void warn(const std::string& path, const std::string& key, const std::string& what) {
  std::fprintf(stderr, "linearard: warning: %s: %s: %s\n", path.c_str(), key.c_str(), what.c_str());
}

// <arch>.rope.scaling.* -> the rope_parameters of transformers 5.x (rope_type linear / yarn).
// transformers' own GGUF loader reads these keys only for gpt-oss; llama.cpp writes them for any
// model converted with a rope_scaling (convert_hf_to_gguf.py), and dropping them would change the model.
json rope_parameters(const GgufFile& f, const ArchKeys& k, double theta) {
  json rope = {{"rope_theta", theta}, {"rope_type", "default"}};
  std::string type = "none";
  if (const GgufValue* t = k.get("rope.scaling.type")) type = t->as_string(f.path() + ": " + k.key("rope.scaling.type"));
  std::optional<double> factor = k.optional_number("rope.scaling.factor");
  if (auto old = k.optional_number("rope.scale_linear")) {  // the key before rope.scaling.* existed
    if (type == "none") type = "linear";
    if (!factor) factor = old;
  }
  const auto original = k.optional_int("rope.scaling.original_context_length");
  if (type == "none") return rope;
  if (type != "linear" && type != "yarn")
    fail(f.path(), k.key("rope.scaling.type") + ": RoPE scaling '" + type + "' is not supported (supported: none, linear, yarn)");
  if (!factor) fail(f.path(), k.key("rope.scaling.factor") + ": missing (needed by rope.scaling.type " + type + ")");
  if (!(*factor > 0)) fail(f.path(), k.key("rope.scaling.factor") + ": must be positive");
  rope["rope_type"] = type;
  rope["factor"] = *factor;
  if (type == "yarn") {
    if (original) rope["original_max_position_embeddings"] = *original;
    if (auto v = k.optional_number("rope.scaling.yarn_beta_fast")) rope["beta_fast"] = *v;
    if (auto v = k.optional_number("rope.scaling.yarn_beta_slow")) rope["beta_slow"] = *v;
    if (auto v = k.optional_number("rope.scaling.attn_factor")) rope["attention_factor"] = *v;
    for (const char* ignored : {"rope.scaling.yarn_ext_factor", "rope.scaling.yarn_attn_factor", "rope.scaling.yarn_log_multiplier"})
      if (k.get(ignored)) warn(f.path(), k.key(ignored), "ignored (transformers' yarn has no such parameter)");
  } else if (original) {
    rope["original_max_position_embeddings"] = *original;
  }
  return rope;
}

}  // namespace

GgufArchitecture gguf_architecture(const GgufFile& file) {
  const GgufValue* a = file.find("general.architecture");
  if (!a) fail(file.path(), "general.architecture: missing (required)");
  const std::string arch = a->as_string(file.path() + ": general.architecture");
  if (arch == "llama") {
    // modeling_gguf_pytorch_utils.py: `"mistral" in model_name`, model_name being the value list.
    const GgufValue* name = file.find("general.name");
    const bool mistral = name && name->type == GgufValueType::STRING && name->s == "mistral";
    if (mistral) return {arch, "mistral", "MistralForCausalLM", true};
    return {arch, "llama", "LlamaForCausalLM", true};
  }
  if (arch == "qwen2") return {arch, "qwen2", "Qwen2ForCausalLM", false};
  fail(file.path(), "general.architecture: '" + arch + "' is not supported (supported: llama, qwen2)");
}

json gguf_config_json(const GgufFile& f, const GgufArchitecture& arch, const std::string& dtype_name) {
  const ArchKeys k(f, arch.gguf_arch);
  json c;
  c["architectures"] = json::array({arch.hf_class});
  c["model_type"] = arch.model_type;
  c["hidden_size"] = k.required_int("embedding_length");
  c["num_hidden_layers"] = k.required_int("block_count");
  c["intermediate_size"] = k.required_int("feed_forward_length");
  const int64_t heads = k.required_int("attention.head_count");
  c["num_attention_heads"] = heads;
  c["num_key_value_heads"] = k.optional_int("attention.head_count_kv").value_or(heads);
  if (const GgufValue* eps = k.get("attention.layer_norm_rms_epsilon")) {
    c["rms_norm_eps"] = eps->as_double(f.path() + ": " + k.key("attention.layer_norm_rms_epsilon"));
  } else {
    fail(f.path(), k.key("attention.layer_norm_rms_epsilon") + ": missing (required)");
  }
  if (auto ctx = k.optional_int("context_length")) c["max_position_embeddings"] = *ctx;
  // head_dim: attention.key_length when present; for llama/mistral rope.dimension_count
  // (GGUF_CONFIG_MAPPING's "rope.dimension_count": "head_dim"); else hidden / heads.
  if (auto kl = k.optional_int("attention.key_length")) {
    c["head_dim"] = *kl;
  } else if (arch.model_type != "qwen2") {
    if (auto rd = k.optional_int("rope.dimension_count")) c["head_dim"] = *rd;
  }
  if (auto rd = k.optional_int("rope.dimension_count")) {
    const int64_t head_dim = c.contains("head_dim") ? c["head_dim"].get<int64_t>() : c["hidden_size"].get<int64_t>() / heads;
    if (*rd != head_dim)
      fail(f.path(), k.key("rope.dimension_count") + ": partial rotary embeddings (" + std::to_string(*rd) +
                         " of head_dim " + std::to_string(head_dim) + ") are not supported");
  }
  const double theta = k.optional_number("rope.freq_base").value_or(10000.0);  // llama.cpp's default base
  c["rope_parameters"] = rope_parameters(f, k, theta);
  // vocab_size: <arch>.vocab_size, else the tokenizer's length (transformers issue 32526).
  if (auto vs = k.optional_int("vocab_size")) {
    c["vocab_size"] = *vs;
  } else if (const GgufValue* toks = f.find("tokenizer.ggml.tokens"); toks && toks->type == GgufValueType::ARRAY) {
    c["vocab_size"] = static_cast<int64_t>(toks->array.size());
  } else {
    fail(f.path(), k.key("vocab_size") + ": missing, and no tokenizer.ggml.tokens to count");
  }
  c["tie_word_embeddings"] = f.find_tensor("output.weight") == nullptr;
  for (const auto& [gkey, hkey] : std::vector<std::pair<std::string, std::string>>{
           {"tokenizer.ggml.bos_token_id", "bos_token_id"}, {"tokenizer.ggml.eos_token_id", "eos_token_id"},
           {"tokenizer.ggml.padding_token_id", "pad_token_id"}, {"tokenizer.ggml.unknown_token_id", "unk_token_id"}}) {
    if (const GgufValue* v = f.find(gkey)) c[hkey] = v->as_int(f.path() + ": " + gkey);
  }
  c["hidden_act"] = "silu";
  if (arch.model_type == "llama") {
    c["attention_bias"] = f.find_tensor("blk.0.attn_q.bias") != nullptr;
    c["mlp_bias"] = false;
  }
  if (arch.model_type == "mistral") c["sliding_window"] = nullptr;
  if (arch.model_type == "qwen2") c["use_sliding_window"] = false;
  c["dtype"] = dtype_name;
  if (const GgufValue* n = f.find("general.name"); n && n->type == GgufValueType::STRING) c["_name_or_path"] = n->s;
  return c;
}

}  // namespace linearard::io
