#include "train/trainer.h"

#include <ATen/core/grad_mode.h>

#include <chrono>
#include <filesystem>

#include "common/error.h"
#include "io/atomic_file.h"
#include "train/device_sync.h"
#include "train/optimizer.h"
#include "train/progress.h"
#include "train/train_checkpoint.h"

namespace linearard::train {
namespace {

namespace fs = std::filesystem;

constexpr int kStateVersion = 1;

at::Tensor generator_state(at::Device device) {
  auto gen = at::globalContext().defaultGenerator(device);
  std::lock_guard<std::mutex> lock(gen.mutex());
  return gen.get_state();
}

void set_generator_state(at::Device device, const at::Tensor& state) {
  auto gen = at::globalContext().defaultGenerator(device);
  std::lock_guard<std::mutex> lock(gen.mutex());
  gen.set_state(state);
}

double item_or_nan(const at::Tensor& t) { return t.defined() ? t.item<double>() : NAN; }

// Restores a checkpoint into the task's tensors, the optimiser, the sampler and the generators;
// returns the step it was taken after.
int64_t restore(const std::string& dir, const TrainOptions& o, TrainTask& task, Optimizer& optimizer,
                BlockSampler& sampler, at::Device device) {
  const LoadedCheckpoint ckpt = read_checkpoint(dir);
  const auto& s = ckpt.state;
  if (s.value("command", "") != o.command)
    fail(dir, "was written by '" + s.value("command", std::string("?")) + "', not '" + o.command + "'");
  if (s.value("version", 0) != kStateVersion) fail(dir, "unsupported train_state.json version");
  if (s["task"] != task.describe()) fail(dir, "adapter, model or RoPE differ from this run's options");
  {
    at::NoGradGuard no_grad;
    for (const auto& [name, t] : task.trainable()) {
      auto it = ckpt.trainable.find(name);
      if (it == ckpt.trainable.end()) fail(dir, "trainable tensor '" + name + "' is missing");
      if (it->second.sizes() != t.sizes()) fail(dir, "trainable tensor '" + name + "' has another shape");
      t.detach().copy_(it->second);
    }
  }
  optimizer.load_state(ckpt.optimizer, s["optimizer_steps"], dir);
  sampler.set_position(s["data_position"].get<int64_t>());
  if (ckpt.optimizer.count("rng.cpu")) set_generator_state(at::kCPU, ckpt.optimizer.at("rng.cpu"));
  if (device.is_cuda() && ckpt.optimizer.count("rng.cuda"))
    set_generator_state(device, ckpt.optimizer.at("rng.cuda"));
  return s["step"].get<int64_t>();
}

}  // namespace

void seed_everything(uint64_t seed) { at::manual_seed(seed); }

TrainResult run_training(TrainTask& task, const TrainOptions& o, const TokenBlockSource& data, at::Device device,
                         int64_t stop_after) {
  const std::string out = o.run.out_dir;
  const std::string checkpoints = out + "/checkpoints";
  fs::create_directories(out);
  io::write_file_atomic(out + "/options.json", to_json(o).dump(1) + "\n");

  BlockSampler sampler(data, o.run.seed, o.run.shuffle);
  Optimizer optimizer(task.trainable(), o.optim);
  seed_everything(o.run.seed);
  int64_t step = 0;
  std::string resume_dir = o.run.resume;
  if (resume_dir == "latest" || resume_dir == "auto") {
    resume_dir = latest_checkpoint(checkpoints);
    if (resume_dir.empty() && o.run.resume == "latest") fail("--resume", "no checkpoint in " + checkpoints);
  }
  if (!resume_dir.empty()) step = restore(resume_dir, o, task, optimizer, sampler, device);
  ProgressLog progress(out + "/metrics.jsonl", o.optim.steps, step);
  if (!resume_dir.empty()) progress.message("resumed from " + resume_dir + " at step " + std::to_string(step));
  task.set_training(true);

  TrainResult result;
  const int64_t tokens_per_step = o.optim.grad_accum * o.run.batch_size * data.block_length();
  bool first = true;
  auto state_json = [&](int64_t done) {
    nlohmann::json s;
    s["format"] = "linearard-train-checkpoint";
    s["version"] = kStateVersion;
    s["command"] = o.command;
    s["step"] = done;
    s["total_steps"] = o.optim.steps;
    s["data_position"] = sampler.position();
    s["tokens_seen"] = done * tokens_per_step;
    s["task"] = task.describe();
    s["optimizer_steps"] = optimizer.state_scalars();
    s["options"] = to_json(o);
    return s;
  };
  while (step < o.optim.steps) {
    const auto t0 = std::chrono::steady_clock::now();
    const double lr = scheduled_lr(o.optim, step);
    optimizer.zero_grad();
    LossParts sum;
    auto accumulate = [](at::Tensor& acc, const at::Tensor& t) {
      if (t.defined()) acc = acc.defined() ? acc + t.detach() : t.detach();
    };
    for (int64_t micro = 0; micro < o.optim.grad_accum; ++micro) {
      const at::Tensor tokens = sampler.next_batch(o.run.batch_size).to(device);  // (B, T)
      LossParts parts = task.loss(tokens);
      (parts.total / double(o.optim.grad_accum)).backward();
      for (auto [acc, t] : {std::pair{&sum.total, &parts.total}, {&sum.q, &parts.q}, {&sum.k, &parts.k},
                            {&sum.v, &parts.v}, {&sum.logits, &parts.logits}, {&sum.lm, &parts.lm}})
        accumulate(*acc, *t);
    }
    const double grad_norm = optimizer.clip_grad_norm(o.optim.clip_norm);
    optimizer.step(lr);
    ++step;
    const double accum = double(o.optim.grad_accum);
    StepMetrics m;
    m.step = step;
    m.lr = lr;
    m.loss = sum.total.item<double>() / accum;
    m.q = item_or_nan(sum.q) / accum;
    m.k = item_or_nan(sum.k) / accum;
    m.v = item_or_nan(sum.v) / accum;
    m.logits = item_or_nan(sum.logits) / accum;
    m.lm = item_or_nan(sum.lm) / accum;
    m.grad_norm = grad_norm;
    m.tokens = tokens_per_step;
    device_sync(device);
    m.step_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    progress.log(m);
    if (first) result.first_loss = m.loss;
    first = false;
    result.last_loss = m.loss;

    const bool periodic = o.run.checkpoint_every > 0 && step % o.run.checkpoint_every == 0;
    if (periodic || step == o.optim.steps) {
      CheckpointContents c{task.trainable(), optimizer.state_tensors(), state_json(step)};
      c.optimizer.emplace_back("rng.cpu", generator_state(at::kCPU));
      if (device.is_cuda()) c.optimizer.emplace_back("rng.cuda", generator_state(device));
      const std::string dir = checkpoint_dir_for(checkpoints, step);
      write_checkpoint(dir, c);
      prune_checkpoints(checkpoints, o.run.keep_checkpoints);
      progress.message("checkpoint " + dir);
    }
    if (stop_after > 0 && step >= stop_after && step < o.optim.steps) {
      progress.finish();
      result.steps_done = step;
      return result;
    }
  }
  progress.finish();
  task.set_training(false);
  result.steps_done = step;
  result.final_dir = out + "/final";
  task.write_final(result.final_dir, state_json(step));
  progress.message("final result in " + result.final_dir);
  return result;
}

}  // namespace linearard::train
