// bf16 instantiations of the tensor-core relation-KL kernels.
#include "ops/relation_kl/relation_kl_launch_template.cuh"

namespace linearard::ops {
cudaError_t launch_relation_kl_tc_bf16(const RelationKLParams& p, bool backward, cudaStream_t stream) {
  return rkl::launch_tc_dims<__nv_bfloat16>(p, backward, stream);
}
int relation_kl_tc_self_bwd_smem_bytes(int Ds, int Dt) {
  using E = __nv_bfloat16;
  if (Ds <= 64) return Dt <= 64 ? rkl::BwdSelfSmem<E, 64, 64>::kBytes : rkl::BwdSelfSmem<E, 64, 128>::kBytes;
  return Dt <= 64 ? rkl::BwdSelfSmem<E, 128, 64>::kBytes : rkl::BwdSelfSmem<E, 128, 128>::kBytes;
}
}  // namespace linearard::ops
