#include "eval/token_nll.h"

#include <ATen/core/grad_mode.h>

#include <algorithm>

#include "common/error.h"

namespace linearard::eval {

TokenScores score_tokens(const at::Tensor& hidden, const at::Tensor& lm_head, const at::Tensor& targets,
                         int64_t chunk_rows) {
  if (hidden.dim() != 2 || lm_head.dim() != 2 || hidden.size(1) != lm_head.size(1))
    fail("score_tokens", "expected hidden (N, C) and lm_head (V, C) with the same C");
  if (targets.dim() != 1 || targets.size(0) != hidden.size(0) || targets.scalar_type() != at::kLong)
    fail("score_tokens", "expected int64 targets (N) matching hidden");
  const int64_t N = hidden.size(0), V = lm_head.size(0);
  if (N > 0 && (targets.min().item<int64_t>() < 0 || targets.max().item<int64_t>() >= V))
    fail("score_tokens", "target id outside the vocabulary [0, " + std::to_string(V) + ")");
  if (chunk_rows <= 0) chunk_rows = std::max<int64_t>(1, kChunkLogitBytes / (V * 4));
  at::NoGradGuard no_grad;
  auto opts = at::TensorOptions().device(hidden.device());
  at::Tensor nll = at::empty({N}, opts.dtype(at::kFloat));
  at::Tensor greedy = at::empty({N}, opts.dtype(at::kBool));
  for (int64_t r = 0; r < N; r += chunk_rows) {
    const int64_t n = std::min(chunk_rows, N - r);
    at::Tensor logits = at::linear(hidden.narrow(0, r, n), lm_head).to(at::kFloat);  // (n, V)
    at::Tensor t = targets.narrow(0, r, n).unsqueeze(1);                              // (n, 1)
    at::Tensor target_logit = logits.gather(1, t).squeeze(1);                         // (n)
    nll.narrow(0, r, n).copy_(at::logsumexp(logits, 1) - target_logit);
    // The harness's is_greedy: argmax (the first maximum on ties) equals the target.
    greedy.narrow(0, r, n).copy_(logits.argmax(1).eq(t.squeeze(1)));
  }
  return {nll, greedy};
}

}  // namespace linearard::eval
