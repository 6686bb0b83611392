// `linearard report --teacher DIR --scaled DIR|JSON --restored DIR --tasks ... --out DIR`: runs the
// same evaluations on the teacher, the scaled model (the teacher's weights with a RoPE scaling, or a
// checkpoint of its own) and the restored model, and writes report.json, report.md and the SVG
// charts (eval/report.h says what each number means). `--from-json report.json` redraws md and svg;
// `--from-results T.json S.json R.json` builds the report from three `linearard eval --json` results
// (one model per process, e.g. run in parallel on one GPU: scripts/eval_suite.sh).
// The fidelity task compares each model with the teacher, which then stays loaded throughout. The
// run itself is eval::run_report (eval/run_report.h).
#include "cli/command.h"
#include "cli/eval_options.h"
#include "cli/overwrite_flag.h"
#include "eval/run_report.h"

namespace linearard::cli {
namespace {

CommandRegistration report_command(
    "report", "restoration report: teacher vs scaled vs restored (report.json, report.md, svg charts)",
    [](CLI::App& sub) {
      auto o = std::make_shared<eval::ReportOptions>();
      sub.add_option("--teacher", o->teacher, "the original model's directory (native RoPE)");
      sub.add_option("--scaled", o->scaled,
                     "the context-extended model without restoration: a directory, or a RoPE scaling "
                     "(inline JSON or a file) applied to the teacher's weights");
      sub.add_option("--restored", o->restored, "the restored model's directory (e.g. from `linearard export`)");
      sub.add_option("--out", o->out, "output directory")->required();
      sub.add_option("--native-context", o->native_context,
                     "short/long boundary in tokens (default: the teacher's max_position_embeddings)");
      sub.add_option("--from-json", o->from_json, "redraw report.md and the charts from this report.json");
      sub.add_option("--from-results", o->from_results,
                     "build the report from three `linearard eval --json` results: teacher, scaled, restored")
          ->expected(3);
      add_overwrite_flag(sub, o->overwrite, "write into a non-empty --out (replacing the report's files there)");
      add_eval_options(sub, o->tasks, "--tasks,--task");
      sub.callback([o] { eval::run_report(*o); });
    });

}  // namespace
}  // namespace linearard::cli
