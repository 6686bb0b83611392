// `linearard cpt`: continued pre-training of the RoPE-scaled student on long blocks: LM loss of the
// base weights + --rope-scaling + trainable q/k/v adapters (LinearARD's stage 3, arXiv 2604.00004).
// Its options are train/train_flags.h; the run itself is train::run (train/run.h).
#include "cli/command.h"
#include "cli/train_command.h"

namespace {

linearard::cli::CommandRegistration cpt_command(
    "cpt", "continued pre-training (LM loss) of the RoPE-scaled student with q/k/v adapters",
    [](CLI::App& sub) { linearard::cli::add_train_command(sub, "cpt"); });

}  // namespace
