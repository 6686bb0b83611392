// Named distillation recipes: option values (keys = the flag names without dashes, as in a --config
// file) that `linearard distill --recipe NAME` applies below the command line and --config. The
// default recipe is the best one measured on a real model (docs/restoration.md); "paper" is the
// reference ARD run's hyper-parameters for 7B models (LinearARD's released training scripts, github.com/gracefulning/LinearARD: LoRA r 1024,
// alpha 2048 on q/k/v, AdamW lr 2e-5, 4-step warm-up, cosine to 0.9x, clip 5, 144 steps of 4 x 4096
// tokens, relations only).
#pragma once
#include <nlohmann/json.hpp>
#include <string>

namespace linearard::train {

inline constexpr const char* kDefaultRecipe = "restore";

// The recipe's option values; throws an OptionError of `recipe` for an unknown name.
const nlohmann::json& distill_recipe(const std::string& name);

// "restore (default): ...; paper: ..." for --help.
std::string recipe_help();

}  // namespace linearard::train
