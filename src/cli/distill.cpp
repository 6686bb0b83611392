// `linearard distill`: attention-restore distillation. Teacher = the checkpoint with its native
// RoPE, student = the same weights with --rope-scaling and trainable q/k/v adapters; the loss aligns
// the Q/Q, K/K and V/V relation distributions of the selected layers (train/objective.h). The run
// itself is train::run (train/run.h).
#include "cli/command.h"
#include "cli/overwrite_flag.h"
#include "cli/train_flags.h"
#include "train/recipes.h"
#include "train/run.h"

namespace {

using namespace linearard;

struct DistillFlags {
  train::TrainOptions options = train::default_options("distill");
  std::string layers = "all", relations = "q,k,v";
};

cli::CommandRegistration distill_command(
    "distill", "attention-restore distillation of a RoPE-scaled student from its native-RoPE teacher",
    [](CLI::App& sub) {
      auto flags = std::make_shared<DistillFlags>();
      auto config_path = std::make_shared<std::string>();
      auto recipe = std::make_shared<std::string>(train::kDefaultRecipe);
      cli::add_config_flag(sub, *config_path);
      cli::add_recipe_flag(sub, *recipe);
      cli::add_run_flags(sub, flags->options, /*needs_model=*/true);
      cli::add_optim_flags(sub, flags->options.optim);
      cli::add_adapter_flags(sub, flags->options.adapter);
      cli::add_objective_flags(sub, flags->options.objective, flags->layers, flags->relations);
      cli::add_overwrite_flag(sub, flags->options.run.overwrite, cli::kTrainingOverwriteHelp);
      CLI::App* app = &sub;
      sub.callback([flags, config_path, recipe, app] {
        cli::apply_config(*app, *config_path);
        cli::apply_recipe(*app, *recipe);
        cli::finish_objective_flags(flags->options.objective, flags->layers, flags->relations);
        train::run(flags->options);
      });
    });

}  // namespace
