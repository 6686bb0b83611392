// `linearard report --teacher DIR --scaled DIR|JSON --restored DIR --tasks ... --out DIR`: runs the
// same evaluations on the teacher, the scaled model (the teacher's weights with a RoPE scaling, or a
// checkpoint of its own) and the restored model, and writes report.json, report.md and the SVG
// charts (eval/report.h says what each number means). `--from-json report.json` redraws md and svg;
// `--from-results T.json S.json R.json` builds the report from three `linearard eval --json` results
// (one model per process, e.g. run in parallel on one GPU: scripts/eval_suite.sh).
// The fidelity task compares each model with the teacher, which then stays loaded throughout. Its
// options are eval/eval_flags.h (the flags given become eval::report_options, as from Python); the
// run itself is eval::run_report (eval/run_report.h).
#include "cli/command.h"
#include "common/option_layers.h"
#include "eval/eval_flags.h"
#include "eval/run_report.h"

namespace linearard::cli {
namespace {

CommandRegistration report_command(
    "report", "restoration report: teacher vs scaled vs restored (report.json, report.md, svg charts)",
    [](CLI::App& sub) {
      auto parsed = std::make_shared<eval::ReportOptions>();  // CLI11 parses (and checks) into it
      eval::add_report_flags(sub, *parsed);
      CLI::App* app = &sub;
      sub.callback([parsed, app] { eval::run_report(eval::report_options(given_options(*app))); });
    });

}  // namespace
}  // namespace linearard::cli
