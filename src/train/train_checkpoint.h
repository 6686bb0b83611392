// Training checkpoints on disk (layout: checkpoint_format.md). A checkpoint directory is written
// under a temporary name, every file fsynced, then renamed into place, so a crash leaves either
// the previous checkpoints or the complete new one.
#pragma once
#include <ATen/ATen.h>

#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "train/qkv_adapter.h"

namespace linearard::train {

struct CheckpointContents {
  NamedTensors trainable;  // -> trainable.safetensors
  NamedTensors optimizer;  // -> optimizer.safetensors (Adam moments, RNG states); may be empty
  nlohmann::json state;    // -> train_state.json
};

// Writes `dir` atomically (replacing an older directory of that name).
void write_checkpoint(const std::string& dir, const CheckpointContents& contents);

struct LoadedCheckpoint {
  std::string dir;
  std::map<std::string, at::Tensor> trainable, optimizer;  // CPU tensors
  nlohmann::json state;
};
LoadedCheckpoint read_checkpoint(const std::string& dir);

// "<checkpoints_dir>/step-000064" for step 64.
std::string checkpoint_dir_for(const std::string& checkpoints_dir, int64_t step);
// The complete checkpoint with the highest step, or "" when there is none.
std::string latest_checkpoint(const std::string& checkpoints_dir);
// Removes all but the `keep` newest complete checkpoints.
void prune_checkpoints(const std::string& checkpoints_dir, int64_t keep);

}  // namespace linearard::train
