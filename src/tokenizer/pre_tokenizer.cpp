#include "tokenizer/pre_tokenizer.h"

#include <algorithm>
#include <array>
#include <cctype>
#include <nlohmann/json.hpp>
#include <unordered_map>

#include "common/error.h"
#include "tokenizer/regex.h"
#include "tokenizer/utf8.h"

namespace linearard::tok {
namespace {

using json = nlohmann::json;
using Span = std::pair<size_t, size_t>;

// GPT-2's pattern, hard-coded in HF's ByteLevel pre-tokenizer (pre_tokenizers/byte_level.rs).
const char* kGpt2Pattern =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

enum class Behavior { Removed, Isolated, MergedWithPrevious, MergedWithNext, Contiguous };

Behavior parse_behavior(const std::string& s, const std::string& where) {
  if (s == "Removed") return Behavior::Removed;
  if (s == "Isolated") return Behavior::Isolated;
  if (s == "MergedWithPrevious") return Behavior::MergedWithPrevious;
  if (s == "MergedWithNext") return Behavior::MergedWithNext;
  if (s == "Contiguous") return Behavior::Contiguous;
  fail(where, "unknown split behavior '" + s + "'");
}

struct Mark {
  Span span;
  bool is_match;
};

// HF NormalizedString::split: turns the (span, is_match) cover of a string into the kept spans.
std::vector<Span> apply_behavior(const std::vector<Mark>& marks, Behavior behavior) {
  std::vector<Span> out;
  std::vector<std::pair<Span, bool>> acc;  // (span, remove)
  bool prev = false;
  switch (behavior) {
    case Behavior::Isolated:
      for (const auto& m : marks) acc.push_back({m.span, false});
      break;
    case Behavior::Removed:
      for (const auto& m : marks) acc.push_back({m.span, m.is_match});
      break;
    case Behavior::Contiguous:
      for (const auto& m : marks) {
        if (m.is_match == prev && !acc.empty()) acc.back().first.second = m.span.second;
        else acc.push_back({m.span, false});
        prev = m.is_match;
      }
      break;
    case Behavior::MergedWithPrevious:
      for (const auto& m : marks) {
        if (m.is_match && !prev && !acc.empty()) acc.back().first.second = m.span.second;
        else acc.push_back({m.span, false});
        prev = m.is_match;
      }
      break;
    case Behavior::MergedWithNext:
      for (auto it = marks.rbegin(); it != marks.rend(); ++it) {
        if (it->is_match && !prev && !acc.empty()) acc.back().first.first = it->span.first;
        else acc.push_back({it->span, false});
        prev = it->is_match;
      }
      std::reverse(acc.begin(), acc.end());
      break;
  }
  for (const auto& [span, remove] : acc)
    if (!remove && span.second > span.first) out.push_back(span);
  return out;
}

// The cover of `text` by the regex's matches and the gaps between them.
std::vector<Mark> regex_marks(const Regex& re, const std::string& text, bool invert) {
  thread_local std::vector<Span> found;
  re.find_all(text, found);
  std::vector<Mark> marks;
  marks.reserve(found.size() * 2 + 1);
  size_t prev = 0;
  for (auto [b, e] : found) {
    if (b > prev) marks.push_back({{prev, b}, invert});
    marks.push_back({{b, e}, !invert});
    prev = e;
  }
  if (prev < text.size()) marks.push_back({{prev, text.size()}, invert});
  return marks;
}

void split_pieces(std::vector<Piece>& pieces, const Regex& re, bool invert, Behavior behavior) {
  std::vector<Piece> out;
  out.reserve(pieces.size() * 4);
  for (auto& p : pieces) {
    for (auto [b, e] : apply_behavior(regex_marks(re, p.text, invert), behavior))
      out.push_back({p.text.substr(b, e - b), p.at_start && b == 0});
  }
  pieces.swap(out);
}

std::string escape_literal(const std::string& s) {
  std::string out;
  for (char c : s) {
    const unsigned char u = static_cast<unsigned char>(c);
    if (u < 0x80 && !std::isalnum(u)) out += '\\';
    out += c;
  }
  return out;
}

class ByteLevelPre : public PreTokenizer {
 public:
  ByteLevelPre(bool add_prefix_space, bool use_regex, const std::string& where)
      : add_prefix_space_(add_prefix_space) {
    if (use_regex) re_ = std::make_unique<Regex>(kGpt2Pattern, where);
  }
  void split(std::vector<Piece>& pieces) const override {
    if (add_prefix_space_)
      for (auto& p : pieces)
        if (p.text.empty() || p.text[0] != ' ') p.text.insert(0, " ");
    if (re_) split_pieces(pieces, *re_, false, Behavior::Isolated);
  }

 private:
  bool add_prefix_space_;
  std::unique_ptr<Regex> re_;
};

class SplitPre : public PreTokenizer {
 public:
  SplitPre(const json& j, const std::string& where)
      : behavior_(parse_behavior(j.at("behavior").get<std::string>(), where)),
        invert_(j.value("invert", false)) {
    const json& pat = j.at("pattern");
    if (pat.contains("Regex")) re_ = std::make_unique<Regex>(pat.at("Regex").get<std::string>(), where);
    else re_ = std::make_unique<Regex>(escape_literal(pat.at("String").get<std::string>()), where);
  }
  void split(std::vector<Piece>& pieces) const override { split_pieces(pieces, *re_, invert_, behavior_); }

