// Launchers of the relation-KL kernels: plain functions of RelationKLParams (no ATen), one
// translation unit per element type so the instantiations compile in parallel. They return the
// launch's cudaError_t; relation_kl_cuda.cu checks it.
#pragma once
#include <cuda_runtime.h>

#include "ops/relation_kl/relation_kl_params.h"

namespace linearard::ops {

// Tensor-core kernels (mma.sync m16n8k16) take Ds and Dt that are multiples of 16 and <= 128.
constexpr int kRelationKLTensorCoreMaxDim = 128;
inline bool relation_kl_tensor_core_dims(int Ds, int Dt) {
  return Ds % 16 == 0 && Dt % 16 == 0 && Ds <= kRelationKLTensorCoreMaxDim &&
         Dt <= kRelationKLTensorCoreMaxDim;
}
// The SIMT kernels keep 32 anchor rows of both operands (fp32) and their float64 gradient in
// shared memory: 197 KB at Ds = Dt = 256.
constexpr int kRelationKLSimtMaxDim = 256;

// Streamed rows per tile of the sm_90a self backward (kBwdWgStream): the statistics' row pitch unit.
constexpr int kRelationKLWgmmaTile = 64;
// The sm_90a warpgroup-MMA kernels take these head dims exactly (one 128-byte swizzle chunk or two).
inline bool relation_kl_wgmma_dims(int Ds, int Dt) {
  return (Ds == 64 || Ds == 128) && (Dt == 64 || Dt == 128);
}

// Dynamic shared memory of the fused tensor-core self backward (bf16 and fp16 alike): 227 KB at
// Ds = Dt = 128, above an A100's 163 KB opt-in limit (sm_80 then runs the row + column kernels).
int relation_kl_tc_self_bwd_smem_bytes(int Ds, int Dt);

// backward = false: forward (p.kl, p.lse_s, p.lse_t); true: backward in p.mode into p.d_out.
cudaError_t launch_relation_kl_tc_bf16(const RelationKLParams& p, bool backward, cudaStream_t stream);
cudaError_t launch_relation_kl_tc_fp16(const RelationKLParams& p, bool backward, cudaStream_t stream);
cudaError_t launch_relation_kl_simt_bf16(const RelationKLParams& p, bool backward, cudaStream_t stream);
cudaError_t launch_relation_kl_simt_fp16(const RelationKLParams& p, bool backward, cudaStream_t stream);
cudaError_t launch_relation_kl_simt_fp32(const RelationKLParams& p, bool backward, cudaStream_t stream);

}  // namespace linearard::ops
