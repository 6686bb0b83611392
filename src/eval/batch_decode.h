// Greedy decoding of a batch of equal-length prompts with one KvCacheDecoder (kv_cache.h): one
// prefill of the (B, T) prompts, then one (B, 1) step per new token. Equal lengths need no padding
// or attention mask, which the decoder does not take; RULER prompts are built to exact lengths.
#pragma once
#include <cstdint>
#include <vector>

#include "eval/eval_model.h"

namespace linearard::eval {

// Up to `new_tokens` tokens per prompt; a row stops at `eos` (not included; -1: never), and the
// loop stops when every row has. All prompts must have the same (non-zero) length.
std::vector<std::vector<int64_t>> greedy_decode_batch(const EvalModel& m, const std::vector<std::vector<int64_t>>& prompts,
                                                      int64_t new_tokens, int64_t eos = -1);

}  // namespace linearard::eval
