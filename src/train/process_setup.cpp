#include "train/process_setup.h"

#include "common/error.h"
#include "common/option_error.h"

namespace linearard::train {

at::Device resolve_device(const std::string& device) {
  if (device == "auto") return at::hasCUDA() ? at::Device(at::kCUDA, 0) : at::Device(at::kCPU);
  at::Device d(at::kCPU);
  try {
    d = at::Device(device);
  } catch (const std::exception&) {
    fail_option("device", "expected auto, cpu, cuda or cuda:N, got '" + device + "'");
  }
  if (d.is_cuda() && !at::hasCUDA()) fail_option("device", "CUDA is not available on this machine");
  if (d.is_cuda() && !d.has_index()) d = at::Device(at::kCUDA, 0);
  if (!d.is_cpu() && !d.is_cuda()) fail_option("device", "only cpu and cuda are supported");
  return d;
}

at::ScalarType resolve_dtype(const std::string& dtype, at::Device device) {
  if (dtype.empty()) return device.is_cuda() ? at::kBFloat16 : at::kFloat;
  if (dtype == "bf16") return at::kBFloat16;
  if (dtype == "fp16") return at::kHalf;
  if (dtype == "fp32") return at::kFloat;
  fail_option("dtype", "expected bf16, fp16 or fp32, got '" + dtype + "'");
}

bool run_nproc_workers(int64_t nproc) {
  if (nproc < 1) fail_option("nproc", "must be >= 1");
  if (nproc == 1 || launched_by_nproc()) return false;
  launch_local_workers(int(nproc));
  return true;
}

ProcessSetup setup_processes(const std::string& device_option) {
  ProcessSetup s;
  s.device = local_device(resolve_device(device_option));
  s.group = ProcessGroup::from_environment(s.device);
  return s;
}

}  // namespace linearard::train
