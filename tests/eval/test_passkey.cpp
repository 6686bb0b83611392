// Passkey retrieval: keys equal an independent Python splitmix64 (so they are the same on every
// platform), the prompt text follows the Landmark/LongLoRA layout, prompts are deterministic for a
// seed and are the longest that fit the target length, and an evaluation run is reproducible.
#include <gtest/gtest.h>

#include "common/error.h"
#include "eval/eval_tasks.h"
#include "eval/kv_cache.h"
#include "eval/passkey.h"
#include "eval_test_util.h"

namespace {

using namespace linearard;

TEST(Passkey, KeysMatchIndependentImplementation) {
  for (const auto& k : eval_test::read_json(eval_test::dir() + "/passkey_keys.json")) {
    const int64_t key = eval::passkey_key(k["seed"].get<uint64_t>(), k["length"], k["depth_index"], k["trial"]);
    EXPECT_EQ(key, k["key"].get<int64_t>());
    EXPECT_GE(key, 10000);
    EXPECT_LE(key, 99999);
  }
}

TEST(Passkey, TextLayout) {
  const std::string task = eval::kPasskeyTask, question = eval::kPasskeyQuestion;
  const std::string needle = "The pass key is 12345. Remember it. 12345 is the pass key.";
  // Depth 0: the needle right after the task line; depth 1: right before the question.
  EXPECT_EQ(eval::passkey_text(3, 0.0, 12345),
            task + "\n\n" + needle + "\nThe grass is green. The sky is blue. The sun is yellow.\n" + question);
  EXPECT_EQ(eval::passkey_text(3, 1.0, 12345),
            task + "\nThe grass is green. The sky is blue. The sun is yellow.\n" + needle + "\n\n" + question);
  EXPECT_EQ(eval::passkey_text(6, 0.5, 12345),
            task + "\nThe grass is green. The sky is blue. The sun is yellow.\n" + needle +
                "\nHere we go. There and back again. The grass is green.\n" + question);
  EXPECT_THROW(eval::passkey_text(3, 1.5, 1), Error);
}

TEST(Passkey, PromptsAreDeterministicAndFillTheLength) {
  SKIP_WITHOUT_TOKENIZER();
  const auto tok = eval::load_eval_tokenizer(eval_test::dir() + "/model");
  eval::PasskeyParams p;
  p.lengths = {150, 400};
  p.depths = {0.0, 0.5, 1.0};
  p.trials = 2;
  p.seed = 11;
  const auto a = eval::make_passkey_prompts(*tok, p), b = eval::make_passkey_prompts(*tok, p);
  ASSERT_EQ(a.size(), 12u);
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_EQ(a[i].prompt, b[i].prompt);
    EXPECT_EQ(a[i].answer, b[i].answer);
    EXPECT_EQ(a[i].key, b[i].key);
    const int64_t n = static_cast<int64_t>(a[i].prompt.size());
    EXPECT_LE(n, a[i].target_length);
    // The longest that fits: one more filler sentence would not.
    const auto longer = eval::encode_prompt(*tok, eval::passkey_text(a[i].filler_sentences + 1, a[i].depth, a[i].key));
    EXPECT_GT(static_cast<int64_t>(longer.size()), a[i].target_length) << i;
    EXPECT_EQ(a[i].prompt, eval::encode_prompt(*tok, eval::passkey_text(a[i].filler_sentences, a[i].depth, a[i].key)));
    // The answer tokens decode to the key.
    const std::vector<int32_t> ans(a[i].answer.begin(), a[i].answer.end());
    EXPECT_EQ(tok->decode(ans, true), " " + std::to_string(a[i].key));
  }
  p.seed = 12;
  const auto c = eval::make_passkey_prompts(*tok, p);
  int same = 0;
  for (size_t i = 0; i < a.size(); ++i) same += a[i].key == c[i].key;
  EXPECT_LT(same, 2);
  p.lengths = {10};
  EXPECT_THROW(eval::make_passkey_prompts(*tok, p), Error);  // shorter than the bare prompt
}

TEST(Passkey, EvaluationIsReproducible) {
  SKIP_WITHOUT_TOKENIZER();
  const auto tok = eval::load_eval_tokenizer(eval_test::dir() + "/model");
  eval_test::Loaded m("model");
  eval::PasskeyParams p;
  p.lengths = {150, 200};
  p.depths = {0.0, 1.0};
  p.trials = 2;
  const auto prompts = eval::make_passkey_prompts(*tok, p);
  const auto r1 = eval::evaluate_passkey(m.eval, *tok, p, prompts);
  const auto r2 = eval::evaluate_passkey(m.eval, *tok, p, prompts);
  EXPECT_EQ(r1.accuracy, r2.accuracy);
  EXPECT_EQ(r1.samples, r2.samples);
  ASSERT_EQ(r1.samples.size(), 8u);
  for (size_t l = 0; l < 2; ++l) {
    EXPECT_LE(r1.mean_prompt_tokens[l], p.lengths[l]);
    for (double a : r1.accuracy[l]) EXPECT_TRUE(a == 0.0 || a == 0.5 || a == 1.0);
  }
  // Correct means the greedy tokens are the answer: check one sample by hand.
  const auto& s = r1.samples[0];
  const auto got = eval::greedy_decode_recompute(m.eval, prompts[0].prompt, static_cast<int64_t>(prompts[0].answer.size()));
  EXPECT_EQ(s["correct"].get<bool>(), got == prompts[0].answer);
}

}  // namespace
