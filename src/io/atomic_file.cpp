#include "io/atomic_file.h"

#include <fcntl.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>

#include "common/error.h"

namespace linearard::io {
namespace {

std::string errno_text() { return std::strerror(errno); }

void fsync_dir(const std::string& dir) {
  int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) fail(dir, "cannot open directory for fsync: " + errno_text());
  int rc = ::fsync(fd);
  int err = errno;
  ::close(fd);
  // Some file systems (e.g. certain network mounts) refuse fsync on a directory: the rename has
  // still happened, so only real I/O errors are reported.
  if (rc != 0 && err != EINVAL && err != ENOTSUP) fail(dir, std::string("fsync failed: ") + std::strerror(err));
}

}  // namespace

std::string parent_dir(const std::string& path) {
  size_t slash = path.find_last_of('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

AtomicFile::AtomicFile(std::string path) : path_(std::move(path)) {
  temp_ = path_ + ".tmp." + std::to_string(::getpid());
  fd_ = ::open(temp_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd_ < 0) fail(path_, "cannot create " + temp_ + ": " + errno_text());
}

AtomicFile::~AtomicFile() {
  if (!committed_) abandon();
}

void AtomicFile::abandon() noexcept {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
  ::unlink(temp_.c_str());
}

void AtomicFile::write(const void* data, size_t nbytes) {
  if (fd_ < 0) fail(path_, "write after commit or failure");
  const char* p = static_cast<const char*>(data);
  while (nbytes > 0) {
    // Linux transfers at most ~2 GiB per write call; loop over partial writes.
    ssize_t n = ::write(fd_, p, nbytes);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      std::string why = n < 0 ? errno_text() : "wrote 0 bytes";
      abandon();
      fail(path_, "write failed: " + why);
    }
    p += n;
    nbytes -= static_cast<size_t>(n);
  }
}

void AtomicFile::commit() {
  if (fd_ < 0) fail(path_, "commit after commit or failure");
  if (::fsync(fd_) != 0) {
    std::string why = errno_text();
    abandon();
    fail(path_, "fsync failed: " + why);
  }
  int rc = ::close(fd_);
  fd_ = -1;
  if (rc != 0 || ::rename(temp_.c_str(), path_.c_str()) != 0) {
    std::string why = errno_text();
    abandon();
    fail(path_, "cannot replace with " + temp_ + ": " + why);
  }
  committed_ = true;
  fsync_dir(parent_dir(path_));  // makes the rename itself durable
}

void write_file_atomic(const std::string& path, const std::string& bytes) {
  AtomicFile file(path);
  file.write(bytes.data(), bytes.size());
  file.commit();
}

// LINEARARD_FAKE_FREE_BYTES (tests): the free bytes to pretend, or -1 when unset.
static int64_t fake_free_bytes() {
  const char* v = std::getenv("LINEARARD_FAKE_FREE_BYTES");
  if (v == nullptr || *v == '\0') return -1;
  char* end = nullptr;
  errno = 0;
  const unsigned long long n = std::strtoull(v, &end, 10);
  if (errno != 0 || *end != '\0' || *v == '-')
    fail("LINEARARD_FAKE_FREE_BYTES", std::string("expected a number of bytes, got '") + v + "'");
  return static_cast<int64_t>(std::min<unsigned long long>(n, INT64_MAX));
}

void check_free_space(const std::string& dir, uint64_t bytes_needed) {
  uint64_t available = 0;
  if (const int64_t fake = fake_free_bytes(); fake >= 0) {
    available = static_cast<uint64_t>(fake);
  } else {
    struct statvfs st {};
    if (::statvfs(dir.c_str(), &st) != 0) fail(dir, "cannot query free disk space: " + errno_text());
    available = static_cast<uint64_t>(st.f_bavail) * st.f_frsize;
  }
  const uint64_t needed = bytes_needed + kFreeSpaceMarginBytes;
  if (available < needed) {
    constexpr uint64_t MiB = 1 << 20;
    fail(dir, "not enough free disk space: need " + std::to_string((needed + MiB - 1) / MiB) + " MiB (with the " +
                  std::to_string(kFreeSpaceMarginBytes / MiB) + " MiB margin), " + std::to_string(available / MiB) +
                  " MiB free");
  }
}

std::string normalized_path(const std::string& path) {
  namespace fs = std::filesystem;
  std::error_code ec;
  fs::path p = fs::absolute(path, ec);
  if (ec) p = fs::path(path);
  fs::path w = fs::weakly_canonical(p, ec);
  if (ec) w = p;
  std::string s = w.lexically_normal().string();
  while (s.size() > 1 && s.back() == '/') s.pop_back();
  return s;
}

bool path_within(const std::string& inner, const std::string& outer) {
  namespace fs = std::filesystem;
  const fs::path i(normalized_path(inner)), o(normalized_path(outer));
  auto it = i.begin();
  for (auto ot = o.begin(); ot != o.end(); ++ot, ++it)
    if (it == i.end() || *it != *ot) return false;
  return true;
}

}  // namespace linearard::io
