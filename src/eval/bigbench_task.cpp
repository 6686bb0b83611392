#include "eval/bigbench_task.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <numeric>
#include <sstream>

#include "common/error.h"
#include "common/option_error.h"
#include "eval/splitmix64.h"

namespace linearard::eval {
namespace {

// ordered_json keeps target_scores in file order (BIG-bench's choice order).
using json = nlohmann::ordered_json;

// An optional string field of the task object.
void read_string(const json& j, const char* field, std::string& into, const std::string& path) {
  if (!j.contains(field)) return;
  if (!j[field].is_string()) fail(path, std::string(field) + ": expected a string");
  into = j[field].get<std::string>();
}

std::string rstrip(std::string s) {
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\n' || s.back() == '\r')) s.pop_back();
  return s;
}

}  // namespace

BigBenchTask parse_bigbench_task(const std::string& text, const std::string& path, const std::string& name) {
  json j;
  try {
    j = json::parse(text);
  } catch (const std::exception& e) {
    fail(path, std::string("invalid JSON: ") + e.what());
  }
  if (!j.is_object()) fail(path, "expected a JSON object (a BIG-bench task.json)");
  BigBenchTask t;
  t.name = name;
  t.path = path;
  read_string(j, "task_prefix", t.task_prefix, path);
  read_string(j, "example_input_prefix", t.input_prefix, path);
  read_string(j, "example_output_prefix", t.output_prefix, path);
  read_string(j, "choice_prefix", t.choice_prefix, path);
  if (j.contains("append_choices_to_input")) {
    if (!j["append_choices_to_input"].is_boolean()) fail(path, "append_choices_to_input: expected true or false");
    t.append_choices = j["append_choices_to_input"].get<bool>();
  }
  if (!j.contains("examples")) fail(path, "examples: missing");
  if (!j["examples"].is_array()) fail(path, "examples: expected an array");
  const json& examples = j["examples"];
  for (size_t i = 0; i < examples.size(); ++i) {
    const std::string where = "examples[" + std::to_string(i) + "]";
    const json& e = examples[i];
    if (!e.is_object()) fail(path, where + ": expected an object");
    if (!e.contains("target_scores")) continue;  // a generative example
    if (!e.contains("input") || !e["input"].is_string()) fail(path, where + ".input: expected a string");
    const json& scores = e["target_scores"];
    if (!scores.is_object()) fail(path, where + ".target_scores: expected an object {choice: score}");
    if (scores.size() < 2) fail(path, where + ".target_scores: needs at least 2 choices");
    BigBenchExample x;
    x.input = e["input"].get<std::string>();
    double best = 0;
    for (auto it = scores.begin(); it != scores.end(); ++it) {
      if (!it.value().is_number()) fail(path, where + ".target_scores." + it.key() + ": expected a number");
      if (it.key().empty()) fail(path, where + ".target_scores: empty choice (acc_norm divides by its length)");
      const double s = it.value().get<double>();
      if (x.choices.empty() || s > best) {
        best = s;
        x.gold = static_cast<int64_t>(x.choices.size());
      }
      x.choices.push_back(it.key());
    }
    t.examples.push_back(std::move(x));
  }
  if (t.examples.empty()) fail(path, "examples: no multiple-choice example (none has target_scores)");
  return t;
}

BigBenchTask read_bigbench_task(const std::string& path, const std::string& name) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail(path, "cannot open BIG-bench task file");
  std::ostringstream s;
  s << in.rdbuf();
  return parse_bigbench_task(s.str(), path, name);
}

std::string bigbench_prompt(const BigBenchTask& t, const BigBenchExample& e) {
  std::string p = t.input_prefix + e.input;
  if (t.append_choices)
    for (const auto& c : e.choices) p += t.choice_prefix + c;
  return rstrip(p + t.output_prefix);
}

std::vector<int64_t> fewshot_indices(int64_t examples, int64_t doc, int64_t k, uint64_t seed) {
  std::vector<int64_t> pool;
  for (int64_t i = 0; i < examples; ++i)
    if (i != doc) pool.push_back(i);
  k = std::min<int64_t>(k, static_cast<int64_t>(pool.size()));
  SplitMix rng(seed ^ splitmix64(static_cast<uint64_t>(doc)));
  for (int64_t j = 0; j < k; ++j) {
    const int64_t r = j + static_cast<int64_t>(rng.below(pool.size() - j));
    std::swap(pool[j], pool[r]);
  }
  pool.resize(k);
  return pool;
}

std::string bigbench_context(const BigBenchTask& t, int64_t doc, int64_t fewshot, uint64_t seed) {
  if (doc < 0 || doc >= static_cast<int64_t>(t.examples.size())) fail(t.path, "document index out of range");
  std::string context = t.task_prefix;
  for (int64_t i : fewshot_indices(static_cast<int64_t>(t.examples.size()), doc, fewshot, seed)) {
    const BigBenchExample& e = t.examples[i];
    context += bigbench_prompt(t, e) + " " + e.choices[e.gold] + "\n\n";
  }
  return context + bigbench_prompt(t, t.examples[doc]);
}

const std::vector<std::string>& bbh_task_names() {
  static const std::vector<std::string> names = {
      "causal_judgment", "date_understanding", "disambiguation_qa", "dyck_languages",
      "formal_fallacies_syllogisms_negation", "geometric_shapes", "hyperbaton",
      "logical_deduction_three_objects", "logical_deduction_five_objects", "logical_deduction_seven_objects",
      "movie_recommendation", "navigate", "penguins_in_a_table", "reasoning_about_colored_objects", "ruin_names",
      "salient_translation_error_detection", "snarks", "sports_understanding", "temporal_sequences",
      "tracking_shuffled_objects_three_objects", "tracking_shuffled_objects_five_objects",
      "tracking_shuffled_objects_seven_objects"};
  return names;
}

std::string find_bigbench_task(const std::string& root, const std::string& name) {
  namespace fs = std::filesystem;
  std::vector<fs::path> bases = {fs::path(root), fs::path(root) / "bigbench" / "benchmark_tasks",
                                 fs::path(root) / "bigbench-1.0.0" / "bigbench" / "benchmark_tasks"};
  for (const fs::path& b : bases) {
    if (fs::exists(b / name / "task.json")) return (b / name / "task.json").string();
    // <task>_<subtask> -> <task>/<subtask>/task.json (split at each '_' from the right)
    for (size_t cut = name.rfind('_'); cut != std::string::npos && cut > 0; cut = name.rfind('_', cut - 1)) {
      const fs::path p = b / name.substr(0, cut) / name.substr(cut + 1) / "task.json";
      if (fs::exists(p)) return p.string();
      if (cut == 0) break;
    }
  }
  fail_option("bigbench", "no task.json for '" + name + "' under " + root +
                         " (bigbench 1.0.0's benchmark_tasks folder; scripts/setup.sh fetches it)");
}

}  // namespace linearard::eval
