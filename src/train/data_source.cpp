#include "train/data_source.h"

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <numeric>
#include <sstream>

#include "common/error.h"
#include "common/option_error.h"
#include "data/shard.h"
#ifdef LINEARARD_WITH_TOKENIZER
#include "data/corpus_reader.h"
#include "tokenizer/tokenizer.h"
#endif

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

bool is_shard(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  char magic[sizeof(data::kShardMagic)] = {};
  return in.read(magic, sizeof(magic)) && std::memcmp(magic, data::kShardMagic, sizeof(magic)) == 0;
}

bool is_text(const std::string& path) {
  return ends_with(path, ".txt") || ends_with(path, ".md") || ends_with(path, ".jsonl");
}

// Documents of memory-mapped token shards; blocks are (shard, first token) pairs, nothing copied.
class ShardBlocks : public TokenBlockSource {
 public:
  ShardBlocks(std::vector<data::Shard> shards, int64_t T) : shards_(std::move(shards)), T_(T) {
    for (size_t s = 0; s < shards_.size(); ++s)
      for (uint64_t d = 0; d < shards_[s].documents(); ++d) {
        const auto [begin, end] = shards_[s].document(d);
        for (uint64_t off = begin; off + T <= end; off += T) blocks_.push_back({s, off});
      }
  }
  int64_t num_blocks() const override { return int64_t(blocks_.size()); }
  int64_t block_length() const override { return T_; }
  std::vector<int32_t> block(int64_t index) const override {
    const auto [s, off] = blocks_.at(size_t(index));
    std::vector<int32_t> ids(T_);
    shards_[s].read(off, T_, ids.data());
    return ids;
  }
  std::string describe() const override {
    uint64_t docs = 0;
    for (const auto& s : shards_) docs += s.documents();
    return std::to_string(shards_.size()) + " token shards: " + std::to_string(docs) + " documents, " +
           std::to_string(blocks_.size()) + " blocks of " + std::to_string(T_) + " tokens";
  }

 private:
  std::vector<data::Shard> shards_;
  int64_t T_;
  std::vector<std::pair<size_t, uint64_t>> blocks_;
};

// Shard files of a folder made by `linearard tokenize` (sorted: the writer numbers them).
std::vector<std::string> shards_in_folder(const std::string& dir) {
  std::vector<std::string> out;
  for (const auto& e : std::filesystem::directory_iterator(dir))
    if (e.is_regular_file() && is_shard(e.path().string())) out.push_back(e.path().string());
  std::sort(out.begin(), out.end());
  return out;
}

std::vector<std::vector<int32_t>> encode_text(const std::vector<std::string>& paths, const std::string& tokenizer_dir) {
#ifdef LINEARARD_WITH_TOKENIZER
  if (tokenizer_dir.empty()) fail(paths[0], "text input needs a tokenizer (the model directory)");
  const auto tokenizer = tok::load_tokenizer(tokenizer_dir);
  data::CorpusReader reader(paths, data::CorpusOptions{});
  std::vector<std::vector<int32_t>> docs;
  data::Document doc;
  while (reader.next(doc)) {
    auto ids = tokenizer->encode(doc.text, /*add_special=*/true);
    if (!tokenizer->adds_eos() && tokenizer->eos_id() >= 0) ids.push_back(tokenizer->eos_id());
    docs.push_back(std::move(ids));
  }
  return docs;
#else
  fail(paths[0], "text input needs the tokenizer, which this build lacks (PCRE2/SentencePiece not found)");
#endif
}

// splitmix64 (Steele et al. 2014): a portable generator, so the order does not depend on the
// standard library's std::shuffle.
uint64_t splitmix64(uint64_t& state) {
  uint64_t z = (state += 0x9E3779B97F4A7C15ULL);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}

}  // namespace

std::unique_ptr<TokenBlockSource> open_token_files(const std::vector<std::string>& paths, int64_t T,
                                                   const std::string& tokenizer_dir, int64_t vocab_size) {
  if (paths.empty()) fail_option("data", "no training data given");
  // Token shards (files or folders of them) stream from their mappings.
  std::vector<std::string> shard_paths;
  bool all_shards = true;
  for (const auto& path : paths) {
    if (std::filesystem::is_directory(path) && std::filesystem::exists(path + "/manifest.json")) {
      // `linearard tokenize` output: the manifest says which shards make the data set.
      const auto listed = data::shard_paths(path);
      shard_paths.insert(shard_paths.end(), listed.begin(), listed.end());
    } else if (std::filesystem::is_directory(path)) {
      auto found = shards_in_folder(path);
      if (found.empty()) { all_shards = false; break; }
      shard_paths.insert(shard_paths.end(), found.begin(), found.end());
    } else if (is_shard(path)) {
      shard_paths.push_back(path);
    } else {
      all_shards = false;
      break;
    }
  }
  if (all_shards) {
    std::vector<data::Shard> shards;
    for (const auto& p : shard_paths) {
      if (!std::filesystem::exists(p)) fail(p, "listed in manifest.json but missing");
      shards.push_back(data::Shard::open(p));
      const uint64_t shard_vocab = shards.back().header().vocab_size;
      if (vocab_size > 0 && shard_vocab > uint64_t(vocab_size))
        fail(p, "was tokenized for a vocabulary of " + std::to_string(shard_vocab) +
                    " ids, more than the model's vocab_size " + std::to_string(vocab_size) + " (another tokenizer?)");
    }
    auto source = std::make_unique<ShardBlocks>(std::move(shards), T);
    if (source->num_blocks() == 0)
      fail(paths[0], "no document has " + std::to_string(T) + " tokens (--context)");
    return source;
  }
  std::vector<std::vector<int32_t>> docs;
  for (const auto& path : paths) {
    if (std::filesystem::is_directory(path) || is_text(path)) {
      for (auto& d : encode_text({path}, tokenizer_dir)) docs.push_back(std::move(d));
      continue;
    }
    if (is_shard(path)) fail(path, "token shards cannot be mixed with other data files");
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
      fail(path, "unknown data file type (expected token shards, .txt/.md/.jsonl text, .bin int32 ids or .json)");
    }
  }
  if (vocab_size > 0) {
    // Which input a document came from is not kept; name the single path, else the data option.
    for (const auto& d : docs)
      for (int32_t id : d)
        if (id >= vocab_size) {
          const std::string problem =
              "token id " + std::to_string(id) + " is not below the model's vocab_size " + std::to_string(vocab_size);
          if (paths.size() == 1) fail(paths[0], problem);
          fail_option("data", problem);
        }
  }
  std::string what = paths.size() == 1 ? paths[0] : std::to_string(paths.size()) + " files";
  auto source = std::make_unique<InMemoryBlocks>(std::move(docs), T, what);
  if (source->num_blocks() == 0) fail(paths[0], "no document has " + std::to_string(T) + " tokens (--context)");
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
