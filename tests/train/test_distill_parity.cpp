// The distillation loss and its LoRA gradients at the first step against an independent float64
// reference (reference_distill.py: transformers teacher/student with the scaled RoPE, PEFT LoRA
// loaded from our tensors, naive materialised relation KL). The C++ side runs float32 on CPU;
// bound 1e-4 relative to the reference's largest magnitude (float32 vs float64 through 2-3 layers).
// Also: activation checkpointing changes nothing, and factor 1 gives a zero loss.
#include <ATen/CPUGeneratorImpl.h>
#include <ATen/core/grad_mode.h>
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>

#include "io/checkpoint.h"
#include "model/llama.h"
#include "train/tasks.h"
#include "train_test_util.h"

namespace {

using namespace linearard;
using train_test::fixture;

constexpr double kTolerance = 1e-4;

struct Case {
  std::string name, model;
  std::string rope = R"({"rope_type":"linear","factor":4.0})";
  bool random_b = false;  // B != 0 so that A's gradients are non-zero too
  train::ObjectiveOptions objective;
  std::vector<std::string> targets = {"q_proj", "k_proj", "v_proj"};  // --lora-targets
  double dropout = 0.0;
};

const std::vector<std::string> kAllTargets = {"q_proj", "k_proj", "v_proj", "o_proj",
                                              "gate_proj", "up_proj", "down_proj"};

train::TrainOptions options_for(const Case& c, bool checkpointing) {
  train::TrainOptions o;
  o.command = "distill";
  o.run.seed = 11;
  o.run.activation_checkpointing = checkpointing;
  o.adapter.rank = 4;
  o.adapter.alpha = 8;
  o.adapter.dropout = c.dropout;
  o.adapter.targets = c.targets;
  o.objective = c.objective;
  o.run.lm_chunk_tokens = 7;  // several chunks
  return o;
}

struct Result {
  train::LossParts parts;
  train::NamedTensors grads;
};

// Builds the student, optionally randomises B, runs loss + backward.
Result run_cpp(const Case& c, const model::DecoderModel& base, const at::Tensor& tokens, bool checkpointing,
               train::NamedTensors* lora_out = nullptr) {
  const auto o = options_for(c, checkpointing);
  const auto rope = model::parse_rope_override(c.rope, base.config(), "--rope-scaling");
  train::DistillTask task(o, base, rope, train::make_adapter(o, base.config(), at::kCPU));
  if (c.random_b) {
    at::NoGradGuard no_grad;
    at::Generator gen = at::detail::createCPUGenerator(5);
    for (auto& [name, t] : task.trainable())
      if (name.find("lora_B") != std::string::npos) t.normal_(0.0, 0.3, gen);
  }
  if (lora_out) *lora_out = task.trainable();
  Result r;
  r.parts = task.loss(tokens);
  r.parts.total.backward();
  for (const auto& [name, t] : task.trainable())
    r.grads.emplace_back(name, t.grad().defined() ? t.grad().clone() : at::zeros_like(t));
  return r;
}

class DistillParity : public ::testing::TestWithParam<Case> {};

TEST_P(DistillParity, LossAndGradientsMatchPythonReference) {
  const Case& c = GetParam();
  const std::string model_dir = fixture(c.model);
  const auto base = model::DecoderModel::load(model_dir, at::kFloat, at::kCPU);
  at::Generator gen = at::detail::createCPUGenerator(3);
  const at::Tensor tokens = at::randint(0, base.config().vocab_size, {2, 24}, gen, at::kLong);  // (B, T)

  train::NamedTensors lora;
  const Result ours = run_cpp(c, base, tokens, /*checkpointing=*/true, &lora);
  const Result plain = run_cpp(c, base, tokens, /*checkpointing=*/false);
  EXPECT_EQ(ours.parts.total.item<double>(), plain.parts.total.item<double>());
  for (size_t i = 0; i < ours.grads.size(); ++i)
    EXPECT_LE(train_test::relative_error(ours.grads[i].second, plain.grads[i].second), 1e-6)
        << "checkpointing changed " << ours.grads[i].first;

  const std::string dir = train_test::fresh_dir("parity_" + c.name);
  train::NamedTensors inputs = lora;
  inputs.emplace_back("input_ids", tokens);
  io::save_tensors(dir + "/inputs.safetensors", inputs);
  const auto& b = c.objective;
  std::string relations;
  if (b.relation_q) relations += "q";
  if (b.relation_k) relations += "k";
  if (b.relation_v) relations += "v";
  nlohmann::json j = {{"rope", nlohmann::json::parse(c.rope)}, {"r", 4}, {"alpha", 8}, {"layers", b.layers},
                      {"relations", relations}, {"weight_q", b.weight_q}, {"weight_k", b.weight_k},
                      {"weight_v", b.weight_v}, {"kv_normalization", b.kv_normalization},
                      {"logits_kl_weight", b.logits_kl_weight}, {"logits_kl_last", b.logits_kl_last},
                      {"temperature", b.temperature}, {"lm_weight", b.lm_weight}, {"targets", c.targets},
                      {"hidden_weight", b.hidden_weight}};
  std::ofstream(dir + "/case.json") << j.dump(1);
  const auto run = test_env::run_command(test_env::python() + " " + test_env::source_dir() +
                                         "/tests/train/reference_distill.py " + model_dir + " " + dir);
  ASSERT_EQ(run.exit_code, 0) << run.output;

  io::CheckpointWeights ref(dir + "/reference.safetensors");
  EXPECT_LE(train_test::relative_error(ours.parts.total, ref.get("loss")), kTolerance) << "loss";
  for (auto [name, t] : {std::pair{"q", &ours.parts.q}, {"k", &ours.parts.k}, {"v", &ours.parts.v},
                         {"logits", &ours.parts.logits}, {"lm", &ours.parts.lm}, {"hidden", &ours.parts.hidden}}) {
    ASSERT_EQ(t->defined(), ref.has(name)) << name;
    if (t->defined()) EXPECT_LE(train_test::relative_error(*t, ref.get(name)), kTolerance) << name;
  }
  for (const auto& [name, g] : ours.grads) {
    ASSERT_TRUE(ref.has("grad." + name)) << name;
    const at::Tensor r = ref.get("grad." + name);
    if (r.abs().max().item<double>() == 0) {
      EXPECT_EQ(g.abs().max().item<double>(), 0.0) << name;
    } else {
      EXPECT_LE(train_test::relative_error(g, r), kTolerance) << name;
    }
  }
  EXPECT_GT(ours.parts.total.item<double>(), 0.0);
}

train::ObjectiveOptions full_objective() {
  train::ObjectiveOptions o;
  o.layers = {0, 2};
  o.weight_q = 0.5;
  o.weight_k = 2.0;
  o.weight_v = 1.5;
  o.kv_normalization = "kv-heads";
  o.logits_kl_weight = 0.7;
  o.logits_kl_last = 9;
  o.temperature = 2.0;
  o.lm_weight = 0.3;
  return o;
}

// The default recipe's objective terms: the logits KL on every position (logits_kl_last 0) and
// LongReD's per-layer hidden-state term.
train::ObjectiveOptions hidden_all_positions_objective() {
  train::ObjectiveOptions o;
  o.layers = {0, 2};
  o.logits_kl_weight = 0.5;
  o.logits_kl_last = 0;
  o.hidden_weight = 1.3;
  return o;
}

INSTANTIATE_TEST_SUITE_P(
    Train, DistillParity,
    ::testing::Values(Case{"mha_step0", "llama_mha", R"({"rope_type":"linear","factor":4.0})", false, {}},
                      Case{"mha_random_b", "llama_mha", R"({"rope_type":"linear","factor":8.0})", true, {}},
                      Case{"gqa_all_terms", "llama_gqa", R"({"rope_type":"linear","factor":4.0})", true,
                           full_objective()},
                      // LoRA on all seven projections: through the logits/LM terms every layer's
                      // o/MLP matters; with relations only (stop after the last capture) the last
                      // layer's o/MLP get zero gradients, as in the reference.
                      Case{"gqa_all_targets", "llama_gqa", R"({"rope_type":"linear","factor":4.0})", true,
                           full_objective(), kAllTargets},
                      Case{"mha_all_targets_relations", "llama_mha", R"({"rope_type":"linear","factor":4.0})",
                           true, {}, kAllTargets},
                      Case{"gqa_hidden_all_positions", "llama_gqa", R"({"rope_type":"linear","factor":4.0})",
                           true, hidden_all_positions_objective()}),
    [](const auto& info) { return info.param.name; });

// Sanity facts of the relation KL (LinearARD, arXiv 2604.00004): factor 1 gives KL 0; at B = 0 the layer-0 V/V KL is 0.
TEST(DistillSanity, FactorOneIsZeroAndLayerZeroValueIsZero) {
  const auto base = model::DecoderModel::load(fixture("llama_mha"), at::kFloat, at::kCPU);
  at::Generator gen = at::detail::createCPUGenerator(4);
  const at::Tensor tokens = at::randint(0, base.config().vocab_size, {1, 20}, gen, at::kLong);
  Case same{"same", "llama_mha", R"({"rope_type":"linear","factor":1.0})", false, {}};
  const Result r = run_cpp(same, base, tokens, true);
  EXPECT_LE(std::abs(r.parts.total.item<double>()), 1e-6);
  Case v0{"v0", "llama_mha", R"({"rope_type":"linear","factor":4.0})", false, {}};
  v0.objective.layers = {0};
  const Result v = run_cpp(v0, base, tokens, true);
  EXPECT_LE(std::abs(v.parts.v.item<double>()), 1e-6);
  EXPECT_GT(v.parts.q.item<double>(), 1e-4);
  EXPECT_GT(v.parts.k.item<double>(), 1e-4);
}

// Dropout on every projection's LoRA input: a checkpointed layer replays the generator, so the
// gradients equal those of the plain graph drawn from the same RNG state.
TEST(DistillSanity, AllTargetsDropoutIsReplayedByCheckpointing) {
  const auto base = model::DecoderModel::load(fixture("llama_gqa"), at::kFloat, at::kCPU);
  at::Generator gen = at::detail::createCPUGenerator(6);
  const at::Tensor tokens = at::randint(0, base.config().vocab_size, {2, 20}, gen, at::kLong);
  Case c{"dropout", "llama_gqa", R"({"rope_type":"linear","factor":4.0})", true, full_objective(), kAllTargets, 0.3};
  at::manual_seed(21);
  const Result plain = run_cpp(c, base, tokens, /*checkpointing=*/false);
  at::manual_seed(21);
  const Result ckpt = run_cpp(c, base, tokens, /*checkpointing=*/true);
  at::manual_seed(22);
  const Result other = run_cpp(c, base, tokens, /*checkpointing=*/true);
  EXPECT_LE(std::abs(ckpt.parts.total.item<double>() - plain.parts.total.item<double>()),
            1e-6 * std::abs(plain.parts.total.item<double>()));
  EXPECT_NE(other.parts.total.item<double>(), plain.parts.total.item<double>()) << "dropout draws nothing";
  ASSERT_EQ(ckpt.grads.size(), plain.grads.size());
  ASSERT_EQ(ckpt.grads.size(), size_t(base.config().num_hidden_layers * 7 * 2));
  for (size_t i = 0; i < ckpt.grads.size(); ++i) {
    EXPECT_GT(plain.grads[i].second.abs().max().item<double>(), 0.0) << plain.grads[i].first;
    EXPECT_LE(train_test::relative_error(ckpt.grads[i].second, plain.grads[i].second), 1e-5) << ckpt.grads[i].first;
  }
}

}  // namespace
