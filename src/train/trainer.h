// The training loop shared by distill, cpt and pretrain: deterministic data order, AdamW with the
// warm-up + cosine schedule, gradient accumulation (loss / accum before backward), global-norm
// clipping, metrics and progress, atomic checkpoints every N steps (keeping the last K) and exact
// resume (trainable tensors, Adam moments, data position, RNG state, step). Data-parallel with a
// ProcessGroup: each rank runs grad_accum micro-batches of its share of every step's blocks and the
// gradients are averaged before clipping, so W ranks equal one process with grad_accum x W.
#pragma once
#include <ATen/ATen.h>

#include <nlohmann/json.hpp>
#include <string>

#include "train/data_source.h"
#include "train/distributed.h"
#include "train/tasks.h"
#include "train/train_options.h"

namespace linearard::train {

struct TrainResult {
  int64_t steps_done = 0;      // optimiser steps completed, resumed ones included
  double first_loss = 0, last_loss = 0;  // of this process's first and last step
  std::string final_dir;       // <out>/final
};

// Runs options.optim.steps optimiser steps of `task` on `data` (blocks moved to `device`), writing
// into options.run.out_dir: options.json, metrics.jsonl, checkpoints/step-N/, final/.
// `stop_after` > 0 ends the process's loop after that step (tests interrupt a run this way).
// With `group` (world size W > 1) optimiser step s takes the blocks of positions
// [s x G, (s + 1) x G) of the sampler's order, G = W x grad_accum x batch_size; rank r's micro-batch
// m is the chunk m x W + r of batch_size blocks -- micro-batch m x W + r of one process with
// grad_accum x W. Only rank 0 writes files and progress.
TrainResult run_training(TrainTask& task, const TrainOptions& options, const TokenBlockSource& data,
                         at::Device device, int64_t stop_after = 0, ProcessGroup* group = nullptr);

// Seeds the CPU and current CUDA generators (dropout) for a fresh run.
void seed_everything(uint64_t seed);

}  // namespace linearard::train
