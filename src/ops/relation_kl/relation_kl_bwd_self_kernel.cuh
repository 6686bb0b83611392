// Tensor-core self-relation backward (xq = xk = x, yq = yk = y) with ONE logit recompute per score
// element, deterministic. dX = scale_s (G + G^T) X with G_ij = g_i (p_s,ij - p_t,ij) (anchors §2.5).
//
// Grid over key ("column") blocks, FA2's backward layout (anchors §2.4): each CTA owns kSelfKeys
// keys j (8 warps x 16) and streams the query blocks i >= j (causal). Per streamed tile it
// recomputes the student and teacher logit tiles (transposed: keys x queries) from the saved LSEs,
// forms G^T in fp32 and
//   column term  acc_j += G^T X_i   kept in registers for the CTA's life (the keys' own dX part)
//   row term     dX_i  += G X_j     a (kSelfQueries x D) partial per tile, G passing through
//                                   shared memory as bf16/fp16 (the same rounding as the column
//                                   GEMM's operand)
// Both terms go into one (n_bh, T, Ds) int64 fixed-point accumulator with integer adds (the row
// term through the copy engine's bulk reduce on sm_90, atomics on sm_80; the column term by
// atomics): integer addition is associative, so the sum is bitwise independent of the order in
// which CTAs arrive (fp32 atomics are not, which is why FA2's dQ is nondeterministic). The quantum
// is a power of two per (b, h), 2^-60 of a bound on every partial sum
// (relation_kl_self_quantum_kernel), so nothing overflows and each contribution is rounded far
// below fp32 resolution for any value within 2^30 of the bound; a finalize kernel scales the sums
// back into the output dtype. The caller zeroes the accumulator and runs (b, h) in chunks so that
// it stays within 1x the inputs' memory (docs/perf.md).
#pragma once
#include "ops/relation_kl/relation_kl_tile.cuh"

