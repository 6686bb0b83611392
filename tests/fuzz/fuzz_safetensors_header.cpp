// libFuzzer target: the safetensors header parser (io/safetensors.cpp), a pure function over the
// bytes of a whole file. Any crash, sanitizer report, exception other than linearard::Error, or a
// header that validates but points outside the file is a bug.
#include <cstddef>
#include <cstdint>
#include <cstdlib>

#include "common/error.h"
#include "io/safetensors.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace linearard::io;
  try {
    const SafetensorsHeader h = parse_safetensors_header(data, size, "fuzz.safetensors");
    // What a validated header promises its readers (checkpoint.cpp views tensors in place).
    if (h.data_offset > size) std::abort();
    for (const auto& [name, t] : h.tensors) {
      if (t.begin > t.end || h.data_offset + t.end > size) std::abort();
      if (t.numel() * dtype_size(t.dtype) != t.nbytes()) std::abort();
      (void)format_shape(t.shape);
      (void)dtype_name(t.dtype);
    }
  } catch (const linearard::Error&) {
  }
  return 0;
}
