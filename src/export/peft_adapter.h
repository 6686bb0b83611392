// The PEFT export: a LoRA adapter directory that loads with PeftModel.from_pretrained. The only
// place where an AdapterSpec is spelled the PEFT way (r, lora_alpha, lora_dropout, target_modules:
// PEFT's LoraConfig, peft/tuners/lora/config.py).
#pragma once
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>

#include "model/model_config.h"
#include "train/adapter_checkpoint.h"
#include "train/adapter_spec.h"

namespace linearard::exporter {

// adapter_config.json of a LoRA spec: PEFT 0.21's LoraConfig fields (bias "none", task_type
// CAUSAL_LM, no rsLoRA / DoRA); lora_alpha as an integer when it is one, as PEFT writes it.
nlohmann::json peft_adapter_config(const train::AdapterSpec& spec, const std::string& base_model_path);

// Into the existing directory `dir`: adapter_config.json, adapter_model.safetensors (float32: PEFT
// keeps adapter weights in float32 by default, autocast_adapter_dtype), student_config.json
// (student_config_json), README.md.
void write_peft_files(const std::filesystem::path& dir, const std::string& base_model_dir,
                      const train::TrainedAdapter& adapter, const model::ModelConfig& base,
                      const model::RopeParams& rope);

}  // namespace linearard::exporter
