// Flags shared by `linearard distill`, `cpt` and `pretrain`, parsed into train::TrainOptions (the
// run API's options, train/run.h): every flag can also come from a JSON config file (--config FILE,
// keys = flag names without the dashes = the options' names).
#pragma once
#include <ATen/ATen.h>

#include <CLI/CLI.hpp>

#include "train/train_options.h"

namespace linearard::cli {

// --config FILE: a JSON object whose keys are flag names without the dashes; a nested object (e.g.
// "rope-scaling") is passed as its JSON text. Flags given on the command line win; unknown keys are
// an error. apply_config() runs at the start of the subcommand's callback.
void add_config_flag(CLI::App& sub, std::string& config_path);
void apply_config(CLI::App& sub, const std::string& config_path);
// --recipe NAME (train/recipes.h): option values below the command line and --config; run after
// apply_config().
void add_recipe_flag(CLI::App& sub, std::string& recipe);
void apply_recipe(CLI::App& sub, const std::string& recipe);
void add_run_flags(CLI::App& sub, train::TrainOptions& o, bool needs_model);
void add_optim_flags(CLI::App& sub, train::OptimOptions& o);
void add_adapter_flags(CLI::App& sub, train::AdapterSpec& o);
// --layers and --relations are parsed after CLI11 (finish_objective_flags: train::parse_layers,
// train::parse_relations).
void add_objective_flags(CLI::App& sub, train::ObjectiveOptions& o, std::string& layers, std::string& relations);
void finish_objective_flags(train::ObjectiveOptions& o, const std::string& layers, const std::string& relations);

}  // namespace linearard::cli
