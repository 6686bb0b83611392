// Relation-KL: exact, linear-memory KL(teacher || student) between the row-wise softmax
// distributions of two relation matrices, without ever materialising a T x T map.
//
//   s_ij = scale_s <Xq_i, Xk_j>      Xq (B, H, T, Ds), Xk (B, Hk, T, Ds)   (student)
//   t_ij = scale_t <Yq_i, Yk_j>      Yq (B, H, T, Dt), Yk (B, Hkt, T, Dt)  (teacher)
//   KL_i = sum_j p_t,ij (log p_t,ij - log p_s,ij),  p = softmax over the valid keys j of row i
//
// Valid keys of row i: key_mask[b, j] != 0, (j <= i when causal) and, with packed documents,
// doc_ids[b, j] == doc_ids[b, i] (RelationKLOptions::doc_ids). Head h reads key head
// h / (H / Hk) (GQA). Rows that are padded (key_mask[b, i] == 0) or have no valid key give KL 0,
// LSE -inf and zero gradient. Gradients flow to the student only:
//   dL/ds_ij = g_i (p_s,ij - p_t,ij).
// For a self-relation (Q/Q, K/K, V/V) pass the same tensor as Xq and Xk: the gradient then carries
// both the row and the column term (relation_kl_self fuses them).
#pragma once
#include <ATen/ATen.h>

#include <optional>

namespace linearard::ops {

struct RelationKLOptions {
  double scale_s = 1.0;  // student logit scale, usually 1/sqrt(Ds)
  double scale_t = 1.0;  // teacher logit scale, usually 1/sqrt(Dt)
  bool causal = true;    // keys j <= i only (the diagonal is included)
  // Packed documents (several documents in one training block, LinearARD arXiv 2604.00004's
  // training blocks): (B, T) integer document ids, or std::nullopt for "one document per row".
  // Key j is valid for row i only when doc_ids[b, j] == doc_ids[b, i], in addition to the key mask
  // and causality, so a relation row never sees keys of another document: the block-diagonal mask
  // of FlashAttention-2's variable-length API (flash_attn_varlen_func, cu_seqlens), given per token.
  // The rule is plain equality: ids need not be non-decreasing, nor documents contiguous, for the
  // result to be right; the implementations skip key tiles outside the documents of a row tile, which
  // saves the most when every document is one contiguous run (the usual packing: 0 0 0 1 1 2 2 2).
  // Row i always sees its own key when that key is valid (key_mask); a row whose document has no
  // other valid key is a one-key softmax, KL 0. Any integer dtype; values are compared as int32
  // (ids must fit in int32).
  std::optional<at::Tensor> doc_ids;
};

struct RelationKLStats {
  at::Tensor kl;     // (B, H, T) float32: per-row KL, 0 for invalid rows
  at::Tensor lse_s;  // (B, H, T) float32: natural-log LSE of the scaled student logits, -inf if invalid
  at::Tensor lse_t;  // (B, H, T) float32: same for the teacher
};

// Forward without autograd. key_mask: (B, T) bool or integer, or std::nullopt for "all valid".
// Inputs bf16, fp16, fp32 or (CPU only) fp64; the statistics are float32 (float64 for fp64 inputs).
RelationKLStats relation_kl_forward(const at::Tensor& xq, const at::Tensor& xk, const at::Tensor& yq,
                                    const at::Tensor& yk, const std::optional<at::Tensor>& key_mask,
                                    const RelationKLOptions& options);

struct RelationKLGrads {
  at::Tensor d_xq;  // (B, H, T, Ds), dtype of xq
  at::Tensor d_xk;  // (B, Hk, T, Ds), dtype of xk
};

// Backward from the saved statistics: grad_kl (B, H, T) is dL/dKL_i.
RelationKLGrads relation_kl_backward(const at::Tensor& grad_kl, const at::Tensor& xq,
                                     const at::Tensor& xk, const at::Tensor& yq,
                                     const at::Tensor& yk, const std::optional<at::Tensor>& key_mask,
                                     const RelationKLStats& stats, const RelationKLOptions& options);

// Autograd entry point: per-row KL (B, H, T) float32, differentiable w.r.t. xq and xk.
at::Tensor relation_kl(const at::Tensor& xq, const at::Tensor& xk, const at::Tensor& yq,
                       const at::Tensor& yk, const std::optional<at::Tensor>& key_mask,
                       const RelationKLOptions& options);

// Self-relation (Q/Q, K/K or V/V): x (B, H, T, Ds) is both query and key, y (B, H, T, Dt) likewise.
// Same result as relation_kl(x, x, y, y, ...), gradient dX = g-weighted scale_s (G + G^T) X.
at::Tensor relation_kl_self(const at::Tensor& x, const at::Tensor& y,
                            const std::optional<at::Tensor>& key_mask,
                            const RelationKLOptions& options);

// weight * (sum of the per-row KL) as a 0-dim tensor, one autograd node: a loss built from these
// has no separate reduction node, whose CPU time (PyTorch's autograd engine) sits between the
// forward and the backward kernels (the Python package's reduction="sum" / "mean"). weight must
// be finite.
at::Tensor relation_kl_sum(const at::Tensor& xq, const at::Tensor& xk, const at::Tensor& yq,
                           const at::Tensor& yk, const std::optional<at::Tensor>& key_mask,
                           const RelationKLOptions& options, double weight);
at::Tensor relation_kl_self_sum(const at::Tensor& x, const at::Tensor& y,
                                const std::optional<at::Tensor>& key_mask,
                                const RelationKLOptions& options, double weight);

}  // namespace linearard::ops
