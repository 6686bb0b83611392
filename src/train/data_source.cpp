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

// The packed stream: documents (non-empty, in order) concatenated; block b is tokens [b T, (b+1) T).
struct PackedIndex {
  std::vector<uint64_t> start;  // first stream token of each document, then the total
  uint64_t blocks(int64_t T) const { return start.empty() ? 0 : start.back() / uint64_t(T); }
  // Calls piece(document, offset in the document, count, offset in the block) for the runs of block b.
  template <typename F> void pieces(int64_t b, int64_t T, F&& piece) const {
    uint64_t g = uint64_t(b) * uint64_t(T), left = uint64_t(T), at = 0;
    size_t d = size_t(std::upper_bound(start.begin(), start.end(), g) - start.begin()) - 1;
    while (left > 0) {
      const uint64_t n = std::min(left, start[d + 1] - g);
      piece(d, g - start[d], n, at);
      g += n;
      at += n;
      left -= n;
      ++d;
    }
  }
  std::vector<int32_t> doc_ids(int64_t b, int64_t T) const {
    std::vector<int32_t> ids(static_cast<size_t>(T));
    int32_t id = 0;
    pieces(b, T, [&](size_t, uint64_t, uint64_t n, uint64_t at) {
      std::fill(ids.begin() + int64_t(at), ids.begin() + int64_t(at + n), id++);
    });
    return ids;
  }
};

// Documents held in memory; blocks are (document, offset) pairs, or (packed) runs of the stream.
class InMemoryBlocks : public TokenBlockSource {
 public:
  InMemoryBlocks(std::vector<std::vector<int32_t>> docs, int64_t T, std::string description, bool packed)
      : docs_(std::move(docs)), T_(T), description_(std::move(description)), packed_(packed) {
    if (packed_) {
      n_docs_ = docs_.size();
      std::vector<std::vector<int32_t>> kept;  // empty documents take no place in the stream
      packed_index_.start.push_back(0);
      for (auto& d : docs_) {
        if (d.empty()) continue;
        packed_index_.start.push_back(packed_index_.start.back() + d.size());
        kept.push_back(std::move(d));
      }
      docs_ = std::move(kept);
      return;
    }
    n_docs_ = docs_.size();
    for (size_t d = 0; d < docs_.size(); ++d)
      for (int64_t off = 0; off + T <= int64_t(docs_[d].size()); off += T) blocks_.push_back({int64_t(d), off});
  }
  int64_t num_blocks() const override {
    return packed_ ? int64_t(packed_index_.blocks(T_)) : int64_t(blocks_.size());
  }
  int64_t block_length() const override { return T_; }
  std::vector<int32_t> block(int64_t index) const override {
    if (packed_) {
      if (index < 0 || index >= num_blocks()) fail("data", "block " + std::to_string(index) + " out of range");
      std::vector<int32_t> ids(static_cast<size_t>(T_));
      packed_index_.pieces(index, T_, [&](size_t d, uint64_t off, uint64_t n, uint64_t at) {
        std::copy_n(docs_[d].begin() + int64_t(off), n, ids.begin() + int64_t(at));
      });
      return ids;
    }
    const auto [d, off] = blocks_.at(size_t(index));
    return std::vector<int32_t>(docs_[d].begin() + off, docs_[d].begin() + off + T_);
  }
  std::vector<int32_t> doc_ids(int64_t index) const override {
    return packed_ ? packed_index_.doc_ids(index, T_) : std::vector<int32_t>{};
  }
  bool packed() const override { return packed_; }
  std::string describe() const override {
    return description_ + ": " + std::to_string(n_docs_) + " documents, " + std::to_string(num_blocks()) +
           (packed_ ? " packed" : "") + " blocks of " + std::to_string(T_) + " tokens";
  }

