// `linearard export` and export/: a random adapter on the tiny GQA llama of make_export_base.py is
// saved as a training checkpoint, exported, and checked against (a) PEFT and (b) transformers by
// check_export.py, which compare with the logits of our DecoderModel running the adapter as a
// separate q/k/v delta (not merged: the merge is what is under test). Plus the refusals (c).
#include <gtest/gtest.h>
#include <stdlib.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <nlohmann/json.hpp>

#include "common/error.h"
#include "io/atomic_file.h"
#include "io/checkpoint.h"
#include "export/adapter_weights.h"
#include "export/export_student.h"
#include "export/student_config.h"
#include "train/adapter_checkpoint.h"
#include "model/projection.h"
#include "model/llama.h"
#include "test_env.h"

namespace {

namespace fs = std::filesystem;
using namespace linearard;
using test_env::run_command;

// The export tolerance of the brief: max |a - b| / max |b| <= 1e-5 (float32 on CPU).
constexpr double kRelTol = 1e-5;

std::string base_dir() { return test_env::fixtures_dir() + "/export/base"; }

double rel_err(const at::Tensor& a, const at::Tensor& b) {
  auto d = (a.to(at::kDouble) - b.to(at::kDouble)).abs().max();
  return (d / b.to(at::kDouble).abs().max()).item<double>();
}

const std::vector<std::string> kQkv = {"q_proj", "k_proj", "v_proj"};
const std::vector<std::string> kAllModules = {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"};

// The adapter applied the way a training forward applies it: x A^T B^T * alpha / r, or x dW^T.
class TestAdapter : public model::ProjectionAdapter {
 public:
  explicit TestAdapter(const train::TrainedAdapter& a) : a_(a) {}
  at::Tensor delta(int64_t layer, model::Projection p, const at::Tensor& x) const override {
    const std::string m = kAllModules[static_cast<size_t>(p)];  // Projection order
    if (std::find(a_.spec.targets.begin(), a_.spec.targets.end(), m) == a_.spec.targets.end())
      return at::Tensor();
    if (!a_.spec.is_lora()) return at::matmul(x, a_.tensors.at(train::qkv_delta_key(layer, m)).t());
    const at::Tensor& A = a_.tensors.at(train::lora_key(layer, m, 'A'));  // (r, C)
    const at::Tensor& B = a_.tensors.at(train::lora_key(layer, m, 'B'));  // (out, r)
    return at::matmul(at::matmul(x, A.t()), B.t()) * (a_.spec.alpha / static_cast<double>(a_.spec.rank));
  }

 private:
  const train::TrainedAdapter& a_;
};

// Random adapter for the fixture's shapes; large enough that every delta changes the logits.
train::TrainedAdapter random_adapter(const model::ModelConfig& c, const std::string& kind,
                                  const std::vector<std::string>& targets = kQkv) {
  at::manual_seed(kind == "lora" ? 7 : 8);
  train::TrainedAdapter a;
  a.spec.kind = kind == "lora" ? "lora" : "full";  // "qkv_delta": --train-qkv full
  a.spec.targets = targets;
  if (kind == "lora") a.spec.rank = 4, a.spec.alpha = 8, a.spec.dropout = 0.05;
  for (int64_t l = 0; l < c.num_hidden_layers; ++l)
    for (const std::string& m : targets) {
      const auto [out, in] = model::projection_shape(c, *model::projection_from_name(m));
      if (kind == "lora") {
        a.tensors[train::lora_key(l, m, 'A')] = at::randn({a.spec.rank, in}) * 0.2;  // (r, in)
        a.tensors[train::lora_key(l, m, 'B')] = at::randn({out, a.spec.rank}) * 0.2;  // (out, r)
      } else {
        a.tensors[train::qkv_delta_key(l, m)] = at::randn({out, c.hidden_size}) * 0.05;    // (out, C)
      }
    }
  return a;
}

model::RopeParams linear_rope(double factor) {
  model::RopeParams r;
  r.type = "linear";
  r.factor = factor;
  return r;
}

class Export : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(fs::exists(base_dir() + "/config.json")) << "fixture missing: " << base_dir();
    std::string tmpl = ::testing::TempDir() + "linearard_export_XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl.data()), nullptr);
    scratch_ = tmpl;
    config_ = model::load_model_config(base_dir());
  }
  void TearDown() override { fs::remove_all(scratch_); }

