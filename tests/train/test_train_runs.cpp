// Short training runs on the tiny fixtures (CPU): distill, cpt and pretrain lower their loss through
// the CLI (with a JSON config file), a resumed run ends bitwise equal to an uninterrupted one, a
// distilled Qwen3 exports to a merged checkpoint that transformers loads as Qwen3, and bad options
// fail with one line.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "io/checkpoint.h"
#include "model/llama.h"
#include "train/tasks.h"
#include "train/trainer.h"
#include "train_test_util.h"

namespace {

using namespace linearard;
using train_test::fixture;
using train_test::read_metrics;

test_env::CommandResult linearard(const std::string& args) {
  return test_env::run_command(test_env::linearard_bin() + " " + args);
}

// Mean loss of the first and last `n` steps.
std::pair<double, double> first_last(const std::vector<nlohmann::json>& m, const char* key, size_t n) {
  double a = 0, b = 0;
  for (size_t i = 0; i < n; ++i) {
    a += m[i][key].get<double>() / n;
    b += m[m.size() - 1 - i][key].get<double>() / n;
  }
  return {a, b};
}

TEST(TrainRuns, DistillFromAConfigFileLowersTheLoss) {
  const std::string out = train_test::fresh_dir("distill_cli");
  const std::string in = train_test::fresh_dir("distill_cli_inputs");  // --out must start empty
  // One document of two blocks: every step sees the same batch, so the loss curve shows the
  // optimisation rather than batch-to-batch variation.
  std::vector<int64_t> doc;
  for (int64_t i = 0; i < 64; ++i) doc.push_back((i * 37 + 11) % 101);
  std::ofstream(in + "/one.json") << nlohmann::json(std::vector<std::vector<int64_t>>{doc}).dump();
  const nlohmann::json config = {
      {"model", fixture("llama_gqa")}, {"rope-scaling", {{"rope_type", "linear"}, {"factor", 4.0}}},
      {"data", {in + "/one.json"}}, {"out", out}, {"steps", 16}, {"lr", 1e-2}, {"warmup-steps", 1},
      {"context", 32}, {"batch-size", 2}, {"grad-accum", 1}, {"lora-rank", 8}, {"lora-alpha", 16},
      {"lora-dropout", 0.0}, {"device", "cpu"}, {"checkpoint-every", 5}, {"keep-checkpoints", 2},
      {"kv-normalization", "query-heads"}};
  std::ofstream(in + "/config.json") << config.dump();
  // Flags after --config override or add to it.
  const auto r = linearard("distill --config " + in + "/config.json --no-shuffle --relations q,k,v");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("options: {"), std::string::npos) << "options are printed back";
  EXPECT_NE(r.output.find("\"lora-rank\":8"), std::string::npos) << r.output;
  const auto m = read_metrics(out);
  ASSERT_EQ(m.size(), 16u);
  EXPECT_EQ(m[0]["lr"].get<double>(), 0.0);
  for (const char* part : {"q", "k", "v"}) EXPECT_TRUE(m[3].contains(part)) << part;
  const auto [first, last] = first_last(m, "loss", 3);
  EXPECT_LT(last, 0.7 * first) << "distillation loss " << first << " -> " << last;
  // Final adapter under PEFT keys; checkpoints pruned to the last two (10, 15) plus the end (16).
  io::CheckpointWeights final_weights(out + "/final/trainable.safetensors");
  EXPECT_TRUE(final_weights.has("base_model.model.model.layers.2.self_attn.v_proj.lora_B.weight"));
  EXPECT_FALSE(std::filesystem::exists(out + "/checkpoints/step-000005"));
  EXPECT_TRUE(std::filesystem::exists(out + "/checkpoints/step-000015/optimizer.safetensors"));
  EXPECT_TRUE(std::filesystem::exists(out + "/checkpoints/step-000016/train_state.json"));
}

