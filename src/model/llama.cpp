#include "model/llama.h"

#include <algorithm>

#include "common/error.h"
#include "io/checkpoint.h"
#include "model/attention.h"

namespace linearard::model {
DecoderModel::DecoderModel(ModelConfig config, DecoderWeights weights)
    : config_(std::move(config)), weights_(std::move(weights)) {}

DecoderModel DecoderModel::load(const std::string& model_dir, at::ScalarType dtype, at::Device device) {
  ModelConfig c = load_model_config(model_dir);
  io::CheckpointWeights ckpt(model_dir);
  // Zero-copy where dtype and device already match: the mmap-backed base weights are never written.
  auto get = [&](const std::string& name, at::IntArrayRef shape) {
    at::Tensor t = ckpt.get(name, shape);
    // An integer tensor is a quantised or foreign checkpoint: converting it would run garbage.
    if (!at::isFloatingType(t.scalar_type()))
      fail(model_dir, "tensor '" + name + "' is stored as " + std::string(c10::toString(t.scalar_type())) +
                          "; expected a floating-point dtype (F32, F16 or BF16)");
    return t.to(device, dtype);
  };
  auto get_optional = [&](const std::string& name, at::IntArrayRef shape, bool wanted) {
    return wanted ? get(name, shape) : at::Tensor();
  };
  const int64_t C = c.hidden_size, F = c.intermediate_size, D = c.head_dim;
  const int64_t H = c.num_attention_heads, Hk = c.num_key_value_heads, V = c.vocab_size;
  DecoderWeights w;
  w.embed = get("model.embed_tokens.weight", {V, C});
  for (int64_t l = 0; l < c.num_hidden_layers; ++l) {
    const std::string p = "model.layers." + std::to_string(l) + ".";
    const bool qkv_bias = c.attention_bias || c.qkv_bias;
    DecoderLayerWeights lw;
    lw.input_norm = get(p + "input_layernorm.weight", {C});
    lw.q = get(p + "self_attn.q_proj.weight", {H * D, C});
    lw.k = get(p + "self_attn.k_proj.weight", {Hk * D, C});
    lw.v = get(p + "self_attn.v_proj.weight", {Hk * D, C});
    lw.o = get(p + "self_attn.o_proj.weight", {C, H * D});
    lw.q_bias = get_optional(p + "self_attn.q_proj.bias", {H * D}, qkv_bias);
    lw.k_bias = get_optional(p + "self_attn.k_proj.bias", {Hk * D}, qkv_bias);
    lw.v_bias = get_optional(p + "self_attn.v_proj.bias", {Hk * D}, qkv_bias);
    lw.o_bias = get_optional(p + "self_attn.o_proj.bias", {C}, c.attention_bias);
    lw.q_norm = get_optional(p + "self_attn.q_norm.weight", {D}, c.qk_norm);
    lw.k_norm = get_optional(p + "self_attn.k_norm.weight", {D}, c.qk_norm);
    lw.post_attention_norm = get(p + "post_attention_layernorm.weight", {C});
    lw.gate = get(p + "mlp.gate_proj.weight", {F, C});
    lw.up = get(p + "mlp.up_proj.weight", {F, C});
    lw.down = get(p + "mlp.down_proj.weight", {C, F});
    lw.gate_bias = get_optional(p + "mlp.gate_proj.bias", {F}, c.mlp_bias);
    lw.up_bias = get_optional(p + "mlp.up_proj.bias", {F}, c.mlp_bias);
    lw.down_bias = get_optional(p + "mlp.down_proj.bias", {C}, c.mlp_bias);
    w.layers.push_back(std::move(lw));
  }
  w.final_norm = get("model.norm.weight", {C});
  // A tied checkpoint may still carry lm_head.weight (a copy); the config decides.
  w.lm_head = c.tie_word_embeddings ? w.embed : get("lm_head.weight", {V, C});
  return DecoderModel(std::move(c), std::move(w));
}

int64_t DecoderModel::parameter_count() const {
  int64_t n = weights_.embed.numel() + weights_.final_norm.numel();
  if (!weights_.lm_head.is_same(weights_.embed)) n += weights_.lm_head.numel();
  for (const auto& lw : weights_.layers)
    for (const at::Tensor* t : lw.all())
      if (t->defined()) n += t->numel();
  return n;
}

RopeTables DecoderModel::rope_tables_for(const RopeParams& rope, int64_t T) const {
  auto positions = at::arange(T, at::TensorOptions().dtype(at::kLong).device(device()));
  return rope_tables(config_, rope, positions, dtype());
}

ForwardResult DecoderModel::forward(const at::Tensor& tokens, const ForwardRequest& request) const {
  const ModelConfig& c = config_;
  if (tokens.dim() != 2 || tokens.scalar_type() != at::kLong)
    fail("tokens", "expected a (B, T) int64 tensor");
  const int64_t B = tokens.size(0), T = tokens.size(1);
  if (!request.rope || request.rope->cos.size(-2) != T)
    fail("forward", "RoPE tables for the " + std::to_string(T) + " positions are required");
  if (request.key_mask && (request.key_mask->dim() != 2 || request.key_mask->size(0) != B ||
                           request.key_mask->size(1) != T))
    fail("key_mask", "expected shape (B, T) matching the tokens");
  check_sliding_window(c, T, "forward");
  int64_t last_capture = -1;
  for (int64_t l : request.capture_layers) {
    if (l < 0 || l >= c.num_hidden_layers)
      fail("capture", "layer " + std::to_string(l) + " out of range [0, " +
                          std::to_string(c.num_hidden_layers) + ")");
    last_capture = std::max(last_capture, l);
  }
  if (request.stop == ForwardStop::kLastCapture && last_capture < 0)
    fail("forward", "stop after the last capture needs at least one captured layer");

  ForwardResult result;
  const Attention attention =
      planned_attention(attention_plan(c, request.key_mask, B, T, tokens.device(), request.doc_ids, dtype()));
  at::Tensor h = at::embedding(weights_.embed, tokens);  // (B, T, C)
  for (int64_t l = 0; l < c.num_hidden_layers; ++l) {
    const DecoderLayer layer(c, weights_.layers[size_t(l)], l, request.adapter);
    const AttentionInputs qkv = layer.attention_inputs(h, *request.rope);  // post-RoPE
    const bool captured = std::find(request.capture_layers.begin(), request.capture_layers.end(), l) !=
                          request.capture_layers.end();
    if (captured) result.captures.push_back({l, qkv.q, qkv.k, qkv.v, at::Tensor()});
    if (request.stop == ForwardStop::kLastCapture && l == last_capture) return result;
    h = layer.output(h, qkv, attention);  // (B, T, C)
    if (captured) result.captures.back().hidden = h;
  }
  result.hidden = rms_norm(h, weights_.final_norm, c.rms_norm_eps);
  if (request.stop == ForwardStop::kLogits) result.logits = at::linear(result.hidden, weights_.lm_head);
  return result;
}

}  // namespace linearard::model