  std::string path(const std::string& name) const { return (scratch_ / name).string(); }

  test_env::CommandResult linearard(const std::string& args) {
    return run_command(test_env::linearard_bin() + " export " + args);
  }
  // Refusal: non-zero exit, exactly one line "linearard: error: ..." holding every fragment.
  void expect_error(const std::string& args, const std::vector<std::string>& fragments) {
    auto r = linearard(args);
    EXPECT_NE(r.exit_code, 0) << r.output;
    EXPECT_EQ(std::count(r.output.begin(), r.output.end(), '\n'), 1) << "not one line:\n" << r.output;
    EXPECT_EQ(r.output.rfind("linearard: error: ", 0), 0u) << r.output;
    for (const auto& f : fragments) EXPECT_NE(r.output.find(f), std::string::npos) << "no '" << f << "' in " << r.output;
  }

  // (B, T) tokens and the C++ student's logits (B, T, V), saved for check_export.py.
  at::Tensor student_logits(const train::TrainedAdapter& a, const model::RopeParams& rope, const at::Tensor& tokens) {
    auto m = model::DecoderModel::load(base_dir(), at::kFloat, at::kCPU);
    TestAdapter adapter(a);
    auto tables = m.rope_tables_for(rope, tokens.size(1));
    model::ForwardRequest req;
    req.rope = &tables;
    req.adapter = &adapter;
    return m.forward(tokens, req).logits;
  }
  at::Tensor merged_logits(const std::string& dir, const at::Tensor& tokens) {
    auto m = model::DecoderModel::load(dir, at::kFloat, at::kCPU);
    auto tables = m.rope_tables_for(m.config().rope, tokens.size(1));  // the RoPE of its config.json
    model::ForwardRequest req;
    req.rope = &tables;
    return m.forward(tokens, req).logits;
  }
  test_env::CommandResult python_check(const std::string& args) {
    return run_command(test_env::python() + " " + test_env::source_dir() + "/tests/export/check_export.py " + args);
  }

  fs::path scratch_;
  model::ModelConfig config_;
};