TEST(TrainRuns, DistillsAQwen3AndExportsItForTransformers) {
  // Qwen3: q/k norms inside the layer, head_dim 24 != hidden / heads; LoRA on q/k/v, PI x4.
  const std::string out = train_test::fresh_dir("distill_qwen3");
  const std::string merged = train_test::fresh_dir("distill_qwen3_export") + "/merged";
  const std::string data = train_test::fresh_dir("distill_qwen3_inputs") + "/one.json";
  std::vector<int64_t> doc;  // two blocks of 32: every step sees the same batch, so the loss is comparable
  for (int64_t i = 0; i < 64; ++i) doc.push_back((i * 37 + 11) % 101);
  std::ofstream(data) << nlohmann::json(std::vector<std::vector<int64_t>>{doc}).dump();
  auto r = linearard("distill --model " + fixture("qwen3_gqa") + " --data " + data + " --out " + out +
                     " --rope-scaling '{\"rope_type\":\"linear\",\"factor\":4.0}' --steps 8 --lr 1e-2"
                     " --warmup-steps 1 --context 32 --batch-size 2 --lora-rank 8 --lora-alpha 16 --lora-dropout 0"
                     " --device cpu --checkpoint-every 0 --no-shuffle --relations q,k,v");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const auto m = read_metrics(out);
  ASSERT_EQ(m.size(), 8u);
  const auto [first, last] = first_last(m, "loss", 2);
  EXPECT_LT(last, first) << "distillation loss " << first << " -> " << last;

  r = linearard("export --checkpoint " + out + "/final --out " + merged + " --format merged");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const auto student = model::DecoderModel::load(merged, at::kFloat, at::kCPU);
  EXPECT_EQ(student.config().model_type, "qwen3");
  at::manual_seed(3);
  const at::Tensor tokens = at::randint(student.config().vocab_size, {2, 40}, at::kLong);  // (B, T)
  const auto tables = student.rope_tables_for(student.config().rope, tokens.size(1));
  model::ForwardRequest request;
  request.rope = &tables;
  const at::Tensor logits = student.forward(tokens, request).logits;  // (B, T, V)
  const std::string expected = out + "/merged_logits.safetensors";
  io::save_tensors(expected, {{"tokens", tokens}, {"logits", logits}});
  // transformers' Qwen3ForCausalLM on the merged directory gives the same logits (1e-5 relative).
  nlohmann::json manifest;
  std::ifstream(out + "/final/adapter.json") >> manifest;
  std::string targets;  // the recipe's LoRA targets: the tensors the merge must change
  for (const auto& t : manifest["target_modules"]) targets += (targets.empty() ? "" : ",") + t.get<std::string>();
  r = test_env::run_command(test_env::python() + " " + test_env::source_dir() +
                            "/tests/export/check_export.py logits --base " + fixture("qwen3_gqa") + " --expected " +
                            expected + " --merged " + merged + " --targets " + targets +
                            " --expect-class Qwen3ForCausalLM");
  EXPECT_EQ(r.exit_code, 0) << r.output;
}

train::TrainOptions resume_options(const std::string& out) {
  train::TrainOptions o;
  o.command = "distill";
  o.run.model_dir = fixture("llama_mha");
  o.run.data = {fixture("corpus.bin")};
  o.run.out_dir = out;
  o.run.context = 24;
  o.run.checkpoint_every = 2;
  o.run.seed = 3;
  o.optim.steps = 6;
  o.optim.lr = 1e-3;
  o.optim.warmup_steps = 2;
  o.optim.grad_accum = 2;
  o.adapter.rank = 4;
  o.adapter.alpha = 8;
  o.adapter.dropout = 0.1;  // exercises the RNG state (dropout masks, replayed by checkpointing)
  return o;
}

// One process-local run: fresh task, optionally resumed; returns the final trainable tensors.
train::NamedTensors train_once(const train::TrainOptions& o, int64_t stop_after) {
  const auto base = model::DecoderModel::load(o.run.model_dir, at::kFloat, at::kCPU);
  const auto rope = model::parse_rope_override(R"({"rope_type":"linear","factor":4.0})", base.config(), "rope");
  const auto data = train::open_token_files(o.run.data, o.run.context);
  train::DistillTask task(o, base, rope, train::make_adapter(o, base.config(), at::kCPU));
  train::run_training(task, o, *data, at::kCPU, stop_after);
  train::NamedTensors out;
  for (const auto& [name, t] : task.trainable()) out.emplace_back(name, t.detach().clone());
  return out;
}

