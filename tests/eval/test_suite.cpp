// The offline task suite: BIG-bench multiple choice against make_suite_fixtures.py (prompts, few-shot
// draw and lm-evaluation-harness's scoring re-implemented with transformers, log-likelihoods to
// 1e-6 relative), malformed task files (one line naming file and field), RULER samples (exact lengths,
// the answers they claim are in the prompt, reproducible), string_match_all, and batched greedy
// decoding against one prompt at a time.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <regex>

#include "common/error.h"
#include "eval/batch_decode.h"
#include "eval/bigbench_task.h"
#include "eval/eval_tasks.h"
#include "eval/kv_cache.h"
#include "eval/ruler.h"
#include "eval_test_util.h"

namespace {

using namespace linearard;

std::string suite_dir() { return std::filesystem::path(eval_test::dir()).parent_path().string() + "/suite"; }

std::string error_of(const std::string& text) {
  try {
    eval::parse_bigbench_task(text, "t/task.json", "t");
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST(BigBench, MatchesTheHarnessReference) {
  SKIP_WITHOUT_TOKENIZER();
  eval_test::Loaded m("model");
  const auto tok = eval::load_eval_tokenizer(eval_test::dir() + "/model");
  const auto expected = eval_test::read_json(suite_dir() + "/expected.json");
  eval::TaskPlan plan;
  plan.tasks = {"bbh"};
  plan.bigbench_dir = suite_dir() + "/bigbench";
  plan.bbh_tasks = {"sky_colors", "fox_order_short"};
  plan.fewshot = expected["fewshot"];
  plan.fewshot_seed = expected["seed"];
  plan.batch_size = 3;
  const eval::PreparedTasks in = eval::prepare_tasks(plan, tok.get());
  const auto out = eval::run_tasks(m.eval, plan, in, tok.get(), nullptr);
  ASSERT_EQ(out["bbh"].size(), 2u);
  for (size_t t = 0; t < 2; ++t) {
    const auto& want = expected["tasks"][t];
    const auto& got = out["bbh"][t];
    EXPECT_EQ(got["task"], "bbh:" + want["name"].get<std::string>());
    ASSERT_EQ(in.bbh[t].docs.size(), want["contexts"].size());
    for (size_t d = 0; d < in.bbh[t].docs.size(); ++d) EXPECT_EQ(in.bbh[t].docs[d].context, want["contexts"][d]) << d;
    ASSERT_EQ(got["loglikelihoods"].size(), want["loglikelihoods"].size());
    // 1e-6 relative: float32 forwards (ours, transformers') agree to about one float32 ulp of the
    // summed log-likelihood (1.4e-6 absolute seen at -24 nats).
    for (size_t k = 0; k < got["loglikelihoods"].size(); ++k) {
      const double w = want["loglikelihoods"][k].get<double>();
      EXPECT_NEAR(got["loglikelihoods"][k].get<double>(), w, 1e-6 * std::max(1.0, std::abs(w))) << t << " " << k;
    }
    EXPECT_DOUBLE_EQ(got["acc"].get<double>(), want["acc"].get<double>());
    EXPECT_DOUBLE_EQ(got["acc_norm"].get<double>(), want["acc_norm"].get<double>());
  }
}

TEST(BigBench, FormatAndDraw) {
  const auto t = eval::parse_bigbench_task(
      R"({"task_prefix": "P\n", "examples": [{"input": "x", "target_scores": {"b": 0, "a": 1}},
          {"input": "y", "target": "gen"}, {"input": "z", "target_scores": {"c": 1, "d": 1}}]})",
      "t.json", "t");
  ASSERT_EQ(t.examples.size(), 2u);                      // the generative example is skipped
  EXPECT_EQ(t.examples[0].choices, (std::vector<std::string>{"b", "a"}));  // file order
  EXPECT_EQ(t.examples[0].gold, 1);
  EXPECT_EQ(t.examples[1].gold, 0);  // ties: the first
  EXPECT_EQ(eval::bigbench_prompt(t, t.examples[0]), "\nQ: x\n  choice: b\n  choice: a\nA:");
  EXPECT_EQ(eval::bigbench_context(t, 1, 1, 0), "P\n\nQ: x\n  choice: b\n  choice: a\nA: a\n\n\nQ: z\n  choice: c\n  choice: d\nA:");
  for (int64_t doc = 0; doc < 50; ++doc) {
    const auto idx = eval::fewshot_indices(50, doc, 5, 7);
    EXPECT_EQ(idx, eval::fewshot_indices(50, doc, 5, 7));
    std::set<int64_t> seen(idx.begin(), idx.end());
    EXPECT_EQ(seen.size(), 5u);
    EXPECT_EQ(seen.count(doc), 0u);
  }
  EXPECT_EQ(eval::bbh_task_names().size(), 22u);
}

