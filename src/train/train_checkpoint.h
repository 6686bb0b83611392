// Training checkpoints on disk (layout: checkpoint_format.md). A checkpoint directory is written
// under a temporary name, every file fsynced, then renamed into place, so a crash leaves either
// the previous checkpoints or the complete new one (docs/training-faults.md).
#pragma once
#include <ATen/ATen.h>

#include <functional>
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
  std::vector<std::pair<std::string, std::string>> files;  // more files: name -> bytes (adapter.json)
};

// Writes `dir` atomically (replacing an older directory of that name).
void write_checkpoint(const std::string& dir, const CheckpointContents& contents);

// Fills a directory atomically: `fill` writes its files into the temporary directory it is given
// (".<name>.tmp.<pid>" next to `dir`), which is then fsynced and renamed to `dir`. An existing
// `dir` is first renamed to ".<name>.old.<pid>" and removed after the swap; a crash in between is
// undone by recover_directories().
void write_directory_atomic(const std::string& dir, const std::function<void(const std::string& temp)>& fill);

// Cleans up after a crash inside `parent` (the out dir or its checkpoints/): a ".<name>.old.<pid>"
// whose <name> is missing is renamed back (the crash hit between the two renames of a
// replacement); every other ".<name>.tmp|old|del.<pid>" directory is removed. Only one trainer
// may write an out dir at a time.
void recover_directories(const std::string& parent);

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
// Removes all but the `keep` newest complete checkpoints (keep >= 1: never the newest). Each is
// renamed to ".step-N.del.<pid>" before its files go, so a crash never leaves a half-removed
// step-N that looks complete.
void prune_checkpoints(const std::string& checkpoints_dir, int64_t keep);

}  // namespace linearard::train
