// Helpers for the data tests: temp folders and shards written through ShardWriter.
#pragma once
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <string>
#include <vector>

#include "data/shard_writer.h"

namespace linearard::data::test {

inline std::string temp_dir(const std::string& name) {
  const std::string d = ::testing::TempDir() + "/data_" + name;
  ::mkdir(d.c_str(), 0755);
  return d;
}

// Writes `docs` (with EOS separators when eos >= 0) and returns the shard paths.
inline std::vector<std::string> write_docs(const std::string& dir, const std::vector<std::vector<int32_t>>& docs,
                                           uint64_t vocab, int64_t eos, uint64_t shard_tokens) {
  ShardWriterParams p;
  p.out_dir = dir;
  p.vocab_size = vocab;
  p.eos_id = eos;
  p.shard_tokens = shard_tokens;
  ShardWriter w(p);
  for (const auto& d : docs) w.add_document(d, eos >= 0);
  std::vector<std::string> paths;
  for (const auto& e : w.finish()) paths.push_back(dir + "/" + e.file);
  return paths;
}

}  // namespace linearard::data::test
