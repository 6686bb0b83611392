// The trainers' option layering as a library call (train/train_flags.h: train::train_options, what
// the Python binding calls) against the command line: for the same values, given as a JSON object
// here and as flags to `linearard distill` there, the options the run prints are the same: the
// default recipe, --recipe, --config and the flags in the same order of precedence. And the
// library's own errors: an unknown option or a value that does not convert is an OptionError
// naming the option.
#include <gtest/gtest.h>

#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>
#include <sstream>

#include "common/option_error.h"
#include "eval/eval_flags.h"
#include "export/export_flags.h"
#include "train/train_flags.h"
#include "train_test_util.h"

namespace {

using namespace linearard;
using train_test::fixture;
using train_test::fresh_dir;
using train_test::option_error_of;

const char* kRope = R"({"rope_type":"linear","factor":4.0})";

// The options a one-step `linearard distill` with `flags` prints at start (`out` is its --out).
nlohmann::json cli_options(const std::string& out, const std::string& flags) {
  return train_test::one_step_distill_options(out, flags);
}

// The same run's options from the library, `given` added to the values cli_options passes as flags.
nlohmann::json library_options(const std::string& out, nlohmann::json given) {
  given.update({{"model", fixture("llama_mha")},
                {"data", fixture("corpus.bin")},
                {"out", out},
                {"rope-scaling", nlohmann::json::parse(kRope)},  // an object, as a config file may hold it
                {"device", "cpu"},
                {"context", 16},
                {"steps", 1},
                {"checkpoint-every", 0},
                {"lora-rank", 4},
                {"lora-alpha", 8}});
  return train::to_json(train::train_options("distill", given));
}


// The CLI prints rope-scaling as given; the library as the JSON text of the object.
void expect_same(nlohmann::json lib, nlohmann::json cli) {
  EXPECT_EQ(nlohmann::json::parse(lib["rope-scaling"].get<std::string>()),
            nlohmann::json::parse(cli["rope-scaling"].get<std::string>()));
  lib.erase("rope-scaling");
  cli.erase("rope-scaling");
  EXPECT_EQ(lib, cli);
}

TEST(OptionLayers, DefaultRecipeAppliesAsOnTheCommandLine) {
  const std::string out = fresh_dir("layers_default") + "/run";
  const auto lib = library_options(out, nlohmann::json::object());
  expect_same(lib, cli_options(out, ""));
  EXPECT_DOUBLE_EQ(lib["lr"].get<double>(), 3e-4);  // restore's, not the struct default 2e-5
  EXPECT_DOUBLE_EQ(lib["hidden-weight"].get<double>(), 10.0);
}

TEST(OptionLayers, GivenBeatsConfigBeatsRecipeAsOnTheCommandLine) {
  const std::string dir = fresh_dir("layers_precedence");
  std::ofstream(dir + "/c.json") << R"({"min-lr-ratio": 0.5, "lora-dropout": 0.2, "lr": 5e-3})";
  const auto lib = library_options(dir + "/run", {{"recipe", "paper"}, {"lr", 1e-3}, {"config", dir + "/c.json"}});
  expect_same(lib, cli_options(dir + "/run", "--recipe paper --lr 1e-3 --config " + dir + "/c.json"));
  EXPECT_DOUBLE_EQ(lib["lr"].get<double>(), 1e-3);           // given over the config file
  EXPECT_DOUBLE_EQ(lib["min-lr-ratio"].get<double>(), 0.5);  // config over the recipe
  EXPECT_EQ(lib["warmup-steps"].get<int64_t>(), 4);          // paper
}

TEST(OptionLayers, ListsFlagsAndFullDeltasAsOnTheCommandLine) {
  const std::string out = fresh_dir("layers_lists") + "/run";
  const auto lib = library_options(out, {{"shuffle", false},
                                         {"betas", {0.8, 0.99}},
                                         {"layers", "0,1"},
                                         {"relations", "q,k"},
                                         {"train-qkv", "full"},
                                         {"lora-dropout", 0.1},
                                         {"activation-checkpointing", false}});
  expect_same(lib, cli_options(out, "--no-shuffle --betas 0.8,0.99 --layers 0,1 --relations q,k --train-qkv full "
                                    "--lora-dropout 0.1 --no-activation-checkpointing"));
  EXPECT_FALSE(lib["shuffle"].get<bool>());
  EXPECT_EQ(lib["layers"], nlohmann::json({0, 1}));
  EXPECT_FALSE(lib.contains("lora-targets"));  // the recipe's targets give way to full deltas
}

TEST(OptionLayers, UnknownOptionsAndBadValuesNameTheOption) {
  EXPECT_STREQ(option_error_of([] { train::train_options("distill", {{"lora-rnak", 4}}); }).what(),
               "lora-rnak: not an option of distill");
  // An alias of a flag is not a name: "no-shuffle": true would otherwise set shuffle.
  EXPECT_EQ(option_error_of([] { train::train_options("distill", {{"no-shuffle", true}}); }).option(), "no-shuffle");
  EXPECT_EQ(option_error_of([] { train::train_options("cpt", {{"hidden-weight", 1}}); }).option(), "hidden-weight");
  EXPECT_STREQ(option_error_of([] { train::train_options("distill", {{"steps", "many"}}); }).what(),
               "steps: expected an integer, got 'many'");
  EXPECT_STREQ(option_error_of([] { train::train_options("distill", {{"lr", "fast"}}); }).what(),
               "lr: expected a number, got 'fast'");
  EXPECT_STREQ(option_error_of([] { train::train_options("distill", {{"betas", {0.9}}}); }).what(),
               "betas: expected two values, e.g. 0.9,0.999");
  EXPECT_EQ(option_error_of([] { train::train_options("distill", {{"recipe", "fast"}}); }).option(), "recipe");
  EXPECT_EQ(option_error_of([] { train::train_options("distill", {{"layers", "0,x"}}); }).option(), "layers");
  EXPECT_EQ(option_error_of([] { exporter::export_options({{"formats", "peft"}}); }).option(), "formats");
  EXPECT_STREQ(option_error_of([] { eval::report_options({{"native-context", "4k"}}); }).what(),
               "native-context: expected an integer, got '4k'");
  // A config file's errors name the file, as `linearard distill --config` reports them (docs/errors.md).
  const std::string dir = fresh_dir("layers_config_key");
  std::ofstream(dir + "/run.json") << R"({"learning-rate": 1})";
  try {
    train::train_options("distill", {{"config", dir + "/run.json"}});
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()), dir + "/run.json: unknown option 'learning-rate'");
  }
}

TEST(OptionLayers, TheTablesDescribeTheirOptions) {
  const auto table = train::describe_train_options("distill");
  auto row = [&](const std::string& name) {
    for (const auto& r : table)
      if (r["name"] == name) return r;
    ADD_FAILURE() << name << " not in " << table.dump();
    return nlohmann::json();
  };
  EXPECT_EQ(row("lora-rank")["default"], "1024");
  EXPECT_EQ(row("recipe")["default"], "restore");
  EXPECT_TRUE(row("shuffle")["flag"].get<bool>());
  EXPECT_TRUE(row("data")["several"].get<bool>());
  EXPECT_FALSE(row("layers")["several"].get<bool>());
  EXPECT_EQ(train::describe_train_options("pretrain").dump().find("\"lora-rank\""), std::string::npos);
  EXPECT_NE(eval::describe_report_options().dump().find("\"contexts\""), std::string::npos);  // an option group's
  EXPECT_NE(exporter::describe_export_options().dump().find("\"gguf-type\""), std::string::npos);
}

}  // namespace
