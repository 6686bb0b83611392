// Software-pipelined mma.sync forward of the relation KL (sm_80, and sm_90 head dims other than
// 64 / 128 or with LINEARARD_RKL_WGMMA=0; the plain relation_kl_fwd_kernel.cuh serves Ds = Dt = 64,
// where it measured faster).
//
// Same math, tiles and outputs as relation_kl_fwd_kernel.cuh (one CTA per (b h, 16 WARPS query
// rows), online LSEs of both distributions and the KL cross term, anchors §2.5). What differs is
// the order inside a warp: Nsight Compute showed the plain kernel's pipes taking turns (all warps of
// the CTA pass the same block barrier, then all issue mma, then all wait on exp2), so here the
// logits of key tile n+1 are computed while the exponentials of tile n are taken. Each k-step's
// ldmatrix/mma of the next tile is written next to one 8-column slice of the current tile's exp2
// work, in one basic block (no data-dependent branches inside it), so the scheduler can issue the
// MUFU, FMA and tensor instructions side by side. This costs a second pair of logit tiles in
// registers (64 fp32). Two key stages still suffice: tile n + 2 goes into tile n's stage, whose
// logits were computed in step n - 1, before the barrier that opens step n; only the key-valid
// bytes, read by step n's masking, get a third stage.
#pragma once
#include <type_traits>

#include "ops/relation_kl/relation_kl_tile.cuh"

