// Plain option structs of the trainers (distill, cpt, pretrain): what train::run (train/run.h) takes.
// The CLI fills them from flags or a JSON config; to_json() prints them back and is stored with
// every checkpoint. Each option's name is its --config key (the flag without the dashes): the keys
// of to_json(), and the name an OptionError (common/option_error.h) gives a bad value.
#pragma once
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "train/adapter_spec.h"

namespace linearard::train {

// Defaults are the reference ARD run (LinearARD's released training scripts, github.com/gracefulning/LinearARD).
struct OptimOptions {
  int64_t steps = 144;
  double lr = 2e-5;
  int64_t warmup_steps = 4;   // linear warm-up; step 0 runs at lr 0
  double min_lr_ratio = 0.9;  // cosine ends at lr * min_lr_ratio
  double beta1 = 0.9, beta2 = 0.999, eps = 1e-8;  // torch AdamW defaults
  double weight_decay = 0.01;
  int64_t grad_accum = 2;
  double clip_norm = 5.0;  // <= 0 disables clipping
};

struct ObjectiveOptions {
  std::vector<int64_t> layers;  // empty = all layers
  bool relation_q = true, relation_k = true, relation_v = true;
  double weight_q = 1.0, weight_k = 1.0, weight_v = 1.0;
  // query-heads: every relation's row-KL sum / (valid tokens x H) -- the reference (§1.2), which
  // down-weights K/K and V/V by Hk/H on GQA models. kv-heads: K/K and V/V divide by Hk instead.
  std::string kv_normalization = "query-heads";
  double logits_kl_weight = 0.0;  // KL(teacher || student) of the logits, reference weight 0
  int64_t logits_kl_last = 512;   // on the last k positions (reference logits_to_keep = 512); 0 = all
  // 1 - cos of each selected layer's output, as LongReD's short-text distillation (arXiv 2502.07365).
  double hidden_weight = 0.0;
  double temperature = 1.0;       // logits only; no T^2 factor (reference)
  double lm_weight = 0.0;         // next-token cross-entropy of the student
};

struct RunOptions {
  std::string model_dir;              // distill, cpt: the base checkpoint
  std::string rope_scaling;           // the student's RoPE (JSON or a file); empty = checkpoint's
  std::vector<std::string> data;      // token files (see data_source.h)
  std::string out_dir;
  int64_t batch_size = 1;
  int64_t context = 4096;  // T
  uint64_t seed = 0;
  bool shuffle = true;     // block order: seeded permutation per epoch, else file order
  // How documents become blocks (train/data_source.h): "split" (each document cut into blocks, tails
  // dropped; the reference) or "packed" (documents concatenated, blocks carry document ids).
  std::string packing = "split";
  int64_t checkpoint_every = 64;
  int64_t keep_checkpoints = 2;
  std::string resume;      // "", "latest" or a checkpoint directory
  std::string dtype;       // "" = bf16 on CUDA, fp32 on CPU
  std::string device = "auto";
  bool activation_checkpointing = true;
  int64_t lm_chunk_tokens = 0;  // rows per chunk of the LM loss, 0 = about 256 MiB of logits
  // Non-finite steps in a row after which the run stops with a checkpoint (0: never stop; each
  // such step is skipped either way). 5: a transient spike passes, a diverged run stops early.
  int64_t max_nonfinite_steps = 5;
  // --nproc: data-parallel worker processes on this node (train/distributed.h). Not part of
  // to_json(): the run's result does not depend on how the global batch is split.
  int64_t nproc = 1;
  // Start afresh in a non-empty out_dir (io/output_guard.h: prepare_training_out). Not part of
  // to_json() either.
  bool overwrite = false;
};

// pretrain: the architecture of the new model, a config.json (arch-config) or a LLaMA of this
// shape. Small-model defaults (GPT-style recipes): not from the paper.
struct ArchitectureOptions {
  std::string arch_config;
  int64_t hidden_size = 256, intermediate_size = 688, num_layers = 4, num_heads = 4, num_kv_heads = 4;
  int64_t vocab_size = 32000, max_positions = 2048;
  double rope_theta = 10000.0;
};

struct TrainOptions {
  std::string command;  // distill, cpt or pretrain
  RunOptions run;
  OptimOptions optim;
  AdapterSpec adapter;  // its flags: --train-qkv (kind), --lora-rank, --lora-alpha, --lora-dropout, --lora-targets
  ObjectiveOptions objective;
  ArchitectureOptions arch;     // pretrain: what to build
  nlohmann::json architecture;  // pretrain: the config.json it builds (set by train::run)
};

// The options of a job (distill, cpt or pretrain) before any is given: distill's are the reference
// ARD run's (the struct defaults), cpt trains on long blocks, pretrain a small model.
TrainOptions default_options(const std::string& command);

nlohmann::json to_json(const TrainOptions& o);

// Checks ranges and enumerations; throws an OptionError naming the option.
void validate(const TrainOptions& o);

// "all" (or "") -> every layer (an empty list); "0,1,5" -> those layers. For the `layers` option.
std::vector<int64_t> parse_layers(const std::string& text);
// A subset of "q,k,v" ("none" or "": no relation) -> the relation switches of `o`.
void parse_relations(const std::string& text, ObjectiveOptions& o);

}  // namespace linearard::train
