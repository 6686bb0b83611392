// Next-token fidelity (eval/fidelity.h): the chunked KL / argmax against a float64 computation on
// full logits, agreement with transformers in float64 (make_eval_fixtures.py: fidelity.json, the
// HF perplexity recipe's windows, F.kl_div with log_target) for a linear x4 scaled model, a
// separate checkpoint and a teacher with a RoPE override, chunk- and batch-size independence, KL 0
// / agreement 1 for identical models, the CLI (eval --task fidelity --teacher, one-line errors),
// and CUDA (fp32 and bf16) against the CPU result, skipped without a GPU.
#include <gtest/gtest.h>

#include <cmath>

#include "common/error.h"
#include "eval/fidelity.h"
#include "eval/perplexity.h"
#include "eval_test_util.h"
#include "test_env.h"

namespace {

using namespace linearard;

constexpr double kRelTol = 1e-5;  // float32 against float64, as test_perplexity.cpp

std::vector<std::vector<int32_t>> fixture_streams(const nlohmann::json& which) {
  const auto all = eval_test::read_json(eval_test::dir() + "/ppl.json")["streams"];
  std::vector<std::vector<int32_t>> streams;
  for (int64_t s : which) streams.push_back(all[s].get<std::vector<int32_t>>());
  return streams;
}

TEST(CompareNextToken, ChunksMatchFloat64FullLogits) {
  at::manual_seed(5);
  const int64_t N = 41, C = 16, Ct = 24, V = 60;
  at::Tensor ht = at::randn({N, Ct}), head_t = at::randn({V, Ct});  // (N, Ct), (V, Ct)
  at::Tensor hm = at::randn({N, C}), head_m = at::randn({V, C});    // (N, C), (V, C)
  head_m[7] = head_m[3];  // exact ties in every row of the model's logits: argmax must pick 3, not 7
  const at::Tensor lt = at::linear(ht.to(at::kDouble), head_t.to(at::kDouble));  // (N, V)
  const at::Tensor lm = at::linear(hm.to(at::kDouble), head_m.to(at::kDouble));  // (N, V)
  const at::Tensor log_pt = at::log_softmax(lt, 1), log_pm = at::log_softmax(lm, 1);
  const at::Tensor expected = (log_pt.exp() * (log_pt - log_pm)).sum(1);  // (N)
  for (int64_t chunk : {0, 1, 5, 41, 100}) {
    const auto c = eval::compare_next_token(ht, head_t, hm, head_m, chunk);
    EXPECT_LE(((c.kl.to(at::kDouble) - expected).abs() / expected).max().item<double>(), 1e-5) << chunk;
    EXPECT_TRUE(c.teacher_top1.equal(lt.argmax(1))) << chunk;
    EXPECT_TRUE(c.model_top1.equal(lm.argmax(1))) << chunk;
    EXPECT_FALSE(c.model_top1.eq(7).any().item<bool>()) << chunk;
  }
  // Identical inputs: KL exactly 0, argmaxes equal.
  const auto same = eval::compare_next_token(hm, head_m, hm, head_m, 7);
  EXPECT_EQ(same.kl.abs().max().item<float>(), 0.0f);
  EXPECT_TRUE(same.teacher_top1.equal(same.model_top1));
  EXPECT_THROW(eval::compare_next_token(ht, head_t, hm, head_m.narrow(0, 0, V - 1)), Error);
}

TEST(Fidelity, MatchesTransformersFloat64) {
  const auto fixture = eval_test::read_json(eval_test::dir() + "/fidelity.json");
  for (const auto& c : fixture["cases"]) {
    const std::string name = c["name"];
    eval_test::Loaded teacher("model", c["teacher_rope_override"].get<std::string>());
    eval_test::Loaded model(c["model"].get<std::string>(), c["model_rope_override"].get<std::string>());
    const auto streams = fixture_streams(c["streams"]);
    const double expected = c["kl_sum"].get<double>() / c["positions"].get<double>();
    double first_kl = 0;
    for (const auto& [batch, chunk] : {std::pair<int64_t, int64_t>{1, 0}, {1, 7}, {1, 1}, {3, 0}}) {
      eval::FidelityParams p;
      p.context = c["context"];
      p.stride = c["stride"];
      p.batch_size = batch;
      p.chunk_rows = chunk;
      const auto r = eval::evaluate_fidelity(teacher.eval, model.eval, streams, p);
      EXPECT_EQ(r.positions, c["positions"].get<int64_t>()) << name;
      EXPECT_LE(std::abs(r.kl - expected) / expected, kRelTol) << name << " batch " << batch << " chunk " << chunk
                                                               << ": " << r.kl << " vs transformers " << expected;
      EXPECT_EQ(r.agree, c["agree"].get<int64_t>()) << name;
      EXPECT_DOUBLE_EQ(r.top1_agreement, c["agree"].get<double>() / c["positions"].get<double>()) << name;
      EXPECT_DOUBLE_EQ(r.teacher_accuracy, c["teacher_correct"].get<double>() / c["positions"].get<double>());
      EXPECT_DOUBLE_EQ(r.model_accuracy, c["model_correct"].get<double>() / c["positions"].get<double>());
      // The chunk size changes only the float32 rounding of the LM-head GEMMs (batching also
      // that of the forward, covered by the bound against transformers above). KL here is ~0.015
      // nats, a difference of O(1) log-probabilities, so 1e-8 nats of rounding is ~1e-6 of it.
      if (first_kl == 0) first_kl = r.kl;
      if (batch == 1) EXPECT_NEAR(r.kl, first_kl, 5e-6 * first_kl) << name << " chunk " << chunk;
    }
  }
}

TEST(Fidelity, PositionsAreThePerplexityTokens) {
  eval_test::Loaded teacher("model"), scaled("model", R"({"rope_type": "linear", "factor": 4.0})");
  const auto streams = fixture_streams(nlohmann::json::array({0, 1}));
  for (int64_t stride : {0, 9}) {
    eval::FidelityParams f;
    f.context = 40;
    f.stride = stride;
    eval::PerplexityParams p;
    p.context = 40;
    p.stride = stride;
    const auto fr = eval::evaluate_fidelity(teacher.eval, scaled.eval, streams, f);
    const auto pr = eval::evaluate_perplexity(scaled.eval, streams, p);
    EXPECT_EQ(fr.positions, pr.tokens);
    EXPECT_EQ(fr.windows, pr.windows);
    EXPECT_GT(fr.kl, 0.01);
    EXPECT_LT(fr.top1_agreement, 1.0);
  }
}

TEST(Fidelity, IdenticalModelsGiveZeroAndFullAgreement) {
  const auto streams = fixture_streams(nlohmann::json::array({0, 1}));
  eval::FidelityParams p;
  p.context = 32;
  p.batch_size = 2;
  // One DecoderModel and one RoPE: a single forward serves both sides.
  eval_test::Loaded a("model");
  const auto self = eval::evaluate_fidelity(a.eval, a.eval, streams, p);
  EXPECT_EQ(self.kl, 0.0);
  EXPECT_EQ(self.top1_agreement, 1.0);
  EXPECT_DOUBLE_EQ(self.teacher_accuracy, self.model_accuracy);
  // The same weights loaded twice: two forwards, bit-identical on the CPU.
  eval_test::Loaded b("model");
  const auto twice = eval::evaluate_fidelity(a.eval, b.eval, streams, p);
  EXPECT_LE(std::abs(twice.kl), 1e-7);
  EXPECT_EQ(twice.top1_agreement, 1.0);
  EXPECT_EQ(twice.positions, self.positions);
}

TEST(Fidelity, DifferentVocabularyIsAnError) {
  eval_test::Loaded teacher("other_vocab"), model("model");
  eval::FidelityParams p;
  p.context = 16;
  try {
    eval::evaluate_fidelity(teacher.eval, model.eval, fixture_streams(nlohmann::json::array({1})), p);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("vocab_size 300 differs from the vocab_size 320"), std::string::npos)
        << e.what();
  }
}

