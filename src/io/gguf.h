// GGUF container reader, torch-free (format: ggml's docs/gguf.md, "GGUF" file structure; versions 2
// and 3, little-endian). File = header | metadata key/values | tensor infos | padding to
// general.alignment | tensor data. Parsing is a pure function over the bytes (fuzz entry point);
// GgufFile maps the file and hands out each tensor's bytes in place.
#pragma once
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "io/gguf_dequant.h"
#include "io/mapped_file.h"

namespace linearard::io {

// Metadata value types (ggml's gguf.h enum gguf_type; the values are the file's tags).
enum class GgufValueType : uint32_t {
  UINT8 = 0, INT8 = 1, UINT16 = 2, INT16 = 3, UINT32 = 4, INT32 = 5, FLOAT32 = 6, BOOL = 7,
  STRING = 8, ARRAY = 9, UINT64 = 10, INT64 = 11, FLOAT64 = 12,
};
const char* gguf_value_type_name(GgufValueType type);

// One metadata value. Integers keep their sign in i or u; arrays hold their elements (arrays of
// arrays are allowed by the format).
struct GgufValue {
  GgufValueType type = GgufValueType::UINT8;
  uint64_t u = 0;     // UINT*, BOOL
  int64_t i = 0;      // INT*
  double f = 0;       // FLOAT*
  std::string s;      // STRING
  GgufValueType elem_type = GgufValueType::UINT8;  // ARRAY
  std::vector<GgufValue> array;                    // ARRAY

  bool is_integer() const;
  bool is_number() const { return is_integer() || type == GgufValueType::FLOAT32 || type == GgufValueType::FLOAT64; }
  // Every integer type as int64; throws "<where>: <why>" if this is no integer or does not fit.
  int64_t as_int(const std::string& where) const;
  double as_double(const std::string& where) const;  // any number
  const std::string& as_string(const std::string& where) const;
  bool as_bool(const std::string& where) const;
};

struct GgufTensorInfo {
  std::string name;
  std::vector<uint64_t> dims;  // ggml order: dims[0] is the innermost (contiguous) axis
  GgmlType type = GgmlType::F32;
  uint64_t offset = 0;  // relative to the data section
  uint64_t nbytes = 0;  // from dims and the type's block layout
  uint64_t numel() const;
  // The shape in C (row-major, PyTorch/numpy) order: dims reversed.
  std::vector<int64_t> shape() const;
};

struct GgufHeader {
  uint32_t version = 0;
  std::map<std::string, GgufValue> metadata;
  std::vector<GgufTensorInfo> tensors;  // file order
  uint64_t alignment = 32;              // general.alignment or GGUF_DEFAULT_ALIGNMENT (32)
  uint64_t data_offset = 0;             // file offset of the data section
};

// Format constants (ggml's gguf.h / docs/gguf.md).
constexpr uint32_t kGgufMagic = 0x46554747;  // "GGUF" read as little-endian u32
constexpr uint64_t kGgufDefaultAlignment = 32;
constexpr uint32_t kGgufMaxDims = 4;  // GGML_MAX_DIMS
// Our limit on nested arrays (the format sets none; real files nest at most once).
constexpr int kGgufMaxArrayDepth = 8;

// Parses and validates the whole file held in bytes[0, size): every tensor lies inside the file,
// at an aligned offset, with dims that fit its block size. Each error is one line
// "<path>: <field>: <problem>".
GgufHeader parse_gguf(const uint8_t* bytes, size_t size, const std::string& path);

class GgufFile {
 public:
  // Maps and parses `path`.
  static GgufFile open(const std::string& path);

  const std::string& path() const { return file_->path(); }
  const GgufHeader& header() const { return header_; }
  const std::map<std::string, GgufValue>& metadata() const { return header_.metadata; }
  const GgufValue* find(const std::string& key) const;  // nullptr when absent
  const GgufTensorInfo* find_tensor(const std::string& name) const;
  const uint8_t* data(const GgufTensorInfo& t) const { return file_->data() + header_.data_offset + t.offset; }
  // All of the tensor as float32, C order (shape()).
  std::vector<float> dequantize(const GgufTensorInfo& t) const;
  const std::shared_ptr<const MappedFile>& mapping() const { return file_; }

 private:
  std::shared_ptr<const MappedFile> file_;
  GgufHeader header_;
};

}  // namespace linearard::io
