// The torch-free safetensors reader/writer against the reference `safetensors` package, and one
// test per malformed input (each checks the one-line message names the file and the problem).
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <random>
#include <tuple>

#include "io/atomic_file.h"
#include "io/safetensors.h"
#include "io_test_util.h"

namespace linearard::io::test {
namespace {

using nlohmann::json;

// ---- files written by Python, read by us -------------------------------------------------------

void expect_matches_manifest(const SafetensorsFile& f, const json& spec) {
  using StringMap = std::map<std::string, std::string>;
  EXPECT_EQ(f.metadata(), spec["metadata"].get<StringMap>());
  ASSERT_EQ(f.tensors().size(), spec["tensors"].size()) << f.path();
  for (const auto& [name, want] : spec["tensors"].items()) {
    SCOPED_TRACE(f.path() + " tensor " + name);
    ASSERT_TRUE(f.has(name));
    const TensorInfo& info = f.info(name);
    EXPECT_EQ(dtype_name(info.dtype), want["dtype"].get<std::string>());
    EXPECT_EQ(info.shape, want["shape"].get<std::vector<int64_t>>());
    EXPECT_EQ(to_hex(f.data(name), info.nbytes()), want["hex"].get<std::string>());
  }
}

TEST(SafetensorsRead, PythonTorchFile) {
  json m = load_manifest();
  expect_matches_manifest(SafetensorsFile::open(fixtures_io_dir() + "/single/model.safetensors"), m["single"]);
}

TEST(SafetensorsRead, PythonNumpyFile) {
  json m = load_manifest();
  expect_matches_manifest(SafetensorsFile::open(fixtures_io_dir() + "/numpy.safetensors"), m["numpy"]);
}

TEST(SafetensorsRead, PythonShards) {
  json m = load_manifest()["sharded"];
  size_t seen = 0;
  for (const json& shard : m["shards"]) {
    SafetensorsFile f = SafetensorsFile::open(fixtures_io_dir() + "/sharded/" + shard.get<std::string>());
    for (const auto& [name, info] : f.tensors()) {
      const json& want = m["tensors"][name];
      EXPECT_EQ(to_hex(f.data(name), info.nbytes()), want["hex"].get<std::string>()) << name;
      EXPECT_EQ(info.shape, want["shape"].get<std::vector<int64_t>>()) << name;
      ++seen;
    }
  }
  EXPECT_EQ(seen, m["tensors"].size());
}

// ---- files written by us, read by Python ----------------------------------------------------------

struct Owned {  // test tensors with their bytes
  std::string name;
  DType dtype;
  std::vector<int64_t> shape;
  std::string bytes;
};

std::vector<Owned> sample_tensors() {
  std::mt19937 rng(7);
  auto bytes = [&](size_t n) {
    std::string s(n, '\0');
    for (char& c : s) c = static_cast<char>(rng() & 0xff);
    return s;
  };
  std::string flags = {1, 0, 1, 1, 0, 0};
  return {
      {"model.layers.0.self_attn.q_proj.weight", DType::BF16, {8, 4}, bytes(64)},
      {"a.f32", DType::F32, {3, 5}, bytes(60)},
      {"b.f16", DType::F16, {7}, bytes(14)},
      {"c.i64", DType::I64, {2, 2}, bytes(32)},
      {"d.bool", DType::BOOL, {2, 3}, flags},
      {"e.u8", DType::U8, {3}, bytes(3)},
      {"f.scalar", DType::F64, {}, bytes(8)},
      {"g.empty", DType::F32, {0, 3}, ""},
      {"h.i32", DType::I32, {1}, bytes(4)},
      {"i.u16", DType::U16, {2}, bytes(4)},
  };
}

std::vector<TensorBytes> views(const std::vector<Owned>& ts) {
  std::vector<TensorBytes> out;
  for (const Owned& t : ts) out.push_back({t.name, t.dtype, t.shape, t.bytes.data(), t.bytes.size()});
  return out;
}

json expected_tensors(const std::vector<Owned>& ts) {
  json j = json::object();
  for (const Owned& t : ts)
    j[t.name] = {{"dtype", dtype_name(t.dtype)}, {"shape", t.shape}, {"hex", to_hex(t.bytes.data(), t.bytes.size())}};
  return j;
}

TEST(SafetensorsWrite, LayoutFollowsReference) {
  ScratchDir dir;
  std::vector<Owned> ts = sample_tensors();
  write_safetensors(dir.path("x.safetensors"), views(ts), {{"format", "pt"}});
  std::string file = read_bytes(dir.path("x.safetensors"));
  uint64_t n = 0;
  std::memcpy(&n, file.data(), 8);
  EXPECT_EQ(n % 8, 0u) << "header is padded to a multiple of 8";
  SafetensorsHeader h = parse_safetensors_header(reinterpret_cast<const uint8_t*>(file.data()), file.size(), "x");
  // Layout order: descending dtype alignment, then name (the Rust writer's order).
  std::vector<std::tuple<uint64_t, uint64_t, std::string>> by_offset;
  for (const auto& [name, info] : h.tensors) {
    by_offset.emplace_back(info.begin, info.end, name);
    EXPECT_EQ((h.data_offset + info.begin) % dtype_size(info.dtype), 0u) << name << " is aligned";
  }
  std::sort(by_offset.begin(), by_offset.end());
  std::vector<std::string> order;
  for (const auto& t : by_offset) order.push_back(std::get<2>(t));
  // Descending dtype (I64 F64 F32 I32 BF16 F16 U16 U8 BOOL), ties by name: the Rust writer's order.
  std::vector<std::string> want = {"c.i64", "f.scalar", "a.f32", "g.empty", "h.i32",
                                   "model.layers.0.self_attn.q_proj.weight", "b.f16", "i.u16", "e.u8", "d.bool"};
  EXPECT_EQ(order, want);
  EXPECT_EQ(file.substr(h.data_offset + h.tensors.at("a.f32").begin, 60), ts[1].bytes);
}

TEST(SafetensorsWrite, ReadBackByPython) {
  ScratchDir dir;
  std::vector<Owned> ts = sample_tensors();
  std::map<std::string, std::string> meta = {{"format", "pt"}, {"by", "linearard"}};
  write_safetensors(dir.path("single.safetensors"), views(ts), meta);
  write_sharded_safetensors(dir.path("sharded"), views(ts), meta, 70);  // several shards
  write_sharded_safetensors(dir.path("one"), views(ts), meta, 1 << 20);  // one: model.safetensors
  json expected;
  expected["files"]["single.safetensors"] = {{"metadata", meta}, {"tensors", expected_tensors(ts)}};
  std::vector<std::string> shard_files;
  for (const auto& e : fs::directory_iterator(dir.path("sharded"))) shard_files.push_back(e.path().filename());
  EXPECT_GT(shard_files.size(), 3u);
  expected["sharded"]["sharded"] = {{"metadata", meta}, {"files", shard_files}, {"tensors", expected_tensors(ts)}};
  expected["sharded"]["one"] = {{"metadata", meta}, {"files", {"model.safetensors"}}, {"tensors", expected_tensors(ts)}};
  write_bytes(dir.path("expected.json"), expected.dump());

  const char* python = std::getenv("LINEARARD_PYTHON");
  const char* source = std::getenv("LINEARARD_SOURCE_DIR");
  if (!python || !source) GTEST_SKIP() << "LINEARARD_PYTHON / LINEARARD_SOURCE_DIR not set (run under ctest)";
  std::string cmd = std::string(python) + " " + source + "/tests/io/check_written.py " + dir.path();
  EXPECT_EQ(std::system(cmd.c_str()), 0) << cmd;
}

TEST(SafetensorsWrite, ShardingMatchesHuggingFace) {
  ScratchDir dir;
  std::string b(200, 'x');
  // Sizes 60, 60, 30, 200, 10 with max 100 -> [t0] [t3] [t1, t2, t4]: huggingface_hub 1.33's
  // split_state_dict_into_shards_factory gives exactly this (an oversized tensor is emitted at once,
  // before the shard being filled).
  std::vector<TensorBytes> ts = {{"t0", DType::U8, {60}, b.data(), 60},
                                 {"t1", DType::U8, {60}, b.data(), 60},
                                 {"t2", DType::U8, {30}, b.data(), 30},
                                 {"t3", DType::U8, {200}, b.data(), 200},
                                 {"t4", DType::U8, {10}, b.data(), 10}};
  write_bytes(dir.path("model.safetensors"), "stale");  // from an earlier unsharded save
  write_bytes(dir.path("model-00001-of-00009.safetensors"), "stale");
  write_bytes(dir.path("keep.txt"), "not ours");
  std::vector<std::string> files = write_sharded_safetensors(dir.path(), ts, {}, 100);
  ASSERT_EQ(files.size(), 4u);
  EXPECT_EQ(files[0], "model-00001-of-00003.safetensors");
  EXPECT_EQ(files[2], "model-00003-of-00003.safetensors");
  EXPECT_EQ(files[3], "model.safetensors.index.json");
  json index = json::parse(read_bytes(dir.path("model.safetensors.index.json")));
  EXPECT_EQ(index["metadata"]["total_size"], 360);
  std::map<std::string, std::string> want = {{"t0", files[0]}, {"t1", files[2]}, {"t2", files[2]},
                                             {"t3", files[1]}, {"t4", files[2]}};
  EXPECT_EQ(index["weight_map"].get<decltype(want)>(), want);
  EXPECT_FALSE(fs::exists(dir.path("model.safetensors")));
  EXPECT_FALSE(fs::exists(dir.path("model-00001-of-00009.safetensors")));
  EXPECT_TRUE(fs::exists(dir.path("keep.txt")));

  // Saving again with one shard replaces the sharded layout (no stale index left behind).
  files = write_sharded_safetensors(dir.path(), ts, {}, 1000);
  EXPECT_EQ(files, std::vector<std::string>{"model.safetensors"});
  size_t count = 0;
  for (const auto& e : fs::directory_iterator(dir.path())) count += e.path().filename() != "keep.txt";
  EXPECT_EQ(count, 1u);
  EXPECT_EQ(SafetensorsFile::open(dir.path("model.safetensors")).tensors().size(), 5u);
}

TEST(SafetensorsWrite, RejectsInconsistentTensor) {
  ScratchDir dir;
  float x[3] = {1, 2, 3};
  expect_error([&] { write_safetensors(dir.path("w.safetensors"), {{"x", DType::F32, {4}, x, 12}}); },
               {dir.path("w.safetensors"), "tensor 'x'", "has 12 bytes but shape [4] of F32 needs 16"});
  expect_error([&] { write_safetensors(dir.path("w.safetensors"), {{"x", DType::F32, {3}, x, 12}, {"x", DType::F32, {3}, x, 12}}); },
               {"tensor 'x'", "given twice"});
  EXPECT_FALSE(fs::exists(dir.path("w.safetensors")));
}

// ---- atomic writes -------------------------------------------------------------------------------

size_t count_entries(const std::string& dir) {
  size_t n = 0;
  for (auto it = fs::directory_iterator(dir); it != fs::directory_iterator(); ++it) ++n;
  return n;
}

TEST(AtomicFile, ReplacesWholeFileAndLeavesNoTemp) {
  ScratchDir dir;
  std::string target = dir.path("out.bin");
  write_bytes(target, "old contents");
  write_file_atomic(target, "new");
  EXPECT_EQ(read_bytes(target), "new");
  EXPECT_EQ(count_entries(dir.path()), 1u);
}

TEST(AtomicFile, AbandonedWriteKeepsOldTarget) {
  ScratchDir dir;
  std::string target = dir.path("out.bin");
  write_bytes(target, "old contents");
  {
    AtomicFile f(target);
    f.write("partial", 7);
    EXPECT_TRUE(fs::exists(f.temp_path()));
    EXPECT_EQ(read_bytes(target), "old contents");  // never a partial target
  }  // destroyed without commit (as when an exception unwinds)
  EXPECT_EQ(read_bytes(target), "old contents");
  EXPECT_EQ(count_entries(dir.path()), 1u);
}

TEST(AtomicFile, MissingDirectoryFails) {
  ScratchDir dir;
  expect_error([&] { write_file_atomic(dir.path("nope/out.bin"), "x"); }, {dir.path("nope/out.bin"), "cannot create"});
}

TEST(AtomicFile, FreeSpaceCheck) {
  ScratchDir dir;
  check_free_space(dir.path(), 1);
  expect_error([&] { check_free_space(dir.path(), uint64_t(1) << 62); }, {dir.path(), "not enough free disk space"});
}

// ---- malformed files: one test each, message names the file and the problem ----------------------

class SafetensorsBad : public ::testing::Test {
 protected:
  // Writes `bytes` to a file and expects open() to fail with a message containing `problem`.
  void expect_rejected(const std::string& bytes, const std::string& problem) {
    std::string path = dir_.path("bad.safetensors");
    write_bytes(path, bytes);
    expect_error([&] { SafetensorsFile::open(path); }, {path + ": ", problem});
  }
  ScratchDir dir_;
};

const std::string kF32x2 = R"("t":{"dtype":"F32","shape":[2],"data_offsets":[0,8]})";

TEST_F(SafetensorsBad, ShorterThanLengthField) { expect_rejected("abc", "shorter than the 8-byte header length"); }

TEST_F(SafetensorsBad, TruncatedData) {
  expect_rejected(raw_safetensors("{" + kF32x2 + "}", std::string(4, '\0')),
                  "tensor 't' data_offsets [0, 8] run past the data area (4 bytes): file truncated?");
}

TEST_F(SafetensorsBad, HeaderLengthPastEnd) {
  std::string bytes = raw_safetensors("{}", "");
  bytes[0] = static_cast<char>(0xe8), bytes[1] = 0x03;  // 1000
  expect_rejected(bytes, "header length 1000 exceeds file size 10");
}

TEST_F(SafetensorsBad, HeaderOver100MB) {
  // A sparse file: the length check must come before any read of the header.
  std::string path = dir_.path("big.safetensors");
  std::string len(8, '\0');
  uint64_t n = kMaxHeaderBytes + 8;
  std::memcpy(len.data(), &n, 8);
  write_bytes(path, len);
  ASSERT_EQ(::truncate(path.c_str(), static_cast<off_t>(n + 16)), 0);
  expect_error([&] { SafetensorsFile::open(path); }, {path + ": ", "exceeds the 100 MB limit"});
}

TEST_F(SafetensorsBad, HeaderNotJson) { expect_rejected(raw_safetensors("{\"t\": [1,", ""), "header is not valid JSON"); }

TEST_F(SafetensorsBad, HeaderNotObject) { expect_rejected(raw_safetensors("[1, 2]  ", ""), "header is not a JSON object"); }

TEST_F(SafetensorsBad, MetadataNotStrings) {
  expect_rejected(raw_safetensors(R"({"__metadata__":{"n":3}})", ""), "__metadata__ entry 'n' is not a string");
}

TEST_F(SafetensorsBad, MissingDataOffsets) {
  expect_rejected(raw_safetensors(R"({"t":{"dtype":"F32","shape":[2]}})", std::string(8, '\0')),
                  "tensor 't' has no \"data_offsets\"");
}

TEST_F(SafetensorsBad, UnknownDtype) {
  expect_rejected(raw_safetensors(R"({"t":{"dtype":"F7","shape":[2],"data_offsets":[0,8]}})", std::string(8, '\0')),
                  "tensor 't' has unknown dtype 'F7'");
}

TEST_F(SafetensorsBad, NegativeShape) {
  expect_rejected(raw_safetensors(R"({"t":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}})", std::string(8, '\0')),
                  "tensor 't' shape [-2] has a negative dimension");
}

TEST_F(SafetensorsBad, OverflowingShape) {
  expect_rejected(raw_safetensors(R"({"t":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,8]}})",
                                  std::string(8, '\0')),
                  "overflows a 64-bit byte count");
}

TEST_F(SafetensorsBad, ShapeTimesDtypeSizeNotSpan) {
  expect_rejected(raw_safetensors(R"({"t":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})", std::string(8, '\0')),
                  "tensor 't' data_offsets [0, 8] span 8 bytes but shape [3] of F32 needs 12");
}

TEST_F(SafetensorsBad, BeginAfterEnd) {
  expect_rejected(raw_safetensors(R"({"t":{"dtype":"U8","shape":[0],"data_offsets":[8,0]}})", std::string(8, '\0')),
                  "has begin > end");
}

TEST_F(SafetensorsBad, OverlappingOffsets) {
  expect_rejected(raw_safetensors(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                                  R"("b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})",
                                  std::string(12, '\0')),
                  "tensors 'a' and 'b' overlap");
}