namespace linearard::ops::rkl {

constexpr int kFwdPipeStages = 2;     // key tiles in shared memory
constexpr int kFwdPipeMaskStages = 3;  // their key-valid bytes

// WARPS x 16 query rows per CTA, key tiles of BN (64 or 32) rows.
template <typename Elem, int DS, int DT, int WARPS, int BN>
struct FwdPipeSmem {
  static constexpr int kPS = pitch_of(DS), kPT = pitch_of(DT);
  static constexpr int kBytes =
      (16 * WARPS * (kPS + kPT) + kFwdPipeStages * BN * (kPS + kPT)) * static_cast<int>(sizeof(Elem)) +
      kFwdPipeMaskStages * BN;
};

// One k-step (16 head dims) of acc (16 x BN) += A (16 rows at sA) O^T (BN rows at sO).
template <typename Elem, int P, int BN>
__device__ __forceinline__ void warp_logits_kstep(float (&acc)[BN / 8][4], const Elem* sA,
                                                  const Elem* sO, int kk, int lane) {
  uint32_t a[4];
  ldmatrix_x4(a, smem_addr(sA + (lane & 15) * P + kk * 16 + (lane >> 4) * 8));
#pragma unroll
  for (int np = 0; np < BN / 16; ++np) {
    uint32_t b[4];
    ldmatrix_x4(b, smem_addr(sO + (np * 16 + (lane & 7) + ((lane >> 4) << 3)) * P + kk * 16 +
                             ((lane >> 3) & 1) * 8));
    mma16816<Elem>(acc[2 * np], a, b[0], b[1]);
    mma16816<Elem>(acc[2 * np + 1], a, b[2], b[3]);
  }
}

// grid (B * H, ceil(T / (16 WARPS))), 32 WARPS threads, FwdPipeSmem::kBytes dynamic shared memory.
// MIN_CTAS CTAs per SM (the register cap 64K / (32 WARPS MIN_CTAS)); several CTAs per SM pass
// their barriers at different times. The shape is chosen by measurement
// (relation_kl_launch_template.cuh).
template <typename Elem, int DS, int DT, int WARPS, int BN, int MIN_CTAS>
__global__ void __launch_bounds__(32 * WARPS, MIN_CTAS)
    relation_kl_fwd_pipe_kernel(const __grid_constant__ RelationKLParams p) {
  constexpr int kBlockM = 16 * WARPS, kThreads = 32 * WARPS;
  using S = FwdPipeSmem<Elem, DS, DT, WARPS, BN>;
  constexpr int PS = S::kPS, PT = S::kPT;
  constexpr int KS = DS / 16, KT = DT / 16, KMAX = KS > KT ? KS : KT;
  constexpr int NT = BN / 8;  // 8-column slices of a logit tile
  extern __shared__ __align__(16) unsigned char smem_raw[];
  Elem* sXq = reinterpret_cast<Elem*>(smem_raw);                // (kBlockM, PS)
  Elem* sYq = sXq + kBlockM * PS;                                // (kBlockM, PT)
  Elem* sXk = sYq + kBlockM * PT;                                // (kFwdPipeStages, BN, PS)
  Elem* sYk = sXk + kFwdPipeStages * BN * PS;               // (kFwdPipeStages, BN, PT)
  uint8_t* sKv = reinterpret_cast<uint8_t*>(sYk + kFwdPipeStages * BN * PT);  // (mask stages, BN)

  const int b = blockIdx.x / p.shape.H, h = blockIdx.x % p.shape.H;
  const int mb = p.shape.causal ? gridDim.y - 1 - blockIdx.y : blockIdx.y;  // longest row blocks first
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
  // Packed documents: only the key tiles [t_begin, n_tiles) that meet the rows' documents.
  const int32_t* dk = p.layout.doc_ids ? p.layout.doc_ids + static_cast<int64_t>(b) * T : nullptr;
  const DocSpan span = doc_span(p, b, row0, row0 + kBlockM);
  const int col_end = min(p.shape.causal ? min(T, row0 + kBlockM) : T, span.hi);
  const int t_begin = span.lo / BN;
  const int n_tiles = (col_end + BN - 1) / BN;  // > t_begin (row0 < T, and every row's own key is in span)
  const bool full = p.shape.Ds == DS && p.shape.Dt == DT;  // no run-time bound on the k loop

  load_tile_async<kBlockM, kThreads>(sXq, PS, xq, row0, T, p.shape.Ds);
  load_tile_async<kBlockM, kThreads>(sYq, PT, yq, row0, T, p.shape.Dt);
  auto load_keys = [&](int tile) {
    const int stage = tile % kFwdPipeStages, mstage = tile % kFwdPipeMaskStages;
    load_tile_async<BN, kThreads>(sXk + stage * BN * PS, PS, xk, tile * BN, T, p.shape.Ds);
    load_tile_async<BN, kThreads>(sYk + stage * BN * PT, PT, yk, tile * BN, T, p.shape.Dt);
    for (int j = threadIdx.x; j < BN; j += kThreads) {
      const int col = tile * BN + j;
      sKv[mstage * BN + j] = col < T && (km == nullptr || km[col] != 0);
    }
    cp_async_commit();
  };
  load_keys(t_begin);
  if (n_tiles > t_begin + 1) {
    load_keys(t_begin + 1);
    cp_async_wait<1>();
  } else {
    cp_async_wait<0>();
  }
  __syncthreads();

  RowStats st[2];  // rows g and g + 8 of this warp
  st[0].init();
  st[1].init();
  const float sc_s = p.shape.scale_s_log2, sc_t = p.shape.scale_t_log2;
  const int warp_row0 = row0 + warp * 16;
  const int rdoc[2] = {dk ? doc_of(dk, warp_row0 + g, T) : 0, dk ? doc_of(dk, warp_row0 + g + 8, T) : 0};
  const Elem* sXw = sXq + warp * 16 * PS;
  const Elem* sYw = sYq + warp * 16 * PT;

  // Logits of one tile in one k loop (the first tile, and every tile when D < D_MAX).
  auto logits = [&](auto& s, auto& t, int tile) {
    const int stage = tile % kFwdPipeStages;
    const Elem* sXn = sXk + stage * BN * PS;
    const Elem* sYn = sYk + stage * BN * PT;
#pragma unroll
    for (int c = 0; c < NT; ++c) s[c][0] = s[c][1] = s[c][2] = s[c][3] = t[c][0] = t[c][1] = t[c][2] = t[c][3] = 0.f;
#pragma unroll
    for (int kk = 0; kk < KMAX; ++kk) {
      if (kk < KS && kk * 16 < p.shape.Ds) warp_logits_kstep<Elem, PS, BN>(s, sXw, sXn, kk, lane);
      if (kk < KT && kk * 16 < p.shape.Dt) warp_logits_kstep<Elem, PT, BN>(t, sYw, sYn, kk, lane);
    }
  };

  // Tile n's statistics from (cs, ct); with NEXT, tile n + 1's logits into (ns, nt_) alongside.
  // (The arrays are `auto&`: a generic lambda parameter typed float (&)[NT][4], NT dependent on the
  // kernel's template parameters, crashed nvcc 13.0's front end.)
  auto step = [&](int n, auto next_c, auto& cs, auto& ct, auto& ns, auto& nt_) {
    constexpr bool kNext = decltype(next_c)::value;
    if constexpr (kNext) {
      cp_async_wait<0>();  // tile n + 1 landed (the only group in flight)
      __syncthreads();     // ... for every thread; everyone is done with tile n's keys (step n - 1)
      if (n + 2 < n_tiles) load_keys(n + 2);
    }
    const int mstage = n % kFwdPipeMaskStages;
    const int col0 = n * BN;
    const bool masked =
        km != nullptr || dk != nullptr || col0 + BN > T || (p.shape.causal && col0 + BN - 1 > warp_row0);
    if (masked) {
#pragma unroll
      for (int c = 0; c < NT; ++c)
#pragma unroll
        for (int e = 0; e < 4; ++e) {
          const int j = c * 8 + 2 * q + (e & 1);
          const int row = warp_row0 + g + (e >> 1) * 8;
          const bool ok = sKv[mstage * BN + j] && (!p.shape.causal || col0 + j <= row) &&
                          (dk == nullptr || __ldg(dk + col0 + j) == rdoc[e >> 1]);
          if (!ok) cs[c][e] = ct[c][e] = -INFINITY;
        }
    }
    float ms[2], mt[2];
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      float mx_s = -INFINITY, mx_t = -INFINITY;
#pragma unroll
      for (int c = 0; c < NT; ++c) {
        mx_s = fmaxf(mx_s, fmaxf(cs[c][2 * r], cs[c][2 * r + 1]));
        mx_t = fmaxf(mx_t, fmaxf(ct[c][2 * r], ct[c][2 * r + 1]));
      }
      // scale > 0 (checked by the launcher), so max(x) * scale = max(x * scale).
      st[r].rescale(fmaxf(st[r].m_s, mx_s * sc_s), fmaxf(st[r].m_t, mx_t * sc_t));
      ms[r] = st[r].m_s == -INFINITY ? 0.f : st[r].m_s;
      mt[r] = st[r].m_t == -INFINITY ? 0.f : st[r].m_t;
    }
    // Two partial sums per row and quantity (by column parity): shorter serial FADD chains.
    float l_s[2][2] = {}, l_t[2][2] = {}, a[2][2] = {};
    auto exps = [&](int c) {
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const int r = e >> 1;
        const float ss = fmaf(cs[c][e], sc_s, -ms[r]), tt = fmaf(ct[c][e], sc_t, -mt[r]);
        const float es = exp2f(ss), et = exp2f(tt);
        l_s[r][e & 1] += es;
        l_t[r][e & 1] += et;
        // masked: ss = tt = -inf, et = 0 and (tt - ss) is NaN, so select instead of multiply
        a[r][e & 1] += et > 0.f ? et * (tt - ss) : 0.f;
      }
    };
    if constexpr (kNext) {
      const int nstage = (n + 1) % kFwdPipeStages;
      const Elem* sXn = sXk + nstage * BN * PS;
      const Elem* sYn = sYk + nstage * BN * PT;
      if (full) {
#pragma unroll
        for (int c = 0; c < NT; ++c) ns[c][0] = ns[c][1] = ns[c][2] = ns[c][3] = nt_[c][0] = nt_[c][1] =
            nt_[c][2] = nt_[c][3] = 0.f;
        // Interleave: k-step kk of the next tile, then this tile's columns slice(s) kk.
#pragma unroll
        for (int kk = 0; kk < KMAX; ++kk) {
          if (kk < KS) warp_logits_kstep<Elem, PS, BN>(ns, sXw, sXn, kk, lane);
          if (kk < KT) warp_logits_kstep<Elem, PT, BN>(nt_, sYw, sYn, kk, lane);
#pragma unroll
          for (int c = kk * NT / KMAX; c < (kk + 1) * NT / KMAX; ++c) exps(c);
        }
      } else {
        logits(ns, nt_, n + 1);
#pragma unroll
        for (int c = 0; c < NT; ++c) exps(c);
      }
    } else {
#pragma unroll
      for (int c = 0; c < NT; ++c) exps(c);
    }
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      st[r].l_s += l_s[r][0] + l_s[r][1];
      st[r].l_t += l_t[r][0] + l_t[r][1];
      st[r].a += a[r][0] + a[r][1];
    }
  };

  float sA[NT][4], tA[NT][4], sB[NT][4], tB[NT][4];
  logits(sA, tA, t_begin);
  const std::true_type next;
  const std::false_type last;
  for (int n = t_begin;; n += 2) {
    if (n + 1 >= n_tiles) {
      step(n, last, sA, tA, sB, tB);
      break;
    }
    step(n, next, sA, tA, sB, tB);
    if (n + 2 >= n_tiles) {
      step(n + 1, last, sB, tB, sA, tA);
      break;
    }
    step(n + 1, next, sB, tB, sA, tA);
  }

  store_row_outputs(st, p, static_cast<int64_t>(b * p.shape.H + h) * T, warp_row0, km, lane);
}

}  // namespace linearard::ops::rkl
