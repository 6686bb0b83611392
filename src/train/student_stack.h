// The student's forward: the layers of model/decoder_layer.h in a loop that this module owns, so
// that each layer can be activation-checkpointed. A checkpointed layer is one autograd Function
// whose outputs are (h_out, q, k, v): the captured post-RoPE Q/K/V are real outputs, so their
// gradients (from the relation KL) flow back through the recomputed layer. (Python's reentrant
// checkpoint would drop them; LinearARD's train.py needs non-reentrant checkpointing for the same reason.)
//
// Weights are cast to the compute dtype at use, so the same code serves frozen bf16 base weights
// (distill, cpt) and float32 trainable master weights (pretrain).
#pragma once
#include <ATen/ATen.h>

#include <functional>
#include <optional>
#include <vector>

#include "model/attention.h"
#include "model/llama.h"
#include "train/qkv_adapter.h"

namespace linearard::train {

struct StackRequest {
  const model::RopeTables* rope = nullptr;  // (T, D) in the compute dtype, or (B, 1, T, D) (packed blocks)
  std::vector<int64_t> capture_layers;      // ascending
  model::ForwardStop stop = model::ForwardStop::kHidden;
  std::optional<at::Tensor> key_mask;  // (B, T) 1 = real token
  std::optional<at::Tensor> doc_ids;   // (B, T) packed blocks: attention stays inside each document
  // Called with each captured layer as soon as it is computed (so a loss can be built layer by
  // layer, which lets backward free each layer's gradients early). Without it, captures are
  // returned in the result.
  std::function<void(const model::LayerCapture&)> on_capture;
};

class StudentStack {
 public:
  // `weights` and `adapter` must outlive every graph built by forward().
  StudentStack(const model::ModelConfig& config, const model::DecoderWeights& weights,
               const TrainableAdapter* adapter, at::ScalarType compute_dtype, bool checkpoint);

  // tokens (B, T) int64 on the weights' device.
  model::ForwardResult forward(const at::Tensor& tokens, const StackRequest& request) const;

  // One decoder layer on h (B, T, C): returns {h_out} when !capture, {q, k, v} when !need_output,
  // else {h_out, q, k, v}; q (B, H, T, D), k and v (B, Hk, T, D), q and k post-RoPE.
  std::vector<at::Tensor> run_layer(int64_t layer, const at::Tensor& h, const model::RopeTables& rope,
                                    const model::AttentionPlan& plan, bool capture,
                                    bool need_output) const;
  // Tensors of `layer` that require grad (adapter tensors, and the layer's weights if trainable).
  std::vector<at::Tensor> layer_parameters(int64_t layer) const;
  bool uses_rng() const { return adapter_ && adapter_->uses_rng(); }
  at::ScalarType compute_dtype() const { return dtype_; }

 private:
  const model::ModelConfig& config_;
  const model::DecoderWeights& weights_;
  const TrainableAdapter* adapter_;
  at::ScalarType dtype_;
  bool checkpoint_;
};

}  // namespace linearard::train
