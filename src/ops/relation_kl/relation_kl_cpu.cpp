#include "ops/relation_kl/relation_kl_cpu.h"

#include <ATen/Parallel.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <unordered_map>
#include <utility>
#include <vector>

namespace linearard::ops {
namespace {

// Tiles: 64 query rows x 128 key columns. Two logit tiles are 64 KiB in float32 (L2-resident)
// and a tile product is 64 x 128 x D, long enough to amortise packing. T=1025, D=128 timings
// (float32, 1 thread) were flat within ~10 % between 32x64 and 128x256; the choice is not
// critical.
constexpr int64_t kRowBlock = 64;
constexpr int64_t kKeyTile = 128;

// ---------------------------------------------------------------------------------------------
// Tile products. Plain C++ instead of at::mm: MKL called inside at::parallel_for regions was
// measured 5-60x slower than single-threaded on the shared 2-core machine (nested OpenMP
// regions spin-waiting; 136 64x128x128 sgemms: 0.06 s CPU on 1 thread, 0.3-3.6 s CPU on 2),
// and our own loops make every logit bitwise independent of the BLAS, of the thread count and
// of the tile's position, which the backward relies on (it recomputes each logit twice and
// needs the same bits). Each output element is one sequential dot product over k.
// The micro tile (4 rows x 16 columns of accumulators, fixed trip counts) is what GCC's -O2
// vectoriser turns into packed SSE code: ~17 GFLOP/s float32, ~7 float64 per core (measured).
constexpr int64_t kMicroRows = 4;
constexpr int64_t kMicroCols = 16;

// Scratch floats a B panel of K x N needs once packed.
int64_t packed_size(int64_t K, int64_t N) {
  return K * ((N + kMicroCols - 1) / kMicroCols) * kMicroCols;
}

// C (M, N) = [C +] A (M, K) B (K, N). A and B are addressed by element strides, C is row-major
// with leading dimension ldc. pack: packed_size(K, N) scratch elements.
template <typename T>
void gemm_tile(int64_t M, int64_t N, int64_t K, const T* A, int64_t a_sm, int64_t a_sk,
               const T* B, int64_t b_sk, int64_t b_sn, T* C, int64_t ldc, bool accumulate,
               T* pack) {
  const int64_t panels = (N + kMicroCols - 1) / kMicroCols;
  // Pack B as (panel, k, 16 columns), zero-padded past N, so the inner loop reads it linearly.
  for (int64_t pn = 0; pn < panels; ++pn) {
    for (int64_t k = 0; k < K; ++k) {
      T* dst = pack + (pn * K + k) * kMicroCols;
      for (int64_t w = 0; w < kMicroCols; ++w) {
        const int64_t n = pn * kMicroCols + w;
        dst[w] = n < N ? B[k * b_sk + n * b_sn] : T(0);
      }
    }
  }
  for (int64_t pn = 0; pn < panels; ++pn) {
    const T* panel = pack + pn * K * kMicroCols;
    const int64_t n0 = pn * kMicroCols, nw = std::min(kMicroCols, N - n0);
    for (int64_t m0 = 0; m0 < M; m0 += kMicroRows) {
      T acc[kMicroRows][kMicroCols] = {};
      const T* a[kMicroRows];
      // Rows past M repeat the last row; their results are not stored.
      for (int64_t r = 0; r < kMicroRows; ++r) a[r] = A + std::min(m0 + r, M - 1) * a_sm;
      for (int64_t k = 0; k < K; ++k) {
        const T* bk = panel + k * kMicroCols;
        for (int64_t r = 0; r < kMicroRows; ++r) {
          const T ar = a[r][k * a_sk];
          for (int64_t w = 0; w < kMicroCols; ++w) acc[r][w] += ar * bk[w];
        }
      }
      for (int64_t r = 0; r < kMicroRows && m0 + r < M; ++r) {
        T* c = C + (m0 + r) * ldc + n0;
        for (int64_t w = 0; w < nw; ++w) c[w] = accumulate ? c[w] + acc[r][w] : acc[r][w];
      }
    }
  }
}

// ---------------------------------------------------------------------------------------------
// One problem in the accumulation dtype acc_t (double for float64 inputs, float otherwise).
template <typename acc_t>
struct Problem {
  at::Tensor xq_t, xk_t, yq_t, yk_t;  // owners of the contiguous acc_t copies below
  const acc_t* xq = nullptr;  // (B, H, T, Ds)
  const acc_t* xk = nullptr;  // (B, Hk, T, Ds)
  const acc_t* yq = nullptr;  // (B, H, T, Dt)
  const acc_t* yk = nullptr;  // (B, Hkt, T, Dt)
  const bool* key_valid = nullptr;  // (B, T), nullptr = every key valid
  const int32_t* doc = nullptr;      // (B, T) document ids, nullptr = one document per row
  // With doc ids, per (b, row block): [key_lo, key_hi) holds every key that shares a document with
  // a row of the block (document_bounds); (B, row blocks) each.
  std::vector<int64_t> key_lo, key_hi;
  int64_t B = 0, H = 0, Hk = 0, Hkt = 0, T = 0, Ds = 0, Dt = 0;
  acc_t scale_s = 1, scale_t = 1;
  bool causal = true;

