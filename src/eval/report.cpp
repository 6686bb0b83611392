#include "eval/report.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <sstream>
#include <tuple>
#include <vector>

#include "common/error.h"
#include "eval/svg_chart.h"
#include "io/atomic_file.h"

namespace linearard::eval {
namespace {

using nlohmann::json;

const char* kRoles[] = {"teacher", "scaled", "restored"};

json opt(std::optional<double> v) { return v ? json(*v) : json(nullptr); }

// The ppl result of `results` at context T, or null.
const json* ppl_at(const json& results, int64_t T) {
  if (!results.contains("ppl")) return nullptr;
  for (const auto& r : results["ppl"]["results"])
    if (r["context"].get<int64_t>() == T) return &r;
  return nullptr;
}

// The fidelity result of `results` at context T, or null.
const json* fidelity_at(const json& results, int64_t T) {
  if (!results.contains("fidelity")) return nullptr;
  for (const auto& r : results["fidelity"]["results"])
    if (r["context"].get<int64_t>() == T) return &r;
  return nullptr;
}

const json* mc_task(const json& results, const std::string& task, const char* key = "mc") {
  if (!results.contains(key)) return nullptr;
  for (const auto& r : results[key])
    if (r["task"] == task) return &r;
  return nullptr;
}

std::string fmt(double v, int digits) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", digits, v);
  return buf;
}

std::string fmt_value(const json& v, int digits) { return v.is_number() ? fmt(v.get<double>(), digits) : "n/a"; }

std::string fmt_percent(const json& v) { return v.is_number() ? fmt(100.0 * v.get<double>(), 1) + "%" : "n/a"; }

}  // namespace

std::optional<double> recovery(double teacher, double scaled, double restored) {
  const double gap = teacher - scaled;
  if (!std::isfinite(gap) || std::abs(gap) <= 1e-12 * std::max(1.0, std::abs(teacher))) return std::nullopt;
  return (restored - scaled) / gap;
}

