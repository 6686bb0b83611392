#include "train/qkv_adapter.h"

#include <ATen/CPUGeneratorImpl.h>

#include <algorithm>
#include <cmath>

#include "common/error.h"
#include "common/option_error.h"
#include "model/projection.h"

namespace linearard::train {
namespace {

constexpr model::Projection kQkv[] = {model::Projection::kQuery, model::Projection::kKey, model::Projection::kValue};

std::string module_prefix(int64_t layer, model::Projection p) {
  return "model.layers." + std::to_string(layer) + "." + model::projection_path(p);
}

}  // namespace

LoraAdapter::LoraAdapter(const model::ModelConfig& config, const AdapterSpec& spec, uint64_t seed, at::Device device)
    : spec_(spec) {
  std::vector<bool> target(model::kProjectionCount, false);
  for (const auto& name : spec.targets) {
    const auto p = model::projection_from_name(name);
    if (!p) fail_option("lora-targets", "unknown module '" + name + "'");
    target[size_t(*p)] = true;
  }
  if (std::find(target.begin(), target.end(), true) == target.end()) fail_option("lora-targets", "no target modules");
  for (int i = 0; i < model::kProjectionCount; ++i)
    if (target[size_t(i)]) targets_.push_back(model::Projection(i));
  // Drawn on CPU from its own generator so the init does not depend on the device or on the
  // global RNG.
  at::Generator gen = at::detail::createCPUGenerator(seed);
  const int64_t r = spec.rank;
  a_.resize(size_t(config.num_hidden_layers * model::kProjectionCount));
  b_.resize(a_.size());
  for (int64_t l = 0; l < config.num_hidden_layers; ++l) {
    for (auto p : targets_) {
      const auto [out, in] = model::projection_shape(config, p);
      const double bound = 1.0 / std::sqrt(double(in));  // kaiming_uniform_(a=sqrt(5)): gain*sqrt(3/fan_in)
      at::Tensor a = at::empty({r, in}, at::kFloat).uniform_(-bound, bound, gen).to(device);      // (r, in)
      at::Tensor b = at::zeros({out, r}, at::TensorOptions(at::kFloat).device(device));          // (out, r)
      a.set_requires_grad(true);
      b.set_requires_grad(true);
      const std::string prefix = "base_model.model." + module_prefix(l, p);
      named_.emplace_back(prefix + ".lora_A.weight", a);
      named_.emplace_back(prefix + ".lora_B.weight", b);
      a_[index(l, p)] = a;
      b_[index(l, p)] = b;
    }
  }
}

at::Tensor LoraAdapter::delta(int64_t layer, model::Projection p, const at::Tensor& x) const {
  const size_t i = index(layer, p);
  if (!a_[i].defined()) return at::Tensor();
  const at::Tensor in = uses_rng() ? at::dropout(x, spec_.dropout, /*train=*/true) : x;
  // (B, T, in) -> (B, T, r) -> (B, T, out); PEFT: lora_B(lora_A(dropout(x))) * scaling
  return at::linear(at::linear(in, a_[i].to(x.scalar_type())), b_[i].to(x.scalar_type())) * scaling();
}

std::vector<at::Tensor> LoraAdapter::layer_parameters(int64_t layer) const {
  std::vector<at::Tensor> out;
  for (auto p : targets_) {
    out.push_back(a_[index(layer, p)]);
    out.push_back(b_[index(layer, p)]);
  }
  return out;
}

FullQkvAdapter::FullQkvAdapter(const model::ModelConfig& config, at::Device device) {
  for (int64_t l = 0; l < config.num_hidden_layers; ++l) {
    for (auto p : kQkv) {
      const auto [out, in] = model::projection_shape(config, p);
      at::Tensor d = at::zeros({out, in}, at::TensorOptions(at::kFloat).device(device));  // (out, C)
      d.set_requires_grad(true);
      named_.emplace_back(module_prefix(l, p) + ".weight_delta", d);
      delta_.push_back(d);
    }
  }
}

at::Tensor FullQkvAdapter::delta(int64_t layer, model::Projection p, const at::Tensor& x) const {
  if (int(p) > int(model::Projection::kValue)) return at::Tensor();
  return at::linear(x, delta_[size_t(layer * 3 + int(p))].to(x.scalar_type()));
}

std::vector<at::Tensor> FullQkvAdapter::layer_parameters(int64_t layer) const {
  return {delta_[size_t(layer * 3)], delta_[size_t(layer * 3 + 1)], delta_[size_t(layer * 3 + 2)]};
}

}  // namespace linearard::train
