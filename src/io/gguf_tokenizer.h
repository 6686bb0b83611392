// tokenizer.json and tokenizer_config.json from a GGUF file's tokenizer.ggml.* keys, built as
// transformers 5.17's GGUF tokenizer converters build them (integrations/ggml.py:
// GGUFLlamaConverter for llama/mistral, GGUFQwen2Converter for qwen2), so that
// AutoTokenizer.from_pretrained(dir, gguf_file=...) and src/tokenizer give the same ids. One
// deliberate difference: transformers splits every byte-level vocabulary with the GPT-2 regex;
// we use the split llama.cpp uses for tokenizer.ggml.pre (its llama-vocab.cpp), which is the
// original model's (identical ids for "gpt2" and, when no token holds two digits, "smollm").
#pragma once
#include <nlohmann/json.hpp>
#include <string>

#include "io/gguf.h"

namespace linearard::io {

struct GgufTokenizerFiles {
  nlohmann::json tokenizer;         // tokenizer.json
  nlohmann::json tokenizer_config;  // tokenizer_config.json
};

// `model_type` is the config.json model_type the import writes (llama, mistral, qwen2).
// Throws "<path>: tokenizer.ggml.<key>: <problem>" for missing or malformed keys.
GgufTokenizerFiles gguf_tokenizer_files(const GgufFile& file, const std::string& model_type);

}  // namespace linearard::io
