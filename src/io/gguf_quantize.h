// float32 -> the GGUF tensor encodings the exporter writes (F32, F16, BF16, Q8_0), torch-free.
// Q8_0 follows gguf-py's quants.py Q8_0.quantize_blocks (numpy, float32 throughout): per block of
// 32, d = max|x| / 127, q = round-half-away-from-zero(x * (1 / d)) (0 where d == 0), d stored as
// IEEE half; so our bytes equal gguf.quants.quantize's (tests/gguf/check_gguf_export.py).
#pragma once
#include <cstddef>
#include <cstdint>
#include <vector>

#include "io/gguf_dequant.h"

namespace linearard::io {

// The bytes of `n` values (a multiple of the type's block size); throws for other types.
std::vector<uint8_t> quantize_ggml(GgmlType type, const float* src, size_t n);

}  // namespace linearard::io
