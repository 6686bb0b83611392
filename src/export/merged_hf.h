// The merged export: the base model's weights with the adapter folded in, as a Hugging Face model
// directory (loads with AutoModelForCausalLM.from_pretrained).
#pragma once
#include <ATen/ATen.h>

#include <cstdint>
#include <filesystem>
#include <string>
#include <utility>
#include <vector>

#include "model/model_config.h"
#include "train/adapter_checkpoint.h"

namespace linearard::exporter {

// Every base tensor (natural name order), the targeted ones as W + delta W computed in float32 and
// cast back to the stored dtype: what the merged export writes (and the GGUF export encodes).
std::vector<std::pair<std::string, at::Tensor>> merged_weights(const std::string& base_model_dir,
                                                               const train::TrainedAdapter& adapter,
                                                               const model::ModelConfig& base);

// Into the existing directory `dir`: merged_weights (sharded at max_shard_bytes, HF layout);
// config.json = student_config_json; the base's other files (tokenizer, generation config,
// license) copied; README.md.
void write_merged_files(const std::filesystem::path& dir, const std::string& base_model_dir, uint64_t max_shard_bytes,
                        const train::TrainedAdapter& adapter, const model::ModelConfig& base,
                        const model::RopeParams& rope);

}  // namespace linearard::exporter
