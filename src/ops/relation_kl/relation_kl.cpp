// Tensor-facing API of the relation-KL op: boundary checks, device dispatch (CPU spec or CUDA
// kernels) and the autograd Functions. Kernel-side code never sees an unchecked tensor.
#include "ops/relation_kl/relation_kl.h"

#include <torch/csrc/autograd/custom_function.h>

#include <cmath>
#include <sstream>
#include <string>
#include <vector>

#include "common/error.h"
#include "ops/relation_kl/relation_kl_cpu.h"
#include "ops/relation_kl/relation_kl_cuda.h"

namespace linearard::ops {
namespace {

constexpr const char* kOp = "relation_kl";

std::string shape_string(at::IntArrayRef sizes) {
  std::ostringstream s;
  s << sizes;
  return s.str();
}

void check_float(const at::Tensor& t, const char* name) {
  const auto d = t.scalar_type();
  const bool ok = d == at::kBFloat16 || d == at::kHalf || d == at::kFloat ||
                  (d == at::kDouble && t.device().is_cpu());
  if (!ok) {
    fail(std::string(kOp) + " " + name,
         std::string("dtype ") + c10::toString(d) +
             " is not supported (bfloat16, float16, float32, or float64 on CPU)");
  }
}

// The checks of relation_kl.h's contract; returns the mask as a (B, T) bool tensor on the
// inputs' device, contiguous, or std::nullopt.
std::optional<at::Tensor> check_inputs(const at::Tensor& xq, const at::Tensor& xk,
                                       const at::Tensor& yq, const at::Tensor& yk,
                                       const std::optional<at::Tensor>& key_mask,
                                       const RelationKLOptions& options) {
  const std::string op = kOp;
  const std::pair<const at::Tensor*, const char*> all[] = {
      {&xq, "xq"}, {&xk, "xk"}, {&yq, "yq"}, {&yk, "yk"}};
  for (const auto& [t, name] : all) {
    if (!t->defined()) fail(op + " " + name, "tensor is undefined");
    if (t->dim() != 4) {
      fail(op + " " + name, "expected rank 4 (B, H, T, D), got shape " + shape_string(t->sizes()));
    }
    if (t->device() != xq.device()) {
      fail(op + " " + name, "is on " + t->device().str() + " but xq is on " + xq.device().str());
    }
    check_float(*t, name);
    if (t->size(3) == 0) fail(op + " " + name, "head dim D must be > 0");
  }
  const int64_t B = xq.size(0), H = xq.size(1), T = xq.size(2);
  for (const auto& [t, name] : all) {
    if (t->size(0) != B) {
      fail(op + " " + name, "batch size " + std::to_string(t->size(0)) + " != xq's " +
                                std::to_string(B) + " (student and teacher must have the same B)");
    }
    if (t->size(2) != T) {
      fail(op + " " + name, "sequence length " + std::to_string(t->size(2)) + " != xq's " +
                                std::to_string(T) + " (student and teacher must have the same T)");
    }
  }
  if (H == 0) fail(op + " xq", "number of heads H must be > 0");
  if (yq.size(1) != H) {
    fail(op + " yq", "has " + std::to_string(yq.size(1)) + " heads but xq has " +
                         std::to_string(H) + " (student and teacher query heads must match)");
  }
  for (const auto& [t, name] : {std::pair{&xk, "xk"}, std::pair{&yk, "yk"}}) {
    const int64_t hk = t->size(1);
    if (hk == 0 || H % hk != 0) {
      fail(op + " " + name, "has " + std::to_string(hk) + " key heads, which does not divide H = " +
                                std::to_string(H) + " (GQA needs H % Hk == 0)");
    }
  }
  if (xk.size(3) != xq.size(3)) {
    fail(op + " xk", "head dim " + std::to_string(xk.size(3)) + " != xq's " +
                         std::to_string(xq.size(3)) + " (Ds must match)");
  }
  if (yk.size(3) != yq.size(3)) {
    fail(op + " yk", "head dim " + std::to_string(yk.size(3)) + " != yq's " +
                         std::to_string(yq.size(3)) + " (Dt must match)");
  }
  if (xk.scalar_type() != xq.scalar_type()) {
    fail(op + " xk", std::string("dtype ") + c10::toString(xk.scalar_type()) + " != xq's " +
                         c10::toString(xq.scalar_type()));
  }
  if (yk.scalar_type() != yq.scalar_type()) {
    fail(op + " yk", std::string("dtype ") + c10::toString(yk.scalar_type()) + " != yq's " +
                         c10::toString(yq.scalar_type()));
  }
  if (!std::isfinite(options.scale_s)) fail(op + " scale_s", "must be finite");
  if (!std::isfinite(options.scale_t)) fail(op + " scale_t", "must be finite");

  if (!key_mask || !key_mask->defined()) return std::nullopt;
  const auto& m = *key_mask;
  if (m.dim() != 2 || m.size(0) != B || m.size(1) != T) {
    fail(op + " key_mask", "expected shape (B, T) = (" + std::to_string(B) + ", " +
                               std::to_string(T) + "), got " + shape_string(m.sizes()));
  }
  if (m.is_floating_point() || m.is_complex()) {
    fail(op + " key_mask", std::string("expected a bool or integer tensor, got ") +
                               c10::toString(m.scalar_type()));
  }
  return m.to(xq.device()).ne(0).contiguous();
}

// options with doc_ids checked against relation_kl.h's contract and made a contiguous (B, T) int32
// tensor on xq's device (or std::nullopt).
RelationKLOptions check_options(const at::Tensor& xq, const RelationKLOptions& options) {
  RelationKLOptions o = options;
  if (!o.doc_ids || !o.doc_ids->defined()) {
    o.doc_ids.reset();
    return o;
  }
  const std::string op = kOp;
  const auto& d = *o.doc_ids;
  const int64_t B = xq.size(0), T = xq.size(2);
  if (d.dim() != 2 || d.size(0) != B || d.size(1) != T) {
    fail(op + " doc_ids", "expected shape (B, T) = (" + std::to_string(B) + ", " +
                              std::to_string(T) + "), got " + shape_string(d.sizes()));
  }
  if (d.is_floating_point() || d.is_complex() || d.scalar_type() == at::kBool) {
    fail(op + " doc_ids", std::string("expected an integer tensor, got ") +
                              c10::toString(d.scalar_type()));
  }
  o.doc_ids = d.detach().to(xq.device(), at::kInt).contiguous();
  return o;
}

// Statistics handed to relation_kl_backward must be the ones of this problem.
void check_stats(const at::Tensor& grad_kl, const RelationKLStats& stats, const at::Tensor& xq) {
  const std::string op = kOp;
  const std::vector<int64_t> want = {xq.size(0), xq.size(1), xq.size(2)};
  const std::pair<const at::Tensor*, const char*> all[] = {
      {&grad_kl, "grad_kl"}, {&stats.lse_s, "stats.lse_s"}, {&stats.lse_t, "stats.lse_t"}};
  for (const auto& [t, name] : all) {
    if (!t->defined()) fail(op + " " + name, "tensor is undefined");
    if (t->sizes() != at::IntArrayRef(want)) {
      fail(op + " " + name, "expected shape (B, H, T) = " + shape_string(want) +
                                ", got " + shape_string(t->sizes()));
    }
    if (t->device() != xq.device()) {
      fail(op + " " + name, "is on " + t->device().str() + " but xq is on " + xq.device().str());
    }
    if (!t->is_floating_point()) fail(op + " " + name, "must be a floating-point tensor");
  }
}

[[noreturn]] void no_cuda() {
  fail(kOp, "input tensors are on CUDA but this build has no CUDA kernels (LINEARARD_CUDA=OFF)");
}

void check_device(const at::Tensor& x) {
  if (!x.device().is_cpu() && !x.device().is_cuda()) {
    fail(std::string(kOp) + " xq", "device " + x.device().str() + " is not supported");
  }
}

// Dispatch on checked, contiguous inputs.
RelationKLStats forward_checked(const at::Tensor& xq, const at::Tensor& xk, const at::Tensor& yq,
                                const at::Tensor& yk, const std::optional<at::Tensor>& mask,
                                const RelationKLOptions& options) {
  check_device(xq);
  if (xq.device().is_cuda()) {
#ifdef LINEARARD_WITH_CUDA
    return relation_kl_forward_cuda(xq, xk, yq, yk, mask, options);
#else
    no_cuda();
#endif
  }
  return relation_kl_forward_cpu(xq, xk, yq, yk, mask, options);
}

RelationKLGrads backward_checked(const at::Tensor& grad_kl, const at::Tensor& xq,
                                 const at::Tensor& xk, const at::Tensor& yq, const at::Tensor& yk,
                                 const std::optional<at::Tensor>& mask,
                                 const RelationKLStats& stats, const RelationKLOptions& options) {
  check_device(xq);
  if (xq.device().is_cuda()) {
#ifdef LINEARARD_WITH_CUDA
    return relation_kl_backward_cuda(grad_kl, xq, xk, yq, yk, mask, stats, options);
#else
    no_cuda();
#endif
  }
  return relation_kl_backward_cpu(grad_kl, xq, xk, yq, yk, mask, stats, options);
}

at::Tensor self_backward_checked(const at::Tensor& grad_kl, const at::Tensor& x,
                                 const at::Tensor& y, const std::optional<at::Tensor>& mask,
                                 const RelationKLStats& stats, const RelationKLOptions& options) {
  check_device(x);
  if (x.device().is_cuda()) {
#ifdef LINEARARD_WITH_CUDA
    return relation_kl_self_backward_cuda(grad_kl, x, y, mask, stats, options);
#else
    no_cuda();
#endif
  }
  return relation_kl_self_backward_cpu(grad_kl, x, y, mask, stats, options);
}

// ---------------------------------------------------------------------------------------------
// Autograd. The Functions take checked, contiguous inputs; the mask travels as an optional
// tensor (autograd registers it only when present), the options as plain numbers, so that
// ctx->saved_data can hold them.

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

void save_options(AutogradContext* ctx, const std::optional<at::Tensor>& mask,
                  const RelationKLOptions& o) {
  ctx->saved_data["has_mask"] = mask.has_value();
  if (mask) ctx->saved_data["mask"] = *mask;
  ctx->saved_data["scale_s"] = o.scale_s;
  ctx->saved_data["scale_t"] = o.scale_t;
  ctx->saved_data["causal"] = o.causal;
  ctx->saved_data["has_doc_ids"] = o.doc_ids.has_value();
  if (o.doc_ids) ctx->saved_data["doc_ids"] = *o.doc_ids;
}

// The reduced form (relation_kl_sum): sum_weight finite gives weight * sum_i KL_i as a 0-dim
// tensor; NaN gives the per-row KL (B, H, T).
at::Tensor reduce_rows(const at::Tensor& kl, double sum_weight) {
  if (std::isnan(sum_weight)) return kl;
  auto total = kl.sum();
  return sum_weight == 1.0 ? total : total.mul_(sum_weight);
}
// dL/dKL_i (B, H, T), contiguous, from the output's gradient (0-dim when reduced).
at::Tensor row_grad(const at::Tensor& g, double sum_weight, at::IntArrayRef rows_shape) {
  if (std::isnan(sum_weight)) return g.contiguous();
  return g.expand(rows_shape) * sum_weight;  // one kernel; its result is contiguous
}

RelationKLOptions load_options(AutogradContext* ctx, std::optional<at::Tensor>* mask) {
  *mask = ctx->saved_data["has_mask"].toBool()
              ? std::optional<at::Tensor>(ctx->saved_data["mask"].toTensor())
              : std::nullopt;
  RelationKLOptions o;
  o.scale_s = ctx->saved_data["scale_s"].toDouble();
  o.scale_t = ctx->saved_data["scale_t"].toDouble();
  o.causal = ctx->saved_data["causal"].toBool();
  if (ctx->saved_data["has_doc_ids"].toBool()) o.doc_ids = ctx->saved_data["doc_ids"].toTensor();
  return o;
}

// Inputs: xq, xk, yq, yk, mask, scale_s, scale_t, causal, doc_ids, sum_weight. Output: kl
// (B, H, T), or weight * its sum (reduce_rows).
struct RelationKLFunction : public torch::autograd::Function<RelationKLFunction> {
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& xq, const at::Tensor& xk,
                            const at::Tensor& yq, const at::Tensor& yk,
                            const std::optional<at::Tensor>& mask, double scale_s, double scale_t,
                            bool causal, const std::optional<at::Tensor>& doc_ids, double sum_weight) {
    const RelationKLOptions o{scale_s, scale_t, causal, doc_ids};
    auto stats = forward_checked(xq, xk, yq, yk, mask, o);
    ctx->save_for_backward({xq, xk, yq, yk, stats.lse_s, stats.lse_t});
    save_options(ctx, mask, o);
    ctx->saved_data["sum_weight"] = sum_weight;
    return reduce_rows(stats.kl, sum_weight);
  }

