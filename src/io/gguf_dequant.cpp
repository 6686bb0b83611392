// Dequantization of the GGML block formats (see gguf_dequant.h). Compiled with -ffp-contract=off
// (src/io/CMakeLists.txt): a fused multiply-add would round differently from numpy's d * q - m.
#include "io/gguf_dequant.h"

#include <cmath>
#include <cstring>

#include "common/error.h"

namespace linearard::io {
namespace {

// QK_K and K_SCALE_SIZE of ggml-common.h: super-block size and packed 6-bit scale bytes.
constexpr size_t kQK = 256;
constexpr size_t kKScaleSize = 12;

float f16_at(const uint8_t* p) { return half_to_float(static_cast<uint16_t>(p[0] | (p[1] << 8))); }

uint32_t u32_at(const uint8_t* p) { return p[0] | (p[1] << 8) | (p[2] << 16) | (uint32_t(p[3]) << 24); }

// block_q4_0: half d; uint8 qs[16]. Low nibbles are values 0..15, high nibbles 16..31.
void dequant_q4_0(const uint8_t* b, float* y) {
  const float d = f16_at(b);
  const uint8_t* qs = b + 2;
  for (int j = 0; j < 16; ++j) {
    y[j] = d * static_cast<float>((qs[j] & 0x0F) - 8);
    y[j + 16] = d * static_cast<float>((qs[j] >> 4) - 8);
  }
}

// block_q4_1: half d, m; uint8 qs[16]. y = d * q + m.
void dequant_q4_1(const uint8_t* b, float* y) {
  const float d = f16_at(b), m = f16_at(b + 2);
  const uint8_t* qs = b + 4;
  for (int j = 0; j < 16; ++j) {
    y[j] = d * static_cast<float>(qs[j] & 0x0F) + m;
    y[j + 16] = d * static_cast<float>(qs[j] >> 4) + m;
  }
}

// block_q5_0: half d; uint8 qh[4] (bit j = 5th bit of value j); uint8 qs[16].
void dequant_q5_0(const uint8_t* b, float* y) {
  const float d = f16_at(b);
  const uint32_t qh = u32_at(b + 2);
  const uint8_t* qs = b + 6;
  for (int j = 0; j < 16; ++j) {
    const int lo = (qs[j] & 0x0F) | (((qh >> j) & 1) << 4);
    const int hi = (qs[j] >> 4) | (((qh >> (j + 16)) & 1) << 4);
    y[j] = d * static_cast<float>(lo - 16);
    y[j + 16] = d * static_cast<float>(hi - 16);
  }
}

// block_q5_1: half d, m; uint8 qh[4]; uint8 qs[16]. y = d * q + m.
void dequant_q5_1(const uint8_t* b, float* y) {
  const float d = f16_at(b), m = f16_at(b + 2);
  const uint32_t qh = u32_at(b + 4);
  const uint8_t* qs = b + 8;
  for (int j = 0; j < 16; ++j) {
    const int lo = (qs[j] & 0x0F) | (((qh >> j) & 1) << 4);
    const int hi = (qs[j] >> 4) | (((qh >> (j + 16)) & 1) << 4);
    y[j] = d * static_cast<float>(lo) + m;
    y[j + 16] = d * static_cast<float>(hi) + m;
  }
}

// block_q8_0: half d; int8 qs[32].
void dequant_q8_0(const uint8_t* b, float* y) {
  const float d = f16_at(b);
  for (int j = 0; j < 32; ++j) y[j] = static_cast<float>(static_cast<int8_t>(b[2 + j])) * d;
}

// block_q2_K: uint8 scales[16] (low nibble scale, high nibble min); uint8 qs[64] (2-bit values,
// four 32-value planes per 32 bytes); half d, dmin. Each group of 16 values has its own scale.
void dequant_q2_k(const uint8_t* b, float* y) {
  const uint8_t* scales = b;
  const uint8_t* qs = b + kQK / 16;
  const float d = f16_at(b + kQK / 16 + kQK / 4), dmin = f16_at(b + kQK / 16 + kQK / 4 + 2);
  for (size_t idx = 0; idx < kQK; ++idx) {
    const size_t half = idx / 128, plane = (idx % 128) / 32, l = idx % 32;
    const uint8_t sc = scales[idx / 16];
    const float dl = d * static_cast<float>(sc & 0x0F), ml = dmin * static_cast<float>(sc >> 4);
    const int q = (qs[half * 32 + l] >> (2 * plane)) & 3;
    y[idx] = dl * static_cast<float>(q) - ml;
  }
}

// block_q3_K: uint8 hmask[32] (3rd bit; set means no -4 offset); uint8 qs[64] (low 2 bits);
// uint8 scales[12] (16 six-bit scales, offset 32); half d.
void dequant_q3_k(const uint8_t* b, float* y) {
  const uint8_t* hmask = b;
  const uint8_t* qs = b + kQK / 8;
  const uint8_t* packed = b + kQK / 8 + kQK / 4;
  const float d = f16_at(packed + 12);
  // Scale s: low 4 bits from byte s % 8 (nibble s / 8), high 2 bits from byte 8 + s % 4 (pair s / 4).
  float dl[16];
  for (int s = 0; s < 16; ++s) {
    const int low = (packed[s % 8] >> (4 * (s / 8))) & 0x0F;
    const int high = (packed[8 + s % 4] >> (2 * (s / 4))) & 0x03;
    dl[s] = d * static_cast<float>((low | (high << 4)) - 32);
  }
  for (size_t idx = 0; idx < kQK; ++idx) {
    const size_t half = idx / 128, plane = (idx % 128) / 32, l = idx % 32;
    const int low = (qs[half * 32 + l] >> (2 * plane)) & 3;
    const int hbit = (hmask[l] >> (idx / 32)) & 1;
    y[idx] = dl[idx / 16] * static_cast<float>(low - (hbit ? 0 : 4));
  }
}

// get_scale_min_k4 of ggml-quants.c: the j-th (of 8) 6-bit scale and min of a K-quant super-block.
void scale_min_k4(int j, const uint8_t* q, int* sc, int* m) {
  if (j < 4) {
    *sc = q[j] & 63;
    *m = q[j + 4] & 63;
  } else {
    *sc = (q[j + 4] & 0x0F) | ((q[j - 4] >> 6) << 4);
    *m = (q[j + 4] >> 4) | ((q[j] >> 6) << 4);
  }
}

// block_q4_K: half d, dmin; uint8 scales[12]; uint8 qs[128]. 8 groups of 32 values; each 32 bytes
// hold two groups (low nibbles, then high nibbles).
void dequant_q4_k(const uint8_t* b, float* y) {
  const float d = f16_at(b), dmin = f16_at(b + 2);
  const uint8_t* scales = b + 4;
  const uint8_t* qs = b + 4 + kKScaleSize;
  for (int g = 0; g < 8; ++g) {
    int sc, m;
    scale_min_k4(g, scales, &sc, &m);
    const float d1 = d * static_cast<float>(sc), m1 = dmin * static_cast<float>(m);
    const uint8_t* q = qs + (g / 2) * 32;
    for (int l = 0; l < 32; ++l) {
      const int v = (g % 2 == 0) ? (q[l] & 0x0F) : (q[l] >> 4);
      y[g * 32 + l] = d1 * static_cast<float>(v) - m1;
    }
  }
}

// block_q5_K: half d, dmin; uint8 scales[12]; uint8 qh[32] (bit g = 5th bit of group g); uint8 qs[128].
void dequant_q5_k(const uint8_t* b, float* y) {
  const float d = f16_at(b), dmin = f16_at(b + 2);
  const uint8_t* scales = b + 4;
  const uint8_t* qh = b + 4 + kKScaleSize;
  const uint8_t* qs = qh + kQK / 8;
  for (int g = 0; g < 8; ++g) {
    int sc, m;
    scale_min_k4(g, scales, &sc, &m);
    const float d1 = d * static_cast<float>(sc), m1 = dmin * static_cast<float>(m);
    const uint8_t* q = qs + (g / 2) * 32;
    for (int l = 0; l < 32; ++l) {
      const int low = (g % 2 == 0) ? (q[l] & 0x0F) : (q[l] >> 4);
      const int v = low | (((qh[l] >> g) & 1) << 4);
      y[g * 32 + l] = d1 * static_cast<float>(v) - m1;
    }
  }
}

// block_q6_K: uint8 ql[128] (low 4 bits); uint8 qh[64] (high 2 bits); int8 scales[16]; half d.
// Per 128-value half: ql 64 bytes (two nibble planes of 64), qh 32 bytes (four 2-bit planes).
void dequant_q6_k(const uint8_t* b, float* y) {
  const uint8_t* ql = b;
  const uint8_t* qh = b + kQK / 2;
  const int8_t* scales = reinterpret_cast<const int8_t*>(b + kQK / 2 + kQK / 4);
  const float d = f16_at(b + kQK / 2 + kQK / 4 + kQK / 16);
  for (size_t idx = 0; idx < kQK; ++idx) {
    const size_t half = idx / 128, g = (idx % 128) / 32, l = idx % 32;
    const uint8_t lbyte = ql[half * 64 + (g % 2) * 32 + l];
    const int low = (g < 2) ? (lbyte & 0x0F) : (lbyte >> 4);
    const int high = (qh[half * 32 + l] >> (2 * g)) & 3;
    const float dl = d * static_cast<float>(scales[idx / 16]);
    y[idx] = dl * static_cast<float>((low | (high << 4)) - 32);
  }
}

struct TypeEntry {
  uint32_t tag;
  GgmlTypeTraits traits;
  void (*block)(const uint8_t*, float*);  // nullptr for the plain float types
};

// Block sizes: ggml-common.h (sizeof(block_*) and QK*), e.g. block_q4_0 = 2 + 32/2 bytes.
constexpr TypeEntry kTypes[] = {
    {0, {"F32", 1, 4}, nullptr},
    {1, {"F16", 1, 2}, nullptr},
    {2, {"Q4_0", 32, 18}, dequant_q4_0},
    {3, {"Q4_1", 32, 20}, dequant_q4_1},
    {6, {"Q5_0", 32, 22}, dequant_q5_0},
    {7, {"Q5_1", 32, 24}, dequant_q5_1},
    {8, {"Q8_0", 32, 34}, dequant_q8_0},
    {10, {"Q2_K", 256, 84}, dequant_q2_k},
    {11, {"Q3_K", 256, 110}, dequant_q3_k},
    {12, {"Q4_K", 256, 144}, dequant_q4_k},
    {13, {"Q5_K", 256, 176}, dequant_q5_k},
    {14, {"Q6_K", 256, 210}, dequant_q6_k},
    {30, {"BF16", 1, 2}, nullptr},
};

const TypeEntry* entry(uint32_t tag) {
  for (const auto& e : kTypes)
    if (e.tag == tag) return &e;
  return nullptr;
}

}  // namespace

std::optional<GgmlTypeTraits> ggml_type_traits(uint32_t tag) {
  const TypeEntry* e = entry(tag);
  if (!e) return std::nullopt;
  return e->traits;
}

const char* ggml_type_name(GgmlType type) {
  const TypeEntry* e = entry(static_cast<uint32_t>(type));
  return e ? e->traits.name : "?";
}

const char* ggml_unsupported_type_name(uint32_t tag) {
  // ggml.h enum ggml_type, the tags we do not dequantize (4 and 5 were Q4_2 / Q4_3, removed).
  static const char* const names[] = {nullptr, nullptr, nullptr, nullptr, "Q4_2", "Q4_3", nullptr,
                                      nullptr, nullptr, "Q8_1", nullptr, nullptr, nullptr, nullptr,
                                      nullptr, "Q8_K", "IQ2_XXS", "IQ2_XS", "IQ3_XXS", "IQ1_S",
                                      "IQ4_NL", "IQ3_S", "IQ2_S", "IQ4_XS", "I8", "I16", "I32",
                                      "I64", "F64", "IQ1_M", nullptr, "Q4_0_4_4", "Q4_0_4_8",
                                      "Q4_0_8_8", "TQ1_0", "TQ2_0", "IQ4_NL_4_4", "IQ4_NL_4_8",
                                      "IQ4_NL_8_8", "MXFP4"};
  return tag < sizeof(names) / sizeof(names[0]) ? names[tag] : nullptr;
}

void dequantize_ggml(GgmlType type, const uint8_t* src, size_t n, float* dst) {
  const TypeEntry* e = entry(static_cast<uint32_t>(type));
  if (!e) fail("dequantize", "unsupported ggml type " + std::to_string(static_cast<uint32_t>(type)));
  switch (type) {
    case GgmlType::F32:
      std::memcpy(dst, src, n * 4);
      return;
    case GgmlType::F16:
      for (size_t k = 0; k < n; ++k) dst[k] = f16_at(src + 2 * k);
      return;
    case GgmlType::BF16:
      for (size_t k = 0; k < n; ++k) dst[k] = bf16_to_float(static_cast<uint16_t>(src[2 * k] | (src[2 * k + 1] << 8)));
      return;
    default:
      break;
  }
  const size_t be = e->traits.block_elems, bb = e->traits.block_bytes;
  if (n % be != 0) fail("dequantize", std::to_string(n) + " values are not a whole number of " + e->traits.name + " blocks");
  for (size_t blk = 0; blk < n / be; ++blk) e->block(src + blk * bb, dst + blk * be);
}

float half_to_float(uint16_t h) {
  const uint32_t sign = uint32_t(h & 0x8000) << 16;
  const uint32_t exp = (h >> 10) & 0x1F, mant = h & 0x3FF;
  uint32_t bits;
  if (exp == 0) {
    if (mant == 0) {
      bits = sign;
    } else {  // subnormal: mant * 2^-24, exact in float32
      const float v = std::ldexp(static_cast<float>(mant), -24);
      std::memcpy(&bits, &v, 4);
      bits |= sign;
    }
  } else if (exp == 0x1F) {
    bits = sign | 0x7F800000 | (mant << 13);
  } else {
    bits = sign | ((exp + 112) << 23) | (mant << 13);  // rebias 15 -> 127
  }
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

uint16_t float_to_half(float f) {
  uint32_t x;
  std::memcpy(&x, &f, 4);
  const uint16_t sign = static_cast<uint16_t>((x >> 16) & 0x8000);
  const uint32_t abs = x & 0x7FFFFFFF;
  if (abs > 0x7F800000) return sign | 0x7E00;          // NaN
  if (abs >= 0x477FF000) return sign | 0x7C00;         // rounds to infinity (>= 65520)
  if (abs >= 0x38800000) {                             // normal half (>= 2^-14)
    uint32_t r = abs - 0x38000000;                     // exponent 127 -> 15
    r += 0x0FFF + ((r >> 13) & 1);                     // round to nearest even at bit 13
    return static_cast<uint16_t>(sign | (r >> 13));
  }
  // Subnormal half or zero: the multiple of 2^-24 nearest (ties to even, the default mode).
  const float a = std::fabs(f) * 16777216.0f;  // exact: scaling by a power of two
  return static_cast<uint16_t>(sign | static_cast<uint16_t>(std::nearbyint(a)));
}

float bf16_to_float(uint16_t b) {
  const uint32_t bits = uint32_t(b) << 16;
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

uint16_t float_to_bf16(float f) {
  uint32_t x;
  std::memcpy(&x, &f, 4);
  if ((x & 0x7FFFFFFF) > 0x7F800000) return 0x7FC0;  // NaN, as c10::BFloat16 rounds it
  return static_cast<uint16_t>((x + 0x7FFF + ((x >> 16) & 1)) >> 16);
}

}  // namespace linearard::io