TEST_F(Export, LoraAsPeftAndMergedMatchesPeftAndTransformers) {
  const auto adapter = random_adapter(config_, "lora");
  const auto rope = linear_rope(4.0);  // LinearARD's PI student, 64 -> 256 positions
  train::save_adapter_checkpoint(path("ckpt"), adapter, base_dir(), rope);
  // 100KB shards: ~300 KB of weights must come out sharded with an index.
  auto r = linearard("--checkpoint " + path("ckpt") + " --base " + base_dir() + " --out " + path("out") +
                     " --format both --max-shard-size 100KB");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  for (const char* f : {"peft/adapter_config.json", "peft/adapter_model.safetensors", "peft/student_config.json",
                        "peft/README.md", "merged/config.json", "merged/model.safetensors.index.json",
                        "merged/tokenizer.json", "merged/LICENSE", "merged/README.md"})
    EXPECT_TRUE(fs::exists(path("out/") + f)) << f;
  EXPECT_FALSE(fs::exists(path(".out.tmp." + std::to_string(::getpid())))) << "temp dir left behind";
  // The exact bytes earlier builds wrote (adapter.json read by export, adapter_config.json read by
  // PEFT): the AdapterSpec refactor (one JSON form, PEFT spelling only in export/) changes neither.
  auto text_of = [](const std::string& file) {
    std::ifstream in(file, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  };
  EXPECT_EQ(text_of(path("ckpt/adapter.json")),
            "{\n  \"alpha\": 8.0,\n  \"base_model\": \"" + base_dir() + "\",\n  \"dropout\": 0.05,\n"
            "  \"format\": \"linearard.trained_adapter\",\n  \"kind\": \"lora\",\n  \"rank\": 4,\n"
            "  \"student_rope\": {\n    \"factor\": 4.0,\n    \"rope_theta\": 10000.0,\n    \"rope_type\": \"linear\"\n  },\n"
            "  \"target_modules\": [\n    \"q_proj\",\n    \"k_proj\",\n    \"v_proj\"\n  ],\n"
            "  \"tensors\": \"adapter.safetensors\",\n  \"version\": 1\n}\n");
  EXPECT_EQ(text_of(path("out/peft/adapter_config.json")),
            "{\n  \"alpha_pattern\": {},\n  \"base_model_name_or_path\": \"" + io::normalized_path(base_dir()) +
                "\",\n  \"bias\": \"none\",\n  \"fan_in_fan_out\": false,\n  \"inference_mode\": true,\n"
                "  \"init_lora_weights\": true,\n  \"layers_pattern\": null,\n  \"layers_to_transform\": null,\n"
                "  \"lora_alpha\": 8,\n  \"lora_dropout\": 0.05,\n  \"modules_to_save\": null,\n"
                "  \"peft_type\": \"LORA\",\n  \"peft_version\": \"0.21.0\",\n  \"r\": 4,\n  \"rank_pattern\": {},\n"
                "  \"revision\": null,\n  \"target_modules\": [\n    \"q_proj\",\n    \"k_proj\",\n    \"v_proj\"\n  ],\n"
                "  \"task_type\": \"CAUSAL_LM\",\n  \"use_dora\": false,\n  \"use_rslora\": false\n}\n");

  at::manual_seed(11);
  const auto tokens = at::randint(config_.vocab_size, {2, 40}, at::kLong);  // (B, T), T < 64 native
  const auto expected = student_logits(adapter, rope, tokens);              // (B, T, V)
  // Our own loader on the merged dir: its config.json must carry the student RoPE.
  const auto merged_cfg = model::load_model_config(path("out/merged"));
  EXPECT_EQ(merged_cfg.rope.type, "linear");
  EXPECT_EQ(merged_cfg.rope.factor.value_or(0), 4.0);
  EXPECT_EQ(merged_cfg.max_position_embeddings, 256);
  const double cpp_err = rel_err(merged_logits(path("out/merged"), tokens), expected);
  EXPECT_LE(cpp_err, kRelTol);
  // Without the adapter the logits must differ, or this test could not see a lost delta.
  model::ForwardRequest plain;
  auto m = model::DecoderModel::load(base_dir(), at::kFloat, at::kCPU);
  auto tables = m.rope_tables_for(rope, tokens.size(1));
  plain.rope = &tables;
  EXPECT_GT(rel_err(m.forward(tokens, plain).logits, expected), 1e-2);

  io::save_tensors(path("expected.safetensors"), {{"tokens", tokens}, {"logits", expected}});
  auto py = python_check("logits --base " + base_dir() + " --expected " + path("expected.safetensors") +
                         " --peft " + path("out/peft") + " --merged " + path("out/merged") + " --expect-sharded");
  EXPECT_EQ(py.exit_code, 0) << py.output;
  std::printf("C++ merged vs C++ student: rel err %.2e\n%s", cpp_err, py.output.c_str());
}

// LoRA beyond q/k/v (--lora-targets): o_proj and the MLP projections, each with its own (out, in).
TEST_F(Export, LoraOnAllProjectionsMatchesPeftAndTransformers) {
  const std::vector<std::string> targets = {"q_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"};
  const auto adapter = random_adapter(config_, "lora", targets);
  const auto rope = linear_rope(4.0);
  train::save_adapter_checkpoint(path("ckpt"), adapter, base_dir(), rope);
  const auto back = train::load_adapter_checkpoint(path("ckpt"));  // adapter.json keeps the targets
  EXPECT_EQ(back.adapter.spec.targets, targets);
  EXPECT_EQ(back.adapter.tensors.size(), adapter.tensors.size());
  auto r = linearard("--checkpoint " + path("ckpt") + " --base " + base_dir() + " --out " + path("out") +
                     " --format both");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  io::CheckpointWeights peft(path("out/peft/adapter_model.safetensors"));
  EXPECT_EQ(peft.names().size(), adapter.tensors.size());
  EXPECT_EQ(peft.info(train::lora_key(1, "down_proj", 'A')).shape, (std::vector<int64_t>{4, config_.intermediate_size}));

  at::manual_seed(13);
  const auto tokens = at::randint(config_.vocab_size, {2, 40}, at::kLong);  // (B, T)
  const auto expected = student_logits(adapter, rope, tokens);              // (B, T, V)
  EXPECT_LE(rel_err(merged_logits(path("out/merged"), tokens), expected), kRelTol);
  // The o/MLP deltas matter: dropping them changes the logits.
  auto qv_only = adapter;
  qv_only.spec.targets = {"q_proj", "v_proj"};
  EXPECT_GT(rel_err(student_logits(qv_only, rope, tokens), expected), 1e-2);

  io::save_tensors(path("expected.safetensors"), {{"tokens", tokens}, {"logits", expected}});
  std::string list;
  for (const auto& m : targets) list += (list.empty() ? "" : ",") + m;
  auto py = python_check("logits --base " + base_dir() + " --expected " + path("expected.safetensors") +
                         " --peft " + path("out/peft") + " --merged " + path("out/merged") + " --targets " + list);
  EXPECT_EQ(py.exit_code, 0) << py.output;
  std::printf("%s", py.output.c_str());
}

TEST_F(Export, QkvDeltaMergedMatchesTransformers) {
  const auto adapter = random_adapter(config_, "qkv_delta");
  const auto rope = linear_rope(2.0);
  exporter::ExportRequest req;
  req.out_dir = path("merged");
  req.base_model_dir = base_dir();
  exporter::write_merged_checkpoint(req, adapter, rope);
  EXPECT_TRUE(fs::exists(path("merged/model.safetensors")));  // 5GB default: one file, no index

  at::manual_seed(12);
  const auto tokens = at::randint(config_.vocab_size, {1, 48}, at::kLong);  // (B, T)
  const auto expected = student_logits(adapter, rope, tokens);
  EXPECT_LE(rel_err(merged_logits(path("merged"), tokens), expected), kRelTol);
  io::save_tensors(path("expected.safetensors"), {{"tokens", tokens}, {"logits", expected}});
  auto py = python_check("logits --base " + base_dir() + " --expected " + path("expected.safetensors") +
                         " --merged " + path("merged"));
  EXPECT_EQ(py.exit_code, 0) << py.output;
  std::printf("%s", py.output.c_str());

  // Full q/k/v deltas have no PEFT form.
  train::save_adapter_checkpoint(path("ckpt"), adapter, base_dir(), rope);
  expect_error("--checkpoint " + path("ckpt") + " --out " + path("peft") + " --format peft",
               {"--format", "only LoRA adapters", "qkv_delta"});
  EXPECT_FALSE(fs::exists(path("peft")));
}

TEST_F(Export, StudentConfigsReadBackByTransformers) {
  // yarn: L0 explicit, max_position_embeddings = L0 x factor; dynamic: unchanged (its math uses it).
  struct Case {
    std::string name, rope_json;
    int64_t max_pos;
  };
  const std::vector<Case> cases = {
      {"yarn", R"({"rope_type": "yarn", "factor": 4.0, "beta_fast": 16})", 256},
      {"dynamic", R"({"rope_type": "dynamic", "factor": 2.0})", 64},
      {"llama3", R"({"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                    "original_max_position_embeddings": 32})", 256},
  };
  std::string pairs;
  for (const auto& c : cases) {
    const auto rope = model::parse_rope_override(c.rope_json, config_, "test");
    const auto j = exporter::student_config_json(config_, rope);
    EXPECT_EQ(j["max_position_embeddings"], c.max_pos) << c.name;
    EXPECT_EQ(j["rope_theta"], 10000.0) << c.name;
    EXPECT_FALSE(j["rope_scaling"].contains("rope_theta")) << c.name;
    EXPECT_EQ(j["hidden_size"], 64) << c.name;  // other fields kept
    std::ofstream(path(c.name + ".json")) << j.dump(2);
    nlohmann::json want = {{"rope_parameters", rope.to_json()}, {"max_position_embeddings", c.max_pos}};
    std::ofstream(path(c.name + "_expected.json")) << want.dump();
    // Our parser reads it back to the same RoPE.
    EXPECT_EQ(model::parse_model_config(j.dump(), c.name).rope.to_json(), rope.to_json()) << c.name;
    pairs += " " + path(c.name + ".json") + " " + path(c.name + "_expected.json");
  }
  auto py = python_check("config" + pairs);  // one Python start for all cases
  EXPECT_EQ(py.exit_code, 0) << py.output;
  std::printf("%s", py.output.c_str());
}

