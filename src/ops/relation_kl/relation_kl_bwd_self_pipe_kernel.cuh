// mma.sync self-relation backward (sm_80, and sm_90 head dims other than 64 / 128 or with
// LINEARARD_RKL_WGMMA=0; the sm_90a kernels are relation_kl_bwd_self_wgmma_kernel.cuh). Shared
// pieces and the design (CTA per 128 keys, one recompute per score element, int64 fixed-point sums)
// are in relation_kl_bwd_self_kernel.cuh. What this version changed against the first one:
//  - the per-tile body is one basic block (masking is a select per element, no branch on a
//    "masked" tile; the head-dim bound is a template constant), with the exponentials of each
//    16-query slice written right before that slice's column-term mma, so the scheduler can run
//    one slice's MUFU work beside the previous slice's mma within a warp;
//  - the (b, h) statistics kernel reads x with 16-byte loads in 1024-thread CTAs (the old one was
//    a 256-thread scalar loop, one CTA per (b, h));
#pragma once
#include <type_traits>

#include "ops/relation_kl/relation_kl_bwd_self_kernel.cuh"

namespace linearard::ops::rkl {

// grid (p.launch.n_bh, ceil(T / kSelfKeys)), kSelfThreads threads, BwdSelfSmem::kBytes shared memory.
// p.launch.accum holds this chunk's (n_bh, T, Ds) sums.
template <typename Elem, int DS, int DT>
__global__ void __launch_bounds__(kSelfThreads, 1)
    relation_kl_bwd_self_pipe_kernel(const __grid_constant__ RelationKLParams p) {
  using S = BwdSelfSmem<Elem, DS, DT>;
  constexpr int PS = S::kPS, PT = S::kPT;
  constexpr int NT = kSelfQueries / 8;
  extern __shared__ __align__(16) unsigned char smem_raw[];
  Elem* sXa = reinterpret_cast<Elem*>(smem_raw);   // (kSelfKeys, PS) anchor keys, student
  Elem* sYa = sXa + kSelfKeys * PS;                 // (kSelfKeys, PT) anchor keys, teacher
  Elem* sXo = sYa + kSelfKeys * PT;                 // (2, kSelfQueries, PS) streamed queries
  Elem* sYo = sXo + 2 * kSelfQueries * PS;          // (2, kSelfQueries, PT)
  Elem* sGt = sYo + 2 * kSelfQueries * PT;          // (kSelfKeys, kSelfPitchG) G^T of one tile
  float4* sSt = reinterpret_cast<float4*>(smem_raw + S::kElemBytes);  // (2, kSelfQueries) row stats
  // (kSelfWarps, 16, kStageRowBytes / 8) int64 row-term staging; this warp's 16 rows:
  int64_t* sStage = reinterpret_cast<int64_t*>(smem_raw + S::kElemBytes + S::kStatBytes +
                                               (threadIdx.x / 32) * 16 * S::kStageRowBytes);
  constexpr int kStagePitch = S::kStageRowBytes / 8;

  const int T = p.shape.T, D = p.shape.Ds;
  const int bh_local = blockIdx.x;
  const int bh = p.launch.bh0 + bh_local;
  const int b = bh / p.shape.H;
  const int key0 = blockIdx.y * kSelfKeys;  // causal: low blocks have the most tiles, go first
  const Elem* x = static_cast<const Elem*>(p.layout.xq) + static_cast<int64_t>(bh) * T * p.shape.Ds;
  const Elem* y = static_cast<const Elem*>(p.layout.yq) + static_cast<int64_t>(bh) * T * p.shape.Dt;
  int64_t* accum = p.launch.accum + static_cast<int64_t>(bh_local) * T * p.shape.Ds;
  const float inv_q = p.launch.quantum[2 * bh];
  const uint8_t* km = p.layout.key_mask ? p.layout.key_mask + static_cast<int64_t>(b) * T : nullptr;
  const float* row_stats = p.workspace.row_stats + static_cast<int64_t>(bh) * T * 4;

  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int g = lane / 4, q = lane % 4;
  const int warp_key0 = key0 + warp * 16;
  // G_ij is kept where the anchor key is valid and, causal, query >= key; written as one compare
  // per element against key_lim (INT_MIN without causality, INT_MAX for an invalid key). Queries
  // past T need no test: their zero-filled rows and statistics give g = 0 and finite p, so G = 0.
  // Packed documents: also the query's document equal to the key's (a_doc, one load per element).
  const int32_t* dk = p.layout.doc_ids ? p.layout.doc_ids + static_cast<int64_t>(b) * T : nullptr;
  int key_lim[2], a_doc[2];
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    const int key = warp_key0 + g + 8 * r;
    const bool valid = key < T && (km == nullptr || km[key] != 0);
    key_lim[r] = !valid ? INT_MAX : p.shape.causal ? key : INT_MIN;
    a_doc[r] = dk ? doc_of(dk, key, T) : 0;
  }

