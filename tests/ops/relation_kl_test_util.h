// Shared helpers of the relation-KL tests (CPU and CUDA): random problems, error metrics
// (max-abs, max-rel, NMSE, as ggml reports them) and checks that print the first mismatching
// elements (llm.c check_tensor style). Header-only; every function works on any device and
// computes its metrics in float64 on the CPU.
#pragma once
#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <gtest/gtest.h>
#include <torch/csrc/autograd/autograd.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "ops/relation_kl/relation_kl.h"
#include "ops/relation_kl/relation_kl_reference.h"

namespace linearard::test {

// ---------------------------------------------------------------------------------------------
// Problems

enum class Padding {
  kNone,       // no key_mask at all (std::nullopt)
  kRight,      // each sequence keeps a random-length prefix (right padding)
  kLeft,       // each sequence keeps a random-length suffix (left padding)
  kRandom,     // every position valid with probability 3/4
  kWholeBatch  // like kRandom, but batch element B-1 is fully padded (needs B >= 2)
};

// Packed documents (RelationKLOptions::doc_ids).
enum class Docs {
  kNone,       // no doc_ids (std::nullopt)
  kSingle,     // doc_ids given, one document per row (must equal kNone exactly)
  kRandom,     // contiguous documents at random boundaries, a length-1 document among them
  kEdges,      // length-1 documents at the start and at the end, two random documents between
  kRecurring,  // ids drawn from {0, 1, 2} per token: "documents" that are not contiguous runs
};

struct RelationKLCase {
  int64_t B = 1, H = 2, Hk = 2, Hkt = 2, T = 17, Ds = 32, Dt = 32;
  bool causal = true;
  Padding padding = Padding::kNone;
  bool self = false;       // Hk = Hkt = H and xk = xq, yk = yq (a Q/Q, K/K or V/V relation)
  double amplitude = 1.0;  // inputs ~ N(0, amplitude^2): logits ~ N(0, amplitude^4) at scale 1/sqrt(D)
  Docs docs = Docs::kNone;
};

inline RelationKLCase with_docs(RelationKLCase c, Docs docs) {
  c.docs = docs;
  return c;
}

inline std::string describe(const RelationKLCase& c) {
  static const char* names[] = {"none", "right", "left", "random", "whole-batch"};
  static const char* doc_names[] = {"none", "single", "random", "edges", "recurring"};
  std::ostringstream s;
  s << "B=" << c.B << " H=" << c.H << " Hk=" << c.Hk << " Hkt=" << c.Hkt << " T=" << c.T
    << " Ds=" << c.Ds << " Dt=" << c.Dt << " causal=" << c.causal
    << " padding=" << names[static_cast<int>(c.padding)] << " self=" << c.self
    << " amplitude=" << c.amplitude << " docs=" << doc_names[static_cast<int>(c.docs)];
  return s.str();
}

struct RelationKLInputs {
  at::Tensor xq;  // (B, H, T, Ds)   student queries
  at::Tensor xk;  // (B, Hk, T, Ds)  student keys (the same tensor as xq when self)
  at::Tensor yq;  // (B, H, T, Dt)   teacher queries
  at::Tensor yk;  // (B, Hkt, T, Dt) teacher keys (the same tensor as yq when self)
  std::optional<at::Tensor> key_mask;  // (B, T) bool, CPU
  linearard::ops::RelationKLOptions options;

