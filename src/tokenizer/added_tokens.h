// Added / special tokens of tokenizer.json, split out of the text before the model sees it
// (HF AddedVocabulary): leftmost-longest matching, single_word, lstrip and rstrip flags.
// Tokens with normalized=false match the raw text; normalized=true ones match each normalized
// piece (their content passed through the same normalizer).
#pragma once
#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace linearard::tok {

struct AddedToken {
  std::string content;
  int32_t id = -1;
  bool single_word = false, lstrip = false, rstrip = false, normalized = false, special = false;
};

struct Segment {
  size_t begin, end;  // byte range of the input
  int32_t id;         // the added token's id, or -1 for plain text
};

class AddedTokenMatcher {
 public:
  // `patterns[i]` is the string to look for for tokens[i] (its content, or normalized content).
  AddedTokenMatcher(const std::vector<AddedToken>& tokens, const std::vector<std::string>& patterns);
  bool empty() const { return patterns_.empty(); }

  // Covers `text` with segments in order; empty plain-text segments are never emitted.
  void split(std::string_view text, std::vector<Segment>& out) const;

 private:
  // Longest pattern starting at `pos`: index into patterns_ (its byte length in len), or -1.
  int longest_at(std::string_view text, size_t pos, size_t& len) const;

  struct Node {
    std::unordered_map<unsigned char, int32_t> next;
    int32_t pattern = -1;
  };
  std::vector<Node> trie_;
  std::vector<AddedToken> patterns_;  // token flags, indexed like the trie terminals
  bool first_byte_[256] = {};
};

}  // namespace linearard::tok
