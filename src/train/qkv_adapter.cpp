#include "train/qkv_adapter.h"

#include <ATen/CPUGeneratorImpl.h>

#include <algorithm>
#include <cmath>

#include "common/error.h"

namespace linearard::train {
namespace {

constexpr model::Projection kQkv[] = {model::Projection::kQuery, model::Projection::kKey, model::Projection::kValue};

std::string module_prefix(int64_t layer, model::Projection p) {
  return "model.layers." + std::to_string(layer) + "." + projection_path(p);
}

}  // namespace

const char* projection_name(model::Projection p) {
  switch (p) {
    case model::Projection::kQuery: return "q_proj";
    case model::Projection::kKey: return "k_proj";
    case model::Projection::kValue: return "v_proj";
    case model::Projection::kOutput: return "o_proj";
    case model::Projection::kGate: return "gate_proj";
    case model::Projection::kUp: return "up_proj";
    default: return "down_proj";
  }
}

std::optional<model::Projection> projection_from_name(const std::string& name) {
  for (int i = 0; i < model::kProjectionCount; ++i)
    if (name == projection_name(model::Projection(i))) return model::Projection(i);
  return std::nullopt;
}

std::string projection_path(model::Projection p) {
  return std::string(int(p) <= int(model::Projection::kOutput) ? "self_attn." : "mlp.") + projection_name(p);
}

std::pair<int64_t, int64_t> projection_shape(const model::ModelConfig& c, model::Projection p) {
  const int64_t C = c.hidden_size, F = c.intermediate_size, D = c.head_dim;
  switch (p) {
    case model::Projection::kQuery: return {c.num_attention_heads * D, C};
    case model::Projection::kKey:
    case model::Projection::kValue: return {c.num_key_value_heads * D, C};
    case model::Projection::kOutput: return {C, c.num_attention_heads * D};
    case model::Projection::kGate:
    case model::Projection::kUp: return {F, C};
    default: return {C, F};
  }
}

LoraAdapter::LoraAdapter(const model::ModelConfig& config, const LoraOptions& options, at::Device device)
    : options_(options) {
  std::vector<bool> target(model::kProjectionCount, false);
  for (auto p : options.targets) target[size_t(p)] = true;
  if (std::find(target.begin(), target.end(), true) == target.end()) fail("--lora-targets", "no target modules");
  options_.targets.clear();
  for (int i = 0; i < model::kProjectionCount; ++i)
    if (target[size_t(i)]) options_.targets.push_back(model::Projection(i));
  // Drawn on CPU from its own generator so the init does not depend on the device or on the
  // global RNG.
  at::Generator gen = at::detail::createCPUGenerator(options.seed);
  const int64_t r = options.rank;
  a_.resize(size_t(config.num_hidden_layers * model::kProjectionCount));
  b_.resize(a_.size());
  for (int64_t l = 0; l < config.num_hidden_layers; ++l) {
    for (auto p : options_.targets) {
      const auto [out, in] = projection_shape(config, p);
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
  const at::Tensor in = uses_rng() ? at::dropout(x, options_.dropout, /*train=*/true) : x;
  // (B, T, in) -> (B, T, r) -> (B, T, out); PEFT: lora_B(lora_A(dropout(x))) * scaling
  return at::linear(at::linear(in, a_[i].to(x.scalar_type())), b_[i].to(x.scalar_type())) * scaling();
}

std::vector<at::Tensor> LoraAdapter::layer_parameters(int64_t layer) const {
  std::vector<at::Tensor> out;
  for (auto p : options_.targets) {
    out.push_back(a_[index(layer, p)]);
    out.push_back(b_[index(layer, p)]);
  }
  return out;
}

FullQkvAdapter::FullQkvAdapter(const model::ModelConfig& config, at::Device device) {
  for (int64_t l = 0; l < config.num_hidden_layers; ++l) {
    for (auto p : kQkv) {
      const auto [out, in] = projection_shape(config, p);
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
