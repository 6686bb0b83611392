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

// Throws "<dir>: not enough free disk space: need N MiB, M MiB available" when the file system
// holding `dir` has fewer than `bytes_needed` bytes available to this user.
void check_free_space(const std::string& dir, uint64_t bytes_needed);

// The directory part of a path ("." when there is none).
std::string parent_dir(const std::string& path);

}  // namespace linearard::io
