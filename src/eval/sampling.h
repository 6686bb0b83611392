// Ancestral sampling from a model with the KV-cache decoder: the text a teacher would write, used
// as distillation data (`linearard sample`). Distilling on the teacher's own samples matches the
// student to the teacher where the teacher puts its probability mass, whatever text the user has;
// this is sequence-level knowledge distillation (Kim & Rush 2016, "Sequence-Level Knowledge
// Distillation", arXiv 1606.07947) with samples instead of beam search.
//
// Reproducible on every device and batch size: the uniform number that picks the token of sample
// s at position t is a hash of (seed, s, t) (splitmix64, Steele et al. 2014), and a token is chosen
// by inverting the cumulative distribution softmax(logits / temperature) at that number.
#pragma once
#include <ATen/ATen.h>

#include <cstdint>
#include <functional>
#include <vector>

#include "eval/eval_model.h"

namespace linearard::eval {

struct SamplingParams {
  int64_t sample_tokens = 2048;  // length of every sample, prompt included
  double temperature = 1.0;      // 0: greedy (argmax)
  uint64_t seed = 0;
  int64_t first_index = 0;  // global index of prompts[0]: the hash key of its uniforms
};

// The uniform number in [0, 1) for sample `index` at position `position`.
float sampling_uniform(uint64_t seed, int64_t index, int64_t position);

// Picks one token per row of logits (B, V) given uniforms (B) in [0, 1): the smallest id whose
// cumulative probability under softmax(logits / temperature) exceeds u (argmax at temperature 0).
at::Tensor pick_tokens(const at::Tensor& logits, const at::Tensor& uniforms, double temperature);

// Samples continuations of a batch of prompts of one length (each shorter than sample_tokens) in
// one KV-cache batch; returns (B, sample_tokens) int64 on the CPU, prompts first. `progress` is
// called with the positions done so far.
at::Tensor sample_batch(const EvalModel& m, const std::vector<std::vector<int64_t>>& prompts, const SamplingParams& p,
                        const std::function<void(int64_t)>& progress = {});

}  // namespace linearard::eval
