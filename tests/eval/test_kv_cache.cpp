// KV-cache decoding: the cached logits and greedy tokens equal a full forward over the whole
// sequence at every step (for every RoPE type whose tables do not depend on the sequence length,
// chunked prefill, a sliding window), and the greedy tokens equal transformers' generate() with its
// cache, including dynamic NTK decoding across max_position_embeddings.
#include <gtest/gtest.h>

#include "common/error.h"
#include "eval/kv_cache.h"
#include "eval_test_util.h"

namespace {

using namespace linearard;

// float32 on both paths; the cached step does the same operations on fewer rows, so the logits
// agree to rounding (observed ~1e-6); 1e-4 of the logit scale leaves room without hiding a
// wrong rotation or mask (those change logits by O(1)).
constexpr double kLogitTol = 1e-4;

std::vector<int64_t> random_prompt(int64_t n, int64_t vocab, uint64_t seed) {
  at::manual_seed(seed);
  at::Tensor t = at::randint(2, vocab, {n}, at::kLong);
  return std::vector<int64_t>(t.data_ptr<int64_t>(), t.data_ptr<int64_t>() + n);
}

// Full-forward float32 logits (V) at the last position of seq.
at::Tensor full_logits(const eval::EvalModel& m, const std::vector<int64_t>& seq) {
  const int64_t T = static_cast<int64_t>(seq.size());
  const auto tables = m.model->rope_tables_for(m.rope, T);
  model::ForwardRequest r;
  r.rope = &tables;
  return m.model->forward(at::tensor(seq, at::kLong).view({1, T}), r).logits[0][T - 1];
}

void expect_cache_matches_recompute(const eval::EvalModel& m, int64_t prompt_len, int64_t steps,
                                    const std::string& what, std::vector<int64_t> prefill_chunks = {}) {
  std::vector<int64_t> seq = random_prompt(prompt_len, m.model->config().vocab_size, 7);
  eval::KvCacheDecoder dec(m, 1, prompt_len + steps);
  at::Tensor logits;
  if (prefill_chunks.empty()) prefill_chunks = {prompt_len};
  int64_t at_pos = 0;
  for (int64_t n : prefill_chunks) {
    std::vector<int64_t> part(seq.begin() + at_pos, seq.begin() + at_pos + n);
    logits = dec.extend(at::tensor(part, at::kLong).view({1, n}))[0];
    at_pos += n;
  }
  ASSERT_EQ(at_pos, prompt_len);
  for (int64_t s = 0; s < steps; ++s) {
    const at::Tensor ref = full_logits(m, seq);
    const double scale = ref.abs().max().item<double>();
    EXPECT_LE((logits - ref).abs().max().item<double>(), kLogitTol * scale) << what << " step " << s;
    const int64_t next = ref.argmax().item<int64_t>();
    seq.push_back(next);
    if (s + 1 < steps) logits = dec.extend(at::full({1, 1}, next, at::kLong))[0];
  }
  const std::vector<int64_t> prompt(seq.begin(), seq.begin() + prompt_len);
  EXPECT_EQ(eval::greedy_decode(m, prompt, steps), eval::greedy_decode_recompute(m, prompt, steps)) << what;
}

TEST(KvCache, MatchesFullRecomputation) {
  const std::pair<std::string, std::string> ropes[] = {
      {"checkpoint", ""},
      {"linear", R"({"rope_type": "linear", "factor": 4.0})"},
      {"yarn", R"({"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 64})"},
      {"llama3", R"({"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                    "original_max_position_embeddings": 32})"},
      // Inside max_position_embeddings dynamic NTK does not depend on the length.
      {"dynamic_within", R"({"rope_type": "dynamic", "factor": 2.0})"},
  };
  for (const auto& [name, rope] : ropes) {
    eval_test::Loaded m("model", rope);
    const int64_t prompt = name == "dynamic_within" ? 40 : 90;
    expect_cache_matches_recompute(m.eval, prompt, name == "dynamic_within" ? 20 : 12, name);
  }
}

