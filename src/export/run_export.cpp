#include "export/run_export.h"

#include <cstdio>

#include "common/error.h"
#include "common/option_error.h"
#include "export/adapter_weights.h"
#include "export/export_student.h"
#include "export/gguf_export.h"
#include "export/merged_hf.h"
#include "export/student_config.h"
#include "io/model_path.h"
#include "train/adapter_checkpoint.h"

namespace linearard::exporter {
namespace {

ExportResult run_gguf_export(const ExportOptions& o) {
  GgufExportRequest r;
  r.type = parse_option("gguf-type", [&](const std::string& where) { return parse_gguf_type(o.gguf_type, where); });
  r.out_path = o.out;
  r.overwrite = o.overwrite;
  if (!o.model.empty()) {
    if (!o.checkpoint.empty()) fail_option("model", "give either --checkpoint or --model, not both");
    r.inputs = {o.model};
    export_model_dir_gguf(r, o.model);
    std::printf("wrote %s (GGUF %s) from %s\n", o.out.c_str(), o.gguf_type.c_str(), o.model.c_str());
    return {{o.out}};
  }
  const train::AdapterCheckpoint ckpt = train::load_adapter_checkpoint(o.checkpoint);
  const std::string base_dir = io::resolve_model_path(o.base.empty() ? ckpt.base_model_dir : o.base);
  r.inputs = {o.checkpoint, base_dir};
  const model::ModelConfig base = model::load_model_config(base_dir);
  const model::RopeParams rope =
      model::parse_rope_override(ckpt.student_rope.dump(), base, o.checkpoint + "/adapter.json student_rope");
  model::validate_rope(rope, base, "student RoPE");
  validate_adapter(ckpt.adapter, base, "adapter");
  // The student's config.json (RoPE, context length) as the merged export writes it.
  const model::ModelConfig student =
      model::parse_model_config(student_config_json(base, rope).dump(), o.checkpoint + " (student config)");
  write_gguf_model(r, student, merged_weights(base_dir, ckpt.adapter, base), base_dir);
  std::printf("exported %s adapter (%s) on %s\n", ckpt.adapter.spec.json_kind().c_str(), model::describe_rope(rope).c_str(),
              base_dir.c_str());
  std::printf("wrote %s (GGUF %s)\n", o.out.c_str(), o.gguf_type.c_str());
  return {{o.out}};
}

}  // namespace

ExportResult run_export(const ExportOptions& o) {
  if (o.format == "gguf") return run_gguf_export(o);
  if (!o.model.empty()) fail_option("model", "only with --format gguf (the other formats start from a --checkpoint)");
  if (o.checkpoint.empty()) fail_option("checkpoint", "required (the training checkpoint to export)");
  ExportRequest r;
  r.format = parse_option("format", [&](const std::string& where) { return parse_export_format(o.format, where); });
  r.max_shard_bytes = parse_option("max-shard-size", [&](const std::string& where) { return parse_size_bytes(o.max_shard_size, where); });
  r.overwrite = o.overwrite;
  r.out_dir = o.out;
  r.protected_dirs = {o.checkpoint};
  const train::AdapterCheckpoint ckpt = train::load_adapter_checkpoint(o.checkpoint);
  // `base` overrides the recorded path (the checkpoint may have moved between machines).
  r.base_model_dir = io::resolve_model_path(o.base.empty() ? ckpt.base_model_dir : o.base);
  const model::ModelConfig base = model::load_model_config(r.base_model_dir);
  const model::RopeParams rope =
      model::parse_rope_override(ckpt.student_rope.dump(), base, o.checkpoint + "/adapter.json student_rope");
  export_student(r, ckpt.adapter, rope);

  const char* what = r.format == ExportFormat::kPeft     ? "PEFT adapter"
                     : r.format == ExportFormat::kMerged ? "merged checkpoint"
                                                   : "PEFT adapter (peft/) and merged checkpoint (merged/)";
  std::printf("exported %s adapter (%s) on %s\n", ckpt.adapter.spec.json_kind().c_str(), model::describe_rope(rope).c_str(),
              r.base_model_dir.c_str());
  std::printf("wrote %s to %s\n", what, o.out.c_str());
  if (r.format == ExportFormat::kBoth) return {{o.out + "/peft", o.out + "/merged"}};
  return {{o.out}};
}

}  // namespace linearard::exporter
