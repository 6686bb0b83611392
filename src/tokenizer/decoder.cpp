#include "tokenizer/decoder.h"

#include <nlohmann/json.hpp>
#include <unordered_map>

#include "common/error.h"
#include "tokenizer/normalizer.h"
#include "tokenizer/pre_tokenizer.h"
#include "tokenizer/utf8.h"

namespace linearard::tok {
namespace {

using json = nlohmann::json;

// Byte-level alphabet -> bytes; a token with any other character passes through as its own bytes.
class ByteLevelDecoder : public Decoder {
 public:
  void decode_chain(std::vector<std::string>& tokens) const override {
    std::string bytes, all;
    for (const auto& t : tokens) {
      all += byte_level_to_bytes(t, bytes) ? bytes : t;
    }
    tokens.assign(1, replace_invalid_utf8(all));
  }
};

class MetaspaceDecoder : public Decoder {
 public:
  explicit MetaspaceDecoder(const json& j) {
    replacement_ = j.value("replacement", std::string("\xE2\x96\x81"));
    std::string scheme = j.contains("prepend_scheme") ? j.at("prepend_scheme").get<std::string>()
                         : j.value("add_prefix_space", true) ? "always" : "never";
    strip_first_ = scheme != "never";
  }
  void decode_chain(std::vector<std::string>& tokens) const override {
    for (size_t i = 0; i < tokens.size(); ++i) {
      std::string out;
      const std::string& t = tokens[i];
      for (size_t p = 0; p < t.size();) {
        // An empty replacement (HF requires one char) would match without advancing: a hang.
        if (!replacement_.empty() && t.compare(p, replacement_.size(), replacement_) == 0) {
          if (!(i == 0 && strip_first_)) out += ' ';
          p += replacement_.size();
        } else {
          out += t[p++];
        }
      }
      tokens[i].swap(out);
    }
  }

 private:
  std::string replacement_;
  bool strip_first_ = true;
};

class ReplaceDecoder : public Decoder {
 public:
  ReplaceDecoder(const json& j, const std::string& where)
      : replacer_(j.at("pattern"), j.at("content").get<std::string>(), where) {}
  void decode_chain(std::vector<std::string>& tokens) const override {
    for (auto& t : tokens) t = replacer_.apply(t);
  }

 private:
  Replacer replacer_;
};

// Runs of <0xXX> tokens become their bytes when those form valid UTF-8, else one U+FFFD per byte.
class ByteFallbackDecoder : public Decoder {
 public:
  void decode_chain(std::vector<std::string>& tokens) const override {
    std::vector<std::string> out;
    std::string run;
    size_t run_len = 0;
    const auto flush = [&] {
      if (run_len == 0) return;
      if (find_invalid_utf8(run) == std::string_view::npos) out.push_back(run);
      else for (size_t k = 0; k < run_len; ++k) out.push_back("\xEF\xBF\xBD");
      run.clear();
      run_len = 0;
    };
    for (auto& t : tokens) {
      int byte = -1;
      if (t.size() == 6 && t.compare(0, 3, "<0x") == 0 && t[5] == '>' && std::isxdigit(static_cast<unsigned char>(t[3])) &&
          std::isxdigit(static_cast<unsigned char>(t[4])))
        byte = std::stoi(t.substr(3, 2), nullptr, 16);
      if (byte >= 0) {
        run += static_cast<char>(byte);
        ++run_len;
      } else {
        flush();
        out.push_back(std::move(t));
      }
    }
    flush();
    tokens.swap(out);
  }
};

class FuseDecoder : public Decoder {
 public:
  void decode_chain(std::vector<std::string>& tokens) const override {
    std::string all;
    for (const auto& t : tokens) all += t;
    tokens.assign(1, all);
  }
};

// Removes up to `start` leading and `stop` trailing copies of one character from every token.
class StripDecoder : public Decoder {
 public:
  StripDecoder(const json& j, const std::string& where)
      : content_(j.at("content").get<std::string>()), start_(count(j, "start", where)), stop_(count(j, "stop", where)) {
    // HF's content is one char; an empty one would strip nothing start_ times (a hang).
    if (content_.empty()) fail(where, "Strip decoder content must not be empty");
  }
  void decode_chain(std::vector<std::string>& tokens) const override {
    for (auto& t : tokens) {
      size_t b = 0, e = t.size();
      for (int k = 0; k < start_ && t.compare(b, content_.size(), content_) == 0 && b < e; ++k) b += content_.size();
      for (int k = 0; k < stop_ && e >= b + content_.size() &&
                      t.compare(e - content_.size(), content_.size(), content_) == 0; ++k)
        e -= content_.size();
      t = t.substr(b, e - b);
    }
  }

 private:
  // HF's usize; read checked because nlohmann's get<int>() casts floats unchecked (undefined).
  static int64_t count(const json& j, const char* key, const std::string& where) {
    if (!j.contains(key)) return 0;
    const json& v = j.at(key);
    if (!v.is_number_integer() || v.get<int64_t>() < 0)
      fail(where, std::string("Strip decoder ") + key + " must be a non-negative integer, got " + v.dump());
    return v.get<int64_t>();
  }

  std::string content_;
  int64_t start_, stop_;
};

class SequenceDecoder : public Decoder {
 public:
  explicit SequenceDecoder(std::vector<std::unique_ptr<Decoder>> parts) : parts_(std::move(parts)) {}
  void decode_chain(std::vector<std::string>& tokens) const override {
    for (const auto& p : parts_) p->decode_chain(tokens);
  }

 private:
  std::vector<std::unique_ptr<Decoder>> parts_;
};

}  // namespace

std::unique_ptr<Decoder> make_decoder(const json& j, const std::string& where) {
  if (j.is_null()) return nullptr;
  const std::string type = j.value("type", "");
  if (type == "ByteLevel") return std::make_unique<ByteLevelDecoder>();
  if (type == "Metaspace") return std::make_unique<MetaspaceDecoder>(j);
  if (type == "Replace") return std::make_unique<ReplaceDecoder>(j, where);
  if (type == "ByteFallback") return std::make_unique<ByteFallbackDecoder>();
  if (type == "Fuse") return std::make_unique<FuseDecoder>();
  if (type == "Strip") return std::make_unique<StripDecoder>(j, where);
  if (type == "Sequence") {
    std::vector<std::unique_ptr<Decoder>> parts;
    for (const auto& d : j.at("decoders"))
      if (auto p = make_decoder(d, where)) parts.push_back(std::move(p));  // null entries: no step
    return std::make_unique<SequenceDecoder>(std::move(parts));
  }
  fail(where, "unsupported decoder type '" + type +
                  "' (supported: ByteLevel, Metaspace, Replace, ByteFallback, Fuse, Strip, Sequence)");
}

}  // namespace linearard::tok
