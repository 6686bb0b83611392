#include "tokenizer/bpe.h"

#include <atomic>
#include <nlohmann/json.hpp>
#include <queue>

#include "common/error.h"
#include "tokenizer/pre_tokenizer.h"
#include "tokenizer/utf8.h"

namespace linearard::tok {
namespace {

using json = nlohmann::json;

// Words longer than this are not cached (HF's MAX_LENGTH is 256 as well): long words are rare and
// would crowd out the useful entries.
constexpr size_t kMaxCachedWordBytes = 256;
// Entries per thread before the cache is cleared; a few MB, enough for the working vocabulary of
// a large corpus (HF's default capacity is 10,000).
constexpr size_t kCacheCapacity = 200000;

std::atomic<uint64_t> next_serial{1};

// Unused ids allowed below the largest vocabulary id: id_to_token_ is sized by that id, so one
// stray id of 2^31 would allocate 64 GB. Real vocabularies are dense (HF writes ids 0..n-1).
constexpr int64_t kMaxVocabGaps = int64_t{1} << 20;

// nlohmann's get<int32_t>() casts floats (undefined out of range) and wide integers unchecked.
int32_t vocab_id(const json& v, const std::string& token, const std::string& where) {
  if (!v.is_number_integer() || v.get<int64_t>() < 0 || v.get<int64_t>() > INT32_MAX)
    fail(where, "vocabulary token '" + token + "' has id " + v.dump() + ", not an integer in [0, 2^31)");
  return v.get<int32_t>();
}

struct WordCache {
  uint64_t serial = 0;
  std::unordered_map<std::string, std::vector<int32_t>> words;
};

WordCache& thread_cache(uint64_t serial) {
  thread_local WordCache cache;
  if (cache.serial != serial) {
    cache.words.clear();
    cache.serial = serial;
  }
  return cache;
}

}  // namespace

BpeModel::BpeModel(const json& model, bool byte_level, const std::string& where)
    : byte_level_(byte_level), cache_serial_(next_serial++) {
  if (model.value("type", std::string("BPE")) != "BPE") {
    fail(where, "unsupported model type '" + model.value("type", std::string()) +
                    "' (only BPE is supported in tokenizer.json)");
  }
  if (model.contains("dropout") && !model.at("dropout").is_null() && model.at("dropout").get<double>() > 0)
    fail(where, "BPE dropout is not supported (tokenization would not be deterministic)");
  for (const char* key : {"continuing_subword_prefix", "end_of_word_suffix"}) {
    if (model.contains(key) && model.at(key).is_string() && !model.at(key).get<std::string>().empty())
      fail(where, std::string("BPE ") + key + " is not supported");
  }
  byte_fallback_ = model.value("byte_fallback", false);
  fuse_unk_ = model.value("fuse_unk", false);
  ignore_merges_ = model.value("ignore_merges", false);

  const json& vocab = model.at("vocab");
  int32_t max_id = -1;
  for (const auto& [tok, idj] : vocab.items()) max_id = std::max(max_id, vocab_id(idj, tok, where));
  if (max_id >= static_cast<int64_t>(vocab.size()) + kMaxVocabGaps)
    fail(where, "vocabulary id " + std::to_string(max_id) + " is far beyond its " + std::to_string(vocab.size()) +
                    " tokens (more than 2^20 unused ids)");
  id_to_token_.assign(static_cast<size_t>(max_id) + 1, std::string());
  vocab_.reserve(vocab.size());
  vocab_json_.reserve(vocab.size());
  std::string bytes;
  for (const auto& [tok, idj] : vocab.items()) {
    const int32_t id = vocab_id(idj, tok, where);
    id_to_token_[id] = tok;
    vocab_json_.emplace(tok, id);
    if (!byte_level_) vocab_.emplace(tok, id);
    else if (byte_level_to_bytes(tok, bytes)) vocab_.emplace(bytes, id);
  }
  for (int b = 0; b < 256; ++b) {
    char name[8];
    std::snprintf(name, sizeof(name), "<0x%02X>", b);
    fallback_ids_[b] = find(name);
    byte_ids_[b] = lookup(std::string(1, static_cast<char>(b)));
  }
  if (model.contains("unk_token") && model.at("unk_token").is_string()) {
    const std::string unk = model.at("unk_token").get<std::string>();
    unk_id_ = find(unk);
    if (unk_id_ < 0) fail(where, "unk_token '" + unk + "' is not in the vocabulary");
  }

  const json& merges = model.at("merges");
  merges_.reserve(merges.size());
  int32_t rank = 0;
  for (const auto& m : merges) {
    std::string a, b;
    if (m.is_array() && m.size() == 2) {
      a = m[0].get<std::string>();
      b = m[1].get<std::string>();
    } else if (m.is_string()) {
      const std::string s = m.get<std::string>();
      const size_t sp = s.find(' ');
      if (sp == std::string::npos || s.find(' ', sp + 1) != std::string::npos)
        fail(where, "merge '" + s + "' is not two tokens separated by one space");
      a = s.substr(0, sp);
      b = s.substr(sp + 1);
    } else {
      fail(where, "merge #" + std::to_string(rank) + " is neither \"a b\" nor [a, b]");
    }
    const int32_t ia = find(a), ib = find(b), inew = find(a + b);
    if (ia < 0 || ib < 0 || inew < 0)
      fail(where, "merge '" + a + " " + b + "' uses a token missing from the vocabulary");
    // A repeated pair keeps the later rank, as HF's HashMap collect does.
    merges_[(static_cast<uint64_t>(ia) << 32) | static_cast<uint32_t>(ib)] = {rank, inew};
    ++rank;
  }
}

int32_t BpeModel::find(const std::string& token) const {
  auto it = vocab_json_.find(token);
  return it == vocab_json_.end() ? -1 : it->second;
}

int32_t BpeModel::lookup(std::string_view key) const {
  auto it = vocab_.find(std::string(key));
  return it == vocab_.end() ? -1 : it->second;
}

void BpeModel::encode_word(std::string_view word, std::vector<int32_t>& out) const {
  if (word.empty()) return;
  if (ignore_merges_) {
    const int32_t id = lookup(word);
    if (id >= 0) {
      out.push_back(id);
      return;
    }
  }
  if (word.size() > kMaxCachedWordBytes) {
    merge_word(word, out);
    return;
  }
  WordCache& cache = thread_cache(cache_serial_);
  std::string key(word);
  auto it = cache.words.find(key);
  if (it != cache.words.end()) {
    out.insert(out.end(), it->second.begin(), it->second.end());
    return;
  }
  const size_t start = out.size();
  merge_word(word, out);
  if (cache.words.size() >= kCacheCapacity) cache.words.clear();
  cache.words.emplace(std::move(key), std::vector<int32_t>(out.begin() + start, out.end()));
}

void BpeModel::merge_word(std::string_view w, std::vector<int32_t>& out) const {
  struct Symbol {
    int32_t id;
    int32_t prev, next;
    bool alive;
  };
  thread_local std::vector<Symbol> sym;
  sym.clear();
  const auto add = [&](int32_t id) {
    const int32_t n = static_cast<int32_t>(sym.size());
    sym.push_back({id, n - 1, n + 1, true});
  };

  // Initial symbols (HF BPE::merge_word): one per character (per byte when byte-level); unknown
  // characters become <0xXX> byte tokens or unk (fused when fuse_unk).
  int32_t pending_unk = -1;
  for (size_t i = 0; i < w.size();) {
    const size_t len = byte_level_ ? 1 : utf8_char_length(static_cast<unsigned char>(w[i]));
    const int32_t id = byte_level_ ? byte_ids_[static_cast<unsigned char>(w[i])] : lookup(w.substr(i, len));
    if (id >= 0) {
      if (pending_unk >= 0) add(pending_unk), pending_unk = -1;
      add(id);
    } else {
      bool done = false;
      if (byte_fallback_ && !byte_level_) {
        done = true;
        for (size_t k = 0; k < len; ++k) done = done && fallback_ids_[static_cast<unsigned char>(w[i + k])] >= 0;
        // HF adds the byte tokens without flushing a pending unk first; kept for parity.
        if (done)
          for (size_t k = 0; k < len; ++k) add(fallback_ids_[static_cast<unsigned char>(w[i + k])]);
      }
      if (!done && unk_id_ >= 0) {
        if (pending_unk >= 0 && !fuse_unk_) add(pending_unk);
        pending_unk = unk_id_;
      }
    }
    i += len;
  }
  if (pending_unk >= 0) add(pending_unk);
  if (sym.empty()) return;
  sym.back().next = -1;

  struct Candidate {
    int32_t rank, pos, id;
    bool operator>(const Candidate& o) const { return rank != o.rank ? rank > o.rank : pos > o.pos; }
  };
  thread_local std::vector<Candidate> heap_storage;
  heap_storage.clear();
  std::priority_queue<Candidate, std::vector<Candidate>, std::greater<Candidate>> queue(
      std::greater<Candidate>(), std::move(heap_storage));
  const auto pair_merge = [&](int32_t a, int32_t b) -> const MergeTarget* {
    auto it = merges_.find((static_cast<uint64_t>(a) << 32) | static_cast<uint32_t>(b));
    return it == merges_.end() ? nullptr : &it->second;
  };
  for (int32_t i = 0; i + 1 < static_cast<int32_t>(sym.size()); ++i)
    if (const MergeTarget* m = pair_merge(sym[i].id, sym[i + 1].id)) queue.push({m->rank, i, m->id});

  while (!queue.empty()) {
    const Candidate top = queue.top();
    queue.pop();
    Symbol& left = sym[top.pos];
    if (!left.alive || left.next < 0) continue;
    Symbol& right = sym[left.next];
    // Skip stale entries: the pair at this position changed since it was queued.
    const MergeTarget* m = pair_merge(left.id, right.id);
    if (!m || m->id != top.id) continue;
    left.id = top.id;
    right.alive = false;
    left.next = right.next;
    if (left.next >= 0) sym[left.next].prev = top.pos;
    if (left.prev >= 0)
      if (const MergeTarget* p = pair_merge(sym[left.prev].id, left.id)) queue.push({p->rank, left.prev, p->id});
    if (left.next >= 0)
      if (const MergeTarget* n = pair_merge(left.id, sym[left.next].id)) queue.push({n->rank, top.pos, n->id});
  }
  for (int32_t i = 0; i >= 0; i = sym[i].next) out.push_back(sym[i].id);
}

}  // namespace linearard::tok