  load_tile_async<kSelfKeys, kSelfThreads>(sXa, PS, x, key0, T, p.shape.Ds);
  load_tile_async<kSelfKeys, kSelfThreads>(sYa, PT, y, key0, T, p.shape.Dt);
  auto load = [&](int tile, int stage) {
    load_tile_async<kSelfQueries, kSelfThreads>(sXo + stage * kSelfQueries * PS, PS, x,
                                                tile * kSelfQueries, T, p.shape.Ds);
    load_tile_async<kSelfQueries, kSelfThreads>(sYo + stage * kSelfQueries * PT, PT, y,
                                                tile * kSelfQueries, T, p.shape.Dt);
    for (int j = threadIdx.x; j < kSelfQueries; j += kSelfThreads) {
      const int row = tile * kSelfQueries + j;
      cp_async_16(sSt + stage * kSelfQueries + j, row_stats + (row < T ? static_cast<int64_t>(row) * 4 : 0),
                  row < T ? 16 : 0);
    }
    cp_async_commit();
  };

  float acc[DS / 8][4];  // column term of the warp's 16 keys x DS
#pragma unroll
  for (int nt = 0; nt < DS / 8; ++nt) acc[nt][0] = acc[nt][1] = acc[nt][2] = acc[nt][3] = 0.f;

  // Streamed query tiles [t_begin, n_tiles): causal ones at or below the keys, and (packed
  // documents) those that meet the keys' documents.
  const DocSpan span = doc_span(p, b, key0, key0 + kSelfKeys);
  const int n_tiles = min((T + kSelfQueries - 1) / kSelfQueries, (span.hi + kSelfQueries - 1) / kSelfQueries);
  const int t_begin = max(p.shape.causal ? key0 / kSelfQueries : 0, span.lo / kSelfQueries);
  const float sc_s = p.shape.scale_s_log2, sc_t = p.shape.scale_t_log2;
  // Row-term work split: warp w computes queries (w % 4) * 16.. and dims (w / 4) * DS / 2.. (a
  // 32 x 32 split per warp, 8 fewer ldmatrix per tile, measured no faster: docs/perf.md).
  const int rq0 = (warp % 4) * 16, rd0 = (warp / 4) * (DS / 2);
  const bool full = p.shape.Ds == DS && p.shape.Dt == DT;  // no run-time bound in any head-dim loop
  if (t_begin < n_tiles) load(t_begin, 0);
  // One streamed query tile; FULL (D == DS) is a template constant so that the tile's body has no
  // branch between the exponentials and the mma they are meant to overlap.
  auto tile_body = [&](int tile, auto full_c) {
    constexpr bool kFull = decltype(full_c)::value;
    const int stage = (tile - t_begin) & 1;
    cp_async_wait_all();
    __syncthreads();  // tile visible; everyone is done with stage ^ 1 and with sGt
    if (tile + 1 < n_tiles) load(tile + 1, stage ^ 1);

    float s[NT][4], t[NT][4];
    const Elem* sXq = sXo + stage * kSelfQueries * PS;
    if constexpr (kFull)
      warp_logits_pair_impl<Elem, DS, DT, true>(s, t, sXa + warp * 16 * PS, sXq, sYa + warp * 16 * PT,
                                                sYo + stage * kSelfQueries * PT, p.shape.Ds, p.shape.Dt,
                                                lane);
    else
      warp_logits_pair_impl<Elem, DS, DT, false>(s, t, sXa + warp * 16 * PS, sXq, sYa + warp * 16 * PT,
                                                 sYo + stage * kSelfQueries * PT, p.shape.Ds, p.shape.Dt,
                                                 lane);

    const int col0 = tile * kSelfQueries;
    // G for the 8-query slice c (in place of s), and its G^T slice into shared memory.
    auto grad = [&](int c) {
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const int r = e >> 1, j = c * 8 + 2 * q + (e & 1);
        const float4 st = sSt[stage * kSelfQueries + j];  // (lse_s, lse_t, g scale_s, 0)
        const float ps = exp2f(fmaf(s[c][e], sc_s, -st.x));
        const float pt = exp2f(fmaf(t[c][e], sc_t, -st.y));
        // a select: masked logits may overflow exp2 to inf
        const bool keep = col0 + j >= key_lim[r] && (dk == nullptr || doc_of(dk, col0 + j, T) == a_doc[r]);
        s[c][e] = keep ? st.z * (ps - pt) : 0.f;
      }
#pragma unroll
      for (int r = 0; r < 2; ++r)
        *reinterpret_cast<uint32_t*>(sGt + (warp * 16 + g + 8 * r) * kSelfPitchG + c * 8 + 2 * q) =
            MmaType<Elem>::pack(s[c][2 * r], s[c][2 * r + 1]);
    };
    // The exponentials of query slice pair ks, then the column-term mma of that pair: one basic
    // block, so the scheduler overlaps pair ks's mma with pair ks + 1's MUFU work. (Writing the
    // exponentials one pair ahead in the source measured 3 % slower: more registers, spills.)
#pragma unroll
    for (int ks = 0; ks < NT / 2; ++ks) {
      grad(2 * ks);
      grad(2 * ks + 1);
      warp_grad_gemm_kstep<Elem, DS, kFull>(acc, s, sXq, D, lane, ks);
    }
    __syncthreads();  // the whole G^T tile is in sGt

