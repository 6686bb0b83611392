// PCRE2 (UTF + UCP, JIT) wrapper for the split patterns of tokenizer.json. HF tokenizers runs
// these patterns with Oniguruma; with PCRE2_UCP, \s \w \d and \p{..} use Unicode properties as
// Oniguruma does, which the parity tests check on real text and edge cases.
#pragma once
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace linearard::tok {

class Regex {
 public:
  // Throws "<where>: bad regex '<pattern>': <pcre2 message>".
  Regex(const std::string& pattern, const std::string& where);
  ~Regex();
  Regex(const Regex&) = delete;
  Regex& operator=(const Regex&) = delete;

  // Non-overlapping matches [begin, end) scanning left to right; `text` must be valid UTF-8.
  // Empty matches are skipped (they would become empty pieces, which HF drops).
  void find_all(std::string_view text, std::vector<std::pair<size_t, size_t>>& out) const;
  // True when the pattern matches at the very start of text (anchored).
  bool matches_at_start(std::string_view text) const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Unicode \w and \s (as Rust's regex crate defines them) for one code point.
bool is_word_char(uint32_t cp);
bool is_space_char(uint32_t cp);

}  // namespace linearard::tok
