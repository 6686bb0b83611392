#include "eval/passkey.h"

#include <algorithm>
#include <chrono>
#include <cmath>

#include "common/error.h"
#include "common/option_error.h"
#include "eval/kv_cache.h"
#include "eval/splitmix64.h"

namespace linearard::eval {
namespace {

std::string filler(int64_t first, int64_t count) {
  std::string s;
  for (int64_t i = first; i < first + count; ++i) {
    if (i > first) s += ' ';
    s += kPasskeyFiller[i % 5];
  }
  return s;
}

int64_t count_tokens(const tok::Tokenizer& tok, int64_t sentences, double depth, int64_t key) {
  return static_cast<int64_t>(encode_prompt(tok, passkey_text(sentences, depth, key)).size());
}

// The most filler sentences whose prompt fits in target_length tokens (base: tokens with none).
// Token counts grow about linearly with the sentences: estimate from 64 of them, then bracket and
// bisect.
int64_t fit_filler(const tok::Tokenizer& tok, int64_t target_length, double depth, int64_t key, int64_t base) {
  constexpr int64_t kProbe = 64;
  const double per = std::max(1.0, (count_tokens(tok, kProbe, depth, key) - base) / double(kProbe));
  const int64_t estimate = static_cast<int64_t>((target_length - base) / per);
  int64_t lo = std::max<int64_t>(0, estimate - estimate / 16 - 8);  // fits
  while (lo > 0 && count_tokens(tok, lo, depth, key) > target_length) lo /= 2;
  int64_t hi = estimate + estimate / 16 + 8;  // does not fit
  while (count_tokens(tok, hi, depth, key) <= target_length) hi *= 2;
  while (hi - lo > 1) {
    const int64_t mid = lo + (hi - lo) / 2;
    (count_tokens(tok, mid, depth, key) <= target_length ? lo : hi) = mid;
  }
  return lo;
}

}  // namespace

std::vector<int64_t> encode_prompt(const tok::Tokenizer& tok, const std::string& text) {
  std::vector<int32_t> ids = tok.encode(text, /*add_special=*/true);
  if (tok.adds_eos() && !ids.empty() && ids.back() == tok.eos_id()) ids.pop_back();
  return std::vector<int64_t>(ids.begin(), ids.end());
}

std::string passkey_text(int64_t filler_sentences, double depth, int64_t key) {
  if (depth < 0 || depth > 1) fail_option("depths", "depth must be in [0, 1], got " + std::to_string(depth));
  const int64_t before = std::llround(depth * static_cast<double>(filler_sentences));
  const std::string k = std::to_string(key);
  const std::string needle = "The pass key is " + k + ". Remember it. " + k + " is the pass key.";
  return std::string(kPasskeyTask) + "\n" + filler(0, before) + "\n" + needle + "\n" +
         filler(before, filler_sentences - before) + "\n" + kPasskeyQuestion;
}

int64_t passkey_key(uint64_t seed, int64_t length, int64_t depth_index, int64_t trial) {
  uint64_t h = splitmix64(seed);
  for (uint64_t v : {static_cast<uint64_t>(length), static_cast<uint64_t>(depth_index), static_cast<uint64_t>(trial)})
    h = splitmix64(h ^ v);
  return 10000 + static_cast<int64_t>(h % 90000);
}

PasskeyPrompt make_passkey_prompt(const tok::Tokenizer& tok, int64_t target_length, double depth,
                                  int64_t depth_index, int64_t trial, uint64_t seed, int64_t hint) {
  PasskeyPrompt p;
  p.target_length = target_length;
  p.depth = depth;
  p.trial = trial;
  p.key = passkey_key(seed, target_length, depth_index, trial);
  const int64_t base = count_tokens(tok, 0, depth, p.key);
  if (base > target_length)
    fail_option("lengths", std::to_string(target_length) + " tokens is shorter than the passkey prompt without filler (" +
                          std::to_string(base) + " tokens)");
  int64_t lo = 0;
  if (hint >= 0 && count_tokens(tok, hint, depth, p.key) <= target_length &&
      count_tokens(tok, hint + 1, depth, p.key) > target_length) {
    lo = hint;  // the other trials' keys usually take as many tokens
  } else {
    lo = fit_filler(tok, target_length, depth, p.key, base);
  }
  p.filler_sentences = lo;
  const std::string text = passkey_text(lo, depth, p.key);
  p.prompt = encode_prompt(tok, text);
  // The answer as the tokens that follow the prompt (harness rule: continuation taken in context).
  const std::vector<int64_t> whole = encode_prompt(tok, text + " " + std::to_string(p.key));
  if (whole.size() <= p.prompt.size()) fail("passkey", "the key adds no tokens to the prompt");
  p.answer.assign(whole.begin() + static_cast<int64_t>(p.prompt.size()), whole.end());
  return p;
}

std::vector<PasskeyPrompt> make_passkey_prompts(const tok::Tokenizer& tok, const PasskeyParams& p) {
  if (p.lengths.empty() || p.depths.empty()) fail("passkey", "needs --lengths and --depths");
  if (p.trials < 1) fail_option("trials", "must be at least 1");
  std::vector<PasskeyPrompt> prompts;
  for (int64_t length : p.lengths)
    for (size_t d = 0; d < p.depths.size(); ++d)
      for (int64_t t = 0; t < p.trials; ++t)
        prompts.push_back(make_passkey_prompt(tok, length, p.depths[d], static_cast<int64_t>(d), t, p.seed,
                                              t > 0 ? prompts.back().filler_sentences : -1));
  return prompts;
}

PasskeyResult evaluate_passkey(const EvalModel& m, const tok::Tokenizer& tok, const PasskeyParams& p,
                               const std::vector<PasskeyPrompt>& prompts) {
  const auto t0 = std::chrono::steady_clock::now();
  PasskeyResult r;
  r.params = p;
  const size_t nl = p.lengths.size(), nd = p.depths.size();
  if (prompts.size() != nl * nd * static_cast<size_t>(p.trials))
    fail("passkey", "prompts do not match the lengths x depths x trials grid");
  r.accuracy.assign(nl, std::vector<double>(nd, 0.0));
  r.accuracy_by_length.assign(nl, 0.0);
  r.mean_prompt_tokens.assign(nl, 0);
  r.samples = nlohmann::json::array();
  std::vector<double> tokens_sum(nl, 0.0);
  size_t i = 0;
  for (size_t l = 0; l < nl; ++l) {
    for (size_t d = 0; d < nd; ++d) {
      for (int64_t t = 0; t < p.trials; ++t, ++i) {
        const PasskeyPrompt& q = prompts[i];
        const std::vector<int64_t> got = greedy_decode(m, q.prompt, static_cast<int64_t>(q.answer.size()));
        const bool correct = got == q.answer;
        r.accuracy[l][d] += correct ? 1.0 / p.trials : 0.0;
        tokens_sum[l] += static_cast<double>(q.prompt.size());
        std::string generated;
        try {  // a model vocabulary larger than the tokenizer's may produce ids it cannot decode
          generated = tok.decode(std::vector<int32_t>(got.begin(), got.end()), true);
        } catch (const std::exception&) {
          generated = "<undecodable>";
        }
        r.samples.push_back({{"length", q.target_length}, {"depth", q.depth}, {"trial", q.trial}, {"key", q.key},
                             {"prompt_tokens", q.prompt.size()}, {"generated", generated},
                             {"correct", correct}});
      }
      r.accuracy_by_length[l] += r.accuracy[l][d] / static_cast<double>(nd);
    }
    r.mean_prompt_tokens[l] = std::llround(tokens_sum[l] / static_cast<double>(nd * p.trials));
  }
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return r;
}

}  // namespace linearard::eval
