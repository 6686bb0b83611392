// Helpers of the training tests: fixture paths, temp dirs and tensor comparisons.
#pragma once
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "common/option_error.h"
#include "test_env.h"

namespace linearard::train_test {

inline std::string fixture(const std::string& name) { return test_env::fixtures_dir() + "/train/" + name; }

// A fresh empty directory under the build's fixtures dir (kept after the test for inspection).
inline std::string fresh_dir(const std::string& name) {
  const std::string dir = test_env::fixtures_dir() + "/train_tmp/" + name;
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  return dir;
}

// The lines of <out>/metrics.jsonl, parsed.
inline std::vector<nlohmann::json> read_metrics(const std::string& out) {
  std::vector<nlohmann::json> lines;
  std::ifstream in(out + "/metrics.jsonl");
  std::string line;
  while (std::getline(in, line)) lines.push_back(nlohmann::json::parse(line));
  return lines;
}

// max |a - b| / max |b| (b is the reference).
inline double relative_error(const at::Tensor& ours, const at::Tensor& ref) {
  EXPECT_EQ(ours.sizes(), ref.sizes());
  const auto a = ours.to(at::kDouble), b = ref.to(at::kDouble);
  const double scale = b.abs().max().item<double>();
  return (a - b).abs().max().item<double>() / std::max(scale, 1e-30);
}

// The options a one-step CPU `linearard distill` on the llama_mha fixture prints at start
// ("options: {...}"), with `flags` added to its command line; `out` is its --out.
inline nlohmann::json one_step_distill_options(const std::string& out, const std::string& flags) {
  const std::string cmd = test_env::linearard_bin() + " distill --model " + fixture("llama_mha") + " --data " +
                          fixture("corpus.bin") + " --out " + out +
                          " --rope-scaling '{\"rope_type\":\"linear\",\"factor\":4.0}' --device cpu --context 16" +
                          " --steps 1 --checkpoint-every 0 --lora-rank 4 --lora-alpha 8 " + flags + " 2>&1";
  const auto r = test_env::run_command(cmd);
  EXPECT_EQ(r.exit_code, 0) << r.output;
  std::istringstream lines(r.output);
  std::string line;
  while (std::getline(lines, line))
    if (line.rfind("options: ", 0) == 0) return nlohmann::json::parse(line.substr(9));
  ADD_FAILURE() << "no options line in:\n" << r.output;
  return {};
}

// The OptionError `f` throws (fails the test when it throws none).
inline OptionError option_error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const OptionError& e) {
    return e;
  }
  ADD_FAILURE() << "no OptionError";
  return OptionError("", "");
}

}  // namespace linearard::train_test
