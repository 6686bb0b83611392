// Runs RULER samples (ruler.h) on a model: greedy decoding with the KV cache, rows of one (task,
// length) batched (batch_decode.h), scored by string_match_all on the decoded output.
#pragma once
#include <iosfwd>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "eval/eval_model.h"
#include "eval/ruler.h"
#include "tokenizer/tokenizer.h"

namespace linearard::eval {

// {"tasks", "lengths", "samples", "seed", "haystack", "results": [{task, length, score, samples,
// prompt_tokens, seconds}], "score_by_length": [mean over tasks per length], "outputs": [per sample]}.
// Batches hold at most batch_size rows and batch_tokens prompt tokens (at least one row).
nlohmann::json evaluate_ruler(const EvalModel& m, const tok::Tokenizer& tok, const RulerParams& p,
                              const std::vector<RulerSample>& samples, int64_t batch_size, int64_t batch_tokens,
                              std::ostream* log, const std::string& tag);

}  // namespace linearard::eval
