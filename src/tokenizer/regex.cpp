#define PCRE2_CODE_UNIT_WIDTH 8
#include "tokenizer/regex.h"

#include <pcre2.h>

#include "common/error.h"
#include "tokenizer/utf8.h"

namespace linearard::tok {

struct Regex::Impl {
  pcre2_code* code = nullptr;
};

namespace {

// One match-data block per thread and regex size; pcre2_match is thread-safe given its own block.
struct MatchData {
  pcre2_match_data* md = nullptr;
  ~MatchData() { if (md) pcre2_match_data_free(md); }
};

pcre2_match_data* thread_match_data() {
  thread_local MatchData data;
  // 16 capture pairs is more than any tokenizer split pattern uses.
  if (!data.md) data.md = pcre2_match_data_create(16, nullptr);
  return data.md;
}

}  // namespace

Regex::Regex(const std::string& pattern, const std::string& where) : impl_(new Impl) {
  int err = 0;
  PCRE2_SIZE offset = 0;
  impl_->code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(),
                              PCRE2_UTF | PCRE2_UCP, &err, &offset, nullptr);
  if (!impl_->code) {
    PCRE2_UCHAR msg[256];
    pcre2_get_error_message(err, msg, sizeof(msg));
    fail(where, "bad regex '" + pattern + "' at offset " + std::to_string(offset) + ": " +
                    reinterpret_cast<const char*>(msg));
  }
  // JIT is an optimisation only: without it (unsupported CPU) matching still works.
  pcre2_jit_compile(impl_->code, PCRE2_JIT_COMPLETE);
}

Regex::~Regex() {
  if (impl_->code) pcre2_code_free(impl_->code);
}

void Regex::find_all(std::string_view text, std::vector<std::pair<size_t, size_t>>& out) const {
  out.clear();
  pcre2_match_data* md = thread_match_data();
  const auto* subject = reinterpret_cast<PCRE2_SPTR>(text.data());
  size_t start = 0;
  while (start <= text.size()) {
    const int rc = pcre2_match(impl_->code, subject, text.size(), start, PCRE2_NO_UTF_CHECK, md, nullptr);
    if (rc == PCRE2_ERROR_NOMATCH) break;
    if (rc < 0) fail("regex", "pcre2_match failed with code " + std::to_string(rc));
    const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(md);
    const size_t b = ov[0], e = ov[1];
    if (e > b) {
      out.emplace_back(b, e);
      start = e;
    } else {
      // Empty match: step over one character and search again.
      if (b >= text.size()) break;
      start = b + utf8_char_length(static_cast<unsigned char>(text[b]));
    }
  }
}

bool Regex::matches_at_start(std::string_view text) const {
  pcre2_match_data* md = thread_match_data();
  const int rc = pcre2_match(impl_->code, reinterpret_cast<PCRE2_SPTR>(text.data()), text.size(), 0,
                             PCRE2_ANCHORED | PCRE2_NO_UTF_CHECK, md, nullptr);
  return rc >= 0;
}

namespace {
// Rust's \w is Alphabetic + Mark + Decimal_Number + Connector_Punctuation + Join_Control; PCRE2
// 10.42's \w lacks marks, so the class is spelled out.
bool single_char_class(const char* pattern, uint32_t cp) {
  static const Regex word("[\\p{L}\\p{Nl}\\p{Nd}\\p{M}\\p{Pc}\\x{200C}\\x{200D}]", "\\w");
  static const Regex space("\\s", "\\s");
  const Regex& re = pattern[1] == 'w' ? word : space;
  std::string s;
  utf8_append(s, cp);
  return re.matches_at_start(s);
}
}  // namespace

bool is_word_char(uint32_t cp) { return single_char_class("\\w", cp); }
bool is_space_char(uint32_t cp) { return single_char_class("\\s", cp); }

}  // namespace linearard::tok
