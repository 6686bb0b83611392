#include "export/export_flags.h"

#include "common/option_layers.h"

namespace linearard::exporter {

void add_export_flags(CLI::App& sub, ExportOptions& o) {
  sub.add_option("--checkpoint", o.checkpoint, "training checkpoint (adapter.json + adapter.safetensors)");
  sub.add_option("--model", o.model, "--format gguf only: a merged HF model directory instead of a checkpoint");
  sub.add_option("--base", o.base, "base HF model directory (default: the one the checkpoint records)");
  sub.add_option("--out", o.out, "output directory, or FILE.gguf for --format gguf (replaced only with --overwrite)")
      ->required();
  sub.add_option("--format", o.format, "peft, merged, both (OUT/peft and OUT/merged) or gguf (llama.cpp)")
      ->capture_default_str();
  sub.add_option("--gguf-type", o.gguf_type, "GGUF tensor type: f32, f16, bf16 or q8_0 (norms stay f32)")
      ->capture_default_str();
  sub.add_option("--max-shard-size", o.max_shard_size, "largest merged weight file, e.g. 5GB, 500MB")
      ->capture_default_str();
  sub.add_flag("--overwrite", o.overwrite, "replace a non-empty output directory or an existing GGUF file");
}

ExportOptions export_options(const nlohmann::json& given) {
  ExportOptions o;
  CLI::App app("", "export");
  add_export_flags(app, o);
  set_given_options(app, given);
  return o;
}

nlohmann::json describe_export_options() {
  ExportOptions o;
  CLI::App app("", "export");
  add_export_flags(app, o);
  return describe_options(app);
}

}  // namespace linearard::exporter
