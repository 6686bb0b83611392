// Tensor-core backward of the relation KL, deterministic and atomic-free. With
// G_ij = g_i scale_s (p_s,ij - p_t,ij) recomputed from the saved LSEs (no pre-pass: the rows of a
// softmax sum to 1, anchors §2.5), each CTA owns kBlockM "anchor" rows and keeps their gradient
// (kBlockM x Ds, fp32) in registers for its whole life:
//   row pass     anchors are queries i, streamed tiles are keys j <= i:   acc_i += sum_j G_ij xk_j
//   column pass  anchors are keys j, streamed tiles are queries i >= j of every query head of the
//                key head's GQA group (the logit tile is computed transposed): acc_j += sum_i G_ij xq_i
// kRows runs the row pass, kColumns the column pass, kSelf (xq = xk) both into one accumulator, so
// dX = scale_s (G + G^T) X is written once. Every output row is written by exactly one CTA in a
// fixed order: two runs are bitwise equal. (The launcher sends kSelf to the one-recompute kernel
// of relation_kl_bwd_self_kernel.cuh instead, docs/perf.md; kSelf here is unused on that path.)
#pragma once
#include "ops/relation_kl/relation_kl_tile.cuh"

namespace linearard::ops::rkl {

template <typename Elem, int DS, int DT>
struct BwdSmem {
  static constexpr int kPS = pitch_of(DS), kPT = pitch_of(DT);
  static constexpr int kElemBytes =
      (kBlockM * (kPS + kPT) + 2 * kBlockN * (kPS + kPT)) * static_cast<int>(sizeof(Elem));
  // + per streamed row: lse_s, lse_t (log2 units), g scale_s (fp32), key valid (byte); 2 stages
  static constexpr int kBytes = kElemBytes + 2 * kBlockN * (3 * 4 + 1);
};

template <typename Elem, int DS, int DT>
struct BwdCta {
  using S = BwdSmem<Elem, DS, DT>;
  static constexpr int PS = S::kPS, PT = S::kPT;
  const RelationKLParams& p;
  Elem *sXa, *sYa, *sXo, *sYo;  // anchors (kBlockM, P); streamed (2, kBlockN, P)
  float *sLs, *sLt, *sG;        // (2, kBlockN) streamed rows' statistics (column pass)
  uint8_t* sKv;                 // (2, kBlockN) streamed keys' validity (row pass)
  int b, row0, warp, lane, g, q;
  float acc[DS / 8][4];

  __device__ BwdCta(const RelationKLParams& params, unsigned char* smem) : p(params) {
    sXa = reinterpret_cast<Elem*>(smem);
    sYa = sXa + kBlockM * PS;
    sXo = sYa + kBlockM * PT;
    sYo = sXo + 2 * kBlockN * PS;
    sLs = reinterpret_cast<float*>(smem + S::kElemBytes);
    sLt = sLs + 2 * kBlockN;
    sG = sLt + 2 * kBlockN;
    sKv = reinterpret_cast<uint8_t*>(sG + 2 * kBlockN);
    warp = threadIdx.x / 32;
    lane = threadIdx.x % 32;
    g = lane / 4;
    q = lane % 4;
#pragma unroll
    for (int nt = 0; nt < DS / 8; ++nt) acc[nt][0] = acc[nt][1] = acc[nt][2] = acc[nt][3] = 0.f;
  }

  // Statistics of query row `row` of head h as (lse_s, lse_t in log2 units, g scale_s); invalid
  // rows (padded, no valid key, or past T) get lse = +inf and g = 0, so their G is exactly 0.
  __device__ __forceinline__ void row_stats(int h, int row, const uint8_t* km, float& ls, float& lt,
                                            float& gs) const {
    ls = lt = INFINITY;
    gs = 0.f;
    if (row >= p.shape.T || (km != nullptr && km[row] == 0)) return;
    const int64_t o = static_cast<int64_t>(b * p.shape.H + h) * p.shape.T + row;
    const float lse_s = p.layout.lse_s[o];
    if (lse_s == -INFINITY) return;
    ls = lse_s * kLog2e;
    lt = p.layout.lse_t[o] * kLog2e;
    gs = p.layout.grad_kl[o] * p.shape.scale_s;
  }