TEST(BigBench, MalformedFilesNameFileAndField) {
  EXPECT_EQ(error_of("{"), error_of("{").substr(0, 0) + error_of("{"));  // one line
  EXPECT_EQ(error_of("{").find('\n'), std::string::npos);
  EXPECT_EQ(error_of("{").rfind("t/task.json: invalid JSON", 0), 0u);
  EXPECT_EQ(error_of("[]"), "t/task.json: expected a JSON object (a BIG-bench task.json)");
  EXPECT_EQ(error_of("{}"), "t/task.json: examples: missing");
  EXPECT_EQ(error_of(R"({"examples": 3})"), "t/task.json: examples: expected an array");
  EXPECT_EQ(error_of(R"({"examples": [{"input": 1, "target_scores": {"a": 1, "b": 0}}]})"),
            "t/task.json: examples[0].input: expected a string");
  EXPECT_EQ(error_of(R"({"examples": [{"input": "x", "target_scores": [1]}]})"),
            "t/task.json: examples[0].target_scores: expected an object {choice: score}");
  EXPECT_EQ(error_of(R"({"examples": [{"input": "x", "target_scores": {"a": 1}}]})"),
            "t/task.json: examples[0].target_scores: needs at least 2 choices");
  EXPECT_EQ(error_of(R"({"examples": [{"input": "x", "target_scores": {"a": "1", "b": 0}}]})"),
            "t/task.json: examples[0].target_scores.a: expected a number");
  EXPECT_EQ(error_of(R"({"examples": [{"input": "x", "target": "y"}]})"),
            "t/task.json: examples: no multiple-choice example (none has target_scores)");
  EXPECT_EQ(error_of(R"({"task_prefix": 1, "examples": []})"), "t/task.json: task_prefix: expected a string");
  EXPECT_EQ(error_of(R"({"append_choices_to_input": "no", "examples": []})"),
            "t/task.json: append_choices_to_input: expected true or false");
}

int64_t count_word(const std::string& text, const std::string& w) {
  const std::regex re("\\b" + w + "\\b");
  return std::distance(std::sregex_iterator(text.begin(), text.end(), re), std::sregex_iterator());
}

