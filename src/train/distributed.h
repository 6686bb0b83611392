// Data-parallel training over LibTorch's c10d: one process per device, started by torchrun or by
// `--nproc N` (launch_local_workers). Rendezvous uses the variables torchrun sets (RANK,
// WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT) through a c10d::TCPStore; the process group
// is Gloo for CPU tensors and NCCL for CUDA tensors. Without those variables (world size 1) there
// is no process group at all and every helper below is a no-op.
#pragma once
#include <ATen/ATen.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "train/qkv_adapter.h"

namespace linearard::train {

struct DistributedEnv {
  int rank = 0, world_size = 1, local_rank = 0;
  std::string master_addr = "127.0.0.1";
  int master_port = 29500;  // torchrun's default
};

// The torchrun variables; world size 1 when WORLD_SIZE is unset. Malformed values are an error
// naming the variable.
DistributedEnv read_distributed_env();
// True on rank 0 and in single-process runs: the process that prints and writes files.
bool is_main_process();

class ProcessGroup {
 public:
  // nullptr when the environment has world size 1. On CUDA, `device` must already be the local
  // one (local_device()).
  static std::shared_ptr<ProcessGroup> from_environment(at::Device device);
  ~ProcessGroup();

  int rank() const;
  int world_size() const;

  // Copies rank 0's values of `params` into every rank.
  void broadcast_from_rank0(const NamedTensors& params);
  // Element-wise sum over the ranks, in place.
  void all_reduce_sum(at::Tensor& t);
  // Every rank passes the same labels with its own int64 values; a value that differs between
  // ranks fails with "<where>: <label> differs between ranks" on every rank.
  void check_agreement(const std::string& where, const std::vector<std::string>& labels,
                       const std::vector<int64_t>& values);
  void barrier();
  // Starts a sum all-reduce of `t` in place without waiting; the returned function waits for it.
  // Every rank must start the same reductions in the same order.
  std::function<void()> start_all_reduce_sum(at::Tensor& t);

  static constexpr int64_t kBucketBytes = 25 << 20;  // torch DDP's default bucket_cap_mb = 25

 private:
  friend class GradientReducer;
  struct Impl;
  explicit ProcessGroup(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// Gradient averaging overlapped with the backward, like torch DDP's reducer: the parameters are
// split into buckets of about kBucketBytes in reverse order (the backward produces the last
// layers' gradients first); a post-accumulate-grad hook on each parameter notes when its gradient
// is final, and each full bucket is flattened and its all-reduce started at once, buckets always
// in index order so every rank issues the same collectives in the same order. finish() starts
// what is left (parameters without a gradient count as zeros), waits, and writes the averages
// back: every rank ends with the mean of the ranks' gradients.
class GradientReducer {
 public:
  GradientReducer(ProcessGroup& group, const NamedTensors& params);
  ~GradientReducer();  // removes the hooks
  GradientReducer(const GradientReducer&) = delete;
  GradientReducer& operator=(const GradientReducer&) = delete;

  // Call before the backward after which the gradients are complete (the last micro-batch).
  void arm();
  // After that backward: completes the reduction; the parameters' .grad hold the rank average.
  void finish();
  // Of the last step: how many buckets there are, and how many started during the backward.
  int64_t bucket_count() const;
  int64_t buckets_started_in_backward() const;

  struct Impl;  // public only so that the hooks in distributed.cpp can name it

 private:
  std::unique_ptr<Impl> impl_;
};

// cuda:LOCAL_RANK for a CUDA `device` in a multi-process run, else `device`.
at::Device local_device(at::Device device);

// `--nproc N` on one node: re-executes /proc/self/exe N times with this process's arguments minus
// --nproc and RANK/WORLD_SIZE/LOCAL_RANK/MASTER_ADDR=127.0.0.1/MASTER_PORT=<a free port> set,
// waits for all, and when one fails stops the others and fails naming its rank. Returns normally
// only when every rank exited 0.
void launch_local_workers(int nproc);
// True in a process that launch_local_workers started.
bool launched_by_nproc();

}  // namespace linearard::train
