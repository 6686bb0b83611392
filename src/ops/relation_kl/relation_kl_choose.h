// The one place that decides which relation-KL kernel runs: choose_kernel, a pure function of the
// call (forward / backward / self backward), the problem's shape, the inputs' element type, the
// device's capabilities and the LINEARARD_RKL_* switches. Torch- and CUDA-free, so the decision table is
// tested on CPU (tests/ops/test_relation_kl_choose.cpp); relation_kl_cuda.cu reads the device and
// the switches, calls it and launches what it returns.
#pragma once
#include <cstdlib>

#include "ops/relation_kl/relation_kl_kernel.h"
#include "ops/relation_kl/relation_kl_params.h"

namespace linearard::ops {

enum class RelationKLPass : int { kForward = 0, kBackward = 1, kSelfBackward = 2 };

// Element type of the four inputs (one type; mixed student / teacher types run as fp32).
enum class RelationKLDtype : int { kBF16 = 0, kFP16 = 1, kFP32 = 2 };

// Tensor-core kernels (mma.sync m16n8k16) take Ds and Dt that are multiples of 16 and <= 128.
constexpr int kRelationKLTensorCoreMaxDim = 128;
inline bool relation_kl_tensor_core_dims(int Ds, int Dt) {
  return Ds % 16 == 0 && Dt % 16 == 0 && Ds <= kRelationKLTensorCoreMaxDim &&
         Dt <= kRelationKLTensorCoreMaxDim;
}
// The sm_90a warpgroup-MMA kernels take these head dims exactly (one 128-byte swizzle chunk or two).
inline bool relation_kl_wgmma_dims(int Ds, int Dt) {
  return (Ds == 64 || Ds == 128) && (Dt == 64 || Dt == 128);
}
// Dynamic shared memory of the fused mma.sync self backward (bf16 and fp16 alike), per template
// bound (Ds <= 64 or 128) x (Dt <= 64 or 128): BwdSelfSmem<Elem, DS, DT>::kBytes in
// relation_kl_bwd_self_kernel.cuh, checked equal by a static_assert in relation_kl_tc_bf16.cu.
// 227 KB at Ds = Dt = 128 is above an A100's 163 KB opt-in limit (sm_80 then runs the row + column
// kernels).
constexpr int kRelationKLSelfBwdSmemBytes[2][2] = {{129024, 161792}, {194560, 227328}};
inline int relation_kl_tc_self_bwd_smem_bytes(int Ds, int Dt) {
  return kRelationKLSelfBwdSmemBytes[Ds <= 64 ? 0 : 1][Dt <= 64 ? 0 : 1];
}

// What choose_kernel needs to know of the GPU (relation_kl_cuda.cu reads it; 0 when unknown).
struct RelationKLDeviceCaps {
  int arch = 0;        // compute capability major * 10 + minor: 80 A100, 90 H100 / H200
  int smem_optin = 0;  // bytes of shared memory a block may opt in to (163 KB A100, 227 KB H100)
};

// Kernel switches for same-binary A/B timing and for tests that force a family (the GPU test sets
// them with setenv). from_env() is the only reader of the LINEARARD_RKL_* environment; the CUDA
// entry points call it once per call.
//   LINEARARD_RKL_WGMMA=0        no sm_90a warpgroup-MMA kernels (the mma.sync ones run on H100 too)
//   LINEARARD_RKL_SELF_SPLIT=1   self backward from the row + column kernels (the A100 path) anywhere
//   LINEARARD_RKL_FWD_CFG=0|1|2  pipelined mma.sync forward CTA shape: 8x64x1, 8x32x2 (default,
//                                measured), 4x32x3 (warps x key tile x CTAs per SM)
//   LINEARARD_RKL_FWD_PIPE64=1   pipelined forward also at Ds, Dt <= 64
//   LINEARARD_RKL_CHUNK=n        mma.sync self backward (b, h) per accumulator chunk (default: the
//                                accumulator at most the inputs' size)
struct KernelSwitches {
  bool wgmma = true;
  bool self_split = false;
  int fwd_cfg = 1;
  bool fwd_pipe_d64 = false;
  int chunk = 0;

  static KernelSwitches from_env() {
    auto env_int = [](const char* name, int fallback) {
      const char* v = std::getenv(name);
      return v != nullptr && *v != '\0' ? std::atoi(v) : fallback;
    };
    KernelSwitches s;
    s.wgmma = env_int("LINEARARD_RKL_WGMMA", 1) != 0;
    s.self_split = env_int("LINEARARD_RKL_SELF_SPLIT", 0) != 0;
    s.fwd_cfg = env_int("LINEARARD_RKL_FWD_CFG", 1);
    s.fwd_pipe_d64 = env_int("LINEARARD_RKL_FWD_PIPE64", 0) != 0;
    s.chunk = env_int("LINEARARD_RKL_CHUNK", 0);
    return s;
  }
};

// The kernel family for one call. Every family takes packed documents (shape.packed: the
// per-element document check and the document-span tile skipping), so the choice does not depend
// on it. Tensor cores take bf16 / fp16 with tensor-core head dims and
// positive scales; everything else runs the SIMT kernels. On sm_90 (exactly: the sm_90a cubin) the
// warpgroup-MMA kernels serve the forward and the self backward at Ds, Dt in {64, 128}; the
// general backward always runs the mma.sync row and column kernels.
inline RelationKLKernel choose_kernel(RelationKLPass pass, const RelationKLShape& shape, RelationKLDtype dtype,
                                      const RelationKLDeviceCaps& caps, const KernelSwitches& sw) {
  const bool tensor_cores = dtype != RelationKLDtype::kFP32 &&
                            relation_kl_tensor_core_dims(shape.Ds, shape.Dt) && shape.scale_s > 0 &&
                            shape.scale_t > 0;
  if (!tensor_cores)
    return pass == RelationKLPass::kForward    ? RelationKLKernel::kFwdSimt
           : pass == RelationKLPass::kBackward ? RelationKLKernel::kBwdSimt
                                               : RelationKLKernel::kSelfBwdSimt;
  const bool wgmma = sw.wgmma && relation_kl_wgmma_dims(shape.Ds, shape.Dt) && caps.arch == 90;
  switch (pass) {
    case RelationKLPass::kForward:
      if (wgmma) return RelationKLKernel::kFwdWgmma;
      // At D = 64 the exponentials dominate and the plain kernel measured faster (docs/perf.md).
      if (shape.Ds > 64 || shape.Dt > 64 || sw.fwd_pipe_d64)
        return sw.fwd_cfg == 1   ? RelationKLKernel::kFwdMmaPipe8x32x2
               : sw.fwd_cfg == 2 ? RelationKLKernel::kFwdMmaPipe4x32x3
                                 : RelationKLKernel::kFwdMmaPipe8x64x1;
      return RelationKLKernel::kFwdMma;
    case RelationKLPass::kBackward:
      return RelationKLKernel::kBwdMma;
    case RelationKLPass::kSelfBackward:
      if (wgmma) return RelationKLKernel::kSelfBwdWgmma;
      if (!sw.self_split && relation_kl_tc_self_bwd_smem_bytes(shape.Ds, shape.Dt) <= caps.smem_optin)
        return RelationKLKernel::kSelfBwdMmaPipe;
      return RelationKLKernel::kSelfBwdMmaSplit;
  }
  return RelationKLKernel::kFwdSimt;
}

}  // namespace linearard::ops
