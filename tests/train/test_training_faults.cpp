// Numeric faults, out-of-memory reports and checkpoint-directory recovery (docs/training-faults.md):
//  - a non-finite loss term or gradient norm (injected by LINEARARD_TEST_INJECT_NAN) skips the
//    optimiser step: the checkpoint after it holds the weights and AdamW moments of the step before,
//    bit for bit, while the data position moves on; the step is logged in metrics.jsonl and on
//    stderr; --max-nonfinite-steps of them in a row stop the run with a checkpoint and one line;
//  - the allocator's out-of-memory text is parsed, the weights estimate matches LLaMA-2-7B's
//    published parameter count, the message names the real flags; on a GPU a distill run under a
//    tiny memory cap fails with that one line;
//  - a crash between the two renames of a checkpoint replacement is undone, leftovers removed.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "io/checkpoint.h"
#include "model/model_config.h"
#include "train/nonfinite.h"
#include "train/oom_report.h"
#include "train/train_checkpoint.h"
#include "train_test_util.h"

namespace {

using namespace linearard;
using train_test::fixture;
namespace fs = std::filesystem;

test_env::CommandResult linearard(const std::string& env, const std::string& args) {
  return test_env::run_command("OMP_NUM_THREADS=1 " + env + " " + test_env::linearard_bin() + " " + args);
}

std::string distill_flags(const std::string& out) {
  return "distill --model " + fixture("llama_mha") + " --data " + fixture("corpus.bin") + " --out " + out +
         " --rope-scaling '{\"rope_type\":\"linear\",\"factor\":4.0}' --device cpu --dtype fp32 --context 24"
         " --batch-size 1 --grad-accum 1 --lr 1e-2 --warmup-steps 0 --lora-rank 4 --lora-alpha 8"
         " --lora-dropout 0 --seed 2 --relations q,k,v";
}

std::vector<nlohmann::json> metrics(const std::string& out) { return train_test::read_metrics(out); }

std::string step_dir(const std::string& out, int step) {
  char name[32];
  std::snprintf(name, sizeof name, "/checkpoints/step-%06d", step);
  return out + name;
}

// Every tensor of `file` in checkpoint a equals (bitwise) or differs from the one in b; names
// starting with "rng." (generator states, which the forward passes advance) are left out.
bool same_tensors(const std::string& a_dir, const std::string& b_dir, const std::string& file) {
  io::CheckpointWeights a(a_dir + "/" + file), b(b_dir + "/" + file);
  EXPECT_EQ(a.names(), b.names());
  for (const auto& name : a.names()) {
    if (name.rfind("rng.", 0) == 0) continue;
    if (!at::equal(a.get(name), b.get(name))) return false;
  }
  return true;
}

nlohmann::json state(const std::string& dir) {
  std::ifstream in(dir + "/train_state.json");
  return nlohmann::json::parse(in);
}

TEST(NumericFaults, NonfiniteTermNamesTheFirstBadTerm) {
  const double nan = NAN, inf = INFINITY;
  const std::vector<bool> all(6, true), no_logits = {true, true, true, true, false, false};
  EXPECT_EQ(train::nonfinite_term({1, 0.2, 0.3, 0.5, nan, nan}, no_logits, 1.0), "");
  EXPECT_EQ(train::nonfinite_term({nan, 0.2, nan, 0.5, nan, nan}, no_logits, 1.0), "k");
  EXPECT_EQ(train::nonfinite_term({inf, 0.2, 0.3, 0.5, 1, inf}, all, 1.0), "lm");
  EXPECT_EQ(train::nonfinite_term({inf, 0.2, 0.3, 0.5, nan, nan}, no_logits, 1.0), "loss");
  EXPECT_EQ(train::nonfinite_term({1, 0.2, 0.3, 0.5, nan, nan}, no_logits, inf), "grad_norm");
  EXPECT_EQ(train::nonfinite_term({1, 0.2, 0.3, 0.5, nan, nan}, no_logits, nan), "grad_norm");
}

TEST(NumericFaults, SkippedStepsKeepWeightsAndAreCountedAndLogged) {
  const std::string out = train_test::fresh_dir("nonfinite_skip");
  // Steps 3 (q loss) and 4 (gradient norm) are bad: two in a row, under the limit of 3.
  const auto r = linearard("LINEARARD_TEST_INJECT_NAN=3:q,4:grad_norm",
                           distill_flags(out) + " --steps 6 --checkpoint-every 1 --keep-checkpoints 10"
                                                " --max-nonfinite-steps 3");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("step 3: non-finite q loss; optimizer step skipped (1 in a row, 1 in total)"),
            std::string::npos) << r.output;
  EXPECT_NE(r.output.find("step 4: non-finite gradient norm; optimizer step skipped (2 in a row, 2 in total)"),
            std::string::npos) << r.output;
  const auto m = metrics(out);
  ASSERT_EQ(m.size(), 6u);
  EXPECT_FALSE(m[1].contains("nonfinite"));
  EXPECT_FALSE(m[1].contains("skipped_steps"));
  EXPECT_EQ(m[2].value("nonfinite", ""), "q");
  EXPECT_EQ(m[2].value("skipped_steps", 0), 1);
  EXPECT_EQ(m[3].value("nonfinite", ""), "grad_norm");
  EXPECT_EQ(m[4].value("skipped_steps", 0), 2);
  EXPECT_FALSE(m[4].contains("nonfinite"));
  // Skipped steps change neither the weights nor the AdamW moments (bitwise), step 5 does.
  for (int step : {3, 4}) {
    EXPECT_TRUE(same_tensors(step_dir(out, step), step_dir(out, 2), "trainable.safetensors")) << step;
    EXPECT_TRUE(same_tensors(step_dir(out, step), step_dir(out, 2), "optimizer.safetensors")) << step;
    EXPECT_EQ(state(step_dir(out, step))["optimizer_steps"], state(step_dir(out, 2))["optimizer_steps"]);
  }
  EXPECT_FALSE(same_tensors(step_dir(out, 5), step_dir(out, 4), "trainable.safetensors"));
  EXPECT_FALSE(same_tensors(step_dir(out, 2), step_dir(out, 1), "trainable.safetensors"));
  // The data position still advances by one block per step (batch 1, grad-accum 1).
  EXPECT_EQ(state(step_dir(out, 3))["data_position"], 3);
  EXPECT_EQ(state(step_dir(out, 4))["data_position"], 4);
  EXPECT_EQ(state(step_dir(out, 6))["skipped_steps"], 2);
}

