#include "eval/perplexity.h"

#include <ATen/core/grad_mode.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <map>

#include "common/error.h"
#include "eval/token_nll.h"

namespace linearard::eval {

std::vector<Window> plan_windows(int64_t n, int64_t T, int64_t stride, int64_t stream) {
  if (T < 2) fail("--contexts", "a context must be at least 2 tokens, got " + std::to_string(T));
  if (stride < 1 || stride > T)
    fail("--stride", "must be in [1, context " + std::to_string(T) + "], got " + std::to_string(stride));
  std::vector<Window> windows;
  if (n < 2) return windows;
  int64_t prev_end = 0;
  for (int64_t begin = 0;; begin += stride) {
    const int64_t end = std::min(begin + T, n);
    const int64_t from = std::max(prev_end, begin + 1);
    if (from < end) windows.push_back({stream, begin, end, from});
    prev_end = end;
    if (end == n) break;
  }
  return windows;
}

namespace {

// One forward over `batch` windows of the same length; adds their scored NLLs to *sum.
int64_t score_batch(const EvalModel& m, const std::vector<std::vector<int32_t>>& streams,
                    const std::vector<Window>& batch, double* sum) {
  const model::DecoderModel& model = *m.model;
  const int64_t B = static_cast<int64_t>(batch.size());
  const int64_t L = batch[0].end - batch[0].begin;
  at::Tensor tokens = at::empty({B, L}, at::kLong);  // (B, L) on the CPU, then moved
  auto acc = tokens.accessor<int64_t, 2>();
  std::vector<int64_t> rows, cols;  // hidden positions whose next token is scored
  std::vector<int64_t> targets;
  for (int64_t b = 0; b < B; ++b) {
    const Window& w = batch[b];
    const auto& s = streams[w.stream];
    for (int64_t t = 0; t < L; ++t) acc[b][t] = s[w.begin + t];
    for (int64_t i = w.score_from; i < w.end; ++i) {  // token i is predicted at position i - 1
      rows.push_back(b);
      cols.push_back(i - 1 - w.begin);
      targets.push_back(s[i]);
    }
  }
  const at::Device device = model.device();
  const auto tables = model.rope_tables_for(m.rope, L);
  model::ForwardRequest request;
  request.rope = &tables;
  request.stop = model::ForwardStop::kHidden;
  at::Tensor hidden = model.forward(tokens.to(device), request).hidden;  // (B, L, C)
  auto index = [&](const std::vector<int64_t>& v) { return at::tensor(v, at::kLong).to(device); };
  at::Tensor flat = hidden.view({B * L, hidden.size(2)});
  at::Tensor picked = flat.index_select(0, index(rows) * L + index(cols));  // (N, C)
  TokenScores scores = score_tokens(picked, model.weights().lm_head, index(targets));
  *sum += scores.nll.to(at::kDouble).sum().item<double>();
  return static_cast<int64_t>(targets.size());
}

}  // namespace

PerplexityResult evaluate_perplexity(const EvalModel& m, const std::vector<std::vector<int32_t>>& streams,
                                     const PerplexityParams& p) {
  if (!m.model) fail("evaluate_perplexity", "no model");
  if (p.batch_size < 1) fail("--batch-size", "must be at least 1");
  const int64_t stride = p.stride > 0 ? std::min(p.stride, p.context) : p.context;
  const auto t0 = std::chrono::steady_clock::now();
  // Group windows by length, longest first; order within a length follows the streams.
  std::map<int64_t, std::vector<Window>, std::greater<int64_t>> by_length;
  for (size_t s = 0; s < streams.size(); ++s)
    for (const Window& w : plan_windows(static_cast<int64_t>(streams[s].size()), p.context, stride,
                                        static_cast<int64_t>(s)))
      by_length[w.end - w.begin].push_back(w);
  at::NoGradGuard no_grad;
  PerplexityResult r;
  r.context = p.context;
  r.stride = stride;
  for (const auto& [length, windows] : by_length) {
    for (size_t i = 0; i < windows.size(); i += p.batch_size) {
      const size_t n = std::min<size_t>(p.batch_size, windows.size() - i);
      std::vector<Window> batch(windows.begin() + i, windows.begin() + i + n);
      r.tokens += score_batch(m, streams, batch, &r.nll_sum);
      r.windows += static_cast<int64_t>(n);
    }
  }
  if (r.tokens == 0) fail("perplexity", "no tokens to score (every stream is shorter than 2 tokens)");
  r.nll = r.nll_sum / static_cast<double>(r.tokens);
  r.perplexity = std::exp(r.nll);
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return r;
}

}  // namespace linearard::eval
