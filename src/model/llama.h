// The LLaMA-family decoder (llama, mistral, qwen2) in LibTorch. One copy of the base weights serves
// the teacher and the student: they differ only by the RoPE tables and the adapters that a forward is
// given.
#pragma once
#include <ATen/ATen.h>

#include <optional>
#include <string>
#include <vector>

#include "model/model_config.h"
#include "model/rope.h"

namespace linearard::model {

struct DecoderLayerWeights {
  at::Tensor input_norm;            // (C)
  at::Tensor q, k, v, o;            // (H*D, C), (Hk*D, C), (Hk*D, C), (C, H*D)
  at::Tensor q_bias, k_bias, v_bias, o_bias;  // undefined when the model has none
  at::Tensor post_attention_norm;   // (C)
  at::Tensor gate, up, down;        // (F, C), (F, C), (C, F)
  at::Tensor gate_bias, up_bias, down_bias;   // mlp_bias only
};

struct DecoderWeights {
  at::Tensor embed;       // (V, C)
  std::vector<DecoderLayerWeights> layers;
  at::Tensor final_norm;  // (C)
  at::Tensor lm_head;     // (V, C); the same tensor as embed when tied
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

// Where a forward may stop: after the q/k/v of the last captured layer, after the final norm, or
// after the LM head.
enum class ForwardStop { kLastCapture, kHidden, kLogits };

struct ForwardRequest {
  const RopeTables* rope = nullptr;        // required: (T, D) tables for positions 0..T-1
  const ProjectionAdapter* adapter = nullptr;  // optional
  std::vector<int64_t> capture_layers;     // layers whose post-RoPE Q, K and V are returned
  ForwardStop stop = ForwardStop::kLogits;
  std::optional<at::Tensor> key_mask;      // (B, T) 1 = real token, 0 = padding
};

struct LayerCapture {
  int64_t layer = 0;
  at::Tensor q;  // (B, H, T, D) post-RoPE
  at::Tensor k;  // (B, Hk, T, D) post-RoPE, not repeated for GQA
  at::Tensor v;  // (B, Hk, T, D)
  at::Tensor hidden;  // (B, T, C) the layer's output (residual stream), unless the forward stopped inside it
};

struct ForwardResult {
  at::Tensor logits;  // (B, T, V) when stop == kLogits
  at::Tensor hidden;  // (B, T, C) after the final norm, when stop >= kHidden
  std::vector<LayerCapture> captures;  // in capture_layers order
};

class DecoderModel {
 public:
  // Loads DIR (config.json + safetensors) with weights converted to `dtype` on `device`.
  static DecoderModel load(const std::string& model_dir, at::ScalarType dtype, at::Device device);
  DecoderModel(ModelConfig config, DecoderWeights weights);

  const ModelConfig& config() const { return config_; }
  const DecoderWeights& weights() const { return weights_; }
  DecoderWeights& mutable_weights() { return weights_; }
  at::ScalarType dtype() const { return weights_.embed.scalar_type(); }
  at::Device device() const { return weights_.embed.device(); }
  int64_t parameter_count() const;

  // tokens (B, T) int64 on the model's device.
  ForwardResult forward(const at::Tensor& tokens, const ForwardRequest& request) const;

  // Tables for positions 0..T-1 with `rope` (the checkpoint's or a scaled one).
  RopeTables rope_tables_for(const RopeParams& rope, int64_t T) const;

 private:
  ModelConfig config_;
  DecoderWeights weights_;
};

// y = weight * (x * rsqrt(mean(x^2) + eps)) with the statistics in float32, as transformers does.
at::Tensor rms_norm(const at::Tensor& x, const at::Tensor& weight, double eps);

}  // namespace linearard::model
