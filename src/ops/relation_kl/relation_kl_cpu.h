// CPU entry points of the relation-KL op: the specification the CUDA kernels are tested against
// (relation_kl.h documents the math). Called by the dispatcher in relation_kl.cpp after all
// Tensor checks: inputs are contiguous CPU tensors of one float dtype, key_mask is a contiguous
// (B, T) bool CPU tensor or std::nullopt.
//
// Tiled over (64-row block x 128-key tile) with an online (one-pass) softmax, so the extra memory
// is O(B H T) for the statistics, O(B H T D) for upcast copies and gradient accumulators, plus
// O(threads x tile) scratch: no T x T buffer ever exists. Logits and gradient products are
// computed in float64 for float64 inputs and in float32 otherwise (row sums always in float64).
// Deterministic and independent of the thread count: every output element is written by exactly
// one task, in a fixed order, with no BLAS call whose blocking could vary.
//
// The backward does not read stats.lse_s / stats.lse_t: it recomputes the row statistics from
// the very logits it differentiates (relation_kl_cpu.cpp, backward_impl, says why). The argument
// is kept for parity with the CUDA entry points.
#pragma once
#include "ops/relation_kl/relation_kl.h"

namespace linearard::ops {

RelationKLStats relation_kl_forward_cpu(const at::Tensor& xq, const at::Tensor& xk,
                                        const at::Tensor& yq, const at::Tensor& yk,
                                        const std::optional<at::Tensor>& key_mask,
                                        const RelationKLOptions& options);

RelationKLGrads relation_kl_backward_cpu(const at::Tensor& grad_kl, const at::Tensor& xq,
                                         const at::Tensor& xk, const at::Tensor& yq,
                                         const at::Tensor& yk,
                                         const std::optional<at::Tensor>& key_mask,
                                         const RelationKLStats& stats,
                                         const RelationKLOptions& options);

// Self-relation backward (xq = xk = x, yq = yk = y): dX = scale_s (G + G^T) X, in x's dtype.
at::Tensor relation_kl_self_backward_cpu(const at::Tensor& grad_kl, const at::Tensor& x,
                                         const at::Tensor& y,
                                         const std::optional<at::Tensor>& key_mask,
                                         const RelationKLStats& stats,
                                         const RelationKLOptions& options);

}  // namespace linearard::ops
