// `linearard cpt`: continued pre-training of the RoPE-scaled student on long blocks: LM loss of the
// base weights + --rope-scaling + trainable q/k/v adapters (LinearARD's stage 3, arXiv 2604.00004).
// The run itself is train::run (train/run.h).
#include "cli/command.h"
#include "cli/overwrite_flag.h"
#include "cli/train_flags.h"
#include "train/run.h"

namespace {

using namespace linearard;

cli::CommandRegistration cpt_command(
    "cpt", "continued pre-training (LM loss) of the RoPE-scaled student with q/k/v adapters", [](CLI::App& sub) {
      auto o = std::make_shared<train::TrainOptions>(train::default_options("cpt"));
      auto config_path = std::make_shared<std::string>();
      cli::add_config_flag(sub, *config_path);
      cli::add_run_flags(sub, *o, /*needs_model=*/true);
      cli::add_optim_flags(sub, o->optim);
      cli::add_adapter_flags(sub, o->adapter);
      cli::add_overwrite_flag(sub, o->run.overwrite, cli::kTrainingOverwriteHelp);
      CLI::App* app = &sub;
      sub.callback([o, config_path, app] {
        cli::apply_config(*app, *config_path);
        train::run(*o);
      });
    });

}  // namespace
