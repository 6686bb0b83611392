// Grid math and the head-dim switch of the relation-KL launchers (relation_kl_launch.h). Head dims
// become the template bounds 64 or 128 (runtime Ds, Dt <= bound, multiples of 16): two bounds per
// operand instead of one instantiation per head dim keeps the build to 4 per element type and
// direction; 80 and 96 run the 128 instantiation with the unused k-steps skipped.
#pragma once
#include <algorithm>
#include <cstdint>
#include <type_traits>

#include "ops/relation_kl/relation_kl_bwd_kernel.cuh"
#include "ops/relation_kl/relation_kl_bwd_self_kernel.cuh"
#include "ops/relation_kl/relation_kl_bwd_self_pipe_kernel.cuh"
#include "ops/relation_kl/relation_kl_bwd_self_wgmma_kernel.cuh"
#include "ops/relation_kl/relation_kl_fwd_kernel.cuh"
#include "ops/relation_kl/relation_kl_fwd_pipe_kernel.cuh"
#include "ops/relation_kl/relation_kl_fwd_wgmma_kernel.cuh"
#include "ops/relation_kl/relation_kl_launch.h"
#include "ops/relation_kl/relation_kl_simt_kernel.cuh"

namespace linearard::ops::rkl {

inline int ceil_div(int a, int b) { return (a + b - 1) / b; }

// Self backward, one (b, h) chunk: quantum (first chunk only), fixed-point accumulation, finalize.
template <typename Elem, int DS, int DT>
cudaError_t launch_tc_self_bwd(const RelationKLParams& p, cudaStream_t stream) {
  constexpr int smem = BwdSelfSmem<Elem, DS, DT>::kBytes;
  const int key_blocks = ceil_div(p.T, kSelfKeys);
  cudaError_t e = cudaSuccess;
  if (p.bh0 == 0)
    relation_kl_self_quantum_wide_kernel<Elem><<<p.B * p.H, kQuantumWideThreads, 0, stream>>>(p);
  auto kernel = relation_kl_bwd_self_pipe_kernel<Elem, DS, DT>;
  e = cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, smem);
  if (e != cudaSuccess) return e;
  kernel<<<dim3(p.n_bh, key_blocks), kSelfThreads, smem, stream>>>(p);
  const int64_t pairs = static_cast<int64_t>(p.n_bh) * p.T * p.Ds / 2;
  const int fin_blocks = static_cast<int>(std::min<int64_t>((pairs + 255) / 256, 132 * 16));
  relation_kl_self_finalize_kernel<Elem><<<fin_blocks, 256, 0, stream>>>(p);
  return cudaGetLastError();
}

// sm_90a forward: 2 warpgroups x 64 query rows per CTA, one CTA per SM (shared memory).
constexpr int kFwdWgmmaWarpgroups = 2;
template <typename Elem, int DS, int DT>
cudaError_t launch_fwd_wgmma(const RelationKLParams& p, cudaStream_t stream) {
  constexpr int WG = kFwdWgmmaWarpgroups;
  constexpr int smem = FwdWgmmaSmem<Elem, DS, DT, WG>::kBytes;
  auto kernel = relation_kl_fwd_wgmma_kernel<Elem, DS, DT, WG>;
  cudaError_t e = cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, smem);
  if (e != cudaSuccess) return e;
  kernel<<<dim3(p.B * p.H, ceil_div(p.T, 64 * WG)), 128 * WG, smem, stream>>>(p);
  return cudaGetLastError();
}

// sm_90a self backward: row statistics, the row-term kernel into p.self_rows, the column-term
// kernel adding it into p.d_out (relation_kl_bwd_self_wgmma_kernel.cuh).
static_assert(kBwdWgStream == kRelationKLWgmmaTile, "the statistics pitch is a whole number of streamed tiles");
template <typename Elem, int DS, int DT>
cudaError_t launch_self_bwd_wgmma(const RelationKLParams& p, cudaStream_t stream) {
  const int64_t rows = static_cast<int64_t>(p.B) * p.H * p.stats_pitch;
  const int stat_blocks = static_cast<int>(std::min<int64_t>((rows + 255) / 256, 132 * 8));
  relation_kl_self_row_stats_kernel<Elem><<<stat_blocks, 256, 0, stream>>>(p);
  constexpr int smem = BwdSelfWgmmaSmem<Elem, DS, DT>::kBytes;
  auto row_kernel = relation_kl_bwd_self_wgmma_kernel<Elem, DS, DT, false>;
  auto column_kernel = relation_kl_bwd_self_wgmma_kernel<Elem, DS, DT, true>;
  cudaError_t e = cudaFuncSetAttribute(row_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, smem);
  if (e == cudaSuccess) e = cudaFuncSetAttribute(column_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, smem);
  if (e != cudaSuccess) return e;
  const dim3 grid(p.B * p.H, ceil_div(p.T, kBwdWgAnchors));
  row_kernel<<<grid, kBwdWgThreads, smem, stream>>>(p);
  column_kernel<<<grid, kBwdWgThreads, smem, stream>>>(p);
  return cudaGetLastError();
}

