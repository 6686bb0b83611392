// AdamW (torch::optim::AdamW) over named float32 parameters, the reference LR schedule, global-norm
// clipping, and the optimiser state as named tensors + JSON scalars for checkpoints.
#pragma once
#include <ATen/ATen.h>

#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "train/qkv_adapter.h"
#include "train/train_options.h"

namespace linearard::train {

// Learning rate of optimiser step `step` (0-based): linear warm-up lr * step / warmup (so step 0
// runs at lr 0), then cosine from lr to lr * min_lr_ratio over the remaining steps (LinearARD's released training scripts).
double scheduled_lr(const OptimOptions& o, int64_t step);

class Optimizer {
 public:
  Optimizer(const NamedTensors& params, const OptimOptions& options);
  ~Optimizer();

  void zero_grad();
  // Scales all gradients so that their global L2 norm is at most max_norm (torch's
  // clip_grad_norm_: coefficient max_norm / (norm + 1e-6), applied when < 1). Returns the norm
  // before clipping. max_norm <= 0 only measures.
  double clip_grad_norm(double max_norm);
  void step(double lr);

  // "exp_avg.<name>" and "exp_avg_sq.<name>" for every parameter that has state.
  NamedTensors state_tensors() const;
  nlohmann::json state_scalars() const;  // {"<name>": step count}
  // Restores what state_tensors/state_scalars saved; errors name the checkpoint `where`.
  void load_state(const std::map<std::string, at::Tensor>& tensors, const nlohmann::json& scalars,
                  const std::string& where);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace linearard::train
