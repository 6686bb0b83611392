#include "train/train_flags.h"

#include <algorithm>
#include <fstream>

#include "common/error.h"
#include "common/option_error.h"
#include "common/option_layers.h"
#include "train/recipes.h"

namespace linearard::train {
namespace {

// --config FILE: a JSON object whose keys are the option names; a nested object (e.g.
// "rope-scaling") is passed as its JSON text.
FlatOptions read_json_config(const std::string& path) {
  std::ifstream in(path);
  if (!in) fail("--config", "cannot open " + path);
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(in);
  } catch (const nlohmann::json::exception& e) {
    fail(path, std::string("invalid JSON: ") + e.what());
  }
  return flatten_options(j, path);
}

// The recipe's values (train/recipes.h) below the given values and --config.
void apply_recipe(CLI::App& app, const std::string& recipe) {
  FlatOptions items = flatten_options(distill_recipe(recipe), "--recipe " + recipe);
  // A recipe's LoRA targets belong to its LoRA adapter: when the given values or --config ask for
  // full deltas (q/k/v only), the targets are left at their default rather than refused.
  const CLI::Option* kind = app.get_option("--train-qkv");
  if (kind->count() > 0 && kind->as<std::string>() == "full")
    items.erase(std::remove_if(items.begin(), items.end(), [](const auto& item) { return item.first == "lora-targets"; }),
                items.end());
  apply_option_layer(app, items, "--recipe " + recipe);
}

void add_run_flags(CLI::App& sub, TrainOptions& o, bool needs_model) {
  RunOptions& r = o.run;
  if (needs_model) {
    sub.add_option("--model", r.model_dir, "base HF checkpoint directory or .gguf file");
    sub.add_option("--rope-scaling", r.rope_scaling,
                   "the student's RoPE scaling: JSON (v4 rope_scaling or v5 rope_parameters) or a JSON file");
  }
  sub.add_option("--data", r.data, "token files: .bin (int32 ids) or .json (list of ids or list of lists)");
  sub.add_option("--out", r.out_dir, "output directory (metrics, checkpoints, final/)");
  sub.add_option("--batch-size", r.batch_size, "blocks per micro-batch")->capture_default_str();
  sub.add_option("--context", r.context, "tokens per block (T)")->capture_default_str();
  sub.add_option("--seed", r.seed, "seed of the adapter init, data order and dropout")->capture_default_str();
  sub.add_flag("--shuffle,!--no-shuffle", r.shuffle, "seeded block order per epoch (default on)");
  sub.add_option("--packing", r.packing,
                 "split: each document cut into blocks of --context tokens, tails dropped (the reference); "
                 "packed: documents concatenated into blocks, attention, RoPE positions and losses kept within "
                 "each document")
      ->capture_default_str();
  sub.add_option("--checkpoint-every", r.checkpoint_every, "steps between checkpoints (0: only at the end)")
      ->capture_default_str();
  sub.add_option("--keep-checkpoints", r.keep_checkpoints, "checkpoints kept")->capture_default_str();
  sub.add_option("--resume", r.resume, "checkpoint dir, 'latest' (must exist) or 'auto' (if one exists)");
  sub.add_option("--dtype", r.dtype, "compute dtype bf16|fp16|fp32 (default bf16 on CUDA, fp32 on CPU)");
  sub.add_option("--device", r.device, "auto, cpu, cuda or cuda:N")->capture_default_str();
  sub.add_flag("--activation-checkpointing,!--no-activation-checkpointing", r.activation_checkpointing,
               "recompute each student layer in backward (default on)");
  sub.add_option("--lm-chunk-tokens", r.lm_chunk_tokens, "rows per LM-loss chunk (0: ~256 MiB of logits)")
      ->capture_default_str();
  sub.add_option("--max-nonfinite-steps", r.max_nonfinite_steps,
                 "stop (with a checkpoint) after this many non-finite steps in a row; each is skipped (0: never stop)")
      ->capture_default_str();
  sub.add_option("--nproc", r.nproc,
                 "data-parallel processes on this node (like torchrun --nproc-per-node); "
                 "the global batch is nproc x grad-accum x batch-size")
      ->capture_default_str();
}

void add_optim_flags(CLI::App& sub, OptimOptions& o) {
  sub.add_option("--steps", o.steps, "optimizer steps")->capture_default_str();
  sub.add_option("--lr", o.lr, "peak learning rate (distill: --recipe sets it unless given)")->capture_default_str();
  sub.add_option("--warmup-steps", o.warmup_steps, "linear warm-up steps (step 0 at lr 0) (distill: --recipe sets it unless given)")->capture_default_str();
  sub.add_option("--min-lr-ratio", o.min_lr_ratio, "cosine floor as a fraction of --lr (distill: --recipe sets it unless given)")->capture_default_str();
  sub.add_option_function<std::vector<double>>(
         "--betas", [&o](const std::vector<double>& b) {
           if (b.size() != 2) fail_option("betas", "expected two values, e.g. 0.9,0.999");
           o.beta1 = b[0];
           o.beta2 = b[1];
         }, "AdamW betas, e.g. 0.9,0.999")
      ->delimiter(',')
      ->expected(1, 2);
  sub.add_option("--weight-decay", o.weight_decay, "AdamW weight decay")->capture_default_str();
  sub.add_option("--grad-accum", o.grad_accum, "micro-batches per optimizer step")->capture_default_str();
  sub.add_option("--clip-norm", o.clip_norm, "global gradient-norm clip (<= 0: off)")->capture_default_str();
}

void add_adapter_flags(CLI::App& sub, AdapterSpec& o) {
  sub.add_option("--train-qkv", o.kind, "lora or full (float32 deltas of the q/k/v weights)")->capture_default_str();
  sub.add_option("--lora-rank", o.rank, "LoRA r")->capture_default_str();
  sub.add_option("--lora-alpha", o.alpha, "LoRA alpha (scaling alpha / r)")->capture_default_str();
  sub.add_option("--lora-dropout", o.dropout, "dropout on the LoRA input (distill: --recipe sets it unless given)")->capture_default_str();
  sub.add_option_function<std::vector<std::string>>(
      "--lora-targets", [&o](const std::vector<std::string>& items) { o.targets = parse_lora_targets(items); },
      "LoRA modules: comma list of q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj (or q,k,v,o,gate,up,down), "
      "or all (default q_proj,k_proj,v_proj)");
}

void add_objective_flags(CLI::App& sub, ObjectiveOptions& o, std::string& layers, std::string& relations) {
  sub.add_option("--layers", layers, "layers to align: 'all' or a list like 0,1,5")->capture_default_str();
  sub.add_option("--relations", relations, "relations to align, a subset of q,k,v")->capture_default_str();
  sub.add_option("--weight-q", o.weight_q, "weight of the Q/Q term")->capture_default_str();
  sub.add_option("--weight-k", o.weight_k, "weight of the K/K term")->capture_default_str();
  sub.add_option("--weight-v", o.weight_v, "weight of the V/V term")->capture_default_str();
  sub.add_option("--kv-normalization", o.kv_normalization,
                 "query-heads (reference: K/V divided by valid tokens x H) or kv-heads (x Hk)")
      ->capture_default_str();
  sub.add_option("--logits-kl-weight", o.logits_kl_weight, "weight of the logits KL (distill: --recipe sets it unless given)")->capture_default_str();
  sub.add_option("--logits-kl-last", o.logits_kl_last, "logits KL on the last k positions (0: all) (distill: --recipe sets it unless given)")
      ->capture_default_str();
  sub.add_option("--hidden-weight", o.hidden_weight,
                 "weight of 1 - cos(student, teacher) of each aligned layer's output (LongReD)")
      ->capture_default_str();
  sub.add_option("--temperature", o.temperature, "logits KL temperature (no T^2)")->capture_default_str();
  sub.add_option("--lm-weight", o.lm_weight, "weight of the student's LM cross-entropy")->capture_default_str();
}

void finish_objective_flags(ObjectiveOptions& o, const std::string& layers, const std::string& relations) {
  o.layers = parse_layers(layers);
  parse_relations(relations, o);
}


constexpr const char* kOverwriteHelp =
    "start afresh in a non-empty --out (deletes the earlier run's options.json, metrics.jsonl, checkpoints/, final/)";

void add_architecture_flags(CLI::App& sub, ArchitectureOptions& a) {
  sub.add_option("--arch-config", a.arch_config, "HF config.json giving the architecture");
  sub.add_option("--hidden-size", a.hidden_size, "hidden size C")->capture_default_str();
  sub.add_option("--intermediate-size", a.intermediate_size, "FFN size F")->capture_default_str();
  sub.add_option("--num-layers", a.num_layers, "decoder layers")->capture_default_str();
  sub.add_option("--num-heads", a.num_heads, "query heads H")->capture_default_str();
  sub.add_option("--num-kv-heads", a.num_kv_heads, "key/value heads Hk")->capture_default_str();
  sub.add_option("--vocab-size", a.vocab_size, "vocabulary size V")->capture_default_str();
  sub.add_option("--max-positions", a.max_positions, "max_position_embeddings")->capture_default_str();
  sub.add_option("--rope-theta", a.rope_theta, "RoPE base")->capture_default_str();
}

}  // namespace