TEST_F(Export, Bf16BaseStaysBf16) {
  // A bf16 copy of the base: the merge must happen in float32 and round once to bf16.
  io::CheckpointWeights src(base_dir());
  std::vector<std::pair<std::string, at::Tensor>> bf16;
  for (const auto& name : src.names()) bf16.emplace_back(name, src.get(name).to(at::kBFloat16));
  fs::create_directories(path("base16"));
  io::save_tensors(path("base16/model.safetensors"), bf16);
  auto cfg = config_.raw;
  cfg["dtype"] = "bfloat16";
  std::ofstream(path("base16/config.json")) << cfg.dump(2);

  const auto adapter = random_adapter(config_, "lora");
  exporter::ExportRequest req;
  req.out_dir = path("merged16");
  req.base_model_dir = path("base16");
  exporter::write_merged_checkpoint(req, adapter, linear_rope(4.0));
  io::CheckpointWeights merged(path("merged16"));
  ASSERT_EQ(merged.names(), src.names());
  for (const auto& [name, w] : bf16) {
    const at::Tensor m = merged.get(name);
    ASSERT_EQ(m.scalar_type(), at::kBFloat16) << name;
    if (name.find("self_attn.o_proj") != std::string::npos || name.find("self_attn") == std::string::npos) {
      EXPECT_TRUE(at::equal(m, w)) << name << " changed";
      continue;
    }
    // Independent float64 reference: W + B A alpha/r, then one bf16 rounding (relative 2^-9).
    const std::string layer = name.substr(0, name.find(".self_attn.")).substr(std::string("model.layers.").size());
    const std::string module = name.substr(name.find(".self_attn.") + 11, 6);
    const auto& A = adapter.tensors.at(train::lora_key(std::stoll(layer), module, 'A'));
    const auto& B = adapter.tensors.at(train::lora_key(std::stoll(layer), module, 'B'));
    const at::Tensor ref = w.to(at::kDouble) + at::matmul(B.to(at::kDouble), A.to(at::kDouble)) * 2.0;
    const double worst = ((m.to(at::kDouble) - ref).abs() / ref.abs().clamp_min(1e-3)).max().item<double>();
    EXPECT_LE(worst, std::ldexp(1.0, -8)) << name;
    EXPECT_FALSE(at::equal(m, w)) << name << " unchanged";
  }
}

