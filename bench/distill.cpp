// `linearard bench distill`: one ARD training step at the paper's setting (random weights of the
// LLaMA-2-7B / LLaMA-3-8B shape, context 4096, batch 1, LoRA r 1024 on q/k/v of every layer, Q/K/V
// relations of all layers): tokens/s, the step split into phases and peak GPU memory.
// Phases: teacher forward | student forward (+ relation-KL forward, interleaved per layer) |
// backward (relation-KL backward + student recompute/backward) | clip + AdamW. The relation KL is
// also timed alone (forward + backward on tensors of the captured shapes) so the student's own
// share can be read off. Targets (issue 4): >= 4000 tok/s and <= 36 GB on one H100 for 7b.
// Data parallel (issue 8, 10): under torchrun or with --nproc N every rank runs the same step on
// its own batch, the LoRA gradients are averaged with the trainer's GradientReducer (all-reduce
// overlapped with the backward), and rank 0 reports tokens/s over all ranks (W B T / step time),
// the communication left exposed after the backward, and every rank's peak memory.
// Byte model of the exposed part: a ring all-reduce moves 2 (W-1)/W x the fp32 gradient bytes per
// GPU (7b: 805M LoRA parameters = 3.2 GB; bench/flop_model.h). Case: bench/case_grid.h (DistillCase).
#include <ATen/ATen.h>

#include <algorithm>
#include <cstdio>
#include <optional>
#include <fstream>
#include <nlohmann/json.hpp>

#include "bench/train_util.h"
#include "cli/command.h"
#include "train/process_setup.h"
#include "ops/relation_kl/relation_kl.h"
#include "train/optimizer.h"
#include "train/tasks.h"

