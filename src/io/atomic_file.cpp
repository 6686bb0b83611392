#include "io/atomic_file.h"

#include <fcntl.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

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

void check_free_space(const std::string& dir, uint64_t bytes_needed) {
  struct statvfs st {};
  if (::statvfs(dir.c_str(), &st) != 0) fail(dir, "cannot query free disk space: " + errno_text());
  uint64_t available = static_cast<uint64_t>(st.f_bavail) * st.f_frsize;
  if (available < bytes_needed) {
    constexpr uint64_t MiB = 1 << 20;
    fail(dir, "not enough free disk space: need " + std::to_string((bytes_needed + MiB - 1) / MiB) +
                  " MiB, " + std::to_string(available / MiB) + " MiB available");
  }
}

}  // namespace linearard::io
