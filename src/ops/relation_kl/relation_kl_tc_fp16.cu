// fp16 instantiations of the tensor-core relation-KL kernels.
#include "ops/relation_kl/relation_kl_launch_template.cuh"

namespace linearard::ops {
cudaError_t launch_relation_kl_tc_fp16(const RelationKLParams& p, cudaStream_t stream) {
  return rkl::launch_tc_dims<__half>(p, stream);
}
}  // namespace linearard::ops
