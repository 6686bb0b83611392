#include "eval/fidelity.h"

#include <ATen/core/grad_mode.h>

#include <algorithm>
#include <chrono>

#include "common/error.h"
#include "common/option_error.h"
#include "eval/perplexity.h"
#include "eval/token_nll.h"

namespace linearard::eval {

void check_same_vocabulary(const model::ModelConfig& teacher, const std::string& teacher_dir,
                           const model::ModelConfig& model, const std::string& model_what) {
  if (teacher.vocab_size != model.vocab_size)
    fail("--teacher " + teacher_dir, "vocab_size " + std::to_string(teacher.vocab_size) + " differs from the vocab_size " +
                          std::to_string(model.vocab_size) + " of " + model_what +
                          " (fidelity compares next-token distributions over one vocabulary)");
}

NextTokenComparison compare_next_token(const at::Tensor& teacher_hidden, const at::Tensor& teacher_head,
                                       const at::Tensor& model_hidden, const at::Tensor& model_head,
                                       int64_t chunk_rows) {
  if (teacher_hidden.dim() != 2 || teacher_head.dim() != 2 || teacher_hidden.size(1) != teacher_head.size(1) ||
      model_hidden.dim() != 2 || model_head.dim() != 2 || model_hidden.size(1) != model_head.size(1))
    fail("compare_next_token", "expected hidden (N, C) and lm_head (V, C) with the same C for each model");
  if (teacher_hidden.size(0) != model_hidden.size(0) || teacher_head.size(0) != model_head.size(0))
    fail("compare_next_token", "the two models need the same positions N and vocabulary size V");
  const int64_t N = model_hidden.size(0), V = model_head.size(0);
  // Two models' logits per chunk: half token_nll.h's rows keep the same memory.
  if (chunk_rows <= 0) chunk_rows = std::max<int64_t>(1, kChunkLogitBytes / (2 * V * 4));
  at::NoGradGuard no_grad;
  const auto opts = at::TensorOptions().device(model_hidden.device());
  NextTokenComparison out;
  out.kl = at::empty({N}, opts.dtype(at::kFloat));             // (N)
  out.teacher_top1 = at::empty({N}, opts.dtype(at::kLong));    // (N)
  out.model_top1 = at::empty({N}, opts.dtype(at::kLong));      // (N)
  for (int64_t r = 0; r < N; r += chunk_rows) {
    const int64_t n = std::min(chunk_rows, N - r);
    at::Tensor log_pt, log_pm;  // (n, V) float32 each; at most three (n, V) buffers live at once
    {
      const at::Tensor lt = at::linear(teacher_hidden.narrow(0, r, n), teacher_head).to(at::kFloat);  // (n, V)
      out.teacher_top1.narrow(0, r, n).copy_(lt.argmax(1));
      log_pt = at::log_softmax(lt, 1);
    }
    {
      const at::Tensor lm = at::linear(model_hidden.narrow(0, r, n), model_head).to(at::kFloat);  // (n, V)
      out.model_top1.narrow(0, r, n).copy_(lm.argmax(1));
      log_pm = at::log_softmax(lm, 1);
    }
    // sum_v p_t (log p_t - log p_m): torch.nn.functional.kl_div(log_pm, log_pt, log_target=True)
    // summed over the vocabulary. p_t = 0 (underflow) contributes 0.
    log_pm.neg_().add_(log_pt);  // log p_t - log p_m
    out.kl.narrow(0, r, n).copy_(log_pm.mul_(log_pt.exp_()).sum(1));
  }
  return out;
}

namespace {

bool same_rope(const model::RopeParams& a, const model::RopeParams& b) { return a.to_json() == b.to_json(); }

}  // namespace

FidelityResult evaluate_fidelity(const EvalModel& teacher, const EvalModel& m,
                                 const std::vector<std::vector<int32_t>>& streams, const FidelityParams& p) {
  if (!m.model || !teacher.model) fail("evaluate_fidelity", "no model");
  check_same_vocabulary(teacher.model->config(), teacher.dir, m.model->config(), m.name);
  if (teacher.model->device() != m.model->device())
    fail_option("teacher", "the teacher and the model must be on one device");
  const int64_t stride = p.stride > 0 ? std::min(p.stride, p.context) : p.context;
  // The same weights and RoPE: the teacher's forward is the model's.
  const bool self = teacher.model == m.model && same_rope(teacher.rope, m.rope);
  const auto t0 = std::chrono::steady_clock::now();
  at::NoGradGuard no_grad;
  FidelityResult r;
  r.context = p.context;
  r.stride = stride;
  int64_t teacher_correct = 0, model_correct = 0;
  for (const auto& batch : plan_batches(streams, p.context, stride, p.batch_size)) {
    const WindowBatch wb = gather_batch(streams, batch);
    const at::Tensor hm = predicting_hidden(m, wb);                           // (N, C)
    const at::Tensor ht = self ? hm : predicting_hidden(teacher, wb);         // (N, Ct)
    const NextTokenComparison c = compare_next_token(ht, teacher.model->weights().lm_head, hm,
                                                     m.model->weights().lm_head, p.chunk_rows);
    const at::Tensor gold = wb.targets.to(hm.device());  // (N)
    r.kl_sum += c.kl.to(at::kDouble).sum().item<double>();
    r.agree += c.teacher_top1.eq(c.model_top1).sum().item<int64_t>();
    teacher_correct += c.teacher_top1.eq(gold).sum().item<int64_t>();
    model_correct += c.model_top1.eq(gold).sum().item<int64_t>();
    r.positions += wb.targets.size(0);
    r.windows += static_cast<int64_t>(batch.size());
  }
  if (r.positions == 0) fail("fidelity", "no positions to compare (every stream is shorter than 2 tokens)");
  const double n = static_cast<double>(r.positions);
  r.kl = r.kl_sum / n;
  r.top1_agreement = static_cast<double>(r.agree) / n;
  r.teacher_accuracy = static_cast<double>(teacher_correct) / n;
  r.model_accuracy = static_cast<double>(model_correct) / n;
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return r;
}

}  // namespace linearard::eval