TEST(NumericFaults, TooManyInARowStopWithACheckpointAndOneLine) {
  const std::string out = train_test::fresh_dir("nonfinite_stop");
  const auto r = linearard("LINEARARD_TEST_INJECT_NAN=3:v,4:v,5:v",
                           distill_flags(out) + " --steps 8 --checkpoint-every 2 --max-nonfinite-steps 3");
  EXPECT_EQ(r.exit_code, 1) << r.output;
  const std::string expected = "linearard: error: step 5: non-finite v loss in 3 steps in a row "
                               "(--max-nonfinite-steps 3); stopped with the last good weights in " +
                               step_dir(out, 5) + " (lower --lr or check the data)\n";
  EXPECT_NE(r.output.find(expected), std::string::npos) << r.output;
  ASSERT_TRUE(fs::exists(step_dir(out, 5) + "/train_state.json"));
  EXPECT_TRUE(same_tensors(step_dir(out, 5), step_dir(out, 4), "trainable.safetensors"));  // = after step 2
  EXPECT_EQ(metrics(out).size(), 5u);
  EXPECT_FALSE(fs::exists(out + "/final"));
  // A bad injection spec is a one-line error naming the variable.
  const auto bad = linearard("LINEARARD_TEST_INJECT_NAN=3:x", distill_flags(out) + " --steps 1 --resume auto");
  EXPECT_EQ(bad.exit_code, 1);
  EXPECT_NE(bad.output.find("linearard: error: LINEARARD_TEST_INJECT_NAN: unknown term 'x'"), std::string::npos)
      << bad.output;
}

// Two processes (Gloo), the q loss poisoned on rank 1 only: the all-reduced parts carry it to
// rank 0, both ranks skip step 3 together (no deadlock, no divergence) and the run completes.
TEST(NumericFaults, EveryRankSkipsTheSameStep) {
  const std::string out = train_test::fresh_dir("nonfinite_nproc");
  const auto r = linearard("LINEARARD_TEST_INJECT_NAN=3:q@1",
                           distill_flags(out) + " --steps 4 --checkpoint-every 1 --keep-checkpoints 10 --nproc 2");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("step 3: non-finite q loss; optimizer step skipped"), std::string::npos) << r.output;
  const auto m = metrics(out);
  ASSERT_EQ(m.size(), 4u);
  EXPECT_EQ(m[2].value("nonfinite", ""), "q");
  EXPECT_TRUE(same_tensors(step_dir(out, 3), step_dir(out, 2), "trainable.safetensors"));
  EXPECT_FALSE(same_tensors(step_dir(out, 4), step_dir(out, 3), "trainable.safetensors"));
}

