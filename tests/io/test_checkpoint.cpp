// CheckpointWeights over HF model directories written by safetensors / huggingface_hub, the
// zero-copy and copy paths, save_tensors round trips, and the errors a user can hit.
#include <ATen/ATen.h>

#include <cmath>

#include "io/checkpoint.h"
#include "io_test_util.h"

namespace linearard::io::test {
namespace {

using nlohmann::json;

// torch's dtype names (str(torch.bfloat16) without "torch.") -> ATen types, independent of the
// code under test's own table.
at::ScalarType torch_dtype(const std::string& name) {
  static const std::map<std::string, at::ScalarType> types = {
      {"bool", at::kBool},       {"uint8", at::kByte},     {"int8", at::kChar},
      {"int16", at::kShort},     {"int32", at::kInt},      {"int64", at::kLong},
      {"float16", at::kHalf},    {"bfloat16", at::kBFloat16}, {"float32", at::kFloat},
      {"float64", at::kDouble},  {"float8_e4m3fn", at::kFloat8_e4m3fn}, {"float8_e5m2", at::kFloat8_e5m2}};
  return types.at(name);
}

std::string tensor_hex(const at::Tensor& t) {
  at::Tensor c = t.contiguous();
  return to_hex(c.data_ptr(), c.nbytes());
}

void expect_matches(const CheckpointWeights& w, const json& tensors) {
  ASSERT_EQ(w.names().size(), tensors.size()) << w.dir();
  for (const auto& [name, want] : tensors.items()) {
    SCOPED_TRACE(w.dir() + " tensor " + name);
    ASSERT_TRUE(w.has(name));
    at::Tensor t = w.get(name);
    EXPECT_EQ(t.scalar_type(), torch_dtype(want["torch_dtype"].get<std::string>()));
    EXPECT_EQ(t.sizes().vec(), want["shape"].get<std::vector<int64_t>>());
    EXPECT_EQ(tensor_hex(t), want["hex"].get<std::string>());
  }
}

TEST(CheckpointWeights, SingleFile) {
  CheckpointWeights w(fixtures_io_dir() + "/single");
  EXPECT_EQ(w.source(), "model.safetensors");
  expect_matches(w, load_manifest()["single"]["tensors"]);
  EXPECT_EQ(w.get("scalar").dim(), 0);
  EXPECT_EQ(w.get("scalar").item<float>(), 3.25f);
  EXPECT_EQ(w.get("empty").numel(), 0);
}

TEST(CheckpointWeights, ShardedWithIndex) {
  CheckpointWeights w(fixtures_io_dir() + "/sharded");
  EXPECT_EQ(w.source(), "model.safetensors.index.json");
  expect_matches(w, load_manifest()["sharded"]["tensors"]);
}

TEST(CheckpointWeights, OnlySafetensorsFileOfAnyName) {
  CheckpointWeights w(fixtures_io_dir() + "/other_name");
  EXPECT_EQ(w.source(), "weights.safetensors");
  EXPECT_EQ(w.names(), std::vector<std::string>{"w"});
  CheckpointWeights file(fixtures_io_dir() + "/other_name/weights.safetensors");  // a file, not a dir
  EXPECT_TRUE(at::equal(file.get("w"), w.get("w")));
}

TEST(CheckpointWeights, AlignedTensorIsZeroCopyAndOutlivesReader) {
  std::string dir = fixtures_io_dir() + "/single";
  at::Tensor t;
  {
    CheckpointWeights w(dir);
    t = w.get("f32.block");
    SafetensorsFile f = SafetensorsFile::open(dir + "/model.safetensors");
    // A separate mapping of the same file: same bytes, and t points into w's mapping, not a copy.
    EXPECT_EQ(tensor_hex(t), to_hex(f.data("f32.block"), f.info("f32.block").nbytes()));
  }
  EXPECT_EQ(t.sizes(), at::IntArrayRef({2, 3, 4}));
  EXPECT_TRUE(std::isfinite(t.sum().item<float>()));  // mapping still alive
}

TEST(CheckpointWeights, ZeroCopyPointsIntoMapping) {
  ScratchDir dir;
  float x[4] = {1, 2, 3, 4};
  write_safetensors(dir.path("model.safetensors"), {{"x", DType::F32, {4}, x, 16}});
  CheckpointWeights w(dir.path());
  at::Tensor t = w.get("x");
  EXPECT_EQ(t.data_ptr<float>()[2], 3.0f);
  // Reading the same tensor twice gives views of one mapping, not copies.
  EXPECT_EQ(w.get("x").data_ptr(), t.data_ptr());
}

TEST(CheckpointWeights, MisalignedTensorIsCopied) {
  ScratchDir dir;
  // Header of 61 bytes: the data area starts at byte 69, so the F32 tensor is not 4-byte aligned.
  std::string header = R"({"x":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})";
  header.resize(61, ' ');
  float x[2] = {1.5f, -2.0f};
  write_bytes(dir.path("model.safetensors"), raw_safetensors(header, std::string(reinterpret_cast<char*>(x), 8)));
  CheckpointWeights w(dir.path());
  at::Tensor t = w.get("x");
  EXPECT_EQ(reinterpret_cast<uintptr_t>(t.data_ptr()) % 4, 0u);
  EXPECT_EQ(t[0].item<float>(), 1.5f);
  EXPECT_EQ(t[1].item<float>(), -2.0f);
}

TEST(CheckpointWeights, MissingTensor) {
  std::string dir = fixtures_io_dir() + "/single";
  CheckpointWeights w(dir);
  expect_error([&] { w.get("model.layers.99.mlp.up_proj.weight"); },
               {dir + ": tensor 'model.layers.99.mlp.up_proj.weight' not found (model.safetensors)"});
}

TEST(CheckpointWeights, WrongShape) {
  std::string dir = fixtures_io_dir() + "/single";
  CheckpointWeights w(dir);
  EXPECT_EQ(w.get("model.embed_tokens.weight", {11, 8}).size(0), 11);
  expect_error([&] { w.get("model.embed_tokens.weight", {8, 11}); },
               {dir + ": tensor 'model.embed_tokens.weight' has shape [11, 8], expected [8, 11]"});
}

TEST(CheckpointWeights, NoWeights) {
  ScratchDir dir;
  write_bytes(dir.path("config.json"), "{}");
  expect_error([&] { CheckpointWeights w(dir.path()); }, {dir.path() + ": no *.safetensors weights found"});
  expect_error([&] { CheckpointWeights w(dir.path("absent")); }, {dir.path("absent") + ": no such directory or file"});
}

TEST(CheckpointWeights, SeveralFilesWithoutIndex) {
  ScratchDir dir;
  float x[1] = {1};
  write_safetensors(dir.path("a.safetensors"), {{"a", DType::F32, {1}, x, 4}});
  write_safetensors(dir.path("b.safetensors"), {{"b", DType::F32, {1}, x, 4}});
  expect_error([&] { CheckpointWeights w(dir.path()); },
               {dir.path() + ": 2 *.safetensors files but no model.safetensors.index.json"});
}

// A two-shard directory written with our writer and a hand-made index.
class CheckpointWeightsBadIndex : public ::testing::Test {
 protected:
  void SetUp() override {
    write_safetensors(dir_.path("model-00001-of-00002.safetensors"), {{"a", DType::F32, {2}, x_, 8}});
    write_safetensors(dir_.path("model-00002-of-00002.safetensors"), {{"b", DType::F32, {2}, x_, 8}});
  }
  void write_index(const std::string& text) { write_bytes(dir_.path("model.safetensors.index.json"), text); }
  ScratchDir dir_;
  float x_[2] = {1, 2};
  const std::string index_ = "/model.safetensors.index.json";
};

TEST_F(CheckpointWeightsBadIndex, ValidIndexLoads) {
  write_index(R"({"metadata":{"total_size":16},"weight_map":{"a":"model-00001-of-00002.safetensors",)"
              R"("b":"model-00002-of-00002.safetensors"}})");
  CheckpointWeights w(dir_.path());
  EXPECT_EQ(w.get("b")[1].item<float>(), 2.0f);
}

TEST_F(CheckpointWeightsBadIndex, MissingShardFile) {
  write_index(R"({"weight_map":{"a":"model-00001-of-00002.safetensors","c":"model-00003-of-00003.safetensors"}})");
  expect_error([&] { CheckpointWeights w(dir_.path()); },
               {dir_.path() + index_ + ": ", "shard 'model-00003-of-00003.safetensors' (for tensor 'c') does not exist"});
}

TEST_F(CheckpointWeightsBadIndex, TensorNotInItsShard) {
  write_index(R"({"weight_map":{"a":"model-00002-of-00002.safetensors"}})");
  expect_error([&] { CheckpointWeights w(dir_.path()); },
               {dir_.path() + index_ + ": ", "tensor 'a' is mapped to 'model-00002-of-00002.safetensors' but"});
}

TEST_F(CheckpointWeightsBadIndex, NotJson) {
  write_index(R"({"weight_map": {"a": )");
  expect_error([&] { CheckpointWeights w(dir_.path()); }, {dir_.path() + index_ + ": not valid JSON"});
}

TEST_F(CheckpointWeightsBadIndex, NoWeightMap) {
  write_index(R"({"metadata": {}})");
  expect_error([&] { CheckpointWeights w(dir_.path()); }, {dir_.path() + index_ + ": has no \"weight_map\" object"});
}

TEST(CheckpointWeights, SaveTensorsRoundTrip) {
  ScratchDir dir;
  at::manual_seed(0);
  std::vector<std::pair<std::string, at::Tensor>> ts = {
      {"w.t", at::randn({5, 3}).t()},  // non-contiguous
      {"bf16", at::randn({4, 6}).to(at::kBFloat16)},
      {"half", at::randn({3}).to(at::kHalf)},
      {"ids", at::arange(10, at::kLong)},
      {"mask", at::rand({7}) > 0.5},
      {"slice", at::randn({6, 6}).slice(0, 2, 4)},  // storage offset
      {"scalar", at::scalar_tensor(2.5)},
      {"empty", at::empty({0, 2})},
  };
  save_tensors(dir.path("one.safetensors"), ts, {{"format", "pt"}});
  save_tensors(dir.path("out"), ts, {{"format", "pt"}}, 64);  // sharded: several files + index
  ASSERT_TRUE(fs::exists(dir.path("out/model.safetensors.index.json")));

  fs::create_directories(dir.path("single"));
  fs::rename(dir.path("one.safetensors"), dir.path("single/model.safetensors"));
  for (const std::string& sub : {"single", "out"}) {
    CheckpointWeights w(dir.path(sub));
    ASSERT_EQ(w.names().size(), ts.size());
    for (const auto& [name, t] : ts) {
      at::Tensor got = w.get(name);
      EXPECT_EQ(got.scalar_type(), t.scalar_type()) << name;
      EXPECT_TRUE(at::equal(got, t)) << sub << " " << name;
    }
  }
  EXPECT_EQ(SafetensorsFile::open(dir.path("single/model.safetensors")).metadata().at("format"), "pt");
}

TEST(CheckpointWeights, SaveRejectsComplex) {
  ScratchDir dir;
  expect_error([&] { save_tensors(dir.path("c.safetensors"), {{"z", at::zeros({2}, at::kComplexFloat)}}); },
               {"tensor 'z'", "cannot be stored in safetensors"});
}

}  // namespace
}  // namespace linearard::io::test
