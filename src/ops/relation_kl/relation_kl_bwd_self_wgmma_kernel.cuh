// Self-relation backward for Hopper (sm_90a), xq = xk = x, yq = yk = y:
//   dX = scale_s (G + G^T) X,  G_ij = g_i (p_s,ij - p_t,ij)  (anchors §2.5)
// as two launches of one wgmma kernel, each shaped like the forward (relation_kl_fwd_wgmma_kernel.cuh):
//   ROWS     anchors = query rows i, streamed key tiles j <= i:  R_i = sum_j G_ij x_j  -> fp32 buffer
//   COLUMNS  anchors = key rows j, streamed query tiles i >= j:  dX_j = sum_i G_ij x_i + R_j -> Elem
// Every output row is written by one CTA and summed in a fixed order: deterministic without
// atomics or a fixed-point accumulator. The price is one more logit recompute per score element
// than the fused mma.sync kernel (relation_kl_bwd_self_pipe_kernel.cuh); with the warpgroup MMAs
// reading both operands from shared memory, the recompute costs less than that kernel's reductions.
//
// Per CTA: 2 warpgroups x 64 anchor rows, 256 threads; per streamed tile of 64 rows and
// warpgroup: the logit tiles (as the forward: Ds/16 + Dt/16 wgmma m64n64k16, SS), then
// G in fp32 -> Elem A fragments in registers, then acc (64 x Ds) += G (64 x 64) O (64 x Ds)
// with A from registers and O read MN-major from the same swizzled tile. The logits of tile n + 1
// are issued before tile n's exponentials, so the tensor cores work under the MUFU/FMA code.
#pragma once
#include <type_traits>

#include "ops/relation_kl/relation_kl_tile.cuh"
#include "ops/relation_kl/relation_kl_wgmma.cuh"

namespace linearard::ops::rkl {

constexpr int kBwdWgAnchors = 128;  // anchor rows per CTA: 2 warpgroups x 64
constexpr int kBwdWgStream = 64;    // streamed rows per tile (the logit wgmma N, the gradient wgmma K)
constexpr int kBwdWgThreads = 256;
// Streamed tiles in shared memory, four live during step n: n - 1 (its gradient wgmma runs until
// step n + 1's wait), n (read by the exponentials' masks/statistics and its gradient wgmma), n + 1
// (its logit wgmma) and n + 2 (loading).
constexpr int kBwdWgStages = 4;

// DOCS (packed documents): + the streamed rows' document ids, (stages, BN) int32.
template <typename Elem, int DS, int DT, bool DOCS = false>
struct BwdSelfWgmmaSmem {
  static constexpr int kAnchorBytes = kBwdWgAnchors * (DS + DT) * 2;  // swizzled Xa, Ya
  static constexpr int kStageBytes = kBwdWgStream * (DS + DT) * 2;    // swizzled Xo, Yo of one tile
  static constexpr int kStatOffset = kAnchorBytes + kBwdWgStages * kStageBytes;
  static constexpr int kMaskOffset = kStatOffset + kBwdWgStages * 3 * kBwdWgStream * 4;
  static constexpr int kDocOffset = kMaskOffset + kBwdWgStages * kBwdWgStream;  // 4-byte aligned
  static constexpr int kBytes =
      kDocOffset + (DOCS ? kBwdWgStages * kBwdWgStream * 4 : 0) + kSw128AtomBytes;
};

// Per-row statistics of the backward in log2 units, (B H, 3, stats_pitch) fp32 structure of arrays:
// lse_s log2 e, lse_t log2 e, g scale_s. Rows that are padded, have no valid key or lie in
// [T, stats_pitch) get (inf, inf, 0), so p = 0 and G = 0 there. The pitch is T rounded up to the
// streamed tile, so a tile's 64 values of each array are four whole 16-byte copies; a thread reads
// the values of its columns where it uses them (an array of float4 rows cost the column kernel
// 16 x 4 registers per tile and spilled).
// (A template, like every kernel in these headers: one instantiation per translation unit's Elem.)
template <typename Elem>
__global__ void relation_kl_self_row_stats_kernel(const __grid_constant__ RelationKLParams p) {
  const int pitch = p.workspace.stats_pitch;
  const int64_t n = static_cast<int64_t>(p.shape.B) * p.shape.H * pitch;
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t bh = i / pitch, t = i % pitch, b = bh / p.shape.H, o = bh * p.shape.T + t;
    const bool valid = t < p.shape.T &&
                       (p.layout.key_mask == nullptr || p.layout.key_mask[b * p.shape.T + t] != 0) &&
                       p.layout.lse_s[o] != -INFINITY;
    float* dst = p.workspace.col_stats + bh * 3 * pitch + t;
    dst[0] = valid ? p.layout.lse_s[o] * kLog2e : INFINITY;
    dst[pitch] = valid ? p.layout.lse_t[o] * kLog2e : INFINITY;
    dst[2 * pitch] = valid ? p.layout.grad_kl[o] * p.shape.scale_s : 0.f;
  }
}

