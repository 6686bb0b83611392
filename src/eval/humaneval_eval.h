// HumanEval on a model (`--tasks humaneval`): greedy completions of every problem's prompt with the
// KV cache, prompts of one batch left-padded (batch_decode.h), up to max_new_tokens each, ending at
// EOS or at the first of the Codex stop sequences (humaneval_task.h), cut before it; then every
// program run in the sandbox of humaneval_exec.h. pass@1 of greedy decoding = the share of problems
// whose program passed (the unbiased estimator of the Codex paper with n = 1 sample).
// Prompts are encoded as lm-evaluation-harness encodes a context: without special tokens unless
// --add-bos (its add_bos_token=True); the completion is the decoded new tokens (special tokens
// skipped).
#pragma once
#include <iosfwd>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "eval/eval_model.h"
#include "eval/humaneval_exec.h"
#include "eval/humaneval_task.h"
#include "tokenizer/tokenizer.h"

namespace linearard::eval {

struct HumanEvalParams {
  std::string file;              // a HumanEval .jsonl (--humaneval)
  int64_t limit = 0;             // first N problems (0: all); --limit
  int64_t max_new_tokens = 512;  // --humaneval-max-new-tokens
  bool allow_code_execution = false;
  CodeExecOptions exec;  // --humaneval-timeout, --humaneval-python, --humaneval-jobs, --humaneval-allow-network
};

struct HumanEvalInput {
  std::vector<HumanEvalProblem> problems;
  std::vector<std::vector<int64_t>> prompts;
  CodeExecOptions exec;  // checked (check_code_execution), with the interpreter's path
};

// Reads the problems (first `limit`), encodes the prompts and checks that programs can run.
HumanEvalInput prepare_humaneval(const tok::Tokenizer& tok, const HumanEvalParams& p, bool add_bos);

// Completion text of generated ids (special tokens skipped; "<undecodable>" when the tokenizer
// cannot decode them), and the same cut at the stop sequences.
std::string decode_completion(const tok::Tokenizer& tok, const std::vector<int64_t>& ids);

// {"file", "n", "passed", "pass_at_1", "pass": [bool per problem], "max_new_tokens", "timeout_s",
//  "network_isolated", "problems": [{task_id, passed, result, completion, raw, new_tokens}],
//  "generate_seconds", "execute_seconds"}. Batches of up to batch_size prompts (sorted by length).
nlohmann::json evaluate_humaneval(const EvalModel& m, const tok::Tokenizer& tok, const HumanEvalParams& p,
                                  const HumanEvalInput& in, int64_t batch_size, std::ostream* log,
                                  const std::string& tag);

}  // namespace linearard::eval
