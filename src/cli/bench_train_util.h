// Helpers shared by `linearard bench distill` and `bench cpt`: model shapes of the paper's models,
// CUDA peak-memory counters and a wall clock that waits for the device.
#pragma once
#include <ATen/ATen.h>

#include <chrono>
#include <string>

#include "common/error.h"
#include "model/model_config.h"
#include "train/device_sync.h"
#include "train/random_model.h"

#ifdef LINEARARD_WITH_CUDA
#include <c10/cuda/CUDACachingAllocator.h>
#include <c10/cuda/CUDAFunctions.h>
#endif

namespace linearard::cli::bench_train {

struct Shape {
  std::string name;
  model::ModelConfig config;
  double pi_factor;  // the paper's student: linear RoPE x8 (LLaMA-2) or x4 (LLaMA-3), LinearARD arXiv 2604.00004
};

// "7b": LLaMA-2-7B (32 layers, C 4096, 32 heads, FFN 11008, vocab 32000, 4K window);
// "8b": LLaMA-3-8B (8 KV heads, FFN 14336, vocab 128256, theta 5e5, 8K window).
inline Shape shape(const std::string& name) {
  nlohmann::json j;
  double factor = 8;
  if (name == "7b") {
    j = train::llama_config_json(4096, 11008, 32, 32, 32, 32000, 4096, 10000.0);
  } else if (name == "8b") {
    j = train::llama_config_json(4096, 14336, 32, 32, 8, 128256, 8192, 500000.0);
    factor = 4;
  } else {
    fail("--shape", "expected 7b or 8b, got '" + name + "'");
  }
  return {name, model::parse_model_config(j.dump(), "bench shape " + name), factor};
}

inline model::RopeParams pi_rope(const Shape& s) {
  model::RopeParams rope = s.config.rope;
  rope.type = "linear";
  rope.factor = s.pi_factor;
  return rope;
}

inline void reset_peak() {
#ifdef LINEARARD_WITH_CUDA
  c10::cuda::CUDACachingAllocator::resetPeakStats(c10::cuda::current_device());
#endif
}

inline double peak_gib() {
#ifdef LINEARARD_WITH_CUDA
  const auto stats = c10::cuda::CUDACachingAllocator::getDeviceStats(c10::cuda::current_device());
  return double(stats.allocated_bytes[size_t(c10::CachingAllocator::StatType::AGGREGATE)].peak) / double(1 << 30);
#else
  return 0;
#endif
}

inline void empty_cache() {
#ifdef LINEARARD_WITH_CUDA
  c10::cuda::CUDACachingAllocator::emptyCache();
#endif
}

// Seconds since `t0` after the device has finished.
inline double seconds_since(std::chrono::steady_clock::time_point t0, at::Device device) {
  train::device_sync(device);
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace linearard::cli::bench_train
