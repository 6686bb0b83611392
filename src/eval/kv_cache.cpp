#include "eval/kv_cache.h"

#include <ATen/core/grad_mode.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <optional>

#include "common/error.h"
#include "model/attention.h"

namespace linearard::eval {
namespace {

// float32 logits (B, V) of hidden (B, C).
at::Tensor last_logits(const model::DecoderModel& model, const at::Tensor& hidden) {
  return at::linear(hidden, model.weights().lm_head).to(at::kFloat);
}

}  // namespace

KvCacheDecoder::KvCacheDecoder(const EvalModel& m, int64_t B, int64_t capacity, const std::vector<int64_t>& left_pad)
    : model_(*m.model), rope_(m.rope), B_(B), capacity_(capacity) {
  if (B < 1 || capacity < 1) fail("KvCacheDecoder", "batch and capacity must be positive");
  if (!left_pad.empty()) {
    if (static_cast<int64_t>(left_pad.size()) != B) fail("KvCacheDecoder", "left_pad needs one count per row");
    for (int64_t p : left_pad)
      if (p < 0 || p >= capacity) fail("KvCacheDecoder", "left_pad counts must be in [0, capacity)");
    if (std::any_of(left_pad.begin(), left_pad.end(), [](int64_t p) { return p > 0; })) {
      left_pad_ = left_pad;
      pad_ = at::tensor(left_pad_, at::kLong).view({B, 1}).to(m.model->device());
    }
  }
  const auto& c = model_.config();
  model::check_sliding_window(c, capacity, "KvCacheDecoder");
  auto opts = at::TensorOptions().dtype(model_.dtype()).device(model_.device());
  for (int64_t l = 0; l < c.num_hidden_layers; ++l) {
    k_cache_.push_back(at::empty({B, c.num_key_value_heads, capacity, c.head_dim}, opts));
    v_cache_.push_back(at::empty({B, c.num_key_value_heads, capacity, c.head_dim}, opts));
  }
}

// q (B, H, n, D) for positions [L, L + n); k, v (B, Hk, n, D) are appended to the cache first.
at::Tensor KvCacheDecoder::attend(int64_t layer, const at::Tensor& q, const at::Tensor& k, const at::Tensor& v) {
  const auto& c = model_.config();
  const int64_t n = q.size(2), L = length_, total = L + n;
  k_cache_[layer].narrow(2, L, n).copy_(k);
  v_cache_[layer].narrow(2, L, n).copy_(v);
  at::Tensor keys = k_cache_[layer].narrow(2, 0, total);    // (B, Hk, L + n, D)
  at::Tensor values = v_cache_[layer].narrow(2, 0, total);  // (B, Hk, L + n, D)
  // Query i (position L + i) sees keys j <= L + i, and with a sliding window only L + i - j < W.
  const bool windowed = c.sliding_window && total > *c.sliding_window;
  std::optional<at::Tensor> mask;
  bool causal = false;
  const bool padded = pad_.defined();
  if (L == 0 && !windowed && !padded) {
    causal = true;  // square causal block: SDPA's flash kernel
  } else if (n > 1 || windowed) {
    auto lopts = at::TensorOptions().dtype(at::kLong).device(q.device());
    auto i = at::arange(L, total, lopts).unsqueeze(1);  // (n, 1) query positions
    auto j = at::arange(total, lopts).unsqueeze(0);     // (1, L + n) key positions
    auto allowed = j.le(i);
    if (windowed) allowed = allowed.logical_and((i - j).lt(*c.sliding_window));
    if (padded) {
      // Row b: real queries (i >= pad) see real keys (j >= pad) only; padded queries keep theirs.
      const at::Tensor pad = pad_.view({B_, 1, 1});
      allowed = allowed.unsqueeze(0).logical_and(j.unsqueeze(0).ge(pad).logical_or(i.unsqueeze(0).lt(pad)));
      mask = allowed.view({B_, 1, n, total});
    } else {
      mask = allowed.view({1, 1, n, total});
    }
  }
  const int64_t group = c.num_attention_heads / c.num_key_value_heads;
  if (n == 1) {
    // One new token: two batched GEMVs over the cache, on every device (so the CPU tests cover the
    // path the GPU runs). Scores in float32 (bmm with a float32 output for bf16/fp16), softmax in
    // float32, P in the model dtype for P V as flash attention does; the window only trims the keys.
    // Why not SDPA: at 32K keys on an H200 its default choice (cuDNN) took 66-83 ms a step for
    // LLaMA-2-7B, this path 28 ms; SDPA restricted to flash took 17 ms, but picking a backend
    // means flipping global flags (bench eval-ppl --sdpa-backend measures them).
    const int64_t first = windowed ? total - *c.sliding_window : 0;
    const int64_t S = total - first, B = q.size(0), Hk = c.num_key_value_heads, D = c.head_dim;
    at::Tensor qg = q.reshape({B * Hk, group, D});                                // (B Hk, group, D)
    at::Tensor kk = keys.narrow(2, first, S).reshape({B * Hk, S, D});             // (B Hk, S, D)
    at::Tensor vv = values.narrow(2, first, S).reshape({B * Hk, S, D});           // (B Hk, S, D)
    at::Tensor kt = kk.transpose(1, 2);
    at::Tensor scores = (q.scalar_type() == at::kFloat ? at::bmm(qg, kt) : at::bmm(qg, kt, at::kFloat))
                            .mul_(1.0 / std::sqrt(double(D)));  // (B Hk, group, S) float32
    if (padded) {  // row b's keys before pad[b] are padding
      const at::Tensor j = at::arange(first, total, at::TensorOptions().dtype(at::kLong).device(q.device()));
      const at::Tensor pad_keys = j.unsqueeze(0).lt(pad_).view({B, 1, 1, S}).expand({B, Hk, 1, S}).reshape({B * Hk, 1, S});
      scores.masked_fill_(pad_keys, -std::numeric_limits<float>::infinity());
    }
    at::Tensor probs = at::softmax(scores, -1).to(q.scalar_type());              // (B Hk, group, S)
    return at::bmm(probs, vv).view({B, c.num_attention_heads, 1, D});             // (B, H, 1, D)
  }
  return model::sdpa({q, keys, values}, mask, causal);  // (B, H, n, D)
}

at::Tensor KvCacheDecoder::extend(const at::Tensor& tokens) {
  const auto& c = model_.config();
  const auto& w = model_.weights();
  if (tokens.dim() != 2 || tokens.size(0) != B_ || tokens.scalar_type() != at::kLong)
    fail("KvCacheDecoder", "expected (B, n) int64 tokens with B = " + std::to_string(B_));
  const int64_t n = tokens.size(1);
  if (n < 1) fail("KvCacheDecoder", "nothing to extend");
  if (length_ + n > capacity_)
    fail("KvCacheDecoder", "cache of " + std::to_string(capacity_) + " positions is full");
  at::NoGradGuard no_grad;
  const int64_t D = c.head_dim;
  // RoPE positions (rows, n): cache index minus the row's padding (one row when there is none);
  // padding positions get 0 (their values are never seen by real queries).
  at::Tensor positions = at::arange(length_, length_ + n, at::TensorOptions().dtype(at::kLong).device(model_.device()))
                             .unsqueeze(0);  // (1, n)
  if (pad_.defined()) {
    if (length_ == 0 && n <= *std::max_element(left_pad_.begin(), left_pad_.end()))
      fail("KvCacheDecoder", "the first extend must reach past every row's padding");
    positions = (positions - pad_).clamp_min(0);  // (B, n)
  }
  const int64_t rows = positions.size(0);
  model::RopeTables tables = model::rope_tables(c, rope_, positions.reshape({-1}), model_.dtype());  // (rows n, D)
  tables.cos = tables.cos.view({rows, 1, n, D});  // broadcast over heads (and rows when there is no padding)
  tables.sin = tables.sin.view({rows, 1, n, D});
  at::Tensor h = at::embedding(w.embed, tokens.to(model_.device()));  // (B, n, C)
  for (int64_t l = 0; l < c.num_hidden_layers; ++l) {
    const model::DecoderLayer layer(c, w.layers[size_t(l)], l);
    // The cache supplies the attention: the new keys and values join it, the queries see it.
    h = layer.forward(h, tables, [&](const model::AttentionInputs& qkv) { return attend(l, qkv.q, qkv.k, qkv.v); });
  }
  length_ += n;
  at::Tensor last = model::rms_norm(h.select(1, n - 1), w.final_norm, c.rms_norm_eps);  // (B, C)
  return last_logits(model_, last);
}

std::vector<int64_t> greedy_decode(const EvalModel& m, const std::vector<int64_t>& prompt, int64_t new_tokens) {
  if (prompt.empty()) fail("greedy_decode", "empty prompt");
  std::vector<int64_t> out;
  if (new_tokens <= 0) return out;
  KvCacheDecoder decoder(m, 1, static_cast<int64_t>(prompt.size()) + new_tokens);
  at::Tensor logits = decoder.extend(at::tensor(prompt, at::kLong).view({1, -1}));
  for (int64_t i = 0; i < new_tokens; ++i) {
    const int64_t next = logits.argmax(1).item<int64_t>();
    out.push_back(next);
    if (i + 1 < new_tokens) logits = decoder.extend(at::full({1, 1}, next, at::kLong));
  }
  return out;
}

std::vector<int64_t> greedy_decode_recompute(const EvalModel& m, const std::vector<int64_t>& prompt,
                                             int64_t new_tokens) {
  if (prompt.empty()) fail("greedy_decode", "empty prompt");
  at::NoGradGuard no_grad;
  const model::DecoderModel& model = *m.model;
  std::vector<int64_t> seq = prompt, out;
  for (int64_t i = 0; i < new_tokens; ++i) {
    const int64_t T = static_cast<int64_t>(seq.size());
    const auto tables = model.rope_tables_for(m.rope, T);
    model::ForwardRequest request;
    request.rope = &tables;
    request.stop = model::ForwardStop::kHidden;
    at::Tensor hidden = model.forward(at::tensor(seq, at::kLong).view({1, T}).to(model.device()), request).hidden;
    const int64_t next = last_logits(model, hidden.select(1, T - 1)).argmax(1).item<int64_t>();
    out.push_back(next);
    seq.push_back(next);
  }
  return out;
}

}  // namespace linearard::eval
