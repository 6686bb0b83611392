// The parts of a SentencePiece tokenizer.model (a protobuf ModelProto, sentencepiece_model.proto)
// the GGUF exporter needs: the pieces with their scores and types, and normalizer_spec's
// add_dummy_prefix. A small bounds-checked protobuf wire-format reader (varint, 64-bit,
// length-delimited, 32-bit fields; unknown fields skipped), torch-free; fuzzed by
// tests/fuzz/fuzz_sentencepiece_model.cpp.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace linearard::io {

struct SentencePieceModel {
  struct Piece {
    std::string piece;
    float score = 0;
    int32_t type = 1;  // 1 NORMAL, 2 UNKNOWN, 3 CONTROL, 4 USER_DEFINED, 5 UNUSED, 6 BYTE
  };
  std::vector<Piece> pieces;
  bool add_dummy_prefix = true;  // the proto's default
};

// Throws "<path>: ..." (one line) for malformed input.
SentencePieceModel parse_sentencepiece_model(const uint8_t* bytes, size_t size, const std::string& path);

}  // namespace linearard::io
