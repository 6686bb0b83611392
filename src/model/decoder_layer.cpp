#include "model/decoder_layer.h"

#include <optional>

namespace linearard::model {

std::vector<const at::Tensor*> DecoderLayerWeights::all() const {
  return {&input_norm, &q, &k, &v, &o, &q_bias, &k_bias, &v_bias, &o_bias, &q_norm, &k_norm,
          &post_attention_norm, &gate, &up, &down, &gate_bias, &up_bias, &down_bias};
}

at::Tensor rms_norm(const at::Tensor& x, const at::Tensor& weight, double eps) {
  auto x32 = x.to(at::kFloat);
  auto variance = x32.pow(2).mean(-1, /*keepdim=*/true);
  return weight * (x32 * at::rsqrt(variance + eps)).to(x.scalar_type());
}

DecoderLayer::DecoderLayer(const ModelConfig& config, const DecoderLayerWeights& weights, int64_t index,
                           const ProjectionAdapter* adapter)
    : config_(config), w_(weights), index_(index), adapter_(adapter) {}

at::Tensor DecoderLayer::weight(const at::Tensor& t, const at::Tensor& like) const {
  return t.defined() ? t.to(like.scalar_type()) : t;  // no copy when the dtypes already agree
}

at::Tensor DecoderLayer::project(const at::Tensor& x, const at::Tensor& w, const at::Tensor& bias,
                                 Projection which) const {
  const at::Tensor b = weight(bias, x);
  at::Tensor y = at::linear(x, weight(w, x), b.defined() ? std::optional<at::Tensor>(b) : std::nullopt);
  if (adapter_) {
    at::Tensor delta = adapter_->delta(index_, which, x);
    if (delta.defined()) y = y + delta;
  }
  return y;
}

at::Tensor DecoderLayer::heads(const at::Tensor& x, const at::Tensor& w, const at::Tensor& bias,
                               const at::Tensor& norm, Projection which, int64_t heads,
                               const RopeTables* rope) const {
  const int64_t B = x.size(0), T = x.size(1), D = config_.head_dim;
  at::Tensor y = project(x, w, bias, which).view({B, T, heads, D});  // (B, T, heads, D)
  // Qwen3Attention.forward: q_norm / k_norm on each head's vector, before the transpose and RoPE.
  if (norm.defined()) y = rms_norm(y, weight(norm, y), config_.rms_norm_eps);
  y = y.transpose(1, 2);  // (B, heads, T, D)
  return rope ? apply_rope(y, *rope) : y;
}

AttentionInputs DecoderLayer::attention_inputs(const at::Tensor& h, const RopeTables& rope) const {
  const int64_t H = config_.num_attention_heads, Hk = config_.num_key_value_heads;
  const at::Tensor x = rms_norm(h, weight(w_.input_norm, h), config_.rms_norm_eps);  // (B, T, C)
  AttentionInputs qkv;
  qkv.q = heads(x, w_.q, w_.q_bias, w_.q_norm, Projection::kQuery, H, &rope);      // (B, H, T, D)
  qkv.k = heads(x, w_.k, w_.k_bias, w_.k_norm, Projection::kKey, Hk, &rope);       // (B, Hk, T, D)
  qkv.v = heads(x, w_.v, w_.v_bias, at::Tensor(), Projection::kValue, Hk, nullptr);  // (B, Hk, T, D)
  return qkv;
}

at::Tensor DecoderLayer::output(const at::Tensor& h, const AttentionInputs& qkv, const Attention& attention) const {
  const int64_t B = h.size(0), T = h.size(1), H = config_.num_attention_heads, D = config_.head_dim;
  const at::Tensor attn = attention(qkv).transpose(1, 2).reshape({B, T, H * D});  // (B, T, H*D)
  at::Tensor out = h + project(attn, w_.o, w_.o_bias, Projection::kOutput);        // (B, T, C)
  const at::Tensor x = rms_norm(out, weight(w_.post_attention_norm, out), config_.rms_norm_eps);
  const at::Tensor gated = at::silu(project(x, w_.gate, w_.gate_bias, Projection::kGate)) *
                           project(x, w_.up, w_.up_bias, Projection::kUp);  // (B, T, F)
  return out + project(gated, w_.down, w_.down_bias, Projection::kDown);
}

at::Tensor DecoderLayer::forward(const at::Tensor& h, const RopeTables& rope, const Attention& attention,
                                 const QkvHook& on_qkv) const {
  const AttentionInputs qkv = attention_inputs(h, rope);
  if (on_qkv) on_qkv(qkv);
  return output(h, qkv, attention);
}

}  // namespace linearard::model
