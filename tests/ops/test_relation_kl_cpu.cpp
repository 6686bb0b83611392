// The CPU relation-KL op (the specification of the CUDA kernels) against independent float64
// references: the materialised LibTorch implementation (relation_kl_materialized, autograd for
// the gradients), a triple-loop double implementation in this file, and central finite
// differences. Lower precisions follow the 2x rule (anchors §1.7 rule 4).
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <gtest/gtest.h>

#include <chrono>
#include <ctime>
#include <cmath>
#include <fstream>
#include <functional>
#include <iterator>
#include <limits>
#include <string>
#include <vector>

#include "common/error.h"
#include "ops/relation_kl/relation_kl.h"
#include "ops/relation_kl/relation_kl_reference.h"
#include "relation_kl_test_util.h"

namespace linearard::test {
namespace {

using ops::RelationKLOptions;

// Short names for the shared helpers of relation_kl_test_util.h.
using Result = KLAndGrads;
Result run(Impl impl, const RelationKLInputs& in, bool self, const at::Tensor& weights) {
  return run_relation_kl(impl, in, self, weights);
}
at::Tensor random_weights(const RelationKLCase& c, uint64_t seed) {
  return random_row_weights(c, seed);
}

// ---------------------------------------------------------------------------------------------
// Independent triple-loop float64 reference (KL and LSEs only), written from the definition in
// relation_kl.h with no shared code.

struct LoopResult {
  at::Tensor kl, lse_s, lse_t;  // (B, H, T) float64
};

LoopResult loop_reference(const RelationKLInputs& in) {
  auto xq = in.xq.to(at::kDouble).contiguous(), xk = in.xk.to(at::kDouble).contiguous();
  auto yq = in.yq.to(at::kDouble).contiguous(), yk = in.yk.to(at::kDouble).contiguous();
  const int64_t B = xq.size(0), H = xq.size(1), T = xq.size(2), Ds = xq.size(3), Dt = yq.size(3);
  const int64_t Hk = xk.size(1), Hkt = yk.size(1);
  auto mask = in.key_mask ? in.key_mask->to(at::kBool) : at::ones({B, T}, at::kBool);
  auto m = mask.accessor<bool, 2>();
  auto docs = in.options.doc_ids ? in.options.doc_ids->to(at::kLong) : at::zeros({B, T}, at::kLong);
  auto doc = docs.accessor<int64_t, 2>();
  auto Xq = xq.accessor<double, 4>(), Xk = xk.accessor<double, 4>();
  auto Yq = yq.accessor<double, 4>(), Yk = yk.accessor<double, 4>();
  LoopResult r;
  r.kl = at::zeros({B, H, T}, at::kDouble);
  r.lse_s = at::full({B, H, T}, -INFINITY, at::kDouble);
  r.lse_t = at::full({B, H, T}, -INFINITY, at::kDouble);
  auto kl = r.kl.accessor<double, 3>(), ls = r.lse_s.accessor<double, 3>();
  auto lt = r.lse_t.accessor<double, 3>();
  for (int64_t b = 0; b < B; ++b)
    for (int64_t h = 0; h < H; ++h)
      for (int64_t i = 0; i < T; ++i) {
        if (!m[b][i]) continue;
        std::vector<double> s, t;
        for (int64_t j = 0; j < T; ++j) {
          if (!m[b][j] || (in.options.causal && j > i) || doc[b][j] != doc[b][i]) continue;
          double ss = 0, tt = 0;
          for (int64_t d = 0; d < Ds; ++d) ss += Xq[b][h][i][d] * Xk[b][h / (H / Hk)][j][d];
          for (int64_t d = 0; d < Dt; ++d) tt += Yq[b][h][i][d] * Yk[b][h / (H / Hkt)][j][d];
          s.push_back(ss * in.options.scale_s);
          t.push_back(tt * in.options.scale_t);
        }
        if (s.empty()) continue;
        auto lse = [](const std::vector<double>& v) {
          double mx = -INFINITY, sum = 0;
          for (double x : v) mx = std::max(mx, x);
          for (double x : v) sum += std::exp(x - mx);
          return mx + std::log(sum);
        };
        const double lse_s = lse(s), lse_t = lse(t);
        double acc = 0;
        for (size_t j = 0; j < s.size(); ++j)
          acc += std::exp(t[j] - lse_t) * ((t[j] - lse_t) - (s[j] - lse_s));
        kl[b][h][i] = acc;
        ls[b][h][i] = lse_s;
        lt[b][h][i] = lse_t;
      }
  return r;
}

// ---------------------------------------------------------------------------------------------
// The grid. Every T in {1, 2, 17, 97, 128, 257, 1025} and every D in {32, 64, 80, 128} appears;
// large T only with small B and H (CI has 2 cores).

RelationKLCase make_case(int64_t B, int64_t H, int64_t Hk, int64_t Hkt, int64_t T, int64_t Ds,
                         int64_t Dt, bool causal, Padding padding, bool self = false,
                         double amplitude = 1.0) {
  RelationKLCase c;
  c.B = B, c.H = H, c.Hk = self ? H : Hk, c.Hkt = self ? H : Hkt, c.T = T, c.Ds = Ds, c.Dt = Dt;
  c.causal = causal, c.padding = padding, c.self = self, c.amplitude = amplitude;
  return c;
}

// amplitude 5 gives logits ~ N(0, 25^2) off the diagonal, so |s| reaches ~80-100, and up to
// ~25^2 / sqrt(D)... on the diagonal of self relations: exp() of those overflows float32 (> 88.7)
// unless the maxima are subtracted first.
const std::vector<RelationKLCase>& grid() {
  static const std::vector<RelationKLCase> cases = {
      make_case(1, 2, 2, 2, 1, 32, 32, true, Padding::kNone),
      make_case(2, 2, 1, 2, 1, 64, 64, false, Padding::kRandom),
      make_case(2, 2, 2, 2, 2, 32, 32, true, Padding::kLeft),
      make_case(1, 2, 2, 2, 2, 80, 80, false, Padding::kNone, /*self=*/true),
      make_case(2, 8, 2, 2, 17, 32, 32, true, Padding::kRandom),
      make_case(2, 2, 2, 2, 17, 80, 80, false, Padding::kWholeBatch),
      make_case(2, 2, 1, 2, 17, 32, 64, true, Padding::kRight),
      make_case(2, 4, 4, 4, 17, 64, 64, true, Padding::kRandom, /*self=*/true),
      make_case(2, 8, 2, 2, 97, 64, 64, true, Padding::kLeft),
      make_case(1, 2, 2, 2, 97, 128, 128, false, Padding::kRandom, /*self=*/true),
      make_case(1, 2, 2, 2, 97, 64, 64, true, Padding::kNone, false, /*amplitude=*/5.0),
      make_case(2, 8, 2, 2, 128, 80, 80, true, Padding::kWholeBatch),
      make_case(1, 2, 2, 1, 128, 128, 64, false, Padding::kNone),
      make_case(1, 2, 2, 2, 257, 64, 64, true, Padding::kRandom, /*self=*/true),
      make_case(2, 4, 2, 1, 257, 32, 32, false, Padding::kLeft),
      make_case(1, 2, 2, 2, 257, 32, 32, true, Padding::kRight, /*self=*/true, /*amplitude=*/4.0),
      make_case(1, 2, 1, 1, 1025, 128, 128, true, Padding::kRight),
      make_case(1, 1, 1, 1, 1025, 64, 64, false, Padding::kNone, /*self=*/true),
      // Packed documents (issue 18): random boundaries with length-1 documents, length-1
      // documents at both ends, one document given explicitly, non-contiguous ids; with key
      // padding, GQA, self relations, non-causal rows, and T across the 64-row / 128-key tiles.
      with_docs(make_case(1, 2, 2, 2, 1, 32, 32, true, Padding::kNone), Docs::kRandom),
      with_docs(make_case(2, 2, 2, 2, 2, 32, 32, true, Padding::kNone), Docs::kEdges),
      with_docs(make_case(2, 2, 2, 2, 3, 32, 32, false, Padding::kNone, true), Docs::kEdges),
      with_docs(make_case(2, 8, 2, 2, 17, 32, 32, true, Padding::kRandom), Docs::kRandom),
      with_docs(make_case(2, 4, 4, 4, 17, 64, 64, true, Padding::kRandom, true), Docs::kEdges),
      with_docs(make_case(2, 2, 1, 2, 17, 32, 64, false, Padding::kRight), Docs::kRecurring),
      with_docs(make_case(2, 8, 2, 2, 97, 64, 64, true, Padding::kLeft), Docs::kRandom),
      with_docs(make_case(2, 2, 2, 2, 97, 64, 64, true, Padding::kRandom, true), Docs::kRecurring),
      with_docs(make_case(1, 2, 2, 2, 128, 80, 80, false, Padding::kWholeBatch), Docs::kEdges),
      with_docs(make_case(2, 4, 2, 1, 257, 32, 32, true, Padding::kRandom), Docs::kRandom),
      with_docs(make_case(1, 2, 2, 2, 257, 64, 64, false, Padding::kNone, true), Docs::kRandom),
      with_docs(make_case(1, 2, 2, 2, 257, 32, 32, true, Padding::kRight, true, 4.0), Docs::kEdges),
      with_docs(make_case(1, 2, 1, 1, 1025, 64, 64, true, Padding::kRandom), Docs::kRandom),
      with_docs(make_case(1, 1, 1, 1, 1025, 32, 32, true, Padding::kNone, true), Docs::kSingle),
  };
  return cases;
}

class RelationKLGrid : public ::testing::TestWithParam<size_t> {};

// Exact (float64) results on the inputs as rounded to `dtype`, so that both the op's and the
// baseline's errors measure computation error, not input rounding.
Result exact_on(const RelationKLInputs& in, at::ScalarType dtype, bool self,
                const at::Tensor& w) {
  return run(Impl::kMaterialized, in.to(dtype).to(at::kDouble), self, w);
}

void expect_padded_positions_zero(const RelationKLInputs& in, const Result& r, bool self) {
  if (!in.key_mask) return;
  auto pad = in.key_mask->logical_not();  // (B, T)
  auto row_pad = pad.unsqueeze(1).expand_as(r.kl);
  EXPECT_TRUE(r.kl.masked_select(row_pad).eq(0).all().item<bool>()) << "padded rows: KL != 0";
  auto grad_pad = pad.unsqueeze(1).unsqueeze(-1);
  EXPECT_TRUE(r.d_xq.masked_select(grad_pad.expand_as(r.d_xq)).eq(0).all().item<bool>())
      << "padded positions: d_xq != 0";
  if (!self) {
    EXPECT_TRUE(r.d_xk.masked_select(grad_pad.expand_as(r.d_xk)).eq(0).all().item<bool>())
        << "padded keys: d_xk != 0";
  }
}

TEST_P(RelationKLGrid, MatchesFloat64ReferencesAndTwoXRule) {
  const auto& c = grid()[GetParam()];
  SCOPED_TRACE(describe(c));
  const uint64_t seed = 1000 + GetParam();
  const auto in = make_inputs(c, seed);
  const auto w = random_weights(c, seed + 1);

  // float64: the op is the specification, so it must equal the reference to ~1e-10.
  const auto ref64 = run(Impl::kMaterialized, in, c.self, w);
  const auto op64 = run(Impl::kOp, in, c.self, w);
  auto tol = [](const at::Tensor& ref) { return 1e-10 * std::max(error_stats(ref, ref).ref_max, 1e-3); };
  EXPECT_TRUE(check_close("kl f64", op64.kl, ref64.kl, tol(ref64.kl), 1e-10));
  EXPECT_TRUE(check_close("d_xq f64", op64.d_xq, ref64.d_xq, tol(ref64.d_xq), 1e-10));
  if (!c.self) {
    EXPECT_TRUE(check_close("d_xk f64", op64.d_xk, ref64.d_xk, tol(ref64.d_xk), 1e-10));
  }
  expect_padded_positions_zero(in, op64, c.self);
  // KL >= 0 up to float64 rounding (no clamping inside the op).
  EXPECT_GE(op64.kl.min().item<double>(), -1e-12 * std::max(1.0, error_stats(ref64.kl, ref64.kl).ref_max));

  // The independent loop reference, for the KL values and the LSEs (cheap up to T ~ 128).
  if (c.T <= 128) {
    const auto loops = loop_reference(in);
    const auto stats = ops::relation_kl_forward(in.xq, in.xk, in.yq, in.yk, in.key_mask, in.options);
    EXPECT_TRUE(check_close("kl f64 vs loops", stats.kl, loops.kl, tol(loops.kl), 1e-10));
    EXPECT_TRUE(check_close("reference kl vs loops", ref64.kl, loops.kl, tol(loops.kl), 1e-10));
    EXPECT_TRUE(check_close("lse_s vs loops", stats.lse_s, loops.lse_s, 1e-10, 1e-12));
    EXPECT_TRUE(check_close("lse_t vs loops", stats.lse_t, loops.lse_t, 1e-10, 1e-12));
  }

  // float32: error against float64 at most 2x the materialised float32 implementation's error.
  // The floor (4 float32 ulps of the largest reference value) keeps the rule meaningful where
  // the naive implementation is exact by luck, e.g. rows whose KL is 0.
  {
    const auto exact = exact_on(in, at::kFloat, c.self, w);
    const auto in32 = in.to(at::kFloat);
    const auto op32 = run(Impl::kOp, in32, c.self, w);
    const auto base32 = run(Impl::kMaterialized, in32, c.self, w);
    EXPECT_EQ(op32.kl.scalar_type(), at::kFloat);
    EXPECT_EQ(op32.d_xq.scalar_type(), at::kFloat);
    EXPECT_TRUE(check_error_ratio("kl f32", op32.kl, base32.kl, exact.kl,
                                  roundoff_floor(exact.kl, at::kFloat)));
    EXPECT_TRUE(check_error_ratio("d_xq f32", op32.d_xq, base32.d_xq, exact.d_xq,
                                  roundoff_floor(exact.d_xq, at::kFloat)));
    if (!c.self) {
      EXPECT_TRUE(check_error_ratio("d_xk f32", op32.d_xk, base32.d_xk, exact.d_xk,
                                    roundoff_floor(exact.d_xk, at::kFloat)));
    }
    expect_padded_positions_zero(in32, op32, c.self);
    EXPECT_TRUE(op32.kl.isfinite().all().item<bool>());
    EXPECT_TRUE(op32.d_xq.isfinite().all().item<bool>());
    // KL >= 0 up to float32 rounding of the largest term. The absolute 1e-12 covers blocks whose
    // every KL is ~0 (near one-hot self rows of short packed documents: ref_max ~ 1e-14, and the
    // float64 row sums leave a KL of -9e-20), where a floor relative to ref_max is below rounding.
    EXPECT_GE(op32.kl.min().item<double>(), -std::max(roundoff_floor(exact.kl, at::kFloat, 16.0), 1e-12));
  }
}

INSTANTIATE_TEST_SUITE_P(Grid, RelationKLGrid, ::testing::Range<size_t>(0, grid().size()),
                         [](const ::testing::TestParamInfo<size_t>& info) {
                           const auto& c = grid()[info.param];
                           return "T" + std::to_string(c.T) + "_Ds" + std::to_string(c.Ds) +
                                  "_Dt" + std::to_string(c.Dt) + "_H" + std::to_string(c.H) +
                                  "_Hk" + std::to_string(c.Hk) + (c.causal ? "_causal" : "_full") +
                                  (c.self ? "_self" : "") +
                                  (c.docs != Docs::kNone ? "_docs" : "") + "_" +
                                  std::to_string(info.param);
                         });

// Half precisions follow the same 2x rule against the materialised op run in that dtype.
TEST(RelationKLCpu, HalfPrecisionsTwoXRule) {
  for (auto dtype : {at::kBFloat16, at::kHalf}) {
    for (bool self : {false, true}) {
      const auto c = make_case(2, 4, 2, 2, 97, 64, 64, true, Padding::kRandom, self);
      SCOPED_TRACE(describe(c) + " dtype=" + c10::toString(dtype));
      const auto in = make_inputs(c, 77);
      const auto w = random_weights(c, 78);
      const auto exact = exact_on(in, dtype, self, w);
      const auto low = in.to(dtype);
      const auto op = run(Impl::kOp, low, self, w);
      const auto base = run(Impl::kMaterialized, low, self, w);
      EXPECT_EQ(op.d_xq.scalar_type(), dtype);
      EXPECT_TRUE(check_error_ratio("kl", op.kl, base.kl, exact.kl, roundoff_floor(exact.kl, dtype)));
      EXPECT_TRUE(check_error_ratio("d_xq", op.d_xq, base.d_xq, exact.d_xq,
                                    roundoff_floor(exact.d_xq, dtype)));
      if (!self) {
        EXPECT_TRUE(check_error_ratio("d_xk", op.d_xk, base.d_xk, exact.d_xk,
                                      roundoff_floor(exact.d_xk, dtype)));
      }
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Finite differences: d/dx of L = sum w KL by central differences on every student element.

at::Tensor finite_difference(const RelationKLInputs& in, bool self, bool wrt_xk,
                             const at::Tensor& w) {
  const double h = 1e-6;  // central differences: error O(h^2 f''') + O(eps / h) ~ 1e-10
  auto loss = [&](const RelationKLInputs& p) {
    auto kl = self ? ops::relation_kl_self(p.xq, p.yq, p.key_mask, p.options)
                   : ops::relation_kl(p.xq, p.xk, p.yq, p.yk, p.key_mask, p.options);
    return (kl * w).sum().item<double>();
  };
  const auto& target = wrt_xk ? in.xk : in.xq;
  auto grad = at::zeros_like(target);
  auto flat = grad.view(-1);
  for (int64_t e = 0; e < target.numel(); ++e) {
    double f[2];
    for (int k = 0; k < 2; ++k) {
      RelationKLInputs p = in;
      auto x = target.clone();
      x.view(-1)[e] += (k == 0 ? h : -h);
      if (self) {
        p.xq = x, p.xk = x;
      } else if (wrt_xk) {
        p.xk = x;
      } else {
        p.xq = x;
      }
      f[k] = loss(p);
    }
    flat[e] = (f[0] - f[1]) / (2 * h);
  }
  return grad;
}

TEST(RelationKLCpu, FiniteDifferenceGradients) {
  const std::vector<RelationKLCase> cases = {
      make_case(2, 2, 1, 2, 5, 3, 4, true, Padding::kRandom),
      make_case(2, 2, 2, 1, 6, 4, 3, false, Padding::kLeft),
      make_case(2, 2, 2, 2, 5, 3, 3, true, Padding::kRandom, /*self=*/true),
      make_case(1, 2, 2, 2, 6, 4, 2, false, Padding::kNone, /*self=*/true),
      // Packed documents: the gradient sees only same-document pairs.
      with_docs(make_case(2, 2, 1, 2, 7, 3, 4, true, Padding::kRandom), Docs::kRandom),
      with_docs(make_case(2, 2, 2, 2, 6, 3, 3, true, Padding::kNone, /*self=*/true), Docs::kEdges),
      with_docs(make_case(1, 2, 2, 1, 6, 4, 3, false, Padding::kLeft), Docs::kRecurring),
      with_docs(make_case(2, 2, 2, 2, 7, 3, 2, false, Padding::kRandom, /*self=*/true), Docs::kRandom),
  };
  for (size_t k = 0; k < cases.size(); ++k) {
    const auto& c = cases[k];
    SCOPED_TRACE(describe(c));
    const auto in = make_inputs(c, 300 + k);
    const auto w = random_weights(c, 400 + k);
    const auto op = run(Impl::kOp, in, c.self, w);
    EXPECT_TRUE(check_close("d_xq vs finite differences", op.d_xq,
                            finite_difference(in, c.self, false, w), 1e-7, 1e-6));
    if (!c.self) {
      EXPECT_TRUE(check_close("d_xk vs finite differences", op.d_xk,
                              finite_difference(in, c.self, true, w), 1e-7, 1e-6));
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Properties.

// Two runs are bitwise equal, and so is a run on one thread: every output element is computed by
// one task in a fixed order, whatever the thread count.
TEST(RelationKLCpu, DeterministicBitwise) {
  const int threads = at::get_num_threads();
  for (bool self : {false, true}) {
    const auto c = make_case(2, 8, 2, 2, 257, 64, 64, true, Padding::kRandom, self);
    SCOPED_TRACE(describe(c));
    const auto in = make_inputs(c, 11).to(at::kFloat);
    const auto w = random_weights(c, 12);
    at::set_num_threads(2);
    const auto a = run(Impl::kOp, in, self, w);
    const auto b = run(Impl::kOp, in, self, w);
    at::set_num_threads(1);
    const auto one = run(Impl::kOp, in, self, w);
    at::set_num_threads(threads);
    for (const auto* other : {&b, &one}) {
      EXPECT_TRUE(check_bitwise_equal("kl", a.kl, other->kl));
      EXPECT_TRUE(check_bitwise_equal("d_xq", a.d_xq, other->d_xq));
      if (!self) {
        EXPECT_TRUE(check_bitwise_equal("d_xk", a.d_xk, other->d_xk));
      }
    }
  }
}

TEST(RelationKLCpu, TeacherReceivesNoGradient) {
  const auto c = make_case(1, 4, 2, 2, 17, 32, 32, true, Padding::kNone);
  const auto in = make_inputs(c, 21);
  auto xq = in.xq.clone().requires_grad_(true), xk = in.xk.clone().requires_grad_(true);
  auto yq = in.yq.clone().requires_grad_(true), yk = in.yk.clone().requires_grad_(true);
  ops::relation_kl(xq, xk, yq, yk, in.key_mask, in.options).sum().backward();
  EXPECT_TRUE(xq.grad().defined());
  EXPECT_TRUE(xk.grad().defined());
  EXPECT_FALSE(yq.grad().defined());
  EXPECT_FALSE(yk.grad().defined());

  auto x = in.xq.clone().requires_grad_(true), y = in.yq.clone().requires_grad_(true);
  ops::relation_kl_self(x, y, in.key_mask, in.options).sum().backward();
  EXPECT_TRUE(x.grad().defined());
  EXPECT_FALSE(y.grad().defined());
}

// Factor 1 (paper §1.2 sanity fact): an unmodified student gives KL exactly 0 and zero gradient.
TEST(RelationKLCpu, IdenticalStudentAndTeacherGiveZero) {
  for (auto dtype : {at::kDouble, at::kFloat, at::kBFloat16}) {
    for (bool self : {false, true}) {
      const auto c = make_case(2, 8, 2, 2, 97, 64, 64, true, Padding::kRandom, self, 3.0);
      SCOPED_TRACE(describe(c) + " dtype=" + c10::toString(dtype));
      auto in = make_inputs(c, 31).to(dtype);
      in.yq = in.xq.clone();
      in.yk = self ? in.yq : in.xk.clone();
      const auto r = run(Impl::kOp, in, self, random_weights(c, 32));
      EXPECT_EQ(r.kl.abs().max().item<double>(), 0.0);
      EXPECT_EQ(r.d_xq.abs().max().item<double>(), 0.0);
      if (!self) {
        EXPECT_EQ(r.d_xk.abs().max().item<double>(), 0.0);
      }
    }
  }
}

TEST(RelationKLCpu, FullyPaddedAndDegenerateShapes) {
  // A whole batch element padded: KL 0, LSE -inf, gradient 0, nothing NaN.
  const auto c = make_case(2, 2, 1, 1, 33, 32, 32, true, Padding::kWholeBatch);
  const auto in = make_inputs(c, 41);
  const auto stats = ops::relation_kl_forward(in.xq, in.xk, in.yq, in.yk, in.key_mask, in.options);
  EXPECT_TRUE(stats.kl[1].eq(0).all().item<bool>());
  EXPECT_TRUE(stats.lse_s[1].eq(-INFINITY).all().item<bool>());
  EXPECT_TRUE(stats.lse_t[1].eq(-INFINITY).all().item<bool>());
  const auto r = run(Impl::kOp, in, false, random_weights(c, 42));
  EXPECT_TRUE(r.d_xq[1].eq(0).all().item<bool>());
  EXPECT_TRUE(r.d_xk[1].eq(0).all().item<bool>());
  EXPECT_TRUE(r.d_xq.isfinite().all().item<bool>());

  // Everything padded, and T = 1 (a single self-similar key: KL 0).
  auto none = at::zeros({2, 33}, at::kInt);
  const auto all_pad = ops::relation_kl_forward(in.xq, in.xk, in.yq, in.yk, none, in.options);
  EXPECT_TRUE(all_pad.kl.eq(0).all().item<bool>());
  const auto c1 = make_case(1, 2, 2, 2, 1, 8, 8, true, Padding::kNone);
  const auto in1 = make_inputs(c1, 43);
  const auto r1 = run(Impl::kOp, in1, false, random_weights(c1, 44));
  EXPECT_EQ(r1.kl.abs().max().item<double>(), 0.0);
  EXPECT_EQ(r1.d_xq.abs().max().item<double>(), 0.0);
}

// Non-contiguous inputs (the (B, T, H, D) -> (B, H, T, D) transposes of HF), integer masks and the
// explicit forward/backward API agree with the autograd path.
TEST(RelationKLCpu, LayoutsMasksAndExplicitBackward) {
  const auto c = make_case(2, 4, 2, 2, 40, 16, 24, true, Padding::kRandom);
  const auto in = make_inputs(c, 51).to(at::kFloat);
  const auto w = random_weights(c, 52);
  const auto base = run(Impl::kOp, in, false, w);

  RelationKLInputs strided = in;
  strided.xq = in.xq.transpose(1, 2).contiguous().transpose(1, 2);
  strided.yk = in.yk.transpose(1, 2).contiguous().transpose(1, 2);
  strided.key_mask = in.key_mask->to(at::kLong);
  ASSERT_FALSE(strided.xq.is_contiguous());
  const auto r = run(Impl::kOp, strided, false, w);
  EXPECT_TRUE(check_bitwise_equal("kl strided", r.kl, base.kl));
  EXPECT_TRUE(check_bitwise_equal("d_xq strided", r.d_xq, base.d_xq));

  const auto stats = ops::relation_kl_forward(in.xq, in.xk, in.yq, in.yk, in.key_mask, in.options);
  const auto grads = ops::relation_kl_backward(w.to(at::kFloat), in.xq, in.xk, in.yq, in.yk,
                                               in.key_mask, stats, in.options);
  EXPECT_TRUE(check_close("explicit d_xq", grads.d_xq, base.d_xq, 1e-6, 1e-5));
  EXPECT_TRUE(check_close("explicit d_xk", grads.d_xk, base.d_xk, 1e-6, 1e-5));
}

// relation_kl(x, x, y, y) (autograd adds the two operand gradients) equals relation_kl_self.
TEST(RelationKLCpu, SelfEqualsSameTensorTwice) {
  for (auto dtype : {at::kDouble, at::kFloat}) {
    const auto c = make_case(2, 4, 4, 4, 70, 32, 48, true, Padding::kLeft, /*self=*/true);
    SCOPED_TRACE(describe(c) + " dtype=" + c10::toString(dtype));
    const auto in = make_inputs(c, 91).to(dtype);
    const auto w = random_weights(c, 92);
    const auto fused = run(Impl::kOp, in, /*self=*/true, w);
    auto x = in.xq.clone().requires_grad_(true);
    auto kl = ops::relation_kl(x, x, in.yq, in.yq, in.key_mask, in.options);
    (kl.to(at::kDouble) * w).sum().backward();
    EXPECT_TRUE(check_bitwise_equal("kl", kl.detach(), fused.kl));
    const double eps = dtype == at::kDouble ? 1e-15 : 1e-6;
    EXPECT_TRUE(check_close("dX", x.grad(), fused.d_xq, eps * error_stats(fused.d_xq, fused.d_xq).ref_max, 0));
  }
}

// ---------------------------------------------------------------------------------------------
// Packed documents (issue 18).

// One document, given as doc_ids, is exactly the op without doc_ids (forward and gradients, bitwise),
// whatever the id value and its integer dtype.
TEST(RelationKLCpuDocs, SingleDocumentEqualsNoDocIdsBitwise) {
  for (auto dtype : {at::kDouble, at::kFloat, at::kBFloat16}) {
    for (bool self : {false, true}) {
      const auto c = make_case(2, 4, self ? 4 : 2, 2, 300, 32, 32, true, Padding::kRandom, self);
      SCOPED_TRACE(describe(c) + " dtype=" + c10::toString(dtype));
      const auto in = make_inputs(c, 501).to(dtype);
      const auto w = random_weights(c, 502);
      const auto plain = run(Impl::kOp, in, self, w);
      for (auto id_dtype : {at::kInt, at::kLong, at::kShort}) {
        RelationKLInputs one = in;
        one.options.doc_ids = at::full({c.B, c.T}, 7, at::TensorOptions().dtype(id_dtype));
        const auto r = run(Impl::kOp, one, self, w);
        EXPECT_TRUE(check_bitwise_equal("kl", r.kl, plain.kl));
        EXPECT_TRUE(check_bitwise_equal("d_xq", r.d_xq, plain.d_xq));
        if (!self) {
          EXPECT_TRUE(check_bitwise_equal("d_xk", r.d_xk, plain.d_xk));
        }
      }
    }
  }
}

// A packed block is its documents run one by one: each document's rows (KL) and gradients equal
// those of the op on that document alone (float64, up to rounding: other tiles, other sums).
TEST(RelationKLCpuDocs, PackedEqualsDocumentsRunAlone) {
  for (bool causal : {true, false}) {
    for (bool self : {false, true}) {
      auto c = make_case(1, 4, self ? 4 : 2, 1, 333, 32, 32, causal, Padding::kNone, self);
      SCOPED_TRACE(describe(c));
      auto in = make_inputs(c, 511);
      const int64_t bounds[] = {0, 1, 2, 70, 71, 200, 332, 333};  // length-1 documents included
      auto ids = at::zeros({1, c.T}, at::kLong);
      for (size_t d = 0; d + 1 < std::size(bounds); ++d) ids.narrow(1, bounds[d], bounds[d + 1] - bounds[d]).fill_(int64_t(d));
      in.options.doc_ids = ids;
      const auto w = random_weights(c, 512);
      const auto packed = run(Impl::kOp, in, self, w);
      for (size_t d = 0; d + 1 < std::size(bounds); ++d) {
        const int64_t t0 = bounds[d], n = bounds[d + 1] - bounds[d];
        RelationKLInputs part = in;
        part.xq = in.xq.narrow(2, t0, n).contiguous();
        part.xk = self ? part.xq : in.xk.narrow(2, t0, n).contiguous();
        part.yq = in.yq.narrow(2, t0, n).contiguous();
        part.yk = self ? part.yq : in.yk.narrow(2, t0, n).contiguous();
        part.options.doc_ids.reset();
        const auto alone = run(Impl::kOp, part, self, w.narrow(2, t0, n).contiguous());
        const std::string doc = " of document " + std::to_string(d);
        EXPECT_TRUE(check_close("kl" + doc, packed.kl.narrow(2, t0, n), alone.kl, 1e-13, 1e-11));
        EXPECT_TRUE(check_close("d_xq" + doc, packed.d_xq.narrow(2, t0, n), alone.d_xq, 1e-13, 1e-11));
        if (!self) {
          EXPECT_TRUE(check_close("d_xk" + doc, packed.d_xk.narrow(2, t0, n), alone.d_xk, 1e-13, 1e-11));
        }
        if (n == 1) {  // a one-token document: a one-key softmax, KL 0 and no gradient
          EXPECT_EQ(packed.kl.narrow(2, t0, 1).abs().max().item<double>(), 0.0);
          EXPECT_EQ(packed.d_xq.narrow(2, t0, 1).abs().max().item<double>(), 0.0);
        }
      }
    }
  }
}

// Bitwise reproducible with documents too, on any thread count.
TEST(RelationKLCpuDocs, DeterministicBitwise) {
  const int threads = at::get_num_threads();
  for (bool self : {false, true}) {
    const auto c = with_docs(make_case(2, 4, self ? 4 : 2, 2, 257, 64, 64, true, Padding::kRandom, self),
                             Docs::kRandom);
    SCOPED_TRACE(describe(c));
    const auto in = make_inputs(c, 521).to(at::kFloat);
    const auto w = random_weights(c, 522);
    at::set_num_threads(2);
    const auto a = run(Impl::kOp, in, self, w);
    at::set_num_threads(1);
    const auto one = run(Impl::kOp, in, self, w);
    at::set_num_threads(threads);
    EXPECT_TRUE(check_bitwise_equal("kl", a.kl, one.kl));
    EXPECT_TRUE(check_bitwise_equal("d_xq", a.d_xq, one.d_xq));
    if (!self) {
      EXPECT_TRUE(check_bitwise_equal("d_xk", a.d_xk, one.d_xk));
    }
  }
}

// The explicit forward / backward API takes the ids in the options as the autograd path does.
TEST(RelationKLCpuDocs, ExplicitBackwardMatchesAutograd) {
  const auto c = with_docs(make_case(2, 4, 2, 2, 90, 16, 24, true, Padding::kRandom), Docs::kEdges);
  const auto in = make_inputs(c, 531).to(at::kFloat);
  const auto w = random_weights(c, 532);
  const auto base = run(Impl::kOp, in, false, w);
  const auto stats = ops::relation_kl_forward(in.xq, in.xk, in.yq, in.yk, in.key_mask, in.options);
  EXPECT_TRUE(check_bitwise_equal("kl", stats.kl, base.kl));
  const auto grads = ops::relation_kl_backward(w.to(at::kFloat), in.xq, in.xk, in.yq, in.yk,
                                               in.key_mask, stats, in.options);
  EXPECT_TRUE(check_close("explicit d_xq", grads.d_xq, base.d_xq, 1e-6, 1e-5));
  EXPECT_TRUE(check_close("explicit d_xk", grads.d_xk, base.d_xk, 1e-6, 1e-5));
}

// Many short documents skip most key tiles: the forward + backward of 64 documents at T = 4096
// costs a fraction of one document's (CPU time; skipped tiles are never computed).
TEST(RelationKLCpuDocs, ManyDocumentsSkipWork) {
  const auto c = make_case(1, 1, 1, 1, 4096, 32, 32, true, Padding::kNone, /*self=*/true);
  const auto in = make_inputs(c, 541).to(at::kFloat);
  const auto w = random_weights(c, 542);
  auto cpu_seconds = [&](const RelationKLInputs& p) {
    const std::clock_t c0 = std::clock();
    run(Impl::kOp, p, true, w);
    return double(std::clock() - c0) / CLOCKS_PER_SEC;
  };
  RelationKLInputs packed = in;
  packed.options.doc_ids = at::arange(c.T, at::kLong).div(64, "floor").view({1, c.T});
  run(Impl::kOp, in, true, w);  // warm-up
  const double one = cpu_seconds(in), many = cpu_seconds(packed);
  std::printf("[ timing   ] T=4096 D=32 self, forward + backward: 1 document %.3f s cpu, 64 documents %.3f s\n",
              one, many);
  EXPECT_LT(many, 0.5 * one);
}

// Every boundary check names the tensor at fault.
TEST(RelationKLCpu, ValidationNamesTheTensor) {
  const auto c = make_case(2, 4, 2, 2, 8, 16, 16, true, Padding::kNone);
  const auto in = make_inputs(c, 61);
  auto expect_error = [&](const std::function<void()>& f, const std::string& needle) {
    try {
      f();
      ADD_FAILURE() << "no error, expected one mentioning '" << needle << "'";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
  };
  const auto& o = in.options;
  expect_error([&] { ops::relation_kl(in.xq[0], in.xk, in.yq, in.yk, {}, o); }, "xq");
  expect_error([&] { ops::relation_kl(in.xq, in.xk.narrow(2, 0, 5), in.yq, in.yk, {}, o); }, "xk");
  expect_error([&] { ops::relation_kl(in.xq, in.xk, in.yq.narrow(0, 0, 1), in.yk, {}, o); }, "yq");
  expect_error([&] { ops::relation_kl(in.xq, in.xk, in.yq, at::randn({2, 3, 8, 16}, at::kDouble), {}, o); },
               "yk");
  expect_error([&] { ops::relation_kl(in.xq, in.xk.narrow(3, 0, 8), in.yq, in.yk, {}, o); }, "xk");
  expect_error([&] { ops::relation_kl(in.xq, in.xk, in.yq, in.yk.narrow(3, 0, 8), {}, o); }, "yk");
  expect_error([&] { ops::relation_kl(in.xq.to(at::kInt), in.xk, in.yq, in.yk, {}, o); }, "xq");
  expect_error([&] { ops::relation_kl(in.xq, in.xk.to(at::kFloat), in.yq, in.yk, {}, o); }, "xk");
  expect_error([&] { ops::relation_kl(in.xq, in.xk, in.yq, in.yk, at::ones({2, 8}), o); },
               "key_mask");
  expect_error([&] { ops::relation_kl(in.xq, in.xk, in.yq, in.yk, at::ones({2, 7}, at::kBool), o); },
               "key_mask");
  auto bad = o;
  bad.scale_s = std::numeric_limits<double>::infinity();
  expect_error([&] { ops::relation_kl(in.xq, in.xk, in.yq, in.yk, {}, bad); }, "scale_s");
  auto bad_docs = o;
  bad_docs.doc_ids = at::zeros({2, 7}, at::kInt);
  expect_error([&] { ops::relation_kl(in.xq, in.xk, in.yq, in.yk, {}, bad_docs); }, "doc_ids");
  bad_docs.doc_ids = at::zeros({2, 8}, at::kFloat);
  expect_error([&] { ops::relation_kl_self(in.xq, in.yq, {}, bad_docs); }, "doc_ids");
  bad_docs.doc_ids = at::zeros({2, 8}, at::kBool);
  expect_error([&] { ops::relation_kl_forward(in.xq, in.xk, in.yq, in.yk, {}, bad_docs); }, "doc_ids");
  if (!at::hasCUDA()) {
    // Without CUDA kernels a CUDA tensor cannot even be made; the check that says so is in the op.
    SUCCEED();
  }
}

// Memory is linear in T: the peak resident set grows by far less than one T x T float32 map.
TEST(RelationKLCpu, NoQuadraticBuffer) {
  const int64_t T = 8192;  // one (T, T) float32 map would be 256 MiB
  std::ofstream clear("/proc/self/clear_refs");
  if (!clear) GTEST_SKIP() << "/proc/self/clear_refs not writable: cannot reset the peak RSS";
  auto peak_kib = [] {
    std::ifstream status("/proc/self/status");
    std::string line;
    while (std::getline(status, line))
      if (line.rfind("VmHWM:", 0) == 0) return std::stol(line.substr(6));
    return -1L;
  };
  const auto c = make_case(1, 1, 1, 1, T, 32, 32, true, Padding::kNone, /*self=*/true);
  auto in = make_inputs(c, 71).to(at::kFloat);
  const auto w = random_weights(c, 72);
  auto reset_peak = [&] {
    clear << "5" << std::flush;  // "5" resets VmHWM to the current RSS (Linux >= 4.0)
    return static_cast<bool>(clear);
  };
  // The probe works: a deliberate 64 MiB buffer shows up in the peak.
  if (!reset_peak()) GTEST_SKIP() << "cannot reset the peak RSS";
  long before = peak_kib();
  {
    auto probe = at::ones({64 << 20}, at::kByte);
    ASSERT_GE((peak_kib() - before) / 1024, 60) << "VmHWM does not see allocations here";
  }
  ASSERT_TRUE(reset_peak());
  before = peak_kib();
  const auto r = run(Impl::kOp, in, true, w);
  const long grown_mib = (peak_kib() - before) / 1024;
  std::printf("[ memory   ] T=%lld: peak RSS grew by %ld MiB (a T x T float32 map is %lld MiB)\n",
              static_cast<long long>(T), grown_mib, static_cast<long long>(T * T * 4 >> 20));
  EXPECT_LT(grown_mib, 64);
  EXPECT_TRUE(r.kl.isfinite().all().item<bool>());
}

// The size the brief names: B=1, H=8, T=1025, D=128, causal, float32. Prints the forward and the
// backward separately (wall and process CPU time: on a shared machine a large CPU/wall ratio means
// threads waiting for a core).
TEST(RelationKLCpu, Timing) {
  const auto c = make_case(1, 8, 8, 8, 1025, 128, 128, true, Padding::kNone);
  const auto in = make_inputs(c, 81).to(at::kFloat);
  const auto w = random_weights(c, 82).to(at::kFloat);
  auto forward = [&] {
    return ops::relation_kl_forward(in.xq, in.xk, in.yq, in.yk, in.key_mask, in.options);
  };
  auto stats = forward();  // warm-up (thread pool, allocator)
  ops::relation_kl_backward(w, in.xq, in.xk, in.yq, in.yk, in.key_mask, stats, in.options);
  auto time = [](const std::function<void()>& f) {
    const auto t0 = std::chrono::steady_clock::now();
    const std::clock_t c0 = std::clock();
    f();
    const double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    return std::pair<double, double>{wall, double(std::clock() - c0) / CLOCKS_PER_SEC};
  };
  const auto fwd = time([&] { stats = forward(); });
  const auto bwd = time([&] {
    ops::relation_kl_backward(w, in.xq, in.xk, in.yq, in.yk, in.key_mask, stats, in.options);
  });
  std::printf("[ timing   ] B=1 H=8 T=1025 D=128 causal float32 on %d threads: forward %.3f s "
              "(cpu %.3f s), backward %.3f s (cpu %.3f s)\n",
              at::get_num_threads(), fwd.first, fwd.second, bwd.first, bwd.second);
  // Process CPU time, not wall time: CI machines are shared. Loose bound (measured ~0.75 s of
  // CPU on the 2-core dev machine, i.e. ~0.4 s wall when both cores are free).
  EXPECT_LT(fwd.second + bwd.second, 5.0);
}

}  // namespace
}  // namespace linearard::test
