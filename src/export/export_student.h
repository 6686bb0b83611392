// `linearard export` of a trained student (a training checkpoint's adapter, train/adapter_checkpoint.h)
// as a PEFT adapter directory (export/peft_adapter.h) and/or a merged HF checkpoint
// (export/merged_hf.h); formats: PEFT's save_pretrained (adapter_config.json +
// adapter_model.safetensors) and the safetensors format (huggingface/safetensors README; HF layout).
// The GGUF export is export/gguf_export.h.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "io/checkpoint.h"
#include "model/model_config.h"
#include "train/adapter_checkpoint.h"

namespace linearard::exporter {

enum class ExportFormat { kPeft, kMerged, kBoth };
ExportFormat parse_export_format(const std::string& text, const std::string& flag);

// "5GB", "500MB", "30KB", "1GiB", "123": decimal units as huggingface_hub's parse_size_to_int,
// binary ones for KiB/MiB/GiB.
uint64_t parse_size_bytes(const std::string& text, const std::string& flag);

struct ExportRequest {
  std::string out_dir;
  std::string base_model_dir;
  ExportFormat format = ExportFormat::kBoth;  // kBoth: OUT/peft and OUT/merged
  bool overwrite = false;                     // replace a non-empty OUT
  uint64_t max_shard_bytes = io::kDefaultMaxShardBytes;  // merged weights
  std::vector<std::string> protected_dirs;    // inputs (the training checkpoint): OUT neither inside nor around
};

// Writes the export. Refuses (before writing anything) an OUT equal to, inside or containing the
// base model directory or a protected directory, a non-empty OUT without overwrite, and a
// qkv_delta adapter as PEFT. Writes into "<parent>/.<name>.tmp.<pid>" next to OUT,
// then renames it into place (an old OUT is moved aside first and deleted after).
void export_student(const ExportRequest& request, const train::TrainedAdapter& adapter,
                    const model::RopeParams& student_rope);

// The two halves on their own (request.format is ignored): export/peft_adapter.h, export/merged_hf.h.
void write_peft_adapter(const ExportRequest& request, const train::TrainedAdapter& adapter,
                        const model::RopeParams& student_rope);
void write_merged_checkpoint(const ExportRequest& request, const train::TrainedAdapter& adapter,
                             const model::RopeParams& student_rope);

}  // namespace linearard::exporter
