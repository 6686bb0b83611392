// tokenizer.json pre-tokenizers: ByteLevel (GPT-2 regex), Split (LLaMA-3 / Qwen2 regexes),
// Digits (SmolLM), Metaspace (Mistral / LLaMA-2 with prepend_scheme), Sequence of these.
// Splitting follows HF's SplitDelimiterBehavior semantics exactly; empty pieces are dropped.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

namespace linearard::tok {

struct Piece {
  std::string text;
  // True when the piece begins at offset 0 of the original input (Metaspace prepend_scheme
  // "first" prepends only there).
  bool at_start = false;
};

class PreTokenizer {
 public:
  virtual ~PreTokenizer() = default;
  // Replaces `pieces` by their sub-pieces, in order.
  virtual void split(std::vector<Piece>& pieces) const = 0;
};

struct PreTokenizerChain {
  std::unique_ptr<PreTokenizer> pre;  // nullptr: the whole piece goes to the model
  // The chain ends with ByteLevel: the model sees raw bytes (the vocabulary is mapped back from
  // the GPT-2 byte alphabet once at load time instead of mapping every word).
  bool byte_level = false;
};

// `where` names the file for errors.
PreTokenizerChain make_pre_tokenizer(const nlohmann::json& j, const std::string& where);

// The GPT-2 "bytes_to_unicode" alphabet: byte -> code point used in byte-level vocabularies.
const uint32_t* byte_level_alphabet();  // [256]
// Maps a byte-level vocabulary string back to raw bytes; false when it has a character outside
// the alphabet (such a token can never be produced by byte-level BPE).
bool byte_level_to_bytes(const std::string& token, std::string& bytes);

}  // namespace linearard::tok
