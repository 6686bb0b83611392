// Launchers of the relation-KL kernels: plain functions of RelationKLParams (no ATen), one
// translation unit per element type so the instantiations compile in parallel. Each launches
// p.launch.kernel (choose_kernel, relation_kl_choose.h) and returns the launch's cudaError_t;
// relation_kl_cuda.cu checks it.
#pragma once
#include <cuda_runtime.h>

#include "ops/relation_kl/relation_kl_choose.h"
#include "ops/relation_kl/relation_kl_params.h"

namespace linearard::ops {

// The SIMT kernels keep 32 anchor rows of both operands (fp32) and their float64 gradient in
// shared memory: 197 KB at Ds = Dt = 256.
constexpr int kRelationKLSimtMaxDim = 256;

// Streamed rows per tile of the sm_90a self backward (kBwdWgStream): the statistics' row pitch unit.
constexpr int kRelationKLWgmmaTile = 64;

// Tensor-core families (wgmma, mma.sync) and SIMT families; the forward when the kernel is a
// forward one, else the backward term in p.launch.mode into p.layout.d_out.
cudaError_t launch_relation_kl_tc_bf16(const RelationKLParams& p, cudaStream_t stream);
cudaError_t launch_relation_kl_tc_fp16(const RelationKLParams& p, cudaStream_t stream);
cudaError_t launch_relation_kl_simt_bf16(const RelationKLParams& p, cudaStream_t stream);
cudaError_t launch_relation_kl_simt_fp16(const RelationKLParams& p, cudaStream_t stream);
cudaError_t launch_relation_kl_simt_fp32(const RelationKLParams& p, cudaStream_t stream);

}  // namespace linearard::ops
