// `linearard distill`: attention-restore distillation. Teacher = the checkpoint with its native
// RoPE, student = the same weights with --rope-scaling and trainable q/k/v adapters; the loss aligns
// the Q/Q, K/K and V/V relation distributions of the selected layers (train/objective.h).
#include <ATen/ATen.h>

#include <cstdio>

#include "cli/command.h"
#include "cli/output_guard.h"
#include "cli/train_flags.h"
#include "common/error.h"
#include "io/model_path.h"
#include "model/llama.h"
#include "train/recipes.h"
#include "train/tasks.h"
#include "train/trainer.h"

namespace {

using namespace linearard;

struct DistillFlags {
  train::TrainOptions options;
  std::string layers = "all", relations = "q,k,v";
  bool overwrite = false;
};

void run_distill(DistillFlags& f) {
  train::TrainOptions& o = f.options;
  cli::finish_objective_flags(o.objective, f.layers, f.relations);
  train::validate(o);
  if (o.run.rope_scaling.empty()) fail("--rope-scaling", "is required (the student's scaled RoPE)");
  cli::prepare_training_out({"--out", o.run.out_dir, f.overwrite, {{"--model", o.run.model_dir}}}, o.run.resume);
  o.run.model_dir = io::resolve_model_path(o.run.model_dir);  // a .gguf file -> its imported directory
  if (cli::run_nproc_workers(o.run.nproc)) return;
  const cli::ProcessSetup processes = cli::setup_processes(o.run.device);
  const at::Device device = processes.device;
  const bool main_rank = train::is_main_process();
  const at::ScalarType dtype = cli::resolve_dtype(o.run.dtype, device);
  const model::ModelConfig config = model::load_model_config(o.run.model_dir);
  const model::RopeParams rope = model::parse_rope_override(o.run.rope_scaling, config, "--rope-scaling");
  const auto data = train::open_token_files(o.run.data, o.run.context, o.run.model_dir, config.vocab_size);
  cli::print_options(o);
  const auto base = model::DecoderModel::load(o.run.model_dir, dtype, device);
  train::DistillTask task(o, base, rope, train::make_adapter(o, base.config(), device));
  int64_t trainable = 0;
  for (const auto& [name, t] : task.trainable()) trainable += t.numel();
  if (main_rank)
    std::printf("teacher: %s, student: %s, %s on %s\n", model::describe_rope(base.config().rope).c_str(),
                model::describe_rope(rope).c_str(), c10::toString(dtype), device.str().c_str());
  if (main_rank)
    std::printf("trainable: %lld parameters (%s)\ndata: %s\n", static_cast<long long>(trainable),
                o.adapter.kind.c_str(), data->describe().c_str());
  std::fflush(stdout);
  const auto result = train::run_training(task, o, *data, device, 0, processes.group.get());
  if (main_rank)
    std::printf("done: %lld steps, loss %.6g -> %.6g, adapter in %s\n", static_cast<long long>(result.steps_done),
                result.first_loss, result.last_loss, result.final_dir.c_str());
}

cli::CommandRegistration distill_command(
    "distill", "attention-restore distillation of a RoPE-scaled student from its native-RoPE teacher",
    [](CLI::App& sub) {
      auto flags = std::make_shared<DistillFlags>();
      flags->options.command = "distill";
      auto config_path = std::make_shared<std::string>();
      auto recipe = std::make_shared<std::string>(train::kDefaultRecipe);
      cli::add_config_flag(sub, *config_path);
      cli::add_recipe_flag(sub, *recipe);
      cli::add_run_flags(sub, flags->options, /*needs_model=*/true);
      cli::add_optim_flags(sub, flags->options.optim);
      cli::add_adapter_flags(sub, flags->options.adapter);
      cli::add_objective_flags(sub, flags->options.objective, flags->layers, flags->relations);
      cli::add_overwrite_flag(sub, flags->overwrite, cli::kTrainingOverwriteHelp);
      CLI::App* app = &sub;
      sub.callback([flags, config_path, recipe, app] {
        cli::apply_config(*app, *config_path);
        cli::apply_recipe(*app, *recipe);
        run_distill(*flags);
      });
    });

}  // namespace
