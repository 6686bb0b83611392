// Non-finite losses and gradients (docs/training-faults.md). The trainer checks every step's
// loss parts (already summed over micro-batches and ranks) and the global gradient norm (of the
// rank-averaged gradients), so every rank takes the same decision: a non-finite one skips the
// optimiser step (weights and AdamW state unchanged; the data position and the LR schedule move
// on), and --max-nonfinite-steps of them in a row stop the run.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "train/objective.h"
#include "train/qkv_adapter.h"

namespace linearard::train {

// The step's values in the trainer's order: total, q, k, v, logits, lm (`present` says which the
// objective has). Returns the first non-finite of "q", "k", "v", "logits", "lm", then "loss" (the
// total), then "grad_norm"; "" when all are finite.
std::string nonfinite_term(const std::vector<double>& parts, const std::vector<bool>& present, double grad_norm);

// Test hook: LINEARARD_TEST_INJECT_NAN="3:q,5:grad_norm,7:k@1". At optimiser step 3 (1-based) the
// q term of the step's first micro-batch becomes NaN (and with it the total and, through the
// backward, the gradients); "loss" poisons the total only; "grad_norm" makes one gradient
// element Inf after the ranks' averaging; "@r" limits an item to rank r.
class NonfiniteInjection {
 public:
  static NonfiniteInjection from_environment();
  bool empty() const { return items_.empty(); }
  void apply_to_loss(int64_t step, int rank, LossParts& parts) const;
  void apply_to_grads(int64_t step, int rank, const NamedTensors& params) const;

 private:
  struct Item {
    int64_t step = 0;
    std::string term;
    int rank = -1;  // -1: every rank
  };
  bool hits(const Item& item, int64_t step, int rank) const {
    return item.step == step && (item.rank < 0 || item.rank == rank);
  }
  std::vector<Item> items_;
};

}  // namespace linearard::train
