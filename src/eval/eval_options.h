// Options shared by eval::run_eval and eval::run_report (the `eval` and `report` commands): which
// tasks to run and their inputs, device, dtype and batch size, named like the flags without the
// dashes. plan_tasks() turns them into the TaskPlan the evaluations take; a bad value is an
// OptionError naming the option (common/option_error.h).
#pragma once
#include <ATen/ATen.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "eval/eval_model.h"
#include "eval/eval_tasks.h"
#include "tokenizer/tokenizer.h"

namespace linearard::eval {

struct TaskOptions {
  std::vector<std::string> tasks;
  std::string device = "cpu", dtype = "auto", tokenizer;
  int64_t batch_size = 1;
  std::vector<std::string> text, contexts, lengths, mc;
  std::string tokens, jsonl_field = "text";
  bool per_document = false, add_bos = false;
  int64_t stride = 0, max_tokens = 0, trials = 5, max_length = 0, limit = 0;
  uint64_t seed = 0;
  std::vector<double> depths = {0.0, 0.25, 0.5, 0.75, 1.0};
  std::string bigbench, haystack;
  std::vector<std::string> bbh_tasks, ruler_tasks, ruler_lengths = {"4k"};
  int64_t fewshot = 3, ruler_samples = 8;
  uint64_t fewshot_seed = 1234;
  std::string humaneval = ".cache/humaneval/HumanEval.jsonl", humaneval_python = "python3";
  int64_t humaneval_max_new_tokens = 512, humaneval_jobs = 4, humaneval_limit = -1;
  double humaneval_timeout = 3.0;
  bool allow_code_execution = false, humaneval_allow_network = false;
};

// The validated plan of `o` (validate_plan).
TaskPlan plan_tasks(const TaskOptions& o);

// "auto" -> bf16 on CUDA, fp32 on CPU.
at::ScalarType task_dtype(const TaskOptions& o, at::Device device);
at::Device task_device(const TaskOptions& o);

// `m` as the evaluations see it, with its checkpoint's RoPE or `rope_override`; a bad override is an
// OptionError of `rope_option`.
EvalModel make_eval_model(const model::DecoderModel& m, const std::string& name, const std::string& dir,
                          const std::string& rope_override, const std::string& rope_option);

// The tokenizer the plan needs (from `dir`), or null when it needs none (perplexity on token shards only).
std::unique_ptr<tok::Tokenizer> task_tokenizer(const TaskPlan& plan, const std::string& dir);

}  // namespace linearard::eval
