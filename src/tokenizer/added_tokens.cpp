#include "tokenizer/added_tokens.h"

#include "tokenizer/regex.h"
#include "tokenizer/utf8.h"

namespace linearard::tok {
namespace {

// Last / first code point of a valid UTF-8 string.
uint32_t last_char(std::string_view s) {
  size_t i = s.size() - 1;
  while (i > 0 && (static_cast<unsigned char>(s[i]) & 0xC0) == 0x80) --i;
  return utf8_decode(s, i);
}

}  // namespace

AddedTokenMatcher::AddedTokenMatcher(const std::vector<AddedToken>& tokens,
                                     const std::vector<std::string>& patterns) {
  trie_.emplace_back();
  for (size_t i = 0; i < tokens.size(); ++i) {
    const std::string& p = patterns[i];
    if (p.empty()) continue;
    int32_t node = 0;
    for (unsigned char c : p) {
      auto it = trie_[node].next.find(c);
      if (it == trie_[node].next.end()) {
        trie_.emplace_back();
        const int32_t child = static_cast<int32_t>(trie_.size() - 1);
        trie_[node].next.emplace(c, child);
        node = child;
      } else {
        node = it->second;
      }
    }
    first_byte_[static_cast<unsigned char>(p[0])] = true;
    // The same pattern twice: the later token wins, as a rebuilt HF trie would keep one value.
    if (trie_[node].pattern < 0) {
      trie_[node].pattern = static_cast<int32_t>(patterns_.size());
      patterns_.push_back(tokens[i]);
    } else {
      patterns_[trie_[node].pattern] = tokens[i];
    }
  }
}

int AddedTokenMatcher::longest_at(std::string_view text, size_t pos, size_t& len) const {
  int32_t node = 0, best = -1;
  for (size_t i = pos; i < text.size(); ++i) {
    auto it = trie_[node].next.find(static_cast<unsigned char>(text[i]));
    if (it == trie_[node].next.end()) break;
    node = it->second;
    if (trie_[node].pattern >= 0) best = trie_[node].pattern, len = i + 1 - pos;
  }
  return best;
}

void AddedTokenMatcher::split(std::string_view text, std::vector<Segment>& out) const {
  out.clear();
  size_t start_offset = 0;
  size_t pos = 0;
  while (pos < text.size()) {
    // Leftmost-longest scan; the search resumes after each match even when it is discarded
    // (single_word), like HF's leftmost_find_iter.
    if (!first_byte_[static_cast<unsigned char>(text[pos])]) {
      ++pos;
      continue;
    }
    size_t len = 0;
    const int k = longest_at(text, pos, len);
    if (k < 0) {
      ++pos;
      continue;
    }
    const AddedToken& t = patterns_[k];
    size_t start = pos, stop = pos + len;
    pos = stop;
    if (t.single_word) {
      const bool start_ok = start == 0 || !is_word_char(last_char(text.substr(0, start)));
      const bool stop_ok = stop == text.size() || !is_word_char(utf8_decode(text, stop));
      if (!start_ok || !stop_ok) continue;
    }
    if (t.lstrip) {
      size_t s = start;
      while (s > 0) {
        size_t b = s - 1;
        while (b > 0 && (static_cast<unsigned char>(text[b]) & 0xC0) == 0x80) --b;
        if (!is_space_char(utf8_decode(text, b))) break;
        s = b;
      }
      start = std::max(s, start_offset);
    }
    if (t.rstrip) {
      while (stop < text.size()) {
        const uint32_t cp = utf8_decode(text, stop);
        if (!is_space_char(cp)) break;
        stop += utf8_char_length(static_cast<unsigned char>(text[stop]));
      }
    }
    start = std::max(start, start_offset);  // an rstrip can overlap the next match; keep order
    if (start_offset < start) out.push_back({start_offset, start, -1});
    out.push_back({start, stop, t.id});
    start_offset = stop;
  }
  if (start_offset < text.size()) out.push_back({start_offset, text.size(), -1});
}

}  // namespace linearard::tok