namespace {

using namespace linearard;
namespace bt = cli::bench_train;

const bench::DistillCase kCase;  // bench/case_grid.h

struct Flags {
  std::vector<std::string> shapes = kCase.shapes;
  int64_t context = kCase.context, batch = kCase.batch, rank = kCase.lora_rank, steps = kCase.steps,
          warmup = kCase.warmup, nproc = 1;
  int64_t docs = 0;  // > 0: packed blocks of this many equal documents (issue 18), 0: the plain block
  bool checkpointing = true;
  std::string train_qkv = "lora", json;
};

// Relation-KL forward + backward of all layers and relations, alone (seconds per step).
double time_relation_kl(const model::ModelConfig& c, int64_t B, int64_t T, at::Device device) {
  auto opts = at::TensorOptions(at::kBFloat16).device(device);
  ops::RelationKLOptions kl;
  kl.scale_s = kl.scale_t = 1.0 / std::sqrt(double(c.head_dim));
  auto run = [&] {
    for (int64_t heads : {c.num_attention_heads, c.num_key_value_heads, c.num_key_value_heads}) {
      at::Tensor x = at::randn({B, heads, T, c.head_dim}, opts).requires_grad_(true);  // (B, H, T, D)
      at::Tensor y = at::randn({B, heads, T, c.head_dim}, opts);
      for (int64_t l = 0; l < c.num_hidden_layers; ++l) ops::relation_kl_self(x, y, std::nullopt, kl).sum().backward();
    }
  };
  run();
  const auto t0 = std::chrono::steady_clock::now();
  run();
  return bt::seconds_since(t0, device);
}

nlohmann::json bench_shape(const std::string& name, const Flags& f, at::Device device, train::ProcessGroup* group) {
  const int W = group ? group->world_size() : 1;
  const bool main_rank = group == nullptr || group->rank() == 0;
  const bt::Shape s = bt::shape(name);
  train::TrainOptions o;
  o.command = "distill";
  o.run.context = f.context;
  o.run.activation_checkpointing = f.checkpointing;
  o.adapter.kind = f.train_qkv;
  o.adapter.rank = f.rank;
  o.adapter.alpha = 2.0 * f.rank;
  const auto base = train::random_model(s.config, at::kBFloat16, device, 0, 0.02, /*fast=*/true);
  bt::empty_cache();
  train::DistillTask task(o, base, bt::pi_rope(s), train::make_adapter(o, s.config, device));
  train::Optimizer optimizer(task.trainable(), o.optim);
  std::optional<train::GradientReducer> reducer;
  if (group) reducer.emplace(*group, task.trainable());
  int64_t trainable = 0;
  for (const auto& [n, t] : task.trainable()) trainable += t.numel();
  const at::Tensor tokens = at::randint(0, s.config.vocab_size, {f.batch, f.context},
                                        at::TensorOptions(at::kLong).device(device));  // (B, T)
  std::optional<at::Tensor> doc_ids;  // (B, T) int32: document t * docs / T
  if (f.docs > 0)
    doc_ids = (at::arange(f.context, at::TensorOptions(at::kLong).device(device)) * f.docs / f.context)
                  .to(at::kInt).expand({f.batch, f.context}).contiguous();
  task.enable_timings(true);
  double teacher = 0, student = 0, backward = 0, exposed_comm = 0, optim = 0, total = 0, peak = 0;
  for (int64_t i = 0; i < f.warmup + f.steps; ++i) {
    bt::reset_peak();
    const auto t0 = std::chrono::steady_clock::now();
    optimizer.zero_grad();
    const train::LossParts parts = task.loss(tokens, doc_ids);
    auto t1 = std::chrono::steady_clock::now();
    if (reducer) reducer->arm();
    parts.total.backward();
    const double bwd = bt::seconds_since(t1, device);
    t1 = std::chrono::steady_clock::now();
    if (reducer) reducer->finish();
    const double comm = bt::seconds_since(t1, device);
    t1 = std::chrono::steady_clock::now();
    optimizer.clip_grad_norm(5.0);
    optimizer.step(2e-5);
    const double opt = bt::seconds_since(t1, device);
    const double step = bt::seconds_since(t0, device);
    if (i < f.warmup) continue;
    teacher += task.timings().teacher / f.steps;
    student += task.timings().student_forward / f.steps;
    backward += bwd / f.steps;
    exposed_comm += comm / f.steps;
    optim += opt / f.steps;
    total += step / f.steps;
    peak = std::max(peak, bt::peak_gib());
  }
  const double kl = time_relation_kl(s.config, f.batch, f.context, device);
  // Every rank's peak (GiB), gathered by a sum over one-hot slots.
  at::Tensor peaks = at::zeros({W}, at::kDouble);  // (W,)
  peaks[group ? group->rank() : 0] = peak;
  if (group) group->all_reduce_sum(peaks);
  std::vector<double> peak_per_rank(peaks.data_ptr<double>(), peaks.data_ptr<double>() + W);
  peak = *std::max_element(peak_per_rank.begin(), peak_per_rank.end());
  const double tok_s = double(W * f.batch * f.context) / total;
  if (!main_rank) return {};
  std::printf("%s  T=%lld B=%lld per GPU, %d GPU(s), %s r=%lld (%.0fM trainable), checkpointing %s%s\n", name.c_str(),
              (long long)f.context, (long long)f.batch, W, f.train_qkv.c_str(), (long long)f.rank, trainable / 1e6,
              f.checkpointing ? "on" : "off",
              f.docs > 0 ? (", packed: " + std::to_string(f.docs) + " documents a block").c_str() : "");
  std::printf("  step %.3f s  = teacher fwd %.3f + student fwd (+KL fwd) %.3f + backward %.3f + exposed all-reduce "
              "%.3f + optimizer %.3f\n",
              total, teacher, student, backward, exposed_comm, optim);
  if (reducer)
    std::printf("  gradient buckets: %lld, started during the backward: %lld\n", (long long)reducer->bucket_count(),
                (long long)reducer->buckets_started_in_backward());
  std::printf("  relation KL alone (fwd+bwd, 3 relations x %lld layers): %.3f s\n",
              (long long)s.config.num_hidden_layers, kl);
  std::printf("  %.0f tokens/s over %d GPU(s), peak GPU memory %.2f GiB (%.2f GB) on the fullest GPU\n", tok_s, W,
              peak, peak * 1.073741824);
  std::fflush(stdout);
  return {{"shape", name}, {"context", f.context}, {"batch", f.batch}, {"docs", f.docs}, {"train_qkv", f.train_qkv},
          {"rank", f.rank}, {"trainable", trainable}, {"world_size", W}, {"exposed_allreduce_s", exposed_comm},
          {"peak_gib_per_gpu", peak_per_rank}, {"checkpointing", f.checkpointing},
          {"step_s", total}, {"teacher_fwd_s", teacher}, {"student_fwd_s", student}, {"backward_s", backward},
          {"optimizer_s", optim}, {"relation_kl_alone_s", kl}, {"tokens_per_s", tok_s}, {"peak_gib", peak}};
}

void run(const Flags& f) {
  if (!at::hasCUDA()) fail("bench distill", "no CUDA device");
  if (train::run_nproc_workers(f.nproc)) return;
  const train::ProcessSetup setup = train::setup_processes("cuda");
  const at::Device device = setup.device;
  const bool main_rank = setup.group == nullptr || setup.group->rank() == 0;
  nlohmann::json all = nlohmann::json::array();
  for (const auto& name : f.shapes) {
    try {
      nlohmann::json r = bench_shape(name, f, device, setup.group.get());
      if (main_rank) all.push_back(std::move(r));
    } catch (const c10::OutOfMemoryError& e) {
      if (setup.group) throw;  // the other ranks would wait forever in the next collective
      std::printf("%s: out of GPU memory\n", name.c_str());
      all.push_back({{"shape", name}, {"oom", true}});
    }
    bt::empty_cache();
  }
  if (main_rank && !f.json.empty()) std::ofstream(f.json) << all.dump(1) << "\n";
}

cli::CommandRegistration bench_distill_command(
    "distill", "time one distillation training step (random weights, GPU)",
    [](CLI::App& sub) {
      auto f = std::make_shared<Flags>();
      sub.add_option("--shape", f->shapes, "7b and/or 8b")->delimiter(',')->capture_default_str();
      sub.add_option("--context", f->context, "T")->capture_default_str();
      sub.add_option("--batch-size", f->batch, "B")->capture_default_str();
      sub.add_option("--lora-rank", f->rank, "LoRA r (alpha = 2r)")->capture_default_str();
      sub.add_option("--train-qkv", f->train_qkv, "lora or full")->capture_default_str();
      sub.add_option("--steps", f->steps, "timed steps")->capture_default_str();
      sub.add_option("--docs", f->docs,
                     "packed blocks of N equal documents (--packing packed: document-masked attention, RoPE and "
                     "relation KL); 0: the plain block")
          ->capture_default_str();
      sub.add_option("--warmup", f->warmup, "untimed steps first")->capture_default_str();
      sub.add_option("--nproc", f->nproc, "data-parallel processes, one per GPU (or start it with torchrun)")
          ->capture_default_str();
      sub.add_flag("!--no-activation-checkpointing", f->checkpointing, "keep all student activations");
      sub.add_option("--json", f->json, "write the results as JSON here");
      sub.callback([f] { run(*f); });
    },
    "bench");

}  // namespace
