// RoPE frequencies and cos/sin tables, computed exactly as transformers 5.x does
// (modeling_rope_utils.py + LlamaRotaryEmbedding): the same float32 operations in the same order,
// so that the tables match bit for bit on CPU. Formulas: transformers' modeling_rope_utils.py (_compute_*_parameters).
#pragma once
#include <ATen/ATen.h>

#include "model/model_config.h"

namespace linearard::model {

struct RopeFrequencies {
  at::Tensor inv_freq;      // (D/2) float32
  double attention_factor;  // multiplies cos and sin (so the logits by its square)
};

// inv_freq and attention factor for a forward whose largest position is seq_len - 1. seq_len
// matters only for dynamic (grows the base past max_position_embeddings) and longrope (switches to
// the long factors past original_max_position_embeddings), as in transformers' dynamic_rope_update.
RopeFrequencies rope_frequencies(const ModelConfig& config, const RopeParams& rope, int64_t seq_len,
                                 at::Device device);

struct RopeTables {
  at::Tensor cos;  // (T, D) in the compute dtype
  at::Tensor sin;  // (T, D)
};

// Tables for positions (T) int64: computed in float32 on `device`, then cast to `dtype` (HF casts to
// the activations' dtype before use).
RopeTables rope_tables(const ModelConfig& config, const RopeParams& rope, const at::Tensor& positions,
                       at::ScalarType dtype);

// q' = q cos + rotate_half(q) sin for x (B, H, T, D) with tables (T, D); rotate_half pairs
// (i, i + D/2), not interleaved pairs.
at::Tensor apply_rope(const at::Tensor& x, const RopeTables& tables);

}  // namespace linearard::model
