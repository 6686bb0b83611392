#include "ops/relation_kl/relation_kl_cpu.h"

#include <ATen/Parallel.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

namespace linearard::ops {
namespace {

// Tile sizes: 64 query rows x 128 key columns keeps the two logit tiles (2 x 64 KiB in float64)
// in L2 while each BLAS call still multiplies 64 x D by D x 128 (enough work per call to hide
// the ~1 us call overhead). Measured on the 2-core CI machine: 64 x 128 was within 10 % of
// 128 x 256 and 32 x 64 (see the report of issue 3); the choice is not critical.
constexpr int64_t kRowBlock = 64;
constexpr int64_t kKeyTile = 128;

// One problem in the accumulation dtype acc_t (double for float64 inputs, float otherwise).
template <typename acc_t>
struct Problem {
  at::Tensor xq;  // (B, H, T, Ds)   acc_t, contiguous
  at::Tensor xk;  // (B, Hk, T, Ds)
  at::Tensor yq;  // (B, H, T, Dt)
  at::Tensor yk;  // (B, Hkt, T, Dt)
  const bool* key_valid = nullptr;  // (B, T), nullptr = every key valid
  int64_t B = 0, H = 0, Hk = 0, Hkt = 0, T = 0, Ds = 0, Dt = 0;
  acc_t scale_s = 1, scale_t = 1;
  bool causal = true;

  bool valid(int64_t b, int64_t j) const { return key_valid == nullptr || key_valid[b * T + j]; }
  int64_t student_key_head(int64_t h) const { return h / (H / Hk); }
  int64_t teacher_key_head(int64_t h) const { return h / (H / Hkt); }
  // Key tiles of a row block end here: causal rows i < i_end see keys j <= i only.
  int64_t key_end(int64_t i_end) const { return causal ? i_end : T; }

  // Rows [i0, i0 + bm) of head h (or key head) of x, as a (bm, D) view.
  static at::Tensor rows(const at::Tensor& x, int64_t b, int64_t h, int64_t i0, int64_t n) {
    return x.select(0, b).select(0, h).narrow(0, i0, n);
  }
};

template <typename acc_t>
Problem<acc_t> make_problem(const at::Tensor& xq, const at::Tensor& xk, const at::Tensor& yq,
                            const at::Tensor& yk, const at::Tensor& key_valid,
                            const RelationKLOptions& options) {
  const auto dtype = c10::CppTypeToScalarType<acc_t>::value;
  Problem<acc_t> p;
  // detach(): these are plain numeric buffers here, whatever the caller's autograd state.
  p.xq = xq.detach().to(dtype).contiguous();
  p.xk = xk.is_same(xq) ? p.xq : xk.detach().to(dtype).contiguous();
  p.yq = yq.detach().to(dtype).contiguous();
  p.yk = yk.is_same(yq) ? p.yq : yk.detach().to(dtype).contiguous();
  p.key_valid = key_valid.defined() ? key_valid.data_ptr<bool>() : nullptr;
  p.B = xq.size(0), p.H = xq.size(1), p.T = xq.size(2), p.Ds = xq.size(3);
  p.Hk = xk.size(1), p.Hkt = yk.size(1), p.Dt = yq.size(3);
  p.scale_s = static_cast<acc_t>(options.scale_s);
  p.scale_t = static_cast<acc_t>(options.scale_t);
  p.causal = options.causal;
  return p;
}

// Unscaled student and teacher logit tiles of rows [i0, i0 + bm) x keys [j0, j0 + bn) of
// (b, h), written into caller-owned scratch (no allocation per tile).
template <typename acc_t>
void logit_tiles(const Problem<acc_t>& p, int64_t b, int64_t h, int64_t i0, int64_t bm,
                 int64_t j0, int64_t bn, at::Tensor& s_scratch, at::Tensor& t_scratch,
                 at::Tensor* s_tile, at::Tensor* t_tile) {
  *s_tile = s_scratch.narrow(0, 0, bm * bn).view({bm, bn});  // (bm, bn)
  *t_tile = t_scratch.narrow(0, 0, bm * bn).view({bm, bn});  // (bm, bn)
  at::mm_out(*s_tile, Problem<acc_t>::rows(p.xq, b, h, i0, bm),
             Problem<acc_t>::rows(p.xk, b, p.student_key_head(h), j0, bn).t());
  at::mm_out(*t_tile, Problem<acc_t>::rows(p.yq, b, h, i0, bm),
             Problem<acc_t>::rows(p.yk, b, p.teacher_key_head(h), j0, bn).t());
}

// Scratch of one worker: the two logit tiles and the running statistics of one row block.
template <typename acc_t>
struct Workspace {
  at::Tensor s_scratch, t_scratch;  // (kRowBlock * kKeyTile) each
  at::Tensor s_tile, t_tile;        // (bm, bn) views into the scratch
  std::vector<acc_t> m_s, m_t;      // (kRowBlock) running maxima of the scaled logits
  std::vector<acc_t> l_s, l_t;      // (kRowBlock) sum exp(logit - running max)
  std::vector<acc_t> a;             // (kRowBlock) KL accumulator, see row_block_statistics

