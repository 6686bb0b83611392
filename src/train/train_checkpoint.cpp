#include "train/train_checkpoint.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "common/error.h"
#include "io/atomic_file.h"
#include "io/checkpoint.h"

namespace linearard::train {
namespace {

namespace fs = std::filesystem;

constexpr const char* kStateFile = "train_state.json";

void fsync_path(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) fail(path, "cannot open for fsync");
  const int rc = ::fsync(fd);
  ::close(fd);
  if (rc != 0 && errno != EINVAL && errno != ENOTSUP) fail(path, "fsync failed");
}

std::map<std::string, at::Tensor> read_tensors(const std::string& file) {
  std::map<std::string, at::Tensor> out;
  if (!fs::exists(file)) return out;
  io::CheckpointWeights weights(file);
  for (const auto& name : weights.names()) out[name] = weights.get(name).clone();  // off the mmap
  return out;
}

// step-000064 -> 64, else -1.
int64_t step_of(const std::string& name) {
  if (name.rfind("step-", 0) != 0 || name.size() <= 5) return -1;
  for (size_t i = 5; i < name.size(); ++i)
    if (name[i] < '0' || name[i] > '9') return -1;
  return std::stoll(name.substr(5));
}

std::vector<std::pair<int64_t, std::string>> complete_checkpoints(const std::string& dir) {
  std::vector<std::pair<int64_t, std::string>> out;
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) return out;
  for (const auto& entry : fs::directory_iterator(dir)) {
    const int64_t step = step_of(entry.path().filename().string());
    if (step >= 0 && fs::exists(entry.path() / kStateFile)) out.emplace_back(step, entry.path().string());
  }
  std::sort(out.begin(), out.end());
  return out;
}

}  // namespace

void write_checkpoint(const std::string& dir, const CheckpointContents& c) {
  const fs::path target(dir);
  const fs::path parent = target.parent_path().empty() ? fs::path(".") : target.parent_path();
  fs::create_directories(parent);
  const fs::path temp = parent / ("." + target.filename().string() + ".tmp." + std::to_string(::getpid()));
  std::error_code ec;
  fs::remove_all(temp, ec);
  if (!fs::create_directory(temp, ec)) fail(temp.string(), "cannot create checkpoint directory: " + ec.message());
  try {
    io::save_tensors((temp / "trainable.safetensors").string(), c.trainable);
    if (!c.optimizer.empty()) io::save_tensors((temp / "optimizer.safetensors").string(), c.optimizer);
    // train_state.json last: its presence marks a complete checkpoint.
    io::write_file_atomic((temp / kStateFile).string(), c.state.dump(1) + "\n");
    fsync_path(temp.string());
    if (fs::exists(target)) {  // same step written again (e.g. a resumed run): replace it
      const fs::path old = parent / ("." + target.filename().string() + ".old." + std::to_string(::getpid()));
      fs::rename(target, old);
      fs::rename(temp, target);
      fs::remove_all(old, ec);
    } else {
      fs::rename(temp, target);
    }
    fsync_path(parent.string());
  } catch (...) {
    fs::remove_all(temp, ec);
    throw;
  }
}

LoadedCheckpoint read_checkpoint(const std::string& dir) {
  LoadedCheckpoint out;
  out.dir = dir;
  const fs::path state_path = fs::path(dir) / kStateFile;
  std::ifstream in(state_path);
  if (!in) fail(dir, std::string("not a training checkpoint (no ") + kStateFile + ")");
  try {
    out.state = nlohmann::json::parse(in);
  } catch (const nlohmann::json::exception& e) {
    fail(state_path.string(), std::string("invalid JSON: ") + e.what());
  }
  out.trainable = read_tensors((fs::path(dir) / "trainable.safetensors").string());
  out.optimizer = read_tensors((fs::path(dir) / "optimizer.safetensors").string());
  return out;
}

std::string checkpoint_dir_for(const std::string& checkpoints_dir, int64_t step) {
  char name[32];
  std::snprintf(name, sizeof name, "step-%06lld", static_cast<long long>(step));
  return (fs::path(checkpoints_dir) / name).string();
}

std::string latest_checkpoint(const std::string& checkpoints_dir) {
  const auto all = complete_checkpoints(checkpoints_dir);
  return all.empty() ? "" : all.back().second;
}

void prune_checkpoints(const std::string& checkpoints_dir, int64_t keep) {
  const auto all = complete_checkpoints(checkpoints_dir);
  std::error_code ec;
  for (size_t i = 0; i + size_t(keep) < all.size(); ++i) fs::remove_all(all[i].second, ec);
}

}  // namespace linearard::train
