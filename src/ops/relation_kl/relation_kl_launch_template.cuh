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
  const int key_blocks = ceil_div(p.shape.T, kSelfKeys);
  cudaError_t e = cudaSuccess;
  if (p.launch.bh0 == 0)
    relation_kl_self_quantum_wide_kernel<Elem><<<p.shape.B * p.shape.H, kQuantumWideThreads, 0, stream>>>(p);
  auto kernel = relation_kl_bwd_self_pipe_kernel<Elem, DS, DT>;
  e = cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, smem);
  if (e != cudaSuccess) return e;
  kernel<<<dim3(p.launch.n_bh, key_blocks), kSelfThreads, smem, stream>>>(p);
  const int64_t pairs = static_cast<int64_t>(p.launch.n_bh) * p.shape.T * p.shape.Ds / 2;
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
  kernel<<<dim3(p.shape.B * p.shape.H, ceil_div(p.shape.T, 64 * WG)), 128 * WG, smem, stream>>>(p);
  return cudaGetLastError();
}

// sm_90a self backward: row statistics, the row-term kernel into p.workspace.self_rows, the column-term
// kernel adding it into p.layout.d_out (relation_kl_bwd_self_wgmma_kernel.cuh).
static_assert(kBwdWgStream == kRelationKLWgmmaTile,
              "the statistics pitch is a whole number of streamed tiles");
// DOCS: the packed-document instantiations (p.layout.doc_ids set).
template <typename Elem, int DS, int DT, bool DOCS>
cudaError_t launch_self_bwd_wgmma_impl(const RelationKLParams& p, cudaStream_t stream) {
  const int64_t rows = static_cast<int64_t>(p.shape.B) * p.shape.H * p.workspace.stats_pitch;
  const int stat_blocks = static_cast<int>(std::min<int64_t>((rows + 255) / 256, 132 * 8));
  relation_kl_self_row_stats_kernel<Elem><<<stat_blocks, 256, 0, stream>>>(p);
  constexpr int smem = BwdSelfWgmmaSmem<Elem, DS, DT, DOCS>::kBytes;
  auto row_kernel = relation_kl_bwd_self_wgmma_kernel<Elem, DS, DT, false, DOCS>;
  auto column_kernel = relation_kl_bwd_self_wgmma_kernel<Elem, DS, DT, true, DOCS>;
  cudaError_t e = cudaFuncSetAttribute(row_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, smem);
  if (e == cudaSuccess)
    e = cudaFuncSetAttribute(column_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, smem);
  if (e != cudaSuccess) return e;
  const dim3 grid(p.shape.B * p.shape.H, ceil_div(p.shape.T, kBwdWgAnchors));
  row_kernel<<<grid, kBwdWgThreads, smem, stream>>>(p);
  column_kernel<<<grid, kBwdWgThreads, smem, stream>>>(p);
  return cudaGetLastError();
}
template <typename Elem, int DS, int DT>
cudaError_t launch_self_bwd_wgmma(const RelationKLParams& p, cudaStream_t stream) {
  return p.layout.doc_ids != nullptr ? launch_self_bwd_wgmma_impl<Elem, DS, DT, true>(p, stream)
                                     : launch_self_bwd_wgmma_impl<Elem, DS, DT, false>(p, stream);
}

template <typename Elem, int DS, int DT, int WARPS, int BN, int CTAS>
cudaError_t launch_fwd_pipe(const RelationKLParams& p, cudaStream_t stream) {
  constexpr int smem = FwdPipeSmem<Elem, DS, DT, WARPS, BN>::kBytes;
  auto kernel = relation_kl_fwd_pipe_kernel<Elem, DS, DT, WARPS, BN, CTAS>;
  cudaError_t e = cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, smem);
  if (e != cudaSuccess) return e;
  kernel<<<dim3(p.shape.B * p.shape.H, ceil_div(p.shape.T, 16 * WARPS)), 32 * WARPS, smem, stream>>>(p);
  return cudaGetLastError();
}

// Forward CTAs of 8 warps x 16 rows: each key tile is fetched once per 128 query rows. Measured
// against 4 warps (64-row CTAs, 2 CTAs per SM) on an H200, docs/perf.md: 0-4 % faster.
constexpr int kFwdWarps = 8;

