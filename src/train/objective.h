// Attention-restore distillation objective (LinearARD, arXiv 2604.00004; its train.py and kernels/attention_KL):
//   per selected layer l and relation X in {Q, K, V}:  R_l^X = sum_{b,h,i} KL_i(teacher || student)
//   of the row softmax of scale <x_i, x_j> (scale = 1/sqrt(head_dim) on both sides, causal with the
//   diagonal, padding keys excluded, post-RoPE Q and K, V as is);
//   relations = sum_X w_X R_l^X / denom_X, averaged over the selected layers;
//   denom_X = valid tokens x H for all three (the reference, "query-heads"), or valid tokens x Hk
//   for K and V ("kv-heads": a per-head mean on GQA models);
//   hidden = w_hidden * mean over the selected layers and tokens of (1 - cos(h_s, h_t)), h the layer's
//   output (LongReD's short-text term, arXiv 2502.07365, its train_longred_*.py);
//   total = relations + hidden + w_logits * logits KL + w_lm * LM cross-entropy.
// Logits KL = KL(teacher || student) of log_softmax(logits / temperature) over the vocabulary on
// the last k positions (k = 0: all), summed over the vocabulary and averaged over the B k positions;
// no T^2.
#pragma once
#include <ATen/ATen.h>

#include <optional>
#include <vector>

#include "model/llama.h"
#include "train/train_options.h"

namespace linearard::train {

// One loss and its parts (float32 scalars; undefined parts are not used).
struct LossParts {
  at::Tensor total;
  at::Tensor q, k, v;     // weighted relation terms, already averaged over layers
  at::Tensor logits, lm;  // unweighted
  at::Tensor hidden;      // weighted hidden-state term, already averaged over layers
};

class DistillObjective {
 public:
  DistillObjective(const ObjectiveOptions& options, const model::ModelConfig& config);

  const std::vector<int64_t>& layers() const { return layers_; }  // ascending
  bool needs_relations() const;
  bool needs_captures() const { return needs_relations() || needs_layer_hidden(); }
  bool needs_layer_hidden() const { return options_.hidden_weight != 0; }
  bool needs_hidden() const { return options_.logits_kl_weight != 0 || options_.lm_weight != 0; }

  // Starts a new loss for a batch with `valid_tokens` real tokens. doc_ids (B, T) (packed blocks):
  // the relation rows see only keys of their own document (RelationKLOptions::doc_ids) and the LM
  // loss skips targets that start a document (causal_lm_loss); the logits KL compares the two
  // models' next-token distributions position by position and needs no mask.
  void begin(double valid_tokens, std::optional<at::Tensor> doc_ids = std::nullopt);
  // Adds layer `layer`'s relation terms; teacher tensors carry no gradient.
  void add_layer(const model::LayerCapture& student, const model::LayerCapture& teacher,
                 const std::optional<at::Tensor>& key_mask);
  // Adds the logits KL from the student and teacher hidden states (B, T, C) (only the last k
  // positions are used) and the LM loss of the student; lm_head (V, C).
  void add_outputs(const at::Tensor& student_hidden, const at::Tensor& teacher_hidden, const at::Tensor& lm_head,
                   const at::Tensor& tokens, int64_t lm_chunk_rows);
  LossParts finish();

 private:
  ObjectiveOptions options_;
  const model::ModelConfig& config_;
  std::vector<int64_t> layers_;
  double valid_tokens_ = 0;
  std::optional<at::Tensor> doc_ids_;
  LossParts parts_;
};

}  // namespace linearard::train
