#include "model/llama.h"

#include <algorithm>

#include "common/error.h"
#include "io/checkpoint.h"

namespace linearard::model {
namespace {

at::Tensor linear(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias) {
  return at::linear(x, weight, bias.defined() ? std::optional<at::Tensor>(bias) : std::nullopt);
}

at::Tensor project(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias,
                   const ProjectionAdapter* adapter, int64_t layer, Projection which) {
  at::Tensor y = linear(x, weight, bias);
  if (adapter) {
    at::Tensor delta = adapter->delta(layer, which, x);
    if (delta.defined()) y = y + delta;
  }
  return y;
}

// (B, T, heads*D) -> (B, heads, T, D)
at::Tensor split_heads(const at::Tensor& x, int64_t heads, int64_t D) {
  return x.view({x.size(0), x.size(1), heads, D}).transpose(1, 2);
}

// The boolean attention mask (B, 1, T, T), or nothing when plain causal attention is enough.
// Padded query rows are allowed their own position so that no row is empty: an empty row would
// give NaN, and NaN values in padded positions would reach real rows through P @ V.
std::optional<at::Tensor> attention_mask(const ModelConfig& config, const ForwardRequest& request,
                                         int64_t B, int64_t T, at::Device device) {
  const bool windowed = config.sliding_window && T > *config.sliding_window;
  if (!request.key_mask && !windowed) return std::nullopt;
  auto opts = at::TensorOptions().dtype(at::kBool).device(device);
  auto i = at::arange(T, at::TensorOptions().dtype(at::kLong).device(device)).unsqueeze(1);  // (T, 1)
  auto j = i.transpose(0, 1);                                                            // (1, T)
  auto allowed = j.le(i);                                                                // (T, T)
  if (windowed) allowed = allowed.logical_and((i - j).lt(*config.sliding_window));
  auto mask = allowed.view({1, 1, T, T}).expand({B, 1, T, T});
  if (request.key_mask) {
    auto keys = request.key_mask->to(device).ne(0).view({B, 1, 1, T});
    mask = mask.logical_and(keys);
  }
  return mask.logical_or(at::eye(T, opts).view({1, 1, T, T}));
}

}  // namespace

at::Tensor rms_norm(const at::Tensor& x, const at::Tensor& weight, double eps) {
  auto x32 = x.to(at::kFloat);
  auto variance = x32.pow(2).mean(-1, /*keepdim=*/true);
  return weight * (x32 * at::rsqrt(variance + eps)).to(x.scalar_type());
}

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
  for (const auto& lw : weights_.layers) {
    for (const at::Tensor* t : {&lw.input_norm, &lw.q, &lw.k, &lw.v, &lw.o, &lw.q_bias, &lw.k_bias,
                                &lw.v_bias, &lw.o_bias, &lw.post_attention_norm, &lw.gate, &lw.up,
                                &lw.down, &lw.gate_bias, &lw.up_bias, &lw.down_bias})
      if (t->defined()) n += t->numel();
  }
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
  const int64_t H = c.num_attention_heads, Hk = c.num_key_value_heads, D = c.head_dim;
  if (!request.rope || request.rope->cos.size(0) != T)
    fail("forward", "RoPE tables for the " + std::to_string(T) + " positions are required");
  if (request.key_mask && (request.key_mask->dim() != 2 || request.key_mask->size(0) != B ||
                           request.key_mask->size(1) != T))
    fail("key_mask", "expected shape (B, T) matching the tokens");
  if (c.sliding_window && T > *c.sliding_window && c.model_type == "qwen2")
    fail("forward", "sequence of " + std::to_string(T) + " tokens exceeds Qwen2's sliding_window " +
                        std::to_string(*c.sliding_window) + " (use_sliding_window is not supported)");
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
  const auto mask = attention_mask(c, request, B, T, tokens.device());
  const int64_t group = H / Hk;
  at::Tensor h = at::embedding(weights_.embed, tokens);  // (B, T, C)
  for (int64_t l = 0; l < c.num_hidden_layers; ++l) {
    const DecoderLayerWeights& lw = weights_.layers[l];
    bool captured = false;
    at::Tensor x = rms_norm(h, lw.input_norm, c.rms_norm_eps);
    at::Tensor q = split_heads(project(x, lw.q, lw.q_bias, request.adapter, l, Projection::kQuery), H, D);
    at::Tensor k = split_heads(project(x, lw.k, lw.k_bias, request.adapter, l, Projection::kKey), Hk, D);
    at::Tensor v = split_heads(project(x, lw.v, lw.v_bias, request.adapter, l, Projection::kValue), Hk, D);
    q = apply_rope(q, *request.rope);  // (B, H, T, D)
    k = apply_rope(k, *request.rope);  // (B, Hk, T, D)
    if (std::find(request.capture_layers.begin(), request.capture_layers.end(), l) !=
        request.capture_layers.end()) {
      result.captures.push_back({l, q, k, v, at::Tensor()});
      captured = true;
    }
    if (request.stop == ForwardStop::kLastCapture && l == last_capture) return result;

    // CUDA: repeat K/V for GQA so SDPA keeps its flash kernel; CPU: let SDPA broadcast.
    const bool repeat_kv = group > 1 && tokens.is_cuda();
    at::Tensor attn = at::scaled_dot_product_attention(
        q, repeat_kv ? k.repeat_interleave(group, 1) : k, repeat_kv ? v.repeat_interleave(group, 1) : v,
        mask, /*dropout_p=*/0.0, /*is_causal=*/!mask.has_value(), /*scale=*/1.0 / std::sqrt(double(D)),
        /*enable_gqa=*/group > 1 && !repeat_kv);  // (B, H, T, D)
    attn = attn.transpose(1, 2).reshape({B, T, H * D});
    h = h + project(attn, lw.o, lw.o_bias, request.adapter, l, Projection::kOutput);
    x = rms_norm(h, lw.post_attention_norm, c.rms_norm_eps);
    at::Tensor gated = at::silu(project(x, lw.gate, lw.gate_bias, request.adapter, l, Projection::kGate)) *
                       project(x, lw.up, lw.up_bias, request.adapter, l, Projection::kUp);  // (B, T, F)
    h = h + project(gated, lw.down, lw.down_bias, request.adapter, l, Projection::kDown);
    if (captured) result.captures.back().hidden = h;
  }
  result.hidden = rms_norm(h, weights_.final_norm, c.rms_norm_eps);
  if (request.stop == ForwardStop::kLogits) result.logits = at::linear(result.hidden, weights_.lm_head);
  return result;
}

}  // namespace linearard::model
