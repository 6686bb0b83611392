#include "train/random_model.h"

#include <ATen/CPUGeneratorImpl.h>

namespace linearard::train {

nlohmann::json llama_config_json(int64_t hidden, int64_t intermediate, int64_t layers, int64_t heads,
                                 int64_t kv_heads, int64_t vocab, int64_t max_positions, double rope_theta) {
  nlohmann::json j;
  j["architectures"] = {"LlamaForCausalLM"};
  j["model_type"] = "llama";
  j["hidden_size"] = hidden;
  j["intermediate_size"] = intermediate;
  j["num_hidden_layers"] = layers;
  j["num_attention_heads"] = heads;
  j["num_key_value_heads"] = kv_heads;
  j["head_dim"] = hidden / heads;
  j["vocab_size"] = vocab;
  j["max_position_embeddings"] = max_positions;
  j["rms_norm_eps"] = 1e-5;
  j["rope_theta"] = rope_theta;
  j["hidden_act"] = "silu";
  j["tie_word_embeddings"] = false;
  j["attention_bias"] = false;
  j["mlp_bias"] = false;
  j["initializer_range"] = 0.02;
  j["torch_dtype"] = "float32";
  return j;
}

model::DecoderModel random_model(const model::ModelConfig& c, at::ScalarType dtype, at::Device device,
                                 uint64_t seed, double std, bool fast) {
  at::Generator gen = at::detail::createCPUGenerator(seed);
  auto normal = [&](std::vector<int64_t> shape) {
    if (fast) return at::empty(shape, at::TensorOptions(dtype).device(device)).normal_(0.0, std);
    return at::empty(shape, at::kFloat).normal_(0.0, std, gen).to(device, dtype);
  };
  auto ones = [&](int64_t n) { return at::ones({n}, at::TensorOptions(dtype).device(device)); };
  auto zeros = [&](int64_t n) { return at::zeros({n}, at::TensorOptions(dtype).device(device)); };
  const int64_t C = c.hidden_size, F = c.intermediate_size, D = c.head_dim;
  const int64_t H = c.num_attention_heads, Hk = c.num_key_value_heads;
  const bool qkv_bias = c.attention_bias || c.qkv_bias;
  model::DecoderWeights w;
  w.embed = normal({c.vocab_size, C});
  for (int64_t l = 0; l < c.num_hidden_layers; ++l) {
    model::DecoderLayerWeights lw;
    lw.input_norm = ones(C);
    lw.q = normal({H * D, C});
    lw.k = normal({Hk * D, C});
    lw.v = normal({Hk * D, C});
    lw.o = normal({C, H * D});
    if (qkv_bias) {
      lw.q_bias = zeros(H * D);
      lw.k_bias = zeros(Hk * D);
      lw.v_bias = zeros(Hk * D);
    }
    if (c.attention_bias) lw.o_bias = zeros(C);
    lw.post_attention_norm = ones(C);
    lw.gate = normal({F, C});
    lw.up = normal({F, C});
    lw.down = normal({C, F});
    if (c.mlp_bias) {
      lw.gate_bias = zeros(F);
      lw.up_bias = zeros(F);
      lw.down_bias = zeros(C);
    }
    w.layers.push_back(std::move(lw));
  }
  w.final_norm = ones(C);
  w.lm_head = c.tie_word_embeddings ? w.embed : normal({c.vocab_size, C});
  return model::DecoderModel(c, std::move(w));
}

NamedTensors hf_named_weights(const model::DecoderWeights& w, const model::ModelConfig& c) {
  NamedTensors out;
  auto add = [&](const std::string& name, const at::Tensor& t) {
    if (t.defined()) out.emplace_back(name, t);
  };
  add("model.embed_tokens.weight", w.embed);
  for (size_t l = 0; l < w.layers.size(); ++l) {
    const auto& lw = w.layers[l];
    const std::string p = "model.layers." + std::to_string(l) + ".";
    add(p + "input_layernorm.weight", lw.input_norm);
    add(p + "self_attn.q_proj.weight", lw.q);
    add(p + "self_attn.k_proj.weight", lw.k);
    add(p + "self_attn.v_proj.weight", lw.v);
    add(p + "self_attn.o_proj.weight", lw.o);
    add(p + "self_attn.q_proj.bias", lw.q_bias);
    add(p + "self_attn.k_proj.bias", lw.k_bias);
    add(p + "self_attn.v_proj.bias", lw.v_bias);
    add(p + "self_attn.o_proj.bias", lw.o_bias);
    add(p + "post_attention_layernorm.weight", lw.post_attention_norm);
    add(p + "mlp.gate_proj.weight", lw.gate);
    add(p + "mlp.up_proj.weight", lw.up);
    add(p + "mlp.down_proj.weight", lw.down);
    add(p + "mlp.gate_proj.bias", lw.gate_bias);
    add(p + "mlp.up_proj.bias", lw.up_bias);
    add(p + "mlp.down_proj.bias", lw.down_bias);
  }
  add("model.norm.weight", w.final_norm);
  if (!c.tie_word_embeddings) add("lm_head.weight", w.lm_head);
  return out;
}

}  // namespace linearard::train
