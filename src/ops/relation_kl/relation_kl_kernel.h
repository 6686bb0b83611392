// The relation-KL kernel families: one named value per kernel (or fixed sequence of kernels) that a
// forward, backward or self backward call can launch. relation_kl_choose.h picks one
// (choose_kernel), the launchers (relation_kl_launch_template.cuh) switch on it. Adding a kernel is
// a new value here, its name, one branch in choose_kernel and one case in the launcher.
#pragma once

namespace linearard::ops {

enum class RelationKLKernel : int {
  // Forward (kl, lse_s, lse_t).
  kFwdWgmma = 0,         // sm_90a warpgroup MMA, Ds, Dt in {64, 128} (relation_kl_fwd_wgmma_kernel.cuh)
  kFwdMmaPipe8x64x1,     // mma.sync, cp.async pipeline: 8 warps, 64-key tiles, 1 CTA per SM
  kFwdMmaPipe8x32x2,     //   8 warps, 32-key tiles, 2 CTAs per SM (the default; docs/perf.md)
  kFwdMmaPipe4x32x3,     //   4 warps, 32-key tiles, 3 CTAs per SM (relation_kl_fwd_pipe_kernel.cuh)
  kFwdMma,               // mma.sync, plain: Ds, Dt <= 64 (relation_kl_fwd_kernel.cuh)
  kFwdSimt,              // fp32 SIMT (relation_kl_simt_kernel.cuh)
  // Backward of a general relation: the row term into d_xq, the column term into d_xk.
  kBwdMma,               // mma.sync row and column kernels (relation_kl_bwd_kernel.cuh)
  kBwdSimt,              // SIMT row and column kernels
  // Self backward (xq = xk = x): d_x = scale_s (G + G^T) x.
  kSelfBwdWgmma,         // sm_90a row-term then column-term kernels (relation_kl_bwd_self_wgmma_kernel.cuh)
  kSelfBwdMmaPipe,       // mma.sync fused, int64 fixed-point accumulator (relation_kl_bwd_self_pipe_kernel.cuh)
  kSelfBwdMmaSplit,      // mma.sync row and column kernels, summed in fp32 (shared memory too small to fuse)
  kSelfBwdSimt,          // SIMT, both terms in one kernel
};

inline const char* relation_kl_kernel_name(RelationKLKernel k) {
  switch (k) {
    case RelationKLKernel::kFwdWgmma: return "fwd_wgmma";
    case RelationKLKernel::kFwdMmaPipe8x64x1: return "fwd_mma_pipe_8x64x1";
    case RelationKLKernel::kFwdMmaPipe8x32x2: return "fwd_mma_pipe_8x32x2";
    case RelationKLKernel::kFwdMmaPipe4x32x3: return "fwd_mma_pipe_4x32x3";
    case RelationKLKernel::kFwdMma: return "fwd_mma";
    case RelationKLKernel::kFwdSimt: return "fwd_simt";
    case RelationKLKernel::kBwdMma: return "bwd_mma";
    case RelationKLKernel::kBwdSimt: return "bwd_simt";
    case RelationKLKernel::kSelfBwdWgmma: return "self_bwd_wgmma";
    case RelationKLKernel::kSelfBwdMmaPipe: return "self_bwd_mma_pipe";
    case RelationKLKernel::kSelfBwdMmaSplit: return "self_bwd_mma_split";
    case RelationKLKernel::kSelfBwdSimt: return "self_bwd_simt";
  }
  return "unknown";
}

inline bool relation_kl_kernel_is_forward(RelationKLKernel k) {
  return k == RelationKLKernel::kFwdWgmma || k == RelationKLKernel::kFwdMmaPipe8x64x1 ||
         k == RelationKLKernel::kFwdMmaPipe8x32x2 || k == RelationKLKernel::kFwdMmaPipe4x32x3 ||
         k == RelationKLKernel::kFwdMma || k == RelationKLKernel::kFwdSimt;
}
inline bool relation_kl_kernel_is_simt(RelationKLKernel k) {
  return k == RelationKLKernel::kFwdSimt || k == RelationKLKernel::kBwdSimt ||
         k == RelationKLKernel::kSelfBwdSimt;
}

}  // namespace linearard::ops
