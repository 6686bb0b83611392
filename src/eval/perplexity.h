// Perplexity at a given context length over token streams, with the windows of HF's perplexity
// recipe (transformers docs, "Perplexity of fixed-length models"): windows of T tokens start every
// `stride` tokens, and each window scores only the tokens that no earlier window scored, with
// everything before them in the window as context. stride == T gives non-overlapping windows (each
// scores T - 1 tokens); a smaller stride is the sliding window (each token but the first of a
// stream gets at least T - stride tokens of context once the first window is past).
#pragma once
#include <ATen/ATen.h>

#include <cstdint>
#include <vector>

#include "eval/eval_model.h"

namespace linearard::eval {

struct Window {
  int64_t stream = 0;      // which stream
  int64_t begin = 0, end = 0;  // tokens [begin, end) of the stream are the model's input
  int64_t score_from = 0;  // tokens [score_from, end) are scored (predicted from their prefix)
};

// The windows of one stream of n tokens: begin = 0, stride, 2 stride, ...; end = min(begin + T, n);
// scored tokens [max(prev_end, begin + 1), end); stops at the window that reaches n.
// Every token but the first is scored exactly once.
std::vector<Window> plan_windows(int64_t n, int64_t T, int64_t stride, int64_t stream = 0);

// Every stream's windows, grouped into batches of at most batch_size windows of equal length
// (no padding), longest first; order within a length follows the streams. stride 0 = T.
std::vector<std::vector<Window>> plan_batches(const std::vector<std::vector<int32_t>>& streams, int64_t T,
                                              int64_t stride, int64_t batch_size);

// One batch as tensors on the CPU: the model input and, for each scored token, the hidden row that
// predicts it and its id. Rows are batch-major, in token order within a window.
struct WindowBatch {
  at::Tensor tokens;     // (B, L) int64
  at::Tensor positions;  // (N) int64: b * L + (i - 1 - begin) for scored token i of window b
  at::Tensor targets;    // (N) int64: the scored token ids
};
WindowBatch gather_batch(const std::vector<std::vector<int32_t>>& streams, const std::vector<Window>& batch);

// The final hidden states (after the final norm) of the batch's predicting positions, (N, C).
at::Tensor predicting_hidden(const EvalModel& m, const WindowBatch& batch);

struct PerplexityResult {
  int64_t context = 0;    // T
  int64_t stride = 0;
  int64_t windows = 0;
  int64_t tokens = 0;     // scored tokens
  double nll_sum = 0;     // nats, summed in float64
  double nll = 0;         // nll_sum / tokens (nats per token)
  double perplexity = 0;  // exp(nll)
  double seconds = 0;
};

struct PerplexityParams {
  int64_t context = 0;
  int64_t stride = 0;      // 0: non-overlapping (stride = context)
  int64_t batch_size = 1;  // windows per forward
};

// streams: token ids (each at least 2 tokens long to count). Windows of equal length are batched
// together (no padding, so RoPE variants that depend on the sequence length, dynamic and longrope,
// see exactly the window's length). The model runs to its final hidden states and the NLL is taken
// through the LM head in chunks (token_nll.h).
PerplexityResult evaluate_perplexity(const EvalModel& m, const std::vector<std::vector<int32_t>>& streams,
                                     const PerplexityParams& p);

}  // namespace linearard::eval
