// tokenizer.json normalizers used by LLaMA-family tokenizers: NFC (Qwen2), Prepend + Replace
// (LLaMA-2 / Mistral), and Sequence of these. Others are rejected with the file named.
#pragma once
#include <memory>
#include <string>

#include <nlohmann/json_fwd.hpp>

namespace linearard::tok {

class Normalizer {
 public:
  virtual ~Normalizer() = default;
  virtual void normalize(std::string& s) const = 0;  // s: valid UTF-8, changed in place
};

// nullptr for a JSON null. `where` names the file for errors.
std::unique_ptr<Normalizer> make_normalizer(const nlohmann::json& j, const std::string& where);

// Replaces every non-overlapping occurrence of the "Replace" pattern ({"String": s} or
// {"Regex": r}); shared by the Replace normalizer and the Replace decoder.
class Replacer {
 public:
  Replacer(const nlohmann::json& pattern, std::string content, const std::string& where);
  ~Replacer();
  std::string apply(const std::string& s) const;

 private:
  std::string literal_;
  std::unique_ptr<class Regex> regex_;
  std::string content_;
};

}  // namespace linearard::tok