  static variable_list backward(AutogradContext* ctx, variable_list grad_outputs) {
    const auto saved = ctx->get_saved_variables();
    std::optional<at::Tensor> mask;
    const auto o = load_options(ctx, &mask);
    RelationKLStats stats{at::Tensor(), saved[4], saved[5]};
    const auto& g = grad_outputs[0];
    at::Tensor d_xq, d_xk;
    if (g.defined() && (ctx->needs_input_grad(0) || ctx->needs_input_grad(1))) {
      const double w = ctx->saved_data["sum_weight"].toDouble();
      auto grads = backward_checked(row_grad(g, w, stats.lse_s.sizes()), saved[0], saved[1], saved[2],
                                    saved[3], mask, stats, o);
      d_xq = ctx->needs_input_grad(0) ? grads.d_xq : at::Tensor();
      d_xk = ctx->needs_input_grad(1) ? grads.d_xk : at::Tensor();
    }
    // The teacher (yq, yk) never receives a gradient, nor do the mask, the options and doc_ids.
    return {d_xq, d_xk, at::Tensor(), at::Tensor(), at::Tensor(),
            at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor()};
  }
};

// Inputs: x, y, mask, scale_s, scale_t, causal, doc_ids, sum_weight. Output: as RelationKLFunction.
struct RelationKLSelfFunction : public torch::autograd::Function<RelationKLSelfFunction> {
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& x, const at::Tensor& y,
                            const std::optional<at::Tensor>& mask, double scale_s, double scale_t,
                            bool causal, const std::optional<at::Tensor>& doc_ids, double sum_weight) {
    const RelationKLOptions o{scale_s, scale_t, causal, doc_ids};
    auto stats = forward_checked(x, x, y, y, mask, o);
    ctx->save_for_backward({x, y, stats.lse_s, stats.lse_t});
    save_options(ctx, mask, o);
    ctx->saved_data["sum_weight"] = sum_weight;
    return reduce_rows(stats.kl, sum_weight);
  }

