// `linearard bench cpt`: one CPT training step (LM loss on a long block) of the LLaMA-2-7B shape
// with random weights, LoRA r 1024 on q/k/v, activation checkpointing and the chunked LM loss:
// tokens/s and peak GPU memory. Issue 4: context 32768 must fit one H100 (80 GB).
#include <ATen/ATen.h>

#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>

#include "bench/train_util.h"
#include "cli/command.h"
#include "train/optimizer.h"
#include "train/tasks.h"

namespace {

using namespace linearard;
namespace bt = cli::bench_train;

const bench::CptCase kCase;  // bench/case_grid.h

struct Flags {
  std::string shape = kCase.shape;
  int64_t context = kCase.context, batch = kCase.batch, rank = kCase.lora_rank, steps = kCase.steps,
          warmup = kCase.warmup;
  std::string json;
};

void run(const Flags& f) {
  if (!at::hasCUDA()) fail("bench cpt", "no CUDA device");
  const at::Device device(at::kCUDA, 0);
  const bt::Shape s = bt::shape(f.shape);
  train::TrainOptions o;
  o.command = "cpt";
  o.run.context = f.context;
  o.adapter.rank = f.rank;
  o.adapter.alpha = 2.0 * f.rank;
  const auto base = train::random_model(s.config, at::kBFloat16, device, 0, 0.02, /*fast=*/true);
  train::LmTask task(o, base, bt::pi_rope(s), train::make_adapter(o, s.config, device), at::kBFloat16);
  train::Optimizer optimizer(task.trainable(), o.optim);
  const at::Tensor tokens = at::randint(0, s.config.vocab_size, {f.batch, f.context},
                                        at::TensorOptions(at::kLong).device(device));  // (B, T)
  double fwd = 0, bwd = 0, opt = 0, total = 0, peak = 0;
  for (int64_t i = 0; i < f.warmup + f.steps; ++i) {
    bt::reset_peak();
    const auto t0 = std::chrono::steady_clock::now();
    optimizer.zero_grad();
    const train::LossParts parts = task.loss(tokens);
    const double a = bt::seconds_since(t0, device);
    parts.total.backward();
    const double b = bt::seconds_since(t0, device);
    optimizer.clip_grad_norm(5.0);
    optimizer.step(2e-5);
    const double c = bt::seconds_since(t0, device);
    if (i < f.warmup) continue;
    fwd += a / f.steps;
    bwd += (b - a) / f.steps;
    opt += (c - b) / f.steps;
    total += c / f.steps;
    peak = std::max(peak, bt::peak_gib());
  }
  const double tok_s = double(f.batch * f.context) / total;
  std::printf("cpt %s  T=%lld B=%lld LoRA r=%lld, checkpointing on\n", f.shape.c_str(), (long long)f.context,
              (long long)f.batch, (long long)f.rank);
  std::printf("  step %.3f s = forward %.3f + backward %.3f + optimizer %.3f; %.0f tokens/s; peak %.2f GiB\n", total,
              fwd, bwd, opt, tok_s, peak);
  if (!f.json.empty())
    std::ofstream(f.json) << nlohmann::json{{"shape", f.shape}, {"context", f.context}, {"batch", f.batch},
                                            {"rank", f.rank}, {"step_s", total}, {"forward_s", fwd},
                                            {"backward_s", bwd}, {"optimizer_s", opt}, {"tokens_per_s", tok_s},
                                            {"peak_gib", peak}}.dump(1)
                          << "\n";
}

cli::CommandRegistration bench_cpt_command(
    "cpt", "time one CPT training step at long context (random weights, GPU)",
    [](CLI::App& sub) {
      auto f = std::make_shared<Flags>();
      sub.add_option("--shape", f->shape, "7b or 8b")->capture_default_str();
      sub.add_option("--context", f->context, "T")->capture_default_str();
      sub.add_option("--batch-size", f->batch, "B")->capture_default_str();
      sub.add_option("--lora-rank", f->rank, "LoRA r (alpha = 2r)")->capture_default_str();
      sub.add_option("--steps", f->steps, "timed steps")->capture_default_str();
      sub.add_option("--warmup", f->warmup, "untimed steps first")->capture_default_str();
      sub.add_option("--json", f->json, "write the results as JSON here");
      sub.callback([f] { run(*f); });
    },
    "bench");

}  // namespace
