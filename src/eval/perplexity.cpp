#include "eval/perplexity.h"

#include <ATen/core/grad_mode.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <map>

#include "common/error.h"
#include "common/option_error.h"
#include "eval/token_nll.h"

namespace linearard::eval {

std::vector<Window> plan_windows(int64_t n, int64_t T, int64_t stride, int64_t stream) {
  if (T < 2) fail_option("contexts", "a context must be at least 2 tokens, got " + std::to_string(T));
  if (stride < 1 || stride > T)
    fail_option("stride", "must be in [1, context " + std::to_string(T) + "], got " + std::to_string(stride));
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

std::vector<std::vector<Window>> plan_batches(const std::vector<std::vector<int32_t>>& streams, int64_t T,
                                              int64_t stride, int64_t batch_size) {
  if (batch_size < 1) fail_option("batch-size", "must be at least 1");
  if (stride <= 0) stride = T;
  std::map<int64_t, std::vector<Window>, std::greater<int64_t>> by_length;
  for (size_t s = 0; s < streams.size(); ++s)
    for (const Window& w : plan_windows(static_cast<int64_t>(streams[s].size()), T, stride, static_cast<int64_t>(s)))
      by_length[w.end - w.begin].push_back(w);
  std::vector<std::vector<Window>> batches;
  for (const auto& [length, windows] : by_length)
    for (size_t i = 0; i < windows.size(); i += batch_size)
      batches.emplace_back(windows.begin() + i, windows.begin() + std::min(windows.size(), i + batch_size));
  return batches;
}

WindowBatch gather_batch(const std::vector<std::vector<int32_t>>& streams, const std::vector<Window>& batch) {
  const int64_t B = static_cast<int64_t>(batch.size());
  const int64_t L = batch[0].end - batch[0].begin;
  WindowBatch out;
  out.tokens = at::empty({B, L}, at::kLong);  // (B, L)
  auto acc = out.tokens.accessor<int64_t, 2>();
  std::vector<int64_t> positions, targets;
  for (int64_t b = 0; b < B; ++b) {
    const Window& w = batch[b];
    const auto& s = streams[w.stream];
    for (int64_t t = 0; t < L; ++t) acc[b][t] = s[w.begin + t];
    for (int64_t i = w.score_from; i < w.end; ++i) {  // token i is predicted at position i - 1
      positions.push_back(b * L + (i - 1 - w.begin));
      targets.push_back(s[i]);
    }
  }
  out.positions = at::tensor(positions, at::kLong);  // (N)
  out.targets = at::tensor(targets, at::kLong);      // (N)
  return out;
}

at::Tensor predicting_hidden(const EvalModel& m, const WindowBatch& batch) {
  const model::DecoderModel& model = *m.model;
  const at::Device device = model.device();
  const int64_t L = batch.tokens.size(1);
  const auto tables = model.rope_tables_for(m.rope, L);
  model::ForwardRequest request;
  request.rope = &tables;
  request.stop = model::ForwardStop::kHidden;
  at::Tensor hidden = model.forward(batch.tokens.to(device), request).hidden;  // (B, L, C)
  return hidden.reshape({-1, hidden.size(2)}).index_select(0, batch.positions.to(device));  // (N, C)
}

PerplexityResult evaluate_perplexity(const EvalModel& m, const std::vector<std::vector<int32_t>>& streams,
                                     const PerplexityParams& p) {
  if (!m.model) fail("evaluate_perplexity", "no model");
  if (p.batch_size < 1) fail_option("batch-size", "must be at least 1");
  const int64_t stride = p.stride > 0 ? std::min(p.stride, p.context) : p.context;
  const auto t0 = std::chrono::steady_clock::now();
  at::NoGradGuard no_grad;
  PerplexityResult r;
  r.context = p.context;
  r.stride = stride;
  for (const auto& batch : plan_batches(streams, p.context, stride, p.batch_size)) {
    const WindowBatch wb = gather_batch(streams, batch);
    const at::Tensor hidden = predicting_hidden(m, wb);  // (N, C)
    TokenScores scores = score_tokens(hidden, m.model->weights().lm_head, wb.targets.to(hidden.device()));
    r.nll_sum += scores.nll.to(at::kDouble).sum().item<double>();
    r.tokens += wb.targets.size(0);
    r.windows += static_cast<int64_t>(batch.size());
  }
  if (r.tokens == 0) fail("perplexity", "no tokens to score (every stream is shorter than 2 tokens)");
  r.nll = r.nll_sum / static_cast<double>(r.tokens);
  r.perplexity = std::exp(r.nll);
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return r;
}

}  // namespace linearard::eval
