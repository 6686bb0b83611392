// `linearard bench eval-ppl`: perplexity at a long context on a randomly initialised
// LLaMA-2-7B-shaped model (no checkpoint needed), to show that a 32K window fits one GPU: the model
// runs to its final hidden states and the NLL goes through the LM head in chunks, so the
// (T x vocab) float32 logits (4 GiB at T = 32768, V = 32000) never exist. Reports peak GPU memory
// (total and above the weights) and scored tokens per second. Numbers go to docs/perf.md.
#include <ATen/ATen.h>
#include <ATen/Context.h>

#include <chrono>
#include <cstdio>
#include <string>

#include "bench/case_grid.h"
#include "bench/flop_model.h"
#include "cli/command.h"
#include "common/error.h"
#include "eval/eval_model.h"
#include "eval/kv_cache.h"
#include "eval/perplexity.h"
#include "model/model_config.h"
#include "train/random_model.h"

// Peak-memory counters from the CUDA caching allocator when LibTorch's CUDA headers are there (the
// GPU machines build with LINEARARD_CUDA=OFF, so LINEARARD_WITH_CUDA cannot be the test).
#if __has_include(<c10/cuda/CUDACachingAllocator.h>) && __has_include(<cuda_runtime_api.h>)
#include <c10/cuda/CUDACachingAllocator.h>
#include <c10/cuda/CUDAFunctions.h>
#define LINEARARD_BENCH_EVAL_PEAK 1
#endif