void add_train_flags(CLI::App& sub, TrainFlags& flags) {
  TrainOptions& o = flags.options;
  const bool distill = o.command == "distill", pretrain = o.command == "pretrain";
  sub.add_option("--config", flags.config, "JSON file with any of these options (keys = flag names without --)");
  if (distill) {
    if (flags.recipe.empty()) flags.recipe = kDefaultRecipe;
    sub.add_option("--recipe", flags.recipe, recipe_help())->capture_default_str();
  }
  add_run_flags(sub, o, /*needs_model=*/!pretrain);
  add_optim_flags(sub, o.optim);
  if (!pretrain) add_adapter_flags(sub, o.adapter);
  if (distill) add_objective_flags(sub, o.objective, flags.layers, flags.relations);
  if (pretrain) add_architecture_flags(sub, o.arch);
  sub.add_flag("--overwrite", o.run.overwrite, kOverwriteHelp);
}

TrainOptions train_options(const std::string& command, const nlohmann::json& given) {
  TrainFlags flags(command);
  CLI::App app("", command);
  add_train_flags(app, flags);
  set_given_options(app, given);
  if (!flags.config.empty()) apply_option_layer(app, read_json_config(flags.config), flags.config);
  if (command == "distill") {
    apply_recipe(app, flags.recipe);
    finish_objective_flags(flags.options.objective, flags.layers, flags.relations);
  }
  return flags.options;
}

nlohmann::json describe_train_options(const std::string& command) {
  TrainFlags flags(command);
  CLI::App app("", command);
  add_train_flags(app, flags);
  return describe_options(app);
}

}  // namespace linearard::train
