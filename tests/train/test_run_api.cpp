// The library run API (train/run.h, eval/run_eval.h, eval/run_report.h, export/run_export.h), called
// directly as a test or a Python binding would: a distill through train::run ends where the CLI's
// run on the same inputs ends, a pretrain returns its result, and bad options fail with an
// OptionError naming the option without the CLI's dashes.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>

#include "common/option_error.h"
#include "eval/run_eval.h"
#include "eval/run_report.h"
#include "export/run_export.h"
#include "io/checkpoint.h"
#include "train/adapter_spec.h"
#include "train/run.h"
#include "train_test_util.h"

namespace {

using namespace linearard;
using train_test::fixture;
using train_test::read_metrics;

using train_test::option_error_of;

// One document of two 32-token blocks (the same batch every step).
std::string one_document(const std::string& dir) {
  std::vector<int64_t> doc;
  for (int64_t i = 0; i < 64; ++i) doc.push_back((i * 37 + 11) % 101);
  std::ofstream(dir + "/one.json") << nlohmann::json(std::vector<std::vector<int64_t>>{doc}).dump();
  return dir + "/one.json";
}

// A distill's options as the library sets them; the CLI flags below give the same values (every
// option the default recipe sets is given, so the recipe changes nothing).
train::TrainOptions distill_options(const std::string& data, const std::string& out) {
  train::TrainOptions o = train::default_options("distill");
  o.run.model_dir = fixture("llama_gqa");
  o.run.rope_scaling = R"({"rope_type":"linear","factor":4})";
  o.run.data = {data};
  o.run.out_dir = out;
  o.run.device = "cpu";
  o.run.context = 32;
  o.run.batch_size = 2;
  o.run.shuffle = false;
  o.run.checkpoint_every = 0;
  o.optim.steps = 3;
  o.optim.grad_accum = 1;
  o.optim.lr = 1e-2;
  o.optim.warmup_steps = 1;
  o.optim.min_lr_ratio = 0.1;
  o.adapter.rank = 4;
  o.adapter.alpha = 8;
  o.adapter.dropout = 0.0;
  o.adapter.targets = train::parse_lora_targets({"q,k,v"});
  o.objective.logits_kl_weight = 0.5;
  o.objective.logits_kl_last = 0;
  o.objective.hidden_weight = 0.5;
  return o;
}

const char* kDistillFlags =
    " --rope-scaling '{\"rope_type\":\"linear\",\"factor\":4}' --device cpu --context 32 --batch-size 2 --no-shuffle"
    " --checkpoint-every 0 --steps 3 --grad-accum 1 --lr 1e-2 --warmup-steps 1 --min-lr-ratio 0.1 --lora-rank 4"
    " --lora-alpha 8 --lora-dropout 0 --lora-targets q,k,v --logits-kl-weight 0.5 --logits-kl-last 0 --hidden-weight 0.5";

TEST(RunApi, DistillThroughTheLibraryEqualsTheCli) {
  const std::string in = train_test::fresh_dir("run_api_inputs");
  const std::string data = one_document(in);
  const std::string lib_out = train_test::fresh_dir("run_api_library");
  const std::string cli_out = train_test::fresh_dir("run_api_cli");

  const train::RunResult result = train::run(distill_options(data, lib_out));
  EXPECT_FALSE(result.ran_workers);
  EXPECT_EQ(result.out_dir, lib_out);
  EXPECT_EQ(result.training.steps_done, 3);
  EXPECT_EQ(result.training.final_dir, lib_out + "/final");

  const auto cli = test_env::run_command(test_env::linearard_bin() + " distill --model " + fixture("llama_gqa") +
                                         " --data " + data + " --out " + cli_out + kDistillFlags);
  ASSERT_EQ(cli.exit_code, 0) << cli.output;

  // The same options (but the output folder), the same losses, the same adapter.
  nlohmann::json lib_options, cli_options;
  std::ifstream(lib_out + "/options.json") >> lib_options;
  std::ifstream(cli_out + "/options.json") >> cli_options;
  lib_options.erase("out");
  cli_options.erase("out");
  EXPECT_EQ(lib_options, cli_options);
  const auto lib_metrics = read_metrics(lib_out), cli_metrics = read_metrics(cli_out);
  ASSERT_EQ(lib_metrics.size(), 3u);
  ASSERT_EQ(cli_metrics.size(), 3u);
  for (size_t i = 0; i < 3; ++i) EXPECT_EQ(lib_metrics[i]["loss"], cli_metrics[i]["loss"]) << "step " << i;
  EXPECT_EQ(result.training.last_loss, cli_metrics[2]["loss"].get<double>());
  io::CheckpointWeights lib_weights(lib_out + "/final/trainable.safetensors");
  io::CheckpointWeights cli_weights(cli_out + "/final/trainable.safetensors");
  ASSERT_EQ(lib_weights.names(), cli_weights.names());
  for (const auto& name : lib_weights.names())
    EXPECT_TRUE(at::equal(lib_weights.get(name), cli_weights.get(name))) << name;
}

TEST(RunApi, PretrainReturnsItsResult) {
  const std::string out = train_test::fresh_dir("run_api_pretrain");
  train::TrainOptions o = train::default_options("pretrain");
  o.run.data = {fixture("corpus.bin")};
  o.run.out_dir = out;
  o.run.device = "cpu";
  o.run.context = 32;
  o.run.batch_size = 2;
  o.run.checkpoint_every = 0;
  o.optim.steps = 2;
  o.optim.warmup_steps = 0;
  o.arch = {"", 32, 64, 2, 4, 2, 101, 64, 10000.0};
  const train::RunResult r = train::run(o);
  EXPECT_EQ(r.training.steps_done, 2);
  EXPECT_EQ(read_metrics(out).size(), 2u);
  EXPECT_TRUE(std::filesystem::exists(r.training.final_dir + "/model.safetensors"));
  EXPECT_EQ(option_error_of([&] { train::run(o); }).option(), "out");  // no --overwrite, no --resume
}

TEST(RunApi, TrainingOptionErrorsNameTheOption) {
  train::TrainOptions o = train::default_options("distill");
  o.run.model_dir = fixture("llama_gqa");
  o.run.data = {fixture("corpus.json")};
  o.run.out_dir = train_test::fresh_dir("run_api_errors");
  o.run.device = "cpu";

  auto bad = o;
  bad.run.context = 1;
  OptionError e = option_error_of([&] { train::run(bad); });
  EXPECT_EQ(e.option(), "context");
  EXPECT_STREQ(e.what(), "context: must be >= 2");
  EXPECT_EQ(e.message_as("--context"), "--context: must be >= 2");  // what the CLI prints

  bad = o;
  bad.adapter.rank = 0;
  EXPECT_STREQ(option_error_of([&] { train::run(bad); }).what(), "lora-rank: must be >= 1");
  EXPECT_STREQ(option_error_of([&] { train::run(o); }).what(), "rope-scaling: is required (the student's scaled RoPE)");
  bad = o;
  bad.run.rope_scaling = R"({"rope_type":"linear"})";  // no factor: the model's RoPE parser's error, named
  EXPECT_EQ(option_error_of([&] { train::run(bad); }).option(), "rope-scaling");
  bad = o;
  bad.run.rope_scaling = R"({"rope_type":"linear","factor":4})";
  bad.run.device = "tpu";
  EXPECT_EQ(option_error_of([&] { train::run(bad); }).option(), "device");
  train::ObjectiveOptions objective;
  EXPECT_STREQ(option_error_of([&] { train::parse_relations("q,x", objective); }).what(),
               "relations: expected a subset of q,k,v, got 'q,x'");
  EXPECT_EQ(option_error_of([] { train::default_options("train"); }).option(), "command");
}

TEST(RunApi, EvalReportAndExportOptionErrorsNameTheOption) {
  eval::EvalOptions e;
  e.model = fixture("llama_gqa");
  e.tasks.tasks = {"nope"};
  EXPECT_EQ(std::string(option_error_of([&] { eval::run_eval(e); }).what()).rfind("tasks: unknown task 'nope'", 0), 0u);
  e.tasks.tasks = {"ppl"};
  e.tasks.tokens = "x";
  e.tasks.contexts = {"4q"};
  EXPECT_EQ(option_error_of([&] { eval::run_eval(e); }).option(), "contexts");

  eval::ReportOptions r;
  EXPECT_STREQ(option_error_of([&] { eval::run_report(r); }).what(), "out: required");

  exporter::ExportOptions x;
  x.out = train_test::fresh_dir("run_api_export");
  x.format = "peft";
  EXPECT_EQ(option_error_of([&] { exporter::run_export(x); }).option(), "checkpoint");
  x.checkpoint = x.out;
  x.format = "tar";
  EXPECT_EQ(option_error_of([&] { exporter::run_export(x); }).option(), "format");
}

}  // namespace
