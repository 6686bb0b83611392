// Greedy decoding of a batch of prompts with one KvCacheDecoder (kv_cache.h): one prefill of the
// (B, T) prompts, then one (B, 1) step per new token. Prompts of different lengths are left-padded
// to the longest (kv_cache.h: padded keys masked out, each row's RoPE positions from 0 at its first
// real token), so a row decodes what it would alone; equal lengths are the same code with no
// padding (RULER prompts are built to exact lengths).
#pragma once
#include <cstdint>
#include <functional>
#include <vector>

#include "eval/eval_model.h"

namespace linearard::eval {

// Called after each token a row gets, with the row's tokens so far; true ends the row (the token
// stays). HumanEval's stop sequences (humaneval_eval.cpp) are such a rule.
using DecodeStop = std::function<bool(int64_t row, const std::vector<int64_t>& tokens)>;

// Up to `new_tokens` tokens per prompt; a row stops at `eos` (not included; -1: never) or when
// `stop` says so, and the loop stops when every row has. Prompts must not be empty.
std::vector<std::vector<int64_t>> greedy_decode_batch(const EvalModel& m, const std::vector<std::vector<int64_t>>& prompts,
                                                      int64_t new_tokens, int64_t eos = -1,
                                                      const DecodeStop& stop = {});

}  // namespace linearard::eval
