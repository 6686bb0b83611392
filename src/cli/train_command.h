// `linearard distill`, `cpt` and `pretrain`: the command line only parses the flags of the
// trainers' option table (train/train_flags.h) and hands the ones given to train::train_options,
// the layering the Python binding calls too (flags > --config > --recipe > defaults), then runs
// train::run. Header-only: src/cli/*.cpp are the binary's sources.
#pragma once
#include <CLI/CLI.hpp>
#include <memory>
#include <string>

#include "common/option_layers.h"
#include "train/run.h"
#include "train/train_flags.h"

namespace linearard::cli {

inline void add_train_command(CLI::App& sub, const std::string& command) {
  // CLI11 parses into `flags` (its conversions and errors are the command line's); the values
  // themselves come from the flags given, through the library's layering.
  auto flags = std::make_shared<train::TrainFlags>(command);
  train::add_train_flags(sub, *flags);
  CLI::App* app = &sub;
  sub.callback([flags, app, command] { train::run(train::train_options(command, given_options(*app))); });
}

}  // namespace linearard::cli
