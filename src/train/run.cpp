#include "train/run.h"

#include <ATen/ATen.h>

#include <cstdio>
#include <fstream>
#include <memory>

#include "common/error.h"
#include "common/option_error.h"
#include "io/model_path.h"
#include "io/output_guard.h"
#include "model/llama.h"
#include "model/model_config.h"
#include "train/data_source.h"
#include "train/process_setup.h"
#include "train/random_model.h"
#include "train/tasks.h"

namespace linearard::train {
namespace {

bool is_pretrain(const TrainOptions& o) { return o.command == "pretrain"; }

// pretrain's config.json: the arch-config file, or a LLaMA of the given shape; float32 master
// weights are saved as trained.
nlohmann::json architecture_json(const ArchitectureOptions& a) {
  nlohmann::json arch;
  if (!a.arch_config.empty()) {
    std::ifstream in(a.arch_config);
    if (!in) fail_option("arch-config", "cannot open " + a.arch_config);
    try {
      arch = nlohmann::json::parse(in);
    } catch (const nlohmann::json::exception& e) {
      fail(a.arch_config, std::string("invalid JSON: ") + e.what());
    }
  } else {
    if (a.num_heads < 1 || a.hidden_size % a.num_heads != 0) fail_option("num-heads", "must divide --hidden-size");
    arch = llama_config_json(a.hidden_size, a.intermediate_size, a.num_layers, a.num_heads, a.num_kv_heads,
                             a.vocab_size, a.max_positions, a.rope_theta);
  }
  arch["torch_dtype"] = "float32";
  return arch;
}

model::ModelConfig parse_architecture(const nlohmann::json& arch) {
  return parse_option("arch-config", [&](const std::string& where) { return model::parse_model_config(arch.dump(), where); });
}

// The student's RoPE: the rope-scaling option over the checkpoint's (distill requires it).
model::RopeParams student_rope(const TrainOptions& o, const model::ModelConfig& config) {
  if (o.run.rope_scaling.empty()) return config.rope;
  return parse_option("rope-scaling", [&](const std::string& where) {
    return model::parse_rope_override(o.run.rope_scaling, config, where);
  });
}

// The base checkpoint in the compute dtype, or (pretrain) a new model whose float32 weights all train.
model::DecoderModel load_model(const TrainOptions& o, const model::ModelConfig& config, at::ScalarType dtype,
                               at::Device device) {
  if (!is_pretrain(o)) return model::DecoderModel::load(o.run.model_dir, dtype, device);
  auto m = random_model(config, at::kFloat, device, o.run.seed);
  for (auto& [name, t] : hf_named_weights(m.weights(), config)) t.set_requires_grad(true);
  return m;
}

std::unique_ptr<TrainTask> make_task(const TrainOptions& o, const model::DecoderModel& m, const model::RopeParams& rope,
                                     at::ScalarType dtype, at::Device device) {
  if (o.command == "distill") return std::make_unique<DistillTask>(o, m, rope, make_adapter(o, m.config(), device));
  if (o.command == "cpt") return std::make_unique<LmTask>(o, m, rope, make_adapter(o, m.config(), device), dtype);
  return std::make_unique<LmTask>(o, m, rope, nullptr, dtype);
}

// What the run trains, printed before the first step.
void print_setup(const TrainOptions& o, const TrainTask& task, const model::DecoderModel& m,
                 const model::RopeParams& rope, at::ScalarType dtype, at::Device device, const TokenBlockSource& data) {
  const std::string on = std::string(c10::toString(dtype)) + " on " + device.str();
  if (o.command == "distill") {
    int64_t trainable = 0;
    for (const auto& [name, t] : task.trainable()) trainable += t.numel();
    std::printf("teacher: %s, student: %s, %s\n", model::describe_rope(m.config().rope).c_str(),
                model::describe_rope(rope).c_str(), on.c_str());
    std::printf("trainable: %lld parameters (%s)\n", static_cast<long long>(trainable), o.adapter.kind.c_str());
  } else if (o.command == "cpt") {
    std::printf("student: %s, %s\n", model::describe_rope(rope).c_str(), on.c_str());
  } else {
    std::printf("model: %lld parameters, compute %s\n", static_cast<long long>(m.parameter_count()), on.c_str());
  }
  std::printf("data: %s\n", data.describe().c_str());
  std::fflush(stdout);
}

void print_done(const TrainOptions& o, const TrainResult& r) {
  const char* loss = o.command == "distill" ? "loss" : "LM loss";
  const char* what = is_pretrain(o) ? "model" : "adapter";
  std::printf("done: %lld steps, %s %.6g -> %.6g, %s in %s\n", static_cast<long long>(r.steps_done), loss, r.first_loss,
              r.last_loss, what, r.final_dir.c_str());
}

}  // namespace

RunResult run(TrainOptions o) {
  validate(o);
  if (o.command == "distill" && o.run.rope_scaling.empty())
    fail_option("rope-scaling", "is required (the student's scaled RoPE)");
  if (is_pretrain(o) && !o.run.rope_scaling.empty())
    fail_option("rope-scaling", "pretrain takes its RoPE from the architecture (rope-theta, arch-config)");
  model::ModelConfig config;
  if (is_pretrain(o)) {
    config = parse_architecture(architecture_json(o.arch));
    o.architecture = config.raw;
  }
  // Workers of nproc were checked by their launcher; other torchrun ranks leave it to rank 0.
  if (!launched_by_nproc() && is_main_process()) {
    std::vector<io::GuardedInput> inputs;
    if (!is_pretrain(o)) inputs.push_back({"--model", o.run.model_dir});
    io::prepare_training_out({"out", o.run.out_dir, o.run.overwrite, inputs}, o.run.resume);
  }
  if (!is_pretrain(o)) o.run.model_dir = io::resolve_model_path(o.run.model_dir);  // a .gguf file -> its imported directory
  RunResult result;
  result.out_dir = o.run.out_dir;
  if (run_nproc_workers(o.run.nproc)) {
    result.ran_workers = true;
    return result;
  }
  const ProcessSetup processes = setup_processes(o.run.device);
  const at::Device device = processes.device;
  const bool main_rank = is_main_process();
  const at::ScalarType dtype = resolve_dtype(o.run.dtype, device);
  if (!is_pretrain(o)) config = model::load_model_config(o.run.model_dir);
  const model::RopeParams rope = student_rope(o, config);
  const auto data = open_token_files(o.run.data, o.run.context, is_pretrain(o) ? "" : o.run.model_dir,
                                     config.vocab_size, o.run.packing == "packed");
  if (main_rank) {
    std::printf("options: %s\n", to_json(o).dump().c_str());
    std::fflush(stdout);
  }
  const model::DecoderModel m = load_model(o, config, dtype, device);
  const auto task = make_task(o, m, rope, dtype, device);
  if (main_rank) print_setup(o, *task, m, rope, dtype, device, *data);
  result.training = run_training(*task, o, *data, device, 0, processes.group.get());
  if (main_rank) print_done(o, result.training);
  return result;
}

}  // namespace linearard::train
