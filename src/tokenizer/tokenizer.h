// The tokenizer interface and its factory. load_tokenizer(dir) picks the implementation from a
// HF model directory: tokenizer.json (BPE, see hf_tokenizer.h) or else tokenizer.model
// (SentencePiece). The ids match transformers 5.17's AutoTokenizer for the same directory,
// including its BOS/EOS rule: with tokenizer.json, its post_processor (TemplateProcessing) alone
// decides (transformers ignores add_bos_token / add_eos_token then); with tokenizer.model,
// tokenizer_config.json's add_bos_token (default true) and add_eos_token (default false).
#pragma once
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace linearard::tok {

class Tokenizer {
 public:
  virtual ~Tokenizer() = default;
  // `text` must be valid UTF-8 (else throws "text: invalid UTF-8 at byte N"). With add_special
  // the model's BOS/EOS rule applies (what transformers' tokenizer(text) returns).
  virtual std::vector<int32_t> encode(std::string_view text, bool add_special = true) const = 0;
  // skip_special drops special tokens (BOS, EOS, ...) before decoding.
  virtual std::string decode(const std::vector<int32_t>& ids, bool skip_special = false) const = 0;
  virtual int64_t vocab_size() const = 0;  // largest id + 1
  virtual int32_t bos_id() const = 0;      // -1 when the model has none
  virtual int32_t eos_id() const = 0;
  // encode(text, true) already ends every document with EOS.
  virtual bool adds_eos() const = 0;
  virtual std::vector<std::string> special_tokens() const = 0;
  virtual std::string describe() const = 0;  // one line: kind and source file
};

// Reads `dir`/tokenizer.json or `dir`/tokenizer.model (+ tokenizer_config.json when present).
// Every error is one line naming the file at fault.
std::unique_ptr<Tokenizer> load_tokenizer(const std::string& dir);

// The parts of tokenizer_config.json that decide BOS/EOS.
struct TokenizerConfig {
  std::optional<bool> add_bos_token, add_eos_token;
  std::string bos_token, eos_token;  // "" when absent
};
TokenizerConfig read_tokenizer_config(const std::string& dir);

// Throws "text: invalid UTF-8 at byte N" unless `text` is valid UTF-8.
void require_utf8(std::string_view text, const std::string& where = "text");

}  // namespace linearard::tok