TEST_F(SafetensorsBad, GapInOffsets) {
  expect_rejected(raw_safetensors(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},)"
                                  R"("b":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}})",
                                  std::string(12, '\0')),
                  "gap in data_offsets: bytes [4, 8] before tensor 'b' belong to no tensor");
}

TEST_F(SafetensorsBad, TrailingBytes) {
  expect_rejected(raw_safetensors("{" + kF32x2 + "}", std::string(12, '\0')),
                  "data area has 12 bytes but tensors end at 8");
}

TEST_F(SafetensorsBad, DuplicateKey) {
  expect_rejected(raw_safetensors("{" + kF32x2 + "," + kF32x2 + "}", std::string(8, '\0')), "duplicate key 't'");
}

TEST_F(SafetensorsBad, MissingFile) {
  std::string path = dir_.path("absent.safetensors");
  expect_error([&] { SafetensorsFile::open(path); }, {path + ": cannot open: No such file or directory"});
}

TEST_F(SafetensorsBad, MissingTensor) {
  std::string path = dir_.path("ok.safetensors");
  write_bytes(path, raw_safetensors("{" + kF32x2 + "}", std::string(8, '\0')));
  SafetensorsFile f = SafetensorsFile::open(path);
  expect_error([&] { f.info("nope"); }, {path + ": tensor 'nope' not found"});
}

