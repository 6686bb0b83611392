// Bad inputs to the model loader, end to end through `linearard inspect`: each gives one line
// "linearard: error: <file or flag>: <problem>" and a non-zero exit (issue 2's list).
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "test_env.h"

namespace {

namespace fs = std::filesystem;
using linearard::test_env::run_command;

class ModelErrors : public ::testing::Test {
 protected:
  // The parity case whose model each test copies and breaks.
  virtual std::string parity_case() const { return "llama_default_mha"; }
  void SetUp() override {
    source_ = linearard::test_env::fixtures_dir() + "/parity/" + parity_case() + "/model";
    ASSERT_TRUE(fs::exists(source_ + "/config.json")) << "fixture missing: " << source_;
    dir_ = fs::temp_directory_path() / ("linearard_model_errors_" + std::to_string(::getpid()) + "_" +
                                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    fs::copy(source_, dir_, fs::copy_options::recursive);
  }
  void TearDown() override { fs::remove_all(dir_); }

  nlohmann::json config() {
    std::ifstream in(dir_ / "config.json");
    return nlohmann::json::parse(in);
  }
  void write_config(const nlohmann::json& j) { std::ofstream(dir_ / "config.json") << j.dump(1); }
  std::string weights() { return (dir_ / "model.safetensors").string(); }
  std::string read_weights() {
    std::ifstream in(weights(), std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(in), {});
  }
  void write_weights(const std::string& bytes) { std::ofstream(weights(), std::ios::binary) << bytes; }
  // Rewrites the safetensors header (the JSON) keeping the data area as is.
  void edit_header(const std::function<void(nlohmann::json&)>& edit) {
    std::string bytes = read_weights();
    uint64_t n = 0;
    std::memcpy(&n, bytes.data(), 8);
    auto header = nlohmann::json::parse(bytes.substr(8, n));
    edit(header);
    std::string text = header.dump();
    text.resize((text.size() + 7) / 8 * 8, ' ');
    uint64_t m = text.size();
    std::string out(reinterpret_cast<const char*>(&m), 8);
    write_weights(out + text + bytes.substr(8 + n));
  }

  // Runs `linearard inspect` and checks the one-line error contains every fragment.
  void expect_error(const std::vector<std::string>& fragments, const std::string& extra_flags = "") {
    auto r = run_command(linearard::test_env::linearard_bin() + " inspect " + dir_.string() +
                         " --forward-tokens 4 " + extra_flags);
    EXPECT_NE(r.exit_code, 0) << r.output;
    ASSERT_EQ(std::count(r.output.begin(), r.output.end(), '\n'), 1) << "not one line:\n" << r.output;
    EXPECT_EQ(r.output.rfind("linearard: error: ", 0), 0u) << r.output;
    for (const auto& f : fragments) EXPECT_NE(r.output.find(f), std::string::npos) << "missing '" << f << "' in: " << r.output;
  }

  std::string source_;
  fs::path dir_;
};

TEST_F(ModelErrors, GoodModelInspects) {
  auto r = run_command(linearard::test_env::linearard_bin() + " inspect " + dir_.string() + " --forward-tokens 8");
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("llama: 2 layers"), std::string::npos) << r.output;
}

TEST_F(ModelErrors, MissingConfig) {
  fs::remove(dir_ / "config.json");
  expect_error({dir_.string(), "missing config.json"});
}

TEST_F(ModelErrors, ConfigNotJson) {
  std::ofstream(dir_ / "config.json") << "{\"model_type\": ";
  expect_error({"config.json", "not valid JSON"});
}

TEST_F(ModelErrors, UnknownModelType) {
  auto j = config();
  j["model_type"] = "gpt2";
  write_config(j);
  expect_error({"config.json", "unsupported model_type 'gpt2'"});
}

TEST_F(ModelErrors, UnknownRopeType) {
  auto j = config();
  j["rope_parameters"] = {{"rope_type", "spiral"}, {"rope_theta", 10000.0}};
  write_config(j);
  expect_error({"config.json", "unknown rope_type 'spiral'"});
}

TEST_F(ModelErrors, RopeFactorBelowOne) {
  auto j = config();
  j["rope_parameters"] = {{"rope_type", "linear"}, {"factor", 0.5}, {"rope_theta", 10000.0}};
  write_config(j);
  expect_error({"config.json", "rope factor must be >= 1, got 0.5"});
}

TEST_F(ModelErrors, RopeFactorBelowOneOnTheCommandLine) {
  expect_error({"--rope-scaling", "rope factor must be >= 1"}, "--rope-scaling '{\"rope_type\":\"linear\",\"factor\":0.25}'");
}

TEST_F(ModelErrors, Llama3MissingFields) {
  auto j = config();
  j.erase("rope_parameters");
  j["rope_theta"] = 500000.0;
  j["rope_scaling"] = {{"rope_type", "llama3"}, {"factor", 8.0}, {"high_freq_factor", 4.0}};
  write_config(j);
  expect_error({"config.json", "rope_type 'llama3' requires 'low_freq_factor'"});
}

TEST_F(ModelErrors, LongropeMissingFields) {
  expect_error({"--rope-scaling", "rope_type 'longrope' requires 'long_factor'"},
               "--rope-scaling '{\"rope_type\":\"longrope\",\"short_factor\":[1,1,1,1,1,1,1,1]}'");
}

TEST_F(ModelErrors, LongropeWrongFactorLength) {
  expect_error({"--rope-scaling", "must have head_dim/2 = 8 entries, got 2 and 8"},
               "--rope-scaling '{\"rope_type\":\"longrope\",\"short_factor\":[1,1],\"long_factor\":[1,1,1,1,1,1,1,1]}'");
}

TEST_F(ModelErrors, MissingTensor) {
  edit_header([](nlohmann::json& h) {
    // Dropping the entry leaves its bytes uncovered, which the reader reports first; so rename it.
    h["model.layers.1.mlp.up_proj.weight_renamed"] = h["model.layers.1.mlp.up_proj.weight"];
    h.erase("model.layers.1.mlp.up_proj.weight");
  });
  expect_error({dir_.string(), "tensor 'model.layers.1.mlp.up_proj.weight' not found"});
}

TEST_F(ModelErrors, WrongTensorShape) {
  auto j = config();
  j["intermediate_size"] = 128;  // the checkpoint's MLP is 96 wide
  write_config(j);
  expect_error({dir_.string(), "model.layers.0.mlp.gate_proj.weight", "has shape [96, 64], expected [128, 64]"});
}

TEST_F(ModelErrors, TruncatedSafetensors) {
  std::string bytes = read_weights();
  write_weights(bytes.substr(0, bytes.size() - 100));
  expect_error({"model.safetensors"});
}

TEST_F(ModelErrors, HeaderLengthPastEndOfFile) {
  std::string bytes = read_weights();
  uint64_t huge = bytes.size() + 10;
  std::memcpy(bytes.data(), &huge, 8);
  write_weights(bytes);
  expect_error({"model.safetensors", "exceeds file size"});
}

TEST_F(ModelErrors, HeaderNotJson) {
  std::string bytes = read_weights();
  bytes[8] = '[';
  bytes[9] = '!';
  write_weights(bytes);
  expect_error({"model.safetensors", "JSON"});
}

TEST_F(ModelErrors, OverlappingOffsets) {
  edit_header([](nlohmann::json& h) {
    auto& a = h["model.norm.weight"]["data_offsets"];
    a[0] = a[0].get<int64_t>() - 8;
    a[1] = a[1].get<int64_t>() - 8;
  });
  expect_error({"model.safetensors", "overlap"});
}

TEST_F(ModelErrors, UnknownDtype) {
  edit_header([](nlohmann::json& h) { h["model.norm.weight"]["dtype"] = "F12"; });
  expect_error({"model.safetensors", "F12"});
}

// Qwen3's own fields: head_dim (no hidden_size / heads fallback) and the per-head q/k norm weights.
class Qwen3ModelErrors : public ModelErrors {
 protected:
  std::string parity_case() const override { return "qwen3_gqa_qk_norm"; }
};

TEST_F(Qwen3ModelErrors, GoodModelInspects) {
  auto r = run_command(linearard::test_env::linearard_bin() + " inspect " + dir_.string() + " --forward-tokens 4");
  EXPECT_EQ(r.exit_code, 0) << r.output;
}

TEST_F(Qwen3ModelErrors, MissingHeadDim) {
  auto j = config();
  j.erase("head_dim");
  write_config(j);
  expect_error({"config.json", "missing required field 'head_dim'"});
}

TEST_F(Qwen3ModelErrors, QNormWrongShape) {
  // Same bytes, another shape: the loader must check the (D) shape, not only the size.
  edit_header([](nlohmann::json& h) { h["model.layers.1.self_attn.q_norm.weight"]["shape"] = {2, 12}; });
  expect_error({dir_.string(), "model.layers.1.self_attn.q_norm.weight", "has shape [2, 12], expected [24]"});
}

TEST_F(Qwen3ModelErrors, MissingKNorm) {
  edit_header([](nlohmann::json& h) {
    h["model.layers.0.self_attn.k_norm.weight_renamed"] = h["model.layers.0.self_attn.k_norm.weight"];
    h.erase("model.layers.0.self_attn.k_norm.weight");
  });
  expect_error({dir_.string(), "tensor 'model.layers.0.self_attn.k_norm.weight' not found"});
}

}  // namespace