    float racc[DS / 16][4];
    warp_row_term<Elem, DS, kFull>(racc, sGt, rq0, sXa, rd0, D, lane);
#ifdef LINEARARD_RKL_BULK_REDUCE
    // Fixed-point values -> this warp's staging rows -> one bulk reduce per query row (lanes 0-15).
    if (lane < 16) bulk_wait_read_all();  // the previous tile's reduce has read the staging
    __syncwarp();
#pragma unroll
    for (int r = 0; r < 2; ++r)
#pragma unroll
      for (int nt = 0; nt < DS / 16; ++nt)
        *reinterpret_cast<longlong2*>(sStage + (g + 8 * r) * kStagePitch + nt * 8 + 2 * q) =
            make_longlong2(__float2ll_rn(racc[nt][2 * r] * inv_q), __float2ll_rn(racc[nt][2 * r + 1] * inv_q));
    fence_proxy_async_shared();
    __syncwarp();
    if (lane < 16) {
      const int row = col0 + rq0 + lane;
      if (row < T && rd0 < D)
        bulk_reduce_add_s64(accum + static_cast<int64_t>(row) * D + rd0, sStage + lane * kStagePitch,
                            static_cast<uint32_t>(min(D - rd0, DS / 2)) * 8u);
      bulk_commit();
    }
#else
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      const int row = col0 + rq0 + g + 8 * r;
      if (row >= T) continue;
      int64_t* dst = accum + static_cast<int64_t>(row) * D;
#pragma unroll
      for (int nt = 0; nt < DS / 16; ++nt) {
        const int d = rd0 + nt * 8 + 2 * q;
        if (d < D) {
          red_fixed(dst + d, racc[nt][2 * r], inv_q);
          red_fixed(dst + d + 1, racc[nt][2 * r + 1], inv_q);
        }
      }
    }
#endif
  };
  const std::true_type full_tile;
  const std::false_type partial_tile;
  for (int tile = t_begin; tile < n_tiles; ++tile) {
    if (full)
      tile_body(tile, full_tile);
    else
      tile_body(tile, partial_tile);
  }
#ifdef LINEARARD_RKL_BULK_REDUCE
  if (lane < 16) bulk_wait_all();  // staging stays live (and the sums land) before the CTA exits
#endif

  // Column term of the anchor keys.
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    const int row = warp_key0 + g + 8 * r;
    if (row >= T) continue;
    int64_t* dst = accum + static_cast<int64_t>(row) * D;
