#include "train/tasks.h"

#include <ATen/core/grad_mode.h>

#include <chrono>
#include <filesystem>

#include "common/error.h"
#include "io/atomic_file.h"
#include "io/checkpoint.h"
#include "model/attention.h"
#include "model/projection.h"
#include "train/device_sync.h"
#include "train/lm_loss.h"
#include "train/adapter_checkpoint.h"
#include "train/random_model.h"
#include "train/train_checkpoint.h"

namespace linearard::train {
namespace {

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// adapter.json next to trainable.safetensors, so `linearard export --checkpoint DIR` reads the
// trainer's own file (format: train/adapter_checkpoint.h). Written inside the atomic final/ directory.
std::string adapter_manifest(const TrainOptions& options, const model::RopeParams& student_rope) {
  // An absolute base path, so the checkpoint can be exported from any working directory.
  const std::string base = std::filesystem::absolute(options.run.model_dir).lexically_normal().string();
  return adapter_checkpoint_json(options.adapter, base, student_rope, "trainable.safetensors").dump(1) + "\n";
}

}  // namespace

std::unique_ptr<TrainableAdapter> make_adapter(const TrainOptions& o, const model::ModelConfig& config,
                                               at::Device device) {
  if (o.adapter.kind == "full") return std::make_unique<FullQkvAdapter>(config, device);
  return std::make_unique<LoraAdapter>(config, o.adapter, o.run.seed, device);
}

// ---------------------------------------------------------------------------------------------

DistillTask::DistillTask(const TrainOptions& options, const model::DecoderModel& model,
                         model::RopeParams student_rope, std::unique_ptr<TrainableAdapter> adapter)
    : options_(options),
      model_(model),
      student_rope_(std::move(student_rope)),
      adapter_(std::move(adapter)),
      stack_(model.config(), model.weights(), adapter_.get(), model.dtype(), options.run.activation_checkpointing),
      objective_(options.objective, model.config()) {}

const model::RopeTables& DistillTask::tables(bool student, int64_t T) {
  if (T != tables_T_) {
    teacher_tables_ = model_.rope_tables_for(model_.config().rope, T);
    student_tables_ = model_.rope_tables_for(student_rope_, T);
    tables_T_ = T;
  }
  return student ? student_tables_ : teacher_tables_;
}

LossParts DistillTask::loss(const at::Tensor& tokens, const std::optional<at::Tensor>& doc_ids) {
  const int64_t B = tokens.size(0), T = tokens.size(1);
  const bool captures = objective_.needs_captures();
  const bool hidden = objective_.needs_hidden();
  const std::vector<int64_t> layers = captures ? objective_.layers() : std::vector<int64_t>{};
  // Layer outputs (the hidden-state term) exist only where the forward runs through the layer.
  const auto stop = hidden || objective_.needs_layer_hidden() ? model::ForwardStop::kHidden
                                                              : model::ForwardStop::kLastCapture;
  auto t0 = std::chrono::steady_clock::now();

  // Packed blocks: per-document positions, so tables per batch (B, 1, T, D).
  std::optional<model::RopeTables> packed_teacher, packed_student;
  if (doc_ids) {
    packed_teacher = model::document_rope_tables(model_.config(), model_.config().rope, *doc_ids, model_.dtype());
    packed_student = model::document_rope_tables(model_.config(), student_rope_, *doc_ids, model_.dtype());
  }
  model::ForwardResult teacher;
  {
    at::NoGradGuard no_grad;
    model::ForwardRequest request;
    request.rope = doc_ids ? &*packed_teacher : &tables(false, T);
    request.doc_ids = doc_ids;
    request.capture_layers = layers;
    request.stop = stop;
    teacher = model_.forward(tokens, request);
  }
  if (timings_on_) {
    device_sync(tokens.device());
    timings_.teacher = seconds_since(t0);
    t0 = std::chrono::steady_clock::now();
  }

  objective_.begin(double(B * T), doc_ids);  // training blocks carry no padding
  StackRequest request;
  request.rope = doc_ids ? &*packed_student : &tables(true, T);
  request.doc_ids = doc_ids;
  request.capture_layers = layers;
  request.stop = stop;
  size_t next = 0;
  request.on_capture = [&](const model::LayerCapture& s) {
    const model::LayerCapture& t = teacher.captures.at(next++);
    if (t.layer != s.layer) fail("distill", "teacher and student captures are out of step");
    objective_.add_layer(s, t, std::nullopt);
  };
  const model::ForwardResult student = stack_.forward(tokens, request);
  teacher.captures.clear();  // the objective's graph keeps what backward needs
  if (hidden)
    objective_.add_outputs(student.hidden, teacher.hidden, model_.weights().lm_head, tokens,
                           options_.run.lm_chunk_tokens);
  LossParts parts = objective_.finish();
  if (timings_on_) {
    device_sync(tokens.device());
    timings_.student_forward = seconds_since(t0);
  }
  return parts;
}

nlohmann::json DistillTask::describe() const {
  nlohmann::json j;
  j["adapter"] = to_json(options_.adapter);
  j["base_model"] = options_.run.model_dir;
  j["student_rope"] = student_rope_.to_json();
  return j;
}

void DistillTask::write_final(const std::string& dir, const nlohmann::json& state) const {
  const auto& params = adapter_->named_parameters();
  write_checkpoint(dir, {params, {}, state, {{"adapter.json", adapter_manifest(options_, student_rope_)}}});
}

// ---------------------------------------------------------------------------------------------

LmTask::LmTask(const TrainOptions& options, const model::DecoderModel& model, model::RopeParams rope,
               std::unique_ptr<TrainableAdapter> adapter, at::ScalarType compute_dtype)
    : options_(options),
      model_(model),
      rope_(std::move(rope)),
      adapter_(std::move(adapter)),
      dtype_(compute_dtype),
      stack_(model.config(), model.weights(), adapter_.get(), compute_dtype, options.run.activation_checkpointing) {
  trainable_ = adapter_ ? adapter_->named_parameters() : hf_named_weights(model.weights(), model.config());
  for (const auto& [name, t] : trainable_)
    if (!t.requires_grad()) fail("lm task", "trainable tensor '" + name + "' does not require grad");
}

LossParts LmTask::loss(const at::Tensor& tokens, const std::optional<at::Tensor>& doc_ids) {
  const int64_t T = tokens.size(1);
  std::optional<model::RopeTables> packed;  // packed blocks: per-document positions (B, 1, T, D)
  if (doc_ids) packed = model::document_rope_tables(model_.config(), rope_, *doc_ids, dtype_);
  if (!doc_ids && T != tables_T_) {
    auto positions = at::arange(T, at::TensorOptions().dtype(at::kLong).device(tokens.device()));
    tables_ = model::rope_tables(model_.config(), rope_, positions, dtype_);
    tables_T_ = T;
  }
  StackRequest request;
  request.rope = doc_ids ? &*packed : &tables_;
  request.doc_ids = doc_ids;
  request.stop = model::ForwardStop::kHidden;
  const model::ForwardResult out = stack_.forward(tokens, request);
  LossParts parts;
  parts.lm = causal_lm_loss(out.hidden, model_.weights().lm_head.to(dtype_), tokens, options_.run.lm_chunk_tokens,
                            doc_ids);
  parts.total = parts.lm;
  return parts;
}

nlohmann::json LmTask::describe() const {
  nlohmann::json j;
  if (adapter_) {
    j["adapter"] = to_json(options_.adapter);
    j["base_model"] = options_.run.model_dir;
  } else {
    j["adapter"] = {{"kind", "none"}};
    j["config"] = model_.config().raw;
  }
  j["student_rope"] = rope_.to_json();
  return j;
}

void LmTask::write_final(const std::string& dir, const nlohmann::json& state) const {
  if (adapter_) {
    const auto& params = adapter_->named_parameters();
    write_checkpoint(dir, {params, {}, state, {{"adapter.json", adapter_manifest(options_, rope_)}}});
    return;
  }
  // Pretraining: a HF checkpoint directory (config.json + model.safetensors) plus train_state.json.
  write_directory_atomic(dir, [&](const std::string& temp) {
    io::save_tensors(temp + "/model.safetensors", trainable_, {{"format", "pt"}});
    io::write_file_atomic(temp + "/config.json", model_.config().raw.dump(2) + "\n");
    io::write_file_atomic(temp + "/train_state.json", state.dump(1) + "\n");
  });
}

}  // namespace linearard::train