 private:
  std::vector<std::vector<int32_t>> docs_;
  int64_t T_;
  std::string description_;
  bool packed_;
  size_t n_docs_ = 0;
  std::vector<std::pair<int64_t, int64_t>> blocks_;
  PackedIndex packed_index_;
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
  // packed: a document runs from its begin to the next document's begin (or the shard's end), so
  // the EOS separator that follows it is packed with it.
  ShardBlocks(std::vector<data::Shard> shards, int64_t T, bool packed)
      : shards_(std::move(shards)), T_(T), packed_(packed) {
    for (size_t s = 0; s < shards_.size(); ++s)
      for (uint64_t d = 0; d < shards_[s].documents(); ++d) {
        const auto [begin, end] = shards_[s].document(d);
        if (packed_) {
          const uint64_t stop = d + 1 < shards_[s].documents() ? shards_[s].document(d + 1).first : shards_[s].tokens();
          if (stop <= begin) continue;
          if (packed_index_.start.empty()) packed_index_.start.push_back(0);
          packed_index_.start.push_back(packed_index_.start.back() + (stop - begin));
          packed_docs_.push_back({s, begin});
          continue;
        }
        for (uint64_t off = begin; off + T <= end; off += T) blocks_.push_back({s, off});
      }
  }
  int64_t num_blocks() const override {
    return packed_ ? int64_t(packed_index_.blocks(T_)) : int64_t(blocks_.size());
  }
  int64_t block_length() const override { return T_; }
  std::vector<int32_t> block(int64_t index) const override {
    std::vector<int32_t> ids(T_);
    if (packed_) {
      if (index < 0 || index >= num_blocks()) fail("data", "block " + std::to_string(index) + " out of range");
      packed_index_.pieces(index, T_, [&](size_t d, uint64_t off, uint64_t n, uint64_t at) {
        const auto [s, begin] = packed_docs_[d];
        shards_[s].read(begin + off, n, ids.data() + at);
      });
      return ids;
    }
    const auto [s, off] = blocks_.at(size_t(index));
    shards_[s].read(off, T_, ids.data());
    return ids;
  }
  std::vector<int32_t> doc_ids(int64_t index) const override {
    return packed_ ? packed_index_.doc_ids(index, T_) : std::vector<int32_t>{};
  }
  bool packed() const override { return packed_; }
  std::string describe() const override {
    uint64_t docs = 0;
    for (const auto& s : shards_) docs += s.documents();
    return std::to_string(shards_.size()) + " token shards: " + std::to_string(docs) + " documents, " +
           std::to_string(num_blocks()) + (packed_ ? " packed" : "") + " blocks of " + std::to_string(T_) + " tokens";
  }

 private:
  std::vector<data::Shard> shards_;
  int64_t T_;
  bool packed_;
  std::vector<std::pair<size_t, uint64_t>> blocks_;
  std::vector<std::pair<size_t, uint64_t>> packed_docs_;  // packed: (shard, first token) of each document
  PackedIndex packed_index_;
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

std::string no_block_message(int64_t T, bool packed) {
  if (packed) return "fewer than " + std::to_string(T) + " tokens in all, not one packed block (--context)";
  return "no document has " + std::to_string(T) + " tokens (--context)";
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
                                                   const std::string& tokenizer_dir, int64_t vocab_size,
                                                   bool packed) {
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
    auto source = std::make_unique<ShardBlocks>(std::move(shards), T, packed);
    if (source->num_blocks() == 0) fail(paths[0], no_block_message(T, packed));
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
  auto source = std::make_unique<InMemoryBlocks>(std::move(docs), T, what, packed);
  if (source->num_blocks() == 0) fail(paths[0], no_block_message(T, packed));
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

at::Tensor BlockSampler::next_batch(int64_t B, at::Tensor* doc_ids) {
  const int64_t T = source_.block_length();
  at::Tensor out = at::empty({B, T}, at::kLong);  // (B, T)
  auto* p = out.data_ptr<int64_t>();
  const bool docs = doc_ids && source_.packed();
  if (docs) *doc_ids = at::empty({B, T}, at::kInt);  // (B, T)
  for (int64_t b = 0; b < B; ++b) {
    const int64_t index = block_at(position_++);
    const auto ids = source_.block(index);
    for (int64_t t = 0; t < T; ++t) p[b * T + t] = ids[size_t(t)];
    if (docs) {
      const auto d = source_.doc_ids(index);
      std::copy(d.begin(), d.end(), doc_ids->data_ptr<int32_t>() + b * T);
    }
  }
  return out;
}

}  // namespace linearard::train
