// The restoration report: the same evaluations on the teacher (native RoPE), the scaled model
// (teacher + scaled RoPE, no training) and the restored model, side by side. Everything in
// report.md and the SVG charts is derived from report.json (build_report), so `report --from-json`
// redraws them and tests can recompute every number.
//
// Short-text metrics (perplexity at contexts <= the teacher's native length, multiple-choice acc
// and acc_norm, HumanEval pass@1, also listed in "humaneval" with the share of the teacher's) get
//   recovery            = (restored - scaled) / (teacher - scaled), on NLL for perplexity
//                         (1 = back to the teacher, 0 = no better than the scaled model; the
//                         ratio reads the same for lower- and higher-is-better metrics);
//   relative_to_teacher = restored / teacher for accuracies and teacher_ppl / restored_ppl for
//                         perplexity (higher is better, 1 = as good as the teacher).
// Long-context metrics (perplexity past the native length, passkey accuracy) are listed as values.
// Fidelity (fidelity.h: KL(teacher || model), top-1 agreement; the teacher's own values are its
// self-comparison, 0 and 1) gets rows of its own ("fidelity", with recovery, not in the mean), and
// "headline" puts, per short context, perplexity (gap recovered on NLL), KL and top-1 agreement of
// every model in one row: the table report.md opens with when fidelity was run.
#pragma once
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

namespace linearard::eval {

constexpr int kReportVersion = 1;

// (restored - scaled) / (teacher - scaled), or nothing when teacher and scaled are too close
// (|teacher - scaled| <= 1e-12 * max(1, |teacher|)) for the ratio to mean anything.
std::optional<double> recovery(double teacher, double scaled, double restored);

// models: {"teacher": results, "scaled": results, "restored": results} (run_tasks' JSON each).
// native_context 0 takes the teacher's max_position_embeddings. Returns the whole report.json.
nlohmann::json build_report(const nlohmann::json& models, int64_t native_context);

// report.md text (also printed to the terminal).
std::string report_markdown(const nlohmann::json& report);

// Writes report.json (unless from_json), report.md, ppl_by_length.svg, top1_agreement.svg and
// passkey.svg (when the report has them) into out_dir, atomically each.
void write_report(const nlohmann::json& report, const std::string& out_dir, bool write_json = true);

}  // namespace linearard::eval
