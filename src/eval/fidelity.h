// Next-token fidelity of a model to its teacher over the perplexity windows (perplexity.h): both
// models read the same token ids, and at every scored position (the positions whose next token
// perplexity scores) we compare their next-token distributions:
//   KL(teacher || model) = sum_v p_t(v) (log p_t(v) - log p_m(v))   (nats, mean over positions)
//   top-1 agreement      = share of positions where argmax_v logits_m == argmax_v logits_t
// (torch.argmax's rule: the first maximum on ties), plus each model's greedy accuracy on the gold
// next token. The forwards stop at the final hidden states and the two LM heads are applied a
// chunk of rows at a time, so no (tokens x vocab) logits of a whole window exist at once.
// Evaluation only: no autograd.
#pragma once
#include <ATen/ATen.h>

#include <cstdint>
#include <vector>

#include "eval/eval_model.h"

namespace linearard::eval {

struct NextTokenComparison {
  at::Tensor kl;             // (N) float32, KL(teacher || model) per position, nats
  at::Tensor teacher_top1;   // (N) int64, argmax of the teacher's logits
  at::Tensor model_top1;     // (N) int64, argmax of the model's logits
};

// teacher_hidden (N, Ct) with teacher_head (V, Ct); model_hidden (N, C) with model_head (V, C);
// each pair in its model's dtype, on one device. Logits are computed in the compute dtype and
// promoted to float32 before the log-softmax (as token_nll.h does). chunk_rows = 0 picks rows so
// that one chunk's float32 logits of both models stay under kChunkLogitBytes (token_nll.h).
NextTokenComparison compare_next_token(const at::Tensor& teacher_hidden, const at::Tensor& teacher_head,
                                       const at::Tensor& model_hidden, const at::Tensor& model_head,
                                       int64_t chunk_rows = 0);

struct FidelityParams {
  int64_t context = 0;
  int64_t stride = 0;      // 0: non-overlapping (stride = context), as perplexity
  int64_t batch_size = 1;  // windows per forward
  int64_t chunk_rows = 0;  // rows per LM-head chunk (0: automatic)
};

struct FidelityResult {
  int64_t context = 0, stride = 0, windows = 0;
  int64_t positions = 0;        // compared positions (= perplexity's scored tokens)
  double kl_sum = 0;            // nats, summed in float64
  double kl = 0;                // kl_sum / positions
  int64_t agree = 0;            // positions with the same top-1
  double top1_agreement = 0;    // agree / positions
  double teacher_accuracy = 0;  // share of positions where the teacher's top-1 is the gold token
  double model_accuracy = 0;    // the same for the model
  double seconds = 0;
};

// Fails (check_same_vocabulary) when the two vocabularies differ in size. teacher and m may share one
// DecoderModel (e.g. the scaled model is the teacher's weights with another RoPE); when they also
// share the RoPE, one forward serves both (KL 0, agreement 1).
FidelityResult evaluate_fidelity(const EvalModel& teacher, const EvalModel& m,
                                 const std::vector<std::vector<int32_t>>& streams, const FidelityParams& p);

// Throws ("--teacher <teacher_dir>: ...") unless the teacher and the model (`model_what` names it
// in the message) have vocabularies of the same size.
void check_same_vocabulary(const model::ModelConfig& teacher, const std::string& teacher_dir,
                           const model::ModelConfig& model, const std::string& model_what);

}  // namespace linearard::eval
