// The attention the plain forward and the training stack run (and the cached decoder for
// multi-token steps): scaled dot-product attention with GQA, causal or under a boolean mask that
// holds the causal rule, a sliding window and key padding. One place for the mask rules.
#pragma once
#include <ATen/ATen.h>

#include <optional>
#include <vector>

#include "model/decoder_layer.h"
#include "model/model_config.h"
#include "model/rope.h"

namespace linearard::model {

// The boolean attention mask (B, 1, T, T) of a T-token forward from position 0, or nothing when
// plain causal attention is enough (no key_mask, no window shorter than T, no doc_ids). key_mask
// (B, T): 1 = real token, 0 = padding. doc_ids (B, T) integer (packed blocks, train/data_source.h):
// query i sees key j only when doc_ids[b, j] == doc_ids[b, i] -- the block-diagonal causal mask, so
// no token sees an earlier document.
std::optional<at::Tensor> attention_mask(const ModelConfig& config, const std::optional<at::Tensor>& key_mask,
                                         int64_t B, int64_t T, at::Device device,
                                         const std::optional<at::Tensor>& doc_ids = std::nullopt);

// Packed documents as runs over the flattened (B T) tokens, for FlashAttention's variable-length
// call: cu_seqlens (runs + 1) int32 (0, end of run 1, ...; a run never crosses a batch row) and
// the longest run. From doc_ids (B, T) on any device (read on the CPU: B T ints). nullopt when
// an id comes back after another (ids not non-decreasing along a row), where "same document" (the
// mask's rule: equal ids) is not "same run".
struct DocumentRuns {
  std::vector<int32_t> cu_seqlens;
  int64_t max_length = 0;
};
std::optional<DocumentRuns> document_runs(const at::Tensor& doc_ids);

// How a whole-sequence forward attends: SDPA under `mask` (or causal without one), or, for packed
// documents in bf16 / fp16 on CUDA, FlashAttention's variable-length causal call over the
// documents (`cu_seqlens`, on the device), which needs no (B, 1, T, T) mask and keeps the flash
// kernel (SDPA has no flash kernel for an explicit mask). Built once per forward; the training
// stack saves its tensors for the recomputation.
struct AttentionPlan {
  std::optional<at::Tensor> mask;        // (B, 1, T, T) bool
  std::optional<at::Tensor> cu_seqlens;  // (runs + 1,) int32 on the device
  int64_t max_length = 0;                // the longest run (with cu_seqlens)
};
// The plan of a T-token forward from position 0 in `dtype` on `device`: attention_mask's, or the
// varlen plan when LINEARARD_PACKED_ATTENTION=varlen and doc_ids are given on CUDA with no
// key_mask and no sliding window inside T, a head dim the flash kernel takes (a multiple of 8, at
// most 256) and ids in runs. The varlen path is opt-in until its CUDA test and timing have run on
// a GPU (written 2026-12-07 when no GPU machine could be started).
AttentionPlan attention_plan(const ModelConfig& config, const std::optional<at::Tensor>& key_mask, int64_t B,
                             int64_t T, at::Device device, const std::optional<at::Tensor>& doc_ids,
                             at::ScalarType dtype);
Attention planned_attention(const AttentionPlan& plan);

// Causal attention within each run of cu_seqlens: q (B, H, T, D), k, v (B, Hk, T, D) bf16 / fp16 on
// CUDA, H a multiple of Hk; scale 1/sqrt(D). Returns (B, H, T, D). Differentiable (PyTorch's
// _flash_attention_forward / _flash_attention_backward).
at::Tensor varlen_causal_attention(const AttentionInputs& qkv, const at::Tensor& cu_seqlens, int64_t max_length);

// Packed blocks: each token's RoPE position (B, T) int64, restarting at 0 where its document (a run
// of equal doc_ids (B, T)) starts -- the positions the model sees when it reads that document alone
// (transformers' packed-sequence training with position_ids does the same).
at::Tensor document_positions(const at::Tensor& doc_ids);

// The RoPE tables (B, 1, T, D) of document_positions(doc_ids), broadcastable to (B, heads, T, D).
RopeTables document_rope_tables(const ModelConfig& config, const RopeParams& rope, const at::Tensor& doc_ids,
                                at::ScalarType dtype);

// SDPA with scale 1/sqrt(D) of q (B, H, n, D) over k, v (B, Hk, S, D): under `mask`
// (broadcastable to (B, H, n, S)), else causal when `causal`. Returns (B, H, n, D).
at::Tensor sdpa(const AttentionInputs& qkv, const std::optional<at::Tensor>& mask, bool causal);

// The Attention of a whole-sequence forward: under `mask`, or causal without one.
Attention masked_attention(std::optional<at::Tensor> mask);

// Refuses a sequence of `length` positions that reaches a sliding window the model applies to some
// layers only (Qwen2/Qwen3 with use_sliding_window, past max_window_layers), which is not supported.
void check_sliding_window(const ModelConfig& config, int64_t length, const std::string& where);

}  // namespace linearard::model
