// `linearard export`: turns a training checkpoint's adapter (DIR/adapter.json + adapter.safetensors,
// see train/adapter_checkpoint.h) into a PEFT adapter directory and/or a merged HF checkpoint with the student's
// RoPE scaling in config.json, or into one GGUF file for llama.cpp (--format gguf, export/gguf_export.h),
// from the checkpoint or from a merged HF directory (--model).
#include <cstdio>
#include <memory>

#include "cli/command.h"
#include "common/error.h"
#include "export/adapter_weights.h"
#include "export/export_student.h"
#include "export/gguf_export.h"
#include "export/merged_hf.h"
#include "export/student_config.h"
#include "io/model_path.h"
#include "train/adapter_checkpoint.h"

namespace {

using namespace linearard;

struct ExportOptions {
  std::string checkpoint_dir, model_dir, base_dir, out_dir;
  std::string format = "both";
  std::string max_shard_size = "5GB";  // huggingface_hub's default
  std::string gguf_type = "f16";       // convert_hf_to_gguf.py's default --outtype
  bool overwrite = false;
};

void run_gguf_export(const ExportOptions& o) {
  exporter::GgufExportRequest r;
  r.type = exporter::parse_gguf_type(o.gguf_type, "--gguf-type");
  r.out_path = o.out_dir;
  r.overwrite = o.overwrite;
  if (!o.model_dir.empty()) {
    if (!o.checkpoint_dir.empty()) fail("--model", "give either --checkpoint or --model, not both");
    r.inputs = {o.model_dir};
    exporter::export_model_dir_gguf(r, o.model_dir);
    std::printf("wrote %s (GGUF %s) from %s\n", o.out_dir.c_str(), o.gguf_type.c_str(), o.model_dir.c_str());
    return;
  }
  const train::AdapterCheckpoint ckpt = train::load_adapter_checkpoint(o.checkpoint_dir);
  const std::string base_dir = io::resolve_model_path(o.base_dir.empty() ? ckpt.base_model_dir : o.base_dir);
  r.inputs = {o.checkpoint_dir, base_dir};
  const model::ModelConfig base = model::load_model_config(base_dir);
  const model::RopeParams rope =
      model::parse_rope_override(ckpt.student_rope.dump(), base, o.checkpoint_dir + "/adapter.json student_rope");
  model::validate_rope(rope, base, "student RoPE");
  exporter::validate_adapter(ckpt.adapter, base, "adapter");
  // The student's config.json (RoPE, context length) as the merged export writes it.
  const model::ModelConfig student =
      model::parse_model_config(exporter::student_config_json(base, rope).dump(), o.checkpoint_dir + " (student config)");
  exporter::write_gguf_model(r, student, exporter::merged_weights(base_dir, ckpt.adapter, base), base_dir);
  std::printf("exported %s adapter (%s) on %s\n", ckpt.adapter.spec.json_kind().c_str(), model::describe_rope(rope).c_str(),
              base_dir.c_str());
  std::printf("wrote %s (GGUF %s)\n", o.out_dir.c_str(), o.gguf_type.c_str());
}

void run_export(const ExportOptions& o) {
  if (o.format == "gguf") return run_gguf_export(o);
  if (!o.model_dir.empty()) fail("--model", "only with --format gguf (the other formats start from a --checkpoint)");
  if (o.checkpoint_dir.empty()) fail("--checkpoint", "required (the training checkpoint to export)");
  exporter::ExportRequest r;
  r.format = exporter::parse_export_format(o.format, "--format");
  r.max_shard_bytes = exporter::parse_size_bytes(o.max_shard_size, "--max-shard-size");
  r.overwrite = o.overwrite;
  r.out_dir = o.out_dir;
  r.protected_dirs = {o.checkpoint_dir};
  const train::AdapterCheckpoint ckpt = train::load_adapter_checkpoint(o.checkpoint_dir);
  // --base overrides the recorded path (the checkpoint may have moved between machines).
  r.base_model_dir = io::resolve_model_path(o.base_dir.empty() ? ckpt.base_model_dir : o.base_dir);
  const model::ModelConfig base = model::load_model_config(r.base_model_dir);
  const model::RopeParams rope =
      model::parse_rope_override(ckpt.student_rope.dump(), base, o.checkpoint_dir + "/adapter.json student_rope");
  exporter::export_student(r, ckpt.adapter, rope);

  const char* what = r.format == exporter::ExportFormat::kPeft     ? "PEFT adapter"
                     : r.format == exporter::ExportFormat::kMerged ? "merged checkpoint"
                                                             : "PEFT adapter (peft/) and merged checkpoint (merged/)";
  std::printf("exported %s adapter (%s) on %s\n", ckpt.adapter.spec.json_kind().c_str(), model::describe_rope(rope).c_str(),
              r.base_model_dir.c_str());
  std::printf("wrote %s to %s\n", what, o.out_dir.c_str());
}

cli::CommandRegistration export_command(
    "export", "write a trained student as a PEFT adapter, a merged HF checkpoint or a GGUF file",
    [](CLI::App& sub) {
      auto o = std::make_shared<ExportOptions>();
      sub.add_option("--checkpoint", o->checkpoint_dir, "training checkpoint (adapter.json + adapter.safetensors)");
      sub.add_option("--model", o->model_dir, "--format gguf only: a merged HF model directory instead of a checkpoint");
      sub.add_option("--base", o->base_dir, "base HF model directory (default: the one the checkpoint records)");
      sub.add_option("--out", o->out_dir, "output directory, or FILE.gguf for --format gguf (replaced only with --overwrite)")
          ->required();
      sub.add_option("--format", o->format, "peft, merged, both (OUT/peft and OUT/merged) or gguf (llama.cpp)")
          ->capture_default_str();
      sub.add_option("--gguf-type", o->gguf_type, "GGUF tensor type: f32, f16, bf16 or q8_0 (norms stay f32)")
          ->capture_default_str();
      sub.add_option("--max-shard-size", o->max_shard_size, "largest merged weight file, e.g. 5GB, 500MB")
          ->capture_default_str();
      sub.add_flag("--overwrite", o->overwrite, "replace a non-empty output directory or an existing GGUF file");
      sub.callback([o] { run_export(*o); });
    });

}  // namespace