TEST(KvCache, ChunkedPrefillMatches) {
  eval_test::Loaded m("model", R"({"rope_type": "linear", "factor": 2.0})");
  expect_cache_matches_recompute(m.eval, 50, 6, "chunks 1+20+29", {1, 20, 29});
}

TEST(KvCache, SlidingWindowMatches) {
  // The fixture's weights with a Mistral-style window of 16 keys (the forward masks it too).
  eval_test::Loaded base("model");
  model::ModelConfig config = base.model.config();
  config.sliding_window = 16;
  model::DecoderModel windowed(config, base.model.weights());
  eval::EvalModel m = base.eval;
  m.model = &windowed;
  expect_cache_matches_recompute(m, 30, 10, "window 16");
  expect_cache_matches_recompute(m, 30, 4, "window 16, chunked", {10, 12, 8});
  // And the window matters: the tokens differ from the unwindowed model's.
  const auto prompt = random_prompt(40, config.vocab_size, 7);
  EXPECT_NE(eval::greedy_decode(m, prompt, 8), eval::greedy_decode(base.eval, prompt, 8));
}

TEST(KvCache, Qwen3QkNormMatches) {
  // The fixture's weights as a Qwen3: per-head q/k RMSNorm before RoPE (the forward's parity with
  // transformers is test_model_parity's qwen3 cases), with and without left padding.
  eval_test::Loaded base("model");
  model::ModelConfig config = base.model.config();
  config.model_type = "qwen3";
  config.qk_norm = true;
  model::DecoderWeights weights = base.model.weights();
  at::manual_seed(5);
  for (auto& lw : weights.layers) {
    lw.q_norm = 1.0 + 0.3 * at::randn({config.head_dim});  // (D)
    lw.k_norm = 1.0 + 0.3 * at::randn({config.head_dim});  // (D)
  }
  model::DecoderModel qwen3(config, std::move(weights));
  eval::EvalModel m = base.eval;
  m.model = &qwen3;
  expect_cache_matches_recompute(m, 30, 10, "qk norm");
  expect_cache_matches_recompute(m, 30, 4, "qk norm, chunked", {10, 12, 8});
  // Left padding: row 1 is row 0's prompt behind 5 pads and must decode the same logits.
  const auto prompt = random_prompt(20, config.vocab_size, 9);
  std::vector<int64_t> padded(5, 0);
  padded.insert(padded.end(), prompt.begin(), prompt.end());
  eval::KvCacheDecoder alone(m, 1, 30), batch(m, 2, 30, {0, 5});
  std::vector<int64_t> row0 = prompt;
  row0.insert(row0.end(), 5, prompt.back());  // row 0 is 25 long too; its tail is compared nowhere
  at::Tensor a = alone.extend(at::tensor(prompt, at::kLong).view({1, 20}))[0];
  at::Tensor b = batch.extend(at::stack({at::tensor(row0, at::kLong), at::tensor(padded, at::kLong)}))[1];
  EXPECT_LE((a - b).abs().max().item<double>(), kLogitTol * a.abs().max().item<double>()) << "left padding";
  // And the norm matters: the tokens differ from the plain model's.
  EXPECT_NE(eval::greedy_decode(m, prompt, 8), eval::greedy_decode(base.eval, prompt, 8));
}

TEST(KvCache, GreedyMatchesTransformersGenerate) {
  const auto cases = eval_test::read_json(eval_test::dir() + "/generate.json");
  for (const auto& c : cases) {
    eval_test::Loaded m("model", c["rope_override"].get<std::string>());
    const std::vector<int64_t> prompt = c["prompt"], expected = c["generated"];
    EXPECT_EQ(eval::greedy_decode(m.eval, prompt, c["new_tokens"]), expected) << c["name"];
  }
}

TEST(KvCache, RejectsOverflow) {
  eval_test::Loaded m("model");
  eval::KvCacheDecoder dec(m.eval, 1, 4);
  dec.extend(at::zeros({1, 3}, at::kLong));
  EXPECT_THROW(dec.extend(at::zeros({1, 2}, at::kLong)), Error);
}

}  // namespace
