// `linearard cpt`: continued pre-training of the RoPE-scaled student on long blocks: LM loss of the
// base weights + --rope-scaling + trainable q/k/v adapters (LinearARD's stage 3, arXiv 2604.00004).
#include <ATen/ATen.h>

#include <cstdio>

#include "cli/command.h"
#include "cli/output_guard.h"
#include "cli/train_flags.h"
#include "common/error.h"
#include "io/model_path.h"
#include "model/llama.h"
#include "train/tasks.h"
#include "train/trainer.h"

namespace {

using namespace linearard;

struct CptFlags {
  train::TrainOptions options;
  bool overwrite = false;
};

void run_cpt(CptFlags& f) {
  train::TrainOptions& o = f.options;
  train::validate(o);
  cli::prepare_training_out({"--out", o.run.out_dir, f.overwrite, {{"--model", o.run.model_dir}}}, o.run.resume);
  o.run.model_dir = io::resolve_model_path(o.run.model_dir);  // a .gguf file -> its imported directory
  if (cli::run_nproc_workers(o.run.nproc)) return;
  const cli::ProcessSetup processes = cli::setup_processes(o.run.device);
  const at::Device device = processes.device;
  const bool main_rank = train::is_main_process();
  const at::ScalarType dtype = cli::resolve_dtype(o.run.dtype, device);
  const model::ModelConfig config = model::load_model_config(o.run.model_dir);
  model::RopeParams rope = config.rope;
  if (!o.run.rope_scaling.empty()) rope = model::parse_rope_override(o.run.rope_scaling, config, "--rope-scaling");
  const auto data = train::open_token_files(o.run.data, o.run.context, o.run.model_dir, config.vocab_size);
  cli::print_options(o);
  const auto base = model::DecoderModel::load(o.run.model_dir, dtype, device);
  train::LmTask task(o, base, rope, train::make_adapter(o, base.config(), device), dtype);
  if (main_rank)
    std::printf("student: %s, %s on %s\ndata: %s\n", model::describe_rope(rope).c_str(), c10::toString(dtype),
                device.str().c_str(), data->describe().c_str());
  std::fflush(stdout);
  const auto result = train::run_training(task, o, *data, device, 0, processes.group.get());
  if (main_rank)
    std::printf("done: %lld steps, LM loss %.6g -> %.6g, adapter in %s\n", static_cast<long long>(result.steps_done),
                result.first_loss, result.last_loss, result.final_dir.c_str());
}

cli::CommandRegistration cpt_command(
    "cpt", "continued pre-training (LM loss) of the RoPE-scaled student with q/k/v adapters", [](CLI::App& sub) {
      auto f = std::make_shared<CptFlags>();
      train::TrainOptions& o = f->options;
      o.command = "cpt";
      o.run.context = 32768;  // long blocks: the scaled window of LLaMA-2 x8 (LinearARD, arXiv 2604.00004)
      auto config_path = std::make_shared<std::string>();
      cli::add_config_flag(sub, *config_path);
      cli::add_run_flags(sub, o, /*needs_model=*/true);
      cli::add_optim_flags(sub, o.optim);
      cli::add_adapter_flags(sub, o.adapter);
      cli::add_overwrite_flag(sub, f->overwrite, cli::kTrainingOverwriteHelp);
      CLI::App* app = &sub;
      sub.callback([f, config_path, app] {
        cli::apply_config(*app, *config_path);
        run_cpt(*f);
      });
    });

}  // namespace
