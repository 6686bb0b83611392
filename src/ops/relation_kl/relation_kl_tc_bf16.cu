// bf16 instantiations of the tensor-core relation-KL kernels.
#include "ops/relation_kl/relation_kl_launch_template.cuh"

namespace linearard::ops {
// choose_kernel's table of the fused self backward's shared memory (relation_kl_choose.h).
static_assert(kRelationKLSelfBwdSmemBytes[0][0] == rkl::BwdSelfSmem<__nv_bfloat16, 64, 64>::kBytes &&
              kRelationKLSelfBwdSmemBytes[0][1] == rkl::BwdSelfSmem<__nv_bfloat16, 64, 128>::kBytes &&
              kRelationKLSelfBwdSmemBytes[1][0] == rkl::BwdSelfSmem<__nv_bfloat16, 128, 64>::kBytes &&
              kRelationKLSelfBwdSmemBytes[1][1] == rkl::BwdSelfSmem<__nv_bfloat16, 128, 128>::kBytes &&
              rkl::BwdSelfSmem<__nv_bfloat16, 128, 128>::kBytes == rkl::BwdSelfSmem<__half, 128, 128>::kBytes,
              "kRelationKLSelfBwdSmemBytes is out of date");

cudaError_t launch_relation_kl_tc_bf16(const RelationKLParams& p, cudaStream_t stream) {
  return rkl::launch_tc_dims<__nv_bfloat16>(p, stream);
}
}  // namespace linearard::ops
