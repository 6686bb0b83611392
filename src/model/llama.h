// The LLaMA-family decoder (llama, mistral, qwen2, qwen3) in LibTorch: embedding, the layers of
// decoder_layer.h, final norm and LM head. One copy of the base weights serves the teacher and the
// student: they differ only by the RoPE tables and the adapters that a forward is given.
#pragma once
#include <ATen/ATen.h>

#include <optional>
#include <string>
#include <vector>

#include "model/decoder_layer.h"
#include "model/model_config.h"
#include "model/rope.h"

namespace linearard::model {

struct DecoderWeights {
  at::Tensor embed;       // (V, C)
  std::vector<DecoderLayerWeights> layers;
  at::Tensor final_norm;  // (C)
  at::Tensor lm_head;     // (V, C); the same tensor as embed when tied
};

// Where a forward may stop: after the q/k/v of the last captured layer, after the final norm, or
// after the LM head.
enum class ForwardStop { kLastCapture, kHidden, kLogits };

struct ForwardRequest {
  const RopeTables* rope = nullptr;        // required: (T, D) tables for positions 0..T-1, or (packed
                                           // blocks) document_rope_tables(doc_ids) (B, 1, T, D)
  const ProjectionAdapter* adapter = nullptr;  // optional
  std::vector<int64_t> capture_layers;     // layers whose post-RoPE Q, K and V are returned
  ForwardStop stop = ForwardStop::kLogits;
  std::optional<at::Tensor> key_mask;      // (B, T) 1 = real token, 0 = padding
  std::optional<at::Tensor> doc_ids;       // (B, T) packed blocks: attention stays inside each document
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

}  // namespace linearard::model
