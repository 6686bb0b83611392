#include "eval/batch_decode.h"

#include <ATen/core/grad_mode.h>

#include <algorithm>

#include "common/error.h"
#include "eval/kv_cache.h"

namespace linearard::eval {

std::vector<std::vector<int64_t>> greedy_decode_batch(const EvalModel& m, const std::vector<std::vector<int64_t>>& prompts,
                                                      int64_t new_tokens, int64_t eos, const DecodeStop& stop) {
  std::vector<std::vector<int64_t>> out(prompts.size());
  if (prompts.empty() || new_tokens <= 0) return out;
  const int64_t B = static_cast<int64_t>(prompts.size());
  int64_t T = 0;
  for (const auto& p : prompts) {
    if (p.empty()) fail("greedy_decode_batch", "empty prompt");
    T = std::max<int64_t>(T, static_cast<int64_t>(p.size()));
  }
  // Left padding to the longest prompt; the pad id (0) is never attended to by a real position.
  std::vector<int64_t> flat, pad(B, 0);
  for (int64_t b = 0; b < B; ++b) {
    pad[b] = T - static_cast<int64_t>(prompts[b].size());
    flat.insert(flat.end(), pad[b], 0);
    flat.insert(flat.end(), prompts[b].begin(), prompts[b].end());
  }
  at::NoGradGuard no_grad;
  KvCacheDecoder decoder(m, B, T + new_tokens, pad);
  at::Tensor logits = decoder.extend(at::tensor(flat, at::kLong).view({B, T}));
  std::vector<bool> done(B, false);
  for (int64_t i = 0; i < new_tokens; ++i) {
    const at::Tensor next = logits.argmax(1).to(at::kCPU);  // (B)
    const auto acc = next.accessor<int64_t, 1>();
    bool all = true;
    for (int64_t b = 0; b < B; ++b) {
      if (!done[b] && acc[b] == eos) done[b] = true;
      if (!done[b]) {
        out[b].push_back(acc[b]);
        if (stop && stop(b, out[b])) done[b] = true;
      }
      all = all && done[b];
    }
    if (all || i + 1 == new_tokens) break;
    logits = decoder.extend(next.view({B, 1}));
  }
  return out;
}

}  // namespace linearard::eval
