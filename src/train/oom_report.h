// GPU out-of-memory during training (docs/training-faults.md): run_training turns a
// c10::OutOfMemoryError into one line that says how much memory was asked for and in use, a rough
// estimate of what the run's configuration needs, and the flags that reduce it.
#pragma once
#include <ATen/ATen.h>

#include <cstdint>
#include <string>

#include "model/model_config.h"
#include "train/train_options.h"

namespace linearard::train {

// What the CUDA caching allocator's message says, in bytes (-1: not in the text). The message of
// LibTorch 2.x reads "CUDA out of memory. Tried to allocate 2.00 GiB. GPU 0 has a total capacity
// of 79.11 GiB of which 1.00 GiB is free. Including non-PyTorch memory, this process has 78.00 GiB
// memory in use. [8.00 GiB allowed; ]Of the allocated memory 76.50 GiB is allocated by PyTorch,
// ..."; the older "(GPU 0; 7.93 GiB total capacity; 130.35 MiB already allocated; 47.06 MiB
// free; ...)" form is read too.
struct OomFacts {
  double requested = -1, total = -1, free = -1, in_use = -1, allocated = -1, allowed = -1;
};
OomFacts parse_oom_text(const std::string& what);
// When the text lacked the memory in use: the caching allocator's allocated bytes on `device`
// (with LibTorch's CUDA headers; else nothing).
void add_allocator_facts(OomFacts& facts, at::Device device);

// A rough model of a run's peak device memory, in bytes (what dominates; allocator slack and
// kernels' workspaces are not counted). The formulas are in oom_report.cpp.
struct MemoryEstimate {
  double weights = 0;      // the frozen (or, for pretrain, trained) model weights
  double trainable = 0;    // adapter parameters, gradients and AdamW moments, float32
  double activations = 0;  // one micro-batch's saved activations, captures and LM-loss chunk
  double total() const { return weights + trainable + activations; }
};
MemoryEstimate estimate_training_memory(const model::ModelConfig& config, const TrainOptions& options,
                                        at::ScalarType dtype, int64_t trainable_params);

// "out of memory at step 3: tried to allocate 2.00 GiB with 77.50 GiB of 79.11 GiB in use; this
// run needs roughly 95.2 GiB (weights 12.6, trainable + AdamW 4.0, activations 78.6 GiB); reduce it
// with ..." -- one line. `step` is the 1-based step being computed (0: before the first).
std::string oom_message(const OomFacts& facts, const MemoryEstimate& estimate, const TrainOptions& options,
                        int64_t num_layers, int64_t step);

// ": tried to allocate 2.00 GiB with 77.50 GiB of 79.11 GiB in use (8.00 GiB allowed to this
// process)" -- the parts the facts have; "" when they have none. Every OOM message starts with it.
std::string describe_oom_facts(const OomFacts& facts);

// "2.00 GiB", "512.0 MiB", "4.0 KiB", "12 B".
std::string format_bytes(double bytes);

// Test hook: LINEARARD_TEST_CUDA_MEMORY_FRACTION=<f> caps the CUDA caching allocator of `device`
// at f x its memory (c10's per-process memory fraction) so that a small run runs out of memory.
// No-op on CPU or without LibTorch's CUDA headers.
void apply_test_memory_limit(at::Device device);

}  // namespace linearard::train
