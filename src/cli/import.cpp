// `linearard import FILE.gguf --out DIR [--overwrite] [--dtype bf16|f16|f32]`: a GGUF file as a
// Hugging Face model directory (config.json, tokenizer.json, tokenizer_config.json,
// model.safetensors); io/gguf_import.h says what is written and how it matches transformers.
#include <cstdio>
#include <memory>

#include "cli/command.h"
#include "cli/overwrite_flag.h"
#include "common/error.h"
#include "io/output_guard.h"
#include "io/gguf_import.h"
#include "io/model_path.h"

namespace {

using namespace linearard;

struct ImportOptions {
  std::string gguf, out_dir, dtype = "bf16";
  bool overwrite = false;
};

void run_import(const ImportOptions& o) {
  const io::ImportDType dtype = io::parse_import_dtype(o.dtype, "--dtype");
  if (!io::is_gguf_path(o.gguf)) fail(o.gguf, "not a .gguf file");
  io::check_output_dir({"out", o.out_dir, o.overwrite, {{"FILE.gguf", o.gguf}}});
  io::import_gguf(o.gguf, o.out_dir, dtype);
  std::printf("imported %s -> %s (%s)\n", o.gguf.c_str(), o.out_dir.c_str(), o.dtype.c_str());
}

cli::CommandRegistration import_command(
    "import", "write a GGUF file (llama.cpp) as a Hugging Face model directory",
    [](CLI::App& sub) {
      auto o = std::make_shared<ImportOptions>();
      sub.add_option("gguf", o->gguf, "the .gguf file")->required();
      sub.add_option("--out", o->out_dir, "output directory (created; non-empty only with --overwrite)")->required();
      sub.add_option("--dtype", o->dtype, "tensor dtype: bf16, f16 or f32 (dequantized values rounded to nearest even)")
          ->capture_default_str();
      cli::add_overwrite_flag(sub, o->overwrite, "write into a non-empty --out (replacing the import's files there)");
      sub.callback([o] { run_import(*o); });
    });

}  // namespace
