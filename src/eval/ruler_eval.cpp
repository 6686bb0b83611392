#include "eval/ruler_eval.h"

#include <algorithm>
#include <chrono>
#include <ostream>

#include "common/error.h"
#include "eval/batch_decode.h"

namespace linearard::eval {

nlohmann::json evaluate_ruler(const EvalModel& m, const tok::Tokenizer& tok, const RulerParams& p,
                              const std::vector<RulerSample>& samples, int64_t batch_size, int64_t batch_tokens,
                              std::ostream* log, const std::string& tag) {
  using nlohmann::json;
  const std::vector<std::string>& tasks = p.tasks.empty() ? ruler_task_names() : p.tasks;
  if (samples.size() != tasks.size() * p.lengths.size() * static_cast<size_t>(p.samples))
    fail("ruler", "samples do not match the tasks x lengths x samples grid");
  json results = json::array(), outputs = json::array();
  std::vector<double> by_length(p.lengths.size(), 0.0);
  size_t i = 0;
  for (size_t t = 0; t < tasks.size(); ++t) {
    for (size_t l = 0; l < p.lengths.size(); ++l) {
      const auto t0 = std::chrono::steady_clock::now();
      const int64_t length = p.lengths[l];
      const int64_t rows = std::max<int64_t>(1, std::min<int64_t>(batch_size, batch_tokens / std::max<int64_t>(1, length)));
      double score = 0;
      for (int64_t first = 0; first < p.samples; first += rows) {
        const int64_t n = std::min(rows, p.samples - first);
        std::vector<std::vector<int64_t>> prompts;
        for (int64_t k = 0; k < n; ++k) prompts.push_back(samples[i + first + k].prompt);
        const auto got = greedy_decode_batch(m, prompts, samples[i + first].max_new_tokens, tok.eos_id());
        for (int64_t k = 0; k < n; ++k) {
          const RulerSample& s = samples[i + first + k];
          std::string text;
          try {  // a model vocabulary larger than the tokenizer's may produce ids it cannot decode
            text = tok.decode(std::vector<int32_t>(got[k].begin(), got[k].end()), true);
          } catch (const std::exception&) {
            text = "<undecodable>";
          }
          const double sc = string_match_all(text, s.answers);
          score += sc / static_cast<double>(p.samples);
          outputs.push_back({{"task", s.task}, {"length", s.length}, {"index", s.index}, {"answers", s.answers},
                             {"output", text}, {"score", sc}});
        }
      }
      i += static_cast<size_t>(p.samples);
      const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      by_length[l] += score / static_cast<double>(tasks.size());
      if (log)
        *log << tag << "ruler " << tasks[t] << " @" << length << " (" << (t * p.lengths.size() + l + 1) << "/"
             << tasks.size() * p.lengths.size() << "): " << score << " (" << p.samples << " samples, " << seconds
             << " s)" << std::endl;
      results.push_back({{"task", tasks[t]}, {"length", length}, {"score", score}, {"samples", p.samples},
                         {"seconds", seconds}});
    }
  }
  return {{"tasks", tasks}, {"lengths", p.lengths}, {"samples", p.samples}, {"seed", p.seed},
          {"haystack", p.haystack_file.empty() ? std::string("noise") : p.haystack_file}, {"results", results},
          {"score_by_length", by_length}, {"outputs", outputs}};
}

}  // namespace linearard::eval