#pragma unroll
    for (int nt = 0; nt < DS / 8; ++nt) {
      const int d = nt * 8 + 2 * q;
      if (d < D) {
        red_fixed(dst + d, acc[nt][2 * r], inv_q);
        red_fixed(dst + d + 1, acc[nt][2 * r + 1], inv_q);
      }
    }
  }
}

// One CTA per (b, h): writes p.workspace.row_stats of its rows, and the fixed-point quantum from
// bound = 4 scale_s max|x| (2 max|g| + sum|g|), which covers every partial sum of dX (row term
// <= 2 scale_s |g_i| max|x|, column term <= scale_s max|x| sum_i |g_i|, x4 for the operand rounding
// and exp2 approximations); quantum[2 bh] = 2^(60 - E), quantum[2 bh + 1] = 2^(E - 60) with
// bound < 2^E (E clamped to [-60, 127] so both fit in fp32). 16-byte loads of x, 1024 threads, the
// same reduction order in every run.
// Ds is a multiple of 16 on the tensor-core path, so each (b, h) slice of x is 16-byte aligned.
constexpr int kQuantumWideThreads = 1024;
template <typename Elem>
__global__ void __launch_bounds__(kQuantumWideThreads)
    relation_kl_self_quantum_wide_kernel(const __grid_constant__ RelationKLParams p) {
  const int bh = blockIdx.x;
  constexpr int kVec = 16 / sizeof(Elem);
  const int64_t n_vec = static_cast<int64_t>(p.shape.T) * p.shape.Ds / kVec;
  const uint4* x = reinterpret_cast<const uint4*>(static_cast<const Elem*>(p.layout.xq) +
                                                  static_cast<int64_t>(bh) * p.shape.T * p.shape.Ds);
  const float* gkl = p.layout.grad_kl + static_cast<int64_t>(bh) * p.shape.T;
  float mx = 0.f, mg = 0.f, sg = 0.f;
  for (int64_t i = threadIdx.x; i < n_vec; i += kQuantumWideThreads) {
    const uint4 v = __ldg(x + i);
    const Elem* e = reinterpret_cast<const Elem*>(&v);
#pragma unroll
    for (int k = 0; k < kVec; ++k) mx = fmaxf(mx, fabsf(static_cast<float>(e[k])));
  }
  const uint8_t* km =
      p.layout.key_mask ? p.layout.key_mask + static_cast<int64_t>(bh / p.shape.H) * p.shape.T : nullptr;
  const int64_t o = static_cast<int64_t>(bh) * p.shape.T;
  for (int i = threadIdx.x; i < p.shape.T; i += kQuantumWideThreads) {
    const float a = fabsf(gkl[i]);
    mg = fmaxf(mg, a);
    sg += a;
    float4 st = make_float4(INFINITY, INFINITY, 0.f, 0.f);
    if ((km == nullptr || km[i] != 0) && p.layout.lse_s[o + i] != -INFINITY)
      st = make_float4(p.layout.lse_s[o + i] * kLog2e, p.layout.lse_t[o + i] * kLog2e,
                       gkl[i] * p.shape.scale_s, 0.f);
    reinterpret_cast<float4*>(p.workspace.row_stats)[o + i] = st;
  }
  __shared__ float red[3][kQuantumWideThreads / 32];
#pragma unroll
  for (int off = 16; off > 0; off >>= 1) {
    mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, off));
    mg = fmaxf(mg, __shfl_xor_sync(0xffffffffu, mg, off));
    sg += __shfl_xor_sync(0xffffffffu, sg, off);
  }
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  if (lane == 0) {
    red[0][warp] = mx;
    red[1][warp] = mg;
    red[2][warp] = sg;
  }
  __syncthreads();
  if (threadIdx.x == 0) {
    for (int w = 1; w < kQuantumWideThreads / 32; ++w) {
      mx = fmaxf(mx, red[0][w]);
      mg = fmaxf(mg, red[1][w]);
      sg += red[2][w];
    }
    const float bound = 4.f * p.shape.scale_s * mx * (2.f * mg + sg);
    int E = 0;
    if (bound > 0.f && bound < INFINITY) frexpf(bound, &E);
    E = min(max(E, -kSelfFixedBits), 127);
    p.launch.quantum[2 * bh] = ldexpf(1.f, kSelfFixedBits - E);
    p.launch.quantum[2 * bh + 1] = ldexpf(1.f, E - kSelfFixedBits);
  }
}

}  // namespace linearard::ops::rkl