// The LibTorch 2.x text (c10/cuda/CUDACachingAllocator.cpp) and the 1.x form.
TEST(OomReport, ParsesTheAllocatorMessage) {
  const auto f = train::parse_oom_text(
      "CUDA out of memory. Tried to allocate 2.00 GiB. GPU 0 has a total capacity of 79.11 GiB of which 1.06 GiB is "
      "free. Including non-PyTorch memory, this process has 78.04 GiB memory in use. 40.00 GiB allowed; Of the "
      "allocated memory 76.50 GiB is allocated by PyTorch, and 512.00 MiB is reserved by PyTorch but unallocated.");
  const double GiB = double(1 << 30);
  EXPECT_DOUBLE_EQ(f.requested, 2 * GiB);
  EXPECT_DOUBLE_EQ(f.total, 79.11 * GiB);
  EXPECT_DOUBLE_EQ(f.free, 1.06 * GiB);
  EXPECT_DOUBLE_EQ(f.in_use, 78.04 * GiB);
  EXPECT_DOUBLE_EQ(f.allocated, 76.5 * GiB);
  EXPECT_DOUBLE_EQ(f.allowed, 40 * GiB);
  const auto old = train::parse_oom_text(
      "CUDA out of memory. Tried to allocate 36.00 MiB (GPU 0; 7.93 GiB total capacity; 130.35 MiB already "
      "allocated; 47.06 MiB free; 188.00 MiB reserved in total by PyTorch)");
  EXPECT_DOUBLE_EQ(old.requested, 36.0 * (1 << 20));
  EXPECT_DOUBLE_EQ(old.total, 7.93 * GiB);
  EXPECT_DOUBLE_EQ(old.allocated, 130.35 * (1 << 20));
  EXPECT_DOUBLE_EQ(old.free, 47.06 * (1 << 20));
  const auto none = train::parse_oom_text("something else");
  EXPECT_LT(none.requested, 0);
  EXPECT_LT(none.total, 0);
}

model::ModelConfig llama2_7b() {
  model::ModelConfig c;
  c.hidden_size = 4096;
  c.intermediate_size = 11008;
  c.num_hidden_layers = 32;
  c.num_attention_heads = 32;
  c.num_key_value_heads = 32;
  c.head_dim = 128;
  c.vocab_size = 32000;
  return c;
}

train::TrainOptions reference_distill_options() {
  train::TrainOptions o;  // the defaults: the reference ARD run (r 1024, T 4096, checkpointing on)
  o.command = "distill";
  return o;
}

TEST(OomReport, EstimateCountsLlama2_7bWeights) {
  // Meta's LLaMA-2-7B has 6,738,415,616 parameters (the HF checkpoint's tensors), bf16 = 2 bytes.
  const auto o = reference_distill_options();
  const auto e = train::estimate_training_memory(llama2_7b(), o, at::kBFloat16, 100);
  EXPECT_DOUBLE_EQ(e.weights, 6738415616.0 * 2);
  EXPECT_DOUBLE_EQ(e.trainable, 100.0 * 16);  // fp32 value, gradient, two AdamW moments
  auto longer = o;
  longer.run.context *= 2;
  auto no_checkpointing = o;
  no_checkpointing.run.activation_checkpointing = false;
  auto fewer_layers = o;
  fewer_layers.objective.layers = {0, 1};
  const auto base = e.activations;
  EXPECT_NEAR(train::estimate_training_memory(llama2_7b(), longer, at::kBFloat16, 100).activations, 2 * base, 1);
  EXPECT_GT(train::estimate_training_memory(llama2_7b(), no_checkpointing, at::kBFloat16, 100).activations, 2 * base);
  EXPECT_LT(train::estimate_training_memory(llama2_7b(), fewer_layers, at::kBFloat16, 100).activations, base);
}

TEST(OomReport, MessageIsOneLineNamingTheFlags) {
  auto o = reference_distill_options();
  o.run.context = 32768;
  o.run.activation_checkpointing = false;
  o.run.batch_size = 2;
  train::OomFacts f;
  const double GiB = double(1 << 30);
  f.requested = 2 * GiB;
  f.in_use = 78 * GiB;
  f.total = 79.11 * GiB;
  const auto e = train::estimate_training_memory(llama2_7b(), o, at::kBFloat16, 3 * 32 * 1024 * (4096 + 4096));
  const std::string msg = train::oom_message(f, e, o, 32, 3);
  EXPECT_EQ(msg.find('\n'), std::string::npos);
  for (const std::string part :
       {"out of memory at step 3: tried to allocate 2.00 GiB with 78.00 GiB of 79.11 GiB in use",
        "this run needs roughly", "weights 12.6,", "--activation-checkpointing", "a shorter --context (now 32768)",
        "fewer --layers (now 32 aligned)", "a smaller --lora-rank (now 1024)",
        "a smaller --batch-size (now 2) with a larger --grad-accum"})
    EXPECT_NE(msg.find(part), std::string::npos) << part << "\n" << msg;
  o.run.activation_checkpointing = true;  // already on: not suggested
  EXPECT_EQ(train::oom_message(f, e, o, 32, 3).find("--activation-checkpointing"), std::string::npos);
}

