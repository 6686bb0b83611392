// The student's trainable adapters (model::ProjectionAdapter): LoRA (PEFT semantics) on any of the
// seven projections of a layer, or full training of the q/k/v projections as float32 deltas.
// Trainable tensors are float32 leaves; the adapter casts them to the activations' dtype (bf16
// compute, float32 master weights).
#pragma once
#include <ATen/ATen.h>

#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "model/llama.h"
#include "model/model_config.h"
#include "train/adapter_spec.h"

namespace linearard::train {

using NamedTensors = std::vector<std::pair<std::string, at::Tensor>>;

class TrainableAdapter : public model::ProjectionAdapter {
 public:
  // Trainable tensors with their checkpoint names, in a fixed order (layer, projection, A/B).
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

// y += (B (A dropout(x))) * alpha / r on the target projections of every layer, as PEFT's
// lora.Linear (peft/tuners/lora/layer.py: Linear.forward, reset_lora_parameters). A (r, in) ~
// U(-1/sqrt(in), 1/sqrt(in)) (kaiming_uniform_ with a = sqrt(5)), B (out, r) = 0; each projection
// draws its own dropout mask, as each PEFT module has its own nn.Dropout. Names (PEFT's
// adapter_model.safetensors keys): base_model.model.model.layers.{i}.self_attn.{q,k,v,o}_proj.lora_{A,B}.weight
// and base_model.model.model.layers.{i}.mlp.{gate,up,down}_proj.lora_{A,B}.weight. A's are drawn
// from one generator in (layer, projection) order, so q/k/v-only adapters keep their old init.
class LoraAdapter : public TrainableAdapter {
 public:
  // spec.kind must be lora; `seed` draws A's Kaiming-uniform init (B starts at zero). The targets
  // are kept in Projection order whatever the order in spec.targets.
  LoraAdapter(const model::ModelConfig& config, const AdapterSpec& spec, uint64_t seed, at::Device device);
  at::Tensor delta(int64_t layer, model::Projection projection, const at::Tensor& x) const override;
  const NamedTensors& named_parameters() const override { return named_; }
  std::vector<at::Tensor> layer_parameters(int64_t layer) const override;
  bool uses_rng() const override { return spec_.dropout > 0 && training_; }
  const AdapterSpec& spec() const { return spec_; }
  double scaling() const { return spec_.alpha / double(spec_.rank); }
  // Undefined for a projection that is not a target.
  at::Tensor& A(int64_t layer, model::Projection p) { return a_[index(layer, p)]; }  // (r, in)
  at::Tensor& B(int64_t layer, model::Projection p) { return b_[index(layer, p)]; }  // (out, r)

 private:
  static size_t index(int64_t layer, model::Projection p) {
    return size_t(layer * model::kProjectionCount + int(p));
  }
  AdapterSpec spec_;
  std::vector<model::Projection> targets_;  // spec_.targets in Projection order
  std::vector<at::Tensor> a_, b_;  // per layer and Projection; undefined where not a target
  NamedTensors named_;
};

// y += x dW^T with dW (out, C) float32, zero at the start: full training of the q/k/v weights
// without a second copy of them. Names: model.layers.{i}.self_attn.{q,k,v}_proj.weight_delta;
// merged weight = W + dW. The other projections get no delta.
class FullQkvAdapter : public TrainableAdapter {
 public:
  FullQkvAdapter(const model::ModelConfig& config, at::Device device);
  at::Tensor delta(int64_t layer, model::Projection projection, const at::Tensor& x) const override;
  const NamedTensors& named_parameters() const override { return named_; }
  std::vector<at::Tensor> layer_parameters(int64_t layer) const override;

 private:
  std::vector<at::Tensor> delta_;  // (out, C) per layer and q/k/v projection
  NamedTensors named_;
};

}  // namespace linearard::train