  bool valid(int64_t b, int64_t j) const { return key_valid == nullptr || key_valid[b * T + j]; }
  // Key j for row i: valid and, with packed documents, of row i's document (relation_kl.h).
  bool key_ok(int64_t b, int64_t i, int64_t j) const {
    return valid(b, j) && (doc == nullptr || doc[b * T + j] == doc[b * T + i]);
  }
  // Key tiles of the row block [i0, i_end) of batch row b: from key_begin (a whole tile: key tiles
  // stay at multiples of kKeyTile, as in the kernels) to key_end. Causal rows i < i_end see keys
  // j <= i only; with packed documents the tiles wholly before the block's first document start or
  // after its last document end are skipped (never computed, as in the kernels).
  int64_t key_begin(int64_t b, int64_t i0) const {
    return doc == nullptr ? 0 : key_lo[b * row_blocks() + i0 / kRowBlock] / kKeyTile * kKeyTile;
  }
  int64_t key_end(int64_t b, int64_t i0, int64_t i_end) const {
    const int64_t e = causal ? i_end : T;
    return doc == nullptr ? e : std::min(e, key_hi[b * row_blocks() + i0 / kRowBlock]);
  }
  int64_t row_blocks() const { return (T + kRowBlock - 1) / kRowBlock; }
  // Row i of head h of a (B, heads, T, D) tensor.
  static const acc_t* row(const acc_t* x, int64_t heads, int64_t T, int64_t D, int64_t b,
                          int64_t h, int64_t i) {
    return x + ((b * heads + h) * T + i) * D;
  }
  const acc_t* xq_row(int64_t b, int64_t h, int64_t i) const { return row(xq, H, T, Ds, b, h, i); }
  const acc_t* yq_row(int64_t b, int64_t h, int64_t i) const { return row(yq, H, T, Dt, b, h, i); }
  // Key rows of the key head that query head h reads (GQA: h / (H / Hk)).
  const acc_t* xk_row(int64_t b, int64_t h, int64_t j) const {
    return row(xk, Hk, T, Ds, b, h / (H / Hk), j);
  }
  const acc_t* yk_row(int64_t b, int64_t h, int64_t j) const {
    return row(yk, Hkt, T, Dt, b, h / (H / Hkt), j);
  }
};

// Per (b, row block): the smallest and one past the largest index whose document id is the id of
// some row of the block: the first and the last occurrence of each id, so the bounds hold for any
// ids (documents need not be contiguous). O(B T).
template <typename acc_t>
void document_bounds(Problem<acc_t>& p, const int32_t* doc) {
  p.doc = doc;
  const int64_t blocks = p.row_blocks();
  p.key_lo.assign(p.B * blocks, p.T);
  p.key_hi.assign(p.B * blocks, 0);
  std::unordered_map<int32_t, std::pair<int64_t, int64_t>> span;  // id -> [first, last]
  for (int64_t b = 0; b < p.B; ++b) {
    const int32_t* d = doc + b * p.T;
    span.clear();
    for (int64_t i = 0; i < p.T; ++i) {
      auto [it, fresh] = span.try_emplace(d[i], i, i);
      if (!fresh) it->second.second = i;
    }
    for (int64_t i = 0; i < p.T; ++i) {
      const auto& [first, last] = span.at(d[i]);
      const int64_t k = b * blocks + i / kRowBlock;
      p.key_lo[k] = std::min(p.key_lo[k], first);
      p.key_hi[k] = std::max(p.key_hi[k], last + 1);
    }
  }
}

template <typename acc_t>
Problem<acc_t> make_problem(const at::Tensor& xq, const at::Tensor& xk, const at::Tensor& yq,
                            const at::Tensor& yk, const at::Tensor& key_valid,
                            const RelationKLOptions& options) {
  const auto dtype = c10::CppTypeToScalarType<acc_t>::value;
  Problem<acc_t> p;
  // detach(): plain numeric buffers here, whatever the caller's autograd state. Inputs are
  // upcast once (O(B H T D) extra memory for half precisions, linear in T).
  p.xq_t = xq.detach().to(dtype).contiguous();
  p.xk_t = xk.is_same(xq) ? p.xq_t : xk.detach().to(dtype).contiguous();
  p.yq_t = yq.detach().to(dtype).contiguous();
  p.yk_t = yk.is_same(yq) ? p.yq_t : yk.detach().to(dtype).contiguous();
  p.xq = p.xq_t.template data_ptr<acc_t>(), p.xk = p.xk_t.template data_ptr<acc_t>();
  p.yq = p.yq_t.template data_ptr<acc_t>(), p.yk = p.yk_t.template data_ptr<acc_t>();
  p.key_valid = key_valid.defined() ? key_valid.data_ptr<bool>() : nullptr;
  p.B = xq.size(0), p.H = xq.size(1), p.T = xq.size(2), p.Ds = xq.size(3);
  p.Hk = xk.size(1), p.Hkt = yk.size(1), p.Dt = yq.size(3);
  p.scale_s = static_cast<acc_t>(options.scale_s);
  p.scale_t = static_cast<acc_t>(options.scale_t);
  p.causal = options.causal;
  if (options.doc_ids) document_bounds(p, options.doc_ids->data_ptr<int32_t>());
  return p;
}

// Scratch of one worker: the two logit tiles, the packing buffer and the running statistics of
// one row block. Its size depends on the tile and D only, never on T.
template <typename acc_t>
struct Workspace {
  std::vector<acc_t> s, t;      // (kRowBlock, kKeyTile) unscaled student / teacher logits
  std::vector<acc_t> pack;      // packed B panel of the largest tile product
  std::vector<acc_t> m_s, m_t;  // (kRowBlock) running maxima of the scaled logits
  std::vector<double> l_s, l_t;  // (kRowBlock) sum exp(logit - running max)
  std::vector<double> a;         // (kRowBlock) KL accumulator, see row_block_statistics
  int64_t bn = 0;               // width of the current tiles (row stride of s and t)