  static variable_list backward(AutogradContext* ctx, variable_list grad_outputs) {
    const auto saved = ctx->get_saved_variables();
    std::optional<at::Tensor> mask;
    const auto o = load_options(ctx, &mask);
    RelationKLStats stats{at::Tensor(), saved[2], saved[3]};
    const auto& g = grad_outputs[0];
    at::Tensor d_x;
    if (g.defined() && ctx->needs_input_grad(0)) {
      const double w = ctx->saved_data["sum_weight"].toDouble();
      d_x = self_backward_checked(row_grad(g, w, stats.lse_s.sizes()), saved[0], saved[1], mask, stats, o);
    }
    return {d_x, at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor(),
            at::Tensor()};
  }
};

}  // namespace

RelationKLStats relation_kl_forward(const at::Tensor& xq, const at::Tensor& xk,
                                    const at::Tensor& yq, const at::Tensor& yk,
                                    const std::optional<at::Tensor>& key_mask,
                                    const RelationKLOptions& options) {
  auto mask = check_inputs(xq, xk, yq, yk, key_mask, options);
  return forward_checked(xq.contiguous(), xk.contiguous(), yq.contiguous(), yk.contiguous(), mask,
                         check_options(xq, options));
}

RelationKLGrads relation_kl_backward(const at::Tensor& grad_kl, const at::Tensor& xq,
                                     const at::Tensor& xk, const at::Tensor& yq,
                                     const at::Tensor& yk, const std::optional<at::Tensor>& key_mask,
                                     const RelationKLStats& stats, const RelationKLOptions& options) {
  auto mask = check_inputs(xq, xk, yq, yk, key_mask, options);
  check_stats(grad_kl, stats, xq);
  RelationKLStats s{stats.kl, stats.lse_s.contiguous(), stats.lse_t.contiguous()};
  return backward_checked(grad_kl.contiguous(), xq.contiguous(), xk.contiguous(), yq.contiguous(),
                          yk.contiguous(), mask, s, check_options(xq, options));
}

