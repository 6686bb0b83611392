// A trained adapter against the base model it belongs to: the shape checks before an export, and
// the weight delta each targeted projection receives when merged.
#pragma once
#include <ATen/ATen.h>

#include <cstdint>
#include <string>

#include "model/model_config.h"
#include "train/adapter_checkpoint.h"

namespace linearard::exporter {

// Checks kind, rank, target modules, and that the tensors are exactly the keys the spec implies
// with the shapes of train/adapter_checkpoint.h. Errors: "<where>: ..." one line.
void validate_adapter(const train::TrainedAdapter& adapter, const model::ModelConfig& config, const std::string& where);

// delta W (out, C) float32 of one layer's projection: (B @ A) * alpha / r, or the stored delta.
at::Tensor weight_delta(const train::TrainedAdapter& adapter, int64_t layer, const std::string& module);

}  // namespace linearard::exporter
