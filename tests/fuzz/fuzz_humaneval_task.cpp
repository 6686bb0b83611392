// libFuzzer target: HumanEval jsonl -> problems (eval/humaneval_task.cpp, torch-free), and on success
// what `--tasks humaneval` does with them before running anything: the stop-sequence cut of each
// prompt, canonical solution and test (as completions) and the program text.
#include <cstddef>
#include <cstdint>
#include <string>

#include "common/error.h"
#include "eval/humaneval_task.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace linearard::eval;
  const std::string text(reinterpret_cast<const char*>(data), size);
  try {
    for (const HumanEvalProblem& p : parse_humaneval_jsonl(text, "HumanEval.jsonl")) {
      for (const std::string* s : {&p.prompt, &p.canonical_solution, &p.test}) {
        const std::string cut = truncate_at_stop(*s);
        if (cut.size() > s->size() || s->compare(0, cut.size(), cut) != 0) __builtin_trap();  // a prefix
        if (find_humaneval_stop(cut) != std::string::npos) __builtin_trap();
      }
      (void)humaneval_program(p, truncate_at_stop(p.canonical_solution));
    }
  } catch (const linearard::Error&) {
  }
  return 0;
}
