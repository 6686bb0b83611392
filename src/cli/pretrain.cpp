// `linearard pretrain`: LM training of a LLaMA-shaped model from random initialisation (all weights
// trained, float32 master weights). Writes a HF checkpoint directory (config.json +
// model.safetensors) in <out>/final.
#include <ATen/ATen.h>

#include <cstdio>
#include <fstream>

#include "cli/command.h"
#include "cli/output_guard.h"
#include "cli/train_flags.h"
#include "common/error.h"
#include "model/model_config.h"
#include "train/random_model.h"
#include "train/tasks.h"
#include "train/trainer.h"

namespace {

using namespace linearard;

struct PretrainFlags {
  train::TrainOptions options;
  std::string arch_config;  // a config.json instead of the shape flags
  int64_t hidden = 256, intermediate = 688, layers = 4, heads = 4, kv_heads = 4, vocab = 32000;
  int64_t max_positions = 2048;
  double rope_theta = 10000.0;
  bool overwrite = false;
};

void run_pretrain(PretrainFlags& f) {
  train::TrainOptions& o = f.options;
  train::validate(o);
  nlohmann::json arch;
  if (!f.arch_config.empty()) {
    std::ifstream in(f.arch_config);
    if (!in) fail("--arch-config", "cannot open " + f.arch_config);
    try {
      arch = nlohmann::json::parse(in);
    } catch (const nlohmann::json::exception& e) {
      fail(f.arch_config, std::string("invalid JSON: ") + e.what());
    }
  } else {
    if (f.heads < 1 || f.hidden % f.heads != 0) fail("--num-heads", "must divide --hidden-size");
    arch = train::llama_config_json(f.hidden, f.intermediate, f.layers, f.heads, f.kv_heads, f.vocab,
                                    f.max_positions, f.rope_theta);
  }
  arch["torch_dtype"] = "float32";  // master weights are saved as trained
  const model::ModelConfig config = model::parse_model_config(arch.dump(), "--arch-config");
  o.architecture = config.raw;
  cli::prepare_training_out({"--out", o.run.out_dir, f.overwrite, {}}, o.run.resume);
  if (cli::run_nproc_workers(o.run.nproc)) return;
  const cli::ProcessSetup processes = cli::setup_processes(o.run.device);
  const at::Device device = processes.device;
  const bool main_rank = train::is_main_process();
  const at::ScalarType dtype = cli::resolve_dtype(o.run.dtype, device);
  const auto data = train::open_token_files(o.run.data, o.run.context, "", config.vocab_size);
  cli::print_options(o);
  auto m = train::random_model(config, at::kFloat, device, o.run.seed);
  for (auto& [name, t] : train::hf_named_weights(m.weights(), config)) t.set_requires_grad(true);
  train::LmTask task(o, m, config.rope, nullptr, dtype);
  if (main_rank)
    std::printf("model: %lld parameters, compute %s on %s\ndata: %s\n", static_cast<long long>(m.parameter_count()),
                c10::toString(dtype), device.str().c_str(), data->describe().c_str());
  std::fflush(stdout);
  const auto result = train::run_training(task, o, *data, device, 0, processes.group.get());
  if (main_rank)
    std::printf("done: %lld steps, LM loss %.6g -> %.6g, model in %s\n", static_cast<long long>(result.steps_done),
                result.first_loss, result.last_loss, result.final_dir.c_str());
}

cli::CommandRegistration pretrain_command(
    "pretrain", "LM training from random initialisation; writes a HF checkpoint", [](CLI::App& sub) {
      auto f = std::make_shared<PretrainFlags>();
      train::TrainOptions& o = f->options;
      o.command = "pretrain";
      // Small-model defaults (GPT-style recipes): not from the paper.
      o.run.context = 1024;
      o.optim = {1000, 3e-4, 100, 0.1, 0.9, 0.95, 1e-8, 0.1, 1, 1.0};
      auto config_path = std::make_shared<std::string>();
      cli::add_config_flag(sub, *config_path);
      cli::add_run_flags(sub, o, /*needs_model=*/false);
      cli::add_optim_flags(sub, o.optim);
      sub.add_option("--arch-config", f->arch_config, "HF config.json giving the architecture");
      sub.add_option("--hidden-size", f->hidden, "hidden size C")->capture_default_str();
      sub.add_option("--intermediate-size", f->intermediate, "FFN size F")->capture_default_str();
      sub.add_option("--num-layers", f->layers, "decoder layers")->capture_default_str();
      sub.add_option("--num-heads", f->heads, "query heads H")->capture_default_str();
      sub.add_option("--num-kv-heads", f->kv_heads, "key/value heads Hk")->capture_default_str();
      sub.add_option("--vocab-size", f->vocab, "vocabulary size V")->capture_default_str();
      sub.add_option("--max-positions", f->max_positions, "max_position_embeddings")->capture_default_str();
      sub.add_option("--rope-theta", f->rope_theta, "RoPE base")->capture_default_str();
      cli::add_overwrite_flag(sub, f->overwrite, cli::kTrainingOverwriteHelp);
      CLI::App* app = &sub;
      sub.callback([f, config_path, app] {
        cli::apply_config(*app, *config_path);
        run_pretrain(*f);
      });
    });

}  // namespace
