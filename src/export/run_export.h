// The export of a trained student as one library call: what `linearard export` does after parsing
// its flags. A training checkpoint's adapter becomes a PEFT adapter directory and/or a merged HF
// checkpoint with the student's RoPE scaling in config.json (export_student.h), or one GGUF file for
// llama.cpp (gguf_export.h), from the checkpoint or from a merged HF directory (`model`). Options
// are named like the flags without the dashes; a bad value is an OptionError naming the option
// (common/option_error.h).
#pragma once
#include <string>
#include <vector>

namespace linearard::exporter {

struct ExportOptions {
  std::string checkpoint;  // training checkpoint (adapter.json + adapter.safetensors)
  std::string model;       // format gguf only: a merged HF model directory instead of a checkpoint
  std::string base;        // base HF model directory ("" = the one the checkpoint records)
  std::string out;         // output directory, or FILE.gguf for format gguf
  std::string format = "both";          // peft, merged, both (OUT/peft and OUT/merged) or gguf
  std::string max_shard_size = "5GB";   // largest merged weight file (huggingface_hub's default)
  std::string gguf_type = "f16";        // convert_hf_to_gguf.py's default --outtype
  bool overwrite = false;               // replace a non-empty output directory or an existing GGUF file
};

// What an export wrote: options.out, or for format both OUT/peft and OUT/merged.
struct ExportResult {
  std::vector<std::string> outputs;
};

// Writes the export into options.out and prints what it wrote.
ExportResult run_export(const ExportOptions& options);

}  // namespace linearard::exporter
