// Tile constants and the warp-level pieces shared by the tensor-core forward and backward kernels:
// the logit tile GEMM (S = A B^T over the head dim) and the online softmax/KL statistics.
#pragma once
#include <cuda_runtime.h>

#include <cmath>

#include "ops/relation_kl/relation_kl_mma.cuh"
#include "ops/relation_kl/relation_kl_params.h"

namespace linearard::ops::rkl {

constexpr float kLn2 = 0.693147180559945309f;
constexpr float kLog2e = 1.442695040888963407f;

// ---- Packed documents (RelationKLLayout::doc_ids, doc_span) ----------------------------------------
// [lo, hi): every index of batch row b that shares a document with an index of [i0, i1), from the
// per-granule spans; [0, T) without doc ids. A CTA of anchors [i0, i1) streams only the tiles that
// meet [lo, hi) (the rest are all masked) -- the tile skipping of FlashAttention-2's variable-length
// kernels, here from per-token ids. The relation "same document" is symmetric, so a column CTA
// (anchor keys, streamed rows) uses the same span for its rows.
struct DocSpan {
  int lo, hi;
};
__device__ __forceinline__ DocSpan doc_span(const RelationKLParams& p, int b, int i0, int i1) {
  const int T = p.shape.T;
  if (p.layout.doc_span == nullptr) return {0, T};
  constexpr int G = kRelationKLDocGranule;
  const int n = (T + G - 1) / G;
  const int2* span = reinterpret_cast<const int2*>(p.layout.doc_span) + static_cast<int64_t>(b) * n;
  DocSpan d{T, 0};
  const int g_end = min(n, (min(i1, T) + G - 1) / G);
  for (int g = max(i0, 0) / G; g < g_end; ++g) {
    const int2 v = __ldg(span + g);
    d.lo = min(d.lo, v.x);
    d.hi = max(d.hi, abs(v.y));  // negative: a granule of several documents (tile_in_one_document)
  }
  if (d.lo >= d.hi) d = {0, 0};  // no anchor inside T
  return d;
}
// Whether keys [col0, col0 + n) all lie in the one document of the 16 rows starting at row0 (a
// multiple of kRelationKLDocGranule): then the tile needs no document mask and takes the unmasked
// path of a single-document tile. True without doc ids. From the rows' granule span, whose hi the
// doc-span kernel stores negated unless the granule holds one document that is contiguous.
__device__ __forceinline__ bool tile_in_one_document(const RelationKLParams& p, int b, int row0, int col0,
                                                     int n) {
  if (p.layout.doc_span == nullptr) return true;
  constexpr int G = kRelationKLDocGranule;
  const int n_granules = (p.shape.T + G - 1) / G;
  const int g = row0 / G;
  if (g >= n_granules) return false;
  const int2 v = __ldg(reinterpret_cast<const int2*>(p.layout.doc_span) + static_cast<int64_t>(b) * n_granules + g);
  return v.y > 0 && v.x <= col0 && col0 + n <= v.y;
}
// Document id of index i of batch row b (doc ids present), -1 past T (never compared: such rows and
// keys are masked by the bound checks first).
__device__ __forceinline__ int doc_of(const int32_t* doc, int i, int T) {
  return i < T ? __ldg(doc + i) : -1;
}

// Tile shape of both tensor-core kernels. A warp owns 16 anchor rows (one mma row block) and the
// full kBlockN-wide logit tile; kBlockN = 64 keeps the student and teacher logit tiles at 2 x 32
// fp32 registers per thread next to the 16 x Ds fp32 gradient accumulator (64 registers at
// Ds = 128), inside 255 registers without spills (ptxas -v, see docs/perf.md).
constexpr int kBlockM = 64;   // anchor rows per CTA: 4 warps x 16
constexpr int kBlockN = 64;   // rows of the streamed ("other") operand per tile
constexpr int kWarps = kBlockM / 16;
constexpr int kThreads = kWarps * 32;
// Shared-memory row pitch: +8 elements (16 bytes) so the 8 row addresses of one ldmatrix hit
// 8 different 16-byte bank groups (a 128- or 256-byte row pitch would put them in one).
constexpr int pitch_of(int d_max) { return d_max + 8; }

// The head-dim loops below come in two versions: FULL (D == D_MAX, the common case) has no
// run-time bound in the unrolled loop, so the compiler can hoist the next k-step's ldmatrix over
// the current mma (a run-time `if` per k-step made it wait on shared memory at every step).
// acc (16 x kBlockN fp32, C fragments) = A (the warp's 16 rows at sA) * O^T (kBlockN rows at sO),
// contracted over the first D (<= D_MAX, multiple of 16) columns.
template <typename Elem, int D_MAX, bool FULL>
__device__ __forceinline__ void warp_logits_impl(float (&acc)[kBlockN / 8][4], const Elem* sA,
                                                 const Elem* sO, int D, int lane) {
  constexpr int P = pitch_of(D_MAX);
#pragma unroll
  for (int nt = 0; nt < kBlockN / 8; ++nt) acc[nt][0] = acc[nt][1] = acc[nt][2] = acc[nt][3] = 0.f;
#pragma unroll
  for (int kk = 0; kk < D_MAX / 16; ++kk) {
    if (FULL || kk * 16 < D) {
      uint32_t a[4];
      ldmatrix_x4(a, smem_addr(sA + (lane & 15) * P + kk * 16 + (lane >> 4) * 8));
#pragma unroll
      for (int np = 0; np < kBlockN / 16; ++np) {
        uint32_t b[4];
        ldmatrix_x4(b, smem_addr(sO + (np * 16 + (lane & 7) + ((lane >> 4) << 3)) * P + kk * 16 +
                                 ((lane >> 3) & 1) * 8));
        mma16816<Elem>(acc[2 * np], a, b[0], b[1]);
        mma16816<Elem>(acc[2 * np + 1], a, b[2], b[3]);
      }
    }
  }
}
template <typename Elem, int D_MAX>
__device__ __forceinline__ void warp_logits(float (&acc)[kBlockN / 8][4], const Elem* sA,
                                            const Elem* sO, int D, int lane) {
  if (D == D_MAX)
    warp_logits_impl<Elem, D_MAX, true>(acc, sA, sO, D, lane);
  else
    warp_logits_impl<Elem, D_MAX, false>(acc, sA, sO, D, lane);
}

// Both logit tiles in one k loop (s = Xa Xo^T over Ds, t = Ya Yo^T over Dt): twice the
// independent mma accumulators between two dependent mma, so they wait less on mma latency.
template <typename Elem, int DS, int DT, bool FULL>
__device__ __forceinline__ void warp_logits_pair_impl(float (&s)[kBlockN / 8][4], float (&t)[kBlockN / 8][4],
                                                      const Elem* sXa, const Elem* sXo, const Elem* sYa,
                                                      const Elem* sYo, int Ds, int Dt, int lane) {
  constexpr int PS = pitch_of(DS), PT = pitch_of(DT), KMAX = (DS > DT ? DS : DT) / 16;
#pragma unroll
  for (int nt = 0; nt < kBlockN / 8; ++nt) {
    s[nt][0] = s[nt][1] = s[nt][2] = s[nt][3] = 0.f;
    t[nt][0] = t[nt][1] = t[nt][2] = t[nt][3] = 0.f;
  }
  auto kstep = [&](float (&acc)[kBlockN / 8][4], const Elem* sA, const Elem* sO, int P, int kk) {
    uint32_t a[4];
    ldmatrix_x4(a, smem_addr(sA + (lane & 15) * P + kk * 16 + (lane >> 4) * 8));
#pragma unroll
    for (int np = 0; np < kBlockN / 16; ++np) {
      uint32_t b[4];
      ldmatrix_x4(b, smem_addr(sO + (np * 16 + (lane & 7) + ((lane >> 4) << 3)) * P + kk * 16 +
                               ((lane >> 3) & 1) * 8));
      mma16816<Elem>(acc[2 * np], a, b[0], b[1]);
      mma16816<Elem>(acc[2 * np + 1], a, b[2], b[3]);
    }
  };
#pragma unroll
  for (int kk = 0; kk < KMAX; ++kk) {
    if (kk < DS / 16 && (FULL || kk * 16 < Ds)) kstep(s, sXa, sXo, PS, kk);
    if (kk < DT / 16 && (FULL || kk * 16 < Dt)) kstep(t, sYa, sYo, PT, kk);
  }
}
template <typename Elem, int DS, int DT>
__device__ __forceinline__ void warp_logits_pair(float (&s)[kBlockN / 8][4], float (&t)[kBlockN / 8][4],
                                                 const Elem* sXa, const Elem* sXo, const Elem* sYa,
                                                 const Elem* sYo, int Ds, int Dt, int lane) {
  if (Ds == DS && Dt == DT)
    warp_logits_pair_impl<Elem, DS, DT, true>(s, t, sXa, sXo, sYa, sYo, Ds, Dt, lane);
  else
    warp_logits_pair_impl<Elem, DS, DT, false>(s, t, sXa, sXo, sYa, sYo, Ds, Dt, lane);
}

// One 16-row k-step of acc (16 x D_MAX) += G (16 x 16, C fragments nt = 2 ks, 2 ks + 1 cast to
// Elem) * O (rows ks*16.. at sO, D_MAX dims).
template <typename Elem, int D_MAX, bool FULL>
__device__ __forceinline__ void warp_grad_gemm_kstep(float (&acc)[D_MAX / 8][4], const float (&g)[kBlockN / 8][4],
                                                     const Elem* sO, int D, int lane, int ks) {
  constexpr int P = pitch_of(D_MAX);
  const uint32_t a[4] = {MmaType<Elem>::pack(g[2 * ks][0], g[2 * ks][1]),
                         MmaType<Elem>::pack(g[2 * ks][2], g[2 * ks][3]),
                         MmaType<Elem>::pack(g[2 * ks + 1][0], g[2 * ks + 1][1]),
                         MmaType<Elem>::pack(g[2 * ks + 1][2], g[2 * ks + 1][3])};
#pragma unroll
  for (int dp = 0; dp < D_MAX / 16; ++dp) {
    if (FULL || dp * 16 < D) {
      uint32_t b[4];
      ldmatrix_x4_trans(b, smem_addr(sO + (ks * 16 + (lane & 7) + ((lane >> 3) & 1) * 8) * P + dp * 16 +
                                     (lane >> 4) * 8));
      mma16816<Elem>(acc[2 * dp], a, b[0], b[1]);
      mma16816<Elem>(acc[2 * dp + 1], a, b[2], b[3]);
    }
  }
}

// acc (16 x D_MAX fp32) += G (16 x kBlockN, fp32 C fragments, cast to Elem) * O (kBlockN rows at sO).
template <typename Elem, int D_MAX, bool FULL>
__device__ __forceinline__ void warp_grad_gemm_impl(float (&acc)[D_MAX / 8][4],
                                                    const float (&g)[kBlockN / 8][4],
                                                    const Elem* sO, int D, int lane) {
#pragma unroll
  for (int ks = 0; ks < kBlockN / 16; ++ks) warp_grad_gemm_kstep<Elem, D_MAX, FULL>(acc, g, sO, D, lane, ks);
}
template <typename Elem, int D_MAX>
__device__ __forceinline__ void warp_grad_gemm(float (&acc)[D_MAX / 8][4],
                                               const float (&g)[kBlockN / 8][4], const Elem* sO,
                                               int D, int lane) {
  if (D == D_MAX)
    warp_grad_gemm_impl<Elem, D_MAX, true>(acc, g, sO, D, lane);
  else
    warp_grad_gemm_impl<Elem, D_MAX, false>(acc, g, sO, D, lane);
}

// exp2 in the statistics' precision: float -> ex2.approx (--use_fast_math), double -> accurate.
__device__ __forceinline__ float ex2(float x) { return exp2f(x); }
__device__ __forceinline__ double ex2(double x) { return exp2(x); }

// Running statistics of one row over the keys seen so far, in log2 units (x2 = scale log2(e) x):
//   m_s, m_t  running maxima (-inf while no valid key was seen)
//   l_s, l_t  sum exp2(x2 - m)
//   a         sum exp2(t2 - m_t) ((t2 - m_t) - (s2 - m_s))
// so that at the end KL = ln2 (a / l_t + log2(l_s / l_t)): centring both logits on their own
// running max keeps a O(KL) instead of O(|logit|), and one log of the ratio (in [1/T, T]) replaces
// the difference of two LSEs, avoiding the cancellation of sum p_t (t - s) - lse_t + lse_s.
// F = float in the tensor-core kernels, double in the SIMT kernels.
template <typename F>
struct RowStatsT {
  F m_s, l_s, m_t, l_t, a;
  __device__ __forceinline__ void init() {
    m_s = m_t = -INFINITY;
    l_s = l_t = a = F(0);
  }
  // Re-centres on new maxima (both -inf or both finite: s and t share one mask).
  __device__ __forceinline__ void rescale(F ms_new, F mt_new) {
    if (l_t > F(0)) {
      a = ex2(m_t - mt_new) * (a - ((mt_new - m_t) - (ms_new - m_s)) * l_t);
      l_t *= ex2(m_t - mt_new);
      l_s *= ex2(m_s - ms_new);
    }
    m_s = ms_new;
    m_t = mt_new;
  }
  __device__ __forceinline__ void merge(const RowStatsT& o) {
    if (o.l_t == F(0)) return;
    if (l_t == F(0)) {
      *this = o;
      return;
    }
    const F ms = m_s > o.m_s ? m_s : o.m_s, mt = m_t > o.m_t ? m_t : o.m_t;
    RowStatsT b = o;
    rescale(ms, mt);
    b.rescale(ms, mt);
    l_s += b.l_s;
    l_t += b.l_t;
    a += b.a;
  }
  __device__ __forceinline__ void merge_quad() {  // the 4 lanes of a quad share one row
#pragma unroll
    for (int off = 1; off <= 2; off <<= 1) {
      RowStatsT o;
      o.m_s = __shfl_xor_sync(0xffffffffu, m_s, off);
      o.l_s = __shfl_xor_sync(0xffffffffu, l_s, off);
      o.m_t = __shfl_xor_sync(0xffffffffu, m_t, off);
      o.l_t = __shfl_xor_sync(0xffffffffu, l_t, off);
      o.a = __shfl_xor_sync(0xffffffffu, a, off);
      merge(o);
    }
  }
};
using RowStats = RowStatsT<float>;

// The forward's outputs for the warp's rows warp_row0 + g and + 8 (lane = 4 g + q): merges the
// quad's statistics, then lane q = 0 writes KL and both LSEs at bh_row0 + row (row < T); padded
// rows and rows without a valid key get KL 0 and LSE -inf.
__device__ __forceinline__ void store_row_outputs(RowStats (&st)[2], const RelationKLParams& p,
                                                  int64_t bh_row0, int warp_row0, const uint8_t* km,
                                                  int lane) {
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    st[r].merge_quad();
    const int row = warp_row0 + lane / 4 + 8 * r;
    if (lane % 4 == 0 && row < p.shape.T) {
      const bool valid = st[r].l_s > 0.f && (km == nullptr || km[row] != 0);
      const int64_t o = bh_row0 + row;
      const float log2_ls = __log2f(st[r].l_s), log2_lt = __log2f(st[r].l_t);
      p.layout.kl[o] = valid ? kLn2 * (st[r].a / st[r].l_t + __log2f(st[r].l_s / st[r].l_t)) : 0.f;
      p.layout.lse_s[o] = valid ? kLn2 * (st[r].m_s + log2_ls) : -INFINITY;
      p.layout.lse_t[o] = valid ? kLn2 * (st[r].m_t + log2_lt) : -INFINITY;
    }
  }
}

}  // namespace linearard::ops::rkl