  // The same problem in another dtype / on another device; keeps xk aliasing xq for self cases.
  RelationKLInputs to(at::ScalarType dtype, at::Device device = at::kCPU) const {
    RelationKLInputs r = *this;
    r.xq = xq.to(device, dtype);
    r.xk = xk.is_same(xq) ? r.xq : xk.to(device, dtype);
    r.yq = yq.to(device, dtype);
    r.yk = yk.is_same(yq) ? r.yq : yk.to(device, dtype);
    return r;
  }
};

// (B, T) bool on the CPU, or std::nullopt for Padding::kNone. Every sequence but the fully padded
// one keeps at least one valid position.
inline std::optional<at::Tensor> make_key_mask(int64_t B, int64_t T, Padding padding,
                                               at::Generator& gen) {
  if (padding == Padding::kNone) return std::nullopt;
  auto mask = at::ones({B, T}, at::kBool);  // (B, T)
  auto acc = mask.accessor<bool, 2>();
  auto lengths = at::randint(1, T + 1, {B}, gen, at::kLong);  // (B) kept length per sequence
  auto random = at::rand({B, T}, gen, at::kDouble);              // (B, T)
  auto keep_acc = lengths.accessor<int64_t, 1>();
  auto random_acc = random.accessor<double, 2>();
  for (int64_t b = 0; b < B; ++b) {
    const int64_t keep = keep_acc[b];
    for (int64_t t = 0; t < T; ++t) {
      switch (padding) {
        case Padding::kRight: acc[b][t] = t < keep; break;
        case Padding::kLeft: acc[b][t] = t >= T - keep; break;
        default: acc[b][t] = random_acc[b][t] < 0.75; break;
      }
    }
    if (padding == Padding::kRandom || padding == Padding::kWholeBatch) acc[b][0] = true;
  }
  if (padding == Padding::kWholeBatch && B >= 2) mask[B - 1].fill_(false);
  return mask;
}

// (B, T) int64 document ids on the CPU, or std::nullopt for Docs::kNone. Ids of contiguous
// documents start at 3 b + 5 (any values, not 0-based): only equality matters.
inline std::optional<at::Tensor> make_doc_ids(int64_t B, int64_t T, Docs docs, at::Generator& gen) {
  if (docs == Docs::kNone) return std::nullopt;
  auto ids = at::empty({B, T}, at::kLong);  // (B, T)
  auto acc = ids.accessor<int64_t, 2>();
  auto random = at::rand({B, T}, gen, at::kDouble);  // (B, T)
  auto r = random.accessor<double, 2>();
  auto cut = at::randint(1, std::max<int64_t>(T - 1, 2), {B}, gen, at::kLong);  // (B) kEdges split
  auto cut_acc = cut.accessor<int64_t, 1>();
  for (int64_t b = 0; b < B; ++b) {
    int64_t id = 3 * b + 5;
    // kRandom: a length-1 document at a random interior position (when T >= 3).
    const int64_t single = T >= 3 ? 1 + static_cast<int64_t>(r[b][0] * (T - 2)) : -1;
    for (int64_t t = 0; t < T; ++t) {
      bool start = false;
      switch (docs) {
        case Docs::kSingle: break;
        case Docs::kRandom: start = t > 0 && (r[b][t] < 0.15 || t == single || t == single + 1); break;
        case Docs::kEdges: start = t == 1 || t == T - 1 || (t == cut_acc[b] && t > 1 && t < T - 1); break;
        case Docs::kRecurring: break;
        case Docs::kNone: break;
      }
      if (start) ++id;
      acc[b][t] = docs == Docs::kRecurring ? static_cast<int64_t>(r[b][t] * 3) : id;
    }
  }
  return ids;
}

// Float64 CPU inputs with scales 1/sqrt(Ds), 1/sqrt(Dt). The teacher is a perturbation of the
// student (teacher = student + N(0, 0.5^2) noise), so the two distributions are related like a
// context-extended model and its original, and KL values are O(0.1..1).
inline RelationKLInputs make_inputs(const RelationKLCase& c, uint64_t seed) {
  auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  auto opts = at::TensorOptions().dtype(at::kDouble);
  RelationKLInputs in;
  const int64_t Hk = c.self ? c.H : c.Hk, Hkt = c.self ? c.H : c.Hkt;
  in.xq = at::randn({c.B, c.H, c.T, c.Ds}, gen, opts) * c.amplitude;
  in.xk = c.self ? in.xq : at::randn({c.B, Hk, c.T, c.Ds}, gen, opts) * c.amplitude;
  if (c.Ds == c.Dt) {
    in.yq = in.xq + 0.5 * c.amplitude * at::randn({c.B, c.H, c.T, c.Dt}, gen, opts);
    in.yk = c.self ? in.yq
            : Hkt == Hk ? in.xk + 0.5 * c.amplitude * at::randn({c.B, Hkt, c.T, c.Dt}, gen, opts)
                        : at::randn({c.B, Hkt, c.T, c.Dt}, gen, opts) * c.amplitude;
  } else {
    in.yq = at::randn({c.B, c.H, c.T, c.Dt}, gen, opts) * c.amplitude;
    in.yk = c.self ? in.yq : at::randn({c.B, Hkt, c.T, c.Dt}, gen, opts) * c.amplitude;
  }
  in.key_mask = make_key_mask(c.B, c.T, c.padding, gen);
  in.options.scale_s = 1.0 / std::sqrt(static_cast<double>(c.Ds));
  in.options.scale_t = 1.0 / std::sqrt(static_cast<double>(c.Dt));
  in.options.causal = c.causal;
  in.options.doc_ids = make_doc_ids(c.B, c.T, c.docs, gen);
  return in;
}

// (B, H, T) float64 weights in [0.5, 1.5): the upstream gradient dL/dKL of the tests, random so
// that every row's gradient has its own scale, as in training.
inline at::Tensor random_row_weights(const RelationKLCase& c, uint64_t seed) {
  auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  return at::rand({c.B, c.H, c.T}, gen, at::kDouble) + 0.5;
}

// ---------------------------------------------------------------------------------------------
// Running the op or the materialised reference with autograd

struct KLAndGrads {
  at::Tensor kl;    // (B, H, T)
  at::Tensor d_xq;  // (B, H, T, Ds); for self cases the full dX (row + column terms)
  at::Tensor d_xk;  // (B, Hk, T, Ds); undefined for self cases
};

enum class Impl {
  kOp,           // relation_kl / relation_kl_self (dispatches on the inputs' device)
  kMaterialized  // relation_kl_materialized through LibTorch autograd (the naive baseline)
};

// KL and the gradients of L = sum_{b,h,i} w_bhi KL_bhi w.r.t. the student inputs, on the inputs'
// device and dtype. self: xq is also the key operand (relation_kl_self for kOp, the same leaf
// passed twice for kMaterialized).
inline KLAndGrads run_relation_kl(Impl impl, const RelationKLInputs& in, bool self,
                                  const at::Tensor& weights) {
  KLAndGrads r;
  auto xq = in.xq.detach().clone().requires_grad_(true);
  auto xk = self ? xq : in.xk.detach().clone().requires_grad_(true);
  const auto& yk = self ? in.yq : in.yk;
  if (impl == Impl::kOp) {
    r.kl = self ? linearard::ops::relation_kl_self(xq, in.yq, in.key_mask, in.options)
                : linearard::ops::relation_kl(xq, xk, in.yq, yk, in.key_mask, in.options);
  } else {
    r.kl = linearard::ops::relation_kl_materialized(xq, xk, in.yq, yk, in.key_mask, in.options);
  }
  auto loss = (r.kl.to(at::kDouble) * weights.to(r.kl.device(), at::kDouble)).sum();
  auto inputs = self ? std::vector<at::Tensor>{xq} : std::vector<at::Tensor>{xq, xk};
  auto grads = torch::autograd::grad({loss}, inputs);
  r.kl = r.kl.detach();
  r.d_xq = grads[0];
  if (!self) r.d_xk = grads[1];
  return r;
}

// ---------------------------------------------------------------------------------------------
// Error metrics

struct ErrorStats {
  double max_abs = 0;   // max |a - r|
  double max_rel = 0;   // max |a - r| / max(|r|, rel_floor)
  double nmse = 0;      // sum (a - r)^2 / sum r^2 (0 when both are 0)
  double ref_max = 0;   // max |r|, for scaling tolerances
  int64_t nonfinite = 0;  // elements where a and r disagree on being finite / their infinity
};

// rel_floor keeps max_rel meaningful where the reference is ~0 (it defaults to 1e-3 of max |r|).
inline ErrorStats error_stats(const at::Tensor& actual, const at::Tensor& reference,
                              std::optional<double> rel_floor = std::nullopt) {
  auto a = actual.detach().to(at::kCPU, at::kDouble).contiguous().view(-1);
  auto r = reference.detach().to(at::kCPU, at::kDouble).contiguous().view(-1);
  ErrorStats e;
  const double* pa = a.data_ptr<double>();
  const double* pr = r.data_ptr<double>();
  const int64_t n = std::min(a.numel(), r.numel());
  for (int64_t i = 0; i < n; ++i)
    if (std::isfinite(pr[i])) e.ref_max = std::max(e.ref_max, std::abs(pr[i]));
  const double floor = rel_floor ? *rel_floor : std::max(1e-3 * e.ref_max, 1e-300);
  double num = 0, den = 0;
  for (int64_t i = 0; i < n; ++i) {
    if (!std::isfinite(pa[i]) || !std::isfinite(pr[i])) {
      if (!(pa[i] == pr[i])) ++e.nonfinite;  // -inf == -inf is a match, NaN never is
      continue;
    }
    const double d = std::abs(pa[i] - pr[i]);
    e.max_abs = std::max(e.max_abs, d);
    e.max_rel = std::max(e.max_rel, d / std::max(std::abs(pr[i]), floor));
    num += d * d;
    den += pr[i] * pr[i];
  }
  e.nmse = den > 0 ? num / den : (num > 0 ? INFINITY : 0.0);
  if (a.numel() != r.numel()) e.nonfinite += std::abs(a.numel() - r.numel());
  return e;
}

inline std::string format(const ErrorStats& e) {
  std::ostringstream s;
  s.precision(3);
  s << "max_abs=" << e.max_abs << " max_rel=" << e.max_rel << " nmse=" << e.nmse
    << " ref_max=" << e.ref_max << " nonfinite_mismatch=" << e.nonfinite;
  return s.str();
}

// The first `limit` elements with |a - r| > atol + rtol |r| (or a finiteness mismatch), one per
// line with their multi-index.
inline std::string first_mismatches(const at::Tensor& actual, const at::Tensor& reference,
                                    double atol, double rtol, int limit = 8) {
  auto a = actual.detach().to(at::kCPU, at::kDouble).contiguous();
  auto r = reference.detach().to(at::kCPU, at::kDouble).contiguous();
  std::ostringstream s;
  s.precision(10);
  const double* pa = a.data_ptr<double>();
  const double* pr = r.data_ptr<double>();
  int shown = 0;
  const auto sizes = a.sizes();
  for (int64_t i = 0; i < std::min(a.numel(), r.numel()) && shown < limit; ++i) {
    const bool finite_both = std::isfinite(pa[i]) && std::isfinite(pr[i]);
    const bool bad = finite_both ? std::abs(pa[i] - pr[i]) > atol + rtol * std::abs(pr[i])
                                 : !(pa[i] == pr[i]);
    if (!bad) continue;
    s << "\n  [";
    int64_t rest = i;
    std::string idx;
    for (int64_t d = static_cast<int64_t>(sizes.size()) - 1; d >= 0; --d) {
      idx = std::to_string(rest % sizes[d]) + (idx.empty() ? "" : ",") + idx;
      rest /= sizes[d];
    }
    s << idx << "] actual=" << pa[i] << " reference=" << pr[i];
    ++shown;
  }
  return s.str();
}

// |actual - reference| <= atol + rtol |reference| everywhere (identical non-finite values match).
inline ::testing::AssertionResult check_close(const std::string& name, const at::Tensor& actual,
                                              const at::Tensor& reference, double atol,
                                              double rtol) {
  if (!actual.sizes().equals(reference.sizes()))
    return ::testing::AssertionFailure()
           << name << ": shape " << actual.sizes() << " != reference " << reference.sizes();
  const auto e = error_stats(actual, reference);
  const auto mism = first_mismatches(actual, reference, atol, rtol);
  if (mism.empty()) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << name << ": " << format(e) << " (atol=" << atol
                                       << " rtol=" << rtol << "), first mismatches:" << mism;
}

// Bitwise equality (determinism checks); prints the first differing elements.
inline ::testing::AssertionResult check_bitwise_equal(const std::string& name,
                                                      const at::Tensor& a, const at::Tensor& b) {
  if (a.sizes().equals(b.sizes()) && a.scalar_type() == b.scalar_type() &&
      at::equal(a.cpu(), b.cpu()))
    return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << name << ": not bitwise equal:"
                                       << first_mismatches(a, b, 0.0, 0.0);
}

// The 2x rule (FlashAttention's test convention, anchors §1.7 rule 4): the max-abs error of
// `actual` against the exact (float64) result is at most `ratio` times the max-abs error of the
// same-dtype naive implementation `baseline`. `floor` replaces the baseline error when that error
// happens to be tiny or exactly 0 (e.g. a naive implementation that is exact by luck on a
// near-zero reference); callers pass a few ulps of the working dtype times the magnitude of the
// reference, so the rule never demands better than rounding-level accuracy.
inline ::testing::AssertionResult check_error_ratio(const std::string& name,
                                                    const at::Tensor& actual,
                                                    const at::Tensor& baseline,
                                                    const at::Tensor& exact, double floor,
                                                    double ratio = 2.0) {
  const auto ea = error_stats(actual, exact);
  const auto eb = error_stats(baseline, exact);
  const double allowed = ratio * std::max(eb.max_abs, floor);
  if (std::getenv("LINEARARD_TEST_VERBOSE") != nullptr) {
    std::printf("[ 2x rule  ] %s: max_abs %.3g vs baseline %.3g (floor %.3g): %.2f of the allowance\n",
                name.c_str(), ea.max_abs, eb.max_abs, floor, ea.max_abs / allowed);
  }
  if (ea.nonfinite == 0 && ea.max_abs <= allowed) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure()
         << name << ": error " << format(ea) << " > " << ratio << " x max(baseline max_abs "
         << eb.max_abs << ", floor " << floor << ") = " << allowed
         << "; first elements off by more than that:"
         << first_mismatches(actual, exact, allowed, 0.0);
}

// A floor for check_error_ratio: `ulps` units of roundoff of `dtype` at the scale of `exact`.
inline double roundoff_floor(const at::Tensor& exact, at::ScalarType dtype, double ulps = 4.0) {
  double eps = 0;
  switch (dtype) {
    case at::kBFloat16: eps = 0.0078125; break;       // 2^-7
    case at::kHalf: eps = 0.0009765625; break;        // 2^-10
    case at::kFloat: eps = 1.1920928955078125e-7; break;  // 2^-23
    default: eps = 2.220446049250313e-16; break;      // 2^-52
  }
  const auto e = error_stats(exact, exact);
  return ulps * eps * std::max(e.ref_max, 1e-30);
}

}  // namespace linearard::test
