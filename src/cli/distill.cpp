// `linearard distill`: attention-restore distillation. Teacher = the checkpoint with its native
// RoPE, student = the same weights with --rope-scaling and trainable q/k/v adapters; the loss aligns
// the Q/Q, K/K and V/V relation distributions of the selected layers (train/objective.h). Its
// options and their layering (flags > --config > --recipe > defaults) are train/train_flags.h; the
// run itself is train::run (train/run.h).
#include "cli/command.h"
#include "cli/train_command.h"

namespace {

linearard::cli::CommandRegistration distill_command(
    "distill", "attention-restore distillation of a RoPE-scaled student from its native-RoPE teacher",
    [](CLI::App& sub) { linearard::cli::add_train_command(sub, "distill"); });

}  // namespace
