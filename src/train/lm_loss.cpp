#include "train/lm_loss.h"

#include <torch/csrc/autograd/custom_function.h>

#include <algorithm>

#include "common/error.h"

namespace linearard::train {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

constexpr int64_t kChunkLogitBytes = int64_t(256) << 20;  // float32 logits per chunk

struct ChunkedLmLoss : public torch::autograd::Function<ChunkedLmLoss> {
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& hidden, const at::Tensor& weight,
                            const at::Tensor& labels, int64_t chunk_rows) {
    const int64_t N = hidden.size(0), V = weight.size(0);
    const at::Tensor valid = labels.ne(kIgnoreIndex);                  // (N)
    const double n_valid = std::max<double>(1.0, valid.sum().item<double>());
    const bool want_dw = weight.requires_grad();
    const bool want_dh = hidden.requires_grad();
    at::Tensor loss = at::zeros({}, hidden.options().dtype(at::kFloat));
    at::Tensor dh = want_dh ? at::empty_like(hidden) : at::Tensor();             // (N, C)
    at::Tensor dw = want_dw ? at::zeros(weight.sizes(), weight.options().dtype(at::kFloat)) : at::Tensor();  // (V, C)
    for (int64_t start = 0; start < N; start += chunk_rows) {
      const int64_t rows = std::min(chunk_rows, N - start);
      const at::Tensor h = hidden.narrow(0, start, rows);                       // (rows, C)
      const at::Tensor y = labels.narrow(0, start, rows);                       // (rows)
      const at::Tensor keep = valid.narrow(0, start, rows);                     // (rows)
      const at::Tensor safe = y.masked_fill(keep.logical_not(), 0).unsqueeze(1);  // (rows, 1)
      at::Tensor logits = at::matmul(h, weight.t()).to(at::kFloat);             // (rows, V)
      const at::Tensor lse = at::logsumexp(logits, -1, /*keepdim=*/true);       // (rows, 1)
      const at::Tensor picked = logits.gather(1, safe);                         // (rows, 1)
      loss += ((lse - picked).squeeze(1) * keep).sum();
      if (!want_dh && !want_dw) continue;
      // d loss / d logits = (softmax - onehot) / n_valid on kept rows; reuse the logits buffer.
      at::Tensor g = logits.sub_(lse).exp_();
      g.scatter_add_(1, safe, at::full_like(picked, -1.0));
      g.mul_((keep.to(at::kFloat) / n_valid).unsqueeze(1));
      const at::Tensor gc = g.to(hidden.scalar_type());
      if (want_dh) dh.narrow(0, start, rows).copy_(at::matmul(gc, weight));    // (rows, C)
      if (want_dw) dw.add_(at::matmul(gc.t(), h).to(at::kFloat));              // (V, C)
    }
    (void)V;
    ctx->save_for_backward({dh, dw});
    return loss / n_valid;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grad_outputs) {
    const auto saved = ctx->get_saved_variables();
    const at::Tensor& g = grad_outputs[0];
    at::Tensor dh = saved[0].defined() ? saved[0] * g.to(saved[0].scalar_type()) : at::Tensor();
    at::Tensor dw = saved[1].defined() ? saved[1] * g : at::Tensor();
    return {dh, dw, at::Tensor(), at::Tensor()};
  }
};

