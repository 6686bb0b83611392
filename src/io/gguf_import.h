// GGUF file -> Hugging Face model directory (config.json, tokenizer.json, tokenizer_config.json,
// model.safetensors), as transformers 5.17 loads a GGUF file with from_pretrained(gguf_file=...)
// (modeling_gguf_pytorch_utils.py load_gguf_checkpoint): same config fields, same tensors (Q/K
// rows of llama-architecture files un-permuted), same tokenizer ids (io/gguf_tokenizer.h).
// Torch-free: tensors are dequantized to float32 and rounded to the output dtype here.
#pragma once
#include <nlohmann/json.hpp>
#include <string>

#include "io/gguf.h"

namespace linearard::io {

enum class ImportDType { kBF16, kF16, kF32 };
// "bf16", "f16" or "f32"; anything else -> "<where>: ...".
ImportDType parse_import_dtype(const std::string& s, const std::string& where);

// What general.architecture maps to: llama (and mistral, as transformers names llama files whose
// general.name is "mistral"), qwen2. Throws "<path>: general.architecture: ..." for others.
struct GgufArchitecture {
  std::string gguf_arch;   // the key prefix, e.g. "llama"
  std::string model_type;  // config.json model_type
  std::string hf_class;    // config.json architectures[0]
  bool permuted_qk;        // llama.cpp's convert script permuted the Q/K rows
};
GgufArchitecture gguf_architecture(const GgufFile& file);

// config.json from the <arch>.* and tokenizer.ggml.*_token_id keys (io/gguf_config.cpp).
// Warns on stderr about RoPE keys it cannot represent; throws for required keys that are missing.
nlohmann::json gguf_config_json(const GgufFile& file, const GgufArchitecture& arch, const std::string& dtype_name);

// Writes the HF directory into `out_dir` (created if needed; each file written atomically; an
// earlier import's files of the same names are replaced). Validates every tensor's name and shape
// against the metadata before anything is written.
void import_gguf(const std::string& gguf_path, const std::string& out_dir, ImportDType dtype);

}  // namespace linearard::io
