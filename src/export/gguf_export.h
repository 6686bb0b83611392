// A LLaMA-family model as one GGUF v3 file of llama.cpp's "llama" architecture (llama, mistral
// without a sliding window, SmolLM): the metadata convert_hf_to_gguf.py writes (LlamaModel /
// TextModel.set_gguf_parameters), the student's RoPE as llama.cpp reads it (src/llama-model.cpp
// load_hparams, src/llama-context.cpp), the Q/K rows permuted (io/gguf_llama.h), the tokenizer
// (io/gguf_vocab.h). RoPE:
//   default  llama.rope.freq_base only
//   linear   rope.scaling.type linear + rope.scaling.factor
//   yarn     type yarn, factor, original_context_length; rope.scaling.attn_factor only when the
//            attention factor is not YaRN's 0.1 ln(factor) + 1 (llama.cpp multiplies that by it);
//            beta_fast / beta_slow other than 32 / 1 or truncate false are refused: llama.cpp's
//            llama architecture does not read rope.scaling.yarn_beta_*.
//   llama3   the rope_freqs.weight tensor of per-dimension divisors (LlamaModel.generate_extra_tensors)
//   dynamic, longrope: refused, one line naming the kind.
// Tensor types: 1-D tensors (norms, biases, rope_freqs) F32; the matrices the requested type
// (Q8_0 falls back to F16 for rows that are not a multiple of 32, as convert_hf_to_gguf.py does).
#pragma once
#include <ATen/ATen.h>

#include <string>
#include <utility>
#include <vector>

#include "io/gguf_dequant.h"
#include "model/model_config.h"

namespace linearard::exporter {

// "f32", "f16", "bf16", "q8_0"; anything else -> "<flag>: ...".
io::GgmlType parse_gguf_type(const std::string& text, const std::string& flag);

struct GgufExportRequest {
  std::string out_path;  // FILE.gguf
  io::GgmlType type = io::GgmlType::F16;  // convert_hf_to_gguf.py's default --outtype
  bool overwrite = false;         // replace an existing file
  std::vector<std::string> inputs;  // input paths: the output may be none of them nor inside them
};

// Writes `tensors` (transformers names, any float dtype) with `config` (whose rope is the one
// written) and the tokenizer of `tokenizer_dir`. Everything is checked and encoded before the file
// is written (atomically: temp + rename).
void write_gguf_model(const GgufExportRequest& request, const model::ModelConfig& config,
                      const std::vector<std::pair<std::string, at::Tensor>>& tensors, const std::string& tokenizer_dir);

// A HF model directory (a merged export, or any llama checkpoint) as GGUF.
void export_model_dir_gguf(const GgufExportRequest& request, const std::string& model_dir);

}  // namespace linearard::exporter
