// GGUF v3 writer, torch-free: the container layout gguf.h reads (ggml's docs/gguf.md), little-endian,
// general.alignment 32. Metadata in insertion order, then tensor infos, padding, and the tensor data,
// each tensor at an aligned offset. The file is written through AtomicFile (temp + rename).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "io/gguf.h"

namespace linearard::io {

class GgufWriter {
 public:
  void add_string(const std::string& key, const std::string& v);
  void add_u32(const std::string& key, uint32_t v);
  void add_i32(const std::string& key, int32_t v);
  void add_f32(const std::string& key, float v);
  void add_bool(const std::string& key, bool v);
  void add_string_array(const std::string& key, const std::vector<std::string>& v);
  void add_f32_array(const std::string& key, const std::vector<float>& v);
  void add_i32_array(const std::string& key, const std::vector<int32_t>& v);
  // `shape` in C order (as safetensors / PyTorch); the file stores it reversed (ggml order).
  // `bytes` must be the encoding of `type` for that shape.
  void add_tensor(const std::string& name, const std::vector<int64_t>& shape, GgmlType type, std::vector<uint8_t> bytes);

  uint64_t data_bytes() const;  // the tensor data section, with padding
  // Writes the file atomically; throws "<path>: ..." on failure (no partial file left behind).
  void write(const std::string& path) const;

 private:
  struct Tensor {
    std::string name;
    std::vector<int64_t> shape;
    GgmlType type;
    std::vector<uint8_t> bytes;
  };
  void key(const std::string& k, GgufValueType t);
  void check_new_key(const std::string& k);
  std::vector<uint8_t> kv_;  // encoded key/values
  uint64_t n_kv_ = 0;
  std::vector<std::string> keys_;
  std::vector<Tensor> tensors_;
};

}  // namespace linearard::io
