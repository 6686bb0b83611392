#include "train/qkv_adapter.h"

#include <ATen/CPUGeneratorImpl.h>

#include <cmath>

namespace linearard::train {
namespace {

constexpr model::QkvProjection kProjections[] = {model::QkvProjection::kQuery, model::QkvProjection::kKey,
                                                 model::QkvProjection::kValue};

int64_t out_features(const model::ModelConfig& c, model::QkvProjection p) {
  const int64_t heads = p == model::QkvProjection::kQuery ? c.num_attention_heads : c.num_key_value_heads;
  return heads * c.head_dim;
}

std::string module_prefix(int64_t layer, model::QkvProjection p) {
  return "model.layers." + std::to_string(layer) + ".self_attn." + projection_name(p);
}

}  // namespace

const char* projection_name(model::QkvProjection p) {
  switch (p) {
    case model::QkvProjection::kQuery: return "q_proj";
    case model::QkvProjection::kKey: return "k_proj";
    default: return "v_proj";
  }
}

LoraAdapter::LoraAdapter(const model::ModelConfig& config, const LoraOptions& options, at::Device device)
    : options_(options) {
  // Drawn on CPU from its own generator so the init does not depend on the device or on the
  // global RNG.
  at::Generator gen = at::detail::createCPUGenerator(options.seed);
  const int64_t C = config.hidden_size, r = options.rank;
  for (int64_t l = 0; l < config.num_hidden_layers; ++l) {
    for (auto p : kProjections) {
      const double bound = 1.0 / std::sqrt(double(C));  // kaiming_uniform_(a=sqrt(5)): gain*sqrt(3/fan_in)
      at::Tensor a = at::empty({r, C}, at::kFloat).uniform_(-bound, bound, gen).to(device);  // (r, C)
      at::Tensor b = at::zeros({out_features(config, p), r}, at::TensorOptions(at::kFloat).device(device));
      a.set_requires_grad(true);
      b.set_requires_grad(true);
      const std::string prefix = "base_model.model." + module_prefix(l, p);
      named_.emplace_back(prefix + ".lora_A.weight", a);
      named_.emplace_back(prefix + ".lora_B.weight", b);
      a_.push_back(a);
      b_.push_back(b);
    }
  }
}

at::Tensor LoraAdapter::delta(int64_t layer, model::QkvProjection p, const at::Tensor& x) const {
  const size_t i = index(layer, p);
  const at::Tensor in = uses_rng() ? at::dropout(x, options_.dropout, /*train=*/true) : x;
  // (B, T, C) -> (B, T, r) -> (B, T, out); PEFT: lora_B(lora_A(dropout(x))) * scaling
  return at::linear(at::linear(in, a_[i].to(x.scalar_type())), b_[i].to(x.scalar_type())) * scaling();
}

std::vector<at::Tensor> LoraAdapter::layer_parameters(int64_t layer) const {
  std::vector<at::Tensor> out;
  for (auto p : kProjections) {
    out.push_back(a_[index(layer, p)]);
    out.push_back(b_[index(layer, p)]);
  }
  return out;
}

FullQkvAdapter::FullQkvAdapter(const model::ModelConfig& config, at::Device device) {
  for (int64_t l = 0; l < config.num_hidden_layers; ++l) {
    for (auto p : kProjections) {
      at::Tensor d = at::zeros({out_features(config, p), config.hidden_size},
                               at::TensorOptions(at::kFloat).device(device));  // (out, C)
      d.set_requires_grad(true);
      named_.emplace_back(module_prefix(l, p) + ".weight_delta", d);
      delta_.push_back(d);
    }
  }
}

at::Tensor FullQkvAdapter::delta(int64_t layer, model::QkvProjection p, const at::Tensor& x) const {
  return at::linear(x, delta_[size_t(layer * 3 + int(p))].to(x.scalar_type()));
}

std::vector<at::Tensor> FullQkvAdapter::layer_parameters(int64_t layer) const {
  return {delta_[size_t(layer * 3)], delta_[size_t(layer * 3 + 1)], delta_[size_t(layer * 3 + 2)]};
}

}  // namespace linearard::train