json build_report(const json& models, int64_t native_context) {
  for (const char* role : kRoles)
    if (!models.contains(role)) fail("report", std::string("missing the ") + role + " model's results");
  const json& teacher = models["teacher"];
  if (native_context <= 0) native_context = teacher["model"].value("max_position_embeddings", int64_t{0});
  if (native_context <= 0) fail("report", "the teacher's native context length is unknown (--native-context)");

  json short_rows = json::array(), long_rows = json::array(), bbh_rows = json::array();
  // Perplexity: every context evaluated for all three models.
  if (teacher.contains("ppl")) {
    for (const auto& tr : teacher["ppl"]["results"]) {
      const int64_t T = tr["context"];
      const json* v[3];
      bool all = true;
      for (int i = 0; i < 3; ++i) all &= (v[i] = ppl_at(models[kRoles[i]], T)) != nullptr;
      if (!all) continue;
      json row = {{"metric", "ppl@" + std::to_string(T)}, {"kind", "perplexity"}, {"context", T},
                  {"direction", "lower is better"}};
      for (int i = 0; i < 3; ++i) {
        row[kRoles[i]] = (*v[i])["perplexity"];
        row[std::string(kRoles[i]) + "_nll"] = (*v[i])["nll"];
      }
      if (T <= native_context) {
        row["recovery"] = opt(recovery((*v[0])["nll"], (*v[1])["nll"], (*v[2])["nll"]));
        row["recovery_on"] = "nll";
        row["relative_to_teacher"] = (*v[0])["perplexity"].get<double>() / (*v[2])["perplexity"].get<double>();
        short_rows.push_back(row);
      } else {
        long_rows.push_back(row);
      }
    }
  }
  // Multiple choice (mc: the user's files; bbh: BIG-bench): acc and acc_norm of every task all three
  // models ran; for bbh also the mean over those tasks (the paper's benchmark average).
  for (const char* key : {"mc", "bbh"}) {
    if (!teacher.contains(key)) continue;
    double mean[2][3] = {{0, 0, 0}, {0, 0, 0}};
    int64_t tasks = 0;
    for (const auto& tt : teacher[key]) {
      const std::string task = tt["task"];
      const json* v[3];
      bool all = true;
      for (int i = 0; i < 3; ++i) all &= (v[i] = mc_task(models[kRoles[i]], task, key)) != nullptr;
      if (!all) continue;
      ++tasks;
      int f = 0;
      for (const char* metric : {"acc", "acc_norm"}) {
        json row = {{"metric", task + " " + metric}, {"kind", "accuracy"}, {"task", task},
                    {"field", metric}, {"direction", "higher is better"}, {"docs", tt["docs"]}};
        for (int i = 0; i < 3; ++i) {
          row[kRoles[i]] = (*v[i])[metric];
          row[std::string(kRoles[i]) + "_stderr"] = (*v[i])[std::string(metric) + "_stderr"];
          mean[f][i] += (*v[i])[metric].get<double>();
        }
        const double t = (*v[0])[metric], s = (*v[1])[metric], r = (*v[2])[metric];
        row["recovery"] = opt(recovery(t, s, r));
        row["recovery_on"] = metric;
        row["relative_to_teacher"] = t > 0 ? json(r / t) : json(nullptr);
        row["scaled_relative_to_teacher"] = t > 0 ? json(s / t) : json(nullptr);
        short_rows.push_back(row);
        ++f;
      }
    }
    if (std::string(key) == "bbh" && tasks > 0) {
      int f = 0;
      for (const char* metric : {"acc", "acc_norm"}) {
        json row = {{"metric", std::string("bbh mean ") + metric}, {"kind", "accuracy_mean"}, {"task", "bbh"},
                    {"field", metric}, {"direction", "higher is better"}, {"tasks", tasks}};
        for (int i = 0; i < 3; ++i) row[kRoles[i]] = mean[f][i] / tasks;
        const double t = mean[f][0] / tasks, s = mean[f][1] / tasks, r = mean[f][2] / tasks;
        row["recovery"] = opt(recovery(t, s, r));
        row["recovery_on"] = metric;
        row["relative_to_teacher"] = t > 0 ? json(r / t) : json(nullptr);
        row["scaled_relative_to_teacher"] = t > 0 ? json(s / t) : json(nullptr);
        bbh_rows.push_back(row);
        ++f;
      }
    }
  }
  // HumanEval: pass@1 of greedy completions (a short-text metric, in the mean like the BBH tasks),
  // as a share of the teacher's, when all three models ran the same problems.
  json humaneval_rows = json::array();
  if (teacher.contains("humaneval")) {
    const json& th = teacher["humaneval"];
    bool all = true;
    for (const char* role : kRoles)
      all &= models[role].contains("humaneval") && models[role]["humaneval"].value("n", json()) == th.value("n", json()) &&
             models[role]["humaneval"].value("file", json()) == th.value("file", json());
    if (all) {
      json row = {{"metric", "HumanEval pass@1"}, {"kind", "pass_at_1"}, {"task", "humaneval"},
                  {"field", "pass_at_1"}, {"direction", "higher is better"}, {"problems", th["n"]}};
      double v[3];
      for (int i = 0; i < 3; ++i) {
        const json& h = models[kRoles[i]]["humaneval"];
        v[i] = h["pass_at_1"].get<double>();
        row[kRoles[i]] = v[i];
        row[std::string(kRoles[i]) + "_passed"] = h["passed"];
      }
      row["recovery"] = opt(recovery(v[0], v[1], v[2]));
      row["recovery_on"] = "pass_at_1";
      row["relative_to_teacher"] = v[0] > 0 ? json(v[2] / v[0]) : json(nullptr);
      row["scaled_relative_to_teacher"] = v[0] > 0 ? json(v[1] / v[0]) : json(nullptr);
      short_rows.push_back(row);
      humaneval_rows.push_back(row);
    }
  }
  // Fidelity: KL(teacher || model) and top-1 agreement at every context all three models ran (the
  // teacher's own row is its self-comparison: KL 0, agreement 1).
  json fidelity_rows = json::array();
  if (teacher.contains("fidelity")) {
    for (const auto& tr : teacher["fidelity"]["results"]) {
      const int64_t T = tr["context"];
      const json* v[3];
      bool all = true;
      for (int i = 0; i < 3; ++i) all &= (v[i] = fidelity_at(models[kRoles[i]], T)) != nullptr;
      if (!all) continue;
      for (const auto& [field, name, direction] :
           {std::tuple{"kl", "kl@", "lower is better"}, std::tuple{"top1_agreement", "top1@", "higher is better"}}) {
        json row = {{"metric", name + std::to_string(T)}, {"kind", field}, {"context", T},
                    {"direction", direction}, {"short", T <= native_context}, {"positions", (*v[2])["positions"]}};
        for (int i = 0; i < 3; ++i) row[kRoles[i]] = (*v[i])[field];
        row["recovery"] = opt(recovery((*v[0])[field], (*v[1])[field], (*v[2])[field]));
        fidelity_rows.push_back(row);
      }
    }
  }
  // The headline: per short context, perplexity (gap recovered on NLL) and fidelity side by side.
  std::vector<int64_t> short_contexts;
  for (const char* task : {"ppl", "fidelity"})
    if (teacher.contains(task))
      for (const auto& r : teacher[task]["results"]) {
        const int64_t T = r["context"];
        if (T <= native_context && std::find(short_contexts.begin(), short_contexts.end(), T) == short_contexts.end())
          short_contexts.push_back(T);
      }
  std::sort(short_contexts.begin(), short_contexts.end());
  json headline = json::array();
  for (int64_t T : short_contexts) {
    const json* p[3];
    const json* f[3];
    bool all_ppl = true, all_fid = true;
    for (int i = 0; i < 3; ++i) {
      all_ppl &= (p[i] = ppl_at(models[kRoles[i]], T)) != nullptr;
      all_fid &= (f[i] = fidelity_at(models[kRoles[i]], T)) != nullptr;
    }
    if (!all_ppl && !all_fid) continue;
    json row = {{"context", T}};
    for (int i = 0; i < 3; ++i) {
      row[std::string(kRoles[i]) + "_ppl"] = all_ppl ? (*p[i])["perplexity"] : json(nullptr);
      row[std::string(kRoles[i]) + "_kl"] = all_fid ? (*f[i])["kl"] : json(nullptr);
      row[std::string(kRoles[i]) + "_top1_agreement"] = all_fid ? (*f[i])["top1_agreement"] : json(nullptr);
    }
    row["ppl_recovery"] = all_ppl ? opt(recovery((*p[0])["nll"], (*p[1])["nll"], (*p[2])["nll"])) : json(nullptr);
    headline.push_back(row);
  }
  // Passkey: accuracy per length (mean over depths), at lengths all three ran.
  if (teacher.contains("passkey")) {
    const auto& lengths = teacher["passkey"]["lengths"];
    for (size_t l = 0; l < lengths.size(); ++l) {
      json row = {{"metric", "passkey@" + std::to_string(lengths[l].get<int64_t>())}, {"kind", "passkey"},
                  {"length", lengths[l]}, {"direction", "higher is better"}};
      bool all = true;
      for (const char* role : kRoles) {
        const json& m = models[role];
        all &= m.contains("passkey") && m["passkey"]["lengths"] == lengths;
        if (all) row[role] = m["passkey"]["accuracy_by_length"][l];
      }
      if (all) long_rows.push_back(row);
    }
  }
  // RULER: score per task and length, and the mean over tasks per length, as a share of the teacher's.
  if (teacher.contains("ruler")) {
    const json& tr = teacher["ruler"];
    bool all = true;
    for (const char* role : kRoles)
      all &= models[role].contains("ruler") && models[role]["ruler"]["lengths"] == tr["lengths"] &&
             models[role]["ruler"]["tasks"] == tr["tasks"];
    if (all) {
      auto push = [&](const std::string& metric, const std::string& task, int64_t length, const double v[3]) {
        json row = {{"metric", metric}, {"kind", "ruler"}, {"task", task}, {"length", length},
                    {"direction", "higher is better"}};
        for (int i = 0; i < 3; ++i) row[kRoles[i]] = v[i];
        row["relative_to_teacher"] = v[0] > 0 ? json(v[2] / v[0]) : json(nullptr);
        row["scaled_relative_to_teacher"] = v[0] > 0 ? json(v[1] / v[0]) : json(nullptr);
        long_rows.push_back(row);
      };
      const size_t nr = tr["results"].size();
      for (size_t k = 0; k < nr; ++k) {
        const json& r0 = tr["results"][k];
        double v[3];
        for (int i = 0; i < 3; ++i) v[i] = models[kRoles[i]]["ruler"]["results"][k]["score"];
        push("ruler " + r0["task"].get<std::string>() + "@" + std::to_string(r0["length"].get<int64_t>()),
             r0["task"], r0["length"], v);
      }
      for (size_t l = 0; l < tr["lengths"].size(); ++l) {
        double v[3];
        for (int i = 0; i < 3; ++i) v[i] = models[kRoles[i]]["ruler"]["score_by_length"][l];
        push("ruler mean@" + std::to_string(tr["lengths"][l].get<int64_t>()), "mean", tr["lengths"][l], v);
      }
    }
  }
  double sum = 0, rel_sum = 0;
  int64_t n = 0, rel_n = 0;
  for (const auto& row : short_rows) {
    if (row["recovery"].is_number()) sum += row["recovery"].get<double>(), ++n;
    if (row["relative_to_teacher"].is_number()) rel_sum += row["relative_to_teacher"].get<double>(), ++rel_n;
  }
  json summary = {{"short_metrics", short_rows.size()},
                  {"mean_recovery", n > 0 ? json(sum / n) : json(nullptr)},
                  {"mean_recovery_of", n},
                  {"mean_relative_to_teacher", rel_n > 0 ? json(rel_sum / rel_n) : json(nullptr)}};
  return {{"format", "linearard-report"}, {"version", kReportVersion}, {"native_context", native_context},
          {"models", models}, {"headline", headline}, {"short_text", short_rows}, {"long_context", long_rows},
          {"fidelity", fidelity_rows}, {"bbh", bbh_rows}, {"humaneval", humaneval_rows}, {"summary", summary}};
}