// The parser is a pure function over bytes: random corruption must give a value or an Error, never
// a crash or another exception type (a cheap stand-in for the libFuzzer target).
TEST(SafetensorsFuzz, CorruptedBytesNeverCrash) {
  std::string good = raw_safetensors(
      R"({"__metadata__":{"k":"v"},"a":{"dtype":"BF16","shape":[2,2],"data_offsets":[0,8]},)"
      R"("b":{"dtype":"I64","shape":[1],"data_offsets":[8,16]}})",
      std::string(16, '\x11'));
  std::mt19937 rng(42);
  int accepted = 0;
  for (int iter = 0; iter < 3000; ++iter) {
    std::string s = good;
    int edits = 1 + static_cast<int>(rng() % 4);
    for (int e = 0; e < edits; ++e) s[rng() % s.size()] = static_cast<char>(rng() & 0xff);
    if (rng() % 5 == 0) s.resize(rng() % s.size());
    try {
      parse_safetensors_header(reinterpret_cast<const uint8_t*>(s.data()), s.size(), "fuzz");
      ++accepted;
    } catch (const Error& e) {
      ASSERT_EQ(std::string(e.what()).rfind("fuzz: ", 0), 0u) << e.what();
    }
  }
  EXPECT_LT(accepted, 3000);
}

}  // namespace
}  // namespace linearard::io::test
