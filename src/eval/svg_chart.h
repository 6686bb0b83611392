// Charts of the restoration report as plain SVG text (no plotting library): perplexity against
// context length, one line per model, top-1 agreement with the teacher against context length, and
// the passkey accuracy grid (depth x length) per model.
#pragma once
#include <nlohmann/json.hpp>
#include <string>

namespace linearard::eval {

// report: build_report()'s JSON. Empty strings when the report has no ppl / passkey results.
std::string ppl_chart_svg(const nlohmann::json& report);
std::string passkey_chart_svg(const nlohmann::json& report);
// Empty when the report has no fidelity rows.
std::string top1_chart_svg(const nlohmann::json& report);
// Empty when the report has no RULER rows.
std::string ruler_chart_svg(const nlohmann::json& report);

}  // namespace linearard::eval
