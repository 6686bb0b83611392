// safetensors reader and writer, torch-free (format: anchors §3.3, huggingface/safetensors).
// File = u64 little-endian N | N bytes of JSON header | data area. Offsets in the header are
// relative to the start of the data area, which begins at byte 8 + N.
#pragma once
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "io/mapped_file.h"

namespace linearard::io {

// Declared in increasing alignment order, as the Rust reference's Dtype enum: the writer sorts
// tensors by descending enum value, which keeps every tensor aligned to its element size.
enum class DType { BOOL, U8, I8, F8_E5M2, F8_E4M3, I16, U16, F16, BF16, I32, U32, F32, F64, I64, U64 };

size_t dtype_size(DType dtype);           // bytes per element
const char* dtype_name(DType dtype);      // the header tag, e.g. "BF16"
// Parses a header tag; throws "<where>: unknown dtype 'X'" for anything else.
DType dtype_from_name(const std::string& name, const std::string& where);
std::string format_shape(const std::vector<int64_t>& shape);  // "[a, b]"

struct TensorInfo {
  DType dtype;
  std::vector<int64_t> shape;  // empty = 0-dim scalar
  uint64_t begin = 0, end = 0;  // byte range relative to the data area
  uint64_t numel() const;
  uint64_t nbytes() const { return end - begin; }
};

struct SafetensorsHeader {
  std::map<std::string, std::string> metadata;  // "__metadata__", empty when absent
  std::map<std::string, TensorInfo> tensors;
  uint64_t data_offset = 0;  // file offset of the data area (8 + header length)
};

// The reference reader rejects headers above 100 MB (safetensors MAX_HEADER_SIZE).
constexpr uint64_t kMaxHeaderBytes = 100'000'000;

// Parses and validates the header of a whole safetensors file held in `bytes[0, file_size)`.
// Pure function over bytes (fuzz entry point). Every error is one line starting "<path>: ".
SafetensorsHeader parse_safetensors_header(const uint8_t* bytes, size_t file_size,
                                           const std::string& path);

class SafetensorsFile {
 public:
  // Maps and parses `path`; missing file -> "<path>: cannot open: <strerror>".
  static SafetensorsFile open(const std::string& path);

  const std::string& path() const { return file_->path(); }
  const std::map<std::string, TensorInfo>& tensors() const { return header_.tensors; }
  const std::map<std::string, std::string>& metadata() const { return header_.metadata; }
  bool has(const std::string& name) const { return header_.tensors.count(name) != 0; }
  // Throws "<path>: tensor 'NAME' not found" when absent.
  const TensorInfo& info(const std::string& name) const;
  // First byte of the tensor inside the read-only mapping.
  const uint8_t* data(const std::string& name) const;
  const std::shared_ptr<const MappedFile>& mapping() const { return file_; }

 private:
  std::shared_ptr<const MappedFile> file_;
  SafetensorsHeader header_;
};

// One tensor to write: C-order little-endian bytes, nbytes == numel * dtype_size.
struct TensorBytes {
  std::string name;
  DType dtype;
  std::vector<int64_t> shape;
  const void* data;
  size_t nbytes;
};

// The header JSON padded with spaces to a multiple of 8, and the tensors' layout order.
std::string make_safetensors_header(const std::vector<TensorBytes>& tensors,
                                    const std::map<std::string, std::string>& metadata,
                                    std::vector<size_t>* order);

// Writes one file atomically (temp file + fsync + rename); validates names, shapes and sizes.
void write_safetensors(const std::string& path, const std::vector<TensorBytes>& tensors,
                       const std::map<std::string, std::string>& metadata = {});

// HF layout in directory `dir` (created if needed): shards of at most `max_shard_bytes` of tensor
// data (a larger tensor gets a shard of its own) in the given order, named
// model-0000k-of-0000n.safetensors, plus model.safetensors.index.json; one shard is written as
// model.safetensors with no index. Stale files of an earlier save with other names are removed.
// Returns the file names written.
std::vector<std::string> write_sharded_safetensors(const std::string& dir,
                                                   const std::vector<TensorBytes>& tensors,
                                                   const std::map<std::string, std::string>& metadata,
                                                   uint64_t max_shard_bytes);

}  // namespace linearard::io
