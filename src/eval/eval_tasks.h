// The evaluations `linearard eval` and `linearard report` run: what to run (TaskPlan), the inputs
// made once from the plan and the tokenizer and shared by every model (PreparedTasks), and one
// model's results as JSON (the format of `eval --json` and of each model in report.json).
// "fidelity" (fidelity.h) reads the ppl inputs and windows and needs a teacher model.
#pragma once
#include <iosfwd>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "eval/eval_model.h"
#include "eval/humaneval_eval.h"
#include "eval/multiple_choice.h"
#include "eval/passkey.h"
#include "eval/ruler.h"
#include "tokenizer/tokenizer.h"

namespace linearard::eval {

struct TaskPlan {
  // any of "ppl", "fidelity", "passkey", "mc", "bbh" (BIG-bench multiple choice, bigbench_task.h),
  // "ruler" (ruler.h), "humaneval" (humaneval_eval.h: runs the model's code, opt-in)
  std::vector<std::string> tasks;
  int64_t batch_size = 1;

  // ppl and fidelity: text (files/folders/.jsonl, through the tokenizer) or token shards (dir or file)
  std::vector<std::string> text_inputs;
  std::string token_inputs;
  std::string jsonl_field = "text";
  bool per_document = false;      // windows stay inside documents; else one packed stream
  std::vector<int64_t> contexts;  // context lengths T
  int64_t stride = 0;             // 0: non-overlapping windows
  int64_t max_tokens = 0;         // use only the first N tokens (0: all)

  PasskeyParams passkey;

  std::vector<std::string> mc_files;  // "path" or "name=path" (.jsonl)
  int64_t mc_max_length = 0;          // 0: the model's max_position_embeddings
  int64_t mc_limit = 0;               // first N documents of each task (0: all)
  McEncodeOptions mc;  // also bbh's

  std::string bigbench_dir;            // bigbench's benchmark_tasks (or the sdist folder)
  std::vector<std::string> bbh_tasks;  // default: bbh_task_names()
  int64_t fewshot = 3;                 // solved examples before each document
  uint64_t fewshot_seed = 1234;        // the harness's default fewshot seed
  int64_t bbh_limit = 0;               // first N documents of each task (0: all); --limit

  RulerParams ruler;
  int64_t ruler_batch_tokens = int64_t{1} << 18;  // batch rows x length per prefill, at most

  HumanEvalParams humaneval;  // its prompts are encoded with mc.add_bos

  bool has(const std::string& task) const;
  nlohmann::json to_json() const;  // recorded in the results
};

// Throws unless the plan names known tasks and gives each the inputs it needs.
void validate_plan(const TaskPlan& plan);

struct McTaskInput {
  std::string name, path;
  std::vector<McDoc> docs;
  std::vector<LoglikelihoodRequest> requests;  // doc-major, choice-minor
};

struct PreparedTasks {
  std::vector<std::vector<int32_t>> ppl_streams;  // also fidelity's
  std::string ppl_source;
  int64_t ppl_tokens = 0;
  std::vector<PasskeyPrompt> passkey_prompts;
  std::vector<McTaskInput> mc;
  std::vector<McTaskInput> bbh;  // path: the task.json
  std::vector<RulerSample> ruler;
  HumanEvalInput humaneval;
};

// Tokenizer of a model directory; fails clearly when the build has no tokenizer library.
std::unique_ptr<tok::Tokenizer> load_eval_tokenizer(const std::string& dir);

// `tok` may be null when only token shards are used.
PreparedTasks prepare_tasks(const TaskPlan& plan, const tok::Tokenizer* tok);

// Runs the plan on one model; progress lines go to `log` (may be null). `teacher` is fidelity's
// reference (required when the plan has fidelity; it may be `m` itself or share its DecoderModel).
nlohmann::json run_tasks(const EvalModel& m, const TaskPlan& plan, const PreparedTasks& inputs,
                         const tok::Tokenizer* tok, std::ostream* log, const EvalModel* teacher = nullptr);

// "4096", "4k", "32K" -> tokens (K = 1024); `flag` names the option in errors.
int64_t parse_length(const std::string& s, const std::string& flag);

}  // namespace linearard::eval
