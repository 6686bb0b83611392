// See gguf_writer.h. Layout (ggml's docs/gguf.md, as gguf.cpp reads it): u32 magic, u32 version 3,
// u64 tensor_count, u64 kv_count, the KVs, the tensor infos (name, n_dims, dims in ggml order,
// type, offset), zero padding to the alignment, the data (each tensor padded to the alignment).
#include "io/gguf_writer.h"

#include <algorithm>
#include <cstring>

#include "common/error.h"
#include "io/atomic_file.h"

namespace linearard::io {
namespace {

constexpr uint32_t kVersion = 3;

template <typename T>
void put(std::vector<uint8_t>& out, T v) {
  for (size_t k = 0; k < sizeof(T); ++k) out.push_back(static_cast<uint8_t>(static_cast<uint64_t>(v) >> (8 * k)));
}
void put_f32(std::vector<uint8_t>& out, float f) {
  uint32_t bits;
  std::memcpy(&bits, &f, 4);
  put<uint32_t>(out, bits);
}
void put_string(std::vector<uint8_t>& out, const std::string& s) {
  put<uint64_t>(out, s.size());
  out.insert(out.end(), s.begin(), s.end());
}
uint64_t padded(uint64_t n, uint64_t align) { return (n + align - 1) / align * align; }

}  // namespace

void GgufWriter::check_new_key(const std::string& k) {
  if (std::find(keys_.begin(), keys_.end(), k) != keys_.end()) fail("gguf writer", k + ": duplicate metadata key");
  keys_.push_back(k);
}

void GgufWriter::key(const std::string& k, GgufValueType t) {
  check_new_key(k);
  put_string(kv_, k);
  put<uint32_t>(kv_, static_cast<uint32_t>(t));
  ++n_kv_;
}

void GgufWriter::add_string(const std::string& k, const std::string& v) { key(k, GgufValueType::STRING); put_string(kv_, v); }
void GgufWriter::add_u32(const std::string& k, uint32_t v) { key(k, GgufValueType::UINT32); put<uint32_t>(kv_, v); }
void GgufWriter::add_i32(const std::string& k, int32_t v) { key(k, GgufValueType::INT32); put<uint32_t>(kv_, static_cast<uint32_t>(v)); }
void GgufWriter::add_f32(const std::string& k, float v) { key(k, GgufValueType::FLOAT32); put_f32(kv_, v); }
void GgufWriter::add_bool(const std::string& k, bool v) { key(k, GgufValueType::BOOL); put<uint8_t>(kv_, v ? 1 : 0); }

void GgufWriter::add_string_array(const std::string& k, const std::vector<std::string>& v) {
  key(k, GgufValueType::ARRAY);
  put<uint32_t>(kv_, static_cast<uint32_t>(GgufValueType::STRING));
  put<uint64_t>(kv_, v.size());
  for (const auto& s : v) put_string(kv_, s);
}
void GgufWriter::add_f32_array(const std::string& k, const std::vector<float>& v) {
  key(k, GgufValueType::ARRAY);
  put<uint32_t>(kv_, static_cast<uint32_t>(GgufValueType::FLOAT32));
  put<uint64_t>(kv_, v.size());
  for (float f : v) put_f32(kv_, f);
}
void GgufWriter::add_i32_array(const std::string& k, const std::vector<int32_t>& v) {
  key(k, GgufValueType::ARRAY);
  put<uint32_t>(kv_, static_cast<uint32_t>(GgufValueType::INT32));
  put<uint64_t>(kv_, v.size());
  for (int32_t i : v) put<uint32_t>(kv_, static_cast<uint32_t>(i));
}

void GgufWriter::add_tensor(const std::string& name, const std::vector<int64_t>& shape, GgmlType type,
                            std::vector<uint8_t> bytes) {
  const auto traits = ggml_type_traits(static_cast<uint32_t>(type));
  if (!traits || shape.empty() || shape.size() > kGgufMaxDims) fail("gguf writer", "tensor '" + name + "': bad type or rank");
  uint64_t numel = 1;
  for (int64_t d : shape) numel *= static_cast<uint64_t>(d);
  if (shape.back() % traits->block_elems != 0 || numel / traits->block_elems * traits->block_bytes != bytes.size())
    fail("gguf writer", "tensor '" + name + "': " + std::to_string(bytes.size()) + " bytes do not encode its shape as " +
                            traits->name);
  for (const auto& t : tensors_)
    if (t.name == name) fail("gguf writer", "tensor '" + name + "': duplicate tensor name");
  tensors_.push_back({name, shape, type, std::move(bytes)});
}

uint64_t GgufWriter::data_bytes() const {
  uint64_t n = 0;
  for (const auto& t : tensors_) n += padded(t.bytes.size(), kGgufDefaultAlignment);
  return n;
}

void GgufWriter::write(const std::string& path) const {
  std::vector<uint8_t> head;
  put<uint32_t>(head, kGgufMagic);
  put<uint32_t>(head, kVersion);
  put<uint64_t>(head, tensors_.size());
  put<uint64_t>(head, n_kv_);
  head.insert(head.end(), kv_.begin(), kv_.end());
  uint64_t offset = 0;
  for (const auto& t : tensors_) {
    put_string(head, t.name);
    put<uint32_t>(head, static_cast<uint32_t>(t.shape.size()));
    for (auto it = t.shape.rbegin(); it != t.shape.rend(); ++it) put<uint64_t>(head, static_cast<uint64_t>(*it));
    put<uint32_t>(head, static_cast<uint32_t>(t.type));
    put<uint64_t>(head, offset);
    offset += padded(t.bytes.size(), kGgufDefaultAlignment);
  }
  head.resize(padded(head.size(), kGgufDefaultAlignment), 0);
  check_free_space(parent_dir(path), head.size() + offset);
  AtomicFile out(path);
  out.write(head.data(), head.size());
  static const uint8_t zeros[kGgufDefaultAlignment] = {};
  for (const auto& t : tensors_) {
    out.write(t.bytes.data(), t.bytes.size());
    const uint64_t pad = padded(t.bytes.size(), kGgufDefaultAlignment) - t.bytes.size();
    if (pad) out.write(zeros, pad);
  }
  out.commit();
}

}  // namespace linearard::io
