// Flags shared by `linearard distill`, `cpt` and `pretrain`: every flag can also come from a JSON
// config file (--config FILE, keys = flag names without the dashes), and the resolved options are
// printed back at start.
#pragma once
#include <ATen/ATen.h>

#include <CLI/CLI.hpp>

#include "train/distributed.h"
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
// --layers and --relations are parsed after CLI11 (see finish_objective_flags).
void add_objective_flags(CLI::App& sub, train::ObjectiveOptions& o, std::string& layers, std::string& relations);
void finish_objective_flags(train::ObjectiveOptions& o, const std::string& layers, const std::string& relations);

// "auto" -> cuda:0 when available, else cpu; "cpu"; "cuda" / "cuda:N".
at::Device resolve_device(const std::string& device);
// "" -> bf16 on CUDA, fp32 on CPU.
at::ScalarType resolve_dtype(const std::string& dtype, at::Device device);

// --nproc N (N > 1) in the launching process: runs N worker processes of this command
// (train::launch_local_workers), waits for them and returns true; false in a worker or when N = 1.
bool run_nproc_workers(int64_t nproc);

// This process's device (cuda:LOCAL_RANK under torchrun) and its process group (nullptr when
// the world size is 1).
struct ProcessSetup {
  at::Device device = at::kCPU;
  std::shared_ptr<train::ProcessGroup> group;
};
ProcessSetup setup_processes(const std::string& device_flag);

// Prints "options: {json}" to stdout (rank 0 only).
void print_options(const train::TrainOptions& o);

}  // namespace linearard::cli
