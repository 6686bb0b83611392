#include "train/objective.h"

#include <algorithm>
#include <cmath>

#include "common/error.h"
#include "common/option_error.h"
#include "ops/relation_kl/relation_kl.h"
#include "train/lm_loss.h"

namespace linearard::train {
namespace {

at::Tensor sum_terms(const at::Tensor& sum, const at::Tensor& term) { return sum.defined() ? sum + term : term; }

}  // namespace

DistillObjective::DistillObjective(const ObjectiveOptions& options, const model::ModelConfig& config)
    : options_(options), config_(config), layers_(options.layers) {
  if (layers_.empty())
    for (int64_t l = 0; l < config.num_hidden_layers; ++l) layers_.push_back(l);
  std::sort(layers_.begin(), layers_.end());
  layers_.erase(std::unique(layers_.begin(), layers_.end()), layers_.end());
  for (int64_t l : layers_)
    if (l < 0 || l >= config.num_hidden_layers)
      fail_option("layers", "layer " + std::to_string(l) + " out of range [0, " +
                           std::to_string(config.num_hidden_layers) + ")");
}

bool DistillObjective::needs_relations() const {
  return options_.relation_q || options_.relation_k || options_.relation_v;
}

void DistillObjective::begin(double valid_tokens, std::optional<at::Tensor> doc_ids) {
  valid_tokens_ = valid_tokens;
  doc_ids_ = std::move(doc_ids);
  parts_ = LossParts();
}

void DistillObjective::add_layer(const model::LayerCapture& s, const model::LayerCapture& t,
                                 const std::optional<at::Tensor>& key_mask) {
  const double H = double(config_.num_attention_heads);
  const double Hk = options_.kv_normalization == "kv-heads" ? double(config_.num_key_value_heads) : H;
  ops::RelationKLOptions kl;
  kl.scale_s = kl.scale_t = 1.0 / std::sqrt(double(config_.head_dim));  // 1/sqrt(D) on both sides, as LinearARD's train.py (github.com/gracefulning/LinearARD)
  kl.causal = true;
  kl.doc_ids = doc_ids_;  // packed blocks: block-diagonal
  const double per_layer = 1.0 / double(layers_.size());
  auto term = [&](const at::Tensor& x, const at::Tensor& y, double weight, double heads) {
    const at::Tensor rows = ops::relation_kl_self(x, y.detach(), key_mask, kl);  // (B, H, T) float32
    return rows.sum() * (weight * per_layer / (valid_tokens_ * heads));
  };
  if (options_.relation_q) parts_.q = sum_terms(parts_.q, term(s.q, t.q, options_.weight_q, H));
  if (options_.relation_k) parts_.k = sum_terms(parts_.k, term(s.k, t.k, options_.weight_k, Hk));
  if (options_.relation_v) parts_.v = sum_terms(parts_.v, term(s.v, t.v, options_.weight_v, Hk));
  if (needs_layer_hidden()) {
    if (!s.hidden.defined() || !t.hidden.defined())
      fail("objective", "layer " + std::to_string(s.layer) + " has no captured output for the hidden-state term");
    const at::Tensor cos = at::cosine_similarity(s.hidden.to(at::kFloat), t.hidden.detach().to(at::kFloat), -1,
                                                 1e-8);  // (B, T)
    parts_.hidden = sum_terms(parts_.hidden, (1.0 - cos).sum() * (options_.hidden_weight * per_layer / valid_tokens_));
  }
}

void DistillObjective::add_outputs(const at::Tensor& student_hidden, const at::Tensor& teacher_hidden,
                                   const at::Tensor& lm_head, const at::Tensor& tokens, int64_t lm_chunk_rows) {
  const int64_t B = student_hidden.size(0), T = student_hidden.size(1), C = student_hidden.size(2);
  if (options_.logits_kl_weight != 0) {
    const int64_t k = options_.logits_kl_last == 0 ? T : std::min(options_.logits_kl_last, T);
    auto last = [&](const at::Tensor& h) { return h.narrow(1, T - k, k).reshape({B * k, C}); };  // (B k, C)
    parts_.logits = chunked_logits_kl(last(student_hidden), last(teacher_hidden.detach()), lm_head,
                                      options_.temperature, lm_chunk_rows);
  }
  if (options_.lm_weight != 0) parts_.lm = causal_lm_loss(student_hidden, lm_head, tokens, lm_chunk_rows, doc_ids_);
}

LossParts DistillObjective::finish() {
  at::Tensor total;
  for (const at::Tensor* t : {&parts_.q, &parts_.k, &parts_.v, &parts_.hidden})
    if (t->defined()) total = sum_terms(total, *t);
  if (parts_.logits.defined()) total = sum_terms(total, parts_.logits * options_.logits_kl_weight);
  if (parts_.lm.defined()) total = sum_terms(total, parts_.lm * options_.lm_weight);
  if (!total.defined()) fail("objective", "no loss term was computed");
  parts_.total = total;
  return parts_;
}

}  // namespace linearard::train
