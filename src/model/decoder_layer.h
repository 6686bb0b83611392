// The one decoder layer of the LLaMA family (llama, mistral, qwen2, qwen3): input RMSNorm, q/k/v
// projections (optional biases), per-head q/k RMSNorm (qwen3), RoPE, attention, o projection and
// the SwiGLU MLP, each behind a residual. The plain forward (llama.cpp), the training stack
// (train/student_stack.cpp) and the cached decoder (eval/kv_cache.cpp) all run this code; what
// differs between them comes in through three hooks:
//   - a ProjectionAdapter adds trainable deltas to the seven projections (LoRA, full q/k/v deltas);
//   - the Attention turns post-RoPE q, k, v into the attention output (plain masked SDPA, or the
//     KV cache with its left padding and sliding window);
//   - a QkvHook sees the post-RoPE q, k, v (what the relation KL and the hidden-state terms use).
// Layer structure: transformers' modeling_llama.py (LlamaDecoderLayer, LlamaAttention, LlamaMLP);
// q/k norm: modeling_qwen3.py (Qwen3Attention.forward).
#pragma once
#include <ATen/ATen.h>

#include <functional>

#include "model/model_config.h"
#include "model/rope.h"

namespace linearard::model {

struct DecoderLayerWeights {
  at::Tensor input_norm;            // (C)
  at::Tensor q, k, v, o;            // (H*D, C), (Hk*D, C), (Hk*D, C), (C, H*D)
  at::Tensor q_bias, k_bias, v_bias, o_bias;  // undefined when the model has none
  at::Tensor q_norm, k_norm;        // (D), (D): per-head RMSNorm before RoPE (qk_norm only)
  at::Tensor post_attention_norm;   // (C)
  at::Tensor gate, up, down;        // (F, C), (F, C), (C, F)
  at::Tensor gate_bias, up_bias, down_bias;   // mlp_bias only

  // Every tensor slot, defined or not, in checkpoint order (for counting and collecting them).
  std::vector<const at::Tensor*> all() const;
};

// The seven linear projections of a decoder layer, in the order of their checkpoint tensors
// (transformers' LlamaAttention: q_proj, k_proj, v_proj, o_proj; LlamaMLP: gate_proj, up_proj, down_proj).
enum class Projection { kQuery = 0, kKey = 1, kValue = 2, kOutput = 3, kGate = 4, kUp = 5, kDown = 6 };
constexpr int kProjectionCount = 7;

// Trainable additions to the layers' projections (LoRA, full q/k/v training...). delta() returns
// what to add to the projection's output (B, T, out) for its input x (B, T, in), or an undefined
// tensor when the projection has no adapter.
class ProjectionAdapter {
 public:
  virtual ~ProjectionAdapter() = default;
  virtual at::Tensor delta(int64_t layer, Projection projection, const at::Tensor& x) const = 0;
};

// What a layer hands to its attention, post-RoPE.
struct AttentionInputs {
  at::Tensor q;  // (B, H, T, D)
  at::Tensor k;  // (B, Hk, T, D), not repeated for GQA
  at::Tensor v;  // (B, Hk, T, D)
};

// Computes the attention output (B, H, T, D) of the layer's q, k, v.
using Attention = std::function<at::Tensor(const AttentionInputs&)>;
// Sees a layer's post-RoPE q, k, v before its attention runs.
using QkvHook = std::function<void(const AttentionInputs&)>;

class DecoderLayer {
 public:
  // `weights` and `adapter` (optional) must outlive the layer. Weights are cast to the dtype of
  // the hidden state at use, so frozen bf16 base weights and float32 master weights run alike.
  DecoderLayer(const ModelConfig& config, const DecoderLayerWeights& weights, int64_t index,
               const ProjectionAdapter* adapter = nullptr);

  // The post-RoPE q, k, v of h (B, T, C), with `rope` tables broadcastable to (B, heads, T, D).
  AttentionInputs attention_inputs(const at::Tensor& h, const RopeTables& rope) const;

  // The layer's output (B, T, C): h + o(attention) and then + MLP, for the q, k, v that
  // attention_inputs() gave for this h.
  at::Tensor output(const at::Tensor& h, const AttentionInputs& qkv, const Attention& attention) const;

  // attention_inputs(), then `on_qkv` (if any), then output().
  at::Tensor forward(const at::Tensor& h, const RopeTables& rope, const Attention& attention,
                     const QkvHook& on_qkv = nullptr) const;

 private:
  at::Tensor weight(const at::Tensor& t, const at::Tensor& like) const;
  // x (B, T, in) -> (B, T, out): the projection, its bias and the adapter's delta.
  at::Tensor project(const at::Tensor& x, const at::Tensor& w, const at::Tensor& bias, Projection which) const;
  // x (B, T, C) -> (B, heads, T, D) post-RoPE, with the per-head norm first when there is one.
  at::Tensor heads(const at::Tensor& x, const at::Tensor& w, const at::Tensor& bias, const at::Tensor& norm,
                   Projection which, int64_t heads, const RopeTables* rope) const;

  const ModelConfig& config_;
  const DecoderLayerWeights& w_;
  int64_t index_;
  const ProjectionAdapter* adapter_;
};

// y = weight * (x * rsqrt(mean(x^2) + eps)) with the statistics in float32, as transformers does.
at::Tensor rms_norm(const at::Tensor& x, const at::Tensor& weight, double eps);

}  // namespace linearard::model