namespace {

// The autograd entry points' checks and call; sum_weight as RelationKLFunction's (NaN: per row).
at::Tensor apply_relation_kl(const at::Tensor& xq, const at::Tensor& xk, const at::Tensor& yq,
                             const at::Tensor& yk, const std::optional<at::Tensor>& key_mask,
                             const RelationKLOptions& options, double sum_weight) {
  auto mask = check_inputs(xq, xk, yq, yk, key_mask, options);
  const auto o = check_options(xq, options);
  // The teacher is a constant of the loss: detach so autograd never tracks it through the op.
  return RelationKLFunction::apply(xq.contiguous(), xk.contiguous(), yq.detach().contiguous(),
                                   yk.detach().contiguous(), mask, o.scale_s, o.scale_t, o.causal,
                                   o.doc_ids, sum_weight);
}
at::Tensor apply_relation_kl_self(const at::Tensor& x, const at::Tensor& y,
                                  const std::optional<at::Tensor>& key_mask,
                                  const RelationKLOptions& options, double sum_weight) {
  auto mask = check_inputs(x, x, y, y, key_mask, options);
  const auto o = check_options(x, options);
  return RelationKLSelfFunction::apply(x.contiguous(), y.detach().contiguous(), mask, o.scale_s,
                                       o.scale_t, o.causal, o.doc_ids, sum_weight);
}
double checked_weight(double weight) {
  if (!std::isfinite(weight)) fail(std::string(kOp) + " weight", "must be finite");
  return weight;
}

}  // namespace

