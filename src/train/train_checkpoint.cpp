#include "train/train_checkpoint.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

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

// ".<name>.<kind>.<pid>": the side directories of write_directory_atomic and prune_checkpoints.
std::string side_name(const fs::path& target, const char* kind) {
  return "." + target.filename().string() + "." + kind + "." + std::to_string(::getpid());
}

bool parse_side_name(const std::string& name, std::string& base, std::string& kind) {
  if (name.size() < 4 || name[0] != '.') return false;
  const size_t pid_dot = name.rfind('.');
  if (pid_dot == 0 || pid_dot + 1 >= name.size()) return false;
  for (size_t i = pid_dot + 1; i < name.size(); ++i)
    if (name[i] < '0' || name[i] > '9') return false;
  const size_t kind_dot = name.rfind('.', pid_dot - 1);
  if (kind_dot == std::string::npos || kind_dot == 0) return false;
  kind = name.substr(kind_dot + 1, pid_dot - kind_dot - 1);
  base = name.substr(1, kind_dot - 1);
  return !base.empty() && (kind == "tmp" || kind == "old" || kind == "del");
}

// Test hook: LINEARARD_TEST_CHECKPOINT_PAUSE_MS=<ms> sleeps between the files and renames of a
// checkpoint write and between prunings, so that the kill test (tests/train/test_crash_resume.cpp)
// often lands inside one.
void test_pause() {
  static const int ms = [] {
    const char* v = std::getenv("LINEARARD_TEST_CHECKPOINT_PAUSE_MS");
    return v ? std::atoi(v) : 0;
  }();
  if (ms > 0) std::this_thread::sleep_for(std::chrono::milliseconds(ms));
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

void write_directory_atomic(const std::string& dir, const std::function<void(const std::string& temp)>& fill) {
  const fs::path target(dir);
  const fs::path parent = target.parent_path().empty() ? fs::path(".") : target.parent_path();
  if (!fs::exists(parent)) {  // a new checkpoints/: its own entry must survive a power loss too
    fs::create_directories(parent);
    fsync_path(parent.parent_path().empty() ? "." : parent.parent_path().string());
  }
  const fs::path temp = parent / side_name(target, "tmp");
  std::error_code ec;
  fs::remove_all(temp, ec);
  if (!fs::create_directory(temp, ec)) fail(temp.string(), "cannot create directory: " + ec.message());
  try {
    fill(temp.string());
    fsync_path(temp.string());
    test_pause();
    if (fs::exists(target)) {  // same step written again (e.g. a resumed run): replace it
      const fs::path old = parent / side_name(target, "old");
      fs::remove_all(old, ec);
      fs::rename(target, old);
      test_pause();  // a crash here leaves only .old: recover_directories() renames it back
      fs::rename(temp, target);
      fsync_path(parent.string());
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

void write_checkpoint(const std::string& dir, const CheckpointContents& c) {
  write_directory_atomic(dir, [&](const std::string& temp) {
    io::save_tensors(temp + "/trainable.safetensors", c.trainable);
    test_pause();
    if (!c.optimizer.empty()) io::save_tensors(temp + "/optimizer.safetensors", c.optimizer);
    test_pause();
    for (const auto& [name, bytes] : c.files) io::write_file_atomic(temp + "/" + name, bytes);
    // train_state.json last: a directory with it is complete (recover_directories() removes the
    // temporary ones anyway).
    io::write_file_atomic(temp + "/" + kStateFile, c.state.dump(1) + "\n");
  });
}

void recover_directories(const std::string& parent) {
  std::error_code ec;
  if (!fs::is_directory(parent, ec)) return;
  std::vector<std::pair<fs::path, std::string>> leftovers;  // (path, kind)
  for (const auto& entry : fs::directory_iterator(parent, ec)) {
    const std::string name = entry.path().filename().string();
    std::string base, kind;
    if (parse_side_name(name, base, kind)) leftovers.emplace_back(entry.path(), kind);
  }
  for (const auto& [path, kind] : leftovers) {
    std::string base, k;
    parse_side_name(path.filename().string(), base, k);
    const fs::path target = path.parent_path() / base;
    if (kind == "old" && !fs::exists(target, ec) && fs::exists(path / kStateFile, ec)) {
      fs::rename(path, target, ec);
      if (!ec) continue;
    }
    fs::remove_all(path, ec);
  }
  fsync_path(parent);
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
  for (size_t i = 0; i + size_t(std::max<int64_t>(keep, 1)) < all.size(); ++i) {
    const fs::path path(all[i].second);
    const fs::path doomed = path.parent_path() / side_name(path, "del");
    fs::rename(path, doomed, ec);
    test_pause();
    fs::remove_all(ec ? path : doomed, ec);
  }
}

}  // namespace linearard::train