// grid (B * H, ceil(T / kBwdWgAnchors)), kBwdWgThreads threads, BwdSelfWgmmaSmem::kBytes dynamic
// shared memory. Reads p.layout.xq (= x), p.layout.yq (= y), p.workspace.col_stats; ROWS writes
// p.workspace.self_rows (B, H, T, Ds) fp32, COLUMNS reads it and writes p.layout.d_out (B, H, T, Ds).
// DOCS: packed documents (p.layout.doc_ids set): the document-span tile range and the per-element
// document check. A template constant because this kernel runs at the register limit: the check's
// registers made the DOCS = false code spill (ptxas -v, sm_90a, Ds = Dt = 128: 20 bytes of spill
// stores in ROWS), so the plain instantiation keeps the code it had without documents.
template <typename Elem, int DS, int DT, bool COLUMNS, bool DOCS>
__global__ void __launch_bounds__(kBwdWgThreads, 1)
    relation_kl_bwd_self_wgmma_kernel(const __grid_constant__ RelationKLParams p) {
#ifdef RKL_WGMMA_ENABLED
  using S = BwdSelfWgmmaSmem<Elem, DS, DT, DOCS>;
  constexpr int kA = kBwdWgAnchors, BN = kBwdWgStream, NT = BN / 8, kThreads = kBwdWgThreads;
  extern __shared__ __align__(16) unsigned char smem_raw[];
  const uint32_t raw = smem_addr(smem_raw);
  const uint32_t base = (raw + kSw128AtomBytes - 1) & ~static_cast<uint32_t>(kSw128AtomBytes - 1);
  const uint32_t sXa = base;                       // (kA, DS) swizzled anchors, student
  const uint32_t sYa = sXa + kA * DS * 2;          // (kA, DT) teacher
  const uint32_t sStream = base + S::kAnchorBytes;  // (stages) x [(BN, DS) Xo, (BN, DT) Yo]
  unsigned char* smem = smem_raw + (base - raw);
  float* sSt = reinterpret_cast<float*>(smem + S::kStatOffset);  // (stages, 3, BN) streamed-row stats
  uint8_t* sKv = smem + S::kMaskOffset;                              // (stages, BN) streamed key valid
  int32_t* sDoc = reinterpret_cast<int32_t*>(smem + S::kDocOffset);  // DOCS: (stages, BN) streamed docs

  const int T = p.shape.T, bh = blockIdx.x, b = bh / p.shape.H;
  // Causal: long rows (ROWS: late anchors; COLUMNS: early anchors) first.
  const int blk = (!COLUMNS && p.shape.causal) ? gridDim.y - 1 - blockIdx.y : blockIdx.y;
  const int a0 = blk * kA;
  const Elem* x = static_cast<const Elem*>(p.layout.xq) + static_cast<int64_t>(bh) * T * DS;
  const Elem* y = static_cast<const Elem*>(p.layout.yq) + static_cast<int64_t>(bh) * T * DT;
  const int pitch = p.workspace.stats_pitch;
  const float* stats = p.workspace.col_stats + static_cast<int64_t>(bh) * 3 * pitch;  // (3, pitch)
  const uint8_t* km = p.layout.key_mask ? p.layout.key_mask + static_cast<int64_t>(b) * T : nullptr;

  const int wg = warpgroup_index(), warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int g = lane / 4, q = lane % 4;
  const int wg_a0 = a0 + 64 * wg, warp_a0 = wg_a0 + 16 * (warp % 4);
  const int n_all = (T + BN - 1) / BN;
  // Streamed tiles [t_begin, t_end), the same for both warpgroups (causal: one of them has a fully
  // masked first or last tile, G = 0 there; 32 of 2112 warpgroup tiles per head at T = 4096) so that every wgmma is issued on one straight path, which
  // ptxas needs to overlap them with the exponentials.
  // Packed documents: only the tiles that meet the anchors' documents ("same document" is
  // symmetric, so one span serves ROWS and COLUMNS).
  const int32_t* dk = DOCS ? p.layout.doc_ids + static_cast<int64_t>(b) * T : nullptr;
  int t_begin = COLUMNS && p.shape.causal ? a0 / BN : 0;
  int t_end = !COLUMNS && p.shape.causal ? (min(T, a0 + kA) + BN - 1) / BN : n_all;
  if constexpr (DOCS) {
    const DocSpan span = doc_span(p, b, a0, a0 + kA);
    t_begin = max(t_begin, span.lo / BN);
    t_end = min(t_end, (span.hi + BN - 1) / BN);
  }

  // ROWS: the anchors' own statistics; COLUMNS: the causal mask as one compare per element (query
  // >= key_lim, INT_MIN without causality). A padded anchor key needs no mask here: its column term
  // is dropped in the epilogue (its row term is 0: its g is 0), which keeps registers for the loop.
  float3 ast[2];
  int key_lim[2], a_doc[2] = {0, 0};
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    const int row = warp_a0 + g + 8 * r;
    ast[r] = row < T ? make_float3(stats[row], stats[pitch + row], stats[2 * pitch + row])
                     : make_float3(INFINITY, INFINITY, 0.f);
    key_lim[r] = p.shape.causal ? row : INT_MIN;
    if constexpr (DOCS) a_doc[r] = doc_of(dk, row, T);
  }

  load_tile_sw128_async<kA, DS, kThreads>(sXa, x, a0, T);
  load_tile_sw128_async<kA, DT, kThreads>(sYa, y, a0, T);
  auto load = [&](int tile) {
    const int stage = tile % kBwdWgStages;
    const uint32_t st = sStream + stage * S::kStageBytes;
    load_tile_sw128_async<BN, DS, kThreads>(st, x, tile * BN, T);
    load_tile_sw128_async<BN, DT, kThreads>(st + BN * DS * 2, y, tile * BN, T);
    if constexpr (COLUMNS) {
      // 3 arrays x BN / 4 16-byte pieces; tile * BN + BN <= pitch
      if (threadIdx.x < 3 * BN / 4) {
        const int arr = threadIdx.x / (BN / 4), piece = threadIdx.x % (BN / 4);
        cp_async_16(sSt + (stage * 3 + arr) * BN + piece * 4,
                    stats + static_cast<int64_t>(arr) * pitch + tile * BN + piece * 4, 16);
      }
    } else {
      for (int j = threadIdx.x; j < BN; j += kThreads) {
        const int col = tile * BN + j;
        sKv[stage * BN + j] = col < T && (km == nullptr || km[col] != 0);
      }
    }
    if constexpr (DOCS) {  // the streamed rows' documents (-1 past T: masked by the bound checks)
      for (int j = threadIdx.x; j < BN; j += kThreads) {
        const int row = tile * BN + j;
        sDoc[stage * BN + j] = doc_of(dk, row, T);
      }
    }
    cp_async_commit();
  };
  load(t_begin);
  if (t_begin + 1 < t_end) load(t_begin + 1);

  auto issue_logits = [&](int tile, auto& s, auto& t) {
    wgmma_logit_pair<Elem, DS, DT, kA, BN>(s, t, sXa + 64 * wg * kSw128RowBytes, sYa + 64 * wg * kSw128RowBytes,
                                           sStream + (tile % kBwdWgStages) * S::kStageBytes);
  };

  // (64 anchors x DS) per warpgroup in 64-column blocks, accumulator layout; the first gradient
  // wgmma overwrites instead of adding (no zeroing by ordinary instructions).
  float acc[DS / 64][32];
  // G of a tile as A fragments, two buffers: tile n - 1's gradient wgmma still reads its buffer
  // while tile n's exponentials fill the other.
  uint32_t ga0[BN / 16][4], ga1[BN / 16][4];
  const float sc_s = p.shape.scale_s_log2, sc_t = p.shape.scale_t_log2;

  // Before tile n + 1's logits: it has landed for every thread, and every warpgroup is done with
  // tile n - 2's stage (its gradient wgmma was waited for at the start of step n), which tile n + 2
  // then loads into.
  auto sync_and_load = [&](int n) {
    cp_async_wait<0>();  // tile n + 1 (the only group in flight)
    fence_proxy_async_shared();
    __syncthreads();
    if (n + 2 < t_end) load(n + 2);
  };
  // Tile n: G from its logits (cs, ct; read only, an ordinary write to a wgmma's accumulator
  // registers would serialize the wgmma), then acc += G O as one more wgmma group. MASKED (a
  // template constant): tiles with padded keys, out-of-range rows or causal cut-offs.
  auto process_impl = [&](int n, auto& cs, auto& ct, auto& ga, auto masked_c) {
    constexpr bool kMasked = decltype(masked_c)::value;
    const int stage = n % kBwdWgStages;
    const int col0 = n * BN;
    // Statistics of the two streamed rows of column pair c (j = 8 c + 2 q, + 1): (lse_s, lse_t,
    // g scale_s) per array, read where used.
    auto grad = [&](int c, int e) {
      const int r = e >> 1, j = c * 8 + 2 * q + (e & 1);
      float3 st;
      bool keep = true;
      if constexpr (COLUMNS) {
        const float* col = sSt + stage * 3 * BN + j;
        st = make_float3(col[0], col[BN], col[2 * BN]);  // the streamed query's statistics
        if constexpr (kMasked) keep = col0 + j >= key_lim[r];
      } else {
        st = ast[r];
        if constexpr (kMasked)
          keep = sKv[stage * BN + j] && (!p.shape.causal || col0 + j <= warp_a0 + g + 8 * r);
      }
      // Packed documents: the streamed row's document, staged in shared memory with its tile (ptxas
      // -v, sm_90a, Ds = Dt = 128, with the unmasked path for one-document tiles: ROWS spills 128
      // bytes so, 312 with a global load per element here, 448 with the anchors' documents loaded
      // here instead of kept in a_doc). Register allocation at this kernel's limit is fickle: check
      // ptxas -v after any change.
      if constexpr (kMasked && DOCS) keep = keep && sDoc[stage * BN + j] == a_doc[r];
      const float ps = exp2f(fmaf(cs[4 * c + e], sc_s, -st.x));
      const float pt = exp2f(fmaf(ct[4 * c + e], sc_t, -st.y));
      const float v = st.z * (ps - pt);
      return kMasked && !keep ? 0.f : v;  // a select: masked logits may overflow exp2 to inf
    };
    // G straight into the A fragments (16 streamed rows each).
#pragma unroll
    for (int kk = 0; kk < BN / 16; ++kk) {
      // COLUMNS: keeps the compiler from hoisting all 48 statistics loads of the tile to its top
      // (register spills); a 16-column slice's loads are hidden by the previous slice's exp2.
      if constexpr (COLUMNS) asm volatile("" ::: "memory");
      ga[kk][0] = MmaType<Elem>::pack(grad(2 * kk, 0), grad(2 * kk, 1));
      ga[kk][1] = MmaType<Elem>::pack(grad(2 * kk, 2), grad(2 * kk, 3));
      ga[kk][2] = MmaType<Elem>::pack(grad(2 * kk + 1, 0), grad(2 * kk + 1, 1));
      ga[kk][3] = MmaType<Elem>::pack(grad(2 * kk + 1, 2), grad(2 * kk + 1, 3));
    }
  };
  // The streamed rows' G never needs a mask when the tile is inside T and (ROWS) no key is padded
  // and all its keys are <= the warp's first anchor row, (COLUMNS) all its queries are >= the
  // warp's last anchor key.
  // (acc is not fenced here: the previous tile's gradient wgmma may still be adding into it.)
  auto process = [&](int n, auto& cs, auto& ct, auto& ga) {
    fence_regs(cs);
    fence_regs(ct);
    const int col0 = n * BN;
    // Packed documents: only tiles that cross a document boundary of the warp's anchors need the mask
    // (a streamed row is in an anchor's document exactly when the anchor is in the row's).
    const bool masked =
        (DOCS && !tile_in_one_document(p, b, warp_a0, col0, BN)) || col0 + BN > T || (COLUMNS ? p.shape.causal && col0 < warp_a0 + 16
                                  : km != nullptr || (p.shape.causal && col0 + BN - 1 > warp_a0));
    if (masked)
      process_impl(n, cs, ct, ga, std::true_type{});
    else
      process_impl(n, cs, ct, ga, std::false_type{});
    // acc += G O: K = the tile's 64 streamed rows (MN-major rows of the swizzled tile), N = 64 dims.
    const uint32_t so = sStream + (n % kBwdWgStages) * S::kStageBytes;
    wgmma_fence();
#pragma unroll
    for (int kk = 0; kk < BN / 16; ++kk)
#pragma unroll
      for (int dc = 0; dc < DS / 64; ++dc)
        wgmma_64x64_rs<Elem, 1>(acc[dc], ga[kk], sw128_desc(so + dc * BN * kSw128RowBytes + kk * 16 * kSw128RowBytes),
                                n > t_begin || kk > 0);
    wgmma_commit();
  };

  float sA[32], tA[32], sB[32], tB[32];  // logit tiles (64 anchors x 64 streamed) per warpgroup
  cp_async_wait<0>();
  fence_proxy_async_shared();
  __syncthreads();
  issue_logits(t_begin, sA, tA);
  wgmma_commit();  // an empty group in place of "the previous tile's gradient": uniform waits below
  // Step n: tile n's logits are done (and tile n - 2's gradient: its stage may be reloaded), tile
  // n - 1's gradient may still run; then tile n + 1's logits are issued and tile n's exponentials
  // run under those two groups on the tensor cores.
  auto step = [&](int n, auto& cs, auto& ct, auto& ns, auto& nt_, auto& ga) {
    wgmma_wait<1>();
    sync_and_load(n);
    issue_logits(n + 1, ns, nt_);
    process(n, cs, ct, ga);
  };
  int n = t_begin;
  for (; n + 2 < t_end; n += 2) {
    step(n, sA, tA, sB, tB, ga0);
    step(n + 1, sB, tB, sA, tA, ga1);
  }
  if (n + 1 < t_end) {  // two tiles left
    step(n, sA, tA, sB, tB, ga0);
    wgmma_wait<1>();
    process(n + 1, sB, tB, ga1);
  } else {
    wgmma_wait<1>();
    process(n, sA, tA, ga0);
  }
  wgmma_wait<0>();
