// Crash-safe file replacement: write to "<path>.tmp.<pid>" in the same directory, fsync, rename
// over the target, fsync the directory. Readers see either the old file or the complete new one,
// never a partial target; on any failure the temp file is removed.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>

namespace linearard::io {

class AtomicFile {
 public:
  // Creates the temp file; throws "<path>: cannot create <temp>: <strerror>".
  explicit AtomicFile(std::string path);
  ~AtomicFile();  // removes the temp file unless commit() succeeded
  AtomicFile(const AtomicFile&) = delete;
  AtomicFile& operator=(const AtomicFile&) = delete;

  void write(const void* data, size_t nbytes);  // all bytes or throw
  void commit();                                // fsync, rename, fsync directory
  const std::string& temp_path() const { return temp_; }

 private:
  void abandon() noexcept;
  std::string path_, temp_;
  int fd_ = -1;
  bool committed_ = false;
};

// Writes `bytes` to `path` through AtomicFile.
void write_file_atomic(const std::string& path, const std::string& bytes);

// Free space kept beyond each write: room for the small JSON files and logs written next to the
// large ones and for the file system's own metadata (our choice, not measured).
constexpr uint64_t kFreeSpaceMarginBytes = uint64_t{16} << 20;

// Throws "<dir>: not enough free disk space: need N MiB (with the 16 MiB margin), M MiB free" when
// the file system holding `dir` has fewer than bytes_needed + kFreeSpaceMarginBytes bytes available
// to this user. Every large write calls it first: safetensors files (training checkpoints, exports,
// merged weights) and token shards. For tests only, the environment variable
// LINEARARD_FAKE_FREE_BYTES=N makes it see N free bytes instead of asking the file system.
void check_free_space(const std::string& dir, uint64_t bytes_needed);

// The directory part of a path ("." when there is none).
std::string parent_dir(const std::string& path);

// Absolute, symlinks resolved as far as the path exists, "." and ".." removed, no trailing "/":
// two spellings of one place compare equal.
std::string normalized_path(const std::string& path);

// True when `inner` equals `outer` or lies below it, after normalized_path (component-wise, so
// "/a/bc" is not inside "/a/b").
bool path_within(const std::string& inner, const std::string& outer);

}  // namespace linearard::io