TEST(FidelityCli, EvalWritesFidelityBesidePerplexity) {
  SKIP_WITHOUT_TOKENIZER();
  const std::string d = eval_test::dir(), out = ::testing::TempDir() + "/fidelity_eval.json";
  const auto r = test_env::run_command(test_env::linearard_bin() + " eval --model " + d +
                                       "/model --rope-scaling '{\"rope_type\": \"linear\", \"factor\": 4.0}' --teacher " +
                                       d + "/model --task ppl,fidelity --text " + d +
                                       "/text.txt --contexts 16,48 --stride 8 --batch-size 2 --overwrite --json " + out);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("fidelity T=48 stride=8: KL(teacher||model) "), std::string::npos) << r.output;
  const auto j = eval_test::read_json(out);
  ASSERT_EQ(j["fidelity"]["results"].size(), 2u);
  EXPECT_EQ(j["fidelity"]["teacher"]["rope"]["rope_type"], "default");
  for (size_t i = 0; i < 2; ++i) {
    const auto& f = j["fidelity"]["results"][i];
    EXPECT_EQ(f["positions"], j["ppl"]["results"][i]["tokens"]);
    EXPECT_GT(f["kl"].get<double>(), 0.0);
    EXPECT_GT(f["top1_agreement"].get<double>(), 0.0);
    EXPECT_LT(f["top1_agreement"].get<double>(), 1.0);
  }
}

