// Tensor-core forward of the relation KL: one CTA per (batch x head, block of kBlockM query rows);
// streams key tiles of kBlockN (skipping those above the causal diagonal), computes the student
// and teacher logit tiles with mma.sync (fp32 accumulation) and updates both online log-sum-exps
// and the KL cross term in one pass (anchors §2.5). The next key tile is fetched with cp.async
// while the current one is computed (two shared-memory stages).
#pragma once
#include "ops/relation_kl/relation_kl_tile.cuh"

namespace linearard::ops::rkl {

// WARPS warps of 16 query rows each: kBlockM = 16 WARPS rows share every streamed key tile.
template <typename Elem, int DS, int DT, int WARPS>
struct FwdSmem {
  static constexpr int kPS = pitch_of(DS), kPT = pitch_of(DT);
  static constexpr int kBytes =
      (16 * WARPS * (kPS + kPT) + 2 * kBlockN * (kPS + kPT)) * static_cast<int>(sizeof(Elem)) +
      2 * kBlockN;
};

// grid (B * H, ceil(T / (16 WARPS))), 32 WARPS threads, FwdSmem::kBytes dynamic shared memory.
template <typename Elem, int DS, int DT, int WARPS>
__global__ void __launch_bounds__(32 * WARPS) relation_kl_fwd_kernel(const __grid_constant__ RelationKLParams p) {
  constexpr int kBlockM = 16 * WARPS, kThreads = 32 * WARPS;
  using S = FwdSmem<Elem, DS, DT, WARPS>;
  constexpr int PS = S::kPS, PT = S::kPT;
  extern __shared__ __align__(16) unsigned char smem_raw[];
  Elem* sXq = reinterpret_cast<Elem*>(smem_raw);  // (kBlockM, PS)
  Elem* sYq = sXq + kBlockM * PS;                  // (kBlockM, PT)
  Elem* sXk = sYq + kBlockM * PT;                  // (2, kBlockN, PS)
  Elem* sYk = sXk + 2 * kBlockN * PS;              // (2, kBlockN, PT)
  uint8_t* sKv = reinterpret_cast<uint8_t*>(sYk + 2 * kBlockN * PT);  // (2, kBlockN) key valid

  const int b = blockIdx.x / p.shape.H, h = blockIdx.x % p.shape.H;
  // Causal: the last row blocks have the most key tiles; launch them first (tail balance).
  const int mb = p.shape.causal ? gridDim.y - 1 - blockIdx.y : blockIdx.y;
  const int row0 = mb * kBlockM;
  const int T = p.shape.T;
  const int hk = h / (p.shape.H / p.shape.Hk), hkt = h / (p.shape.H / p.shape.Hkt);
  const Elem* xq =
      static_cast<const Elem*>(p.layout.xq) + static_cast<int64_t>(b * p.shape.H + h) * T * p.shape.Ds;
  const Elem* yq =
      static_cast<const Elem*>(p.layout.yq) + static_cast<int64_t>(b * p.shape.H + h) * T * p.shape.Dt;
  const Elem* xk =
      static_cast<const Elem*>(p.layout.xk) + static_cast<int64_t>(b * p.shape.Hk + hk) * T * p.shape.Ds;
  const Elem* yk =
      static_cast<const Elem*>(p.layout.yk) + static_cast<int64_t>(b * p.shape.Hkt + hkt) * T * p.shape.Dt;
  const uint8_t* km = p.layout.key_mask ? p.layout.key_mask + static_cast<int64_t>(b) * T : nullptr;

  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int g = lane / 4, q = lane % 4;
  // Packed documents: only the key tiles that meet the rows' documents (doc_span).
  const int32_t* dk = p.layout.doc_ids ? p.layout.doc_ids + static_cast<int64_t>(b) * T : nullptr;
  const DocSpan span = doc_span(p, b, row0, row0 + kBlockM);
  const int col_end = min(p.shape.causal ? min(T, row0 + kBlockM) : T, span.hi);
  const int t_begin = span.lo / kBlockN;
  const int n_tiles = (col_end + kBlockN - 1) / kBlockN;

  load_tile_async<kBlockM, kThreads>(sXq, PS, xq, row0, T, p.shape.Ds);
  load_tile_async<kBlockM, kThreads>(sYq, PT, yq, row0, T, p.shape.Dt);
  auto load_keys = [&](int tile, int stage) {
    load_tile_async<kBlockN, kThreads>(sXk + stage * kBlockN * PS, PS, xk, tile * kBlockN, T, p.shape.Ds);
    load_tile_async<kBlockN, kThreads>(sYk + stage * kBlockN * PT, PT, yk, tile * kBlockN, T, p.shape.Dt);
    for (int j = threadIdx.x; j < kBlockN; j += kThreads) {
      const int col = tile * kBlockN + j;
      sKv[stage * kBlockN + j] = col < T && (km == nullptr || km[col] != 0);
    }
    cp_async_commit();
  };
  load_keys(t_begin, 0);

  RowStats st[2];  // rows g and g + 8 of this warp
  st[0].init();
  st[1].init();
  const float sc_s = p.shape.scale_s_log2, sc_t = p.shape.scale_t_log2;
  const int warp_row0 = row0 + warp * 16;
  const int rdoc[2] = {dk ? doc_of(dk, warp_row0 + g, T) : 0, dk ? doc_of(dk, warp_row0 + g + 8, T) : 0};

  for (int tile = t_begin; tile < n_tiles; ++tile) {
    const int stage = (tile - t_begin) & 1;
    cp_async_wait_all();
    __syncthreads();  // tile `tile` visible to all; everyone is done with stage^1
    if (tile + 1 < n_tiles) load_keys(tile + 1, stage ^ 1);

    float s[kBlockN / 8][4], t[kBlockN / 8][4];
    warp_logits_pair<Elem, DS, DT>(s, t, sXq + warp * 16 * PS, sXk + stage * kBlockN * PS,
                                   sYq + warp * 16 * PT, sYk + stage * kBlockN * PT, p.shape.Ds, p.shape.Dt,
                                   lane);

    const int col0 = tile * kBlockN;
    const bool masked = km != nullptr || dk != nullptr || col0 + kBlockN > T ||
                        (p.shape.causal && col0 + kBlockN - 1 > warp_row0);
    if (masked) {
#pragma unroll
      for (int nt = 0; nt < kBlockN / 8; ++nt)
#pragma unroll
        for (int e = 0; e < 4; ++e) {
          const int j = nt * 8 + 2 * q + (e & 1);
          const int row = warp_row0 + g + (e >> 1) * 8;
          const bool ok = sKv[stage * kBlockN + j] && (!p.shape.causal || col0 + j <= row) &&
                          (dk == nullptr || __ldg(dk + col0 + j) == rdoc[e >> 1]);
          if (!ok) s[nt][e] = t[nt][e] = -INFINITY;
        }
    }
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      float mx_s = -INFINITY, mx_t = -INFINITY;
#pragma unroll
      for (int nt = 0; nt < kBlockN / 8; ++nt) {
        mx_s = fmaxf(mx_s, fmaxf(s[nt][2 * r], s[nt][2 * r + 1]));
        mx_t = fmaxf(mx_t, fmaxf(t[nt][2 * r], t[nt][2 * r + 1]));
      }
      // scale > 0 (checked by the launcher), so max(x) * scale = max(x * scale).
      st[r].rescale(fmaxf(st[r].m_s, mx_s * sc_s), fmaxf(st[r].m_t, mx_t * sc_t));
      const float ms = st[r].m_s == -INFINITY ? 0.f : st[r].m_s;
      const float mt = st[r].m_t == -INFINITY ? 0.f : st[r].m_t;
      // Two partial sums per quantity (by column parity): halves the serial FADD chains.
      float l_s[2] = {0.f, 0.f}, l_t[2] = {0.f, 0.f}, a[2] = {0.f, 0.f};
#pragma unroll
      for (int nt = 0; nt < kBlockN / 8; ++nt)
#pragma unroll
        for (int e = 2 * r; e < 2 * r + 2; ++e) {
          const float ss = fmaf(s[nt][e], sc_s, -ms), tt = fmaf(t[nt][e], sc_t, -mt);
          const float es = exp2f(ss), et = exp2f(tt);
          l_s[e & 1] += es;
          l_t[e & 1] += et;
          // masked: ss = tt = -inf, et = 0 and (tt - ss) is NaN, so select instead of multiply
          a[e & 1] += masked ? (et > 0.f ? et * (tt - ss) : 0.f) : et * (tt - ss);
        }
      st[r].l_s += l_s[0] + l_s[1];
      st[r].l_t += l_t[0] + l_t[1];
      st[r].a += a[0] + a[1];
    }
  }

  store_row_outputs(st, p, static_cast<int64_t>(b * p.shape.H + h) * T, warp_row0, km, lane);
}

}  // namespace linearard::ops::rkl
