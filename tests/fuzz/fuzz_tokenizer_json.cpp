// libFuzzer target: tokenizer.json loading (tokenizer/hf_tokenizer.cpp and the normalizer,
// pre-tokenizer, BPE, added-token and decoder parts it builds). A tokenizer that loads then
// encodes and decodes a fixed text, so the tables it built are used, not only parsed.
// The SentencePiece path (tokenizer.model) is libsentencepiece's parser and is not fuzzed here.
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "common/error.h"
#include "fuzz_util.h"
#include "tokenizer/hf_tokenizer.h"

namespace {
// ASCII words, digits, contractions, runs of spaces, a newline and tab, Latin-1 and CJK letters,
// an emoji (4-byte UTF-8) and the usual special-token spellings.
const char* const kTexts[] = {
    "Hello, world! It's 2026: naive caf\xC3\xA9 \xE6\x9D\xB1\xE4\xBA\xAC \xF0\x9F\x99\x82\n\t  end",
    "<s>[INST] 12345 <|begin_of_text|>  x</s><|endoftext|><unk>",
    "",
};
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace linearard::tok;
  const std::string path = linearard::fuzz::write_scratch("tokenizer.json", data, size);
  TokenizerConfig config;
  config.bos_token = "<s>";
  config.eos_token = "</s>";
  try {
    const auto t = load_hf_tokenizer(path, config);
    (void)t->describe();
    (void)t->special_tokens();
    for (const char* text : kTexts) {
      for (bool add_special : {true, false}) {
        const std::vector<int32_t> ids = t->encode(text, add_special);
        (void)t->decode(ids, false);
        (void)t->decode(ids, true);
      }
    }
    std::vector<int32_t> first;
    for (int64_t id = 0; id < t->vocab_size() && id < 64; ++id) first.push_back(static_cast<int32_t>(id));
    try {
      (void)t->decode(first, false);
    } catch (const linearard::Error&) {  // ids that are neither vocabulary nor added tokens
    }
  } catch (const linearard::Error&) {
  }
  return 0;
}
