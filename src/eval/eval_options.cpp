#include "eval/eval_options.h"

#include <algorithm>
#include <cstdlib>
#include <filesystem>

#include "common/option_error.h"
#include "eval/eval_model.h"

namespace linearard::eval {
namespace {

// bigbench, else $LINEARARD_BIGBENCH, else .cache/bigbench when it exists (scripts/setup.sh).
std::string bigbench_dir(const std::string& option) {
  if (!option.empty()) return option;
  if (const char* env = std::getenv("LINEARARD_BIGBENCH"); env && *env) return env;
  std::error_code ec;
  return std::filesystem::is_directory(".cache/bigbench", ec) ? ".cache/bigbench" : "";
}

std::vector<int64_t> lengths_of(const std::vector<std::string>& items, const std::string& option) {
  std::vector<int64_t> out;
  for (const auto& s : items)
    out.push_back(parse_option(option, [&](const std::string& where) { return parse_length(s, where); }));
  return out;
}

}  // namespace

TaskPlan plan_tasks(const TaskOptions& o) {
  TaskPlan plan;
  plan.tasks = o.tasks;
  plan.batch_size = o.batch_size;
  plan.text_inputs = o.text;
  plan.token_inputs = o.tokens;
  plan.jsonl_field = o.jsonl_field;
  plan.per_document = o.per_document;
  plan.contexts = lengths_of(o.contexts, "contexts");
  plan.stride = o.stride;
  plan.max_tokens = o.max_tokens;
  plan.passkey.lengths = lengths_of(o.lengths, "lengths");
  plan.passkey.depths = o.depths;
  plan.passkey.trials = o.trials;
  plan.passkey.seed = o.seed;
  plan.mc_files = o.mc;
  plan.mc_max_length = o.max_length;
  plan.mc_limit = o.limit;
  plan.mc.add_bos = o.add_bos;
  if (std::find(o.tasks.begin(), o.tasks.end(), "bbh") != o.tasks.end()) plan.bigbench_dir = bigbench_dir(o.bigbench);
  plan.bbh_tasks = o.bbh_tasks;
  plan.fewshot = o.fewshot;
  plan.fewshot_seed = o.fewshot_seed;
  plan.bbh_limit = o.limit;
  plan.ruler.lengths = lengths_of(o.ruler_lengths, "ruler-lengths");
  plan.ruler.tasks = o.ruler_tasks;
  plan.ruler.samples = o.ruler_samples;
  plan.ruler.seed = o.seed;
  plan.ruler.haystack_file = o.haystack;
  plan.humaneval.file = o.humaneval;
  plan.humaneval.limit = o.humaneval_limit >= 0 ? o.humaneval_limit : o.limit;
  plan.humaneval.max_new_tokens = o.humaneval_max_new_tokens;
  plan.humaneval.allow_code_execution = o.allow_code_execution;
  plan.humaneval.exec.timeout_s = o.humaneval_timeout;
  plan.humaneval.exec.jobs = o.humaneval_jobs;
  plan.humaneval.exec.python = o.humaneval_python;
  plan.humaneval.exec.isolate_network = !o.humaneval_allow_network;
  validate_plan(plan);
  return plan;
}

at::ScalarType task_dtype(const TaskOptions& o, at::Device device) {
  if (o.dtype == "auto") return device.is_cuda() ? at::kBFloat16 : at::kFloat;
  return parse_option("dtype", [&](const std::string& where) { return parse_dtype(o.dtype, where); });
}

at::Device task_device(const TaskOptions& o) {
  return parse_option("device", [&](const std::string& where) { return parse_device(o.device, where); });
}

EvalModel make_eval_model(const model::DecoderModel& m, const std::string& name, const std::string& dir,
                          const std::string& rope_override, const std::string& rope_option) {
  EvalModel e;
  e.model = &m;
  e.rope = parse_option(rope_option, [&](const std::string& where) { return resolve_rope(m.config(), rope_override, where); });
  e.name = name;
  e.dir = dir;
  e.rope_override = rope_override;
  return e;
}

std::unique_ptr<tok::Tokenizer> task_tokenizer(const TaskPlan& plan, const std::string& dir) {
  const bool needed = plan.has("passkey") || plan.has("mc") || plan.has("bbh") || plan.has("ruler") ||
                      plan.has("humaneval") || ((plan.has("ppl") || plan.has("fidelity")) && !plan.text_inputs.empty());
  return needed ? load_eval_tokenizer(dir) : nullptr;
}

}  // namespace linearard::eval
