// `linearard export`: turns a training checkpoint's adapter (DIR/adapter.json + adapter.safetensors,
// see train/adapter_checkpoint.h) into a PEFT adapter directory and/or a merged HF checkpoint with the student's
// RoPE scaling in config.json, or into one GGUF file for llama.cpp (--format gguf, export/gguf_export.h),
// from the checkpoint or from a merged HF directory (--model). The run itself is exporter::run_export (export/run_export.h).
#include "cli/command.h"
#include "export/run_export.h"

namespace {

using namespace linearard;

cli::CommandRegistration export_command(
    "export", "write a trained student as a PEFT adapter, a merged HF checkpoint or a GGUF file",
    [](CLI::App& sub) {
      auto o = std::make_shared<exporter::ExportOptions>();
      sub.add_option("--checkpoint", o->checkpoint, "training checkpoint (adapter.json + adapter.safetensors)");
      sub.add_option("--model", o->model, "--format gguf only: a merged HF model directory instead of a checkpoint");
      sub.add_option("--base", o->base, "base HF model directory (default: the one the checkpoint records)");
      sub.add_option("--out", o->out, "output directory, or FILE.gguf for --format gguf (replaced only with --overwrite)")
          ->required();
      sub.add_option("--format", o->format, "peft, merged, both (OUT/peft and OUT/merged) or gguf (llama.cpp)")
          ->capture_default_str();
      sub.add_option("--gguf-type", o->gguf_type, "GGUF tensor type: f32, f16, bf16 or q8_0 (norms stay f32)")
          ->capture_default_str();
      sub.add_option("--max-shard-size", o->max_shard_size, "largest merged weight file, e.g. 5GB, 500MB")
          ->capture_default_str();
      sub.add_flag("--overwrite", o->overwrite, "replace a non-empty output directory or an existing GGUF file");
      sub.callback([o] { exporter::run_export(*o); });
    });

}  // namespace
