// GGML tensor types and their dequantization to float32, torch-free. Block layouts from ggml's
// ggml-common.h (block_q4_0 ... block_q6_K) and the reference dequantize_row_* of ggml-quants.c;
// the arithmetic follows the same order of operations as PyPI gguf's gguf/quants.py (numpy), so
// both give bit-identical float32 (tests/gguf).
#pragma once
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>

namespace linearard::io {

// ggml's enum ggml_type (the values are the file's tags). Only the types we can dequantize are
// named; any other tag is rejected with its number.
enum class GgmlType : uint32_t {
  F32 = 0, F16 = 1, Q4_0 = 2, Q4_1 = 3, Q5_0 = 6, Q5_1 = 7, Q8_0 = 8,
  Q2_K = 10, Q3_K = 11, Q4_K = 12, Q5_K = 13, Q6_K = 14, BF16 = 30,
};

struct GgmlTypeTraits {
  const char* name;
  uint32_t block_elems;  // values per block (1 for plain floats)
  uint32_t block_bytes;  // bytes per block
};

// The traits of a supported tag, or nullopt for any other (unknown or not supported) tag.
std::optional<GgmlTypeTraits> ggml_type_traits(uint32_t tag);
const char* ggml_type_name(GgmlType type);
// ggml's names of the tags we do not support, for messages ("IQ2_XXS", "Q8_K"...); nullptr if unknown.
const char* ggml_unsupported_type_name(uint32_t tag);

// Dequantizes `n` values (a multiple of the type's block size) from `src` into `dst`.
void dequantize_ggml(GgmlType type, const uint8_t* src, size_t n, float* dst);

// IEEE half and bfloat16 <-> float32 (exact widening; narrowing rounds to nearest even, as
// PyTorch's Tensor.to(bfloat16/float16) does, NaN kept a quiet NaN).
float half_to_float(uint16_t h);
uint16_t float_to_half(float f);
float bf16_to_float(uint16_t b);
uint16_t float_to_bf16(float f);

}  // namespace linearard::io
