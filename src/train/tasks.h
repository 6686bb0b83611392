// What the trainer optimises: a TrainTask turns a batch of tokens into a loss over its trainable
// tensors and writes the final result.
//   DistillTask  teacher = base + native RoPE (no grad), student = the same weights + scaled RoPE +
//                q/k/v adapter; DistillObjective between them (linearard distill).
//   LmTask       LM loss of base + RoPE + adapter (linearard cpt), or of a model whose weights are
//                all trainable (linearard pretrain).
#pragma once
#include <ATen/ATen.h>

#include <memory>
#include <optional>
#include <nlohmann/json.hpp>
#include <string>

#include "model/llama.h"
#include "train/objective.h"
#include "train/qkv_adapter.h"
#include "train/student_stack.h"
#include "train/train_options.h"

namespace linearard::train {

class TrainTask {
 public:
  virtual ~TrainTask() = default;
  virtual const NamedTensors& trainable() const = 0;
  // tokens (B, T) int64 on the task's device; builds the graph of the returned total. doc_ids (B, T)
  // (packed blocks, train/data_source.h; same device): every forward attends within each document
  // only (a block-diagonal causal mask), RoPE positions restart at each document start, the
  // relation KL is block-diagonal and the LM loss does not predict a document's first token from
  // the previous document. Without doc_ids the block is one sequence, as before.
  virtual LossParts loss(const at::Tensor& tokens, const std::optional<at::Tensor>& doc_ids = std::nullopt) = 0;
  // Stored in train_state.json: what the trainable tensors are (adapter kind, r, alpha, RoPE...).
  virtual nlohmann::json describe() const = 0;
  // The trained result in `dir` (checkpoint_format.md), with `state` as train_state.json.
  virtual void write_final(const std::string& dir, const nlohmann::json& state) const = 0;
  virtual void set_training(bool training) = 0;
  // The model's shape and compute dtype (the out-of-memory message's estimate).
  virtual const model::ModelConfig& model_config() const = 0;
  virtual at::ScalarType compute_dtype() const = 0;
};

// The adapter chosen by the options (lora or full); seeded by options.run.seed.
std::unique_ptr<TrainableAdapter> make_adapter(const TrainOptions& options, const model::ModelConfig& config,
                                               at::Device device);

class DistillTask : public TrainTask {
 public:
  // `model` holds the frozen base weights in the compute dtype; student_rope is the scaled RoPE.
  DistillTask(const TrainOptions& options, const model::DecoderModel& model, model::RopeParams student_rope,
              std::unique_ptr<TrainableAdapter> adapter);
  const NamedTensors& trainable() const override { return adapter_->named_parameters(); }
  LossParts loss(const at::Tensor& tokens, const std::optional<at::Tensor>& doc_ids = std::nullopt) override;
  nlohmann::json describe() const override;
  void write_final(const std::string& dir, const nlohmann::json& state) const override;
  void set_training(bool training) override { adapter_->set_training(training); }
  const model::ModelConfig& model_config() const override { return model_.config(); }
  at::ScalarType compute_dtype() const override { return model_.dtype(); }
  TrainableAdapter& adapter() { return *adapter_; }

  // Phase timings of the last loss() call for benchmarks, when enabled (synchronises the device).
  struct Timings { double teacher = 0, student_forward = 0; };
  void enable_timings(bool on) { timings_on_ = on; }
  const Timings& timings() const { return timings_; }

 private:
  const model::RopeTables& tables(bool student, int64_t T);
  TrainOptions options_;
  const model::DecoderModel& model_;
  model::RopeParams student_rope_;
  std::unique_ptr<TrainableAdapter> adapter_;
  StudentStack stack_;
  DistillObjective objective_;
  int64_t tables_T_ = -1;
  model::RopeTables teacher_tables_, student_tables_;
  bool timings_on_ = false;
  Timings timings_;
};

class LmTask : public TrainTask {
 public:
  // adapter == nullptr: every weight of `model` is trained (its tensors must require grad and be
  // float32); the compute dtype is then `compute_dtype`.
  LmTask(const TrainOptions& options, const model::DecoderModel& model, model::RopeParams rope,
         std::unique_ptr<TrainableAdapter> adapter, at::ScalarType compute_dtype);
  const NamedTensors& trainable() const override { return trainable_; }
  LossParts loss(const at::Tensor& tokens, const std::optional<at::Tensor>& doc_ids = std::nullopt) override;
  nlohmann::json describe() const override;
  void write_final(const std::string& dir, const nlohmann::json& state) const override;
  void set_training(bool training) override {
    if (adapter_) adapter_->set_training(training);
  }
  const model::ModelConfig& model_config() const override { return model_.config(); }
  at::ScalarType compute_dtype() const override { return dtype_; }

 private:
  TrainOptions options_;
  const model::DecoderModel& model_;
  model::RopeParams rope_;
  std::unique_ptr<TrainableAdapter> adapter_;
  at::ScalarType dtype_;
  StudentStack stack_;
  NamedTensors trainable_;
  int64_t tables_T_ = -1;
  model::RopeTables tables_;
};

}  // namespace linearard::train
