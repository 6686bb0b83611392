// UTF-8 helpers shared by the tokenizers and the corpus readers. Invalid input is never passed on
// silently: callers either reject it (with the byte offset) or replace it with U+FFFD using the
// "maximal subpart" rule (Unicode §3.9, the rule of Python's bytes.decode(errors="replace") and
// Rust's String::from_utf8_lossy), so replaced text matches what the Python reference sees.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace linearard::tok {

// Length of the valid UTF-8 sequence starting at s[i], or 0 when the bytes there are ill-formed
// (overlong, surrogate, > U+10FFFF, truncated).
size_t utf8_valid_length(std::string_view s, size_t i);

// Byte offset of the first ill-formed sequence, or std::string_view::npos when all of s is valid.
size_t find_invalid_utf8(std::string_view s);

// s with every maximal ill-formed subpart replaced by U+FFFD.
std::string replace_invalid_utf8(std::string_view s);

// Length in bytes of the (assumed valid) UTF-8 character starting with lead byte c.
inline size_t utf8_char_length(unsigned char c) {
  return c < 0x80 ? 1 : c < 0xE0 ? 2 : c < 0xF0 ? 3 : 4;
}

// The code point of the (assumed valid) character at s[i].
uint32_t utf8_decode(std::string_view s, size_t i);

void utf8_append(std::string& out, uint32_t cp);

}  // namespace linearard::tok