TEST_F(Export, Refusals) {
  const auto adapter = random_adapter(config_, "lora");
  const auto rope = linear_rope(4.0);
  train::save_adapter_checkpoint(path("ckpt"), adapter, base_dir(), rope);
  // A private copy of the base: refusals must leave it untouched and uncluttered.
  fs::create_directories(path("models"));
  fs::copy(base_dir(), path("models/base"), fs::copy_options::recursive);
  const std::string base = path("models/base");
  auto listing = [](const std::string& d) {
    std::vector<std::string> names;
    for (const auto& e : fs::directory_iterator(d)) names.push_back(e.path().filename().string());
    std::sort(names.begin(), names.end());
    return names;
  };
  const auto base_files = listing(base);
  const std::string ck = "--checkpoint " + path("ckpt") + " --base " + base;

  expect_error(ck + " --out " + base, {"--out", "inside it", "refusing"});
  expect_error(ck + " --out " + base + "/student", {"--out", "inside it", "refusing"});
  expect_error(ck + " --out " + base + "/../base/x --overwrite", {"--out", "inside it"});
  expect_error(ck + " --out " + path("models") + " --overwrite", {"--out", "contains the base model"});
  expect_error(ck + " --out " + scratch_.string() + " --overwrite", {"--out", "contains"});
  EXPECT_EQ(listing(base), base_files);
  EXPECT_EQ(listing(path("models")), std::vector<std::string>{"base"});

  fs::create_directories(path("busy"));
  std::ofstream(path("busy/keep.txt")) << "user data";
  expect_error(ck + " --out " + path("busy"), {"--out", "busy", "not empty", "--overwrite"});
  EXPECT_TRUE(fs::exists(path("busy/keep.txt")));
  expect_error(ck + " --out " + path("busy") + " --format lora", {"--format", "unknown format 'lora'"});
  expect_error(ck + " --out " + path("busy") + " --max-shard-size 5XB", {"--max-shard-size", "5XB"});
  expect_error("--checkpoint " + path("nothing") + " --out " + path("o2"), {"nothing", "adapter.json"});

  // --overwrite replaces the directory as a whole: the old content is gone, no temp dir is left.
  auto r = linearard(ck + " --out " + path("busy") + " --format peft --overwrite");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_FALSE(fs::exists(path("busy/keep.txt")));
  EXPECT_TRUE(fs::exists(path("busy/adapter_model.safetensors")));
  for (const auto& name : listing(scratch_.string())) EXPECT_EQ(name.find(".busy."), std::string::npos) << name;
}

