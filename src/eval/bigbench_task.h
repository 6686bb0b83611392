// BIG-bench JSON tasks (the `task.json` files of PyPI bigbench==1.0.0, bigbench/benchmark_tasks/)
// as multiple-choice documents in lm-evaluation-harness's format. Torch-free (fuzzed:
// tests/fuzz/fuzz_bigbench_task.cpp).
//
// Prompt of one example, as BIG-bench's JsonTask formats it (bigbench/api/json_task.py,
// `_format_example`): task_prefix + example_input_prefix + input, then, when
// append_choices_to_input, choice_prefix + each choice, then example_output_prefix. Defaults as
// json_task.py: "\nQ: ", "\nA: ", "\n  choice: ", append_choices_to_input = true. The output
// prefix's trailing whitespace is dropped: the harness moves a context's trailing whitespace into
// the continuation and adds its own target_delimiter " " (lm_eval/api/task.py), which would double
// it; the inputs of lm-eval's bigbench tasks (hails/bigbench) end the same way.
// Choices are the keys of target_scores in file order; gold is the first with the highest score
// (lm-eval's bigbench multiple_choice template: doc_to_choice = multiple_choice_targets, the gold
// the index of the target).
// Few-shot (lm_eval/api/task.py ConfigurableTask.fewshot_context, fewshot_delimiter "\n\n",
// target_delimiter " "): k solved examples, each its prompt + " " + gold choice, joined by "\n\n",
// then "\n\n" + the document's prompt without the task_prefix, which opens the whole context once
// (the harness's description). The k examples are drawn from the task's own examples other than the
// document itself (BIG-bench ships no train split; the harness then also drops the document from
// the draw, lm_eval/api/samplers.py ContextSampler.sample), by a splitmix64 partial Fisher-Yates
// shuffle keyed by (seed, document index): reproducible everywhere, not Python's random.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace linearard::eval {

struct BigBenchExample {
  std::string input;
  std::vector<std::string> choices;  // target_scores keys in file order
  int64_t gold = 0;
};

struct BigBenchTask {
  std::string name, path;
  std::string task_prefix;
  std::string input_prefix = "\nQ: ", output_prefix = "\nA: ", choice_prefix = "\n  choice: ";
  bool append_choices = true;
  std::vector<BigBenchExample> examples;  // only those with target_scores (multiple choice)
};

// Parses task.json text; `path` names the file in errors ("<path>: examples[3].target_scores: ...").
// Fails when the task has no multiple-choice example.
BigBenchTask parse_bigbench_task(const std::string& text, const std::string& path, const std::string& name);
BigBenchTask read_bigbench_task(const std::string& path, const std::string& name);

// One example's prompt (without task_prefix) and the few-shot context of document `doc`.
std::string bigbench_prompt(const BigBenchTask& t, const BigBenchExample& e);
std::string bigbench_context(const BigBenchTask& t, int64_t doc, int64_t fewshot, uint64_t seed);

// Indices of the few-shot examples of document `doc` (distinct, never `doc`).
std::vector<int64_t> fewshot_indices(int64_t examples, int64_t doc, int64_t k, uint64_t seed);

// The multiple-choice tasks of BIG-Bench Hard found in bigbench 1.0.0 (22; BBH's
// boolean_expressions, multistep_arithmetic, object_counting, web_of_lies, word_sorting are not
// multiple-choice JSON tasks there); subtasks are "<task>/<subtask>" folders, named with '_'.
const std::vector<std::string>& bbh_task_names();

// The task.json of `name` under `root` (bigbench's benchmark_tasks folder, the sdist's top folder or
// the folder holding it): "logical_deduction_three_objects" -> logical_deduction/three_objects.
std::string find_bigbench_task(const std::string& root, const std::string& name);

}  // namespace linearard::eval
