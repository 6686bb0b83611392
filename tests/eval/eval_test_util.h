// Shared helpers of the evaluation tests: the fixture directory, its JSON files and its models.
#pragma once
#include <nlohmann/json.hpp>
#include <string>

#include "eval/eval_model.h"
#include "model/llama.h"

namespace linearard::eval_test {

std::string dir();  // $LINEARARD_FIXTURES_DIR/eval
nlohmann::json read_json(const std::string& path);

// A float32 CPU model of the fixture (model, zero_head, restored) and an EvalModel running it with
// `rope_override` (empty: the checkpoint's RoPE).
struct Loaded {
  explicit Loaded(const std::string& name, const std::string& rope_override = "");
  Loaded(const Loaded&) = delete;  // eval points at model
  model::DecoderModel model;
  eval::EvalModel eval;
};

// Skips the calling test when the build has no tokenizer library.
bool have_tokenizer();

}  // namespace linearard::eval_test

#define SKIP_WITHOUT_TOKENIZER()                                                    \
  if (!linearard::eval_test::have_tokenizer()) GTEST_SKIP() << "built without the tokenizer library"