TEST(Ruler, SamplesHaveTheAnswersTheyClaim) {
  SKIP_WITHOUT_TOKENIZER();
  const auto tok = eval::load_eval_tokenizer(eval_test::dir() + "/model");
  const auto noise = eval::read_haystack("");
  const std::string hay_file = ::testing::TempDir() + "/haystack.txt";
  std::ofstream(hay_file) << "In the beginning God created the heaven and the earth.\n\n  And the earth was without form.\n";
  const auto lines = eval::read_haystack(hay_file);
  ASSERT_EQ(lines.size(), 2u);
  for (const auto* hay : {&noise, &lines}) {
    for (const std::string& task : eval::ruler_task_names()) {
      for (int64_t length : {4096, 6000}) {
        for (int64_t i = 0; i < 2; ++i) {
          const auto s = eval::make_ruler_sample(*tok, *hay, task, length, i, 3);
          ASSERT_EQ(static_cast<int64_t>(s.prompt.size()), length) << task;
          EXPECT_EQ(s.prompt, eval::make_ruler_sample(*tok, *hay, task, length, i, 3).prompt);  // reproducible
          EXPECT_NE(s.prompt, eval::make_ruler_sample(*tok, *hay, task, length, i, 4).prompt);  // seeded
          const std::string text = tok->decode(std::vector<int32_t>(s.prompt.begin(), s.prompt.end()), true);
          ASSERT_FALSE(s.answers.empty());
          for (const auto& a : s.answers) EXPECT_NE(text.find(a), std::string::npos) << task << " " << a;
          if (task == "niah_single" || task == "niah_multikey" || task == "niah_multivalue") {
            EXPECT_EQ(s.answers.size(), task == "niah_multivalue" ? 4u : 1u);
            const std::smatch m = [&] {
              std::smatch r;
              std::regex_search(text, r, std::regex("special magic numbers for ([a-z]+-[a-z]+) mentioned"));
              return r;
            }();
            ASSERT_FALSE(m.empty()) << task;
            for (const auto& a : s.answers)
              EXPECT_NE(text.find("One of the special magic numbers for " + m[1].str() + " is: " + a + "."),
                        std::string::npos) << task;
          } else if (task == "vt") {
            ASSERT_EQ(s.answers.size(), 5u);
            const std::string value = [&] {
              std::smatch r;
              std::regex_search(text, r, std::regex("VAR " + s.answers[0] + " = ([0-9]+)\\."));
              return r[1].str();
            }();
            EXPECT_EQ(value.size(), 5u);
            EXPECT_NE(text.find("assigned the value " + value + " in the text above"), std::string::npos);
            for (size_t k = 1; k < 5; ++k)
              EXPECT_NE(text.find("VAR " + s.answers[k] + " = VAR " + s.answers[k - 1] + "."), std::string::npos);
          } else if (task == "cwe") {
            ASSERT_EQ(s.answers.size(), 10u);
            const std::string list = text.substr(0, text.find("\nQuestion:"));
            for (const auto& a : s.answers) EXPECT_EQ(count_word(list, a), 30) << a;
            // every other listed word appears at most 3 times
            std::map<std::string, int64_t> counts;
            const std::regex item("[0-9]+\\. ([a-z]+)");
            for (auto it = std::sregex_iterator(list.begin(), list.end(), item); it != std::sregex_iterator(); ++it)
              ++counts[(*it)[1].str()];
            for (const auto& [w, c] : counts)
              if (std::find(s.answers.begin(), s.answers.end(), w) == s.answers.end()) EXPECT_LE(c, 3) << w;
          } else if (task == "fwe") {
            ASSERT_EQ(s.answers.size(), 3u);
            const std::string body = text.substr(0, text.find("\nQuestion:"));
            std::map<std::string, int64_t> counts;
            const std::regex word(" ([a-z]{4})\\b");
            for (auto it = std::sregex_iterator(body.begin(), body.end(), word); it != std::sregex_iterator(); ++it)
              ++counts[(*it)[1].str()];
            const int64_t a0 = counts[s.answers[0]], a1 = counts[s.answers[1]], a2 = counts[s.answers[2]];
            EXPECT_GT(a0, a1);
            EXPECT_GT(a1, a2);
            for (const auto& [w, c] : counts)
              if (std::find(s.answers.begin(), s.answers.end(), w) == s.answers.end()) EXPECT_LT(c, a2) << w;
          }
        }
      }
    }
  }
  EXPECT_THROW(eval::make_ruler_sample(*tok, noise, "cwe", 512, 0, 0), Error);  // too short for 300 items
  EXPECT_THROW(eval::make_ruler_sample(*tok, noise, "nope", 4096, 0, 0), Error);
}

TEST(Ruler, StringMatchAll) {
  EXPECT_DOUBLE_EQ(eval::string_match_all("The numbers are 123 and 456", {"123", "456"}), 1.0);
  EXPECT_DOUBLE_EQ(eval::string_match_all("The numbers are 123", {"123", "456"}), 0.5);
  EXPECT_DOUBLE_EQ(eval::string_match_all("answer: ABCDE", {"abcde"}), 1.0);  // case-insensitive
  EXPECT_DOUBLE_EQ(eval::string_match_all("", {"x"}), 0.0);
}

TEST(Ruler, BatchedGreedyEqualsOneAtATime) {
  eval_test::Loaded m("model");
  std::vector<std::vector<int64_t>> prompts = {{0, 5, 9, 17, 33, 2, 8}, {0, 44, 3, 3, 90, 12, 7}, {0, 1, 2, 3, 4, 5, 6}};
  const auto batched = eval::greedy_decode_batch(m.eval, prompts, 9);
  for (size_t b = 0; b < prompts.size(); ++b) EXPECT_EQ(batched[b], eval::greedy_decode(m.eval, prompts[b], 9)) << b;
  // EOS: a row stops before it; the id the first row produces first is taken as EOS.
  const int64_t eos = batched[0][0];
  const auto stopped = eval::greedy_decode_batch(m.eval, prompts, 9, eos);
  EXPECT_TRUE(stopped[0].empty());
  EXPECT_THROW(eval::greedy_decode_batch(m.eval, {{1, 2}, {}}, 3), Error);  // prompts of different lengths: test_humaneval.cpp
}

}  // namespace
