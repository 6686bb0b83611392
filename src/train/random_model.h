// Randomly initialised decoders (pretraining from scratch, benchmarks without a checkpoint) and the
// HF tensor names of a decoder's weights.
#pragma once
#include <ATen/ATen.h>

#include <nlohmann/json.hpp>

#include "model/llama.h"
#include "train/qkv_adapter.h"

namespace linearard::train {

// A LLaMA config.json for the given shape (model_type llama, silu, default RoPE), the form
// `pretrain` writes and parse_model_config reads.
nlohmann::json llama_config_json(int64_t hidden, int64_t intermediate, int64_t layers, int64_t heads,
                                 int64_t kv_heads, int64_t vocab, int64_t max_positions, double rope_theta);

// Weights as transformers' LlamaPreTrainedModel._init_weights: linear and embedding weights
// N(0, std), biases 0, norms 1; drawn from a CPU generator seeded with `seed` layer by layer, so
// the result does not depend on the device. fast = true draws on `device` instead (benchmarks).
model::DecoderModel random_model(const model::ModelConfig& config, at::ScalarType dtype, at::Device device,
                                 uint64_t seed, double std = 0.02, bool fast = false);

// The weights under their HF checkpoint names (model.embed_tokens.weight, ...); lm_head.weight only
// when it is not tied.
NamedTensors hf_named_weights(const model::DecoderWeights& weights, const model::ModelConfig& config);

}  // namespace linearard::train