std::string report_markdown(const json& report) {
  std::ostringstream md;
  const json& models = report.at("models");
  md << "# Restoration report\n\n";
  const json headline = report.value("headline", json::array());
  bool headline_fidelity = false;
  for (const auto& row : headline) headline_fidelity |= row["restored_kl"].is_number();
  if (headline_fidelity) {
    md << "| context | ppl teacher | ppl scaled | ppl restored | ppl gap recovered | KL scaled | KL restored "
          "| top-1 scaled | top-1 restored |\n| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n";
    for (const auto& row : headline)
      md << "| " << row["context"].get<int64_t>() << " | " << fmt_value(row["teacher_ppl"], 3) << " | "
         << fmt_value(row["scaled_ppl"], 3) << " | " << fmt_value(row["restored_ppl"], 3) << " | "
         << fmt_percent(row["ppl_recovery"]) << " | " << fmt_value(row["scaled_kl"], 4) << " | "
         << fmt_value(row["restored_kl"], 4) << " | " << fmt_percent(row["scaled_top1_agreement"]) << " | "
         << fmt_percent(row["restored_top1_agreement"]) << " |\n";
    md << "\nContexts up to the native " << report["native_context"].get<int64_t>() << " tokens. ppl gap recovered = (scaled - restored) / (scaled - teacher) on the NLL per token; "
          "KL = KL(teacher‖model) of the next-token distributions (nats per token, 0 = the teacher); top-1 = "
          "share of positions where the model's most likely next token is the teacher's (100% = the teacher).\n\n"
       << "## Models\n\n";
  }
  md << "| model | checkpoint | RoPE | dtype |\n| --- | --- | --- | --- |\n";
  for (const char* role : kRoles) {
    const json& m = models.at(role).at("model");
    md << "| " << role << " | " << m.value("dir", "") << " | " << m.value("rope_description", "") << " | "
       << m.value("dtype", "") << " |\n";
  }
  md << "\n## Short text (contexts up to the native " << report["native_context"].get<int64_t>() << " tokens)\n\n";
  md << "| metric | teacher | scaled | restored | recovery | restored vs teacher |\n"
        "| --- | ---: | ---: | ---: | ---: | ---: |\n";
  for (const auto& row : report["short_text"]) {
    const bool ppl = row["kind"] == "perplexity";
    const int digits = ppl ? 3 : 4;
    md << "| " << row["metric"].get<std::string>() << (ppl ? " (lower is better)" : "") << " | "
       << fmt_value(row["teacher"], digits) << " | " << fmt_value(row["scaled"], digits) << " | "
       << fmt_value(row["restored"], digits) << " | " << fmt_percent(row["recovery"]) << " | "
       << fmt_value(row["relative_to_teacher"], 3) << " |\n";
  }
  const json& s = report["summary"];
  md << "\nMean recovery over " << s["mean_recovery_of"].get<int64_t>() << " short-text metrics: **"
     << fmt_percent(s["mean_recovery"]) << "**; mean restored vs teacher: **"
     << fmt_value(s["mean_relative_to_teacher"], 3) << "**.\n\n"
     << "recovery = (restored - scaled) / (teacher - scaled): 100% = back to the teacher, 0% = no better "
        "than the scaled model; for perplexity it is computed on the NLL per token. restored vs teacher = "
        "restored / teacher for accuracies and teacher ppl / restored ppl for perplexity (higher is better, "
        "1 = the teacher).\n";
  const json bbh = report.value("bbh", json::array());
  if (!bbh.empty()) {
    md << "\n## BIG-bench (BBH tasks), mean over " << bbh[0]["tasks"].get<int64_t>()
       << " tasks\n\n| metric | teacher | scaled | restored | scaled % of teacher | restored % of teacher |\n"
          "| --- | ---: | ---: | ---: | ---: | ---: |\n";
    for (const auto& row : bbh)
      md << "| " << row["metric"].get<std::string>() << " | " << fmt_value(row["teacher"], 4) << " | "
         << fmt_value(row["scaled"], 4) << " | " << fmt_value(row["restored"], 4) << " | "
         << fmt_percent(row["scaled_relative_to_teacher"]) << " | " << fmt_percent(row["relative_to_teacher"])
         << " |\n";
  }
  const json humaneval = report.value("humaneval", json::array());
  if (!humaneval.empty()) {
    md << "\n## HumanEval (greedy, " << humaneval[0]["problems"].get<int64_t>()
       << " problems)\n\n| metric | teacher | scaled | restored | scaled % of teacher | restored % of teacher |\n"
          "| --- | ---: | ---: | ---: | ---: | ---: |\n";
    for (const auto& row : humaneval)
      md << "| " << row["metric"].get<std::string>() << " | " << fmt_value(row["teacher"], 4) << " | "
         << fmt_value(row["scaled"], 4) << " | " << fmt_value(row["restored"], 4) << " | "
         << fmt_percent(row["scaled_relative_to_teacher"]) << " | " << fmt_percent(row["relative_to_teacher"])
         << " |\n";
  }
  const json fidelity = report.value("fidelity", json::array());
  if (!fidelity.empty()) {
    md << "\n## Fidelity to the teacher\n\n| metric | teacher | scaled | restored | recovery | positions |\n"
          "| --- | ---: | ---: | ---: | ---: | ---: |\n";
    for (const auto& row : fidelity) {
      const bool kl = row["kind"] == "kl";
      auto cell = [&](const json& v) { return kl ? fmt_value(v, 4) : fmt_percent(v); };
      md << "| " << row["metric"].get<std::string>()
         << (kl ? " (KL(teacher‖model), lower is better)" : " (top-1 agreement)") << " | " << cell(row["teacher"])
         << " | " << cell(row["scaled"]) << " | " << cell(row["restored"]) << " | " << fmt_percent(row["recovery"])
         << " | " << row["positions"].get<int64_t>() << " |\n";
    }
  }
  if (!report["long_context"].empty()) {
    md << "\n## Long context\n\n| metric | teacher | scaled | restored | restored % of teacher |\n"
          "| --- | ---: | ---: | ---: | ---: |\n";
    for (const auto& row : report["long_context"]) {
      const bool ppl = row["kind"] == "perplexity";
      auto cell = [&](const json& v) { return ppl ? fmt_value(v, 3) : fmt_percent(v); };
      md << "| " << row["metric"].get<std::string>()
         << (ppl ? " (ppl, lower is better)" : row["kind"] == "ruler" ? " (string match)" : " (accuracy)") << " | "
         << cell(row["teacher"]) << " | " << cell(row["scaled"]) << " | " << cell(row["restored"]) << " | "
         << fmt_percent(row.value("relative_to_teacher", json(nullptr))) << " |\n";
    }
  }
  bool has_ppl = false, has_passkey = false, has_ruler = false;
  for (const auto& row : report["short_text"]) has_ppl |= row["kind"] == "perplexity";
  for (const auto& row : report["long_context"]) {
    has_ppl |= row["kind"] == "perplexity";
    has_passkey |= row["kind"] == "passkey";
    has_ruler |= row["kind"] == "ruler";
  }
  const bool has_fidelity = !fidelity.empty();
  if (has_ppl || has_passkey || has_fidelity || has_ruler) md << "\n## Charts\n\n";
  if (has_ppl) md << "![perplexity by context length](ppl_by_length.svg)\n\n";
  if (has_fidelity) md << "![top-1 agreement with the teacher by context length](top1_agreement.svg)\n\n";
  if (has_passkey) md << "![passkey accuracy by length and depth](passkey.svg)\n\n";
  if (has_ruler) md << "![RULER score by length, mean over tasks](ruler_by_length.svg)\n";
  return md.str();
}

void write_report(const json& report, const std::string& out_dir, bool write_json) {
  std::error_code ec;
  std::filesystem::create_directories(out_dir, ec);
  if (ec) fail(out_dir, "cannot create the report directory: " + ec.message());
  const std::string dir = out_dir + "/";
  if (write_json) io::write_file_atomic(dir + "report.json", report.dump(1) + "\n");
  io::write_file_atomic(dir + "report.md", report_markdown(report));
  const std::string ppl = ppl_chart_svg(report), passkey = passkey_chart_svg(report);
  const std::string top1 = top1_chart_svg(report);
  if (!ppl.empty()) io::write_file_atomic(dir + "ppl_by_length.svg", ppl);
  if (!top1.empty()) io::write_file_atomic(dir + "top1_agreement.svg", top1);
  if (!passkey.empty()) io::write_file_atomic(dir + "passkey.svg", passkey);
  const std::string ruler = ruler_chart_svg(report);
  if (!ruler.empty()) io::write_file_atomic(dir + "ruler_by_length.svg", ruler);
}

}  // namespace linearard::eval
