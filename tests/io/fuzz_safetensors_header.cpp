// libFuzzer target for the safetensors header parser (torch-free, a pure function over bytes).
// Not part of the CMake build; run it by hand with clang:
//   clang++ -std=c++17 -g -O1 -fsanitize=fuzzer,address,undefined -Isrc \
//     tests/io/fuzz_safetensors_header.cpp src/io/safetensors.cpp src/io/atomic_file.cpp \
//     src/io/mapped_file.cpp src/common/error.cpp -o /tmp/fuzz_st && /tmp/fuzz_st -max_total_time=60
// Any crash, sanitizer report or exception other than linearard::Error is a bug.
#include <cstddef>
#include <cstdint>

#include "common/error.h"
#include "io/safetensors.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    linearard::io::parse_safetensors_header(data, size, "fuzz");
  } catch (const linearard::Error&) {
  }
  return 0;
}
