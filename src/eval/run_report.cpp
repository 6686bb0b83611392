#include "eval/run_report.h"

#include <filesystem>
#include <fstream>
#include <optional>

#include "common/error.h"
#include "common/option_error.h"
#include "eval/eval_model.h"
#include "eval/fidelity.h"
#include "eval/report.h"
#include "io/atomic_file.h"
#include "io/model_path.h"
#include "io/output_guard.h"

namespace linearard::eval {
namespace {

nlohmann::json read_json_file(const std::string& path) {
  std::ifstream in(path);
  if (!in) fail(path, "cannot open");
  try {
    return nlohmann::json::parse(in);
  } catch (const std::exception& e) {
    fail(path, std::string("invalid JSON: ") + e.what());
  }
}

nlohmann::json rebuild_from_json(const ReportOptions& o, std::ostream& log) {
  io::check_output_dir({"out", o.out, o.overwrite, {}});
  const nlohmann::json old = read_json_file(o.from_json);
  if (!old.is_object() || old.value("format", "") != "linearard-report" || !old.contains("models"))
    fail(o.from_json, "not a linearard report.json (no format \"linearard-report\" / models)");
  const int64_t native = o.native_context > 0 ? o.native_context : old.value("native_context", int64_t{0});
  const nlohmann::json report = build_report(old["models"], native);
  std::error_code ec;
  const bool same = std::filesystem::equivalent(o.from_json, o.out + "/report.json", ec);
  write_report(report, o.out, /*write_json=*/!same);
  log << report_markdown(report) << "\nwrote " << o.out << std::endl;
  return report;
}

// The per-model results written by `linearard eval --json` (the per-model format of report.json).
nlohmann::json build_from_results(const ReportOptions& o, std::ostream& log) {
  if (o.from_results.size() != 3) fail_option("from-results", "needs three files: teacher, scaled and restored results");
  // The results may lie in `out` (scripts/eval_suite.sh keeps them beside the report); only the
  // report's own files may not be one of them.
  io::check_output_dir({"out", o.out, o.overwrite, {}});
  for (const auto& f : o.from_results)
    for (const char* own : {"report.json", "report.md"}) {
      std::error_code ec;
      if (std::filesystem::equivalent(f, std::filesystem::path(o.out) / own, ec))
        fail_option("from-results", f + " is the report's own " + own + ": the report would overwrite its input");
    }
  const char* roles[] = {"teacher", "scaled", "restored"};
  nlohmann::json models;
  for (int i = 0; i < 3; ++i) {
    nlohmann::json r = read_json_file(o.from_results[i]);
    if (!r.is_object() || !r.contains("model") || !r.contains("plan"))
      fail(o.from_results[i], "not a result of linearard eval --json (no \"model\" / \"plan\")");
    models[roles[i]] = std::move(r);
  }
  std::error_code ec;
  std::filesystem::create_directories(o.out, ec);
  if (ec) fail(o.out, "cannot create the report directory: " + ec.message());
  const nlohmann::json report = build_report(models, o.native_context);
  write_report(report, o.out);
  log << report_markdown(report) << "\nwrote " << o.out << std::endl;
  return report;
}

}  // namespace

nlohmann::json run_report(ReportOptions o, std::ostream& log) {
  if (o.out.empty()) fail_option("out", "required");
  if (!o.from_json.empty() && !o.from_results.empty()) fail_option("from-results", "cannot be combined with --from-json");
  if (!o.from_json.empty()) return rebuild_from_json(o, log);
  if (!o.from_results.empty()) return build_from_results(o, log);
  if (o.teacher.empty() || o.scaled.empty() || o.restored.empty())
    fail("report", "--teacher, --scaled and --restored are required (or --from-json)");
  const TaskPlan plan = plan_tasks(o.tasks);
  std::vector<io::GuardedInput> guarded = {{"--teacher", o.teacher}, {"--restored", o.restored},
                                           {"--tokenizer", o.tasks.tokenizer}};
  if (std::filesystem::is_directory(o.scaled) || io::is_gguf_path(o.scaled)) guarded.push_back({"--scaled", o.scaled});
  io::check_output_dir({"out", o.out, o.overwrite, guarded});
  // .gguf files -> their imported directories
  for (std::string* p : {&o.teacher, &o.scaled, &o.restored, &o.tasks.tokenizer}) *p = io::resolve_model_path(*p);
  const at::Device device = task_device(o.tasks);
  const at::ScalarType dtype = task_dtype(o.tasks, device);
  const auto tokenizer = task_tokenizer(plan, o.tasks.tokenizer.empty() ? o.teacher : o.tasks.tokenizer);
  const PreparedTasks inputs = prepare_tasks(plan, tokenizer.get());
  std::error_code ec;
  std::filesystem::create_directories(o.out, ec);
  if (ec) fail(o.out, "cannot create the report directory: " + ec.message());

  const bool fidelity = plan.has("fidelity");
  nlohmann::json models;
  EvalModel teacher_eval;  // fidelity's reference, set once the teacher is loaded
  auto evaluate = [&](const std::string& role, const model::DecoderModel& model, const std::string& dir,
                      const std::string& rope_override, const std::string& option) {
    const EvalModel m = make_eval_model(model, role, dir, rope_override, option);
    if (role == "teacher") teacher_eval = m;
    models[role] = run_tasks(m, plan, inputs, tokenizer.get(), &log, fidelity ? &teacher_eval : nullptr);
    // Each model's results as soon as they exist: a long run that fails later keeps them.
    io::write_file_atomic(o.out + "/results_" + role + ".json", models[role].dump(1) + "\n");
  };
  const bool scaled_is_dir = std::filesystem::is_directory(o.scaled);
  // The scaled model shares the teacher's weights unless it is a checkpoint of its own. Without
  // fidelity the teacher is freed before the other checkpoints are loaded.
  std::optional<model::DecoderModel> teacher(model::DecoderModel::load(o.teacher, dtype, device));
  if (fidelity) {
    // Vocabulary sizes checked before the first (long) evaluation, from the other config.json files.
    auto check = [&](const std::string& flag, const std::string& dir) {
      if (std::filesystem::exists(std::filesystem::path(dir) / "config.json"))
        check_same_vocabulary(teacher->config(), o.teacher, model::load_model_config(dir), flag + " " + dir);
    };
    if (scaled_is_dir) check("--scaled", o.scaled);
    check("--restored", o.restored);
  }
  evaluate("teacher", *teacher, o.teacher, "", "teacher");
  if (!scaled_is_dir) evaluate("scaled", *teacher, o.teacher, o.scaled, "scaled");
  if (!fidelity) teacher.reset();
  if (scaled_is_dir) {
    const auto scaled = model::DecoderModel::load(o.scaled, dtype, device);
    evaluate("scaled", scaled, o.scaled, "", "scaled");
  }
  {
    const auto restored = model::DecoderModel::load(o.restored, dtype, device);
    evaluate("restored", restored, o.restored, "", "restored");
  }
  const nlohmann::json report = build_report(models, o.native_context);
  write_report(report, o.out);
  log << "\n" << report_markdown(report) << "\nwrote " << o.out << std::endl;
  return report;
}


}  // namespace linearard::eval
