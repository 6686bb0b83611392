#include "eval/sampling.h"

#include <ATen/core/grad_mode.h>

#include <string>

#include "common/error.h"
#include "eval/kv_cache.h"
#include "eval/splitmix64.h"

namespace linearard::eval {
float sampling_uniform(uint64_t seed, int64_t index, int64_t position) {
  const uint64_t h = splitmix64(splitmix64(splitmix64(seed) ^ uint64_t(index)) ^ uint64_t(position));
  return float(h >> 40) * (1.0f / float(1 << 24));  // 24 bits: exact in float32, never 1
}

at::Tensor pick_tokens(const at::Tensor& logits, const at::Tensor& uniforms, double temperature) {
  if (temperature < 0) fail("sampling", "temperature must be >= 0");
  if (temperature == 0) return logits.argmax(-1);
  const at::Tensor probs = at::softmax(logits.to(at::kFloat) / temperature, -1);  // (B, V)
  const at::Tensor cdf = probs.cumsum(-1);                                         // (B, V)
  // Scaled by the last cumulative value so that rounding in the sum never leaves u past the end.
  const at::Tensor target = uniforms.to(cdf.device()).view({-1, 1}) * cdf.narrow(-1, cdf.size(-1) - 1, 1);  // (B, 1)
  return cdf.lt(target).sum(-1).clamp_max(logits.size(-1) - 1);  // (B) int64
}

at::Tensor sample_batch(const EvalModel& m, const std::vector<std::vector<int64_t>>& prompts, const SamplingParams& p,
                        const std::function<void(int64_t)>& progress) {
  if (prompts.empty()) fail("sampling", "no prompts");
  const int64_t B = static_cast<int64_t>(prompts.size()), P = static_cast<int64_t>(prompts[0].size()),
                S = p.sample_tokens;
  if (P < 1) fail("sampling", "empty prompt");
  if (P >= S) fail("sampling", "prompts of " + std::to_string(P) + " tokens leave nothing to sample in " +
                                   std::to_string(S) + " tokens");
  std::vector<int64_t> flat;
  flat.reserve(size_t(B * P));
  for (const auto& prompt : prompts) {
    if (int64_t(prompt.size()) != P) fail("sampling", "the prompts of one batch must have the same length");
    flat.insert(flat.end(), prompt.begin(), prompt.end());
  }
  // Every uniform of the batch up front: one host-to-device copy instead of a synchronising copy
  // per step.
  at::Tensor uniforms = at::empty({S - P, B}, at::kFloat);  // (S - P, B)
  float* u = uniforms.data_ptr<float>();
  for (int64_t t = P; t < S; ++t)
    for (int64_t b = 0; b < B; ++b) u[(t - P) * B + b] = sampling_uniform(p.seed, p.first_index + b, t);
  const at::Device device = m.model->device();
  uniforms = uniforms.to(device);

  at::NoGradGuard no_grad;
  KvCacheDecoder decoder(m, B, S);
  at::Tensor tokens = at::empty({B, S}, at::TensorOptions().dtype(at::kLong).device(device));  // (B, S)
  tokens.narrow(1, 0, P).copy_(at::tensor(flat, at::kLong).view({B, P}));
  at::Tensor logits = decoder.extend(tokens.narrow(1, 0, P));  // (B, V)
  for (int64_t t = P; t < S; ++t) {
    at::Tensor next = pick_tokens(logits, uniforms[t - P], p.temperature);  // (B)
    tokens.select(1, t).copy_(next);
    if (t + 1 < S) logits = decoder.extend(next.view({B, 1}));
    if (progress && ((t + 1) % 64 == 0 || t + 1 == S)) progress(t + 1);
  }
  return tokens.cpu();
}

}  // namespace linearard::eval
