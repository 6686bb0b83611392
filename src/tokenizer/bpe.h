// The BPE model of tokenizer.json (HF models/bpe): merges applied lowest rank first through a
// priority queue over a linked list of symbols (the same order as HF's Word::merge_all, so ties
// resolve identically), byte_fallback <0xXX> tokens, unk with fuse_unk, ignore_merges, and a
// per-thread word cache.
#pragma once
#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include <nlohmann/json_fwd.hpp>

namespace linearard::tok {

class BpeModel {
 public:
  // `model` is tokenizer.json's "model" object; byte_level: words arrive as raw bytes (the
  // pre-tokenizer chain ends with ByteLevel). `where` names the file for errors.
  BpeModel(const nlohmann::json& model, bool byte_level, const std::string& where);

  // Appends the ids of one pre-tokenized word.
  void encode_word(std::string_view word, std::vector<int32_t>& out) const;

  int64_t size() const { return static_cast<int64_t>(id_to_token_.size()); }
  // The vocabulary string of `id` as stored in tokenizer.json ("" when unused).
  const std::string& token(int32_t id) const { return id_to_token_.at(id); }
  int32_t find(const std::string& token) const;  // -1 when absent (tokenizer.json spelling)

 private:
  void merge_word(std::string_view word, std::vector<int32_t>& out) const;
  int32_t lookup(std::string_view key) const;  // key in model spelling (raw bytes if byte_level)

  bool byte_level_;
  bool byte_fallback_ = false, fuse_unk_ = false, ignore_merges_ = false;
  int32_t unk_id_ = -1;
  std::unordered_map<std::string, int32_t> vocab_;          // model spelling -> id
  std::unordered_map<std::string, int32_t> vocab_json_;     // tokenizer.json spelling -> id
  std::vector<std::string> id_to_token_;
  int32_t byte_ids_[256];      // byte-level: byte -> id of its single-byte token, -1 if none
  int32_t fallback_ids_[256];  // <0xXX> ids, -1 if none
  struct MergeTarget { int32_t rank, id; };
  std::unordered_map<uint64_t, MergeTarget> merges_;  // (left id << 32 | right id) -> merge
  uint64_t cache_serial_;
};

}  // namespace linearard::tok
