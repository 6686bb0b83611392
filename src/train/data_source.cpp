#include "train/data_source.h"

#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <numeric>
#include <sstream>

#include "common/error.h"

namespace linearard::train {
namespace {

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

std::string read_all(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail(path, "cannot open token file");
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

std::vector<int32_t> json_ids(const nlohmann::json& list, const std::string& path) {
  std::vector<int32_t> ids;
  ids.reserve(list.size());
  for (const auto& v : list) {
    if (!v.is_number_integer() || v.get<int64_t>() < 0 || v.get<int64_t>() > INT32_MAX)
      fail(path, "token ids must be non-negative 32-bit integers");
    ids.push_back(v.get<int32_t>());
  }
  return ids;
}

// Documents held in memory; blocks are (document, offset) pairs.
class InMemoryBlocks : public TokenBlockSource {
 public:
  InMemoryBlocks(std::vector<std::vector<int32_t>> docs, int64_t T, std::string description)
      : docs_(std::move(docs)), T_(T), description_(std::move(description)) {
    for (size_t d = 0; d < docs_.size(); ++d)
      for (int64_t off = 0; off + T <= int64_t(docs_[d].size()); off += T) blocks_.push_back({int64_t(d), off});
  }
  int64_t num_blocks() const override { return int64_t(blocks_.size()); }
  int64_t block_length() const override { return T_; }
  std::vector<int32_t> block(int64_t index) const override {
    const auto [d, off] = blocks_.at(size_t(index));
    return std::vector<int32_t>(docs_[d].begin() + off, docs_[d].begin() + off + T_);
  }
  std::string describe() const override {
    return description_ + ": " + std::to_string(docs_.size()) + " documents, " +
           std::to_string(blocks_.size()) + " blocks of " + std::to_string(T_) + " tokens";
  }

 private:
  std::vector<std::vector<int32_t>> docs_;
  int64_t T_;
  std::string description_;
  std::vector<std::pair<int64_t, int64_t>> blocks_;
};

// splitmix64 (Steele et al. 2014): a portable generator, so the order does not depend on the
// standard library's std::shuffle.
uint64_t splitmix64(uint64_t& state) {
  uint64_t z = (state += 0x9E3779B97F4A7C15ULL);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}

}  // namespace

std::unique_ptr<TokenBlockSource> open_token_files(const std::vector<std::string>& paths, int64_t T) {
  std::vector<std::vector<int32_t>> docs;
  for (const auto& path : paths) {
    const std::string bytes = read_all(path);
    if (ends_with(path, ".bin")) {
      if (bytes.size() % 4 != 0) fail(path, "size is not a multiple of 4 bytes (int32 token ids)");
      std::vector<int32_t> ids(bytes.size() / 4);
      std::memcpy(ids.data(), bytes.data(), bytes.size());  // little-endian hosts only (x86, arm64)
      for (int32_t id : ids)
        if (id < 0) fail(path, "negative token id " + std::to_string(id));
      docs.push_back(std::move(ids));
    } else if (ends_with(path, ".json")) {
      nlohmann::json j;
      try {
        j = nlohmann::json::parse(bytes);
      } catch (const nlohmann::json::exception& e) {
        fail(path, std::string("invalid JSON: ") + e.what());
      }
      if (!j.is_array()) fail(path, "expected a JSON list of token ids or a list of lists");
      if (!j.empty() && j[0].is_array()) {
        for (const auto& doc : j) {
          if (!doc.is_array()) fail(path, "expected every document to be a list of token ids");
          docs.push_back(json_ids(doc, path));
        }
      } else {
        docs.push_back(json_ids(j, path));
      }
    } else {
      fail(path, "unknown token file type (expected .bin of int32 ids or .json)");
    }
  }
  std::string what = paths.size() == 1 ? paths[0] : std::to_string(paths.size()) + " files";
  auto source = std::make_unique<InMemoryBlocks>(std::move(docs), T, what);
  if (source->num_blocks() == 0)
    fail(paths.empty() ? "--data" : paths[0], "no document has " + std::to_string(T) + " tokens (--context)");
  return source;
}

BlockSampler::BlockSampler(const TokenBlockSource& source, uint64_t seed, bool shuffle)
    : source_(source), seed_(seed), shuffle_(shuffle) {}

void BlockSampler::set_position(int64_t position) {
  if (position < 0) fail("data position", "must be >= 0");
  position_ = position;
}

int64_t BlockSampler::block_at(int64_t position) {
  const int64_t N = source_.num_blocks();
  const int64_t epoch = position / N;
  if (epoch != epoch_) {
    order_.resize(size_t(N));
    std::iota(order_.begin(), order_.end(), 0);
    if (shuffle_) {  // Fisher-Yates with a per-epoch stream
      uint64_t state = seed_ * 0x100000001B3ULL + uint64_t(epoch) + 1;
      for (int64_t i = N - 1; i > 0; --i) std::swap(order_[i], order_[splitmix64(state) % uint64_t(i + 1)]);
    }
    epoch_ = epoch;
  }
  return order_[size_t(position % N)];
}

at::Tensor BlockSampler::next_batch(int64_t B) {
  const int64_t T = source_.block_length();
  at::Tensor out = at::empty({B, T}, at::kLong);  // (B, T)
  auto* p = out.data_ptr<int64_t>();
  for (int64_t b = 0; b < B; ++b) {
    const auto ids = source_.block(block_at(position_++));
    for (int64_t t = 0; t < T; ++t) p[b * T + t] = ids[size_t(t)];
  }
  return out;
}

}  // namespace linearard::train
