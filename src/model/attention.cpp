#include "model/attention.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <limits>
#include <string>

#include "common/error.h"

namespace linearard::model {

// Padded query rows are allowed their own position so that no row is empty: an empty row would
// give NaN, and NaN values in padded positions would reach real rows through P @ V.
std::optional<at::Tensor> attention_mask(const ModelConfig& config, const std::optional<at::Tensor>& key_mask,
                                         int64_t B, int64_t T, at::Device device,
                                         const std::optional<at::Tensor>& doc_ids) {
  const bool windowed = config.sliding_window && T > *config.sliding_window;
  if (!key_mask && !windowed && !doc_ids) return std::nullopt;
  auto opts = at::TensorOptions().dtype(at::kBool).device(device);
  auto i = at::arange(T, at::TensorOptions().dtype(at::kLong).device(device)).unsqueeze(1);  // (T, 1)
  auto j = i.transpose(0, 1);                                                            // (1, T)
  auto allowed = j.le(i);                                                                // (T, T)
  if (windowed) allowed = allowed.logical_and((i - j).lt(*config.sliding_window));
  auto mask = allowed.view({1, 1, T, T}).expand({B, 1, T, T});
  if (key_mask) mask = mask.logical_and(key_mask->to(device).ne(0).view({B, 1, 1, T}));
  if (doc_ids) {
    if (doc_ids->dim() != 2 || doc_ids->size(0) != B || doc_ids->size(1) != T)
      fail("doc_ids", "expected shape (B, T) matching the tokens");
    const at::Tensor d = doc_ids->to(device);
    mask = mask.logical_and(d.view({B, 1, T, 1}).eq(d.view({B, 1, 1, T})));  // (B, 1, T, T)
  }
  return mask.logical_or(at::eye(T, opts).view({1, 1, T, T}));
}

at::Tensor document_positions(const at::Tensor& doc_ids) {
  if (doc_ids.dim() != 2) fail("doc_ids", "expected shape (B, T)");
  const int64_t T = doc_ids.size(1);
  const auto t = at::arange(T, doc_ids.options().dtype(at::kLong)).expand({doc_ids.size(0), T});  // (B, T)
  at::Tensor starts = at::ones_like(doc_ids, at::kBool);  // a document starts at t = 0 and where the id changes
  if (T > 1) starts.narrow(1, 1, T - 1).copy_(doc_ids.narrow(1, 1, T - 1).ne(doc_ids.narrow(1, 0, T - 1)));
  const at::Tensor first = std::get<0>(at::cummax(at::where(starts, t, at::zeros_like(t)), 1));  // (B, T)
  return t - first;
}

RopeTables document_rope_tables(const ModelConfig& config, const RopeParams& rope, const at::Tensor& doc_ids,
                                at::ScalarType dtype) {
  const int64_t B = doc_ids.size(0), T = doc_ids.size(1);
  const RopeTables flat = rope_tables(config, rope, document_positions(doc_ids).reshape({B * T}), dtype);
  const int64_t D = flat.cos.size(1);
  return {flat.cos.view({B, 1, T, D}), flat.sin.view({B, 1, T, D})};
}

at::Tensor sdpa(const AttentionInputs& qkv, const std::optional<at::Tensor>& mask, bool causal) {
  const int64_t group = qkv.q.size(1) / qkv.k.size(1), D = qkv.q.size(3);
  // CUDA: repeat K/V for GQA so SDPA keeps its flash kernel; CPU: let SDPA broadcast.
  const bool repeat_kv = group > 1 && qkv.q.is_cuda();
  return at::scaled_dot_product_attention(
      qkv.q, repeat_kv ? qkv.k.repeat_interleave(group, 1) : qkv.k,
      repeat_kv ? qkv.v.repeat_interleave(group, 1) : qkv.v, mask, /*dropout_p=*/0.0, causal,
      /*scale=*/1.0 / std::sqrt(double(D)), /*enable_gqa=*/group > 1 && !repeat_kv);  // (B, H, n, D)
}

Attention masked_attention(std::optional<at::Tensor> mask) {
  return [mask = std::move(mask)](const AttentionInputs& qkv) { return sdpa(qkv, mask, !mask.has_value()); };
}

std::optional<DocumentRuns> document_runs(const at::Tensor& doc_ids) {
  if (doc_ids.dim() != 2) fail("doc_ids", "expected shape (B, T)");
  const int64_t B = doc_ids.size(0), T = doc_ids.size(1);
  if (B * T > std::numeric_limits<int32_t>::max()) return std::nullopt;
  const at::Tensor d = doc_ids.to(at::kCPU, at::kLong).contiguous();  // (B, T)
  const int64_t* ids = d.data_ptr<int64_t>();
  DocumentRuns runs;
  runs.cu_seqlens.push_back(0);
  for (int64_t b = 0; b < B; ++b) {
    int64_t start = 0;
    for (int64_t t = 1; t <= T; ++t) {
      if (t < T && ids[b * T + t] == ids[b * T + t - 1]) continue;
      if (t < T && ids[b * T + t] < ids[b * T + t - 1]) return std::nullopt;  // an id came back
      runs.cu_seqlens.push_back(int32_t(b * T + t));
      runs.max_length = std::max(runs.max_length, t - start);
      start = t;
    }
  }
  return runs;
}

AttentionPlan attention_plan(const ModelConfig& config, const std::optional<at::Tensor>& key_mask, int64_t B,
                             int64_t T, at::Device device, const std::optional<at::Tensor>& doc_ids,
                             at::ScalarType dtype) {
  const bool windowed = config.sliding_window && T > *config.sliding_window;
  // Opt-in until a GPU run has checked it (tests/model/test_model_cuda.cpp PackedVarlenAttention...).
  const char* choice = std::getenv("LINEARARD_PACKED_ATTENTION");
  const bool want_varlen = choice != nullptr && std::string(choice) == "varlen";
  // FlashAttention-2's limits (flash_api.cpp in PyTorch's aten/src/ATen/native/transformers/cuda/flash_attn).
  const bool flash_dims = config.head_dim % 8 == 0 && config.head_dim <= 256 && config.num_key_value_heads > 0 &&
                          config.num_attention_heads % config.num_key_value_heads == 0;
  if (doc_ids && device.is_cuda() && !key_mask && !windowed && want_varlen && flash_dims &&
      (dtype == at::kBFloat16 || dtype == at::kHalf)) {
    if (doc_ids->dim() != 2 || doc_ids->size(0) != B || doc_ids->size(1) != T)
      fail("doc_ids", "expected shape (B, T) matching the tokens");
    if (auto runs = document_runs(*doc_ids)) {
      AttentionPlan plan;
      plan.cu_seqlens = at::tensor(runs->cu_seqlens, at::TensorOptions().dtype(at::kInt)).to(device);
      plan.max_length = runs->max_length;
      return plan;
    }
  }
  return {attention_mask(config, key_mask, B, T, device, doc_ids), std::nullopt, 0};
}

at::Tensor varlen_causal_attention(const AttentionInputs& qkv, const at::Tensor& cu_seqlens, int64_t max_length) {
  const int64_t B = qkv.q.size(0), H = qkv.q.size(1), T = qkv.q.size(2), D = qkv.q.size(3);
  // (B, heads, T, D) -> (B T, heads, D): the varlen layout, one contiguous copy each.
  auto flat = [&](const at::Tensor& x) { return x.transpose(1, 2).reshape({B * T, x.size(1), D}); };
  const at::Tensor out = std::get<0>(at::_flash_attention_forward(
      flat(qkv.q), flat(qkv.k), flat(qkv.v), cu_seqlens, cu_seqlens, max_length, max_length,
      /*dropout_p=*/0.0, /*is_causal=*/true, /*return_debug_mask=*/false,
      /*scale=*/1.0 / std::sqrt(double(D))));  // (B T, H, D)
  return out.view({B, T, H, D}).transpose(1, 2);  // (B, H, T, D)
}

Attention planned_attention(const AttentionPlan& plan) {
  if (!plan.cu_seqlens) return masked_attention(plan.mask);
  return [cu = *plan.cu_seqlens, n = plan.max_length](const AttentionInputs& qkv) {
    return varlen_causal_attention(qkv, cu, n);
  };
}

void check_sliding_window(const ModelConfig& c, int64_t length, const std::string& where) {
  if (!c.sliding_window || length <= *c.sliding_window || !c.sliding_window_partial) return;
  const std::string name = c.model_type == "qwen3" ? "Qwen3" : "Qwen2";
  fail(where, "sequence of " + std::to_string(length) + " tokens exceeds " + name + "'s sliding_window " +
                  std::to_string(*c.sliding_window) + " (use_sliding_window is not supported)");
}

}  // namespace linearard::model