namespace linearard::ops::rkl {

constexpr int kSelfKeys = 128;                  // anchor keys per CTA: 8 warps x 16
constexpr int kSelfQueries = kBlockN;           // streamed query rows per tile (warp_logits' width)
constexpr int kSelfWarps = kSelfKeys / 16;
constexpr int kSelfThreads = kSelfWarps * 32;
constexpr int kSelfPitchG = kSelfQueries + 8;   // G^T tile row pitch (+16 bytes: ldmatrix banks)
// Fixed-point headroom: |partial sum| <= bound <= 2^E, quantum 2^(E - 60) keeps |sum| < 2^61.
constexpr int kSelfFixedBits = 60;
constexpr int kQuantumThreads = 256;

template <typename Elem, int DS, int DT>
struct BwdSelfSmem {
  static constexpr int kPS = pitch_of(DS), kPT = pitch_of(DT);
  static constexpr int kElemBytes = (kSelfKeys * (kPS + kPT) + 2 * kSelfQueries * (kPS + kPT) +
                                     kSelfKeys * kSelfPitchG) *
                                    static_cast<int>(sizeof(Elem));
  // + per streamed query row: (lse_s, lse_t in log2 units, g scale_s, 0) fp32; 2 stages
  static constexpr int kStatBytes = 2 * kSelfQueries * 16;
  // + the row term's int64 staging for the bulk reduce (sm_90): per warp 16 rows of DS / 2 values,
  // rows padded by 16 bytes (a 512-byte pitch would put all 8 rows of a store in one bank group).
  static constexpr int kStageRowBytes = DS / 2 * 8 + 16;
  static constexpr int kBytes = kElemBytes + kStatBytes + kSelfWarps * 16 * kStageRowBytes;
};

// Adds v (fp32) to a fixed-point accumulator element; the result is unused, so this is a RED.
// (No skip of zeros: the branch per element cost more than the few zero atomics near the diagonal.)
__device__ __forceinline__ void red_fixed(int64_t* dst, float v, float inv_q) {
  const long long i = __float2ll_rn(v * inv_q);
  atomicAdd(reinterpret_cast<unsigned long long*>(dst), static_cast<unsigned long long>(i));
}

// Hopper bulk reduce (cp.reduce.async.bulk, the copy engine's path FA3 uses for dQ): adds `bytes`
// (multiple of 16) of int64 from shared to global memory in whole L2 sectors, instead of one
// atomic per element. sm_90 only; the sm_80 build keeps the per-element atomics.
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
#define LINEARARD_RKL_BULK_REDUCE 1
__device__ __forceinline__ void bulk_reduce_add_s64(int64_t* gdst, const int64_t* ssrc, uint32_t bytes) {
  asm volatile("cp.reduce.async.bulk.global.shared::cta.bulk_group.add.u64 [%0], [%1], %2;\n" ::"l"(gdst),
               "r"(smem_addr(ssrc)), "r"(bytes)
               : "memory");
}
__device__ __forceinline__ void bulk_commit() {
  asm volatile("cp.async.bulk.commit_group;\n" ::: "memory");
}
__device__ __forceinline__ void bulk_wait_read_all() {
  asm volatile("cp.async.bulk.wait_group.read 0;\n" ::: "memory");
}
__device__ __forceinline__ void bulk_wait_all() {
  asm volatile("cp.async.bulk.wait_group 0;\n" ::: "memory");
}
// Orders this thread's ordinary shared-memory stores before the copy engine's reads (HOPPER.md).
__device__ __forceinline__ void fence_proxy_async_shared() {
  asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory");
}
#endif

// racc (16 queries x DS/2 dims, C fragments) = G (16 queries at q0 x kSelfKeys keys; stored
// transposed in sGt as [key][query]) * X (kSelfKeys anchor rows at sXa, dims [d0, d0 + DS/2)).
template <typename Elem, int DS, bool FULL>
__device__ __forceinline__ void warp_row_term(float (&racc)[DS / 16][4], const Elem* sGt, int q0,
                                              const Elem* sXa, int d0, int D, int lane) {
  constexpr int P = pitch_of(DS);
#pragma unroll
  for (int nt = 0; nt < DS / 16; ++nt) racc[nt][0] = racc[nt][1] = racc[nt][2] = racc[nt][3] = 0.f;
#pragma unroll
  for (int ks = 0; ks < kSelfKeys / 16; ++ks) {
    // A = G (queries x keys) from the [key][query] tile: transposed ldmatrix; matrix m = lane / 8
    // covers keys +8 (m >= 2) and queries +8 (m odd), the a[0..3] order of mma_16816.
    uint32_t a[4];
    ldmatrix_x4_trans(a, smem_addr(sGt + (ks * 16 + (lane & 7) + ((lane >> 4) << 3)) * kSelfPitchG +
                                   q0 + ((lane >> 3) & 1) * 8));
#pragma unroll
    for (int dp = 0; dp < DS / 32; ++dp) {
      if (FULL || d0 + dp * 16 < D) {
        uint32_t b[4];
        ldmatrix_x4_trans(b, smem_addr(sXa + (ks * 16 + (lane & 7) + ((lane >> 3) & 1) * 8) * P +
                                       d0 + dp * 16 + (lane >> 4) * 8));
        mma16816<Elem>(racc[2 * dp], a, b[0], b[1]);
        mma16816<Elem>(racc[2 * dp + 1], a, b[2], b[3]);
      }
    }
  }
}

// grid (p.n_bh, ceil(T / kSelfKeys)), kSelfThreads threads, BwdSelfSmem::kBytes shared memory.
// (b, h) = p.bh0 + blockIdx.x; p.accum holds this chunk's (n_bh, T, Ds) fixed-point sums.
template <typename Elem, int DS, int DT>
__global__ void __launch_bounds__(kSelfThreads, 1)
    relation_kl_bwd_self_kernel(const __grid_constant__ RelationKLParams p) {
  using S = BwdSelfSmem<Elem, DS, DT>;
  constexpr int PS = S::kPS, PT = S::kPT;
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

  const int T = p.T, D = p.Ds;
  const int bh = p.bh0 + blockIdx.x;
  const int b = bh / p.H;
  const int key0 = blockIdx.y * kSelfKeys;  // causal: low blocks have the most tiles, go first
  const Elem* x = static_cast<const Elem*>(p.xq) + static_cast<int64_t>(bh) * T * p.Ds;
  const Elem* y = static_cast<const Elem*>(p.yq) + static_cast<int64_t>(bh) * T * p.Dt;
  int64_t* accum = p.accum + static_cast<int64_t>(blockIdx.x) * T * p.Ds;
  const float inv_q = p.quantum[2 * bh];
  const uint8_t* km = p.key_mask ? p.key_mask + static_cast<int64_t>(b) * T : nullptr;
  const float* row_stats = p.row_stats + static_cast<int64_t>(bh) * T * 4;

  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int g = lane / 4, q = lane % 4;
  const int warp_key0 = key0 + warp * 16;
  bool a_kv[2];  // this thread's anchor keys (g, g + 8) are valid
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    const int key = warp_key0 + g + 8 * r;
    a_kv[r] = key < T && (km == nullptr || km[key] != 0);
  }

