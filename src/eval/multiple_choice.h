// Multiple-choice tasks scored by log-likelihood, with lm-evaluation-harness's rules (anchors §3.4):
// one request (context, " " + choice) per choice; trailing whitespace of the context moves to the
// continuation; continuation tokens are taken in context, enc(context + cont)[len(enc(context)):];
// the score is the float32 log-softmax summed over the continuation; acc takes the argmax of the
// scores, acc_norm the argmax of score / len(choice) with len in Unicode code points (Python's
// len of the choice string, without the delimiter); stderr is the harness's mean_stderr.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "eval/eval_model.h"
#include "tokenizer/tokenizer.h"

namespace linearard::eval {

struct McDoc {
  std::string context;
  std::vector<std::string> choices;
  int64_t gold = 0;
};

// JSON lines {"context": str, "choices": [str, ...], "gold": int}; errors name path:line.
std::vector<McDoc> read_mc_jsonl(const std::string& path);

struct LoglikelihoodRequest {
  std::vector<int64_t> context;       // at least one token
  std::vector<int64_t> continuation;  // at least one token
};

struct McEncodeOptions {
  // The harness encodes without special tokens unless add_bos_token=True; an empty context is
  // then its prefix token (BOS, or EOS when there is no BOS).
  bool add_bos = false;
  std::string delimiter = " ";  // target_delimiter
};

// The harness's _encode_pair for (context, delimiter + choice).
LoglikelihoodRequest encode_pair(const tok::Tokenizer& tok, const std::string& context,
                                 const std::string& continuation, const McEncodeOptions& o);

struct Loglikelihood {
  double ll = 0;        // sum of log p(continuation token | prefix), nats
  bool greedy = false;  // every continuation token is the argmax
};

// Scores requests with inputs (context + continuation)[-(max_length + 1):][:-1] (the harness's
// left truncation), batch_size sequences per forward, longest first, right-padded (causal
// attention keeps padding out of the real tokens' view).
std::vector<Loglikelihood> loglikelihoods(const EvalModel& m, const std::vector<LoglikelihoodRequest>& requests,
                                          int64_t max_length, int64_t batch_size);

struct McResult {
  std::string task;
  int64_t docs = 0;
  double acc = 0, acc_stderr = 0, acc_norm = 0, acc_norm_stderr = 0;
  double seconds = 0;
};

// acc / acc_norm of docs given the loglikelihood of each choice (in doc then choice order).
McResult score_mc(const std::string& task, const std::vector<McDoc>& docs, const std::vector<Loglikelihood>& lls);

// Number of Unicode code points of UTF-8 text (Python's len).
int64_t utf8_length(const std::string& s);

// sqrt(sample variance / n), the harness's mean_stderr (0 for fewer than 2 values).
double mean_stderr(const std::vector<double>& values);

}  // namespace linearard::eval
