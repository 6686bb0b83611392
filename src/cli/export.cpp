// `linearard export`: turns a training checkpoint's adapter (DIR/adapter.json + adapter.safetensors,
// see train/adapter_checkpoint.h) into a PEFT adapter directory and/or a merged HF checkpoint with the student's
// RoPE scaling in config.json, or into one GGUF file for llama.cpp (--format gguf, export/gguf_export.h),
// from the checkpoint or from a merged HF directory (--model). Its options are export/export_flags.h
// (the flags given become exporter::export_options, as from Python); the run itself is
// exporter::run_export (export/run_export.h).
#include "cli/command.h"
#include "common/option_layers.h"
#include "export/export_flags.h"
#include "export/run_export.h"

namespace {

using namespace linearard;

cli::CommandRegistration export_command(
    "export", "write a trained student as a PEFT adapter, a merged HF checkpoint or a GGUF file",
    [](CLI::App& sub) {
      auto parsed = std::make_shared<exporter::ExportOptions>();  // CLI11 parses (and checks) into it
      exporter::add_export_flags(sub, *parsed);
      CLI::App* app = &sub;
      sub.callback([parsed, app] { exporter::run_export(exporter::export_options(given_options(*app))); });
    });

}  // namespace
