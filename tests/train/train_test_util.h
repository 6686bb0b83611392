// Helpers of the training tests: fixture paths, temp dirs and tensor comparisons.
#pragma once
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

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

}  // namespace linearard::train_test
