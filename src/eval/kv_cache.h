// Incremental decoding for DecoderModel: the prompt is run once (prefill) and every later token
// reuses the post-RoPE keys and values that earlier positions left in a per-layer cache, so a
// greedy step costs O(T) instead of a full O(T^2) forward. The layers are model::DecoderLayer (the
// same code as the plain forward); this decoder supplies only their attention (attend(): the cache,
// the padding mask, the sliding window) and the RoPE tables of the new positions.
//
// RoPE: the tokens of one extend() call at positions [L, L + n) get the tables of
// model::rope_tables() for those positions. For RoPE types that depend on the sequence length
// (dynamic NTK, longrope) that means the frequencies of seq_len = L + n, while cached keys keep the
// rotation they were computed with: exactly what transformers' generate() does with a cache
// (dynamic_rope_update recomputes inv_freq from max(position_ids) + 1 at every step and never
// re-rotates the cache). For dynamic RoPE past max_position_embeddings cached decoding therefore
// differs slightly from recomputing the whole sequence at every step, as it does in transformers;
// for every other RoPE type the two agree (tests/eval/test_kv_cache.cpp).
//
// Left padding (batches of prompts of different lengths, batch_decode.h): row b's first left_pad[b]
// cache positions hold padding. Real queries never see those keys (masked out of the softmax in
// both attention paths), and row b's RoPE positions count from its first real token: cache index
// p has position p - left_pad[b], so a padded row computes what it would alone (up to rounding).
// Padded queries see the keys up to themselves, padding included, which keeps their (unused)
// hidden states finite. For dynamic NTK / longrope the tables of one extend() take
// seq_len = the longest row's, as transformers' generate() does with left padding
// (max(position_ids) + 1 over the batch). No padding (the default) is the same code with all
// counts zero.
//
// Attention: the prompt (and any multi-token extend) goes through SDPA as in DecoderModel::forward;
// a single new token goes through two batched GEMVs over the cache (see attend()), which
// `linearard bench eval-ppl --decode` measured 2-3x faster than SDPA's default at 32K keys.
#pragma once
#include <ATen/ATen.h>

#include <vector>

#include "eval/eval_model.h"

namespace linearard::eval {

class KvCacheDecoder {
 public:
  // Room for `capacity` positions of a batch of B sequences (allocated up front); left_pad: empty
  // (none) or B counts of leading padding positions, each below the first extend()'s length.
  KvCacheDecoder(const EvalModel& m, int64_t B, int64_t capacity, const std::vector<int64_t>& left_pad = {});

  // Appends tokens (B, n) at positions [length(), length() + n) and returns the float32 logits of
  // the last new position (B, V).
  at::Tensor extend(const at::Tensor& tokens);
  int64_t length() const { return length_; }

 private:
  at::Tensor attend(int64_t layer, const at::Tensor& q, const at::Tensor& k, const at::Tensor& v);

  const model::DecoderModel& model_;
  model::RopeParams rope_;
  int64_t B_, capacity_, length_ = 0;
  std::vector<int64_t> left_pad_;  // B counts, or empty: no padding
  at::Tensor pad_;                 // (B, 1) int64 on the model's device when left_pad_ is not empty
  std::vector<at::Tensor> k_cache_, v_cache_;  // per layer (B, Hk, capacity, D), post-RoPE K
};

// Greedy continuation of `prompt` by `new_tokens` tokens (batch of one), with the cache.
std::vector<int64_t> greedy_decode(const EvalModel& m, const std::vector<int64_t>& prompt, int64_t new_tokens);

// The same by a full forward over the whole sequence at every step: the reference for the cache.
std::vector<int64_t> greedy_decode_recompute(const EvalModel& m, const std::vector<int64_t>& prompt,
                                             int64_t new_tokens);

}  // namespace linearard::eval
