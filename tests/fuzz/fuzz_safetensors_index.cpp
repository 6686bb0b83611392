// libFuzzer target: the sharded-checkpoint index model.safetensors.index.json, read by
// io::CheckpointWeights (io/checkpoint.cpp). That reader returns LibTorch tensors, so this is the
// one target linked with LibTorch (the venv's, uninstrumented; the linearard sources are
// instrumented). The input is the index; the scratch folder holds two fixed valid shards (tensors
// a, b in shard 1, c in shard 2) that it may or may not name correctly. A checkpoint that opens
// must then give every tensor it lists, with the bytes its shard holds.
#include <ATen/ATen.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>

#include "common/error.h"
#include "fuzz_util.h"
#include "io/checkpoint.h"
#include "io/safetensors.h"

namespace {

// Writes the two shards once per process and returns the folder.
const std::string& model_dir() {
  static const std::string dir = [] {
    using linearard::io::DType;
    const std::string d = linearard::fuzz::scratch_dir();
    static const float a[6] = {1, 2, 3, 4, 5, 6};
    static const int64_t b = 7;
    static const uint16_t c[3] = {0x3f80, 0x4000, 0x4040};  // bf16 1, 2, 3
    linearard::io::write_safetensors(d + "/model-00001-of-00002.safetensors",
                                     {{"a", DType::F32, {2, 3}, a, sizeof(a)}, {"b", DType::I64, {}, &b, sizeof(b)}});
    linearard::io::write_safetensors(d + "/model-00002-of-00002.safetensors",
                                     {{"c", DType::BF16, {3}, c, sizeof(c)}});
    return d;
  }();
  return dir;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string& dir = model_dir();
  linearard::fuzz::write_scratch("model.safetensors.index.json", data, size);
  try {
    const linearard::io::CheckpointWeights w(dir);
    for (const std::string& name : w.names()) {
      const linearard::io::TensorInfo& info = w.info(name);
      const at::Tensor t = w.get(name);
      if (static_cast<uint64_t>(t.numel()) != info.numel()) std::abort();
      const at::Tensor f = t.to(at::kDouble).contiguous();  // reads every byte of the view
      (void)f.sum().item<double>();
    }
  } catch (const linearard::Error&) {
  }
  return 0;
}
