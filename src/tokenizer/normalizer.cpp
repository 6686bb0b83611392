#include "tokenizer/normalizer.h"

#include <nlohmann/json.hpp>
#include <vector>

#include "common/error.h"
#include "tokenizer/regex.h"

#ifdef LINEARARD_WITH_ICU
#include <unicode/bytestream.h>
#include <unicode/normalizer2.h>
#endif

namespace linearard::tok {
namespace {

using json = nlohmann::json;

class NfcNormalizer : public Normalizer {
 public:
  explicit NfcNormalizer(const std::string& where) {
#ifdef LINEARARD_WITH_ICU
    UErrorCode status = U_ZERO_ERROR;
    nfc_ = icu::Normalizer2::getNFCInstance(status);
    if (U_FAILURE(status)) fail(where, "cannot load ICU NFC data");
#else
    fail(where, "normalizer NFC needs ICU, which this build lacks (install libicu-dev and rebuild)");
#endif
  }
  void normalize(std::string& s) const override {
#ifdef LINEARARD_WITH_ICU
    // ASCII is always in NFC: skip ICU for the common case.
    bool ascii = true;
    for (char c : s) if (static_cast<unsigned char>(c) >= 0x80) { ascii = false; break; }
    if (ascii) return;
    UErrorCode status = U_ZERO_ERROR;
    std::string out;
    icu::StringByteSink<std::string> sink(&out);
    nfc_->normalizeUTF8(0, icu::StringPiece(s.data(), static_cast<int32_t>(s.size())), sink, nullptr, status);
    if (U_FAILURE(status)) fail("NFC", "ICU normalisation failed");
    s.swap(out);
#else
    (void)s;
#endif
  }

 private:
#ifdef LINEARARD_WITH_ICU
  const icu::Normalizer2* nfc_ = nullptr;
#endif
};

class PrependNormalizer : public Normalizer {
 public:
  explicit PrependNormalizer(std::string p) : prepend_(std::move(p)) {}
  void normalize(std::string& s) const override {
    if (!s.empty()) s.insert(0, prepend_);  // HF prepends only to non-empty strings
  }

 private:
  std::string prepend_;
};

class ReplaceNormalizer : public Normalizer {
 public:
  ReplaceNormalizer(const json& j, const std::string& where)
      : replacer_(j.at("pattern"), j.at("content").get<std::string>(), where) {}
  void normalize(std::string& s) const override { s = replacer_.apply(s); }

 private:
  Replacer replacer_;
};

class SequenceNormalizer : public Normalizer {
 public:
  explicit SequenceNormalizer(std::vector<std::unique_ptr<Normalizer>> parts) : parts_(std::move(parts)) {}
  void normalize(std::string& s) const override {
    for (const auto& p : parts_) p->normalize(s);
  }

 private:
  std::vector<std::unique_ptr<Normalizer>> parts_;
};

}  // namespace

Replacer::Replacer(const json& pattern, std::string content, const std::string& where)
    : content_(std::move(content)) {
  if (pattern.contains("String")) {
    literal_ = pattern.at("String").get<std::string>();
  } else if (pattern.contains("Regex")) {
    regex_ = std::make_unique<Regex>(pattern.at("Regex").get<std::string>(), where);
  } else {
    fail(where, "Replace pattern must be {\"String\": ...} or {\"Regex\": ...}");
  }
}

Replacer::~Replacer() = default;

std::string Replacer::apply(const std::string& s) const {
  std::string out;
  out.reserve(s.size());
  if (regex_) {
    std::vector<std::pair<size_t, size_t>> m;
    regex_->find_all(s, m);
    size_t prev = 0;
    for (auto [b, e] : m) {
      out.append(s, prev, b - prev);
      out += content_;
      prev = e;
    }
    out.append(s, prev, std::string::npos);
    return out;
  }
  if (literal_.empty()) return s;  // HF: an empty pattern matches nothing
  size_t prev = 0;
  for (size_t pos = s.find(literal_); pos != std::string::npos; pos = s.find(literal_, prev)) {
    out.append(s, prev, pos - prev);
    out += content_;
    prev = pos + literal_.size();
  }
  out.append(s, prev, std::string::npos);
  return out;
}

std::unique_ptr<Normalizer> make_normalizer(const json& j, const std::string& where) {
  if (j.is_null()) return nullptr;
  const std::string type = j.value("type", "");
  if (type == "NFC") return std::make_unique<NfcNormalizer>(where);
  if (type == "Prepend") return std::make_unique<PrependNormalizer>(j.at("prepend").get<std::string>());
  if (type == "Replace") return std::make_unique<ReplaceNormalizer>(j, where);
  if (type == "Sequence") {
    std::vector<std::unique_ptr<Normalizer>> parts;
    for (const auto& n : j.at("normalizers")) {
      if (auto p = make_normalizer(n, where)) parts.push_back(std::move(p));
    }
    return std::make_unique<SequenceNormalizer>(std::move(parts));
  }
  fail(where, "unsupported normalizer type '" + type + "' (supported: NFC, Prepend, Replace, Sequence)");
}

}  // namespace linearard::tok