// GPU: a distill run whose allocator is capped at a sliver of the card (the test hook
// LINEARARD_TEST_CUDA_MEMORY_FRACTION, c10's per-process memory fraction) fails with the one line.
TEST(OomReport, GpuDistillOutOfMemoryIsOneLine) {
  if (!at::hasCUDA()) GTEST_SKIP() << "no CUDA device";
  const std::string out = train_test::fresh_dir("oom_gpu");
  std::vector<int64_t> ids;
  for (int64_t i = 0; i < 64 * 64 * 4; ++i) ids.push_back((i * 37 + 11) % 101);
  std::ofstream(out + "/tokens.json") << nlohmann::json(ids).dump();
  const auto r = linearard("LINEARARD_TEST_CUDA_MEMORY_FRACTION=0.0000001",
                           "distill --model " + fixture("llama_gqa") + " --data " + out + "/tokens.json --out " + out +
                               "/run --rope-scaling '{\"rope_type\":\"linear\",\"factor\":4.0}' --device cuda"
                               " --context 64 --batch-size 64 --steps 2 --lora-rank 8 --no-activation-checkpointing");
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_NE(r.output.find("linearard: error: cuda:0: out of memory at step 1: tried to allocate "), std::string::npos)
      << r.output;
  for (const std::string part : {"allowed to this process", "this run needs roughly", "--activation-checkpointing",
                                 "a shorter --context (now 64)", "a smaller --lora-rank (now 8)"})
    EXPECT_NE(r.output.find(part), std::string::npos) << part << "\n" << r.output;
}

TEST(CheckpointFiles, RecoverUndoesAHalfDoneReplacementAndRemovesLeftovers) {
  const std::string dir = train_test::fresh_dir("recover") + "/checkpoints";
  auto make = [&](const std::string& name, bool complete) {
    fs::create_directories(dir + "/" + name);
    std::ofstream(dir + "/" + name + "/trainable.safetensors") << "x";
    if (complete) std::ofstream(dir + "/" + name + "/train_state.json") << "{}";
  };
  make("step-000002", true);
  make(".step-000004.old.123", true);   // crash between "step-4 -> .old" and ".tmp -> step-4"
  make(".step-000006.tmp.77", false);   // crash while writing step 6
  make(".step-000001.del.9", true);     // crash while pruning step 1
  make("step-000008", false);           // not a complete checkpoint (no train_state.json)
  EXPECT_EQ(train::latest_checkpoint(dir), dir + "/step-000002");
  train::recover_directories(dir);
  EXPECT_TRUE(fs::exists(dir + "/step-000004/train_state.json"));
  EXPECT_FALSE(fs::exists(dir + "/.step-000004.old.123"));
  EXPECT_FALSE(fs::exists(dir + "/.step-000006.tmp.77"));
  EXPECT_FALSE(fs::exists(dir + "/.step-000001.del.9"));
  EXPECT_EQ(train::latest_checkpoint(dir), dir + "/step-000004");
  // Pruning to one keeps the newest complete checkpoint.
  train::prune_checkpoints(dir, 1);
  EXPECT_TRUE(fs::exists(dir + "/step-000004/train_state.json"));
  EXPECT_FALSE(fs::exists(dir + "/step-000002"));
}

TEST(CheckpointFiles, WriteReplacesAnExistingDirectoryCompletely) {
  const std::string dir = train_test::fresh_dir("rewrite") + "/final";
  const at::Tensor a = at::arange(6, at::kFloat).view({2, 3}), b = a * 2;
  train::write_checkpoint(dir, {{{"w", a}}, {}, nlohmann::json{{"step", 1}}, {{"extra.txt", "one"}}});
  train::write_checkpoint(dir, {{{"w", b}}, {}, nlohmann::json{{"step", 2}}, {}});
  const auto loaded = train::read_checkpoint(dir);
  EXPECT_TRUE(at::equal(loaded.trainable.at("w"), b));
  EXPECT_EQ(loaded.state["step"], 2);
  EXPECT_FALSE(fs::exists(dir + "/extra.txt")) << "nothing of the old directory survives";
  for (const auto& e : fs::directory_iterator(fs::path(dir).parent_path()))
    EXPECT_EQ(e.path().filename().string()[0] == '.', false) << "leftover " << e.path();
}

}  // namespace