at::Tensor relation_kl(const at::Tensor& xq, const at::Tensor& xk, const at::Tensor& yq,
                       const at::Tensor& yk, const std::optional<at::Tensor>& key_mask,
                       const RelationKLOptions& options) {
  return apply_relation_kl(xq, xk, yq, yk, key_mask, options, std::nan(""));
}

at::Tensor relation_kl_sum(const at::Tensor& xq, const at::Tensor& xk, const at::Tensor& yq,
                           const at::Tensor& yk, const std::optional<at::Tensor>& key_mask,
                           const RelationKLOptions& options, double weight) {
  return apply_relation_kl(xq, xk, yq, yk, key_mask, options, checked_weight(weight));
}

at::Tensor relation_kl_self(const at::Tensor& x, const at::Tensor& y,
                            const std::optional<at::Tensor>& key_mask,
                            const RelationKLOptions& options) {
  return apply_relation_kl_self(x, y, key_mask, options, std::nan(""));
}

at::Tensor relation_kl_self_sum(const at::Tensor& x, const at::Tensor& y,
                                const std::optional<at::Tensor>& key_mask,
                                const RelationKLOptions& options, double weight) {
  return apply_relation_kl_self(x, y, key_mask, options, checked_weight(weight));
}

}  // namespace linearard::ops
