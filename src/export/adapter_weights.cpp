#include "export/adapter_weights.h"

#include <cmath>
#include <map>
#include <set>
#include <vector>

#include "common/error.h"
#include "io/safetensors.h"
#include "model/projection.h"

namespace linearard::exporter {
namespace {

// The linears of a LLaMA layer that an adapter may target, by checkpoint name (model/projection.h).
bool is_target(const std::string& m) { return model::projection_from_name(m).has_value(); }
bool is_qkv(const std::string& m) {
  const auto p = model::projection_from_name(m);
  return p && int(*p) <= int(model::Projection::kValue);
}

model::Projection projection_of(const std::string& m) {
  const auto p = model::projection_from_name(m);
  if (!p) fail("adapter", "'" + m + "' is not one of q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj");
  return *p;
}

std::string shape_of(const at::Tensor& t) { return io::format_shape(t.sizes().vec()); }

}  // namespace

void validate_adapter(const train::TrainedAdapter& a, const model::ModelConfig& c, const std::string& where) {
  if (a.spec.kind != "lora" && a.spec.kind != "full")
    fail(where, "unknown adapter kind '" + a.spec.kind + "' (expected lora or qkv_delta)");
  if (a.spec.targets.empty()) fail(where, "no target modules");
  std::set<std::string> seen;
  for (const auto& m : a.spec.targets) {
    if (!is_target(m))
      fail(where, "target module '" + m +
                      "' is not one of q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj");
    if (!a.spec.is_lora() && !is_qkv(m))
      fail(where, "target module '" + m + "' of a qkv_delta adapter is not one of q_proj, k_proj, v_proj");
    if (!seen.insert(m).second) fail(where, "target module '" + m + "' listed twice");
  }
  if (a.spec.is_lora()) {
    if (a.spec.rank <= 0) fail(where, "LoRA rank must be positive, got " + std::to_string(a.spec.rank));
    if (!std::isfinite(a.spec.alpha) || a.spec.alpha == 0) fail(where, "LoRA alpha must be a non-zero number");
    if (!(a.spec.dropout >= 0 && a.spec.dropout < 1)) fail(where, "LoRA dropout must be in [0, 1)");
  }
  std::map<std::string, std::vector<int64_t>> expected;  // key -> shape
  for (int64_t l = 0; l < c.num_hidden_layers; ++l)
    for (const auto& m : a.spec.targets) {
      const auto [out, in] = model::projection_shape(c, projection_of(m));
      if (a.spec.is_lora()) {
        expected[train::lora_key(l, m, 'A')] = {a.spec.rank, in};
        expected[train::lora_key(l, m, 'B')] = {out, a.spec.rank};
      } else {
        expected[train::qkv_delta_key(l, m)] = {out, in};
      }
    }
  for (const auto& [name, t] : a.tensors)
    if (!expected.count(name))
      fail(where, "unexpected tensor '" + name + "' for a " + a.spec.json_kind() + " adapter on " +
                      std::to_string(c.num_hidden_layers) + " layers");
  for (const auto& [name, shape] : expected) {
    auto it = a.tensors.find(name);
    if (it == a.tensors.end()) fail(where, "missing tensor '" + name + "'");
    const at::Tensor& t = it->second;
    if (!t.defined() || !t.sizes().equals(shape))
      fail(where, "tensor '" + name + "' has shape " + (t.defined() ? shape_of(t) : "(undefined)") +
                      ", expected " + io::format_shape(shape));
    if (!at::isFloatingType(t.scalar_type())) fail(where, "tensor '" + name + "' is not floating point");
    if (!at::isfinite(t).all().item<bool>()) fail(where, "tensor '" + name + "' holds NaN or Inf");
  }
}

at::Tensor weight_delta(const train::TrainedAdapter& a, int64_t layer, const std::string& module) {
  if (!a.spec.is_lora()) return a.tensors.at(train::qkv_delta_key(layer, module)).to(at::kFloat);
  const at::Tensor A = a.tensors.at(train::lora_key(layer, module, 'A')).to(at::kFloat);  // (r, C)
  const at::Tensor B = a.tensors.at(train::lora_key(layer, module, 'B')).to(at::kFloat);  // (out, r)
  return at::matmul(B, A) * (a.spec.alpha / static_cast<double>(a.spec.rank));               // (out, C)
}

}  // namespace linearard::exporter