  explicit Workspace(const at::TensorOptions& opts)
      : s_scratch(at::empty({kRowBlock * kKeyTile}, opts)),
        t_scratch(at::empty({kRowBlock * kKeyTile}, opts)),
        m_s(kRowBlock), m_t(kRowBlock), l_s(kRowBlock), l_t(kRowBlock), a(kRowBlock) {}

  void logits(const Problem<acc_t>& p, int64_t b, int64_t h, int64_t i0, int64_t bm, int64_t j0,
              int64_t bn) {
    logit_tiles(p, b, h, i0, bm, j0, bn, s_scratch, t_scratch, &s_tile, &t_tile);
  }
};

// ---------------------------------------------------------------------------------------------
// Row statistics: one pass over the key tiles with an online softmax for both sides
// (anchors §2.5). Per row: running maxima m_s, m_t, sums l_s = sum exp(s - m_s),
// l_t = sum exp(t - m_t) and (with_kl)
//   A = sum exp(t - m_t) ((t - m_t) - (s - m_s)),
// so KL = sum p_t (log p_t - log p_s) = A / l_t - log l_t + log l_s. Keeping A relative to the
// running maxima (instead of A = sum exp(t - m_t)(t - s) and KL = A/l_t - lse_t + lse_s) avoids
// cancelling two LSEs of size |s| ~ 80 in float32. When a maximum grows by dm_s, dm_t:
//   A <- exp(-dm_t) (A - (dm_t - dm_s) l_t).
// Rows that are padded or see no valid key end with l_t = 0.
template <typename acc_t, bool with_kl>
void row_block_statistics(const Problem<acc_t>& p, int64_t b, int64_t h, int64_t i0, int64_t bm,
                          Workspace<acc_t>& w) {
  const acc_t neg_inf = -std::numeric_limits<acc_t>::infinity();
  std::fill(w.m_s.begin(), w.m_s.end(), neg_inf);
  std::fill(w.m_t.begin(), w.m_t.end(), neg_inf);
  std::fill(w.l_s.begin(), w.l_s.end(), acc_t(0));
  std::fill(w.l_t.begin(), w.l_t.end(), acc_t(0));
  std::fill(w.a.begin(), w.a.end(), acc_t(0));
  const int64_t j_end = p.key_end(i0 + bm);
  for (int64_t j0 = 0; j0 < j_end; j0 += kKeyTile) {
    const int64_t bn = std::min(kKeyTile, j_end - j0);
    w.logits(p, b, h, i0, bm, j0, bn);
    const acc_t* s_data = w.s_tile.template data_ptr<acc_t>();
    const acc_t* t_data = w.t_tile.template data_ptr<acc_t>();
    for (int64_t r = 0; r < bm; ++r) {
      const int64_t i = i0 + r;
      if (!p.valid(b, i)) continue;  // a padded row stays empty: KL 0, LSE -inf
      const int64_t c_end = p.causal ? std::min(bn, i - j0 + 1) : bn;
      const acc_t* s_row = s_data + r * bn;
      const acc_t* t_row = t_data + r * bn;
      acc_t ms_tile = neg_inf, mt_tile = neg_inf;
      for (int64_t c = 0; c < c_end; ++c) {
        if (!p.valid(b, j0 + c)) continue;
        ms_tile = std::max(ms_tile, p.scale_s * s_row[c]);
        mt_tile = std::max(mt_tile, p.scale_t * t_row[c]);
      }
      if (mt_tile == neg_inf) continue;  // no valid key of this row in this tile
      const acc_t ms_new = std::max(w.m_s[r], ms_tile), mt_new = std::max(w.m_t[r], mt_tile);
      if (w.l_t[r] > 0) {  // rescale the running sums to the new maxima
        const acc_t dms = ms_new - w.m_s[r], dmt = mt_new - w.m_t[r];
        const acc_t alpha_t = std::exp(-dmt);
        if (with_kl) w.a[r] = alpha_t * (w.a[r] - (dmt - dms) * w.l_t[r]);
        w.l_s[r] *= std::exp(-dms);
        w.l_t[r] *= alpha_t;
      }
      // Tile-local partial sums, added once: blocked summation keeps the float32 rounding
      // error at O((kKeyTile + T / kKeyTile) eps) instead of O(T eps).
      acc_t sum_s = 0, sum_t = 0, sum_a = 0;
      for (int64_t c = 0; c < c_end; ++c) {
        if (!p.valid(b, j0 + c)) continue;
        const acc_t ds = p.scale_s * s_row[c] - ms_new;  // <= 0
        const acc_t dt = p.scale_t * t_row[c] - mt_new;  // <= 0
        const acc_t et = std::exp(dt);
        sum_s += std::exp(ds);
        sum_t += et;
        if (with_kl) sum_a += et * (dt - ds);
      }
      w.m_s[r] = ms_new, w.m_t[r] = mt_new;
      w.l_s[r] += sum_s, w.l_t[r] += sum_t;
      if (with_kl) w.a[r] += sum_a;
    }
  }
}

template <typename acc_t>
void forward_impl(const Problem<acc_t>& p, acc_t* kl, acc_t* lse_s, acc_t* lse_t) {
  const int64_t row_blocks = (p.T + kRowBlock - 1) / kRowBlock;
  const acc_t neg_inf = -std::numeric_limits<acc_t>::infinity();
  at::parallel_for(0, p.B * p.H * row_blocks, 1, [&](int64_t begin, int64_t end) {
    Workspace<acc_t> w(p.xq.options());
    for (int64_t task = begin; task < end; ++task) {
      const int64_t b = task / (p.H * row_blocks), h = (task / row_blocks) % p.H;
      const int64_t i0 = (task % row_blocks) * kRowBlock, bm = std::min(kRowBlock, p.T - i0);
      row_block_statistics<acc_t, /*with_kl=*/true>(p, b, h, i0, bm, w);
      const int64_t out0 = (b * p.H + h) * p.T + i0;  // offset of row i0 in (B, H, T)
      for (int64_t r = 0; r < bm; ++r) {
        if (w.l_t[r] > 0) {
          kl[out0 + r] = w.a[r] / w.l_t[r] - std::log(w.l_t[r]) + std::log(w.l_s[r]);
          lse_s[out0 + r] = w.m_s[r] + std::log(w.l_s[r]);
          lse_t[out0 + r] = w.m_t[r] + std::log(w.l_t[r]);
        } else {  // padded row, or a row without any valid key
          kl[out0 + r] = 0;
          lse_s[out0 + r] = neg_inf;
          lse_t[out0 + r] = neg_inf;
        }
      }
    }
  });
}

// ---------------------------------------------------------------------------------------------
// Backward. dL/ds_ij = g_i (p_s,ij - p_t,ij) =: G_ij (no pre-pass term: softmax rows sum to 1),
// dXq_i = scale_s sum_j G_ij Xk_j and dXk_j = scale_s sum_i G_ij Xq_i.
//
// Why the saved LSEs are not used here: a float32 LSE is only known to +-ulp(|lse|)/2, and
// p = exp(s - lse) inherits that as a relative error of every probability of the row. For
// self-relations the diagonal dominates (s_ii = scale |x_i|^2 ~ 90 for |x| ~ 4, D = 32), p_s,ii
// and p_t,ii are both ~1 and G_ii is their small difference, so that offset alone made the
// float32 gradient error 23x that of the materialised float32 implementation (3.6e-6 vs
// 1.5e-7 on the T=257 self case of the tests), breaking the 2x rule. Instead each row block first
// recomputes its statistics (m, l) from exactly the tiles it then differentiates (same BLAS calls,
// same shapes, same thread: bitwise the same logits), and forms p = exp((s - m) - log l): the
// dominant entry has s - m = 0 exactly, as in log_softmax. Cost: one extra logit sweep.
//
// Determinism without atomics: one task per (b, key head) owns d_xk[b, kh] and the d_xq rows of
// every query head of its GQA group, and walks heads, row blocks and key tiles in a fixed order.
template <typename acc_t>
std::pair<at::Tensor, at::Tensor> backward_impl(const Problem<acc_t>& p, const acc_t* grad) {
  auto d_xq = at::zeros({p.B, p.H, p.T, p.Ds}, p.xq.options());   // (B, H, T, Ds)
  auto d_xk = at::zeros({p.B, p.Hk, p.T, p.Ds}, p.xq.options());  // (B, Hk, T, Ds)
  const int64_t row_blocks = (p.T + kRowBlock - 1) / kRowBlock;
  const int64_t group = p.H / p.Hk;
  at::parallel_for(0, p.B * p.Hk, 1, [&](int64_t begin, int64_t end) {
    Workspace<acc_t> w(p.xq.options());
    std::vector<acc_t> log_l_s(kRowBlock), log_l_t(kRowBlock);
    for (int64_t task = begin; task < end; ++task) {
      const int64_t b = task / p.Hk, kh = task % p.Hk;
      for (int64_t h = kh * group; h < (kh + 1) * group; ++h) {
        for (int64_t rb = 0; rb < row_blocks; ++rb) {
          const int64_t i0 = rb * kRowBlock, bm = std::min(kRowBlock, p.T - i0);
          const int64_t row0 = (b * p.H + h) * p.T + i0;  // offset of row i0 in (B, H, T)
          // Sweep 1: the statistics of these rows.
          row_block_statistics<acc_t, /*with_kl=*/false>(p, b, h, i0, bm, w);
          bool any_live = false;
          for (int64_t r = 0; r < bm; ++r) {
            // A row without keys (l_t = 0), or with zero upstream gradient, contributes nothing.
            if (w.l_t[r] > 0 && grad[row0 + r] != 0) {
              log_l_s[r] = std::log(w.l_s[r]);
              log_l_t[r] = std::log(w.l_t[r]);
              any_live = true;
            } else {
              w.l_t[r] = 0;
            }
          }
          if (!any_live) continue;
          // Sweep 2: G tiles (written over the student logits) and both gradient products.
          auto xq_rows = Problem<acc_t>::rows(p.xq, b, h, i0, bm);  // (bm, Ds)
          auto dq = Problem<acc_t>::rows(d_xq, b, h, i0, bm);       // (bm, Ds)
          const int64_t j_end = p.key_end(i0 + bm);
          for (int64_t j0 = 0; j0 < j_end; j0 += kKeyTile) {
            const int64_t bn = std::min(kKeyTile, j_end - j0);
            w.logits(p, b, h, i0, bm, j0, bn);
            acc_t* g_data = w.s_tile.template data_ptr<acc_t>();
            const acc_t* t_data = w.t_tile.template data_ptr<acc_t>();
            for (int64_t r = 0; r < bm; ++r) {
              const int64_t i = i0 + r;
              acc_t* g_row = g_data + r * bn;
              const acc_t* t_row = t_data + r * bn;
              const int64_t c_end = !(w.l_t[r] > 0) ? 0
                                    : p.causal      ? std::clamp<int64_t>(i - j0 + 1, 0, bn)
                                                    : bn;
              const acc_t g = grad[row0 + r];
              for (int64_t c = 0; c < c_end; ++c) {
                if (!p.valid(b, j0 + c)) {
                  g_row[c] = 0;
                  continue;
                }
                const acc_t ps = std::exp((p.scale_s * g_row[c] - w.m_s[r]) - log_l_s[r]);
                const acc_t pt = std::exp((p.scale_t * t_row[c] - w.m_t[r]) - log_l_t[r]);
                g_row[c] = g * (ps - pt);
              }
              std::fill(g_row + c_end, g_row + bn, acc_t(0));
            }
            dq.addmm_(w.s_tile, Problem<acc_t>::rows(p.xk, b, kh, j0, bn));
            Problem<acc_t>::rows(d_xk, b, kh, j0, bn).addmm_(w.s_tile.t(), xq_rows);
          }
        }
      }
    }
  });
  d_xq.mul_(p.scale_s);
  d_xk.mul_(p.scale_s);
  return {d_xq, d_xk};
}

at::ScalarType acc_dtype(const at::Tensor& x) {
  return x.scalar_type() == at::kDouble ? at::kDouble : at::kFloat;
}

at::Tensor mask_or_undefined(const std::optional<at::Tensor>& key_mask) {
  return key_mask ? key_mask->to(at::kBool).contiguous() : at::Tensor();
}

// The saved statistics are not needed (see backward_impl); the dispatcher has checked them.
template <typename acc_t>
std::pair<at::Tensor, at::Tensor> backward_dispatch(const at::Tensor& grad_kl,
                                                    const at::Tensor& xq, const at::Tensor& xk,
                                                    const at::Tensor& yq, const at::Tensor& yk,
                                                    const std::optional<at::Tensor>& key_mask,
                                                    const RelationKLOptions& options) {
  const auto dtype = c10::CppTypeToScalarType<acc_t>::value;
  auto mask = mask_or_undefined(key_mask);
  auto p = make_problem<acc_t>(xq, xk, yq, yk, mask, options);
  auto grad = grad_kl.detach().to(dtype).contiguous();  // (B, H, T)
  return backward_impl(p, grad.template data_ptr<acc_t>());
}

}  // namespace

RelationKLStats relation_kl_forward_cpu(const at::Tensor& xq, const at::Tensor& xk,
                                        const at::Tensor& yq, const at::Tensor& yk,
                                        const std::optional<at::Tensor>& key_mask,
                                        const RelationKLOptions& options) {
  const auto dtype = acc_dtype(xq);
  auto mask = mask_or_undefined(key_mask);
  const auto stat_opts = at::TensorOptions().dtype(dtype);
  RelationKLStats out;
  out.kl = at::empty({xq.size(0), xq.size(1), xq.size(2)}, stat_opts);     // (B, H, T)
  out.lse_s = at::empty({xq.size(0), xq.size(1), xq.size(2)}, stat_opts);  // (B, H, T)
  out.lse_t = at::empty({xq.size(0), xq.size(1), xq.size(2)}, stat_opts);  // (B, H, T)
  if (dtype == at::kDouble) {
    forward_impl(make_problem<double>(xq, xk, yq, yk, mask, options), out.kl.data_ptr<double>(),
                 out.lse_s.data_ptr<double>(), out.lse_t.data_ptr<double>());
  } else {
    forward_impl(make_problem<float>(xq, xk, yq, yk, mask, options), out.kl.data_ptr<float>(),
                 out.lse_s.data_ptr<float>(), out.lse_t.data_ptr<float>());
  }
  return out;
}

RelationKLGrads relation_kl_backward_cpu(const at::Tensor& grad_kl, const at::Tensor& xq,
                                         const at::Tensor& xk, const at::Tensor& yq,
                                         const at::Tensor& yk,
                                         const std::optional<at::Tensor>& key_mask,
                                         const RelationKLStats& stats,
                                         const RelationKLOptions& options) {
  auto grads = acc_dtype(xq) == at::kDouble
                   ? backward_dispatch<double>(grad_kl, xq, xk, yq, yk, key_mask, options)
                   : backward_dispatch<float>(grad_kl, xq, xk, yq, yk, key_mask, options);
  return {grads.first.to(xq.scalar_type()), grads.second.to(xk.scalar_type())};
}

at::Tensor relation_kl_self_backward_cpu(const at::Tensor& grad_kl, const at::Tensor& x,
                                         const at::Tensor& y,
                                         const std::optional<at::Tensor>& key_mask,
                                         const RelationKLStats& stats,
                                         const RelationKLOptions& options) {
  // Row term + column term, added in the accumulation dtype before the one cast.
  auto grads = acc_dtype(x) == at::kDouble
                   ? backward_dispatch<double>(grad_kl, x, x, y, y, key_mask, options)
                   : backward_dispatch<float>(grad_kl, x, x, y, y, key_mask, options);
  return grads.first.add_(grads.second).to(x.scalar_type());
}

}  // namespace linearard::ops
