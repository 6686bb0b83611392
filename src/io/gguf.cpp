// GGUF reader (see gguf.h). Layout from ggml's docs/gguf.md: u32 magic "GGUF", u32 version,
// u64 tensor_count, u64 metadata_kv_count; each KV = string key, u32 value type, value (strings are
// u64 length + UTF-8 bytes; arrays are u32 element type + u64 count + elements); each tensor info =
// string name, u32 n_dims, u64 dims[n_dims], u32 ggml type, u64 offset; then padding to the
// alignment, then the data section.
#include "io/gguf.h"

#include <cstring>
#include <limits>

#include "common/error.h"

namespace linearard::io {
namespace {

// Bounds-checked little-endian cursor over the file. Every read past the end is a truncation.
class Cursor {
 public:
  Cursor(const uint8_t* bytes, size_t size, const std::string& path) : p_(bytes), size_(size), path_(path) {}

  template <typename T>
  T read(const std::string& field) {
    need(sizeof(T), field);
    T v = 0;
    for (size_t k = 0; k < sizeof(T); ++k) v |= static_cast<T>(static_cast<T>(p_[pos_ + k]) << (8 * k));
    pos_ += sizeof(T);
    return v;
  }
  std::string read_string(const std::string& field) {
    const uint64_t n = read<uint64_t>(field + " (string length)");
    need(n, field);
    std::string s(reinterpret_cast<const char*>(p_ + pos_), n);
    pos_ += n;
    return s;
  }
  void need(uint64_t n, const std::string& field) const {
    if (n > size_ - pos_)
      fail(path_, field + ": truncated file (needs " + std::to_string(n) + " bytes at offset " + std::to_string(pos_) +
                      ", the file has " + std::to_string(size_) + ")");
  }
  size_t pos() const { return pos_; }
  size_t remaining() const { return size_ - pos_; }

