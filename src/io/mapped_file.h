// Read-only memory map of a whole file. Owned through shared_ptr so that tensors viewing the
// mapping (at::from_blob in io/checkpoint.cpp) can keep it alive after the reader is gone.
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

namespace linearard::io {

class MappedFile {
 public:
  // Maps `path` with PROT_READ: writing through data() faults (SIGSEGV) by design, so nothing can
  // silently modify a checkpoint's bytes. Throws "<path>: cannot open: <strerror>" and the like.
  static std::shared_ptr<const MappedFile> open(const std::string& path);
  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  const uint8_t* data() const { return data_; }  // nullptr when size() == 0
  size_t size() const { return size_; }
  const std::string& path() const { return path_; }

  // Maps the pages of [offset, offset + length) in one call (MADV_POPULATE_READ, reading them from
  // disk if needed) instead of one page fault per few pages while they are read; falls back to a
  // readahead hint (MADV_WILLNEED) on kernels before 5.14. Only affects speed, so never fails.
  void populate(size_t offset, size_t length) const;

 private:
  MappedFile(std::string path, const uint8_t* data, size_t size);
  std::string path_;
  const uint8_t* data_;
  size_t size_;
};

}  // namespace linearard::io
