#include "io/output_guard.h"

#include <regex>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "common/error.h"
#include "common/option_error.h"
#include "io/atomic_file.h"

namespace linearard::io {
namespace {

namespace fs = std::filesystem;

[[noreturn]] void refuse(const OutputTarget& t, const std::string& problem) { fail_option_value(t.option, t.path, problem); }

bool exists(const std::string& path) {
  std::error_code ec;
  return fs::exists(path, ec);
}

bool is_directory(const std::string& path) {
  std::error_code ec;
  return fs::is_directory(path, ec);
}

bool is_empty_directory(const std::string& path) {
  std::error_code ec;
  return fs::is_empty(path, ec) && !ec;
}

// The files a training run writes into its --out (train/trainer.h).
const char* const kRunFiles[] = {"options.json", "metrics.jsonl", "checkpoints", "final"};

// Deletes an earlier run's files (checkpoints/ also holds the temp folders of interrupted checkpoint
// writes; options.json.tmp.* is left by a run killed while writing options.json).
void remove_earlier_run(const std::string& out) {
  std::error_code ec;
  std::vector<fs::path> doomed;
  for (const char* name : kRunFiles) doomed.push_back(fs::path(out) / name);
  for (const fs::directory_entry& e : fs::directory_iterator(out, ec))
    if (e.path().filename().string().rfind("options.json.tmp.", 0) == 0) doomed.push_back(e.path());
  for (const fs::path& p : doomed) {
    fs::remove_all(p, ec);
    if (ec) fail(p.string(), "cannot remove the earlier run's file for --overwrite: " + ec.message());
  }
}

// True when `dir` holds a training run's files: options.json (written first), or its temp file
// when a run was killed while writing it.
bool holds_earlier_run(const std::string& dir) {
  std::error_code ec;
  for (const fs::directory_entry& e : fs::directory_iterator(dir, ec)) {
    const std::string name = e.path().filename().string();
    if (name == "options.json" || name.rfind("options.json.tmp.", 0) == 0) return true;
  }
  return false;
}

// An earlier `linearard eval --json` result: a JSON object with "model" and "plan" (eval_tasks.cpp).
bool is_eval_result(const std::string& path) {
  std::ifstream in(path);
  if (!in) return false;
  try {
    const nlohmann::json j = nlohmann::json::parse(in);
    return j.is_object() && j.contains("model") && j.contains("plan");
  } catch (const nlohmann::json::exception&) {
    return false;
  }
}

}  // namespace

void refuse_input_overlap(const OutputTarget& t) {
  if (t.path.empty()) fail_option(t.option, "is required");
  for (const GuardedInput& in : t.inputs) {
    if (in.path.empty() || !exists(in.path)) continue;
    const std::string out = normalized_path(t.path), input = normalized_path(in.path);
    if (out == input) refuse(t, "is the input " + in.label + " " + in.path + "; refusing to write there");
    if (path_within(out, input))
      refuse(t, "lies inside the input " + in.label + " " + in.path + "; refusing to write there");
    if (path_within(input, out))
      refuse(t, "contains the input " + in.label + " " + in.path + "; refusing to write there");
  }
}

void check_output_dir(const OutputTarget& t) {
  refuse_input_overlap(t);
  if (!exists(t.path)) return;
  if (!is_directory(t.path)) refuse(t, "exists and is not a directory");
  if (!t.overwrite && !is_empty_directory(t.path))
    refuse(t, "directory is not empty (pass --overwrite to write into it)");
}

void prepare_training_out(const OutputTarget& t, const std::string& resume) {
  if (t.overwrite && !resume.empty())
    fail_option("overwrite", "cannot be combined with --resume (--resume continues a run, --overwrite starts a fresh one)");
  refuse_input_overlap(t);
  if (!exists(t.path)) return;
  if (!is_directory(t.path)) refuse(t, "exists and is not a directory");
  if (is_empty_directory(t.path)) return;
  const bool earlier_run = holds_earlier_run(t.path);
  if (t.overwrite) {
    remove_earlier_run(t.path);
    return;
  }
  if (!earlier_run)
    refuse(t, resume.empty() ? "directory is not empty (pass --overwrite to write into it)"
                                  : "directory is not empty and holds no earlier run to resume (no options.json)");
  if (resume.empty())
    refuse(t, "holds an earlier run (pass --resume auto to continue it or --overwrite to start afresh)");
}

void check_output_file(const OutputTarget& t) {
  refuse_input_overlap(t);
  if (!exists(t.path)) return;
  if (is_directory(t.path)) refuse(t, "is a directory, expected a file name");
  if (!t.overwrite && !is_eval_result(t.path))
    refuse(t, "file exists and is not an earlier eval result (pass --overwrite to replace it)");
}

void remove_earlier_outputs(const std::string& dir, const std::string& pattern) {
  namespace fs = std::filesystem;
  const std::regex outputs(pattern);
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) return;
  for (const fs::directory_entry& e : fs::directory_iterator(dir, ec))
    if (std::regex_match(e.path().filename().string(), outputs) && !fs::remove(e.path(), ec))
      fail(e.path().string(), "cannot remove the earlier output for --overwrite: " + ec.message());
}

}  // namespace linearard::io
