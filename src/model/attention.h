// The attention the plain forward and the training stack run (and the cached decoder for
// multi-token steps): scaled dot-product attention with GQA, causal or under a boolean mask that
// holds the causal rule, a sliding window and key padding. One place for the mask rules.
#pragma once
#include <ATen/ATen.h>

#include <optional>

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
