#include "eval/run_eval.h"

#include <filesystem>
#include <optional>

#include "common/option_error.h"
#include "eval/fidelity.h"
#include "io/atomic_file.h"
#include "io/model_path.h"
#include "io/output_guard.h"

namespace linearard::eval {
namespace {

bool same_path(const std::string& a, const std::string& b) {
  std::error_code ec;
  return a == b || std::filesystem::equivalent(a, b, ec);
}

}  // namespace

nlohmann::json run_eval(EvalOptions o, std::ostream& log) {
  const TaskPlan plan = plan_tasks(o.tasks);
  if (plan.has("fidelity") && o.teacher.empty())
    fail_option("teacher", "the fidelity task needs the teacher model (--teacher DIR: the original weights, native RoPE)");
  // Checked before the (long) evaluation rather than when the results are ready.
  if (!o.json.empty())
    io::check_output_file({"json", o.json, o.overwrite,
                           {{"--model", o.model}, {"--teacher", o.teacher}, {"--tokenizer", o.tasks.tokenizer}}});
  o.model = io::resolve_model_path(o.model);  // .gguf files -> their imported directories
  o.tasks.tokenizer = io::resolve_model_path(o.tasks.tokenizer);
  o.teacher = io::resolve_model_path(o.teacher);
  const at::Device device = task_device(o.tasks);
  const at::ScalarType dtype = task_dtype(o.tasks, device);
  const auto tokenizer = task_tokenizer(plan, o.tasks.tokenizer.empty() ? o.model : o.tasks.tokenizer);
  const PreparedTasks inputs = prepare_tasks(plan, tokenizer.get());
  const auto model = model::DecoderModel::load(o.model, dtype, device);
  const EvalModel m = make_eval_model(model, o.model, o.model, o.rope_scaling, "rope-scaling");
  // The teacher: the model's own weights when `teacher` names the same checkpoint (e.g. the
  // scaled model is the teacher with rope_scaling), else loaded beside it.
  std::optional<model::DecoderModel> teacher_weights;
  EvalModel teacher;
  if (plan.has("fidelity")) {
    if (!same_path(o.teacher, o.model)) teacher_weights.emplace(model::DecoderModel::load(o.teacher, dtype, device));
    teacher = make_eval_model(teacher_weights ? *teacher_weights : model, "teacher", o.teacher, o.teacher_rope_scaling,
                         "teacher-rope-scaling");
    check_same_vocabulary(teacher.model->config(), o.teacher, model.config(), "--model " + o.model);
  }
  const nlohmann::json results = run_tasks(m, plan, inputs, tokenizer.get(), &log, plan.has("fidelity") ? &teacher : nullptr);
  if (!o.json.empty()) {
    io::write_file_atomic(o.json, results.dump(1) + "\n");
    log << "wrote " << o.json << std::endl;
  }
  return results;
}

}  // namespace linearard::eval
