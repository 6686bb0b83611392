// The training jobs (distill, cpt, pretrain) as one library call. `linearard distill|cpt|pretrain`
// only parse their flags into a TrainOptions and call run(); tests and a Python binding call it the
// same way. One path for the three jobs: options.command picks the model (the base checkpoint, or a
// new one for pretrain), the student's RoPE and the task (train/tasks.h); the loop is
// run_training (train/trainer.h).
#pragma once
#include <string>

#include "train/train_options.h"
#include "train/trainer.h"

namespace linearard::train {

struct RunResult {
  // nproc > 1 in the launching process: the worker processes ran the job (their files are in
  // out_dir) and `training` is empty.
  bool ran_workers = false;
  TrainResult training;  // steps, first and last loss of this process, final_dir
  std::string out_dir;   // options.json, metrics.jsonl, checkpoints/, final/
};

// Validates `options` (OptionError naming the option), guards out_dir (io/output_guard.h), loads
// the base model (a .gguf path through its imported directory) or builds the new one, opens the
// data, starts the nproc workers or joins the process group (torchrun), resumes when asked, trains
// and writes the result. Prints the options and progress on the main process, as the CLI shows them.
RunResult run(TrainOptions options);

}  // namespace linearard::train
