// Helpers shared by `linearard bench distill` and `bench cpt`: the paper's student RoPE of a model
// shape (bench/case_grid.h), CUDA peak-memory counters and a wall clock that waits for the device.
#pragma once
#include <ATen/ATen.h>

#include <chrono>
#include <string>

#include "bench/case_grid.h"
#include "model/model_config.h"
#include "train/device_sync.h"

#ifdef LINEARARD_WITH_CUDA
#include <c10/cuda/CUDACachingAllocator.h>
#include <c10/cuda/CUDAFunctions.h>
#endif

namespace linearard::cli::bench_train {

using Shape = bench::ModelShape;

// The two shapes of the paper's training runs.
inline Shape shape(const std::string& name) { return bench::model_shape(name, {"7b", "8b"}); }

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
