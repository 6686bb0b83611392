#include "train/train_options.h"

#include <sstream>

#include "common/error.h"
#include "common/option_error.h"

namespace linearard::train {
namespace {

std::string joined(const std::vector<std::string>& items) {
  std::string out;
  for (const auto& s : items) out += (out.empty() ? "" : ",") + s;
  return out;
}

}  // namespace

TrainOptions default_options(const std::string& command) {
  TrainOptions o;
  o.command = command;
  if (command == "cpt") {
    o.run.context = 32768;  // long blocks: the scaled window of LLaMA-2 x8 (LinearARD, arXiv 2604.00004)
  } else if (command == "pretrain") {
    // Small-model defaults (GPT-style recipes): not from the paper.
    o.run.context = 1024;
    o.optim = {1000, 3e-4, 100, 0.1, 0.9, 0.95, 1e-8, 0.1, 1, 1.0};
  } else if (command != "distill") {
    fail_option("command", "expected distill, cpt or pretrain, got '" + command + "'");
  }
  return o;
}

nlohmann::json to_json(const TrainOptions& o) {
  nlohmann::json j;
  j["command"] = o.command;
  const RunOptions& r = o.run;
  j["model"] = r.model_dir;
  j["rope-scaling"] = r.rope_scaling;
  j["data"] = r.data;
  j["out"] = r.out_dir;
  j["batch-size"] = r.batch_size;
  j["context"] = r.context;
  j["seed"] = r.seed;
  j["shuffle"] = r.shuffle;
  if (r.packing != "split") j["packing"] = r.packing;  // absent for the default: older runs' options hash
  j["checkpoint-every"] = r.checkpoint_every;
  j["keep-checkpoints"] = r.keep_checkpoints;
  j["resume"] = r.resume;
  j["dtype"] = r.dtype;
  j["device"] = r.device;
  j["activation-checkpointing"] = r.activation_checkpointing;
  j["lm-chunk-tokens"] = r.lm_chunk_tokens;
  j["max-nonfinite-steps"] = r.max_nonfinite_steps;
  const OptimOptions& p = o.optim;
  j["steps"] = p.steps;
  j["lr"] = p.lr;
  j["warmup-steps"] = p.warmup_steps;
  j["min-lr-ratio"] = p.min_lr_ratio;
  j["betas"] = {p.beta1, p.beta2};
  j["eps"] = p.eps;
  j["weight-decay"] = p.weight_decay;
  j["grad-accum"] = p.grad_accum;
  j["clip-norm"] = p.clip_norm;
  if (o.command != "pretrain") {
    j["train-qkv"] = o.adapter.kind;
    j["lora-rank"] = o.adapter.rank;
    j["lora-alpha"] = o.adapter.alpha;
    j["lora-dropout"] = o.adapter.dropout;
    // absent for the default: older runs' options hash
    if (o.adapter.targets != default_adapter_targets()) j["lora-targets"] = joined(o.adapter.targets);
  }
  if (o.command == "distill") {
    const ObjectiveOptions& b = o.objective;
    j["layers"] = b.layers;
    std::string rel;
    for (auto [on, name] : {std::pair{b.relation_q, "q"}, {b.relation_k, "k"}, {b.relation_v, "v"}})
      if (on) rel += std::string(rel.empty() ? "" : ",") + name;
    j["relations"] = rel;
    j["weight-q"] = b.weight_q;
    j["weight-k"] = b.weight_k;
    j["weight-v"] = b.weight_v;
    j["kv-normalization"] = b.kv_normalization;
    j["logits-kl-weight"] = b.logits_kl_weight;
    j["logits-kl-last"] = b.logits_kl_last;
    j["temperature"] = b.temperature;
    j["lm-weight"] = b.lm_weight;
    if (b.hidden_weight != 0) j["hidden-weight"] = b.hidden_weight;  // absent: older runs' options hash
  }
  if (!o.architecture.is_null()) j["architecture"] = o.architecture;
  return j;
}

void validate(const TrainOptions& o) {
  const RunOptions& r = o.run;
  const OptimOptions& p = o.optim;
  if (r.out_dir.empty()) fail_option("out", "is required");
  if (r.data.empty()) fail_option("data", "at least one token file is required");
  if (r.batch_size < 1) fail_option("batch-size", "must be >= 1");
  if (r.context < 2) fail_option("context", "must be >= 2");
  if (r.packing != "split" && r.packing != "packed")
    fail_option("packing", "expected split or packed, got '" + r.packing + "'");
  if (r.checkpoint_every < 0) fail_option("checkpoint-every", "must be >= 0 (0 = only at the end)");
  if (r.keep_checkpoints < 1) fail_option("keep-checkpoints", "must be >= 1");
  if (!r.dtype.empty() && r.dtype != "bf16" && r.dtype != "fp16" && r.dtype != "fp32")
    fail_option("dtype", "expected bf16, fp16 or fp32, got '" + r.dtype + "'");
  if (r.lm_chunk_tokens < 0) fail_option("lm-chunk-tokens", "must be >= 0");
  if (r.max_nonfinite_steps < 0) fail_option("max-nonfinite-steps", "must be >= 0 (0 = never stop)");
  if (p.steps < 1) fail_option("steps", "must be >= 1");
  if (!(p.lr >= 0)) fail_option("lr", "must be >= 0");
  if (p.warmup_steps < 0) fail_option("warmup-steps", "must be >= 0");
  if (!(p.min_lr_ratio >= 0 && p.min_lr_ratio <= 1)) fail_option("min-lr-ratio", "must be in [0, 1]");
  if (!(p.beta1 >= 0 && p.beta1 < 1 && p.beta2 >= 0 && p.beta2 < 1)) fail_option("betas", "must be in [0, 1)");
  if (!(p.weight_decay >= 0)) fail_option("weight-decay", "must be >= 0");
  if (p.grad_accum < 1) fail_option("grad-accum", "must be >= 1");
  if (o.command != "pretrain") {
    const AdapterSpec& a = o.adapter;
    if (a.kind != "lora" && a.kind != "full") fail_option("train-qkv", "expected lora or full, got '" + a.kind + "'");
    if (a.kind == "lora" && a.rank < 1) fail_option("lora-rank", "must be >= 1");
    if (!(a.dropout >= 0 && a.dropout < 1)) fail_option("lora-dropout", "must be in [0, 1)");
    if (parse_lora_targets(a.targets) != a.targets)
      fail_option("lora-targets", "'" + joined(a.targets) + "' is not in canonical form (parse_lora_targets)");
    if (a.kind == "full" && a.targets != default_adapter_targets())
      fail_option("lora-targets", "'" + joined(a.targets) +
                                 "' needs --train-qkv lora (--train-qkv full trains q_proj, k_proj, v_proj only)");
    if (r.model_dir.empty()) fail_option("model", "is required");
  }
  if (o.command == "distill") {
    const ObjectiveOptions& b = o.objective;
    if (b.kv_normalization != "query-heads" && b.kv_normalization != "kv-heads")
      fail_option("kv-normalization", "expected query-heads or kv-heads, got '" + b.kv_normalization + "'");
    if (!(b.temperature > 0)) fail_option("temperature", "must be > 0");
    if (b.logits_kl_last < 0) fail_option("logits-kl-last", "must be >= 0 (0 = all positions)");
    if (!(b.hidden_weight >= 0)) fail_option("hidden-weight", "must be >= 0");
    const bool any_relation = b.relation_q || b.relation_k || b.relation_v;
    if (!any_relation && b.logits_kl_weight == 0 && b.lm_weight == 0 && b.hidden_weight == 0)
      fail_option("relations", "no loss term left: give relations or a logits/LM/hidden weight");
  }
}

std::vector<int64_t> parse_layers(const std::string& text) {
  std::vector<int64_t> layers;
  if (text == "all" || text.empty()) return layers;
  std::stringstream s(text);
  std::string item;
  while (std::getline(s, item, ',')) {
    try {
      size_t used = 0;
      layers.push_back(std::stoll(item, &used));
      if (used != item.size()) throw std::invalid_argument(item);
    } catch (const std::exception&) {
      fail_option("layers", "expected 'all' or comma-separated layer numbers, got '" + text + "'");
    }
  }
  return layers;
}

void parse_relations(const std::string& text, ObjectiveOptions& o) {
  o.relation_q = o.relation_k = o.relation_v = false;
  std::stringstream s(text);
  std::string item;
  while (std::getline(s, item, ',')) {
    if (item == "q") o.relation_q = true;
    else if (item == "k") o.relation_k = true;
    else if (item == "v") o.relation_v = true;
    else if (!item.empty() && item != "none") fail_option("relations", "expected a subset of q,k,v, got '" + text + "'");
  }
}

}  // namespace linearard::train
