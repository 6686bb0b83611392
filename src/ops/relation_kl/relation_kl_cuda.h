// CUDA entry points of the relation-KL op (relation_kl.h documents the math). Called by the
// dispatcher in relation_kl.cpp after all Tensor checks; inputs are contiguous CUDA tensors.
#pragma once
#include "ops/relation_kl/relation_kl.h"

#ifdef LINEARARD_WITH_CUDA
namespace linearard::ops {

RelationKLStats relation_kl_forward_cuda(const at::Tensor& xq, const at::Tensor& xk,
                                         const at::Tensor& yq, const at::Tensor& yk,
                                         const std::optional<at::Tensor>& key_mask,
                                         const RelationKLOptions& options);

RelationKLGrads relation_kl_backward_cuda(const at::Tensor& grad_kl, const at::Tensor& xq,
                                          const at::Tensor& xk, const at::Tensor& yq,
                                          const at::Tensor& yk,
                                          const std::optional<at::Tensor>& key_mask,
                                          const RelationKLStats& stats,
                                          const RelationKLOptions& options);

// Self-relation backward: dX = scale_s (G + G^T) X in one kernel family, deterministic.
at::Tensor relation_kl_self_backward_cuda(const at::Tensor& grad_kl, const at::Tensor& x,
                                          const at::Tensor& y,
                                          const std::optional<at::Tensor>& key_mask,
                                          const RelationKLStats& stats,
                                          const RelationKLOptions& options);

}  // namespace linearard::ops
#endif