  load_tile_async<kSelfKeys, kSelfThreads>(sXa, PS, x, key0, T, p.Ds);
  load_tile_async<kSelfKeys, kSelfThreads>(sYa, PT, y, key0, T, p.Dt);
  // Streamed query rows and their statistics (p.row_stats, relation_kl_self_quantum_kernel:
  // invalid rows have lse = +inf and g = 0, so their G is exactly 0; rows past T are zero-filled,
  // g = 0 again), all with cp.async: a plain global load here stalled every tile.
  auto load = [&](int tile, int stage) {
    load_tile_async<kSelfQueries, kSelfThreads>(sXo + stage * kSelfQueries * PS, PS, x,
                                                tile * kSelfQueries, T, p.Ds);
    load_tile_async<kSelfQueries, kSelfThreads>(sYo + stage * kSelfQueries * PT, PT, y,
                                                tile * kSelfQueries, T, p.Dt);
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

  const int n_tiles = (T + kSelfQueries - 1) / kSelfQueries;
  const int t_begin = p.causal ? key0 / kSelfQueries : 0;
  const float sc_s = p.scale_s_log2, sc_t = p.scale_t_log2;
  // Row-term work split: warp w computes queries (w % 4) * 16.. and dims (w / 4) * DS / 2..
  const int rq0 = (warp % 4) * 16, rd0 = (warp / 4) * (DS / 2);
  if (t_begin < n_tiles) load(t_begin, 0);
  for (int tile = t_begin; tile < n_tiles; ++tile) {
    const int stage = (tile - t_begin) & 1;
    cp_async_wait_all();
    __syncthreads();  // tile visible; everyone is done with stage ^ 1 and with sGt
    if (tile + 1 < n_tiles) load(tile + 1, stage ^ 1);

    // s, t: (16 keys of this warp) x (kSelfQueries queries), C fragments.
    float s[kSelfQueries / 8][4], t[kSelfQueries / 8][4];
    warp_logits_pair<Elem, DS, DT>(s, t, sXa + warp * 16 * PS, sXo + stage * kSelfQueries * PS,
                                   sYa + warp * 16 * PT, sYo + stage * kSelfQueries * PT, p.Ds, p.Dt,
                                   lane);

    const int col0 = tile * kSelfQueries;
    // Also mask when some of the warp's keys are past T: their zero-filled rows would give finite
    // logits and, through exp2 of (0 - lse), possibly inf in G, which the row GEMM would spread.
    const bool masked = km != nullptr || col0 + kSelfQueries > T || warp_key0 + 16 > T ||
                        (p.causal && warp_key0 + 15 > col0);
#pragma unroll
    for (int nt = 0; nt < kSelfQueries / 8; ++nt)
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const int r = e >> 1, j = nt * 8 + 2 * q + (e & 1);
        const float4 st = sSt[stage * kSelfQueries + j];  // (lse_s, lse_t, g scale_s, 0)
        const float ps = exp2f(fmaf(s[nt][e], sc_s, -st.x));
        const float pt = exp2f(fmaf(t[nt][e], sc_t, -st.y));
        float gij = st.z * (ps - pt);
        if (masked) {
          const int key = warp_key0 + g + 8 * r, query = col0 + j;
          if (!(a_kv[r] && query < T && (!p.causal || key <= query)))
            gij = 0.f;  // a select: masked logits may overflow exp2 to inf
        }
        s[nt][e] = gij;
      }
    // G^T -> shared memory in the operand dtype (the row term's A operand).
#pragma unroll
    for (int nt = 0; nt < kSelfQueries / 8; ++nt)
#pragma unroll
      for (int r = 0; r < 2; ++r)
        *reinterpret_cast<uint32_t*>(sGt + (warp * 16 + g + 8 * r) * kSelfPitchG + nt * 8 + 2 * q) =
            MmaType<Elem>::pack(s[nt][2 * r], s[nt][2 * r + 1]);
    warp_grad_gemm<Elem, DS>(acc, s, sXo + stage * kSelfQueries * PS, p.Ds, lane);
    __syncthreads();  // the whole G^T tile is in sGt

    float racc[DS / 16][4];
    if (D == DS)  // FULL: no run-time bound in the unrolled loop (relation_kl_tile.cuh)
      warp_row_term<Elem, DS, true>(racc, sGt, rq0, sXa, rd0, D, lane);
    else
      warp_row_term<Elem, DS, false>(racc, sGt, rq0, sXa, rd0, D, lane);
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

// One CTA per (b, h): writes p.row_stats of its rows, and the fixed-point quantum from
// bound = 4 scale_s max|x| (2 max|g| + sum|g|) covers every partial sum of
// dX (row term <= 2 scale_s |g_i| max|x|, column term <= scale_s max|x| sum_i |g_i|, x4 for the
// operand rounding and exp2 approximations); quantum[2 bh] = 2^(60 - E), quantum[2 bh + 1] =
// 2^(E - 60) with bound < 2^E (E clamped to [-60, 127] so both fit in fp32).
template <typename Elem>
__global__ void __launch_bounds__(kQuantumThreads)
    relation_kl_self_quantum_kernel(const __grid_constant__ RelationKLParams p) {
  const int bh = blockIdx.x;
  const Elem* x = static_cast<const Elem*>(p.xq) + static_cast<int64_t>(bh) * p.T * p.Ds;
  const float* gkl = p.grad_kl + static_cast<int64_t>(bh) * p.T;
  float mx = 0.f, mg = 0.f, sg = 0.f;
  const int64_t n = static_cast<int64_t>(p.T) * p.Ds;
  for (int64_t i = threadIdx.x; i < n; i += kQuantumThreads) mx = fmaxf(mx, fabsf(static_cast<float>(x[i])));
  const uint8_t* km = p.key_mask ? p.key_mask + static_cast<int64_t>(bh / p.H) * p.T : nullptr;
  const int64_t o = static_cast<int64_t>(bh) * p.T;
  for (int i = threadIdx.x; i < p.T; i += kQuantumThreads) {
    const float a = fabsf(gkl[i]);
    mg = fmaxf(mg, a);
    sg += a;
    // Row statistics for the backward (invalid rows: padded or no valid key -> G = 0).
    float4 st = make_float4(INFINITY, INFINITY, 0.f, 0.f);
    if ((km == nullptr || km[i] != 0) && p.lse_s[o + i] != -INFINITY)
      st = make_float4(p.lse_s[o + i] * kLog2e, p.lse_t[o + i] * kLog2e, gkl[i] * p.scale_s, 0.f);
    reinterpret_cast<float4*>(p.row_stats)[o + i] = st;
  }
  __shared__ float red[3][kQuantumThreads / 32];
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
    for (int w = 1; w < kQuantumThreads / 32; ++w) {
      mx = fmaxf(mx, red[0][w]);
      mg = fmaxf(mg, red[1][w]);
      sg += red[2][w];
    }
    const float bound = 4.f * p.scale_s * mx * (2.f * mg + sg);
    int E = 0;
    if (bound > 0.f && bound < INFINITY) frexpf(bound, &E);  // bound = m 2^E, m in [0.5, 1)
    E = min(max(E, -kSelfFixedBits), 127);
    p.quantum[2 * bh] = ldexpf(1.f, kSelfFixedBits - E);
    p.quantum[2 * bh + 1] = ldexpf(1.f, E - kSelfFixedBits);
  }
}

// d_out[(bh0 + i) T Ds + k] = accum[i T Ds + k] * quantum (the chunk's n_bh x T x Ds elements).
template <typename Elem>
__global__ void relation_kl_self_finalize_kernel(const __grid_constant__ RelationKLParams p) {
  const int64_t per_bh = static_cast<int64_t>(p.T) * p.Ds;
  const int64_t n = per_bh * p.n_bh / 2;  // pairs (Ds is even)
  Elem* out = static_cast<Elem*>(p.d_out) + static_cast<int64_t>(p.bh0) * per_bh;
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t k = 2 * i;
    const float qv = p.quantum[2 * (p.bh0 + k / per_bh) + 1];
    const longlong2 v = *reinterpret_cast<const longlong2*>(p.accum + k);
    MmaType<Elem>::store2(out + k, __ll2float_rn(v.x) * qv, __ll2float_rn(v.y) * qv);
  }
}

}  // namespace linearard::ops::rkl
