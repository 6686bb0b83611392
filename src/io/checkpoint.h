// LibTorch bridge to HF checkpoint weights: reads tensors out of a model directory's safetensors
// (single file or sharded with model.safetensors.index.json) and saves tensors in the same layout.
#pragma once
#include <ATen/ATen.h>

#include <map>
#include <string>
#include <utility>
#include <vector>

#include "io/safetensors.h"

namespace linearard::io {

at::ScalarType to_scalar_type(DType dtype);
// Throws "<where>: dtype X cannot be stored in safetensors" for complex/quantized types.
DType from_scalar_type(at::ScalarType type, const std::string& where);

class CheckpointWeights {
 public:
  // Opens `dir`: model.safetensors.index.json when present (validated: JSON, a weight_map of
  // strings, every shard exists, every listed tensor is in its shard), else model.safetensors,
  // else the directory's only *.safetensors. None -> "DIR: no *.safetensors weights found".
  // `dir` may also name one .safetensors file.
  explicit CheckpointWeights(const std::string& dir);

  const std::string& dir() const { return dir_; }
  // The file the tensor list came from: "model.safetensors.index.json" or the weights file name.
  const std::string& source() const { return source_; }
  bool has(const std::string& name) const { return where_.count(name) != 0; }
  std::vector<std::string> names() const;  // sorted
  // dtype, shape and byte range without touching the data.
  const TensorInfo& info(const std::string& name) const;

  // READ-ONLY result. When the data is aligned to the element size (always for files written by
  // the reference writers and ours) the tensor is a zero-copy view of the read-only mmap, which it
  // keeps alive after this object is gone; an in-place write to it faults (SIGSEGV). Copy or
  // convert it (.to(), .clone()) before modifying. Misaligned data is copied instead.
  // Missing -> "DIR: tensor 'NAME' not found (SOURCE)".
  at::Tensor get(const std::string& name) const;
  // As get(), and checks the shape: "DIR: tensor 'NAME' has shape [a, b], expected [c, d]".
  at::Tensor get(const std::string& name, at::IntArrayRef expected_shape) const;

 private:
  void open_index(const std::string& index_path);
  std::string dir_, source_;
  std::vector<SafetensorsFile> files_;
  std::map<std::string, size_t> where_;  // tensor name -> index into files_
};

// huggingface_hub's default max_shard_size "5GB" (parse_size_to_int: decimal units).
constexpr uint64_t kDefaultMaxShardBytes = 5'000'000'000ULL;

// Saves tensors (any device, any strides: copied to contiguous CPU first). A path ending in
// ".safetensors" is written as that one file; anything else is a directory written in HF layout by
// write_sharded_safetensors. Holds a CPU copy of all tensors while writing.
void save_tensors(const std::string& path_or_dir, const std::vector<std::pair<std::string, at::Tensor>>& tensors,
                  const std::map<std::string, std::string>& metadata = {},
                  uint64_t max_shard_bytes = kDefaultMaxShardBytes);

}  // namespace linearard::io
