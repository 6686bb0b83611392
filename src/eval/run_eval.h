// One model's evaluation as one library call: what `linearard eval` does after parsing its flags.
// Options are named like the flags without the dashes; a bad value is an OptionError naming the
// option (common/option_error.h).
#pragma once
#include <iostream>
#include <nlohmann/json.hpp>
#include <string>

#include "eval/eval_options.h"

namespace linearard::eval {

struct EvalOptions {
  std::string model;                 // HF model directory or .gguf file
  std::string rope_scaling;          // run it with this RoPE (inline JSON or a file) instead of its own
  std::string teacher;               // fidelity's reference (may be `model` itself)
  std::string teacher_rope_scaling;  // run the teacher with this RoPE instead of its own
  std::string json;                  // write the results here ("" = not written)
  bool overwrite = false;            // replace a `json` file that is not an earlier eval result
  TaskOptions tasks;
};

// Runs the tasks on the model (and its teacher for fidelity), prints a summary to `log` and returns
// the results (the per-model format of report.json), written to options.json when given.
nlohmann::json run_eval(EvalOptions options, std::ostream& log = std::cout);

}  // namespace linearard::eval
