// The naive, materialised relation-KL: builds the (B, H, T, T) logit maps with LibTorch ops in the
// inputs' own dtype. It is the "same-dtype naive implementation" of the 2x error rule (tests) and
// the baseline of `linearard bench relation-kl`; never use it in training (O(T^2) memory).
#pragma once
#include "ops/relation_kl/relation_kl.h"

namespace linearard::ops {

// Per-row KL (B, H, T) float32 (float64 for float64 inputs); differentiable through LibTorch autograd w.r.t. xq and xk.
// Same contract as relation_kl() in relation_kl.h.
at::Tensor relation_kl_materialized(const at::Tensor& xq, const at::Tensor& xk,
                                    const at::Tensor& yq, const at::Tensor& yk,
                                    const std::optional<at::Tensor>& key_mask,
                                    const RelationKLOptions& options);

}  // namespace linearard::ops
