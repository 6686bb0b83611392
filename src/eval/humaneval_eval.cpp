#include "eval/humaneval_eval.h"

#include <algorithm>
#include <chrono>
#include <numeric>
#include <ostream>

#include "common/error.h"
#include "eval/batch_decode.h"

namespace linearard::eval {

HumanEvalInput prepare_humaneval(const tok::Tokenizer& tok, const HumanEvalParams& p, bool add_bos) {
  HumanEvalInput in;
  in.problems = read_humaneval(p.file);
  if (p.limit > 0 && static_cast<int64_t>(in.problems.size()) > p.limit) in.problems.resize(p.limit);
  for (const HumanEvalProblem& q : in.problems) {
    std::vector<int32_t> ids = tok.encode(q.prompt, add_bos);
    // add_special_tokens=True on a LLaMA tokenizer adds BOS only; a context never ends with EOS.
    if (add_bos && tok.adds_eos() && !ids.empty() && ids.back() == tok.eos_id()) ids.pop_back();
    if (ids.empty()) ids.push_back(tok.bos_id() >= 0 ? tok.bos_id() : std::max(0, tok.eos_id()));
    in.prompts.emplace_back(ids.begin(), ids.end());
  }
  in.exec = check_code_execution(p.exec);
  return in;
}

std::string decode_completion(const tok::Tokenizer& tok, const std::vector<int64_t>& ids) {
  try {  // a model vocabulary larger than the tokenizer's may produce ids it cannot decode
    return tok.decode(std::vector<int32_t>(ids.begin(), ids.end()), /*skip_special=*/true);
  } catch (const std::exception&) {
    return "<undecodable>";
  }
}

nlohmann::json evaluate_humaneval(const EvalModel& m, const tok::Tokenizer& tok, const HumanEvalParams& p,
                                  const HumanEvalInput& in, int64_t batch_size, std::ostream* log,
                                  const std::string& tag) {
  using nlohmann::json;
  const size_t n = in.problems.size();
  if (in.prompts.size() != n) fail("humaneval", "prompts do not match the problems");
  const auto t0 = std::chrono::steady_clock::now();
  // Batches of similar lengths: less padding.
  std::vector<size_t> order(n);
  std::iota(order.begin(), order.end(), size_t{0});
  std::stable_sort(order.begin(), order.end(),
                   [&](size_t a, size_t b) { return in.prompts[a].size() < in.prompts[b].size(); });
  std::vector<std::vector<int64_t>> generated(n);
  const size_t rows = static_cast<size_t>(std::max<int64_t>(1, batch_size));
  for (size_t first = 0; first < n; first += rows) {
    const size_t count = std::min(rows, n - first);
    std::vector<std::vector<int64_t>> prompts;
    for (size_t k = 0; k < count; ++k) prompts.push_back(in.prompts[order[first + k]]);
    const DecodeStop stop = [&](int64_t, const std::vector<int64_t>& ids) {
      return find_humaneval_stop(decode_completion(tok, ids)) != std::string::npos;
    };
    const auto got = greedy_decode_batch(m, prompts, p.max_new_tokens, tok.eos_id(), stop);
    for (size_t k = 0; k < count; ++k) generated[order[first + k]] = got[k];
    if (log)
      *log << tag << "humaneval generate " << (first + count) << "/" << n << " problems ("
           << std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() << " s)" << std::endl;
  }
  const double generate_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::vector<std::string> raw(n), completions(n), programs(n);
  for (size_t i = 0; i < n; ++i) {
    raw[i] = decode_completion(tok, generated[i]);
    completions[i] = truncate_at_stop(raw[i]);
    programs[i] = humaneval_program(in.problems[i], completions[i]);
  }
  const auto t1 = std::chrono::steady_clock::now();
  const std::vector<CodeExecResult> results = run_python_programs(programs, in.exec);
  const double execute_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t1).count();
  int64_t passed = 0;
  json pass = json::array(), problems = json::array();
  for (size_t i = 0; i < n; ++i) {
    passed += results[i].passed ? 1 : 0;
    pass.push_back(results[i].passed);
    problems.push_back({{"task_id", in.problems[i].task_id}, {"passed", results[i].passed},
                        {"result", results[i].result}, {"completion", completions[i]}, {"raw", raw[i]},
                        {"new_tokens", generated[i].size()}, {"prompt_tokens", in.prompts[i].size()},
                        {"seconds", results[i].seconds}});
  }
  const double pass_at_1 = n > 0 ? static_cast<double>(passed) / static_cast<double>(n) : 0.0;
  if (log)
    *log << tag << "humaneval: pass@1 " << pass_at_1 << " (" << passed << "/" << n << " passed; generate "
         << generate_seconds << " s, execute " << execute_seconds << " s)" << std::endl;
  return {{"file", p.file}, {"n", n}, {"passed", passed}, {"pass_at_1", pass_at_1}, {"pass", pass},
          {"max_new_tokens", p.max_new_tokens}, {"timeout_s", in.exec.timeout_s},
          {"network_isolated", in.exec.isolate_network}, {"problems", problems},
          {"generate_seconds", generate_seconds}, {"execute_seconds", execute_seconds}};
}

}  // namespace linearard::eval
