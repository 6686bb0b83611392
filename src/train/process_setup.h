// Where a training process runs: its device and dtype from the `device` / `dtype` options, the
// --nproc worker launch, and the process group of a data-parallel run (train/distributed.h).
#pragma once
#include <ATen/ATen.h>

#include <memory>
#include <string>

#include "train/distributed.h"

namespace linearard::train {

// "auto" -> cuda:0 when available, else cpu; "cpu"; "cuda" / "cuda:N".
at::Device resolve_device(const std::string& device);
// "" -> bf16 on CUDA, fp32 on CPU.
at::ScalarType resolve_dtype(const std::string& dtype, at::Device device);

// nproc N > 1 in the launching process: runs N worker processes of this command
// (launch_local_workers), waits for them and returns true; false in a worker or when N = 1.
bool run_nproc_workers(int64_t nproc);

// This process's device (cuda:LOCAL_RANK under torchrun) and its process group (nullptr when
// the world size is 1).
struct ProcessSetup {
  at::Device device = at::kCPU;
  std::shared_ptr<ProcessGroup> group;
};
ProcessSetup setup_processes(const std::string& device_option);

}  // namespace linearard::train
