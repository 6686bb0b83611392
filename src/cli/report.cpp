// `linearard report --teacher DIR --scaled DIR|JSON --restored DIR --tasks ... --out DIR`: runs the
// same evaluations on the teacher, the scaled model (the teacher's weights with a RoPE scaling, or a
// checkpoint of its own) and the restored model, and writes report.json, report.md and the SVG
// charts (eval/report.h says what each number means). `--from-json report.json` redraws md and svg;
// `--from-results T.json S.json R.json` builds the report from three `linearard eval --json` results
// (one model per process, e.g. run in parallel on one GPU: scripts/eval_suite.sh).
// The fidelity task compares each model with the teacher, which then stays loaded throughout.
#include <filesystem>
#include <fstream>
#include <iostream>
#include <optional>

#include "cli/command.h"
#include "cli/eval_options.h"
#include "cli/output_guard.h"
#include "eval/fidelity.h"
#include "eval/report.h"
#include "io/atomic_file.h"
#include "io/model_path.h"

namespace linearard::cli {
namespace {

struct ReportOptions {
  std::string teacher, scaled, restored, out_dir, from_json;
  std::vector<std::string> from_results;  // teacher, scaled, restored: `linearard eval --json` files
  int64_t native_context = 0;
  bool overwrite = false;
  EvalCliOptions tasks;
};

nlohmann::json read_json_file(const std::string& path) {
  std::ifstream in(path);
  if (!in) fail(path, "cannot open");
  try {
    return nlohmann::json::parse(in);
  } catch (const std::exception& e) {
    fail(path, std::string("invalid JSON: ") + e.what());
  }
}

void rebuild_from_json(const ReportOptions& o) {
  check_output_dir({"--out", o.out_dir, o.overwrite, {}});
  const nlohmann::json old = read_json_file(o.from_json);
  if (!old.is_object() || old.value("format", "") != "linearard-report" || !old.contains("models"))
    fail(o.from_json, "not a linearard report.json (no format \"linearard-report\" / models)");
  const int64_t native = o.native_context > 0 ? o.native_context : old.value("native_context", int64_t{0});
  const nlohmann::json report = eval::build_report(old["models"], native);
  std::error_code ec;
  const bool same = std::filesystem::equivalent(o.from_json, o.out_dir + "/report.json", ec);
  eval::write_report(report, o.out_dir, /*write_json=*/!same);
  std::cout << eval::report_markdown(report) << "\nwrote " << o.out_dir << std::endl;
}

// The per-model results written by `linearard eval --json` (the per-model format of report.json).
void build_from_results(const ReportOptions& o) {
  if (o.from_results.size() != 3) fail("--from-results", "needs three files: teacher, scaled and restored results");
  // The results may lie in --out (scripts/eval_suite.sh keeps them beside the report); only the
  // report's own files may not be one of them.
  check_output_dir({"--out", o.out_dir, o.overwrite, {}});
  for (const auto& f : o.from_results)
    for (const char* own : {"report.json", "report.md"}) {
      std::error_code ec;
      if (std::filesystem::equivalent(f, std::filesystem::path(o.out_dir) / own, ec))
        fail("--from-results", f + " is the report's own " + own + ": the report would overwrite its input");
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
  std::filesystem::create_directories(o.out_dir, ec);
  if (ec) fail(o.out_dir, "cannot create the report directory: " + ec.message());
  const nlohmann::json report = eval::build_report(models, o.native_context);
  eval::write_report(report, o.out_dir);
  std::cout << eval::report_markdown(report) << "\nwrote " << o.out_dir << std::endl;
}

void run(ReportOptions o) {
  if (o.out_dir.empty()) fail("--out", "required");
  if (!o.from_json.empty() && !o.from_results.empty()) fail("--from-results", "cannot be combined with --from-json");
  if (!o.from_json.empty()) return rebuild_from_json(o);
  if (!o.from_results.empty()) return build_from_results(o);
  if (o.teacher.empty() || o.scaled.empty() || o.restored.empty())
    fail("report", "--teacher, --scaled and --restored are required (or --from-json)");
  const eval::TaskPlan plan = make_plan(o.tasks);
  std::vector<GuardedInput> guarded = {{"--teacher", o.teacher}, {"--restored", o.restored},
                                       {"--tokenizer", o.tasks.tokenizer}};
  if (std::filesystem::is_directory(o.scaled) || io::is_gguf_path(o.scaled)) guarded.push_back({"--scaled", o.scaled});
  check_output_dir({"--out", o.out_dir, o.overwrite, guarded});
  // .gguf files -> their imported directories
  for (std::string* p : {&o.teacher, &o.scaled, &o.restored, &o.tasks.tokenizer}) *p = io::resolve_model_path(*p);
  const at::Device device = eval::parse_device(o.tasks.device, "--device");
  const at::ScalarType dtype = eval_dtype(o.tasks, device);
  const auto tokenizer = eval_tokenizer(plan, o.tasks.tokenizer.empty() ? o.teacher : o.tasks.tokenizer);
  const eval::PreparedTasks inputs = eval::prepare_tasks(plan, tokenizer.get());
  std::error_code ec;
  std::filesystem::create_directories(o.out_dir, ec);
  if (ec) fail(o.out_dir, "cannot create the report directory: " + ec.message());

  const bool fidelity = plan.has("fidelity");
  nlohmann::json models;
  eval::EvalModel teacher_eval;  // fidelity's reference, set once the teacher is loaded
  auto evaluate = [&](const std::string& role, const model::DecoderModel& model, const std::string& dir,
                      const std::string& rope_override, const std::string& flag) {
    eval::EvalModel m;
    m.model = &model;
    m.rope = eval::resolve_rope(model.config(), rope_override, flag);
    m.name = role;
    m.dir = dir;
    m.rope_override = rope_override;
    if (role == "teacher") teacher_eval = m;
    models[role] = eval::run_tasks(m, plan, inputs, tokenizer.get(), &std::cout, fidelity ? &teacher_eval : nullptr);
    // Each model's results as soon as they exist: a long run that fails later keeps them.
    io::write_file_atomic(o.out_dir + "/results_" + role + ".json", models[role].dump(1) + "\n");
  };
  const bool scaled_is_dir = std::filesystem::is_directory(o.scaled);
  // The scaled model shares the teacher's weights unless it is a checkpoint of its own. Without
  // fidelity the teacher is freed before the other checkpoints are loaded.
  std::optional<model::DecoderModel> teacher(model::DecoderModel::load(o.teacher, dtype, device));
  if (fidelity) {
    // Vocabulary sizes checked before the first (long) evaluation, from the other config.json files.
    auto check = [&](const std::string& flag, const std::string& dir) {
      if (std::filesystem::exists(std::filesystem::path(dir) / "config.json"))
        eval::check_same_vocabulary(teacher->config(), o.teacher, model::load_model_config(dir), flag + " " + dir);
    };
    if (scaled_is_dir) check("--scaled", o.scaled);
    check("--restored", o.restored);
  }
  evaluate("teacher", *teacher, o.teacher, "", "--teacher");
  if (!scaled_is_dir) evaluate("scaled", *teacher, o.teacher, o.scaled, "--scaled");
  if (!fidelity) teacher.reset();
  if (scaled_is_dir) {
    const auto scaled = model::DecoderModel::load(o.scaled, dtype, device);
    evaluate("scaled", scaled, o.scaled, "", "--scaled");
  }
  {
    const auto restored = model::DecoderModel::load(o.restored, dtype, device);
    evaluate("restored", restored, o.restored, "", "--restored");
  }
  const nlohmann::json report = eval::build_report(models, o.native_context);
  eval::write_report(report, o.out_dir);
  std::cout << "\n" << eval::report_markdown(report) << "\nwrote " << o.out_dir << std::endl;
}

CommandRegistration report_command(
    "report", "restoration report: teacher vs scaled vs restored (report.json, report.md, svg charts)",
    [](CLI::App& sub) {
      auto o = std::make_shared<ReportOptions>();
      sub.add_option("--teacher", o->teacher, "the original model's directory (native RoPE)");
      sub.add_option("--scaled", o->scaled,
                     "the context-extended model without restoration: a directory, or a RoPE scaling "
                     "(inline JSON or a file) applied to the teacher's weights");
      sub.add_option("--restored", o->restored, "the restored model's directory (e.g. from `linearard export`)");
      sub.add_option("--out", o->out_dir, "output directory")->required();
      sub.add_option("--native-context", o->native_context,
                     "short/long boundary in tokens (default: the teacher's max_position_embeddings)");
      sub.add_option("--from-json", o->from_json, "redraw report.md and the charts from this report.json");
      sub.add_option("--from-results", o->from_results,
                     "build the report from three `linearard eval --json` results: teacher, scaled, restored")
          ->expected(3);
      add_overwrite_flag(sub, o->overwrite, "write into a non-empty --out (replacing the report's files there)");
      add_eval_options(sub, o->tasks, "--tasks,--task");
      sub.callback([o] { run(*o); });
    });

}  // namespace
}  // namespace linearard::cli
