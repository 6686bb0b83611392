#include "train/trainer.h"

#include <ATen/core/grad_mode.h>
#include <c10/util/Exception.h>

#include <chrono>
#include <csignal>
#include <filesystem>
#include <optional>

#include "common/error.h"
#include "common/option_error.h"
#include "io/atomic_file.h"
#include "train/adapter_spec.h"
#include "train/device_sync.h"
#include "train/nonfinite.h"
#include "train/oom_report.h"
#include "train/optimizer.h"
#include "train/progress.h"
#include "train/stop_signals.h"
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

// "q loss", "loss", "gradient norm": the term nonfinite_term() names, for messages.
std::string nonfinite_description(const std::string& term) {
  if (term == "grad_norm") return "gradient norm";
  if (term == "loss") return "total loss";
  return term + " loss";
}

// FNV-1a 64 (its published offset basis and prime), for comparing options across ranks.
int64_t fnv1a(const std::string& text) {
  uint64_t h = 0xcbf29ce484222325ULL;
  for (unsigned char c : text) h = (h ^ c) * 0x100000001b3ULL;
  return int64_t(h);
}

// Ranks must run the same options from the same step; a difference names the flags that differ.
void check_ranks_agree(ProcessGroup& group, const TrainOptions& o, int64_t step) {
  std::vector<std::string> labels;
  std::vector<int64_t> values;
  const nlohmann::json options = to_json(o);  // items() must not outlive it
  for (const auto& [key, value] : options.items()) {
    labels.push_back("--" + key);
    values.push_back(fnv1a(value.dump()));
  }
  labels.push_back("the resume step");
  values.push_back(step);
  group.check_agreement("distributed options", labels, values);
}

// Skipped (non-finite) steps: in train_state.json, so a resumed run counts on.
struct NonfiniteCounts {
  int64_t total = 0, in_a_row = 0;
};

// A saved train_state.json "task" with its adapter in AdapterSpec's JSON form: checkpoints written
// before that form spell it {"kind": "lora" | "full", "r", "lora_alpha", "lora_dropout", ...} and
// must still resume. Pretraining's {"kind": "none"} has no spec.
nlohmann::json task_as_written_now(const nlohmann::json& saved, const std::string& dir) {
  nlohmann::json task = saved;
  if (!task.is_object() || !task.contains("adapter")) return task;
  const nlohmann::json& adapter = task["adapter"];
  if (adapter.is_object() && adapter.value("kind", nlohmann::json()) != "none")
    task["adapter"] = to_json(adapter_spec_from_json(adapter, dir + "/train_state.json task.adapter"));
  return task;
}

// Restores a checkpoint into the task's tensors, the optimiser, the sampler and the generators;
// returns the step it was taken after.
int64_t restore(const std::string& dir, const TrainOptions& o, TrainTask& task, Optimizer& optimizer,
                BlockSampler& sampler, at::Device device, int world_size, NonfiniteCounts& counts) {
  const LoadedCheckpoint ckpt = read_checkpoint(dir);
  const auto& s = ckpt.state;
  if (s.value("command", "") != o.command)
    fail(dir, "was written by '" + s.value("command", std::string("?")) + "', not '" + o.command + "'");
  if (s.value("version", 0) != kStateVersion) fail(dir, "unsupported train_state.json version");
  const int64_t saved_world = s.value("world_size", int64_t(1));
  if (saved_world != world_size)
    fail(dir, "was written by " + std::to_string(saved_world) + " processes; resume it with the same world size, not " +
                  std::to_string(world_size));
  // The data position counts blocks of one packing; the other numbers its blocks differently.
  const std::string saved_packing = s.value("packing", std::string("split"));
  if (saved_packing != o.run.packing)
    fail_option("packing", dir + " was written with --packing " + saved_packing + "; resume it with the same packing, not " +
                               o.run.packing);
  if (task_as_written_now(s["task"], dir) != task.describe())
    fail(dir, "adapter, model or RoPE differ from this run's options");
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
  counts.total = s.value("skipped_steps", int64_t(0));
  counts.in_a_row = s.value("nonfinite_in_a_row", int64_t(0));
  if (ckpt.optimizer.count("rng.cpu")) set_generator_state(at::kCPU, ckpt.optimizer.at("rng.cpu"));
  if (device.is_cuda() && ckpt.optimizer.count("rng.cuda"))
    set_generator_state(device, ckpt.optimizer.at("rng.cuda"));
  return s["step"].get<int64_t>();
}

}  // namespace

void seed_everything(uint64_t seed) { at::manual_seed(seed); }