  // One pass over streamed tiles [t_begin, t_end). kRow: streamed rows are keys (xo, yo = key
  // heads), anchors are queries of head h. Column: streamed rows are queries of head h.
  template <bool kRow>
  __device__ void pass(int h, const Elem* xo, const Elem* yo, int t_begin, int t_end) {
    const int T = p.shape.T;
    const uint8_t* km = p.layout.key_mask ? p.layout.key_mask + static_cast<int64_t>(b) * T : nullptr;
    const int32_t* dk = p.layout.doc_ids ? p.layout.doc_ids + static_cast<int64_t>(b) * T : nullptr;
    const int warp_row0 = row0 + warp * 16;
    // Per-thread anchor rows (g, g + 8): row pass needs their statistics, column pass their key
    // validity; both their document (packed documents).
    float a_ls[2], a_lt[2], a_g[2];
    bool a_kv[2];
    int a_doc[2];
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      const int row = warp_row0 + g + 8 * r;
      if (kRow) row_stats(h, row, km, a_ls[r], a_lt[r], a_g[r]);
      a_kv[r] = row < T && (km == nullptr || km[row] != 0);
      a_doc[r] = dk ? doc_of(dk, row, T) : 0;
    }
    auto load = [&](int tile, int stage) {
      load_tile_async<kBlockN, kThreads>(sXo + stage * kBlockN * PS, PS, xo, tile * kBlockN, T, p.shape.Ds);
      load_tile_async<kBlockN, kThreads>(sYo + stage * kBlockN * PT, PT, yo, tile * kBlockN, T, p.shape.Dt);
      for (int j = threadIdx.x; j < kBlockN; j += kThreads) {
        const int row = tile * kBlockN + j;
        if (kRow) {
          sKv[stage * kBlockN + j] = row < T && (km == nullptr || km[row] != 0);
        } else {
          row_stats(h, row, km, sLs[stage * kBlockN + j], sLt[stage * kBlockN + j],
                    sG[stage * kBlockN + j]);
        }
      }
      cp_async_commit();
    };
    if (t_begin >= t_end) return;
    __syncthreads();  // the previous pass is done with the streamed buffers
    load(t_begin, 0);
    const float sc_s = p.shape.scale_s_log2, sc_t = p.shape.scale_t_log2;
    for (int tile = t_begin; tile < t_end; ++tile) {
      const int stage = (tile - t_begin) & 1;
      cp_async_wait_all();
      __syncthreads();
      if (tile + 1 < t_end) load(tile + 1, stage ^ 1);

      float s[kBlockN / 8][4], t[kBlockN / 8][4];
      warp_logits<Elem, DS>(s, sXa + warp * 16 * PS, sXo + stage * kBlockN * PS, p.shape.Ds, lane);
      warp_logits<Elem, DT>(t, sYa + warp * 16 * PT, sYo + stage * kBlockN * PT, p.shape.Dt, lane);

      const int col0 = tile * kBlockN;
      // Element (anchor row ra, streamed row c): query/key are (ra, c) in the row pass, (c, ra) in
      // the column pass. Causal needs key <= query.
      const bool masked = km != nullptr || dk != nullptr || col0 + kBlockN > T ||
                          (p.shape.causal && (kRow ? col0 + kBlockN - 1 > warp_row0
                                             : warp_row0 + 15 > col0));
#pragma unroll
      for (int nt = 0; nt < kBlockN / 8; ++nt)
#pragma unroll
        for (int e = 0; e < 4; ++e) {
          const int r = e >> 1, j = nt * 8 + 2 * q + (e & 1);
          float ls, lt, gs;
          if (kRow) {
            ls = a_ls[r]; lt = a_lt[r]; gs = a_g[r];
          } else {
            ls = sLs[stage * kBlockN + j]; lt = sLt[stage * kBlockN + j]; gs = sG[stage * kBlockN + j];
          }
          const float ps = exp2f(fmaf(s[nt][e], sc_s, -ls));
          const float pt = exp2f(fmaf(t[nt][e], sc_t, -lt));
          float gij = gs * (ps - pt);
          if (masked) {
            const int ra = warp_row0 + g + 8 * r, c = col0 + j;
            const bool ok = (kRow ? (sKv[stage * kBlockN + j] && (!p.shape.causal || c <= ra))
                                  : (a_kv[r] && c < T && (!p.shape.causal || ra <= c))) &&
                            (dk == nullptr || __ldg(dk + c) == a_doc[r]);
            if (!ok) gij = 0.f;  // a select: masked logits may overflow exp2 to inf
          }
          s[nt][e] = gij;
        }
      warp_grad_gemm<Elem, DS>(acc, s, sXo + stage * kBlockN * PS, p.shape.Ds, lane);
    }
  }

  __device__ void store(Elem* out) const {
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      const int row = row0 + warp * 16 + g + 8 * r;
      if (row >= p.shape.T) continue;
      Elem* o = out + static_cast<int64_t>(row) * p.shape.Ds;
#pragma unroll
      for (int nt = 0; nt < DS / 8; ++nt)
        if (nt * 8 < p.shape.Ds)
          MmaType<Elem>::store2(o + nt * 8 + 2 * q, acc[nt][2 * r], acc[nt][2 * r + 1]);
    }
  }
};

