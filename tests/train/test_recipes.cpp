// `linearard distill --recipe NAME`: a recipe's values apply below the command line and --config,
// the default recipe is `restore`, and `paper` gives the reference ARD run's hyper-parameters
// (src/train/recipes.cpp). Read back from the "options: {...}" line the trainer prints at start.
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "train_test_util.h"

namespace {

using linearard::train_test::fixture;
using linearard::train_test::fresh_dir;

// Runs a one-step distill with `extra` flags and returns the options it printed.
nlohmann::json options_of(const std::string& name, const std::string& extra) {
  return linearard::train_test::one_step_distill_options(fresh_dir("recipe_" + name) + "/run", extra);
}

TEST(Recipes, DefaultIsRestore) {
  const auto o = options_of("default", "");
  EXPECT_DOUBLE_EQ(o["lr"].get<double>(), 3e-4) << o.dump();
  EXPECT_EQ(o["warmup-steps"].get<int64_t>(), 16);
  EXPECT_DOUBLE_EQ(o["hidden-weight"].get<double>(), 10.0);
  EXPECT_DOUBLE_EQ(o["logits-kl-weight"].get<double>(), 1.0);
  EXPECT_EQ(o["logits-kl-last"].get<int64_t>(), 0);
  EXPECT_DOUBLE_EQ(o["lora-dropout"].get<double>(), 0.0);
  EXPECT_EQ(o["lora-targets"].get<std::string>(), "q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj");
}

// Full deltas exist for q/k/v only: the recipe's LoRA targets give way to --train-qkv full (flag or
// config) instead of turning the run into an error; an explicit --lora-targets still is one.
TEST(Recipes, FullDeltasKeepTheDefaultTargets) {
  const auto o = options_of("full", "--train-qkv full");
  EXPECT_EQ(o["train-qkv"].get<std::string>(), "full") << o.dump();
  EXPECT_FALSE(o.contains("lora-targets")) << o.dump();  // written only when not q/k/v
  const std::string dir = fresh_dir("recipe_full_cfgfile");
  std::ofstream(dir + "/c.json") << R"({"train-qkv": "full"})";
  EXPECT_FALSE(options_of("full_config", "--config " + dir + "/c.json").contains("lora-targets"));
  const std::string out = fresh_dir("recipe_full_targets");
  const auto r = linearard::test_env::run_command(
      linearard::test_env::linearard_bin() + " distill --model " + fixture("llama_mha") + " --data " +
      fixture("corpus.bin") + " --out " + out + "/run --rope-scaling '{\"rope_type\":\"linear\",\"factor\":4.0}'" +
      " --device cpu --train-qkv full --lora-targets all 2>&1");
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_NE(r.output.find("--lora-targets"), std::string::npos) << r.output;
}

TEST(Recipes, CommandLineAndConfigBeatTheRecipe) {
  const std::string dir = fresh_dir("recipe_config");
  std::ofstream(dir + "/c.json") << R"({"min-lr-ratio": 0.5, "lora-dropout": 0.2})";
  const auto o = options_of("paper", "--recipe paper --lr 1e-3 --config " + dir + "/c.json");
  EXPECT_DOUBLE_EQ(o["lr"].get<double>(), 1e-3) << o.dump();             // flag
  EXPECT_DOUBLE_EQ(o["min-lr-ratio"].get<double>(), 0.5);                // config
  EXPECT_DOUBLE_EQ(o["lora-dropout"].get<double>(), 0.2);              // config
  EXPECT_DOUBLE_EQ(o["logits-kl-weight"].get<double>(), 0.0);        // paper
  EXPECT_EQ(o["warmup-steps"].get<int64_t>(), 4);                        // paper
  EXPECT_EQ(o["lora-rank"].get<int64_t>(), 4);                         // flag over paper's 1024
}

TEST(Recipes, UnknownRecipeIsOneLineError) {
  const std::string out = fresh_dir("recipe_unknown");
  const auto r = linearard::test_env::run_command(
      linearard::test_env::linearard_bin() + " distill --model " + fixture("llama_mha") + " --data " +
      fixture("corpus.bin") + " --out " + out + "/run --rope-scaling '{\"rope_type\":\"linear\",\"factor\":4.0}'" +
      " --device cpu --recipe fast 2>&1");
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_NE(r.output.find("linearard: error: --recipe: unknown recipe 'fast'"), std::string::npos) << r.output;
}

}  // namespace
