// Per-token negative log-likelihoods through the LM head, a chunk of rows at a time, so that the
// (tokens x vocab) float32 logits never exist at once (a 32K window of a 32000-word vocabulary
// would need 4 GiB of them). Evaluation only: no autograd.
#pragma once
#include <ATen/ATen.h>

namespace linearard::eval {

struct TokenScores {
  at::Tensor nll;     // (N) float32: logsumexp(logits) - logits[target]
  at::Tensor greedy;  // (N) bool: the target is the argmax of its logits
};

// hidden (N, C) after the final norm, lm_head (V, C) in the same dtype, targets (N) int64.
// Logits are computed in the compute dtype and promoted to float32 before the log-softmax, as
// transformers' loss and lm-evaluation-harness (log_softmax(logits.float())) do.
// chunk_rows = 0 picks rows so that one chunk's float32 logits stay under kChunkLogitBytes.
TokenScores score_tokens(const at::Tensor& hidden, const at::Tensor& lm_head, const at::Tensor& targets,
                         int64_t chunk_rows = 0);

// 256 MiB: a 32000-word vocabulary gives 2048-row chunks, big enough to keep the GEMM efficient.
constexpr int64_t kChunkLogitBytes = int64_t{256} << 20;

}  // namespace linearard::eval