TEST(FidelityCli, BadArgumentsFailWithOneLine) {
  SKIP_WITHOUT_TOKENIZER();
  const std::string d = eval_test::dir();
  const std::string bin = test_env::linearard_bin() + " eval --model " + d + "/model --text " + d + "/text.txt ";
  const std::pair<std::string, std::string> cases[] = {
      {"--task fidelity --contexts 16", "--teacher: the fidelity task needs the teacher model"},
      {"--task fidelity --contexts 16 --teacher " + d + "/other_vocab",
       "--teacher " + d + "/other_vocab: vocab_size 300 differs from the vocab_size 320 of --model " + d + "/model"},
      {"--task fidelity --teacher " + d + "/model", "--contexts: fidelity needs at least one context length"},
  };
  for (const auto& [args, message] : cases) {
    const auto r = test_env::run_command(bin + args);
    EXPECT_EQ(r.exit_code, 1) << args;
    EXPECT_NE(r.output.find("linearard: error: " + message), std::string::npos) << args << "\n" << r.output;
  }
}

// CUDA fp32 and bf16 against the CPU float32 result; skipped without a GPU.
TEST(FidelityCuda, MatchesCpu) {
  if (!at::hasCUDA()) GTEST_SKIP() << "no CUDA device";
  const auto streams = fixture_streams(nlohmann::json::array({0, 1}));
  const std::string scaled = R"({"rope_type": "linear", "factor": 4.0})";
  eval_test::Loaded cpu_teacher("model"), cpu_model("model", scaled);
  eval::FidelityParams p;
  p.context = 48;
  p.stride = 16;
  p.batch_size = 2;
  const auto ref = eval::evaluate_fidelity(cpu_teacher.eval, cpu_model.eval, streams, p);
  for (const at::ScalarType dtype : {at::kFloat, at::kBFloat16}) {
    const auto weights = model::DecoderModel::load(eval_test::dir() + "/model", dtype, at::kCUDA);
    eval::EvalModel teacher = cpu_teacher.eval, model = cpu_model.eval;
    teacher.model = model.model = &weights;  // one DecoderModel, two RoPEs
    const auto r = eval::evaluate_fidelity(teacher, model, streams, p);
    const bool fp32 = dtype == at::kFloat;
    std::printf("%s: KL %.6f (CPU %.6f), top-1 %.4f (CPU %.4f)\n", fp32 ? "fp32" : "bf16", r.kl, ref.kl,
                r.top1_agreement, ref.top1_agreement);
    EXPECT_EQ(r.positions, ref.positions);
    // fp32: TF32 is off for LibTorch matmuls by default; bf16: a few % on these random weights.
    EXPECT_NEAR(r.kl, ref.kl, fp32 ? 1e-4 * ref.kl : 0.1 * ref.kl + 0.02);
    EXPECT_NEAR(r.top1_agreement, ref.top1_agreement, fp32 ? 2.0 / ref.positions : 0.08);
  }
}

}  // namespace
