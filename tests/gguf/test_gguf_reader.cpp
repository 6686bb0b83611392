// The GGUF reader and dequantizers: every supported type against gguf.quants.dequantize (numpy,
// float32 bit-equal), versions 2 and 3, half/bfloat16 rounding, and the one-line error of each
// broken file through `linearard import`.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <fstream>
#include <iterator>

#include "common/error.h"
#include "io/gguf.h"
#include "test_env.h"

namespace {

using namespace linearard;
using namespace linearard::io;

std::string fixture(const std::string& name) { return test_env::fixtures_dir() + "/gguf/" + name; }

std::vector<float> read_floats(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::vector<char> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::vector<float> v(bytes.size() / 4);
  std::memcpy(v.data(), bytes.data(), v.size() * 4);
  return v;
}

void expect_bit_equal(const std::vector<float>& got, const float* want, const std::string& what) {
  size_t bad = 0;
  for (size_t k = 0; k < got.size(); ++k) {
    uint32_t a, b;
    std::memcpy(&a, &got[k], 4);
    std::memcpy(&b, &want[k], 4);
    if (a != b && bad++ < 3) ADD_FAILURE() << what << "[" << k << "]: " << got[k] << " vs numpy " << want[k];
  }
  EXPECT_EQ(bad, 0u) << what;
}

class GgufQuants : public ::testing::TestWithParam<const char*> {};

TEST_P(GgufQuants, EveryTypeEqualsNumpyDequantize) {
  const GgufFile f = GgufFile::open(fixture(GetParam()));
  const std::vector<float> ref = read_floats(fixture("quants_ref.bin"));
  ASSERT_EQ(f.find("test.count")->as_int("test.count"), 13);
  ASSERT_EQ(f.header().tensors.size(), 13u);
  size_t at = 0;
  std::set<std::string> types;
  for (const auto& t : f.header().tensors) {
    EXPECT_EQ(t.shape(), (std::vector<int64_t>{3, 512})) << t.name;
    const std::vector<float> got = f.dequantize(t);
    ASSERT_LE(at + got.size(), ref.size());
    expect_bit_equal(got, ref.data() + at, t.name);
    at += got.size();
    types.insert(ggml_type_name(t.type));
  }
  EXPECT_EQ(at, ref.size());
  EXPECT_EQ(types, (std::set<std::string>{"F32", "F16", "BF16", "Q8_0", "Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q2_K",
                                          "Q3_K", "Q4_K", "Q5_K", "Q6_K"}));
}

INSTANTIATE_TEST_SUITE_P(Versions, GgufQuants, ::testing::Values("quants_v3.gguf", "quants_v2.gguf"));

TEST(GgufReader, MetadataOfTheTinyModels) {
  const GgufFile v3 = GgufFile::open(fixture("tiny_bpe.gguf"));
  EXPECT_EQ(v3.header().version, 3u);
  EXPECT_EQ(v3.find("general.architecture")->as_string("arch"), "llama");
  EXPECT_EQ(v3.find("llama.block_count")->as_int("n"), 2);
  EXPECT_FLOAT_EQ(static_cast<float>(v3.find("llama.rope.freq_base")->as_double("theta")), 50000.0f);
  const GgufValue* merges = v3.find("tokenizer.ggml.merges");
  ASSERT_NE(merges, nullptr);
  EXPECT_EQ(merges->type, GgufValueType::ARRAY);
  EXPECT_EQ(merges->elem_type, GgufValueType::STRING);
  EXPECT_GT(merges->array.size(), 10u);
  EXPECT_EQ(v3.header().data_offset % v3.header().alignment, 0u);
  const GgufFile v2 = GgufFile::open(fixture("tiny_spm.gguf"));
  EXPECT_EQ(v2.header().version, 2u);
  EXPECT_EQ(v2.find("tokenizer.ggml.scores")->elem_type, GgufValueType::FLOAT32);
  EXPECT_EQ(v2.find("tokenizer.ggml.token_type")->elem_type, GgufValueType::INT32);
}

// Nested arrays, every scalar type and a custom alignment, built by hand.
struct Writer {
  std::string b;
  template <typename T>
  void put(T v) {
    for (size_t k = 0; k < sizeof(T); ++k) b.push_back(static_cast<char>((static_cast<uint64_t>(v) >> (8 * k)) & 0xFF));
  }
  void str(const std::string& s) {
    put<uint64_t>(s.size());
    b += s;
  }
};

TEST(GgufReader, AllValueTypesNestedArraysAndAlignment) {
  Writer w;
  w.put<uint32_t>(kGgufMagic);
  w.put<uint32_t>(3);
  w.put<uint64_t>(1);  // tensors
  w.put<uint64_t>(4);  // kvs
  w.str("general.alignment");
  w.put<uint32_t>(4);
  w.put<uint32_t>(64);
  w.str("a.nested");
  w.put<uint32_t>(9);
  w.put<uint32_t>(9);  // array of arrays
  w.put<uint64_t>(2);
  for (int k = 0; k < 2; ++k) {
    w.put<uint32_t>(1);  // int8
    w.put<uint64_t>(2);
    w.put<int8_t>(static_cast<int8_t>(-1 - k));
    w.put<int8_t>(5);
  }
  w.str("a.i64");
  w.put<uint32_t>(11);
  w.put<int64_t>(-7);
  w.str("a.f64");
  w.put<uint32_t>(12);
  double d = 0.25;
  uint64_t bits;
  std::memcpy(&bits, &d, 8);
  w.put<uint64_t>(bits);
  w.str("x");
  w.put<uint32_t>(1);
  w.put<uint64_t>(4);
  w.put<uint32_t>(0);  // F32
  w.put<uint64_t>(0);
  while (w.b.size() % 64) w.b.push_back('\0');
  for (int k = 0; k < 4; ++k) {
    float f = static_cast<float>(k) + 0.5f;
    uint32_t fb;
    std::memcpy(&fb, &f, 4);
    w.put<uint32_t>(fb);
  }
  const auto* bytes = reinterpret_cast<const uint8_t*>(w.b.data());
  const GgufHeader h = parse_gguf(bytes, w.b.size(), "hand.gguf");
  EXPECT_EQ(h.alignment, 64u);
  EXPECT_EQ(h.data_offset % 64, 0u);
  const GgufValue& nested = h.metadata.at("a.nested");
  ASSERT_EQ(nested.array.size(), 2u);
  EXPECT_EQ(nested.array[1].array[0].as_int("n"), -2);
  EXPECT_EQ(h.metadata.at("a.i64").as_int("n"), -7);
  EXPECT_EQ(h.metadata.at("a.f64").as_double("f"), 0.25);
  // The data section ends exactly at the file's end; one byte less is a truncation.
  EXPECT_THROW(parse_gguf(bytes, w.b.size() - 1, "hand.gguf"), Error);
  for (size_t cut = 0; cut < w.b.size() - 16; cut += 7) EXPECT_THROW(parse_gguf(bytes, cut, "hand.gguf"), Error) << cut;
}

TEST(GgufReader, HalfAndBfloat16RoundToNearestEven) {
  EXPECT_EQ(float_to_half(1.0f), 0x3C00);
  EXPECT_EQ(float_to_half(65504.0f), 0x7BFF);
  EXPECT_EQ(float_to_half(65520.0f), 0x7C00);
  EXPECT_EQ(float_to_half(std::ldexp(1.0f, -24)), 0x0001);
  EXPECT_EQ(float_to_half(std::ldexp(1.0f, -25)), 0x0000);  // tie -> even (0)
  EXPECT_EQ(float_to_half(1.0f + std::ldexp(1.0f, -11)), 0x3C00);  // tie -> even
  EXPECT_EQ(float_to_half(-2.0f), 0xC000);
  for (uint32_t h = 0; h < 0x7C00; ++h) EXPECT_EQ(float_to_half(half_to_float(h)), h);
  EXPECT_EQ(float_to_bf16(1.0f), 0x3F80);
  EXPECT_EQ(float_to_bf16(bf16_to_float(0x3F81) + std::ldexp(1.0f, -8)), 0x3F82);  // tie -> even
  EXPECT_EQ(float_to_bf16(bf16_to_float(0x3F80) + std::ldexp(1.0f, -8)), 0x3F80);  // tie -> even
  EXPECT_EQ(float_to_bf16(std::nanf("")), 0x7FC0);
}

// Each broken file: exit status 1 and one line "linearard: error: <file>: <field>: <problem>".
struct BadCase {
  const char* file;
  const char* message;  // after "<file>: "
};

class GgufBadFiles : public ::testing::TestWithParam<BadCase> {};

TEST_P(GgufBadFiles, OneLineError) {
  const BadCase c = GetParam();
  const std::string path = fixture(std::string("bad/") + c.file);
  const std::string out = ::testing::TempDir() + "/gguf_bad_out_" + c.file;
  const auto r = test_env::run_command(test_env::linearard_bin() + " import '" + path + "' --out '" + out + "' 2>&1");
  EXPECT_EQ(r.exit_code, 1) << r.output;
  const std::string want = "linearard: error: " + path + ": " + c.message;
  EXPECT_EQ(r.output.substr(0, want.size()), want) << r.output;
  EXPECT_EQ(std::count(r.output.begin(), r.output.end(), '\n'), 1) << r.output;
}

INSTANTIATE_TEST_SUITE_P(
    Files, GgufBadFiles,
    ::testing::Values(BadCase{"bad_magic.gguf", "magic: not a GGUF file"},
                      BadCase{"bad_version.gguf", "version: unsupported GGUF version 7"},
                      BadCase{"truncated_header.gguf", "metadata_kv_count: 2 entries cannot fit in the file"},
                      BadCase{"truncated_data.gguf", "tensor 't.Q6_K': offset: bytes"},
                      BadCase{"unknown_type.gguf", "tensor 't.F32': type: unknown tensor type 99"},
                      BadCase{"past_end.gguf", "tensor 't.F32': offset: bytes [1073741824"},
                      BadCase{"misaligned.gguf", "tensor 't.F32': offset: 3 is not a multiple of the alignment 32"},
                      BadCase{"bad_blocks.gguf", "tensor 't.Q4_0': shape: the first dimension 500 is not a multiple of the Q4_0 block size 32"},
                      BadCase{"bad_shape.gguf", "tensor 'blk.0.ffn_gate.weight': shape [512, 256] does not match the metadata ([768, 256] from llama.* keys)"},
                      BadCase{"missing_key.gguf", "llama.block_count: missing (required)"}),
    [](const auto& info) {
      std::string n = info.param.file;
      return n.substr(0, n.find('.'));
    });

}  // namespace
