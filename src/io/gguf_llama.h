// What GGUF's llama architecture looks like, shared by the importer (gguf_import.cpp) and the
// exporter (gguf_export.cpp): tensor names, the Q/K row permutation, file-type ids and token
// types. Sources: llama.cpp's gguf-py constants.py (MODEL_TENSOR names, LlamaFileType,
// TokenType), tensor_mapping.py, convert_hf_to_gguf.py (LlamaModel.permute).
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace linearard::io {

// llama.cpp's per-layer tensor names (blk.{i}.<name>.weight) -> transformers' LLaMA module paths.
const std::map<std::string, std::string>& gguf_llama_layer_names();

// convert_hf_to_gguf.py LlamaModel.permute stores each head's rows interleaved: GGUF row 2i + j of
// a head is HF row j * d/2 + i (rows viewed as (heads, 2, d/2) in HF, (heads, d/2, 2) in GGUF).
// `rows` x `cols` float32, C order; heads divides rows. Biases are 1-column matrices.
std::vector<float> permute_qk_rows(const std::vector<float>& hf, int64_t heads, int64_t rows, int64_t cols);
// The inverse (transformers' LlamaTensorProcessor._reverse_permute_weights).
std::vector<float> unpermute_qk_rows(const std::vector<float>& gguf, int64_t heads, int64_t rows, int64_t cols);

// gguf-py LlamaFileType (general.file_type).
enum class GgufFileType : uint32_t { kAllF32 = 0, kMostlyF16 = 1, kMostlyQ8_0 = 7, kMostlyBF16 = 32 };
// GGML_QUANT_VERSION, written as general.quantization_version.
constexpr uint32_t kGgmlQuantVersion = 2;

// gguf-py TokenType / llama.cpp's llama_token_type (tokenizer.ggml.token_type).
enum class GgufTokenType : int32_t { kNormal = 1, kUnknown = 2, kControl = 3, kUserDefined = 4, kUnused = 5, kByte = 6 };

// Pre-tokenizer regexes of llama.cpp's llama-vocab.cpp for tokenizer.ggml.pre "llama-bpe" and
// "qwen2", written as the original models' tokenizer.json files write them.
extern const char* const kGgufLlama3Pattern;
extern const char* const kGgufQwen2Pattern;

}  // namespace linearard::io
