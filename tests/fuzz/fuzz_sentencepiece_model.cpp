// libFuzzer target: the SentencePiece tokenizer.model reader (io/sentencepiece_model.cpp) that the
// GGUF exporter uses when a model has no tokenizer.json. Any crash, sanitizer report or exception
// other than linearard::Error is a bug.
#include <cstddef>
#include <cstdint>

#include "common/error.h"
#include "io/sentencepiece_model.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    linearard::io::parse_sentencepiece_model(data, size, "fuzz.model");
  } catch (const linearard::Error&) {
  }
  return 0;
}
