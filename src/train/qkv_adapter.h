// The student's trainable q/k/v adapters (model::QkvAdapter): LoRA (PEFT semantics) or full
// training of the q/k/v projections as float32 deltas. Trainable tensors are float32 leaves; the
// adapter casts them to the activations' dtype (bf16 compute, float32 master weights).
#pragma once
#include <ATen/ATen.h>

#include <string>
#include <utility>
#include <vector>

#include "model/llama.h"
#include "model/model_config.h"

namespace linearard::train {

using NamedTensors = std::vector<std::pair<std::string, at::Tensor>>;

class TrainableQkvAdapter : public model::QkvAdapter {
 public:
  // Trainable tensors with their checkpoint names, in a fixed order (layer, q/k/v, A/B).
  virtual const NamedTensors& named_parameters() const = 0;
  // The trainable tensors that layer `layer` reads (the activation-checkpointing inputs).
  virtual std::vector<at::Tensor> layer_parameters(int64_t layer) const = 0;
  // Dropout draws random numbers: a recomputed layer must replay the generator state.
  virtual bool uses_rng() const { return false; }
  void set_training(bool training) { training_ = training; }
  bool training() const { return training_; }

 protected:
  bool training_ = true;
};

struct LoraOptions {
  int64_t rank = 1024;
  double alpha = 2048;
  double dropout = 0.05;
  uint64_t seed = 0;  // A's Kaiming-uniform init (B starts at zero)
};

// y += (B (A dropout(x))) * alpha / r on q_proj, k_proj, v_proj of every layer, as PEFT's
// lora.Linear. A (r, in) ~ U(-1/sqrt(in), 1/sqrt(in)) (kaiming_uniform_ with a = sqrt(5)),
// B (out, r) = 0. Names: base_model.model.model.layers.{i}.self_attn.{q,k,v}_proj.lora_{A,B}.weight
// (PEFT's adapter_model.safetensors keys).
class LoraAdapter : public TrainableQkvAdapter {
 public:
  LoraAdapter(const model::ModelConfig& config, const LoraOptions& options, at::Device device);
  at::Tensor delta(int64_t layer, model::QkvProjection projection, const at::Tensor& x) const override;
  const NamedTensors& named_parameters() const override { return named_; }
  std::vector<at::Tensor> layer_parameters(int64_t layer) const override;
  bool uses_rng() const override { return options_.dropout > 0 && training_; }
  const LoraOptions& options() const { return options_; }
  double scaling() const { return options_.alpha / double(options_.rank); }
  at::Tensor& A(int64_t layer, model::QkvProjection p) { return a_[index(layer, p)]; }  // (r, C)
  at::Tensor& B(int64_t layer, model::QkvProjection p) { return b_[index(layer, p)]; }  // (out, r)

 private:
  static size_t index(int64_t layer, model::QkvProjection p) { return size_t(layer * 3 + int(p)); }
  LoraOptions options_;
  std::vector<at::Tensor> a_, b_;
  NamedTensors named_;
};

// y += x dW^T with dW (out, C) float32, zero at the start: full training of the q/k/v weights
// without a second copy of them. Names: model.layers.{i}.self_attn.{q,k,v}_proj.weight_delta;
// merged weight = W + dW.
class FullQkvAdapter : public TrainableQkvAdapter {
 public:
  FullQkvAdapter(const model::ModelConfig& config, at::Device device);
  at::Tensor delta(int64_t layer, model::QkvProjection projection, const at::Tensor& x) const override;
  const NamedTensors& named_parameters() const override { return named_; }
  std::vector<at::Tensor> layer_parameters(int64_t layer) const override;

 private:
  std::vector<at::Tensor> delta_;  // (out, C) per layer and projection
  NamedTensors named_;
};

// "q_proj", "k_proj", "v_proj"
const char* projection_name(model::QkvProjection p);

}  // namespace linearard::train