 private:
  const uint8_t* p_;
  size_t size_, pos_ = 0;
  const std::string& path_;
};

// Smallest encoded size of one value of the type: bounds the element count of an array before
// anything is allocated, so a forged count cannot ask for terabytes.
uint64_t min_value_bytes(GgufValueType t) {
  switch (t) {
    case GgufValueType::UINT8: case GgufValueType::INT8: case GgufValueType::BOOL: return 1;
    case GgufValueType::UINT16: case GgufValueType::INT16: return 2;
    case GgufValueType::UINT32: case GgufValueType::INT32: case GgufValueType::FLOAT32: return 4;
    case GgufValueType::UINT64: case GgufValueType::INT64: case GgufValueType::FLOAT64: return 8;
    case GgufValueType::STRING: return 8;
    case GgufValueType::ARRAY: return 12;
  }
  return 1;
}

bool known_value_type(uint32_t t) { return t <= 12; }

GgufValue read_value(Cursor& c, GgufValueType type, const std::string& field, const std::string& path, int depth) {
  GgufValue v;
  v.type = type;
  switch (type) {
    case GgufValueType::UINT8: v.u = c.read<uint8_t>(field); break;
    case GgufValueType::INT8: v.i = static_cast<int8_t>(c.read<uint8_t>(field)); break;
    case GgufValueType::UINT16: v.u = c.read<uint16_t>(field); break;
    case GgufValueType::INT16: v.i = static_cast<int16_t>(c.read<uint16_t>(field)); break;
    case GgufValueType::UINT32: v.u = c.read<uint32_t>(field); break;
    case GgufValueType::INT32: v.i = static_cast<int32_t>(c.read<uint32_t>(field)); break;
    case GgufValueType::UINT64: v.u = c.read<uint64_t>(field); break;
    case GgufValueType::INT64: v.i = static_cast<int64_t>(c.read<uint64_t>(field)); break;
    case GgufValueType::FLOAT32: {
      const uint32_t bits = c.read<uint32_t>(field);
      float f;
      std::memcpy(&f, &bits, 4);
      v.f = f;
      break;
    }
    case GgufValueType::FLOAT64: {
      const uint64_t bits = c.read<uint64_t>(field);
      std::memcpy(&v.f, &bits, 8);
      break;
    }
    case GgufValueType::BOOL: {
      const uint8_t b = c.read<uint8_t>(field);
      if (b > 1) fail(path, field + ": bool value " + std::to_string(b) + " is neither 0 nor 1");
      v.u = b;
      break;
    }
    case GgufValueType::STRING: v.s = c.read_string(field); break;
    case GgufValueType::ARRAY: {
      if (depth >= kGgufMaxArrayDepth)
        fail(path, field + ": arrays nested deeper than " + std::to_string(kGgufMaxArrayDepth));
      const uint32_t et = c.read<uint32_t>(field + " (array type)");
      if (!known_value_type(et)) fail(path, field + ": unknown array element type " + std::to_string(et));
      v.elem_type = static_cast<GgufValueType>(et);
      const uint64_t n = c.read<uint64_t>(field + " (array length)");
      if (n > c.remaining() / min_value_bytes(v.elem_type))
        fail(path, field + ": truncated file (array of " + std::to_string(n) + " " +
                       gguf_value_type_name(v.elem_type) + " values does not fit in the " +
                       std::to_string(c.remaining()) + " bytes left)");
      v.array.reserve(n);
      for (uint64_t k = 0; k < n; ++k) v.array.push_back(read_value(c, v.elem_type, field, path, depth + 1));
      break;
    }
  }
  return v;
}

}  // namespace

const char* gguf_value_type_name(GgufValueType type) {
  static const char* const names[] = {"uint8", "int8",  "uint16", "int16", "uint32", "int32", "float32",
                                      "bool",  "string", "array", "uint64", "int64", "float64"};
  const auto t = static_cast<uint32_t>(type);
  return t < 13 ? names[t] : "?";
}

bool GgufValue::is_integer() const {
  switch (type) {
    case GgufValueType::UINT8: case GgufValueType::INT8: case GgufValueType::UINT16: case GgufValueType::INT16:
    case GgufValueType::UINT32: case GgufValueType::INT32: case GgufValueType::UINT64: case GgufValueType::INT64:
      return true;
    default:
      return false;
  }
}

int64_t GgufValue::as_int(const std::string& where) const {
  if (!is_integer()) fail(where, std::string("expected an integer, found ") + gguf_value_type_name(type));
  const bool is_unsigned = type == GgufValueType::UINT8 || type == GgufValueType::UINT16 ||
                           type == GgufValueType::UINT32 || type == GgufValueType::UINT64;
  if (!is_unsigned) return i;
  if (u > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) fail(where, "value " + std::to_string(u) + " is too large");
  return static_cast<int64_t>(u);
}

double GgufValue::as_double(const std::string& where) const {
  if (type == GgufValueType::FLOAT32 || type == GgufValueType::FLOAT64) return f;
  if (is_integer()) return static_cast<double>(as_int(where));
  fail(where, std::string("expected a number, found ") + gguf_value_type_name(type));
}

const std::string& GgufValue::as_string(const std::string& where) const {
  if (type != GgufValueType::STRING) fail(where, std::string("expected a string, found ") + gguf_value_type_name(type));
  return s;
}

bool GgufValue::as_bool(const std::string& where) const {
  if (type != GgufValueType::BOOL) fail(where, std::string("expected a bool, found ") + gguf_value_type_name(type));
  return u != 0;
}

uint64_t GgufTensorInfo::numel() const {
  uint64_t n = 1;
  for (uint64_t d : dims) n *= d;
  return n;
}

std::vector<int64_t> GgufTensorInfo::shape() const {
  return std::vector<int64_t>(dims.rbegin(), dims.rend());
}

GgufHeader parse_gguf(const uint8_t* bytes, size_t size, const std::string& path) {
  Cursor c(bytes, size, path);
  GgufHeader h;
  c.need(4, "magic");
  const uint32_t magic = c.read<uint32_t>("magic");
  if (magic != kGgufMagic) fail(path, "magic: not a GGUF file (the first 4 bytes are not \"GGUF\")");
  h.version = c.read<uint32_t>("version");
  if (h.version == 1) fail(path, "version: GGUF version 1 is not supported (only 2 and 3)");
  if (h.version != 2 && h.version != 3) {
    // A big-endian file (GGUF v3 allows them) shows its version byte-swapped.
    const bool swapped = (h.version & 0xFFFF) == 0 && (h.version >> 24) >= 2 && (h.version >> 24) <= 3;
    fail(path, swapped ? "version: big-endian GGUF files are not supported"
                       : "version: unsupported GGUF version " + std::to_string(h.version) + " (supported: 2, 3)");
  }
  const uint64_t n_tensors = c.read<uint64_t>("tensor_count");
  const uint64_t n_kv = c.read<uint64_t>("metadata_kv_count");
  // Each KV needs at least 8 + 4 + 1 bytes and each tensor info 8 + 4 + 4 + 8.
  if (n_kv > c.remaining() / 13)
    fail(path, "metadata_kv_count: " + std::to_string(n_kv) + " entries cannot fit in the file (truncated file?)");
  for (uint64_t k = 0; k < n_kv; ++k) {
    const std::string kv = "metadata entry " + std::to_string(k);
    std::string key = c.read_string(kv + " key");
    const uint32_t type = c.read<uint32_t>(key + " (type)");
    if (!known_value_type(type)) fail(path, key + ": unknown metadata value type " + std::to_string(type));
    GgufValue v = read_value(c, static_cast<GgufValueType>(type), key, path, 0);
    if (!h.metadata.emplace(key, std::move(v)).second) fail(path, key + ": duplicate metadata key");
  }
  if (auto a = h.metadata.find("general.alignment"); a != h.metadata.end()) {
    if (a->second.type != GgufValueType::UINT32)
      fail(path, std::string("general.alignment: expected uint32, found ") + gguf_value_type_name(a->second.type));
    h.alignment = a->second.u;
    if (h.alignment == 0 || (h.alignment & (h.alignment - 1)) != 0)
      fail(path, "general.alignment: " + std::to_string(h.alignment) + " is not a power of two");
  }
  if (n_tensors > c.remaining() / 24)
    fail(path, "tensor_count: " + std::to_string(n_tensors) + " tensors cannot fit in the file (truncated file?)");
  std::map<std::string, size_t> seen;
  for (uint64_t k = 0; k < n_tensors; ++k) {
    GgufTensorInfo t;
    t.name = c.read_string("tensor info " + std::to_string(k) + " name");
    const std::string field = "tensor '" + t.name + "'";
    if (!seen.emplace(t.name, k).second) fail(path, field + ": duplicate tensor name");
    const uint32_t n_dims = c.read<uint32_t>(field + " n_dims");
    if (n_dims == 0 || n_dims > kGgufMaxDims)
      fail(path, field + ": n_dims " + std::to_string(n_dims) + " is outside 1.." + std::to_string(kGgufMaxDims));
    uint64_t numel = 1;
    for (uint32_t d = 0; d < n_dims; ++d) {
      const uint64_t dim = c.read<uint64_t>(field + " dims");
      if (dim == 0 || dim > (uint64_t{1} << 40) || numel > (uint64_t{1} << 48) / dim)
        fail(path, field + ": dimension " + std::to_string(dim) + " is zero or too large");
      numel *= dim;
      t.dims.push_back(dim);
    }
    const uint32_t tag = c.read<uint32_t>(field + " type");
    const auto traits = ggml_type_traits(tag);
    if (!traits) {
      const char* known = ggml_unsupported_type_name(tag);
      fail(path, field + ": type: " +
                     (known ? std::string("tensor type ") + known + " (" + std::to_string(tag) + ") is not supported"
                            : "unknown tensor type " + std::to_string(tag)) +
                     " (supported: F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K)");
    }
    t.type = static_cast<GgmlType>(tag);
    if (t.dims[0] % traits->block_elems != 0)
      fail(path, field + ": shape: the first dimension " + std::to_string(t.dims[0]) + " is not a multiple of the " +
                     traits->name + " block size " + std::to_string(traits->block_elems));
    t.nbytes = numel / traits->block_elems * traits->block_bytes;
    t.offset = c.read<uint64_t>(field + " offset");
    if (t.offset % h.alignment != 0)
      fail(path, field + ": offset: " + std::to_string(t.offset) + " is not a multiple of the alignment " +
                     std::to_string(h.alignment));
    h.tensors.push_back(std::move(t));
  }
  // The data section starts at the next multiple of the alignment.
  const uint64_t pos = c.pos();
  const uint64_t pad = (h.alignment - pos % h.alignment) % h.alignment;
  h.data_offset = pos + pad;
  if (!h.tensors.empty() && h.data_offset > size)
    fail(path, "data section: truncated file (the data section would start at " + std::to_string(h.data_offset) +
                   ", the file has " + std::to_string(size) + " bytes)");
  const uint64_t data_size = h.data_offset <= size ? size - h.data_offset : 0;
  for (const auto& t : h.tensors) {
    if (t.offset > data_size || t.nbytes > data_size - t.offset)
      fail(path, "tensor '" + t.name + "': offset: bytes [" + std::to_string(t.offset) + ", " +
                     std::to_string(t.offset + t.nbytes) + ") of the data section lie past the end of the file (" +
                     std::to_string(data_size) + " data bytes; truncated file?)");
  }
  return h;
}

GgufFile GgufFile::open(const std::string& path) {
  GgufFile f;
  f.file_ = MappedFile::open(path);
  f.header_ = parse_gguf(f.file_->data(), f.file_->size(), path);
  return f;
}

const GgufValue* GgufFile::find(const std::string& key) const {
  auto it = header_.metadata.find(key);
  return it == header_.metadata.end() ? nullptr : &it->second;
}

const GgufTensorInfo* GgufFile::find_tensor(const std::string& name) const {
  for (const auto& t : header_.tensors)
    if (t.name == name) return &t;
  return nullptr;
}

std::vector<float> GgufFile::dequantize(const GgufTensorInfo& t) const {
  std::vector<float> out(t.numel());
  file_->populate(header_.data_offset + t.offset, t.nbytes);
  dequantize_ggml(t.type, data(t), out.size(), out.data());
  return out;
}

}  // namespace linearard::io
