// RULER-style synthetic long-context tasks (Hsieh et al. 2024, "RULER: What's the Real Context Size
// of Your Long-Context Language Models?", github.com/NVIDIA/RULER scripts/data/synthetic/), generated
// on the spot from a seed, no download:
//   niah_single      one needle "One of the special magic numbers for <key> is: <7 digits>." in the
//                    haystack, asked by key (niah.py, niah_single_2);
//   niah_multikey    four needles with different keys, one asked (niah_multikey_1);
//   niah_multivalue  four values for the same key, all asked (niah_multivalue);
//   vt               variable tracking: one chain VAR A = 12345, VAR B = VAR A, ... of 4 hops spread
//                    through the haystack; answer every name of the chain (variable_tracking.py);
//   cwe              common-word extraction: a numbered word list where 10 words appear 30 times and
//                    the others 3 times; answer the 10 (common_words_extraction.py);
//   fwe              frequent-word extraction: coded words with Zipf(2) counts; answer the top 3
//                    (freq_words_extraction.py).
// Wording of instructions, questions and answer prefixes follows RULER's templates (its
// synthetic.yaml). The haystack is RULER's "noise" (the passkey filler sentences) or the lines of a
// text file (--haystack: e.g. the King James Bible of Debian's bible-kjv, public domain). Words and
// keys are seeded pseudo-words from syllables (RULER draws English words from `wonderwords`; a
// built-in generator needs no word list and has enough distinct words for 128K).
// Prompts are built in token space to exactly `length` tokens: header, body units (haystack
// sentences with the needles at seeded depths, or list items) and question are encoded separately
// and joined; the body is filled with whole units, then noise tokens up to the length. Equal
// lengths let a batch of samples share one KV-cache prefill (batch_decode.h).
// Score: RULER's string_match_all, the share of the answers found (case-insensitive) in the output.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "tokenizer/tokenizer.h"

namespace linearard::eval {

struct RulerParams {
  std::vector<std::string> tasks;  // default: all of ruler_task_names()
  std::vector<int64_t> lengths;    // prompt lengths in tokens
  int64_t samples = 8;             // per (task, length)
  uint64_t seed = 0;
  std::string haystack_file;       // empty: RULER's noise sentences
};

struct RulerSample {
  std::string task;
  int64_t length = 0, index = 0;
  std::vector<int64_t> prompt;       // exactly `length` tokens (BOS first when the tokenizer adds one)
  std::vector<std::string> answers;  // all must appear in the output
  int64_t max_new_tokens = 0;        // RULER's tokens_to_generate of the task
};

const std::vector<std::string>& ruler_task_names();

// Haystack sentences: the lines of `file` (blank lines dropped, whitespace trimmed) or, when empty,
// RULER's noise sentences. Errors name the file.
std::vector<std::string> read_haystack(const std::string& file);

// One sample (a pure function of its arguments).
RulerSample make_ruler_sample(const tok::Tokenizer& tok, const std::vector<std::string>& haystack,
                              const std::string& task, int64_t length, int64_t index, uint64_t seed);

// Every (task, length, sample) in that order.
std::vector<RulerSample> make_ruler_samples(const tok::Tokenizer& tok, const RulerParams& p);

// RULER's string_match_all: mean over answers of [answer.lower() in prediction.lower()] (ASCII case).
double string_match_all(const std::string& prediction, const std::vector<std::string>& answers);

}  // namespace linearard::eval