// run_training without the out-of-memory translation; `step` is the step in progress.
static TrainResult train_loop(TrainTask& task, const TrainOptions& o, const TokenBlockSource& data, at::Device device,
                              int64_t stop_after, ProcessGroup* group, int64_t& step) {
  const int W = group ? group->world_size() : 1;
  const int rank = group ? group->rank() : 0;
  const bool main_rank = rank == 0;
  const std::string out = o.run.out_dir;
  const std::string checkpoints = out + "/checkpoints";
  if (main_rank) {
    fs::create_directories(out);
    recover_directories(out);  // a crash inside a checkpoint or final/ write (train_checkpoint.h)
    recover_directories(checkpoints);
    io::write_file_atomic(out + "/options.json", to_json(o).dump(1) + "\n");
  }
  if (group) group->barrier();  // the other ranks look for checkpoints after the clean-up
  const StopSignals signals;    // SIGINT / SIGTERM: stop after this step (stop_signals.h)
  const NonfiniteInjection inject = NonfiniteInjection::from_environment();
  apply_test_memory_limit(device);
  NonfiniteCounts nonfinite;

  BlockSampler sampler(data, o.run.seed, o.run.shuffle);
  Optimizer optimizer(task.trainable(), o.optim);
  seed_everything(o.run.seed);
  step = 0;
  std::string resume_dir = o.run.resume;
  if (resume_dir == "latest" || resume_dir == "auto") {
    resume_dir = latest_checkpoint(checkpoints);
    if (resume_dir.empty() && o.run.resume == "latest") fail_option("resume", "no checkpoint in " + checkpoints);
  }
  if (!resume_dir.empty()) step = restore(resume_dir, o, task, optimizer, sampler, device, W, nonfinite);
  if (group) {
    check_ranks_agree(*group, o, step);
    group->broadcast_from_rank0(task.trainable());  // identical starting weights whatever the init
    // Dropout: rank 0 keeps the single-process stream; the others get their own.
    if (rank > 0) seed_everything(o.run.seed ^ (0x9E3779B97F4A7C15ULL * uint64_t(rank)) ^ uint64_t(step));
  }
  std::optional<GradientReducer> reducer;
  if (group) reducer.emplace(*group, task.trainable());
  std::optional<ProgressLog> progress;
  if (main_rank) progress.emplace(out + "/metrics.jsonl", o.optim.steps, step);
  auto message = [&](const std::string& line) {
    if (progress) progress->message(line);
  };
  if (!resume_dir.empty()) message("resumed from " + resume_dir + " at step " + std::to_string(step));
  task.set_training(true);

  TrainResult result;
  const int64_t blocks_per_step = W * o.optim.grad_accum * o.run.batch_size;
  const int64_t tokens_per_step = blocks_per_step * data.block_length();
  bool first = true;
  auto state_json = [&](int64_t done) {
    nlohmann::json s;
    s["format"] = "linearard-train-checkpoint";
    s["version"] = kStateVersion;
    s["command"] = o.command;
    s["step"] = done;
    s["world_size"] = W;
    s["total_steps"] = o.optim.steps;
    s["data_position"] = sampler.position();
    if (o.run.packing != "split") s["packing"] = o.run.packing;  // data_position counts these blocks
    s["tokens_seen"] = done * tokens_per_step;
    s["task"] = task.describe();
    s["optimizer_steps"] = optimizer.state_scalars();
    s["skipped_steps"] = nonfinite.total;
    s["nonfinite_in_a_row"] = nonfinite.in_a_row;
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
    const int64_t step_start = sampler.position();
    for (int64_t micro = 0; micro < o.optim.grad_accum; ++micro) {
      sampler.set_position(step_start + (micro * W + rank) * o.run.batch_size);
      at::Tensor doc_ids;  // (B, T) packed blocks only
      const at::Tensor tokens = sampler.next_batch(o.run.batch_size, &doc_ids).to(device);  // (B, T)
      LossParts parts = doc_ids.defined() ? task.loss(tokens, doc_ids.to(device)) : task.loss(tokens);
      if (micro == 0 && !inject.empty()) inject.apply_to_loss(step + 1, rank, parts);
      if (reducer && micro == o.optim.grad_accum - 1) reducer->arm();  // all-reduce overlaps this backward
      (parts.total / double(o.optim.grad_accum)).backward();
      for (auto [acc, t] : {std::pair{&sum.total, &parts.total}, {&sum.q, &parts.q}, {&sum.k, &parts.k},
                            {&sum.v, &parts.v}, {&sum.logits, &parts.logits}, {&sum.lm, &parts.lm},
                            {&sum.hidden, &parts.hidden}})
        accumulate(*acc, *t);
    }
    sampler.set_position(step_start + blocks_per_step);
    std::vector<double> parts_sum;  // total, q, k, v, logits, lm, hidden: summed over micro-batches
    std::vector<bool> present;      // which parts the objective has
    for (const at::Tensor* t : {&sum.total, &sum.q, &sum.k, &sum.v, &sum.logits, &sum.lm, &sum.hidden}) {
      parts_sum.push_back(item_or_nan(*t));
      present.push_back(t->defined());
    }
    parts_sum.push_back(StopSignals::pending() != 0 ? 1.0 : 0.0);  // [7]: a rank wants to stop
    if (group) {
      reducer->finish();
      at::Tensor all = at::tensor(parts_sum, at::kDouble);
      group->all_reduce_sum(all);
      for (size_t i = 0; i < parts_sum.size(); ++i) parts_sum[i] = all[int64_t(i)].item<double>() / W;
    }
    if (!inject.empty()) inject.apply_to_grads(step + 1, rank, task.trainable());
    const double grad_norm = optimizer.clip_grad_norm(o.optim.clip_norm);
    // The parts and the norm are the same on every rank (all-reduced), and so is this decision.
    const std::string bad = nonfinite_term(parts_sum, present, grad_norm);
    if (bad.empty()) {
      optimizer.step(lr);
      nonfinite.in_a_row = 0;
    } else {  // skipped: weights and AdamW state stay; data position and schedule move on
      ++nonfinite.total;
      ++nonfinite.in_a_row;
    }
    const bool stop_requested = parts_sum[7] > 0;
    ++step;
    const double accum = double(o.optim.grad_accum);
    StepMetrics m;
    m.step = step;
    m.lr = lr;
    m.loss = parts_sum[0] / accum;
    m.q = parts_sum[1] / accum;
    m.k = parts_sum[2] / accum;
    m.v = parts_sum[3] / accum;
    m.logits = parts_sum[4] / accum;
    m.lm = parts_sum[5] / accum;
    m.hidden = parts_sum[6] / accum;
    m.grad_norm = grad_norm;
    m.nonfinite = bad;
    m.skipped_steps = nonfinite.total;
    m.tokens = tokens_per_step;
    device_sync(device);
    m.step_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (progress) progress->log(m);
    if (!bad.empty())
      message("step " + std::to_string(step) + ": non-finite " + nonfinite_description(bad) +
              "; optimizer step skipped (" + std::to_string(nonfinite.in_a_row) + " in a row, " +
              std::to_string(nonfinite.total) + " in total)");
    if (first) result.first_loss = m.loss;
    first = false;
    result.last_loss = m.loss;

    const bool periodic = o.run.checkpoint_every > 0 && step % o.run.checkpoint_every == 0;
    const bool too_many_nonfinite = o.run.max_nonfinite_steps > 0 && nonfinite.in_a_row >= o.run.max_nonfinite_steps;
    const bool stopping = step < o.optim.steps && (stop_requested || too_many_nonfinite);
    const std::string dir = checkpoint_dir_for(checkpoints, step);
    if (main_rank && (periodic || step == o.optim.steps || stopping)) {
      CheckpointContents c{task.trainable(), optimizer.state_tensors(), state_json(step)};
      c.optimizer.emplace_back("rng.cpu", generator_state(at::kCPU));
      if (device.is_cuda()) c.optimizer.emplace_back("rng.cuda", generator_state(device));
      write_checkpoint(dir, c);
      prune_checkpoints(checkpoints, o.run.keep_checkpoints);
      message("checkpoint " + dir);
    }
    if (stopping) {
      if (progress) progress->finish();
      if (group) group->barrier();  // rank 0's checkpoint is on disk before any rank exits
      if (too_many_nonfinite)
        fail("step " + std::to_string(step),
             "non-finite " + nonfinite_description(bad) + " in " + std::to_string(nonfinite.in_a_row) +
                 " steps in a row (--max-nonfinite-steps " + std::to_string(o.run.max_nonfinite_steps) +
                 "); stopped with the last good weights in " + dir + " (lower --lr or check the data)");
      const int signo = StopSignals::pending() != 0 ? StopSignals::pending() : SIGTERM;
      message("interrupted by " + signal_name(signo) + " after step " + std::to_string(step) + " of " +
              std::to_string(o.optim.steps) + ": checkpoint in " + dir +
              "; to continue, run the same command with --resume auto");
      if (group) exit_interrupted(signo);
      throw Interrupted(signo);  // unwinds as the non-finite stop above does; the caller ends the process
    }
    if (stop_after > 0 && step >= stop_after && step < o.optim.steps) {
      if (progress) progress->finish();
      result.steps_done = step;
      return result;
    }
  }
  if (progress) progress->finish();
  task.set_training(false);
  result.steps_done = step;
  result.final_dir = out + "/final";
  if (main_rank) task.write_final(result.final_dir, state_json(step));
  message("final result in " + result.final_dir);
  if (group) group->barrier();  // every rank returns once the result is on disk
  return result;
}

TrainResult run_training(TrainTask& task, const TrainOptions& o, const TokenBlockSource& data, at::Device device,
                         int64_t stop_after, ProcessGroup* group) {
  int64_t step = 0;
  try {
    return train_loop(task, o, data, device, stop_after, group, step);
  } catch (const c10::OutOfMemoryError& e) {
    int64_t trainable = 0;
    for (const auto& [name, t] : task.trainable()) trainable += t.numel();
    const model::ModelConfig& config = task.model_config();
    const auto estimate = estimate_training_memory(config, o, task.compute_dtype(), trainable);
    OomFacts facts = parse_oom_text(e.what_without_backtrace());
    add_allocator_facts(facts, device);
    fail(device.str(), oom_message(facts, estimate, o, config.num_hidden_layers, step + 1));
  }
}

}  // namespace linearard::train
