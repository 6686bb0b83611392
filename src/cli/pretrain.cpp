// `linearard pretrain`: LM training of a LLaMA-shaped model from random initialisation (all weights
// trained, float32 master weights). Writes a HF checkpoint directory (config.json +
// model.safetensors) in <out>/final. Its options (the architecture's among them) are
// train/train_flags.h; the run itself is train::run (train/run.h).
#include "cli/command.h"
#include "cli/train_command.h"

namespace {

linearard::cli::CommandRegistration pretrain_command(
    "pretrain", "LM training from random initialisation; writes a HF checkpoint",
    [](CLI::App& sub) { linearard::cli::add_train_command(sub, "pretrain"); });

}  // namespace
