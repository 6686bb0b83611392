// The options of `distill`, `cpt` and `pretrain` (train::TrainOptions, the run API's options,
// train/run.h) as one table of CLI11 options, and their layering: the one place that turns option
// values into a TrainOptions. The command line (src/cli/train_command.h) and the Python binding
// both hand their values to train_options(). Names are the flags without the dashes ("lora-rank"),
// as in a --config file, a recipe and OptionError.
#pragma once
#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>
#include <string>

#include "train/train_options.h"

namespace linearard::train {

// What the table's options write into: the options, and the values parsed after CLI11 (layers,
// relations: parse_layers, parse_relations) or that pick the lower layers (config, recipe).
struct TrainFlags {
  explicit TrainFlags(const std::string& command) : options(default_options(command)) {}
  TrainOptions options;
  std::string layers = "all", relations = "q,k,v";
  std::string config;  // --config FILE: a JSON object of option values
  std::string recipe;  // --recipe NAME (distill; "" = the default recipe)
};

// Declares the options of flags.options.command on `app`, bound to `flags` (which must outlive
// `app`'s parsing): --config, --recipe (distill), the run, optimiser, adapter (distill, cpt),
// objective (distill) and architecture (pretrain) options, --overwrite.
void add_train_flags(CLI::App& app, TrainFlags& flags);

// The options of `command` (distill, cpt or pretrain) from `given` (a JSON object of option name
// -> value: a string, number, bool, object or array, as a --config file holds them), layered
// highest first: `given`, then the file of its "config", then (distill) the recipe "recipe" names
// or the default recipe (train/recipes.h), then default_options(command). The command line
// and the library give the same options for the same values. Throws an OptionError naming the
// option (an unknown name, a value that does not convert, an unknown recipe, a bad layers or
// relations list); a config file's own errors name the file, as `linearard --config` reports them.
TrainOptions train_options(const std::string& command, const nlohmann::json& given);

// The option table of `command` (common/option_layers.h describe_options): for help texts.
nlohmann::json describe_train_options(const std::string& command);

}  // namespace linearard::train
