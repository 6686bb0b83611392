// --lora-targets: parsing and validation of the option, checkpoint names (unchanged for the default
// q/k/v, PEFT keys and shapes for o_proj and the MLP), and a CLI run from a JSON config through
// `linearard export --checkpoint` to a PEFT adapter that lists exactly the trained modules.
#include <gtest/gtest.h>

#include <filesystem>
#include <functional>
#include <fstream>
#include <nlohmann/json.hpp>

#include "common/error.h"
#include "io/checkpoint.h"
#include "model/model_config.h"
#include "train/tasks.h"
#include "train/train_options.h"
#include "train_test_util.h"

namespace {

using namespace linearard;
using train_test::fixture;

const std::vector<std::string> kDefault = {"q_proj", "k_proj", "v_proj"};
const std::vector<std::string> kAll = {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"};

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST(LoraTargets, ParseNamesShortFormsAllAndOrder) {
  EXPECT_EQ(train::parse_lora_targets({"q_proj,k_proj,v_proj"}), kDefault);
  EXPECT_EQ(train::parse_lora_targets({"all"}), kAll);
  EXPECT_EQ(train::parse_lora_targets({"down,o", "q"}), (std::vector<std::string>{"q_proj", "o_proj", "down_proj"}));
  EXPECT_EQ(train::parse_lora_targets({"up_proj, gate ,up"}), (std::vector<std::string>{"gate_proj", "up_proj"}));
  EXPECT_EQ(train::parse_lora_targets({"v,all"}), kAll);
  const std::string bad = error_of([] { train::parse_lora_targets({"q,x"}); });
  EXPECT_EQ(bad.rfind("lora-targets: unknown module 'x' in 'q,x'", 0), 0u) << bad;
  EXPECT_NE(error_of([] { train::parse_lora_targets({"q,,k"}); }).find("unknown module ''"), std::string::npos);
  EXPECT_NE(error_of([] { train::parse_lora_targets({"lm_head"}); }).find("'lm_head'"), std::string::npos);
  EXPECT_NE(error_of([] { train::parse_lora_targets({}); }).find("no modules given"), std::string::npos);
}

TEST(LoraTargets, OptionsJsonOnlyWhenNotDefaultAndValidation) {
  train::TrainOptions o;
  o.command = "distill";
  o.run.out_dir = "out";
  o.run.data = {"d.bin"};
  o.run.model_dir = "m";
  EXPECT_FALSE(train::to_json(o).contains("lora-targets"));  // older runs' options hash unchanged
  train::validate(o);
  o.adapter.targets = {"q_proj", "o_proj", "down_proj"};
  EXPECT_EQ(train::to_json(o)["lora-targets"], "q_proj,o_proj,down_proj");
  train::validate(o);
  o.adapter.targets = {"o_proj", "q_proj"};  // not canonical: only parse_lora_targets' output is valid
  EXPECT_EQ(error_of([&] { train::validate(o); }).find("lora-targets: "), 0u);
  o.adapter.targets = {"q_proj", "o_proj"};
  o.adapter.kind = "full";
  EXPECT_EQ(error_of([&] { train::validate(o); }),
            "lora-targets: 'q_proj,o_proj' needs --train-qkv lora (--train-qkv full trains q_proj, k_proj, "
            "v_proj only)");
}

TEST(LoraTargets, DefaultKeepsCheckpointNamesAndAllAddsPeftKeys) {
  const auto config = model::load_model_config(fixture("llama_gqa"));
  train::TrainOptions o;
  o.adapter.rank = 4;
  const auto def = train::make_adapter(o, config, at::kCPU);
  std::vector<std::string> expected;
  for (int64_t l = 0; l < config.num_hidden_layers; ++l)
    for (const char* m : {"q_proj", "k_proj", "v_proj"})
      for (const char* ab : {"A", "B"})
        expected.push_back("base_model.model.model.layers." + std::to_string(l) + ".self_attn." + m + ".lora_" +
                           ab + ".weight");
  std::vector<std::string> names;
  for (const auto& [name, t] : def->named_parameters()) names.push_back(name);
  EXPECT_EQ(names, expected);

  o.adapter.targets = kAll;
  const auto all = train::make_adapter(o, config, at::kCPU);
  const auto& p = all->named_parameters();
  ASSERT_EQ(p.size(), size_t(config.num_hidden_layers * 14));
  const int64_t C = config.hidden_size, F = config.intermediate_size;
  const int64_t HD = config.num_attention_heads * config.head_dim;
  // Layer 0 in Projection order, A then B: (r, in) and (out, r).
  const std::vector<std::pair<std::string, std::vector<int64_t>>> layer0 = {
      {"self_attn.o_proj.lora_A.weight", {4, HD}}, {"self_attn.o_proj.lora_B.weight", {C, 4}},
      {"mlp.gate_proj.lora_A.weight", {4, C}},     {"mlp.gate_proj.lora_B.weight", {F, 4}},
      {"mlp.up_proj.lora_A.weight", {4, C}},       {"mlp.up_proj.lora_B.weight", {F, 4}},
      {"mlp.down_proj.lora_A.weight", {4, F}},     {"mlp.down_proj.lora_B.weight", {C, 4}}};
  for (size_t i = 0; i < layer0.size(); ++i) {
    EXPECT_EQ(p[6 + i].first, "base_model.model.model.layers.0." + layer0[i].first);
    EXPECT_EQ(p[6 + i].second.sizes().vec(), layer0[i].second) << p[6 + i].first;
  }
  // Layer 0's q/k/v start as the default adapter's (one generator, drawn in layer/projection order).
  for (size_t i = 0; i < 6; ++i) EXPECT_TRUE(at::equal(p[i].second, def->named_parameters()[i].second));
  EXPECT_EQ(all->layer_parameters(1).size(), 14u);
}

TEST(LoraTargets, DistillFromConfigThenExportListsTheTrainedModules) {
  const std::string in = train_test::fresh_dir("targets_inputs");
  const std::string out = train_test::fresh_dir("targets_run");
  const std::string exp = train_test::fresh_dir("targets_export") + "/peft";
  const nlohmann::json config = {
      {"model", fixture("llama_gqa")}, {"rope-scaling", {{"rope_type", "linear"}, {"factor", 4.0}}},
      {"data", {fixture("corpus.json")}}, {"out", out}, {"steps", 2}, {"context", 24}, {"lora-rank", 4},
      {"lora-alpha", 8}, {"lora-dropout", 0.1}, {"device", "cpu"}, {"checkpoint-every", 0}, {"lr", 1e-2},
      {"warmup-steps", 0}, {"logits-kl-weight", 1.0}, {"lora-targets", {"down", "o"}}};
  std::ofstream(in + "/config.json") << config.dump();
  auto r = test_env::run_command(test_env::linearard_bin() + " distill --config " + in + "/config.json");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("\"lora-targets\":\"o_proj,down_proj\""), std::string::npos) << r.output;

  io::CheckpointWeights final_weights(out + "/final/trainable.safetensors");
  EXPECT_EQ(final_weights.names().size(), 3u * 4u);
  EXPECT_TRUE(final_weights.has("base_model.model.model.layers.2.mlp.down_proj.lora_B.weight"));
  EXPECT_FALSE(final_weights.has("base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight"));
  nlohmann::json manifest;
  std::ifstream(out + "/final/adapter.json") >> manifest;
  EXPECT_EQ(manifest["target_modules"], (std::vector<std::string>{"o_proj", "down_proj"}));

  r = test_env::run_command(test_env::linearard_bin() + " export --checkpoint " + out + "/final --out " + exp +
                            " --format peft");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  nlohmann::json peft;
  std::ifstream(exp + "/adapter_config.json") >> peft;
  EXPECT_EQ(peft["target_modules"], (std::vector<std::string>{"o_proj", "down_proj"}));
  io::CheckpointWeights exported(exp + "/adapter_model.safetensors");
  EXPECT_EQ(exported.names().size(), 12u);

  // --train-qkv full has no other targets: one line naming the flag.
  r = test_env::run_command(test_env::linearard_bin() + " distill --config " + in + "/config.json --train-qkv full"
                            " --out " + train_test::fresh_dir("targets_full"));
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_NE(r.output.find("linearard: error: --lora-targets: 'o_proj,down_proj' needs --train-qkv lora"),
            std::string::npos)
      << r.output;
}

}  // namespace
