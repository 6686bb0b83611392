// `linearard eval --model DIR [--rope-scaling JSON] --tasks ppl,fidelity,passkey,mc,bbh,ruler,humaneval ...` (--task
// is an alias): one model's
// perplexity by context length, next-token fidelity to a teacher (--teacher DIR: KL and top-1
// agreement over the perplexity windows), passkey retrieval and multiple-choice accuracy; prints a
// summary and writes the results as JSON (--json), the per-model format of report.json.
#include <filesystem>
#include <iostream>
#include <optional>

#include "cli/command.h"
#include "cli/eval_options.h"
#include "cli/output_guard.h"
#include "eval/fidelity.h"
#include "io/atomic_file.h"
#include "io/model_path.h"

namespace linearard::cli {
namespace {

struct EvalOptions {
  std::string model_dir, rope_scaling, teacher_dir, teacher_rope_scaling, json_out;
  bool overwrite = false;
  EvalCliOptions tasks;
};

bool same_path(const std::string& a, const std::string& b) {
  std::error_code ec;
  return a == b || std::filesystem::equivalent(a, b, ec);
}

void run(EvalOptions o) {
  const eval::TaskPlan plan = make_plan(o.tasks);
  if (plan.has("fidelity") && o.teacher_dir.empty())
    fail("--teacher", "the fidelity task needs the teacher model (--teacher DIR: the original weights, native RoPE)");
  // Checked before the (long) evaluation rather than when the results are ready.
  if (!o.json_out.empty())
    check_output_file({"--json", o.json_out, o.overwrite,
                       {{"--model", o.model_dir}, {"--teacher", o.teacher_dir}, {"--tokenizer", o.tasks.tokenizer}}});
  o.model_dir = io::resolve_model_path(o.model_dir);  // .gguf files -> their imported directories
  o.tasks.tokenizer = io::resolve_model_path(o.tasks.tokenizer);
  o.teacher_dir = io::resolve_model_path(o.teacher_dir);
  const at::Device device = eval::parse_device(o.tasks.device, "--device");
  const at::ScalarType dtype = eval_dtype(o.tasks, device);
  const auto tokenizer = eval_tokenizer(plan, o.tasks.tokenizer.empty() ? o.model_dir : o.tasks.tokenizer);
  const eval::PreparedTasks inputs = eval::prepare_tasks(plan, tokenizer.get());
  const auto model = model::DecoderModel::load(o.model_dir, dtype, device);
  eval::EvalModel m;
  m.model = &model;
  m.rope = eval::resolve_rope(model.config(), o.rope_scaling, "--rope-scaling");
  m.name = o.model_dir;
  m.dir = o.model_dir;
  m.rope_override = o.rope_scaling;
  // The teacher: the model's own weights when --teacher names the same checkpoint (e.g. the
  // scaled model is the teacher with --rope-scaling), else loaded beside it.
  std::optional<model::DecoderModel> teacher_weights;
  eval::EvalModel teacher;
  if (plan.has("fidelity")) {
    if (!same_path(o.teacher_dir, o.model_dir)) teacher_weights.emplace(model::DecoderModel::load(o.teacher_dir, dtype, device));
    teacher.model = teacher_weights ? &*teacher_weights : &model;
    teacher.rope = eval::resolve_rope(teacher.model->config(), o.teacher_rope_scaling, "--teacher-rope-scaling");
    teacher.name = "teacher";
    teacher.dir = o.teacher_dir;
    teacher.rope_override = o.teacher_rope_scaling;
    eval::check_same_vocabulary(teacher.model->config(), o.teacher_dir, model.config(), "--model " + o.model_dir);
  }
  const nlohmann::json results =
      eval::run_tasks(m, plan, inputs, tokenizer.get(), &std::cout, plan.has("fidelity") ? &teacher : nullptr);
  if (!o.json_out.empty()) {
    io::write_file_atomic(o.json_out, results.dump(1) + "\n");
    std::cout << "wrote " << o.json_out << std::endl;
  }
}

CommandRegistration eval_command(
    "eval", "evaluate one model: perplexity by context length, fidelity to a teacher, passkey retrieval, multiple choice",
    [](CLI::App& sub) {
      auto o = std::make_shared<EvalOptions>();
      sub.add_option("--model", o->model_dir, "HF model directory or .gguf file")->required();
      sub.add_option("--rope-scaling", o->rope_scaling,
                     "run with this RoPE scaling instead of the checkpoint's (inline JSON or a file)");
      sub.add_option("--teacher", o->teacher_dir,
                     "fidelity: the reference model (the original weights, native RoPE); may be --model itself");
      sub.add_option("--teacher-rope-scaling", o->teacher_rope_scaling,
                     "fidelity: run the teacher with this RoPE scaling instead of its checkpoint's");
      sub.add_option("--json", o->json_out, "write the results here");
      add_overwrite_flag(sub, o->overwrite, "replace an existing --json file that is not an earlier eval result");
      add_eval_options(sub, o->tasks, "--tasks,--task");
      sub.callback([o] { run(*o); });
    });

}  // namespace
}  // namespace linearard::cli
