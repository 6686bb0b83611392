// See gguf_llama.h.
#include "io/gguf_llama.h"

#include <algorithm>

namespace linearard::io {

const std::map<std::string, std::string>& gguf_llama_layer_names() {
  static const std::map<std::string, std::string> m = {
      {"attn_norm", "input_layernorm"},    {"ffn_norm", "post_attention_layernorm"},
      {"attn_q", "self_attn.q_proj"},      {"attn_k", "self_attn.k_proj"},
      {"attn_v", "self_attn.v_proj"},      {"attn_output", "self_attn.o_proj"},
      {"ffn_gate", "mlp.gate_proj"},       {"ffn_up", "mlp.up_proj"},
      {"ffn_down", "mlp.down_proj"},
  };
  return m;
}

namespace {
// Row `j * half + i` of head h in HF order <-> row `i * 2 + j` in GGUF order.
std::vector<float> move_rows(const std::vector<float>& w, int64_t heads, int64_t rows, int64_t cols, bool to_gguf) {
  std::vector<float> out(w.size());
  const int64_t half = rows / heads / 2;
  for (int64_t h = 0; h < heads; ++h)
    for (int64_t i = 0; i < half; ++i)
      for (int64_t j = 0; j < 2; ++j) {
        const int64_t g = (h * half + i) * 2 + j, hf = (h * 2 + j) * half + i;
        const int64_t src = to_gguf ? hf : g, dst = to_gguf ? g : hf;
        std::copy_n(w.data() + src * cols, cols, out.data() + dst * cols);
      }
  return out;
}
}  // namespace

std::vector<float> permute_qk_rows(const std::vector<float>& hf, int64_t heads, int64_t rows, int64_t cols) {
  return move_rows(hf, heads, rows, cols, true);
}
std::vector<float> unpermute_qk_rows(const std::vector<float>& g, int64_t heads, int64_t rows, int64_t cols) {
  return move_rows(g, heads, rows, cols, false);
}

const char* const kGgufLlama3Pattern =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|"
    "\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
// transformers convert_slow_tokenizer.py Qwen2Converter (= llama.cpp's "qwen2").
const char* const kGgufQwen2Pattern =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|"
    "\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

}  // namespace linearard::io
