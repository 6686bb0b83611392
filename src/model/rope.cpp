#include "model/rope.h"

#include <cmath>

namespace linearard::model {
namespace {

// transformers writes `1.0 / x` in Python, which evaluates as x.reciprocal() * 1.0.
at::Tensor python_reciprocal(const at::Tensor& x) { return x.reciprocal(); }

// base ** (arange(0, D, 2).float() / D), float32, with a Python-float base.
at::Tensor base_powers(double base, int64_t dim, at::Device device) {
  auto exponents = at::arange(0, dim, 2, at::TensorOptions().dtype(at::kLong)).to(device, at::kFloat) / dim;
  return at::pow(at::Scalar(base), exponents);
}

RopeFrequencies default_frequencies(const ModelConfig& c, const RopeParams& r, at::Device device) {
  return {python_reciprocal(base_powers(r.theta, c.head_dim, device)), 1.0};
}

RopeFrequencies linear_frequencies(const ModelConfig& c, const RopeParams& r, at::Device device) {
  auto inv_freq = python_reciprocal(base_powers(r.theta, c.head_dim, device));
  inv_freq.div_(*r.factor);
  return {inv_freq, 1.0};
}

// Dynamic NTK. At load time transformers evaluates the base in Python floats; in the forward, once
// the sequence outgrows max_position_embeddings, it redoes it with float32 tensors.
RopeFrequencies dynamic_frequencies(const ModelConfig& c, const RopeParams& r, int64_t seq_len,
                                    at::Device device) {
  const int64_t dim = c.head_dim;
  const double factor = *r.factor;
  const int64_t max_pos = c.max_position_embeddings;
  if (seq_len <= max_pos) {
    const double base = r.theta * std::pow((factor * max_pos / max_pos) - (factor - 1),
                                           static_cast<double>(dim) / (dim - 2));
    return {python_reciprocal(base_powers(base, dim, at::kCPU)).to(device), 1.0};
  }
  auto len = at::scalar_tensor(seq_len, at::TensorOptions().dtype(at::kLong).device(device));
  auto grown = at::pow(at::mul(len, factor) / max_pos - (factor - 1), static_cast<double>(dim) / (dim - 2));
  auto base = at::mul(grown, r.theta);  // float32 0-dim tensor
  auto exponents = at::arange(0, dim, 2, at::TensorOptions().dtype(at::kLong).device(device)).to(at::kFloat) / dim;
  return {python_reciprocal(at::pow(base, exponents)), 1.0};
}

double yarn_mscale(double scale, double mscale) {
  return scale <= 1 ? 1.0 : 0.1 * mscale * std::log(scale) + 1.0;
}

RopeFrequencies yarn_frequencies(const ModelConfig& c, const RopeParams& r, at::Device device) {
  const int64_t dim = c.head_dim;
  const double base = r.theta;
  const double factor = *r.factor;
  const double l0 = static_cast<double>(*r.original_max_position_embeddings);
  double attention_factor;
  if (r.attention_factor) {
    attention_factor = *r.attention_factor;
  } else if (r.mscale.value_or(0) != 0 && r.mscale_all_dim.value_or(0) != 0) {
    attention_factor = yarn_mscale(factor, *r.mscale) / yarn_mscale(factor, *r.mscale_all_dim);
  } else {
    attention_factor = yarn_mscale(factor, 1.0);
  }
  // `x or default` in Python: 0 counts as unset.
  const double beta_fast = r.beta_fast.value_or(0) != 0 ? *r.beta_fast : 32.0;
  const double beta_slow = r.beta_slow.value_or(0) != 0 ? *r.beta_slow : 1.0;
  auto correction_dim = [&](double rotations) {
    return (dim * std::log(l0 / (rotations * 2 * M_PI))) / (2 * std::log(base));
  };
  double low = correction_dim(beta_fast), high = correction_dim(beta_slow);
  if (r.truncate) {
    low = std::floor(low);
    high = std::ceil(high);
  }
  low = std::max(low, 0.0);
  high = std::min(high, static_cast<double>(dim - 1));
  if (low == high) high += 0.001;  // transformers' guard against a zero-width ramp

  auto pos_freqs = base_powers(base, dim, device);
  auto extrapolation = python_reciprocal(pos_freqs);
  auto interpolation = python_reciprocal(at::mul(pos_freqs, factor));
  auto ramp = ((at::arange(dim / 2, at::TensorOptions().dtype(at::kFloat)) - low) / (high - low)).clamp(0, 1);
  auto extrapolation_factor = at::rsub(ramp, 1).to(device, at::kFloat);
  auto inv_freq = interpolation * at::rsub(extrapolation_factor, 1) + extrapolation * extrapolation_factor;
  return {inv_freq, attention_factor};
}

RopeFrequencies longrope_frequencies(const ModelConfig& c, const RopeParams& r, int64_t seq_len,
                                     at::Device device) {
  const int64_t dim = c.head_dim;
  const double l0 = static_cast<double>(*r.original_max_position_embeddings);
  const double factor = r.factor ? *r.factor : c.max_position_embeddings / l0;
  double attention_factor;
  if (r.attention_factor) {
    attention_factor = *r.attention_factor;
  } else {
    attention_factor = factor <= 1.0 ? 1.0 : std::sqrt(1 + std::log(factor) / std::log(l0));
  }
  // Long factors once the sequence passes L0 (computed on the activations' device then), short
  // factors otherwise (computed at load time, on the CPU).
  const bool long_context = seq_len > *r.original_max_position_embeddings;
  const at::Device where = long_context ? device : at::Device(at::kCPU);
  const auto& ext = long_context ? r.long_factor : r.short_factor;
  auto ext_factors = at::tensor(std::vector<float>(ext.begin(), ext.end()), at::kFloat).to(where);
  auto shape = at::arange(0, dim, 2, at::TensorOptions().dtype(at::kLong).device(where)).to(at::kFloat) / dim;
  auto inv_freq = python_reciprocal(ext_factors * at::pow(at::Scalar(r.theta), shape));
  return {inv_freq.to(device), attention_factor};
}

RopeFrequencies llama3_frequencies(const ModelConfig& c, const RopeParams& r, at::Device device) {
  auto inv_freq = python_reciprocal(base_powers(r.theta, c.head_dim, device));
  const double factor = *r.factor;
  const double low_freq_factor = *r.low_freq_factor, high_freq_factor = *r.high_freq_factor;
  const double old_context_len = static_cast<double>(*r.original_max_position_embeddings);
  const double low_freq_wavelen = old_context_len / low_freq_factor;
  const double high_freq_wavelen = old_context_len / high_freq_factor;
  auto wavelen = python_reciprocal(inv_freq) * (2 * M_PI);  // 2 * pi / inv_freq
  auto scaled = at::where(wavelen > low_freq_wavelen, inv_freq / factor, inv_freq);
  auto smooth = (python_reciprocal(wavelen) * old_context_len - low_freq_factor) /
                (high_freq_factor - low_freq_factor);
  auto smoothed = at::rsub(smooth, 1) * scaled / factor + smooth * scaled;
  auto is_medium = (wavelen < high_freq_wavelen).logical_not().logical_and(
      (wavelen > low_freq_wavelen).logical_not());
  return {at::where(is_medium, smoothed, scaled), 1.0};
}

}  // namespace

RopeFrequencies rope_frequencies(const ModelConfig& config, const RopeParams& rope, int64_t seq_len,
                                 at::Device device) {
  // Load-time tables are computed on the CPU (transformers builds them in __init__) and moved.
  const at::Device cpu(at::kCPU);
  RopeFrequencies f;
  if (rope.type == "default") f = default_frequencies(config, rope, cpu);
  else if (rope.type == "linear") f = linear_frequencies(config, rope, cpu);
  else if (rope.type == "dynamic") f = dynamic_frequencies(config, rope, seq_len, device);
  else if (rope.type == "yarn") f = yarn_frequencies(config, rope, cpu);
  else if (rope.type == "longrope") f = longrope_frequencies(config, rope, seq_len, device);
  else if (rope.type == "llama3") f = llama3_frequencies(config, rope, cpu);
  else validate_rope(rope, config, "rope");  // throws the unknown-type error
  f.inv_freq = f.inv_freq.to(device, at::kFloat);
  return f;
}

RopeTables rope_tables(const ModelConfig& config, const RopeParams& rope, const at::Tensor& positions,
                       at::ScalarType dtype) {
  const at::Device device = positions.device();
  const int64_t seq_len = positions.numel() == 0 ? 0 : positions.max().item<int64_t>() + 1;
  const RopeFrequencies f = rope_frequencies(config, rope, seq_len, device);
  // freqs[t, i] = position[t] * inv_freq[i]: HF's (D/2, 1) @ (1, T) matmul has one product per
  // element, so an outer product gives the same bits.
  auto freqs = positions.to(at::kFloat).unsqueeze(1) * f.inv_freq.unsqueeze(0);  // (T, D/2)
  auto emb = at::cat({freqs, freqs}, -1);                                        // (T, D)
  auto cos = emb.cos() * f.attention_factor;
  auto sin = emb.sin() * f.attention_factor;
  return {cos.to(dtype), sin.to(dtype)};
}

at::Tensor apply_rope(const at::Tensor& x, const RopeTables& tables) {
  const int64_t half = x.size(-1) / 2;
  auto rotated = at::cat({-x.narrow(-1, half, half), x.narrow(-1, 0, half)}, -1);
  return x * tables.cos + rotated * tables.sin;
}

}  // namespace linearard::model
