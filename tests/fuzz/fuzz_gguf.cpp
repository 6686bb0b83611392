// libFuzzer target: the GGUF container parser (io/gguf.cpp), a pure function over the bytes of a
// whole file, and the dequantizers over the tensors it accepts. Any crash, sanitizer report,
// exception other than linearard::Error, or a tensor that validates but lies outside the file is a bug.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <vector>

#include "common/error.h"
#include "io/gguf.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace linearard::io;
  try {
    const GgufHeader h = parse_gguf(data, size, "fuzz.gguf");
    for (const auto& t : h.tensors) {
      if (h.data_offset + t.offset + t.nbytes > size) std::abort();
      if (t.numel() > (1u << 16)) continue;  // keep each input fast
      std::vector<float> out(t.numel());
      dequantize_ggml(t.type, data + h.data_offset + t.offset, out.size(), out.data());
    }
  } catch (const linearard::Error&) {
  }
  return 0;
}
