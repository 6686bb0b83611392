#include "train/optimizer.h"

#include <torch/optim/adamw.h>

#include <cmath>

#include "common/error.h"

namespace linearard::train {

double scheduled_lr(const OptimOptions& o, int64_t step) {
  if (step < o.warmup_steps) return o.lr * double(step) / double(o.warmup_steps);
  const int64_t decay_steps = std::max<int64_t>(1, o.steps - o.warmup_steps);
  const double progress = std::min(1.0, double(step - o.warmup_steps) / double(decay_steps));
  const double cosine = 0.5 * (1.0 + std::cos(M_PI * progress));
  return o.lr * (o.min_lr_ratio + (1.0 - o.min_lr_ratio) * cosine);
}

struct Optimizer::Impl {
  NamedTensors params;
  std::unique_ptr<torch::optim::AdamW> adamw;
};

Optimizer::Optimizer(const NamedTensors& params, const OptimOptions& o) : impl_(std::make_unique<Impl>()) {
  impl_->params = params;
  std::vector<at::Tensor> tensors;
  for (const auto& [name, t] : params) tensors.push_back(t);
  torch::optim::AdamWOptions options(o.lr);
  options.betas(std::make_tuple(o.beta1, o.beta2)).eps(o.eps).weight_decay(o.weight_decay);
  impl_->adamw = std::make_unique<torch::optim::AdamW>(tensors, options);
}

Optimizer::~Optimizer() = default;

void Optimizer::zero_grad() { impl_->adamw->zero_grad(/*set_to_none=*/true); }

double Optimizer::clip_grad_norm(double max_norm) {
  std::vector<at::Tensor> grads;
  for (const auto& [name, t] : impl_->params)
    if (t.grad().defined()) grads.push_back(t.grad());
  if (grads.empty()) return 0.0;
  // Per-tensor norms in float32, then the norm of norms (as torch.nn.utils.clip_grad_norm_).
  std::vector<at::Tensor> norms;
  for (const auto& g : grads) norms.push_back(at::linalg_vector_norm(g, 2, {}, false, at::kFloat));
  const at::Tensor total = at::linalg_vector_norm(at::stack(norms), 2);
  if (max_norm > 0) {
    const at::Tensor coef = at::clamp_max(max_norm / (total + 1e-6), 1.0);
    for (auto& g : grads) g.mul_(coef.to(g.scalar_type()));
  }
  return total.item<double>();
}

void Optimizer::step(double lr) {
  for (auto& group : impl_->adamw->param_groups()) group.options().set_lr(lr);
  impl_->adamw->step();
}

NamedTensors Optimizer::state_tensors() const {
  NamedTensors out;
  auto& state = impl_->adamw->state();
  for (const auto& [name, t] : impl_->params) {
    auto it = state.find(t.unsafeGetTensorImpl());
    if (it == state.end()) continue;
    const auto& s = static_cast<const torch::optim::AdamWParamState&>(*it->second);
    out.emplace_back("exp_avg." + name, s.exp_avg());
    out.emplace_back("exp_avg_sq." + name, s.exp_avg_sq());
  }
  return out;
}

nlohmann::json Optimizer::state_scalars() const {
  nlohmann::json j = nlohmann::json::object();
  auto& state = impl_->adamw->state();
  for (const auto& [name, t] : impl_->params) {
    auto it = state.find(t.unsafeGetTensorImpl());
    if (it != state.end()) j[name] = static_cast<const torch::optim::AdamWParamState&>(*it->second).step();
  }
  return j;
}

void Optimizer::load_state(const std::map<std::string, at::Tensor>& tensors, const nlohmann::json& scalars,
                           const std::string& where) {
  auto& state = impl_->adamw->state();
  state.clear();
  for (const auto& [name, t] : impl_->params) {
    if (!scalars.contains(name)) continue;  // no state yet (never had a gradient)
    auto get = [&](const std::string& key) {
      auto it = tensors.find(key);
      if (it == tensors.end()) fail(where, "optimizer state '" + key + "' is missing");
      if (it->second.sizes() != t.sizes())
        fail(where, "optimizer state '" + key + "' has the wrong shape for the parameter");
      return it->second.to(t.device(), t.scalar_type()).clone();
    };
    auto s = std::make_unique<torch::optim::AdamWParamState>();
    s->step(scalars[name].get<int64_t>());
    s->exp_avg(get("exp_avg." + name));
    s->exp_avg_sq(get("exp_avg_sq." + name));
    state[t.unsafeGetTensorImpl()] = std::move(s);
  }
}

}  // namespace linearard::train