template <typename Elem, int DS, int DT>
cudaError_t launch_tc(const RelationKLParams& p, cudaStream_t stream) {
  const RelationKLShape& s = p.shape;
  switch (p.launch.kernel) {
    case RelationKLKernel::kFwdWgmma:  // sm_90a, exact head dims (choose_kernel's check)
      if (s.Ds == DS && s.Dt == DT) return launch_fwd_wgmma<Elem, DS, DT>(p, stream);
      break;
    case RelationKLKernel::kSelfBwdWgmma:
      if (s.Ds == DS && s.Dt == DT) return launch_self_bwd_wgmma<Elem, DS, DT>(p, stream);
      break;
    case RelationKLKernel::kSelfBwdMmaPipe:
      return launch_tc_self_bwd<Elem, DS, DT>(p, stream);
    // (warps, key tile, CTAs per SM): 8 x 64 x 1 (shared memory and registers allow one CTA),
    // 8 x 32 x 2 and 4 x 32 x 3 (smaller key tiles, more warps per SM).
    case RelationKLKernel::kFwdMmaPipe8x32x2:
      return launch_fwd_pipe<Elem, DS, DT, 8, 32, 2>(p, stream);
    case RelationKLKernel::kFwdMmaPipe4x32x3:
      return launch_fwd_pipe<Elem, DS, DT, 4, 32, 3>(p, stream);
    case RelationKLKernel::kFwdMmaPipe8x64x1:
      return launch_fwd_pipe<Elem, DS, DT, 8, 64, 1>(p, stream);
    case RelationKLKernel::kFwdMma: {
      constexpr int smem = FwdSmem<Elem, DS, DT, kFwdWarps>::kBytes;
      auto kernel = relation_kl_fwd_kernel<Elem, DS, DT, kFwdWarps>;
      cudaError_t e = cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, smem);
      if (e != cudaSuccess) return e;
      kernel<<<dim3(s.B * s.H, ceil_div(s.T, 16 * kFwdWarps)), 32 * kFwdWarps, smem, stream>>>(p);
      return cudaGetLastError();
    }
    case RelationKLKernel::kBwdMma:
    case RelationKLKernel::kSelfBwdMmaSplit: {  // one term per launch: p.launch.mode rows or columns
      constexpr int smem = BwdSmem<Elem, DS, DT>::kBytes;
      auto kernel = relation_kl_bwd_kernel<Elem, DS, DT>;
      cudaError_t e = cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, smem);
      if (e != cudaSuccess) return e;
      const int heads = p.launch.mode == RelationKLBwdMode::kColumns ? s.Hk : s.H;
      kernel<<<dim3(s.B * heads, ceil_div(s.T, kBlockM)), kThreads, smem, stream>>>(p);
      return cudaGetLastError();
    }
    default:
      break;
  }
  return cudaErrorInvalidValue;  // a SIMT kernel, or wgmma at other head dims: not this launcher's
}

template <typename Elem>
cudaError_t launch_tc_dims(const RelationKLParams& p, cudaStream_t stream) {
  if (p.shape.Ds <= 64)
    return p.shape.Dt <= 64 ? launch_tc<Elem, 64, 64>(p, stream) : launch_tc<Elem, 64, 128>(p, stream);
  return p.shape.Dt <= 64 ? launch_tc<Elem, 128, 64>(p, stream) : launch_tc<Elem, 128, 128>(p, stream);
}

// kFwdSimt, kBwdSimt (one term per launch) and kSelfBwdSimt (p.launch.mode kSelf).
template <typename Elem>
cudaError_t launch_simt(const RelationKLParams& p, cudaStream_t stream) {
  if (!relation_kl_kernel_is_simt(p.launch.kernel)) return cudaErrorInvalidValue;
  const bool backward = !relation_kl_kernel_is_forward(p.launch.kernel);
  const int blocks = ceil_div(p.shape.T, kSimtRows);
  const int smem = simt_smem_bytes(p.shape.Ds, p.shape.Dt, backward);
  if (!backward) {
    auto kernel = relation_kl_fwd_simt_kernel<Elem>;
    cudaError_t e = cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, smem);
    if (e != cudaSuccess) return e;
    kernel<<<dim3(p.shape.B * p.shape.H, blocks), kSimtRows, smem, stream>>>(p);
  } else {
    auto kernel = relation_kl_bwd_simt_kernel<Elem>;
    cudaError_t e = cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, smem);
    if (e != cudaSuccess) return e;
    const int heads = p.launch.mode == RelationKLBwdMode::kColumns ? p.shape.Hk : p.shape.H;
    kernel<<<dim3(p.shape.B * heads, blocks), kSimtRows, smem, stream>>>(p);
  }
  return cudaGetLastError();
}

}  // namespace linearard::ops::rkl