#pragma unroll
  for (int dc = 0; dc < DS / 64; ++dc) fence_regs(acc[dc]);

  float* rows = p.workspace.self_rows + static_cast<int64_t>(bh) * T * DS;
  Elem* out = static_cast<Elem*>(p.layout.d_out) + static_cast<int64_t>(bh) * T * DS;
  bool anchor_valid[2];
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    const int row = warp_a0 + g + 8 * r;
    anchor_valid[r] = row < T && (km == nullptr || km[row] != 0);
  }
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    const int row = warp_a0 + g + 8 * r;
    if (row >= T) continue;
#pragma unroll
    for (int dc = 0; dc < DS / 64; ++dc)
#pragma unroll
      for (int c = 0; c < NT; ++c) {
        const int64_t o = static_cast<int64_t>(row) * DS + dc * 64 + c * 8 + 2 * q;
        const float v0 = acc[dc][4 * c + 2 * r], v1 = acc[dc][4 * c + 2 * r + 1];
        if constexpr (COLUMNS) {
          const float2 rv = *reinterpret_cast<const float2*>(rows + o);
          if (anchor_valid[r])
            MmaType<Elem>::store2(out + o, v0 + rv.x, v1 + rv.y);
          else  // a padded key: no column term (and rv = 0, its own g being 0)
            MmaType<Elem>::store2(out + o, rv.x, rv.y);
        } else {
          *reinterpret_cast<float2*>(rows + o) = make_float2(v0, v1);
        }
      }
  }
#else
  __trap();  // dispatched only on compute capability 9.0, whose cubin is sm_90a: never reached
#endif
}

}  // namespace linearard::ops::rkl
