// Waits for the device's queued work (for phase timings); a no-op on CPU.
#pragma once
#include <ATen/ATen.h>

#ifdef LINEARARD_WITH_CUDA
#include <c10/cuda/CUDAFunctions.h>
#endif

namespace linearard::train {

inline void device_sync(at::Device device) {
#ifdef LINEARARD_WITH_CUDA
  if (device.is_cuda()) c10::cuda::device_synchronize();
#else
  (void)device;
#endif
}

}  // namespace linearard::train