TEST_F(Export, CheckpointRoundTripAndValidation) {
  const auto adapter = random_adapter(config_, "lora");
  model::RopeParams rope = linear_rope(8.0);
  train::save_adapter_checkpoint(path("ckpt"), adapter, "/models/base", rope);
  const auto back = train::load_adapter_checkpoint(path("ckpt"));
  EXPECT_EQ(back.adapter.spec.kind, "lora");
  EXPECT_EQ(back.adapter.spec.rank, 4);
  EXPECT_EQ(back.adapter.spec.alpha, 8.0);
  EXPECT_EQ(back.adapter.spec.dropout, 0.05);
  EXPECT_EQ(back.base_model_dir, "/models/base");
  EXPECT_EQ(back.student_rope, rope.to_json());
  ASSERT_EQ(back.adapter.tensors.size(), adapter.tensors.size());
  for (const auto& [name, t] : adapter.tensors) EXPECT_TRUE(at::equal(back.adapter.tensors.at(name), t)) << name;
  exporter::validate_adapter(back.adapter, config_, "ckpt");

  auto expect_invalid = [&](train::TrainedAdapter a, const std::string& fragment) {
    try {
      exporter::validate_adapter(a, config_, "ckpt");
      ADD_FAILURE() << "accepted; expected '" << fragment << "'";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(fragment), std::string::npos) << e.what();
    }
  };
  auto a = adapter;
  a.tensors[train::lora_key(1, "k_proj", 'B')] = at::zeros({64, 4});  // k is GQA: (Hk*D = 32, r)
  expect_invalid(a, "'base_model.model.model.layers.1.self_attn.k_proj.lora_B.weight' has shape [64, 4], expected [32, 4]");
  a = adapter;
  a.tensors.erase(train::lora_key(0, "v_proj", 'A'));
  expect_invalid(a, "missing tensor 'base_model.model.model.layers.0.self_attn.v_proj.lora_A.weight'");
  a = adapter;
  a.tensors[train::lora_key(2, "q_proj", 'A')] = at::zeros({4, 64});
  expect_invalid(a, "unexpected tensor");
  a = adapter;
  a.spec.targets = {"q_proj", "lm_head"};
  expect_invalid(a, "'lm_head' is not one of q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj");
  a = adapter;
  a.spec.targets = {"q_proj", "k_proj", "v_proj", "o_proj"};
  expect_invalid(a, "missing tensor 'base_model.model.model.layers.0.self_attn.o_proj.lora_A.weight'");
  auto d = random_adapter(config_, "qkv_delta");
  d.spec.targets = {"q_proj", "up_proj"};
  expect_invalid(d, "'up_proj' of a qkv_delta adapter is not one of q_proj, k_proj, v_proj");
  a = adapter;
  a.tensors[train::lora_key(0, "q_proj", 'A')] = a.tensors[train::lora_key(0, "q_proj", 'A')].clone();  // shared storage
  a.tensors[train::lora_key(0, "q_proj", 'A')][0][0] = NAN;
  expect_invalid(a, "NaN");

  EXPECT_EQ(exporter::parse_size_bytes("5GB", "f"), 5'000'000'000ULL);
  EXPECT_EQ(exporter::parse_size_bytes("100KB", "f"), 100'000ULL);
  EXPECT_EQ(exporter::parse_size_bytes("2MiB", "f"), 2ULL << 20);
  EXPECT_EQ(exporter::parse_size_bytes("12345", "f"), 12345ULL);
  EXPECT_THROW(exporter::parse_size_bytes("-1GB", "f"), Error);
}

}  // namespace