TEST(TrainRuns, ResumeIsBitwiseExact) {
  const auto straight = train_once(resume_options(train_test::fresh_dir("resume_straight")), 0);
  const std::string out = train_test::fresh_dir("resume_interrupted");
  train_once(resume_options(out), /*stop_after=*/4);
  ASSERT_TRUE(std::filesystem::exists(out + "/checkpoints/step-000004/train_state.json"));
  ASSERT_FALSE(std::filesystem::exists(out + "/final"));
  // The checkpoint as builds before AdapterSpec wrote it: task.adapter in its own spelling (r,
  // lora_alpha, lora_dropout). It must still resume, to the same tensors.
  const std::string state_path = out + "/checkpoints/step-000004/train_state.json";
  nlohmann::json state;
  std::ifstream(state_path) >> state;
  EXPECT_EQ(state["task"]["adapter"].dump(),
            R"({"alpha":8.0,"dropout":0.1,"kind":"lora","rank":4,"target_modules":["q_proj","k_proj","v_proj"]})");
  state["task"]["adapter"] = nlohmann::json::parse(
      R"({"kind": "lora", "lora_alpha": 8.0, "lora_dropout": 0.1, "r": 4, "target_modules": ["q_proj", "k_proj", "v_proj"]})");
  std::ofstream(state_path) << state.dump(1) << "\n";
  auto o = resume_options(out);
  o.run.resume = "latest";
  const auto resumed = train_once(o, 0);
  ASSERT_EQ(resumed.size(), straight.size());
  for (size_t i = 0; i < straight.size(); ++i)
    EXPECT_TRUE(at::equal(resumed[i].second, straight[i].second)) << straight[i].first;
  // The adapter did move away from its start (B = 0).
  EXPECT_GT(straight[1].second.abs().max().item<double>(), 0.0);
}

TEST(TrainRuns, CptLowersTheLmLoss) {
  const std::string out = train_test::fresh_dir("cpt_cli");
  const auto r = linearard("cpt --model " + fixture("llama_mha") + " --rope-scaling '{\"rope_type\":\"linear\",\"factor\":2}'"
                           " --data " + fixture("corpus.json") + " --out " + out +
                           " --steps 20 --lr 1e-2 --warmup-steps 0 --context 48 --batch-size 2 --grad-accum 1"
                           " --train-qkv full --device cpu --checkpoint-every 0 --lm-chunk-tokens 16");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const auto m = read_metrics(out);
  ASSERT_EQ(m.size(), 20u);
  const auto [first, last] = first_last(m, "lm", 3);
  EXPECT_LT(last, 0.9 * first) << "CPT LM loss " << first << " -> " << last;
  EXPECT_TRUE(std::filesystem::exists(out + "/final/trainable.safetensors"));
}

TEST(TrainRuns, PretrainLowersTheLmLossAndWritesAHfCheckpoint) {
  const std::string out = train_test::fresh_dir("pretrain_cli");
  const auto r = linearard("pretrain --data " + fixture("corpus.bin") + " --out " + out +
                           " --hidden-size 32 --intermediate-size 64 --num-layers 2 --num-heads 4 --num-kv-heads 2"
                           " --vocab-size 101 --max-positions 64 --steps 40 --lr 1e-2 --warmup-steps 2 --context 32"
                           " --batch-size 4 --device cpu --checkpoint-every 0");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const auto m = read_metrics(out);
  ASSERT_EQ(m.size(), 40u);
  const auto [first, last] = first_last(m, "lm", 3);
  EXPECT_GT(first, 4.0);  // about ln(101) = 4.6 at random init
  EXPECT_LT(last, 0.6 * first) << "pretrain LM loss " << first << " -> " << last;
  const auto trained = model::DecoderModel::load(out + "/final", at::kFloat, at::kCPU);
  EXPECT_EQ(trained.config().num_key_value_heads, 2);
}

TEST(TrainRuns, BadOptionsFailWithOneLine) {
  const std::string base = "distill --model " + fixture("llama_mha") + " --data " + fixture("corpus.json") +
                           " --out " + train_test::fresh_dir("bad") + " --device cpu";
  for (const std::string& extra :
       {std::string(" --rope-scaling '{\"rope_type\":\"linear\",\"factor\":4}' --kv-normalization bogus"),
        std::string(" --rope-scaling '{\"rope_type\":\"linear\",\"factor\":4}' --layers 0,9"),
        std::string(" --rope-scaling '{\"rope_type\":\"linear\",\"factor\":4}' --relations q,x"),
        std::string(" --rope-scaling '{\"rope_type\":\"linear\",\"factor\":4}' --context 100000"),
        std::string("")}) {
    const auto r = linearard(base + extra + " --steps 1");
    EXPECT_EQ(r.exit_code, 1) << extra << "\n" << r.output;
    EXPECT_NE(r.output.find("linearard: error: "), std::string::npos) << r.output;
  }
}

}  // namespace
