#include "train/student_stack.h"

#include <torch/csrc/autograd/autograd.h>
#include <torch/csrc/autograd/custom_function.h>

#include <algorithm>
#include <cstdint>
#include <mutex>

#include "common/error.h"
#include "common/option_error.h"
#include "model/attention.h"

namespace linearard::train {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

// The generator that dropout draws from on `device`.
at::Generator default_generator(at::Device device) {
  return at::globalContext().defaultGenerator(device);
}

at::Tensor rng_state(at::Device device) {
  auto gen = default_generator(device);
  std::lock_guard<std::mutex> lock(gen.mutex());
  return gen.get_state();
}
void set_rng_state(at::Device device, const at::Tensor& state) {
  auto gen = default_generator(device);
  std::lock_guard<std::mutex> lock(gen.mutex());
  gen.set_state(state);
}

// Activation checkpointing of one layer: forward runs without a graph and keeps only the layer's
// input; backward recomputes the layer with grad (replaying the dropout generator) and
// back-propagates the incoming gradients of all its outputs to h and the layer's parameters.
struct LayerCheckpoint : public torch::autograd::Function<LayerCheckpoint> {
  static variable_list forward(AutogradContext* ctx, const StudentStack* stack, int64_t layer, bool capture,
                               bool need_output, const at::Tensor& h, const at::Tensor& cos,
                               const at::Tensor& sin, const model::AttentionPlan& plan,
                               at::TensorList params) {
    // The stack outlives the graph (see StudentStack's constructor); a pointer is the only way to
    // hand a C++ object to backward through saved_data.
    ctx->saved_data["stack"] = int64_t(reinterpret_cast<intptr_t>(stack));
    ctx->saved_data["layer"] = layer;
    ctx->saved_data["capture"] = capture;
    ctx->saved_data["need_output"] = need_output;
    ctx->saved_data["n_params"] = int64_t(params.size());
    // The attention plan's tensors travel as saved variables (the plan dies with the forward call).
    ctx->saved_data["has_mask"] = plan.mask.has_value();
    ctx->saved_data["has_runs"] = plan.cu_seqlens.has_value();
    ctx->saved_data["max_length"] = plan.max_length;
    if (stack->uses_rng()) ctx->saved_data["rng"] = rng_state(h.device());
    variable_list saved = {h, cos, sin};
    if (plan.mask) saved.push_back(*plan.mask);
    if (plan.cu_seqlens) saved.push_back(*plan.cu_seqlens);
    ctx->save_for_backward(saved);
    const model::RopeTables rope{cos, sin};
    return stack->run_layer(layer, h, rope, plan, capture, need_output);
  }

  static variable_list backward(AutogradContext* ctx, variable_list grad_outputs) {
    const auto* stack = reinterpret_cast<const StudentStack*>(intptr_t(ctx->saved_data["stack"].toInt()));
    const int64_t layer = ctx->saved_data["layer"].toInt();
    const auto saved = ctx->get_saved_variables();
    model::AttentionPlan plan;
    size_t next = 3;
    if (ctx->saved_data["has_mask"].toBool()) plan.mask = saved[next++];
    if (ctx->saved_data["has_runs"].toBool()) plan.cu_seqlens = saved[next++];
    plan.max_length = ctx->saved_data["max_length"].toInt();
    at::Tensor h = saved[0].detach().requires_grad_(true);
    const model::RopeTables rope{saved[1], saved[2]};
    const bool replay = ctx->saved_data.count("rng") != 0;
    at::Tensor current_rng;
    if (replay) {
      current_rng = rng_state(h.device());
      set_rng_state(h.device(), ctx->saved_data["rng"].toTensor());
    }
    variable_list outputs;
    {
      at::AutoGradMode grad(true);
      outputs = stack->run_layer(layer, h, rope, plan, ctx->saved_data["capture"].toBool(),
                                 ctx->saved_data["need_output"].toBool());
    }
    if (replay) set_rng_state(h.device(), current_rng);
    variable_list inputs = {h};
    for (const auto& p : stack->layer_parameters(layer)) inputs.push_back(p);
    // Gradients come materialised (zeros for unused outputs), one per output.
    variable_list outs, grads_in;
    for (size_t i = 0; i < outputs.size(); ++i) {
      if (!outputs[i].requires_grad()) continue;
      outs.push_back(outputs[i]);
      grads_in.push_back(grad_outputs[i]);
    }
    const variable_list grads = torch::autograd::grad(outs, inputs, grads_in, /*retain_graph=*/false,
                                                      /*create_graph=*/false, /*allow_unused=*/true);
    // One entry per forward argument: stack, layer, capture, need_output, h, cos, sin, plan, params.
    variable_list result = {at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor(), grads[0], at::Tensor(),
                            at::Tensor()};
    result.push_back(at::Tensor());  // plan (an entry even though it holds no autograd input)
    const int64_t n_params = ctx->saved_data["n_params"].toInt();
    for (int64_t i = 0; i < n_params; ++i) result.push_back(grads[size_t(1 + i)]);
    return result;
  }
};

}  // namespace

