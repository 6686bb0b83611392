// Shard format: XXH64 against python-xxhash 4.1.0 values, write/read round trips at both id
// widths, and one-line errors for bad magic, version, checksums, truncation and a vocabulary
// larger than the id width.
#include <fstream>
#include <random>

#include "common/error.h"
#include "data/shard.h"
#include "data/xxhash64.h"
#include "data_test_util.h"

namespace {

using namespace linearard;
using namespace linearard::data;

TEST(XxHash64, MatchesReferenceValues) {
  // Printed by python-xxhash 4.1.0: xxhash.xxh64(s, seed).intdigest().
  EXPECT_EQ(xxhash64("", 0, 0), 0xef46db3751d8e999ull);
  EXPECT_EQ(xxhash64("a", 1, 0), 0xd24ec4f1a98c6e5bull);
  EXPECT_EQ(xxhash64("abc", 3, 0), 0x44bc2cf5ad770999ull);
  EXPECT_EQ(xxhash64("", 0, 12345), 0x95584af7701f808dull);
  std::string s;
  for (int r = 0; r < 3; ++r) for (int b = 0; b < 256; ++b) s += static_cast<char>(b);
  s += "linearard";
  EXPECT_EQ(xxhash64(s.data(), s.size(), 0), 0x9d82269c05421b55ull);
  EXPECT_EQ(xxhash64(s.data(), s.size(), 12345), 0x8bd8f558e0501f55ull);
  std::string digits;
  for (int r = 0; r < 10; ++r) digits += "0123456789";
  EXPECT_EQ(xxhash64(digits.data(), digits.size(), 0), 0xf80e7b96315afffaull);
}

TEST(Shards, RoundTripBothWidths) {
  for (uint64_t vocab : {uint64_t{32000}, uint64_t{65536}, uint64_t{128256}}) {
    const std::string dir = test::temp_dir("rt" + std::to_string(vocab));
    std::mt19937 rng(7);
    std::vector<std::vector<int32_t>> docs(50);
    for (auto& d : docs) {
      d.resize(rng() % 300);
      for (auto& id : d) id = static_cast<int32_t>(rng() % vocab);
    }
    docs[3].clear();  // an empty document still gets its range
    const int64_t eos = static_cast<int64_t>(vocab - 1);
    const auto paths = test::write_docs(dir, docs, vocab, eos, 2000);
    ASSERT_GT(paths.size(), 1u);
    size_t doc = 0;
    for (const auto& path : paths) {
      const Shard s = Shard::open(path);
      EXPECT_EQ(s.header().id_bytes, vocab <= 65536 ? 2u : 4u);
      EXPECT_EQ(s.header().vocab_size, vocab);
      for (uint64_t i = 0; i < s.documents(); ++i, ++doc) {
        const auto [b, e] = s.document(i);
        std::vector<int32_t> got(e - b);
        s.read(b, e - b, got.data());
        EXPECT_EQ(got, docs[doc]) << "document " << doc;
        int32_t sep = -1;
        s.read(e, 1, &sep);
        EXPECT_EQ(sep, eos) << "EOS after document " << doc;
      }
    }
    EXPECT_EQ(doc, docs.size());
  }
}

std::string error_of(const std::string& path) {
  try {
    Shard::open(path);
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

void corrupt(const std::string& path, size_t offset, const std::string& bytes) {
  std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
  f.seekp(static_cast<std::streamoff>(offset));
  f.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

void expect_error(const std::string& path, const std::string& what) {
  const std::string msg = error_of(path);
  EXPECT_EQ(msg.rfind(path + ": ", 0), 0u) << msg;
  EXPECT_NE(msg.find(what), std::string::npos) << msg;
  EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
}

std::string fresh_shard(const std::string& name) {
  const std::string dir = test::temp_dir(name);
  return test::write_docs(dir, {{1, 2, 3, 4, 5}, {6, 7, 8}}, 1000, 0, 1000).at(0);
}

TEST(Shards, BadFilesGiveOneLineErrors) {
  std::string p = fresh_shard("magic");
  corrupt(p, 0, "GGUF");
  expect_error(p, "bad magic");

  p = fresh_shard("version");
  corrupt(p, 8, std::string("\x02\x00\x00\x00", 4));
  expect_error(p, "unsupported token shard version 2");

  p = fresh_shard("payload");
  corrupt(p, 64, std::string("\x09", 1));
  expect_error(p, "checksum mismatch");

  p = fresh_shard("header");
  corrupt(p, 16, std::string("\x07", 1));
  expect_error(p, "header checksum mismatch");

  p = fresh_shard("trunc");
  ::truncate(p.c_str(), 40);
  expect_error(p, "truncated");

  p = fresh_shard("trunc2");
  ::truncate(p.c_str(), 80);
  expect_error(p, "truncated or corrupt");
}

TEST(Shards, VocabularyLargerThanIdWidthIsRejected) {
  // A hand-made shard claiming 2-byte ids for a 70,000-id vocabulary (consistent checksums, so
  // only the width check can catch it).
  const std::string dir = test::temp_dir("width");
  const auto bytes = encode_shard(std::vector<uint8_t>(8, 0), 2, 4, 70000, {0, 4});
  const std::string path = dir + "/bad.bin";
  std::ofstream(path, std::ios::binary).write(reinterpret_cast<const char*>(bytes.data()), bytes.size());
  expect_error(path, "vocab_size 70000 does not fit 2-byte ids");

  ShardWriterParams p;
  p.out_dir = dir;
  p.vocab_size = 100;
  ShardWriter w(p);
  try {
    w.add_document({5, 100}, false);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("token id 100 is outside the vocabulary (size 100)"), std::string::npos) << e.what();
  }
}

TEST(Shards, ManifestRoundTrip) {
  const std::string dir = test::temp_dir("manifest");
  ShardManifest m;
  m.tokenizer = "/models/x";
  m.vocab_size = 32000;
  m.eos_id = 2;
  m.total_tokens = 9;
  m.shards.push_back({"shard-00000.bin", 9, 2, 0xfedcba9876543210ull});
  write_manifest(dir + "/manifest.json", m);
  const ShardManifest r = read_manifest(dir + "/manifest.json");
  EXPECT_EQ(r.tokenizer, m.tokenizer);
  EXPECT_EQ(r.eos_id, 2);
  ASSERT_EQ(r.shards.size(), 1u);
  EXPECT_EQ(r.shards[0].checksum, 0xfedcba9876543210ull);
  EXPECT_EQ(shard_paths(dir), std::vector<std::string>{dir + "/shard-00000.bin"});
}

}  // namespace
