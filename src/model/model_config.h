// HF config.json -> ModelConfig for the LLaMA family (model_type llama, mistral, qwen2, qwen3; SmolLM
// is llama). Torch-free so it builds fast and can be fuzzed. RoPE is read in both the transformers v4
// form (rope_theta + rope_scaling with rope_type or legacy type) and the v5 form (rope_parameters),
// and normalised the way transformers 5.x standardize_rope_params() does.
#pragma once
#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

namespace linearard::model {

// One RoPE scaling, as transformers 5.x's rope_parameters dict after standardisation.
struct RopeParams {
  std::string type = "default";  // default, linear, dynamic, yarn, longrope, llama3
  double theta = 10000.0;
  std::optional<double> factor;
  std::optional<int64_t> original_max_position_embeddings;  // L0 of yarn, longrope, llama3
  std::optional<double> attention_factor;                   // yarn, longrope
  std::optional<double> beta_fast, beta_slow, mscale, mscale_all_dim;  // yarn
  bool truncate = true;                                     // yarn
  std::optional<double> low_freq_factor, high_freq_factor;  // llama3
  std::vector<double> short_factor, long_factor;            // longrope, head_dim/2 each

  // The rope_parameters dict transformers 5.x would hold (for config.json on export).
  nlohmann::json to_json() const;
};

struct ModelConfig {
  std::string model_type;  // llama, mistral, qwen2 or qwen3
  int64_t hidden_size = 0;
  int64_t intermediate_size = 0;
  int64_t num_hidden_layers = 0;
  int64_t num_attention_heads = 0;
  int64_t num_key_value_heads = 0;
  int64_t head_dim = 0;
  int64_t vocab_size = 0;
  int64_t max_position_embeddings = 0;
  double rms_norm_eps = 1e-6;
  bool tie_word_embeddings = false;
  bool attention_bias = false;  // bias on q/k/v/o (llama's and qwen3's attention_bias)
  bool qkv_bias = false;        // bias on q/k/v only (qwen2)
  bool mlp_bias = false;
  bool qk_norm = false;         // per-head RMSNorm on q and k before RoPE (qwen3)
  std::optional<int64_t> sliding_window;  // keys j with i - j < window (mistral; qwen2/qwen3 if enabled)
  // qwen2/qwen3: the window applies only to the layers past max_window_layers, which is not
  // implemented, so sequences longer than the window are refused (model/attention.h).
  bool sliding_window_partial = false;
  std::string hidden_act = "silu";
  std::string torch_dtype;  // dtype the checkpoint declares ("bfloat16", ...), may be empty
  std::optional<int64_t> bos_token_id, eos_token_id, pad_token_id;
  RopeParams rope;
  nlohmann::json raw;  // the parsed config.json, kept so exports change only what they must
};

// Parses config.json text; `path` names the file in error messages.
ModelConfig parse_model_config(const std::string& json_text, const std::string& path);

// Reads DIR/config.json.
ModelConfig load_model_config(const std::string& model_dir);

// Parses a RoPE scaling given on the command line (`flag` names it in errors): inline JSON or a
// path to a JSON file, in the v4 rope_scaling or v5 rope_parameters form. Fields it leaves out
// (rope_theta, original_max_position_embeddings) come from `base`, the checkpoint's config.
RopeParams parse_rope_override(const std::string& json_or_path, const ModelConfig& base,
                               const std::string& flag);

// Checks a RopeParams against the model (required fields, factor >= 1, factor list lengths).
void validate_rope(const RopeParams& rope, const ModelConfig& config, const std::string& where);

// Human-readable one-line summary, e.g. "linear factor=8 theta=10000".
std::string describe_rope(const RopeParams& rope);

}  // namespace linearard::model
