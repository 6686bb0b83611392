// See gguf_quantize.h. Compiled without FMA contraction: x * id must round as numpy's does.
#include "io/gguf_quantize.h"

#include <cmath>
#include <cstring>

#include "common/error.h"

namespace linearard::io {
namespace {

void put16(uint8_t* p, uint16_t v) {
  p[0] = static_cast<uint8_t>(v & 0xFF);
  p[1] = static_cast<uint8_t>(v >> 8);
}

// gguf-py quants.py np_roundf: round half away from zero, in float32.
float roundf_away(float x) {
  const float a = std::fabs(x);
  const float fl = std::floor(a);
  const float b = fl + std::floor(2.0f * (a - fl));
  return x < 0 ? -b : (x > 0 ? b : 0.0f * b);
}

void quantize_q8_0(const float* x, size_t n, uint8_t* out) {
  constexpr size_t kBlock = 32, kBytes = 34;
  for (size_t b = 0; b < n / kBlock; ++b) {
    const float* v = x + b * kBlock;
    float amax = 0;
    for (size_t k = 0; k < kBlock; ++k) amax = std::fmax(amax, std::fabs(v[k]));
    const float d = amax / 127.0f;
    const float id = d == 0.0f ? 0.0f : 1.0f / d;
    uint8_t* o = out + b * kBytes;
    put16(o, float_to_half(d));
    for (size_t k = 0; k < kBlock; ++k) o[2 + k] = static_cast<uint8_t>(static_cast<int8_t>(roundf_away(v[k] * id)));
  }
}

}  // namespace

std::vector<uint8_t> quantize_ggml(GgmlType type, const float* src, size_t n) {
  std::vector<uint8_t> out;
  switch (type) {
    case GgmlType::F32:
      out.resize(n * 4);
      std::memcpy(out.data(), src, out.size());
      return out;
    case GgmlType::F16:
    case GgmlType::BF16:
      out.resize(n * 2);
      for (size_t k = 0; k < n; ++k)
        put16(out.data() + 2 * k, type == GgmlType::F16 ? float_to_half(src[k]) : float_to_bf16(src[k]));
      return out;
    case GgmlType::Q8_0:
      if (n % 32 != 0) fail("gguf quantize", "Q8_0 needs a multiple of 32 values, got " + std::to_string(n));
      out.resize(n / 32 * 34);
      quantize_q8_0(src, n, out.data());
      return out;
    default:
      fail("gguf quantize", std::string("writing ") + ggml_type_name(type) + " is not supported (F32, F16, BF16, Q8_0)");
  }
}

}  // namespace linearard::io