  explicit Workspace(const Problem<acc_t>& p)
      : s(kRowBlock * kKeyTile), t(kRowBlock * kKeyTile),
        pack(std::max({packed_size(std::max(p.Ds, p.Dt), kKeyTile),
                       packed_size(kKeyTile, p.Ds), packed_size(kRowBlock, p.Ds)})),
        m_s(kRowBlock), m_t(kRowBlock), l_s(kRowBlock), l_t(kRowBlock), a(kRowBlock) {}

  // Unscaled logits of rows [i0, i0 + bm) x keys [j0, j0 + bn) of (b, h): s = Xq Xk^T, t = Yq Yk^T.
  void logits(const Problem<acc_t>& p, int64_t b, int64_t h, int64_t i0, int64_t bm, int64_t j0,
              int64_t n) {
    bn = n;
    gemm_tile<acc_t>(bm, bn, p.Ds, p.xq_row(b, h, i0), p.Ds, 1, p.xk_row(b, h, j0), 1, p.Ds,
                     s.data(), bn, /*accumulate=*/false, pack.data());
    gemm_tile<acc_t>(bm, bn, p.Dt, p.yq_row(b, h, i0), p.Dt, 1, p.yk_row(b, h, j0), 1, p.Dt,
                     t.data(), bn, /*accumulate=*/false, pack.data());
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
//
// The sums l_s, l_t and A are float64 even for float32 logits: next to the exps they cost
// nothing, and float32 running sums of terms of size ~|t - s| made the float32 KL error up to
// 2.9x that of the materialised float32 implementation (whose vectorised ATen reductions sum in
// many lanes) on the D = 128 cases of the tests, failing the 2x rule.
template <typename acc_t, bool with_kl>
void row_block_statistics(const Problem<acc_t>& p, int64_t b, int64_t h, int64_t i0, int64_t bm,
                          Workspace<acc_t>& w) {
  const acc_t neg_inf = -std::numeric_limits<acc_t>::infinity();
  std::fill(w.m_s.begin(), w.m_s.end(), neg_inf);
  std::fill(w.m_t.begin(), w.m_t.end(), neg_inf);
  std::fill(w.l_s.begin(), w.l_s.end(), 0.0);
  std::fill(w.l_t.begin(), w.l_t.end(), 0.0);
  std::fill(w.a.begin(), w.a.end(), 0.0);
  const int64_t j_end = p.key_end(b, i0, i0 + bm);
  for (int64_t j0 = p.key_begin(b, i0); j0 < j_end; j0 += kKeyTile) {
    const int64_t bn = std::min(kKeyTile, j_end - j0);
    w.logits(p, b, h, i0, bm, j0, bn);
    for (int64_t r = 0; r < bm; ++r) {
      const int64_t i = i0 + r;
      if (!p.valid(b, i)) continue;  // a padded row stays empty: KL 0, LSE -inf
      const int64_t c_end = p.causal ? std::min(bn, i - j0 + 1) : bn;
      const acc_t* s_row = w.s.data() + r * bn;
      const acc_t* t_row = w.t.data() + r * bn;
      acc_t ms_tile = neg_inf, mt_tile = neg_inf;
      for (int64_t c = 0; c < c_end; ++c) {
        if (!p.key_ok(b, i, j0 + c)) continue;
        ms_tile = std::max(ms_tile, p.scale_s * s_row[c]);
        mt_tile = std::max(mt_tile, p.scale_t * t_row[c]);
      }
      if (mt_tile == neg_inf) continue;  // no valid key of this row in this tile
      const acc_t ms_new = std::max(w.m_s[r], ms_tile), mt_new = std::max(w.m_t[r], mt_tile);
      if (w.l_t[r] > 0) {  // rescale the running sums to the new maxima
        const double dms = double(ms_new) - w.m_s[r], dmt = double(mt_new) - w.m_t[r];
        const double alpha_t = std::exp(-dmt);
        if (with_kl) w.a[r] = alpha_t * (w.a[r] - (dmt - dms) * w.l_t[r]);
        w.l_s[r] *= std::exp(-dms);
        w.l_t[r] *= alpha_t;
      }
      double sum_s = 0, sum_t = 0, sum_a = 0;
      for (int64_t c = 0; c < c_end; ++c) {
        if (!p.key_ok(b, i, j0 + c)) continue;
        const acc_t ds = p.scale_s * s_row[c] - ms_new;  // <= 0
        const acc_t dt = p.scale_t * t_row[c] - mt_new;  // <= 0
        const acc_t et = std::exp(dt);
        sum_s += std::exp(ds);
        sum_t += et;
        if (with_kl) sum_a += double(et) * double(dt - ds);
      }
      w.m_s[r] = ms_new, w.m_t[r] = mt_new;
      w.l_s[r] += sum_s, w.l_t[r] += sum_t;
      if (with_kl) w.a[r] += sum_a;
    }
  }
}

// Parallel over (b, h, row block): each task owns its rows of kl, lse_s and lse_t.
template <typename acc_t>
void forward_impl(const Problem<acc_t>& p, acc_t* kl, acc_t* lse_s, acc_t* lse_t) {
  const int64_t row_blocks = (p.T + kRowBlock - 1) / kRowBlock;
  const acc_t neg_inf = -std::numeric_limits<acc_t>::infinity();
  at::parallel_for(0, p.B * p.H * row_blocks, 1, [&](int64_t begin, int64_t end) {
    Workspace<acc_t> w(p);
    for (int64_t task = begin; task < end; ++task) {
      const int64_t b = task / (p.H * row_blocks), h = (task / row_blocks) % p.H;
      const int64_t i0 = (task % row_blocks) * kRowBlock, bm = std::min(kRowBlock, p.T - i0);
      row_block_statistics<acc_t, /*with_kl=*/true>(p, b, h, i0, bm, w);
      const int64_t out0 = (b * p.H + h) * p.T + i0;  // offset of row i0 in (B, H, T)
      for (int64_t r = 0; r < bm; ++r) {
        if (w.l_t[r] > 0) {
          kl[out0 + r] = static_cast<acc_t>(w.a[r] / w.l_t[r] - std::log(w.l_t[r]) +
                                            std::log(w.l_s[r]));
          lse_s[out0 + r] = static_cast<acc_t>(w.m_s[r] + std::log(w.l_s[r]));
          lse_t[out0 + r] = static_cast<acc_t>(w.m_t[r] + std::log(w.l_t[r]));
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
// recomputes its statistics (m, l) from the same logits it then differentiates (gemm_tile is
// bitwise reproducible), and forms p = exp((s - m) - log l): the dominant entry has s - m = 0
// exactly, as in log_softmax. Cost: one extra logit sweep.
//
// Determinism without atomics: one task per (b, key head) owns d_xk[b, kh] and the d_xq rows of
// every query head of its GQA group, and walks heads, row blocks and key tiles in a fixed order.
template <typename acc_t>
void backward_impl(const Problem<acc_t>& p, const acc_t* grad, acc_t* d_xq, acc_t* d_xk) {
  const int64_t row_blocks = (p.T + kRowBlock - 1) / kRowBlock;
  const int64_t group = p.H / p.Hk;
  at::parallel_for(0, p.B * p.Hk, 1, [&](int64_t begin, int64_t end) {
    Workspace<acc_t> w(p);
    std::vector<acc_t> log_l_s(kRowBlock), log_l_t(kRowBlock);
    for (int64_t task = begin; task < end; ++task) {
      const int64_t b = task / p.Hk, kh = task % p.Hk;
      acc_t* dk_head = d_xk + (b * p.Hk + kh) * p.T * p.Ds;  // (T, Ds)
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
              log_l_s[r] = static_cast<acc_t>(std::log(w.l_s[r]));
              log_l_t[r] = static_cast<acc_t>(std::log(w.l_t[r]));
              any_live = true;
            } else {
              w.l_t[r] = 0;
            }
          }
          if (!any_live) continue;
          // Sweep 2: G tiles (written over the student logits) and both gradient products.
          acc_t* dq_rows = d_xq + row0 * p.Ds;  // (bm, Ds)
          const int64_t j_end = p.key_end(b, i0, i0 + bm);
          for (int64_t j0 = p.key_begin(b, i0); j0 < j_end; j0 += kKeyTile) {
            const int64_t bn = std::min(kKeyTile, j_end - j0);
            w.logits(p, b, h, i0, bm, j0, bn);
            for (int64_t r = 0; r < bm; ++r) {
              const int64_t i = i0 + r;
              acc_t* g_row = w.s.data() + r * bn;
              const acc_t* t_row = w.t.data() + r * bn;
              const int64_t c_end = !(w.l_t[r] > 0) ? 0
                                    : p.causal      ? std::clamp<int64_t>(i - j0 + 1, 0, bn)
                                                    : bn;
              const acc_t g = grad[row0 + r];
              for (int64_t c = 0; c < c_end; ++c) {
                if (!p.key_ok(b, i, j0 + c)) {
                  g_row[c] = 0;
                  continue;
                }
                const acc_t ps = std::exp((p.scale_s * g_row[c] - w.m_s[r]) - log_l_s[r]);
                const acc_t pt = std::exp((p.scale_t * t_row[c] - w.m_t[r]) - log_l_t[r]);
                g_row[c] = g * (ps - pt);
              }
              std::fill(g_row + c_end, g_row + bn, acc_t(0));
            }
            // dXq rows += G Xk_tile: A = G (bm, bn), B = key rows (bn, Ds).
            gemm_tile<acc_t>(bm, p.Ds, bn, w.s.data(), bn, 1, p.xk_row(b, h, j0), p.Ds, 1,
                             dq_rows, p.Ds, /*accumulate=*/true, w.pack.data());
            // dXk_tile += G^T Xq rows: A = G^T (bn, bm), B = query rows (bm, Ds).
            gemm_tile<acc_t>(bn, p.Ds, bm, w.s.data(), 1, bn, p.xq_row(b, h, i0), p.Ds, 1,
                             dk_head + j0 * p.Ds, p.Ds, /*accumulate=*/true, w.pack.data());
          }
        }
      }
    }
  });
}

at::ScalarType acc_dtype(const at::Tensor& x) {
  return x.scalar_type() == at::kDouble ? at::kDouble : at::kFloat;
}

at::Tensor mask_or_undefined(const std::optional<at::Tensor>& key_mask) {
  return key_mask ? key_mask->to(at::kBool).contiguous() : at::Tensor();
}

// Returns (d_xq, d_xk) in acc_t. The saved statistics are not needed (see backward_impl).
template <typename acc_t>
std::pair<at::Tensor, at::Tensor> backward_dispatch(const at::Tensor& grad_kl,
                                                    const at::Tensor& xq, const at::Tensor& xk,
                                                    const at::Tensor& yq, const at::Tensor& yk,
                                                    const std::optional<at::Tensor>& key_mask,
                                                    const RelationKLOptions& options) {
  const auto dtype = c10::CppTypeToScalarType<acc_t>::value;
  auto mask = mask_or_undefined(key_mask);
  auto p = make_problem<acc_t>(xq, xk, yq, yk, mask, options);
  auto grad = grad_kl.detach().to(dtype).contiguous();                     // (B, H, T)
  auto d_xq = at::zeros({p.B, p.H, p.T, p.Ds}, at::TensorOptions(dtype));   // (B, H, T, Ds)
  auto d_xk = at::zeros({p.B, p.Hk, p.T, p.Ds}, at::TensorOptions(dtype));  // (B, Hk, T, Ds)
  backward_impl(p, grad.template data_ptr<acc_t>(), d_xq.template data_ptr<acc_t>(),
                d_xk.template data_ptr<acc_t>());
  d_xq.mul_(options.scale_s);
  d_xk.mul_(options.scale_s);
  return {d_xq, d_xk};
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
