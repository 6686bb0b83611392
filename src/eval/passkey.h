// Passkey retrieval (Landmark Attention / LongLoRA passkey_retrivial.py, anchors §3.5): a 5-digit
// key hidden at a chosen depth of repetitive filler, then "What is the pass key? The pass key is";
// the model must greedily continue with the key. Prompts are built to a target length in tokens of
// the model's tokenizer; keys come from a seeded generator, so the same seed gives the same prompts
// on every machine.
#pragma once
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "eval/eval_model.h"
#include "tokenizer/tokenizer.h"

namespace linearard::eval {

// The Landmark/LongLoRA wording, verbatim.
constexpr const char* kPasskeyTask =
    "There is an important info hidden inside a lot of irrelevant text. Find it and memorize them. "
    "I will quiz you about the important information there.";
constexpr const char* kPasskeyFiller[] = {"The grass is green.", "The sky is blue.", "The sun is yellow.",
                                          "Here we go.", "There and back again."};
constexpr const char* kPasskeyQuestion = "What is the pass key? The pass key is";

// The prompt text: task, filler before the needle, needle, filler after it, question, one per line
// (LongLoRA's "\n".join). The filler is `filler_sentences` sentences cycled from kPasskeyFiller and
// joined by spaces; round(depth * filler_sentences) of them come before the needle (LongLoRA cuts
// the filler at a character count; whole sentences keep the prompt natural at every depth).
std::string passkey_text(int64_t filler_sentences, double depth, int64_t key);

// The key of one trial: 5 digits in [10000, 99999], a pure function of its arguments (splitmix64,
// no std:: distributions, whose output differs between standard libraries).
int64_t passkey_key(uint64_t seed, int64_t length, int64_t depth_index, int64_t trial);

struct PasskeyPrompt {
  int64_t target_length = 0;  // tokens asked for
  double depth = 0;
  int64_t trial = 0;
  int64_t key = 0;
  int64_t filler_sentences = 0;
  std::vector<int64_t> prompt;  // token ids (BOS by the tokenizer's rule, no EOS), <= target_length
  std::vector<int64_t> answer;  // the key's tokens as they follow the prompt: enc(prompt + " " + key) tail
};

// The longest prompt (most filler sentences) that fits in target_length tokens. `hint`, when >= 0,
// is a filler count to try first (another trial's): it is kept only if it is exactly the longest.
PasskeyPrompt make_passkey_prompt(const tok::Tokenizer& tok, int64_t target_length, double depth,
                                  int64_t depth_index, int64_t trial, uint64_t seed, int64_t hint = -1);

struct PasskeyParams {
  std::vector<int64_t> lengths;  // target prompt lengths in tokens
  std::vector<double> depths;    // needle depths in [0, 1]
  int64_t trials = 5;            // keys per (length, depth)
  uint64_t seed = 0;
};

// Every (length, depth, trial) prompt, in that order.
std::vector<PasskeyPrompt> make_passkey_prompts(const tok::Tokenizer& tok, const PasskeyParams& p);

struct PasskeyResult {
  PasskeyParams params;
  std::vector<std::vector<double>> accuracy;  // [length][depth], fraction of trials correct
  std::vector<double> accuracy_by_length;     // mean over depths
  std::vector<int64_t> mean_prompt_tokens;    // per length
  nlohmann::json samples;                     // per trial: length, depth, key, generated, correct
  double seconds = 0;
};

// Greedy decoding with the KV cache (kv_cache.h), answer.size() tokens; a trial is correct when
// they equal the answer tokens exactly (LongLoRA's rule).
PasskeyResult evaluate_passkey(const EvalModel& m, const tok::Tokenizer& tok, const PasskeyParams& p,
                               const std::vector<PasskeyPrompt>& prompts);

// Token ids of `text` with the tokenizer's BOS rule but never a trailing EOS.
std::vector<int64_t> encode_prompt(const tok::Tokenizer& tok, const std::string& text);

}  // namespace linearard::eval