// KL(teacher || student) of log_softmax(logits / tau), the same scheme: per chunk of rows the
// student's and teacher's logits, the KL and d KL / d student logits = (p_s - p_t) / (tau N).
struct ChunkedLogitsKl : public torch::autograd::Function<ChunkedLogitsKl> {
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& student, const at::Tensor& teacher,
                            const at::Tensor& weight, double temperature, int64_t chunk_rows) {
    const int64_t N = student.size(0);
    const bool want_dh = student.requires_grad();
    const bool want_dw = weight.requires_grad();
    at::Tensor kl = at::zeros({}, student.options().dtype(at::kFloat));
    at::Tensor dh = want_dh ? at::empty_like(student) : at::Tensor();                                      // (N, C)
    at::Tensor dw = want_dw ? at::zeros(weight.sizes(), weight.options().dtype(at::kFloat)) : at::Tensor();  // (V, C)
    for (int64_t start = 0; start < N; start += chunk_rows) {
      const int64_t rows = std::min(chunk_rows, N - start);
      const at::Tensor hs = student.narrow(0, start, rows);  // (rows, C)
      const at::Tensor ht = teacher.narrow(0, start, rows);  // (rows, C)
      const at::Tensor log_s = at::log_softmax(at::matmul(hs, weight.t()).to(at::kFloat) / temperature, -1);  // (rows, V)
      const at::Tensor log_t = at::log_softmax(at::matmul(ht, weight.t()).to(at::kFloat) / temperature, -1);  // (rows, V)
      const at::Tensor p_t = log_t.exp();
      kl += (p_t * (log_t - log_s)).sum();
      if (!want_dh && !want_dw) continue;
      const at::Tensor g = ((log_s.exp() - p_t) / (temperature * double(N))).to(student.scalar_type());  // (rows, V)
      if (want_dh) dh.narrow(0, start, rows).copy_(at::matmul(g, weight));
      if (want_dw) dw.add_(at::matmul(g.t(), hs).to(at::kFloat));
    }
    ctx->save_for_backward({dh, dw});
    return kl / double(N);
  }

  static variable_list backward(AutogradContext* ctx, variable_list grad_outputs) {
    const auto saved = ctx->get_saved_variables();
    const at::Tensor& g = grad_outputs[0];
    at::Tensor dh = saved[0].defined() ? saved[0] * g.to(saved[0].scalar_type()) : at::Tensor();
    at::Tensor dw = saved[1].defined() ? saved[1] * g : at::Tensor();
    return {dh, at::Tensor(), dw, at::Tensor(), at::Tensor()};
  }
};

}  // namespace

at::Tensor chunked_logits_kl(const at::Tensor& student_hidden, const at::Tensor& teacher_hidden,
                             const at::Tensor& lm_head, double temperature, int64_t chunk_rows) {
  if (student_hidden.dim() != 2 || student_hidden.sizes() != teacher_hidden.sizes() || lm_head.dim() != 2 ||
      student_hidden.size(1) != lm_head.size(1))
    fail("logits kl", "expected student and teacher hidden (N, C) and lm_head (V, C)");
  if (student_hidden.scalar_type() != lm_head.scalar_type()) fail("logits kl", "hidden and lm_head dtypes differ");
  // Two models' float32 logits (and their softmax) per chunk: half the LM loss's rows.
  if (chunk_rows <= 0) chunk_rows = std::max<int64_t>(1, kChunkLogitBytes / (8 * lm_head.size(0)));
  return ChunkedLogitsKl::apply(student_hidden, teacher_hidden.detach(), lm_head, temperature, chunk_rows);
}

at::Tensor chunked_lm_loss(const at::Tensor& hidden, const at::Tensor& lm_head, const at::Tensor& labels,
                           int64_t chunk_rows) {
  if (hidden.dim() != 2 || lm_head.dim() != 2 || hidden.size(1) != lm_head.size(1))
    fail("lm loss", "expected hidden (N, C) and lm_head (V, C)");
  if (labels.dim() != 1 || labels.size(0) != hidden.size(0) || labels.scalar_type() != at::kLong)
    fail("lm loss", "expected labels (N) int64");
  if (hidden.scalar_type() != lm_head.scalar_type()) fail("lm loss", "hidden and lm_head dtypes differ");
  if (chunk_rows <= 0) chunk_rows = std::max<int64_t>(1, kChunkLogitBytes / (4 * lm_head.size(0)));
  return ChunkedLmLoss::apply(hidden, lm_head, labels, chunk_rows);
}

at::Tensor causal_lm_loss(const at::Tensor& hidden, const at::Tensor& lm_head, const at::Tensor& tokens,
                          int64_t chunk_rows, const std::optional<at::Tensor>& doc_ids) {
  const int64_t B = hidden.size(0), T = hidden.size(1), C = hidden.size(2);
  const at::Tensor h = hidden.narrow(1, 0, T - 1).reshape({B * (T - 1), C});   // (B (T-1), C)
  at::Tensor labels = tokens.narrow(1, 1, T - 1).reshape({B * (T - 1)});  // (B (T-1))
  if (doc_ids) {
    const at::Tensor d = doc_ids->to(tokens.device());
    const at::Tensor crosses = d.narrow(1, 1, T - 1).ne(d.narrow(1, 0, T - 1)).reshape({B * (T - 1)});
    labels = labels.masked_fill(crosses, kIgnoreIndex);
  }
  return chunked_lm_loss(h, lm_head, labels, chunk_rows);
}

}  // namespace linearard::train