 private:
  Behavior behavior_;
  bool invert_;
  std::unique_ptr<Regex> re_;
};

class DigitsPre : public PreTokenizer {
 public:
  DigitsPre(bool individual, const std::string& where)
      : individual_(individual), re_("\\p{N}", where) {}  // Rust char::is_numeric = Nd | Nl | No
  void split(std::vector<Piece>& pieces) const override {
    split_pieces(pieces, re_, false, individual_ ? Behavior::Isolated : Behavior::Contiguous);
  }

 private:
  bool individual_;
  Regex re_;
};

class MetaspacePre : public PreTokenizer {
 public:
  MetaspacePre(const json& j, const std::string& where) {
    replacement_ = j.value("replacement", std::string("\xE2\x96\x81"));
    // Old files carry add_prefix_space instead of prepend_scheme.
    std::string scheme = j.contains("prepend_scheme") ? j.at("prepend_scheme").get<std::string>()
                         : j.value("add_prefix_space", true) ? "always" : "never";
    if (scheme == "always") scheme_ = 0;
    else if (scheme == "first") scheme_ = 1;
    else if (scheme == "never") scheme_ = 2;
    else fail(where, "unknown Metaspace prepend_scheme '" + scheme + "'");
    if (j.contains("split") && j.at("split").is_boolean()) split_ = j.at("split").get<bool>();
    if (split_) re_ = std::make_unique<Regex>(escape_literal(replacement_), where);
  }
  void split(std::vector<Piece>& pieces) const override {
    for (auto& p : pieces) {
      std::string s;
      s.reserve(p.text.size() + 8);
      for (char c : p.text) {
        if (c == ' ') s += replacement_;
        else s += c;
      }
      const bool starts = s.compare(0, replacement_.size(), replacement_) == 0;
      if (!starts && (scheme_ == 0 || (scheme_ == 1 && p.at_start))) s.insert(0, replacement_);
      p.text.swap(s);
    }
    if (re_) split_pieces(pieces, *re_, false, Behavior::MergedWithNext);
  }

 private:
  std::string replacement_;
  int scheme_ = 0;  // 0 always, 1 first, 2 never
  bool split_ = true;
  std::unique_ptr<Regex> re_;
};

class SequencePre : public PreTokenizer {
 public:
  explicit SequencePre(std::vector<std::unique_ptr<PreTokenizer>> parts) : parts_(std::move(parts)) {}
  void split(std::vector<Piece>& pieces) const override {
    for (const auto& p : parts_) p->split(pieces);
  }

 private:
  std::vector<std::unique_ptr<PreTokenizer>> parts_;
};

std::unique_ptr<PreTokenizer> make_one(const json& j, const std::string& where, bool& byte_level) {
  const std::string type = j.value("type", "");
  if (byte_level) fail(where, "pre-tokenizer '" + type + "' after ByteLevel is not supported");
  if (type == "ByteLevel") {
    byte_level = true;
    return std::make_unique<ByteLevelPre>(j.value("add_prefix_space", true), j.value("use_regex", true), where);
  }
  if (type == "Split") return std::make_unique<SplitPre>(j, where);
  if (type == "Digits") return std::make_unique<DigitsPre>(j.value("individual_digits", false), where);
  if (type == "Metaspace") return std::make_unique<MetaspacePre>(j, where);
  if (type == "Sequence") {
    std::vector<std::unique_ptr<PreTokenizer>> parts;
    for (const auto& p : j.at("pretokenizers")) parts.push_back(make_one(p, where, byte_level));
    return std::make_unique<SequencePre>(std::move(parts));
  }
  fail(where, "unsupported pre_tokenizer type '" + type +
                  "' (supported: ByteLevel, Split, Digits, Metaspace, Sequence)");
}

}  // namespace

PreTokenizerChain make_pre_tokenizer(const json& j, const std::string& where) {
  PreTokenizerChain chain;
  if (!j.is_null()) chain.pre = make_one(j, where, chain.byte_level);
  return chain;
}

const uint32_t* byte_level_alphabet() {
  // GPT-2's bytes_to_unicode(): printable Latin-1 bytes map to themselves, the other 68 bytes to
  // U+0100.. in byte order.
  static const auto table = [] {
    std::array<uint32_t, 256> t{};
    uint32_t n = 0;
    for (uint32_t b = 0; b < 256; ++b) {
      const bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
      t[b] = printable ? b : 256 + n++;
    }
    return t;
  }();
  return table.data();
}

bool byte_level_to_bytes(const std::string& token, std::string& bytes) {
  static const auto inverse = [] {
    std::unordered_map<uint32_t, unsigned char> m;
    const uint32_t* a = byte_level_alphabet();
    for (int b = 0; b < 256; ++b) m[a[b]] = static_cast<unsigned char>(b);
    return m;
  }();
  bytes.clear();
  if (find_invalid_utf8(token) != std::string_view::npos) return false;
  for (size_t i = 0; i < token.size(); i += utf8_char_length(static_cast<unsigned char>(token[i]))) {
    auto it = inverse.find(utf8_decode(token, i));
    if (it == inverse.end()) return false;
    bytes += static_cast<char>(it->second);
  }
  return true;
}

}  // namespace linearard::tok
