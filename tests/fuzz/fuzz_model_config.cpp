// libFuzzer target: config.json -> ModelConfig / RopeParams (model/model_config.cpp, torch-free):
// parse_model_config, and on success what the rest of the tool does with the result (describe,
// rope_parameters for export); the same bytes are also tried as a --rope-scaling override.
// load_model_config() only adds reading DIR/config.json; the RoPE tables built from RopeParams
// (model/rope.cpp) need LibTorch and are not reached here.
#include <cstddef>
#include <cstdint>
#include <string>

#include "common/error.h"
#include "model/model_config.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace linearard::model;
  const std::string text(reinterpret_cast<const char*>(data), size);
  ModelConfig base;  // a plain 7B-like model as the override's base when the input is no config
  base.model_type = "llama";
  base.hidden_size = 4096;
  base.num_attention_heads = 32;
  base.num_key_value_heads = 32;
  base.head_dim = 128;
  base.max_position_embeddings = 4096;
  try {
    ModelConfig c = parse_model_config(text, "config.json");
    (void)describe_rope(c.rope);
    (void)c.rope.to_json().dump();
    base = c;
  } catch (const linearard::Error&) {
  }
  // Inline JSON only: text not starting with '{' is taken as a file path by parse_rope_override.
  const size_t first = text.find_first_not_of(" \t\n");
  if (first == std::string::npos || text[first] != '{') return 0;
  try {
    RopeParams r = parse_rope_override(text, base, "--rope-scaling");
    (void)describe_rope(r);
    (void)r.to_json().dump();
  } catch (const linearard::Error&) {
  }
  return 0;
}
