// `linearard export`: turns a training checkpoint's adapter (DIR/adapter.json + adapter.safetensors,
// see io/export.h) into a PEFT adapter directory and/or a merged HF checkpoint with the student's
// RoPE scaling in config.json.
#include <cstdio>
#include <memory>

#include "cli/command.h"
#include "common/error.h"
#include "io/export.h"
#include "io/model_path.h"

namespace {

using namespace linearard;

struct ExportOptions {
  std::string checkpoint_dir, base_dir, out_dir;
  std::string format = "both";
  std::string max_shard_size = "5GB";  // huggingface_hub's default
  bool overwrite = false;
};

void run_export(const ExportOptions& o) {
  io::ExportRequest r;
  r.format = io::parse_export_format(o.format, "--format");
  r.max_shard_bytes = io::parse_size_bytes(o.max_shard_size, "--max-shard-size");
  r.overwrite = o.overwrite;
  r.out_dir = o.out_dir;
  r.protected_dirs = {o.checkpoint_dir};
  const io::AdapterCheckpoint ckpt = io::load_adapter_checkpoint(o.checkpoint_dir);
  // --base overrides the recorded path (the checkpoint may have moved between machines).
  r.base_model_dir = io::resolve_model_path(o.base_dir.empty() ? ckpt.base_model_dir : o.base_dir);
  const model::ModelConfig base = model::load_model_config(r.base_model_dir);
  const model::RopeParams rope =
      model::parse_rope_override(ckpt.student_rope.dump(), base, o.checkpoint_dir + "/adapter.json student_rope");
  io::export_student(r, ckpt.adapter, rope);

  const char* what = r.format == io::ExportFormat::kPeft     ? "PEFT adapter"
                     : r.format == io::ExportFormat::kMerged ? "merged checkpoint"
                                                             : "PEFT adapter (peft/) and merged checkpoint (merged/)";
  std::printf("exported %s adapter (%s) on %s\n", ckpt.adapter.kind.c_str(), model::describe_rope(rope).c_str(),
              r.base_model_dir.c_str());
  std::printf("wrote %s to %s\n", what, o.out_dir.c_str());
}

cli::CommandRegistration export_command(
    "export", "write a trained student as a PEFT adapter and/or a merged HF checkpoint",
    [](CLI::App& sub) {
      auto o = std::make_shared<ExportOptions>();
      sub.add_option("--checkpoint", o->checkpoint_dir, "training checkpoint (adapter.json + adapter.safetensors)")
          ->required();
      sub.add_option("--base", o->base_dir, "base HF model directory (default: the one the checkpoint records)");
      sub.add_option("--out", o->out_dir, "output directory (created; replaced only with --overwrite)")->required();
      sub.add_option("--format", o->format, "peft, merged or both (OUT/peft and OUT/merged)")
          ->capture_default_str();
      sub.add_option("--max-shard-size", o->max_shard_size, "largest merged weight file, e.g. 5GB, 500MB")
          ->capture_default_str();
      sub.add_flag("--overwrite", o->overwrite, "replace a non-empty output directory");
      sub.callback([o] { run_export(*o); });
    });

}  // namespace
