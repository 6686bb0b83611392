// `linearard eval --model DIR [--rope-scaling JSON] --task ppl|passkey|mc ...`: one model's
// perplexity by context length, passkey retrieval and multiple-choice accuracy; prints a summary
// and writes the results as JSON (--json), the per-model format of report.json.
#include <iostream>

#include "cli/command.h"
#include "cli/eval_options.h"
#include "cli/output_guard.h"
#include "io/atomic_file.h"

namespace linearard::cli {
namespace {

struct EvalOptions {
  std::string model_dir, rope_scaling, json_out;
  bool overwrite = false;
  EvalCliOptions tasks;
};

void run(const EvalOptions& o) {
  const eval::TaskPlan plan = make_plan(o.tasks);
  // Checked before the (long) evaluation rather than when the results are ready.
  if (!o.json_out.empty())
    check_output_file(
        {"--json", o.json_out, o.overwrite, {{"--model", o.model_dir}, {"--tokenizer", o.tasks.tokenizer}}});
  const at::Device device = eval::parse_device(o.tasks.device, "--device");
  const auto tokenizer = eval_tokenizer(plan, o.tasks.tokenizer.empty() ? o.model_dir : o.tasks.tokenizer);
  const eval::PreparedTasks inputs = eval::prepare_tasks(plan, tokenizer.get());
  const auto model = model::DecoderModel::load(o.model_dir, eval_dtype(o.tasks, device), device);
  eval::EvalModel m;
  m.model = &model;
  m.rope = eval::resolve_rope(model.config(), o.rope_scaling, "--rope-scaling");
  m.name = o.model_dir;
  m.dir = o.model_dir;
  m.rope_override = o.rope_scaling;
  const nlohmann::json results = eval::run_tasks(m, plan, inputs, tokenizer.get(), &std::cout);
  if (!o.json_out.empty()) {
    io::write_file_atomic(o.json_out, results.dump(1) + "\n");
    std::cout << "wrote " << o.json_out << std::endl;
  }
}

CommandRegistration eval_command(
    "eval", "evaluate one model: perplexity by context length, passkey retrieval, multiple choice",
    [](CLI::App& sub) {
      auto o = std::make_shared<EvalOptions>();
      sub.add_option("--model", o->model_dir, "HF model directory")->required();
      sub.add_option("--rope-scaling", o->rope_scaling,
                     "run with this RoPE scaling instead of the checkpoint's (inline JSON or a file)");
      sub.add_option("--json", o->json_out, "write the results here");
      add_overwrite_flag(sub, o->overwrite, "replace an existing --json file that is not an earlier eval result");
      add_eval_options(sub, o->tasks, "--task");
      sub.callback([o] { run(*o); });
    });

}  // namespace
}  // namespace linearard::cli
