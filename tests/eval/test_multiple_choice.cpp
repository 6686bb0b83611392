// Multiple choice against a Python re-implementation of lm-evaluation-harness's rules
// (make_eval_fixtures.py, transformers' tokenizer and model): the encoded requests (whitespace
// moved to the continuation, continuation taken in context, empty context -> prefix token, with
// and without BOS), the summed log-likelihoods and is_greedy (also with left truncation), and
// acc / acc_norm / stderr.
#include <gtest/gtest.h>

#include <cmath>

#include "common/error.h"
#include "eval/eval_tasks.h"
#include "eval/multiple_choice.h"
#include "eval_test_util.h"

namespace {

using namespace linearard;

// Sums of a few float32 log-probabilities against float64 ones from transformers' float32 logits:
// 1e-5 relative (issue 2's parity bound) of values around 30 nats.
constexpr double kRelTol = 1e-5;

std::vector<eval::LoglikelihoodRequest> python_requests(const nlohmann::json& variant) {
  std::vector<eval::LoglikelihoodRequest> reqs;
  for (const auto& r : variant["requests"])
    reqs.push_back({r["context"].get<std::vector<int64_t>>(), r["continuation"].get<std::vector<int64_t>>()});
  return reqs;
}

TEST(MultipleChoice, Helpers) {
  EXPECT_EQ(eval::utf8_length("café"), 4);  // Python's len, not bytes
  EXPECT_EQ(eval::utf8_length("déjà vu"), 7);
  EXPECT_EQ(eval::utf8_length(""), 0);
  // sample standard deviation / sqrt(n): [1, 0, 0, 1] -> sqrt(1/3) / 2
  EXPECT_NEAR(eval::mean_stderr({1, 0, 0, 1}), std::sqrt(1.0 / 3.0) / 2.0, 1e-15);
  EXPECT_EQ(eval::mean_stderr({1}), 0.0);
}

TEST(MultipleChoice, LoglikelihoodsMatchTransformers) {
  eval_test::Loaded m("model");
  const auto fixture = eval_test::read_json(eval_test::dir() + "/mc_expected.json");
  for (const auto& v : fixture["variants"]) {
    const auto reqs = python_requests(v);
    for (int64_t batch : {1, 4}) {
      const auto lls = eval::loglikelihoods(m.eval, reqs, v["max_length"], batch);
      ASSERT_EQ(lls.size(), reqs.size());
      for (size_t i = 0; i < lls.size(); ++i) {
        const double expected = v["requests"][i]["ll"];
        EXPECT_LE(std::abs(lls[i].ll - expected), kRelTol * std::abs(expected))
            << "request " << i << " max_length " << v["max_length"] << " batch " << batch;
        EXPECT_EQ(lls[i].greedy, v["requests"][i]["greedy"].get<bool>()) << i;
      }
    }
  }
}

TEST(MultipleChoice, AccuracyFollowsTheHarness) {
  eval_test::Loaded m("model");
  const auto docs = eval::read_mc_jsonl(eval_test::dir() + "/mc.jsonl");
  const auto fixture = eval_test::read_json(eval_test::dir() + "/mc_expected.json");
  for (const auto& v : fixture["variants"]) {
    const auto r = eval::score_mc("t", docs, eval::loglikelihoods(m.eval, python_requests(v), v["max_length"], 3));
    EXPECT_EQ(r.docs, static_cast<int64_t>(docs.size()));
    EXPECT_DOUBLE_EQ(r.acc, v["acc"].get<double>());
    EXPECT_DOUBLE_EQ(r.acc_norm, v["acc_norm"].get<double>());
    EXPECT_NEAR(r.acc_stderr, v["acc_stderr"].get<double>(), 1e-12);
    EXPECT_NEAR(r.acc_norm_stderr, v["acc_norm_stderr"].get<double>(), 1e-12);
  }
  // acc vs acc_norm on hand-made scores: choice 1 wins on the sum, choice 0 per character.
  std::vector<eval::McDoc> one = {{"ctx", {"aaaaaaaaaa", "b"}, 0}};
  const auto r = eval::score_mc("t", one, {{-10.0, false}, {-5.0, false}});
  EXPECT_EQ(r.acc, 0.0);
  EXPECT_EQ(r.acc_norm, 1.0);  // -10/10 = -1 > -5/1
  // Ties go to the first choice, as numpy's argmax.
  EXPECT_EQ(eval::score_mc("t", one, {{-3.0, false}, {-3.0, false}}).acc, 1.0);
}

TEST(MultipleChoice, EncodePairMatchesHarness) {
  SKIP_WITHOUT_TOKENIZER();
  const auto tok = eval::load_eval_tokenizer(eval_test::dir() + "/model");
  const auto docs = eval::read_mc_jsonl(eval_test::dir() + "/mc.jsonl");
  const auto fixture = eval_test::read_json(eval_test::dir() + "/mc_expected.json");
  for (const auto& v : fixture["variants"]) {
    eval::McEncodeOptions o;
    o.add_bos = v["add_bos"];
    size_t i = 0;
    for (const auto& d : docs) {
      for (const auto& c : d.choices) {
        const auto r = eval::encode_pair(*tok, d.context, " " + c, o);
        EXPECT_EQ(r.context, v["requests"][i]["context"].get<std::vector<int64_t>>()) << d.context << " | " << c;
        EXPECT_EQ(r.continuation, v["requests"][i]["continuation"].get<std::vector<int64_t>>()) << d.context << " | " << c;
        ++i;
      }
    }
  }
}

TEST(MultipleChoice, BadFilesNameTheLine) {
  const std::string path = ::testing::TempDir() + "/bad_mc.jsonl";
  const std::pair<std::string, std::string> cases[] = {
      {R"({"context": "a", "choices": ["x", "y"], "gold": 2})", ":1: gold 2 is not a choice index"},
      {"{\"context\": \"a\", \"choices\": [\"x\"], \"gold\": 0}", ":1: needs at least 2 choices"},
      {"\n{\"context\": 1, \"choices\": [], \"gold\": 0}", ":2: expected {\"context\""},
      {"{not json", ":1: invalid JSON"},
  };
  for (const auto& [text, message] : cases) {
    FILE* f = std::fopen(path.c_str(), "w");
    std::fputs(text.c_str(), f);
    std::fclose(f);
    try {
      eval::read_mc_jsonl(path);
      ADD_FAILURE() << "no error for " << text;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(path + message), std::string::npos) << e.what();
    }
  }
}

}  // namespace
