// Relation-KL forward for Hopper (sm_90a): the logit tiles come from warpgroup MMAs (wgmma) that
// read both operands from swizzled shared memory, asynchronously, so the tensor cores compute key
// tile n + 1 while the warps take the exponentials of tile n. Same math, statistics and outputs as
// relation_kl_fwd_pipe_kernel.cuh (anchors §2.5; RowStats in relation_kl_tile.cuh).
//
// CTA: WG warpgroups x 64 query rows (warpgroup w owns rows 64 w ..), 128 WG threads; key tiles of
// 64 rows stream through kFwdWgStages shared-memory stages, copied with cp.async by all threads.
// Per key tile and warpgroup: Ds/16 + Dt/16 wgmma m64n64k16 into two 32-register accumulator
// sets (student s, teacher t); two such pairs alternate (tile n's being read while tile n + 1's is
// written). Only Ds, Dt in {64, 128} (the launcher's check); other head dims run the mma.sync kernels.
#pragma once
#include <type_traits>

#include "ops/relation_kl/relation_kl_tile.cuh"
#include "ops/relation_kl/relation_kl_wgmma.cuh"

namespace linearard::ops::rkl {

constexpr int kFwdWgKeys = 64;    // key rows per tile (the wgmma N)
constexpr int kFwdWgStages = 3;   // key tiles in shared memory: n (read by wgmma), n + 1, n + 2 (loading)

template <typename Elem, int DS, int DT, int WG>
struct FwdWgmmaSmem {
  static constexpr int kRows = 64 * WG;
  static constexpr int kQueryBytes = kRows * (DS + DT) * 2;        // swizzled Xq, Yq
  static constexpr int kStageBytes = kFwdWgKeys * (DS + DT) * 2;   // swizzled Xk, Yk of one tile
  static constexpr int kMaskOffset = kQueryBytes + kFwdWgStages * kStageBytes;
  static constexpr int kDocOffset = kMaskOffset + kFwdWgStages * kFwdWgKeys;  // 4-byte aligned
  // + key-valid bytes and key document ids per stage, + 1024 so the tiles can start on a 1024-byte
  // boundary
  static constexpr int kBytes = kDocOffset + kFwdWgStages * kFwdWgKeys * 4 + kSw128AtomBytes;
};

// grid (B * H, ceil(T / (64 WG))), 128 WG threads, FwdWgmmaSmem::kBytes dynamic shared memory.
template <typename Elem, int DS, int DT, int WG>
__global__ void __launch_bounds__(128 * WG, 1)
    relation_kl_fwd_wgmma_kernel(const __grid_constant__ RelationKLParams p) {
#ifdef RKL_WGMMA_ENABLED
  using S = FwdWgmmaSmem<Elem, DS, DT, WG>;
  constexpr int kRows = S::kRows, kThreads = 128 * WG, BN = kFwdWgKeys, NT = BN / 8;
  extern __shared__ __align__(16) unsigned char smem_raw[];
  const uint32_t raw = smem_addr(smem_raw);
  const uint32_t base = (raw + kSw128AtomBytes - 1) & ~static_cast<uint32_t>(kSw128AtomBytes - 1);
  const uint32_t sXq = base;                       // (kRows, DS) swizzled
  const uint32_t sYq = sXq + kRows * DS * 2;       // (kRows, DT)
  const uint32_t sKeys = base + S::kQueryBytes;    // (stages) x [(BN, DS) Xk, (BN, DT) Yk]
  uint8_t* sKv = smem_raw + (base - raw) + S::kMaskOffset;  // (stages, BN) key valid
  int32_t* sKd = reinterpret_cast<int32_t*>(smem_raw + (base - raw) + S::kDocOffset);  // (stages, BN) key documents

  const int b = blockIdx.x / p.shape.H, h = blockIdx.x % p.shape.H;
  const int mb = p.shape.causal ? gridDim.y - 1 - blockIdx.y : blockIdx.y;  // longest row blocks first
  const int row0 = mb * kRows;
  const int T = p.shape.T;
  const int hk = h / (p.shape.H / p.shape.Hk), hkt = h / (p.shape.H / p.shape.Hkt);
  const Elem* xq = static_cast<const Elem*>(p.layout.xq) + static_cast<int64_t>(b * p.shape.H + h) * T * DS;
  const Elem* yq = static_cast<const Elem*>(p.layout.yq) + static_cast<int64_t>(b * p.shape.H + h) * T * DT;
  const Elem* xk = static_cast<const Elem*>(p.layout.xk) + static_cast<int64_t>(b * p.shape.Hk + hk) * T * DS;
  const Elem* yk =
      static_cast<const Elem*>(p.layout.yk) + static_cast<int64_t>(b * p.shape.Hkt + hkt) * T * DT;
  const uint8_t* km = p.layout.key_mask ? p.layout.key_mask + static_cast<int64_t>(b) * T : nullptr;

  const int wg = warpgroup_index(), warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int g = lane / 4, q = lane % 4;
  const int wg_row0 = row0 + 64 * wg, warp_row0 = wg_row0 + 16 * (warp % 4);
  // Packed documents: only the key tiles [t_begin, n_tiles) that meet the CTA's rows' documents.
  const int32_t* dk = p.layout.doc_ids ? p.layout.doc_ids + static_cast<int64_t>(b) * T : nullptr;
  const DocSpan span = doc_span(p, b, row0, row0 + kRows);
  const int col_end = min(p.shape.causal ? min(T, row0 + kRows) : T, span.hi);
  const int t_begin = span.lo / BN;
  const int rdoc[2] = {dk ? doc_of(dk, warp_row0 + g, T) : 0, dk ? doc_of(dk, warp_row0 + g + 8, T) : 0};
  // Both warpgroups take all n_tiles key tiles (causal: warpgroup 0's last one is fully masked, ~1.5 %
  // of the work at T = 4096): every wgmma is then issued on one straight path, which ptxas needs to
  // overlap them with the exponentials (on a path it cannot prove uniform it serializes them).
  const int n_tiles = (col_end + BN - 1) / BN;  // > t_begin (row0 < T)

  load_tile_sw128_async<kRows, DS, kThreads>(sXq, xq, row0, T);
  load_tile_sw128_async<kRows, DT, kThreads>(sYq, yq, row0, T);
  auto load_keys = [&](int tile) {
    const int stage = tile % kFwdWgStages;
    const uint32_t st = sKeys + stage * S::kStageBytes;
    load_tile_sw128_async<BN, DS, kThreads>(st, xk, tile * BN, T);
    load_tile_sw128_async<BN, DT, kThreads>(st + BN * DS * 2, yk, tile * BN, T);
    for (int j = threadIdx.x; j < BN; j += kThreads) {
      const int col = tile * BN + j;
      sKv[stage * BN + j] = col < T && (km == nullptr || km[col] != 0);
      if (dk != nullptr) sKd[stage * BN + j] = doc_of(dk, col, T);
    }
    cp_async_commit();
  };
  load_keys(t_begin);
  if (n_tiles > t_begin + 1) load_keys(t_begin + 1);

  // Issues tile `tile`'s logits (student into s, teacher into t) as one wgmma group.
  auto issue = [&](int tile, auto& s, auto& t) {
    wgmma_logit_pair<Elem, DS, DT, kRows, BN>(s, t, sXq + 64 * wg * kSw128RowBytes, sYq + 64 * wg * kSw128RowBytes,
                                              sKeys + (tile % kFwdWgStages) * S::kStageBytes);
  };
  // Before tile n + 1's logits: it has landed for every thread, and every warpgroup is done with
  // tile n - 1's stage, which tile n + 2 then loads into.
  auto sync_and_load = [&](int n) {
    cp_async_wait<0>();  // tile n + 1 (the only group in flight)
    fence_proxy_async_shared();
    __syncthreads();
    if (n + 2 < n_tiles) load_keys(n + 2);
  };

  RowStats st[2];  // rows g and g + 8 of this warp
  st[0].init();
  st[1].init();
  const float sc_s = p.shape.scale_s_log2, sc_t = p.shape.scale_t_log2;

  // Tile n's statistics from its logits (cs, ct), read only: an ordinary write to a wgmma's
  // accumulator registers serializes the wgmma (ptxas C7515), so masking is a select on the way.
  // MASKED (a template constant, so unmasked tiles carry no per-element mask code): tiles that hold
  // padded or out-of-range keys, or keys past a row (causal).
  auto process_impl = [&](int n, auto& cs, auto& ct, auto masked_c) {
    constexpr bool kMasked = decltype(masked_c)::value;
    const int mstage = n % kFwdWgStages;
    const int col0 = n * BN;
    auto keep = [&](int c, int e) {
      const int j = c * 8 + 2 * q + (e & 1);
      return !kMasked ||
             (sKv[mstage * BN + j] && (!p.shape.causal || col0 + j <= warp_row0 + g + (e >> 1) * 8) &&
              (dk == nullptr || sKd[mstage * BN + j] == rdoc[e >> 1]));
    };
    float ms[2], mt[2];
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      float mx_s[2] = {-INFINITY, -INFINITY}, mx_t[2] = {-INFINITY, -INFINITY};
#pragma unroll
      for (int c = 0; c < NT; ++c)
#pragma unroll
        for (int e = 2 * r; e < 2 * r + 2; ++e) {
          const bool k = keep(c, e);
          mx_s[c & 1] = fmaxf(mx_s[c & 1], k ? cs[4 * c + e] : -INFINITY);
          mx_t[c & 1] = fmaxf(mx_t[c & 1], k ? ct[4 * c + e] : -INFINITY);
        }
      // scale > 0 (checked by the launcher), so max(x) * scale = max(x * scale).
      st[r].rescale(fmaxf(st[r].m_s, fmaxf(mx_s[0], mx_s[1]) * sc_s),
                    fmaxf(st[r].m_t, fmaxf(mx_t[0], mx_t[1]) * sc_t));
      ms[r] = st[r].m_s == -INFINITY ? 0.f : st[r].m_s;
      mt[r] = st[r].m_t == -INFINITY ? 0.f : st[r].m_t;
    }
    // Two partial sums per row and quantity (by column parity): shorter serial FADD chains.
    float l_s[2][2] = {}, l_t[2][2] = {}, a[2][2] = {};
#pragma unroll
    for (int c = 0; c < NT; ++c)
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const int r = e >> 1;
        const bool k = keep(c, e);
        const float ss = k ? fmaf(cs[4 * c + e], sc_s, -ms[r]) : -INFINITY;
        const float tt = k ? fmaf(ct[4 * c + e], sc_t, -mt[r]) : -INFINITY;
        const float es = exp2f(ss), et = exp2f(tt);
        l_s[r][e & 1] += es;
        l_t[r][e & 1] += et;
        // masked: ss = tt = -inf, et = 0 and (tt - ss) is NaN, so select instead of multiply
        if constexpr (kMasked)
          a[r][e & 1] += et > 0.f ? et * (tt - ss) : 0.f;
        else
          a[r][e & 1] = fmaf(et, tt - ss, a[r][e & 1]);
      }
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      st[r].l_s += l_s[r][0] + l_s[r][1];
      st[r].l_t += l_t[r][0] + l_t[r][1];
      st[r].a += a[r][0] + a[r][1];
    }
  };
  auto process = [&](int n, auto& cs, auto& ct) {
    fence_regs(cs);
    fence_regs(ct);
    const int col0 = n * BN;
    // Packed documents: only tiles that cross a document boundary of the warp's rows need the mask.
    if (km != nullptr || !tile_in_one_document(p, b, warp_row0, col0, BN) || col0 + BN > T || (p.shape.causal && col0 + BN - 1 > warp_row0))
      process_impl(n, cs, ct, std::true_type{});
    else
      process_impl(n, cs, ct, std::false_type{});
  };

  float sA[32], tA[32], sB[32], tB[32];  // (64 rows x 64 keys) per warpgroup, accumulator layout
  cp_async_wait<0>();
  fence_proxy_async_shared();
  __syncthreads();
  issue(t_begin, sA, tA);
  int n = t_begin;
  for (; n + 2 < n_tiles; n += 2) {  // tiles n, n + 1; tile n + 2 issued at the end
    sync_and_load(n);
    issue(n + 1, sB, tB);
    wgmma_wait<1>();  // tile n's group done, n + 1's in flight
    process(n, sA, tA);
    sync_and_load(n + 1);
    issue(n + 2, sA, tA);
    wgmma_wait<1>();
    process(n + 1, sB, tB);
  }
  if (n + 1 < n_tiles) {  // two tiles left
    sync_and_load(n);
    issue(n + 1, sB, tB);
    wgmma_wait<1>();
    process(n, sA, tA);
    wgmma_wait<0>();
    process(n + 1, sB, tB);
  } else {
    wgmma_wait<0>();
    process(n, sA, tA);
  }

  store_row_outputs(st, p, static_cast<int64_t>(b * p.shape.H + h) * T, warp_row0, km, lane);
#else
  __trap();  // dispatched only on compute capability 9.0, whose cubin is sm_90a: never reached
#endif
}

}  // namespace linearard::ops::rkl