namespace linearard::cli {
namespace {

const bench::EvalPplCase kCase;  // bench/case_grid.h

struct EvalBenchOptions {
  std::string shape = kCase.shape, device = "cuda", dtype = "bf16", sdpa_backend = "auto";
  int64_t context = kCase.context, windows = kCase.windows, batch_size = kCase.batch,
          warmup_context = kCase.warmup_context;
  int64_t decode = 0;  // > 0: also greedy-decode this many tokens after a `context`-token prompt
  uint64_t seed = 0;
};

double gib(double bytes) { return bytes / double(int64_t{1} << 30); }

void reset_peak(at::Device d) {
#ifdef LINEARARD_BENCH_EVAL_PEAK
  if (d.is_cuda()) c10::cuda::CUDACachingAllocator::resetPeakStats(d.index() < 0 ? 0 : d.index());
#endif
}

// (current, peak) allocated bytes; -1 when unknown.
std::pair<double, double> allocated(at::Device d) {
#ifdef LINEARARD_BENCH_EVAL_PEAK
  if (d.is_cuda()) {
    const auto stats = c10::cuda::CUDACachingAllocator::getDeviceStats(d.index() < 0 ? 0 : d.index());
    const auto& a = stats.allocated_bytes[size_t(c10::CachingAllocator::StatType::AGGREGATE)];
    return {double(a.current), double(a.peak)};
  }
#endif
  return {-1, -1};
}

// Passkey-style decoding: prefill a `context`-token prompt into the KV cache, then greedy steps.
void bench_decode(const eval::EvalModel& m, const std::vector<int32_t>& stream, const EvalBenchOptions& o) {
  const at::Device device = m.model->device();
  const double before = allocated(device).first;
  reset_peak(device);
  const std::vector<int64_t> prompt(stream.begin(), stream.begin() + o.context);
  eval::KvCacheDecoder decoder(m, 1, o.context + o.decode);
  auto t0 = std::chrono::steady_clock::now();
  at::Tensor logits = decoder.extend(at::tensor(prompt, at::kLong).view({1, -1}));
  int64_t next = logits.argmax(1).item<int64_t>();  // waits for the device
  const double prefill = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  t0 = std::chrono::steady_clock::now();
  std::vector<int64_t> seq = prompt;
  at::Tensor first_step;  // logits of the first cached step, checked against a full forward below
  for (int64_t i = 1; i < o.decode; ++i) {
    seq.push_back(next);
    at::Tensor step = decoder.extend(at::full({1, 1}, next, at::kLong));
    if (i == 1) first_step = step;
    next = step.argmax(1).item<int64_t>();
  }
  const double steps = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const double peak = allocated(device).second;
  if (first_step.defined()) {
    const int64_t T = o.context + 1;
    const auto tables = m.model->rope_tables_for(m.rope, T);
    model::ForwardRequest request;
    request.rope = &tables;
    request.stop = model::ForwardStop::kHidden;
    at::Tensor hidden = m.model->forward(at::tensor(std::vector<int64_t>(seq.begin(), seq.begin() + T), at::kLong)
                                             .view({1, T}).to(device), request).hidden;
    at::Tensor full = at::linear(hidden.select(1, T - 1), m.model->weights().lm_head).to(at::kFloat);  // (1, V)
    std::printf("kv-cache step vs full forward at position %lld: max |logit diff| %.3g (max |logit| %.3g), "
                "same argmax: %s\n", static_cast<long long>(T - 1), (first_step - full).abs().max().item<double>(),
                full.abs().max().item<double>(), first_step.argmax(1).equal(full.argmax(1)) ? "yes" : "no");
  }
  std::printf("kv-cache decode: prefill %lld tokens %.2f s (%.0f tokens/s), %lld greedy steps %.1f ms each\n",
              static_cast<long long>(o.context), prefill, o.context / prefill, static_cast<long long>(o.decode - 1),
              o.decode > 1 ? 1e3 * steps / (o.decode - 1) : 0.0);
  if (peak >= 0)
    std::printf("kv-cache decode: peak allocated %.2f GiB (%.2f GiB above the weights; the cache is %.2f GiB)\n",
                gib(peak), gib(peak - before),
                gib(2.0 * m.model->config().num_hidden_layers * m.model->config().num_key_value_heads *
                    m.model->config().head_dim * (o.context + o.decode) * at::elementSize(m.model->dtype())));
}

// Restricts scaled_dot_product_attention to one backend (math stays as the fallback of none).
void select_sdpa_backend(const std::string& b) {
  if (b == "auto") return;
  if (b != "flash" && b != "efficient" && b != "cudnn" && b != "math")
    fail("--sdpa-backend", "expected auto, flash, efficient, cudnn or math, got '" + b + "'");
  auto& ctx = at::globalContext();
  ctx.setSDPUseFlash(b == "flash");
  ctx.setSDPUseMemEfficient(b == "efficient");
  ctx.setSDPUseCuDNN(b == "cudnn");
  ctx.setSDPUseMath(b == "math");
}

void run(const EvalBenchOptions& o) {
  const at::Device device = eval::parse_device(o.device, "--device");
  select_sdpa_backend(o.sdpa_backend);
  const at::ScalarType dtype = eval::parse_dtype(o.dtype, "--dtype");
  if (o.context < 2 || o.windows < 1) fail("--context", "needs a context >= 2 and at least one window");
  // Random weights of bench/case_grid.h's 7b (LLaMA-2-7B) or tiny shape, and the paper's student:
  // linear RoPE x8 (4K -> 32K).
  const bench::ModelShape shape = bench::model_shape(o.shape, {"7b", "tiny"});
  const model::ModelConfig& config = shape.config;
  model::RopeParams rope = config.rope;
  rope.type = "linear";
  rope.factor = shape.pi_factor;
  const auto model = train::random_model(config, dtype, device, o.seed, 0.02, /*fast=*/true);
  const double weights = allocated(device).first;
  eval::EvalModel m;
  m.model = &model;
  m.rope = rope;
  m.name = "random-" + o.shape;

  at::manual_seed(o.seed);
  auto make_stream = [&](int64_t n) {
    at::Tensor ids = at::randint(config.vocab_size, {n}, at::kInt);
    return std::vector<int32_t>(ids.data_ptr<int32_t>(), ids.data_ptr<int32_t>() + n);
  };
  // Non-overlapping windows of exactly `context` tokens.
  const std::vector<std::vector<int32_t>> streams = {make_stream(o.context * o.windows)};
  eval::PerplexityParams p;
  p.context = std::min(o.warmup_context, o.context);
  p.batch_size = o.batch_size;
  eval::evaluate_perplexity(m, {make_stream(p.context)}, p);  // warm-up: kernels, cuBLAS handles

  reset_peak(device);
  p.context = o.context;
  const eval::PerplexityResult r = eval::evaluate_perplexity(m, streams, p);
  const double peak = allocated(device).second;
  const double flops = bench::decoder_forward_flops(config, o.context) * r.windows;  // bench/flop_model.h
  std::printf("bench eval-ppl: shape %s (%.2fB parameters), %s on %s, linear RoPE x8\n", o.shape.c_str(),
              model.parameter_count() / 1e9, eval::dtype_name(dtype).c_str(), device.str().c_str());
  std::printf("context %lld, %lld windows, batch %lld: %lld scored tokens in %.2f s = %.0f tokens/s, %.1f TFLOP/s\n",
              static_cast<long long>(o.context), static_cast<long long>(r.windows),
              static_cast<long long>(o.batch_size), static_cast<long long>(r.tokens), r.seconds,
              r.tokens / r.seconds, flops / r.seconds / 1e12);
  std::printf("nll %.4f nats/token (random weights: about ln(V) = %.4f), ppl %.1f\n", r.nll,
              std::log(double(config.vocab_size)), r.perplexity);
  if (peak >= 0)
    std::printf("peak allocated %.2f GiB = weights %.2f GiB + %.2f GiB activations and scoring "
                "(full float32 logits alone would be %.2f GiB)\n",
                gib(peak), gib(weights), gib(peak - weights),
                gib(double(o.context) * o.batch_size * config.vocab_size * 4));
  else
    std::printf("peak memory: not measured on this device\n");
  if (o.decode > 0) bench_decode(m, streams[0], o);
}

CommandRegistration eval_ppl_command(
    "eval-ppl", "perplexity at a long context (default 32768) on a random 7B-shaped model: peak memory, tokens/s",
    [](CLI::App& sub) {
      auto o = std::make_shared<EvalBenchOptions>();
      sub.add_option("--shape", o->shape, "7b (LLaMA-2-7B) or tiny (CPU smoke test)");
      sub.add_option("--context", o->context, "window length in tokens (default 32768)");
      sub.add_option("--windows", o->windows, "non-overlapping windows to score (default 2)");
      sub.add_option("--batch-size", o->batch_size, "windows per forward (default 1)");
      sub.add_option("--device", o->device, "cuda (default) or cpu");
      sub.add_option("--dtype", o->dtype, "bf16 (default), fp16 or fp32");
      sub.add_option("--seed", o->seed, "weights and tokens seed");
      sub.add_option("--sdpa-backend", o->sdpa_backend, "auto (default), flash, efficient, cudnn or math");
      sub.add_option("--decode", o->decode, "also time KV-cache greedy decoding of N tokens after a context-long prompt");
      sub.callback([o] { run(*o); });
    },
    "bench");

}  // namespace
}  // namespace linearard::cli