StudentStack::StudentStack(const model::ModelConfig& config, const model::DecoderWeights& weights,
                           const TrainableAdapter* adapter, at::ScalarType compute_dtype, bool checkpoint)
    : config_(config), weights_(weights), adapter_(adapter), dtype_(compute_dtype), checkpoint_(checkpoint) {}

std::vector<at::Tensor> StudentStack::layer_parameters(int64_t layer) const {
  std::vector<at::Tensor> out;
  if (adapter_) out = adapter_->layer_parameters(layer);
  for (const at::Tensor* t : weights_.layers[size_t(layer)].all())
    if (t->defined() && t->requires_grad()) out.push_back(*t);
  return out;
}

std::vector<at::Tensor> StudentStack::run_layer(int64_t layer, const at::Tensor& h, const model::RopeTables& rope,
                                                const model::AttentionPlan& plan, bool capture,
                                                bool need_output) const {
  const model::DecoderLayer block(config_, weights_.layers[size_t(layer)], layer, adapter_);
  const model::AttentionInputs qkv = block.attention_inputs(h, rope);  // post-RoPE
  if (!need_output) return {qkv.q, qkv.k, qkv.v};
  at::Tensor out = block.output(h, qkv, model::planned_attention(plan));  // (B, T, C)
  if (!capture) return {out};
  return {out, qkv.q, qkv.k, qkv.v};
}

model::ForwardResult StudentStack::forward(const at::Tensor& tokens, const StackRequest& request) const {
  const model::ModelConfig& c = config_;
  if (tokens.dim() != 2 || tokens.scalar_type() != at::kLong) fail("tokens", "expected a (B, T) int64 tensor");
  const int64_t B = tokens.size(0), T = tokens.size(1);
  if (!request.rope || request.rope->cos.size(-2) != T)
    fail("student forward", "RoPE tables for the " + std::to_string(T) + " positions are required");
  int64_t last_capture = -1;
  for (int64_t l : request.capture_layers) {
    if (l < 0 || l >= c.num_hidden_layers) fail_option("layers", "layer " + std::to_string(l) + " out of range");
    last_capture = std::max(last_capture, l);
  }
  const bool stop_early = request.stop == model::ForwardStop::kLastCapture;
  if (stop_early && last_capture < 0) fail("student forward", "stopping after the last capture needs a captured layer");
  const model::AttentionPlan plan =
      model::attention_plan(c, request.key_mask, B, T, tokens.device(), request.doc_ids, dtype_);

  model::ForwardResult result;
  at::Tensor h = at::embedding(weights_.embed.to(dtype_), tokens);  // (B, T, C)
  for (int64_t l = 0; l < c.num_hidden_layers; ++l) {
    const bool capture = std::find(request.capture_layers.begin(), request.capture_layers.end(), l) !=
                         request.capture_layers.end();
    const bool need_output = !(stop_early && l == last_capture);
    std::vector<at::Tensor> outs;
    if (checkpoint_ && at::GradMode::is_enabled()) {
      const auto params = layer_parameters(l);
      outs = LayerCheckpoint::apply(this, l, capture, need_output, h, request.rope->cos, request.rope->sin, plan,
                                    at::TensorList(params));
    } else {
      outs = run_layer(l, h, *request.rope, plan, capture, need_output);
    }
    if (capture) {
      const size_t o = need_output ? 1 : 0;
      model::LayerCapture cap{l, outs[o], outs[o + 1], outs[o + 2], need_output ? outs[0] : at::Tensor()};
      if (request.on_capture) request.on_capture(cap);
      else result.captures.push_back(cap);
    }
    if (!need_output) return result;
    h = outs[0];
  }
  result.hidden = model::rms_norm(h, weights_.final_norm.to(dtype_), c.rms_norm_eps);
  if (request.stop == model::ForwardStop::kLogits) result.logits = at::linear(result.hidden, weights_.lm_head.to(dtype_));
  return result;
}

}  // namespace linearard::train
