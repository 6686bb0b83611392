// `linearard pretrain`: LM training of a LLaMA-shaped model from random initialisation (all weights
// trained, float32 master weights). Writes a HF checkpoint directory (config.json +
// model.safetensors) in <out>/final. The run itself is train::run (train/run.h).
#include "cli/command.h"
#include "cli/overwrite_flag.h"
#include "cli/train_flags.h"
#include "train/run.h"

namespace {

using namespace linearard;

cli::CommandRegistration pretrain_command(
    "pretrain", "LM training from random initialisation; writes a HF checkpoint", [](CLI::App& sub) {
      auto o = std::make_shared<train::TrainOptions>(train::default_options("pretrain"));
      train::ArchitectureOptions& a = o->arch;
      auto config_path = std::make_shared<std::string>();
      cli::add_config_flag(sub, *config_path);
      cli::add_run_flags(sub, *o, /*needs_model=*/false);
      cli::add_optim_flags(sub, o->optim);
      sub.add_option("--arch-config", a.arch_config, "HF config.json giving the architecture");
      sub.add_option("--hidden-size", a.hidden_size, "hidden size C")->capture_default_str();
      sub.add_option("--intermediate-size", a.intermediate_size, "FFN size F")->capture_default_str();
      sub.add_option("--num-layers", a.num_layers, "decoder layers")->capture_default_str();
      sub.add_option("--num-heads", a.num_heads, "query heads H")->capture_default_str();
      sub.add_option("--num-kv-heads", a.num_kv_heads, "key/value heads Hk")->capture_default_str();
      sub.add_option("--vocab-size", a.vocab_size, "vocabulary size V")->capture_default_str();
      sub.add_option("--max-positions", a.max_positions, "max_position_embeddings")->capture_default_str();
      sub.add_option("--rope-theta", a.rope_theta, "RoPE base")->capture_default_str();
      cli::add_overwrite_flag(sub, o->run.overwrite, cli::kTrainingOverwriteHelp);
      CLI::App* app = &sub;
      sub.callback([o, config_path, app] {
        cli::apply_config(*app, *config_path);
        train::run(*o);
      });
    });

}  // namespace