template <typename Elem, int DS, int DT, int WARPS, int BN, int CTAS>
cudaError_t launch_fwd_pipe(const RelationKLParams& p, cudaStream_t stream) {
  constexpr int smem = FwdPipeSmem<Elem, DS, DT, WARPS, BN>::kBytes;
  auto kernel = relation_kl_fwd_pipe_kernel<Elem, DS, DT, WARPS, BN, CTAS>;
  cudaError_t e = cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, smem);
  if (e != cudaSuccess) return e;
  kernel<<<dim3(p.B * p.H, ceil_div(p.T, 16 * WARPS)), 32 * WARPS, smem, stream>>>(p);
  return cudaSuccess;
}

// Forward CTAs of 8 warps x 16 rows: each key tile is fetched once per 128 query rows. Measured
// against 4 warps (64-row CTAs, 2 CTAs per SM) on an H200, docs/perf.md: 0-4 % faster.
constexpr int kFwdWarps = 8;

template <typename Elem, int DS, int DT>
cudaError_t launch_tc(const RelationKLParams& p, bool backward, cudaStream_t stream) {
  if (p.wgmma && p.Ds == DS && p.Dt == DT) {  // sm_90a, exact head dims (the caller's check)
    if (!backward) return launch_fwd_wgmma<Elem, DS, DT>(p, stream);
    if (p.mode == RelationKLBwdMode::kSelf) return launch_self_bwd_wgmma<Elem, DS, DT>(p, stream);
  }
  if (backward && p.mode == RelationKLBwdMode::kSelf) return launch_tc_self_bwd<Elem, DS, DT>(p, stream);
  const int blocks = ceil_div(p.T, kBlockM);
  if (!backward && (DS > 64 || DT > 64 || p.fwd_pipe_d64)) {
    // (warps, key tile, CTAs per SM): 8 x 64 x 1 (shared memory and registers allow one CTA),
    // 8 x 32 x 2 and 4 x 32 x 3 (smaller key tiles, more warps per SM): p.fwd_cfg 0, 1, 2.
    const cudaError_t e = p.fwd_cfg == 1   ? launch_fwd_pipe<Elem, DS, DT, 8, 32, 2>(p, stream)
                          : p.fwd_cfg == 2 ? launch_fwd_pipe<Elem, DS, DT, 4, 32, 3>(p, stream)
                                           : launch_fwd_pipe<Elem, DS, DT, 8, 64, 1>(p, stream);
    if (e != cudaSuccess) return e;
  } else if (!backward) {
    constexpr int smem = FwdSmem<Elem, DS, DT, kFwdWarps>::kBytes;
    auto kernel = relation_kl_fwd_kernel<Elem, DS, DT, kFwdWarps>;
    cudaError_t e = cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, smem);
    if (e != cudaSuccess) return e;
    kernel<<<dim3(p.B * p.H, ceil_div(p.T, 16 * kFwdWarps)), 32 * kFwdWarps, smem, stream>>>(p);
  } else {
    constexpr int smem = BwdSmem<Elem, DS, DT>::kBytes;
    auto kernel = relation_kl_bwd_kernel<Elem, DS, DT>;
    cudaError_t e = cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, smem);
    if (e != cudaSuccess) return e;
    const int heads = p.mode == RelationKLBwdMode::kColumns ? p.Hk : p.H;
    kernel<<<dim3(p.B * heads, blocks), kThreads, smem, stream>>>(p);
  }
  return cudaGetLastError();
}

template <typename Elem>
cudaError_t launch_tc_dims(const RelationKLParams& p, bool backward, cudaStream_t stream) {
  if (p.Ds <= 64)
    return p.Dt <= 64 ? launch_tc<Elem, 64, 64>(p, backward, stream)
                      : launch_tc<Elem, 64, 128>(p, backward, stream);
  return p.Dt <= 64 ? launch_tc<Elem, 128, 64>(p, backward, stream)
                    : launch_tc<Elem, 128, 128>(p, backward, stream);
}

template <typename Elem>
cudaError_t launch_simt(const RelationKLParams& p, bool backward, cudaStream_t stream) {
  const int blocks = ceil_div(p.T, kSimtRows);
  const int smem = simt_smem_bytes(p.Ds, p.Dt, backward);
  if (!backward) {
    auto kernel = relation_kl_fwd_simt_kernel<Elem>;
    cudaError_t e = cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, smem);
    if (e != cudaSuccess) return e;
    kernel<<<dim3(p.B * p.H, blocks), kSimtRows, smem, stream>>>(p);
  } else {
    auto kernel = relation_kl_bwd_simt_kernel<Elem>;
    cudaError_t e = cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, smem);
    if (e != cudaSuccess) return e;
    const int heads = p.mode == RelationKLBwdMode::kColumns ? p.Hk : p.H;
    kernel<<<dim3(p.B * heads, blocks), kSimtRows, smem, stream>>>(p);
  }
  return cudaGetLastError();
}

}  // namespace linearard::ops::rkl