// grid (B * Hx, ceil(T / kBlockM)) with Hx = Hk for kColumns, H otherwise; kThreads threads.
template <typename Elem, int DS, int DT>
__global__ void __launch_bounds__(kThreads) relation_kl_bwd_kernel(const __grid_constant__ RelationKLParams p) {
  extern __shared__ __align__(16) unsigned char smem_raw[];
  BwdCta<Elem, DS, DT> cta(p, smem_raw);
  constexpr int PS = BwdCta<Elem, DS, DT>::PS, PT = BwdCta<Elem, DS, DT>::PT;
  const int T = p.shape.T;
  const int heads = p.launch.mode == RelationKLBwdMode::kColumns ? p.shape.Hk : p.shape.H;
  const int ha = blockIdx.x % heads;
  cta.b = blockIdx.x / heads;
  const int b = cta.b;
  // Row-only causal launches: the last row blocks stream the most tiles, so they go first. The
  // column pass is heaviest for the first blocks already; kSelf does ~nb tiles in every CTA.
  const int ab =
      (p.shape.causal && p.launch.mode == RelationKLBwdMode::kRows) ? gridDim.y - 1 - blockIdx.y : blockIdx.y;
  cta.row0 = ab * kBlockM;
  const int n_tiles = (T + kBlockN - 1) / kBlockN;
  // Packed documents: the streamed tiles that meet the anchors' documents (keys in the row pass,
  // queries in the column pass; "same document" is symmetric).
  const DocSpan span = doc_span(p, b, cta.row0, cta.row0 + kBlockM);
  const Elem* xq = static_cast<const Elem*>(p.layout.xq);
  const Elem* xk = static_cast<const Elem*>(p.layout.xk);
  const Elem* yq = static_cast<const Elem*>(p.layout.yq);
  const Elem* yk = static_cast<const Elem*>(p.layout.yk);
  auto head_ptr = [&](const Elem* base, int num_heads, int head, int D) {
    return base + static_cast<int64_t>(b * num_heads + head) * T * D;
  };

  if (p.launch.mode != RelationKLBwdMode::kColumns) {  // anchors = query rows of head ha
    const int h = ha, hk = h / (p.shape.H / p.shape.Hk), hkt = h / (p.shape.H / p.shape.Hkt);
    load_tile_async<kBlockM, kThreads>(cta.sXa, PS, head_ptr(xq, p.shape.H, h, p.shape.Ds), cta.row0, T,
                                       p.shape.Ds);
    load_tile_async<kBlockM, kThreads>(cta.sYa, PT, head_ptr(yq, p.shape.H, h, p.shape.Dt), cta.row0, T,
                                       p.shape.Dt);
    const int col_end = min(p.shape.causal ? min(T, cta.row0 + kBlockM) : T, span.hi);
    cta.template pass<true>(h, head_ptr(xk, p.shape.Hk, hk, p.shape.Ds),
                            head_ptr(yk, p.shape.Hkt, hkt, p.shape.Dt), span.lo / kBlockN,
                            (col_end + kBlockN - 1) / kBlockN);
  }
  if (p.launch.mode != RelationKLBwdMode::kRows) {  // anchors = key rows of key head hk
    const int hk = ha;
    const int group = p.shape.H / p.shape.Hk;
    const int t_begin = max(p.shape.causal ? cta.row0 / kBlockN : 0, span.lo / kBlockN);
    const int t_end = min(n_tiles, (span.hi + kBlockN - 1) / kBlockN);
    int loaded_hkt = -1;
    for (int h = hk * group; h < (hk + 1) * group; ++h) {
      const int hkt = h / (p.shape.H / p.shape.Hkt);
      if (p.launch.mode != RelationKLBwdMode::kSelf && hkt != loaded_hkt) {
        __syncthreads();  // everyone is done with the previous anchors
        if (loaded_hkt < 0)
          load_tile_async<kBlockM, kThreads>(cta.sXa, PS, head_ptr(xk, p.shape.Hk, hk, p.shape.Ds), cta.row0,
                                             T, p.shape.Ds);
        load_tile_async<kBlockM, kThreads>(cta.sYa, PT, head_ptr(yk, p.shape.Hkt, hkt, p.shape.Dt), cta.row0,
                                           T, p.shape.Dt);
        loaded_hkt = hkt;
      }
      cta.template pass<false>(h, head_ptr(xq, p.shape.H, h, p.shape.Ds),
                               head_ptr(yq, p.shape.H, h, p.shape.Dt), t_begin, t_end);
    }
  }
  const int out_heads = p.launch.mode == RelationKLBwdMode::kColumns ? p.shape.Hk : p.shape.H;
  cta.store(static_cast<Elem*>(p.layout.d_out) + static_cast<int64_t>(b * out_heads + ha) * T * p.shape.Ds);
}

}  // namespace linearard::ops::rkl
