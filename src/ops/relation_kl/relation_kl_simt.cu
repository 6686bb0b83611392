// Instantiations of the fp32 SIMT relation-KL kernels (fp32 inputs; bf16/fp16 with head dims the
// tensor-core kernels do not take).
#include "ops/relation_kl/relation_kl_launch_template.cuh"

namespace linearard::ops {
cudaError_t launch_relation_kl_simt_bf16(const RelationKLParams& p, cudaStream_t stream) {
  return rkl::launch_simt<__nv_bfloat16>(p, stream);
}
cudaError_t launch_relation_kl_simt_fp16(const RelationKLParams& p, cudaStream_t stream) {
  return rkl::launch_simt<__half>(p, stream);
}
cudaError_t launch_relation_kl_simt_fp32(const RelationKLParams& p, cudaStream_t stream) {
  return rkl::launch_simt<float>(p, stream);
}
}  // namespace linearard::ops
