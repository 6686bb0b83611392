#include "train/distributed.h"

#include <ATen/core/grad_mode.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <torch/csrc/autograd/function_hook.h>
#include <torch/csrc/autograd/variable.h>
#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>
#include <mutex>

#include "common/error.h"
#include "common/option_error.h"
#include "train/stop_signals.h"

// The torch wheel ships libgloo inside libtorch_cpu but not its headers; ProcessGroupGloo.hpp
// compiles against Debian's libgloo-dev (it holds gloo types only behind pointers).
#if __has_include(<gloo/algorithm.h>)
#define LINEARARD_WITH_GLOO 1
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#endif
#ifdef LINEARARD_WITH_NCCL
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#endif
#ifdef LINEARARD_WITH_CUDA
#include <c10/cuda/CUDAFunctions.h>
#endif

namespace linearard::train {
namespace {

constexpr const char* kLaunchedVar = "LINEARARD_NPROC_CHILD";

int env_int(const char* name, int fallback, int min) {
  const char* v = std::getenv(name);
  if (v == nullptr || *v == '\0') return fallback;
  char* end = nullptr;
  errno = 0;
  const long x = std::strtol(v, &end, 10);
  if (errno != 0 || *end != '\0' || x < min || x > (1L << 30))
    fail(name, std::string("expected an integer >= ") + std::to_string(min) + ", got '" + v + "'");
  return int(x);
}

}  // namespace

DistributedEnv read_distributed_env() {
  DistributedEnv e;
  e.world_size = env_int("WORLD_SIZE", 1, 1);
  if (e.world_size == 1) return e;
  e.rank = env_int("RANK", -1, 0);
  if (e.rank < 0) fail("RANK", "is required when WORLD_SIZE > 1");
  if (e.rank >= e.world_size) fail("RANK", "must be < WORLD_SIZE (" + std::to_string(e.world_size) + ")");
  e.local_rank = env_int("LOCAL_RANK", e.rank, 0);
  if (const char* a = std::getenv("MASTER_ADDR"); a != nullptr && *a != '\0') e.master_addr = a;
  e.master_port = env_int("MASTER_PORT", e.master_port, 1);
  if (e.master_port > 65535) fail("MASTER_PORT", "must be a TCP port (1..65535)");
  return e;
}

bool is_main_process() { return read_distributed_env().rank == 0; }

at::Device local_device(at::Device device) {
  const DistributedEnv e = read_distributed_env();
  if (e.world_size == 1 || !device.is_cuda()) return device;
  return at::Device(at::kCUDA, c10::DeviceIndex(e.local_rank));
}

struct ProcessGroup::Impl {
  int rank = 0, world_size = 1;
  at::Device device = at::kCPU;  // where the communicated buffers live
  c10::intrusive_ptr<c10d::Store> store;
  c10::intrusive_ptr<c10d::Backend> backend;

  void all_reduce(at::Tensor& t, c10d::ReduceOp op) {
    std::vector<at::Tensor> ts{t};
    c10d::AllreduceOptions opts;
    opts.reduceOp = op;
    backend->allreduce(ts, opts)->wait();
  }
};

ProcessGroup::ProcessGroup(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
ProcessGroup::~ProcessGroup() = default;
int ProcessGroup::rank() const { return impl_->rank; }
int ProcessGroup::world_size() const { return impl_->world_size; }

std::shared_ptr<ProcessGroup> ProcessGroup::from_environment(at::Device device) {
  const DistributedEnv e = read_distributed_env();
  if (e.world_size == 1) return nullptr;
  auto impl = std::make_unique<Impl>();
  impl->rank = e.rank;
  impl->world_size = e.world_size;
  impl->device = device;
  try {
    // torchrun (elastic agent) already serves a store at MASTER_ADDR:MASTER_PORT and says so with
    // TORCHELASTIC_USE_AGENT_STORE=True: then every rank is a client, rank 0 included, and our keys
    // get a prefix of their own (per restart) so they never meet the agent's.
    const char* agent_store = std::getenv("TORCHELASTIC_USE_AGENT_STORE");
    const bool use_agent_store = agent_store != nullptr && std::string(agent_store) == "True";
    c10d::TCPStoreOptions so;
    so.port = uint16_t(e.master_port);
    so.isServer = e.rank == 0 && !use_agent_store;
    so.numWorkers = size_t(e.world_size);
    c10::intrusive_ptr<c10d::Store> tcp = c10::make_intrusive<c10d::TCPStore>(e.master_addr, so);
    const char* restart = std::getenv("TORCHELASTIC_RESTART_COUNT");
    impl->store = c10::make_intrusive<c10d::PrefixStore>(
        std::string("linearard/") + (restart != nullptr ? restart : "0"), tcp);
    if (device.is_cuda()) {
#ifdef LINEARARD_WITH_CUDA
      // This rank's GPU becomes the current one, so that nothing (contexts, caching allocator
      // stats, NCCL) lands on GPU 0 by default.
      c10::cuda::set_device(device.index());
#endif
#ifdef LINEARARD_WITH_NCCL
      // NVLink SHARP (multicast) must stay off on the shared GPU machines; force it even when the
      // environment asks for it.
      setenv("NCCL_NVLS_ENABLE", "0", /*overwrite=*/1);
      impl->backend = c10::make_intrusive<c10d::ProcessGroupNCCL>(impl->store, e.rank, e.world_size);
#else
      fail_option("device", "multi-process CUDA training needs a build with NCCL (LINEARARD_WITH_NCCL)");
#endif
    } else {
#ifndef LINEARARD_WITH_GLOO
      fail_option("device", "multi-process CPU training needs a build with the gloo headers (libgloo-dev)");
#else
      auto opts = c10d::ProcessGroupGloo::Options::create();
      const char* ifname = std::getenv("GLOO_SOCKET_IFNAME");
      opts->devices.push_back(ifname != nullptr && *ifname != '\0'
                                  ? c10d::ProcessGroupGloo::createDeviceForInterface(ifname)
                                  : c10d::ProcessGroupGloo::createDefaultDevice());
      impl->backend = c10::make_intrusive<c10d::ProcessGroupGloo>(impl->store, e.rank, e.world_size, opts);
#endif
    }
  } catch (const Error&) {
    throw;
  } catch (const std::exception& ex) {
    std::string what = ex.what();
    what = what.substr(0, what.find('\n'));
    fail("distributed rendezvous at " + e.master_addr + ":" + std::to_string(e.master_port), what);
  }
  return std::shared_ptr<ProcessGroup>(new ProcessGroup(std::move(impl)));
}

void ProcessGroup::broadcast_from_rank0(const NamedTensors& params) {
  at::NoGradGuard no_grad;
  for (const auto& [name, p] : params) {
    at::Tensor buf = p.detach().contiguous().to(impl_->device);
    std::vector<at::Tensor> ts{buf};
    c10d::BroadcastOptions opts;
    opts.rootRank = 0;
    impl_->backend->broadcast(ts, opts)->wait();
    p.detach().copy_(buf);
  }
}

void ProcessGroup::all_reduce_sum(at::Tensor& t) {
  at::Tensor buf = t.contiguous().to(impl_->device);
  impl_->all_reduce(buf, c10d::ReduceOp::SUM);
  t.copy_(buf);
}

void ProcessGroup::check_agreement(const std::string& where, const std::vector<std::string>& labels,
                                   const std::vector<int64_t>& values) {
  const auto mine = at::tensor(values, at::kLong).to(impl_->device);
  at::Tensor lo = mine.clone(), hi = mine.clone();
  impl_->all_reduce(lo, c10d::ReduceOp::MIN);
  impl_->all_reduce(hi, c10d::ReduceOp::MAX);
  const at::Tensor differs = lo.ne(hi).cpu();
  std::string names;
  for (size_t k = 0; k < labels.size(); ++k)
    if (differs[int64_t(k)].item<bool>()) names += (names.empty() ? "" : ", ") + labels[k];
  if (!names.empty()) fail(where, names + " differ(s) between ranks");
}

std::function<void()> ProcessGroup::start_all_reduce_sum(at::Tensor& t) {
  std::vector<at::Tensor> ts{t};
  c10d::AllreduceOptions opts;
  opts.reduceOp = c10d::ReduceOp::SUM;
  c10::intrusive_ptr<c10d::Work> work = impl_->backend->allreduce(ts, opts);
  return [work] { work->wait(); };
}

void ProcessGroup::barrier() {
  c10d::BarrierOptions opts;
  if (impl_->device.is_cuda()) opts.device_ids = {impl_->device.index()};  // NCCL: this rank's device
  impl_->backend->barrier(opts)->wait();
}

struct GradientReducer::Impl {
  struct Bucket {
    std::vector<size_t> members;  // indices into params
    size_t ready = 0;
    bool refired = false;  // a member's gradient changed after the bucket was started
    at::Tensor flat;       // (sum of members' numel,) on the group's device
    std::function<void()> wait;
  };

  ProcessGroup& group;
  at::Device device;
  NamedTensors params;
  std::vector<Bucket> buckets;
  std::vector<size_t> bucket_of;
  std::vector<bool> seen;
  bool armed = false;
  size_t next = 0;  // the first bucket not started yet
  size_t started_in_backward = 0;
  std::mutex mutex;

  Impl(ProcessGroup& g, at::Device d, const NamedTensors& p) : group(g), device(d), params(p) {}

  void flatten(Bucket& b) {
    std::vector<at::Tensor> parts;
    for (size_t i : b.members) {
      const at::Tensor& p = params[i].second;
      if (!p.grad().defined()) p.mutable_grad() = at::zeros_like(p);
      parts.push_back(p.grad().reshape({-1}));
    }
    b.flat = at::cat(parts).to(device);
  }

  void start(Bucket& b) {
    flatten(b);
    b.wait = group.start_all_reduce_sum(b.flat);
  }

  void on_ready(size_t i) {
    std::lock_guard<std::mutex> lock(mutex);
    if (!armed) return;
    Bucket& b = buckets[bucket_of[i]];
    if (seen[i]) {
      b.refired = true;  // a parameter used twice: finish() reduces this bucket again
      return;
    }
    seen[i] = true;
    ++b.ready;
    at::NoGradGuard no_grad;
    while (next < buckets.size() && buckets[next].ready == buckets[next].members.size()) start(buckets[next++]);
  }
};

namespace {

struct ReadyHook : torch::autograd::PostAccumulateGradHook {
  ReadyHook(GradientReducer::Impl* impl, size_t index) : impl(impl), index(index) {}
  void operator()(const torch::autograd::Variable& /*param*/) override { impl->on_ready(index); }
  GradientReducer::Impl* impl;
  size_t index;
};

}  // namespace

GradientReducer::GradientReducer(ProcessGroup& group, const NamedTensors& params)
    : impl_(std::make_unique<Impl>(group, group.impl_->device, params)) {
  Impl& s = *impl_;
  s.bucket_of.assign(params.size(), 0);
  s.seen.assign(params.size(), false);
  int64_t bytes = 0;
  for (size_t n = params.size(); n-- > 0;) {
    const at::Tensor& p = params[n].second;
    const bool fits = !s.buckets.empty() &&
                      params[s.buckets.back().members.front()].second.scalar_type() == p.scalar_type() &&
                      bytes + int64_t(p.nbytes()) <= ProcessGroup::kBucketBytes;
    if (!fits) {
      s.buckets.emplace_back();
      bytes = 0;
    }
    s.buckets.back().members.push_back(n);
    s.bucket_of[n] = s.buckets.size() - 1;
    bytes += int64_t(p.nbytes());
    torch::autograd::impl::set_post_acc_grad_hooks(p, std::make_unique<ReadyHook>(impl_.get(), n));
  }
}

GradientReducer::~GradientReducer() {
  for (const auto& [name, p] : impl_->params) torch::autograd::impl::set_post_acc_grad_hooks(p, nullptr);
}

void GradientReducer::arm() {
  std::lock_guard<std::mutex> lock(impl_->mutex);
  Impl& s = *impl_;
  s.armed = true;
  s.next = 0;
  std::fill(s.seen.begin(), s.seen.end(), false);
  for (auto& b : s.buckets) {
    b.ready = 0;
    b.refired = false;
    b.flat = at::Tensor();
    b.wait = nullptr;
  }
}

void GradientReducer::finish() {
  at::NoGradGuard no_grad;
  Impl& s = *impl_;
  {
    std::lock_guard<std::mutex> lock(s.mutex);
    s.armed = false;
  }
  s.started_in_backward = s.next;
  while (s.next < s.buckets.size()) s.start(s.buckets[s.next++]);  // unused parameters: zeros
  const double W = double(s.group.world_size());
  for (auto& b : s.buckets) {
    b.wait();
    if (b.refired) {  // the started reduction saw a partial gradient: reduce the final one
      s.flatten(b);
      s.group.start_all_reduce_sum(b.flat)();
    }
    b.flat.div_(W);
    int64_t offset = 0;
    for (size_t i : b.members) {
      at::Tensor g = s.params[i].second.grad();
      g.copy_(b.flat.narrow(0, offset, g.numel()).view(g.sizes()));
      offset += g.numel();
    }
    b.flat = at::Tensor();
    b.wait = nullptr;
  }
}

int64_t GradientReducer::bucket_count() const { return int64_t(impl_->buckets.size()); }
int64_t GradientReducer::buckets_started_in_backward() const { return int64_t(impl_->started_in_backward); }

bool launched_by_nproc() { return std::getenv(kLaunchedVar) != nullptr; }

namespace {

// The launcher forwards SIGINT / SIGTERM to its workers, which run in their own process group so
// that a terminal's Ctrl-C reaches each of them once, through here: they stop after the step
// (stop_signals.h); a second signal is forwarded too and aborts them.
constexpr int kMaxWorkers = 4096;
pid_t g_workers[kMaxWorkers];
volatile sig_atomic_t g_worker_count = 0;

void forward_signal(int signo) {
  for (int i = 0; i < g_worker_count; ++i)
    if (g_workers[i] > 0) ::kill(g_workers[i], signo);
}

}  // namespace

void launch_local_workers(int nproc) {
  if (nproc > kMaxWorkers) fail_option("nproc", "at most " + std::to_string(kMaxWorkers) + " processes");
  if (nproc < 1) fail_option("nproc", "must be >= 1");
  if (std::getenv("WORLD_SIZE") != nullptr)
    fail_option("nproc", "cannot be combined with torchrun (WORLD_SIZE is already set)");
  // The arguments of this process, minus --nproc N / --nproc=N.
  std::ifstream in("/proc/self/cmdline", std::ios::binary);
  const std::string raw((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::vector<std::string> args;
  for (size_t p = 0; p < raw.size();) {
    const size_t end = raw.find('\0', p);
    args.push_back(raw.substr(p, end - p));
    p = end == std::string::npos ? raw.size() : end + 1;
  }
  std::vector<std::string> kept;
  for (size_t k = 0; k < args.size(); ++k) {
    if (k > 0 && args[k] == "--nproc") {
      ++k;  // and its value
      continue;
    }
    if (k > 0 && args[k].rfind("--nproc=", 0) == 0) continue;
    kept.push_back(args[k]);
  }
  // A free port: bind port 0 and read back what the kernel chose. Another process could take it
  // before rank 0's store binds it, which then fails with a clear rendezvous error.
  const int sock = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(addr);
  if (sock < 0 || ::bind(sock, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
      ::getsockname(sock, reinterpret_cast<sockaddr*>(&addr), &len) != 0)
    fail_option("nproc", std::string("cannot find a free TCP port: ") + std::strerror(errno));
  const int port = ntohs(addr.sin_port);
  ::close(sock);

  std::fflush(stdout);
  std::fflush(stderr);
  std::vector<pid_t> pids(size_t(nproc), -1);
  for (int r = 0; r < nproc; ++r) {
    const pid_t pid = ::fork();
    if (pid < 0) fail_option("nproc", std::string("fork failed: ") + std::strerror(errno));
    if (pid == 0) {
      ::setpgid(0, 0);                     // signals come through the launcher (forward_signal)
      ::prctl(PR_SET_PDEATHSIG, SIGKILL);  // and a killed launcher takes its workers along
      setenv("RANK", std::to_string(r).c_str(), 1);
      setenv("LOCAL_RANK", std::to_string(r).c_str(), 1);
      setenv("WORLD_SIZE", std::to_string(nproc).c_str(), 1);
      setenv("LOCAL_WORLD_SIZE", std::to_string(nproc).c_str(), 1);
      setenv("MASTER_ADDR", "127.0.0.1", 1);
      setenv("MASTER_PORT", std::to_string(port).c_str(), 1);
      setenv(kLaunchedVar, "1", 1);
      std::vector<char*> argv;
      for (auto& a : kept) argv.push_back(a.data());
      argv.push_back(nullptr);
      ::execv("/proc/self/exe", argv.data());
      std::fprintf(stderr, "linearard: error: --nproc: exec of /proc/self/exe failed: %s\n", std::strerror(errno));
      std::_Exit(127);
    }
    pids[size_t(r)] = pid;
    g_workers[r] = pid;
    g_worker_count = r + 1;
  }
  struct sigaction forward {}, previous_int, previous_term;
  forward.sa_handler = forward_signal;
  sigemptyset(&forward.sa_mask);
  forward.sa_flags = SA_RESTART;
  ::sigaction(SIGINT, &forward, &previous_int);
  ::sigaction(SIGTERM, &forward, &previous_term);
  int running = nproc;
  int interrupted = 0;  // the signal of a rank that stopped on SIGINT / SIGTERM (exit 128 + signal)
  std::string failure;
  while (running > 0) {
    int status = 0;
    const pid_t pid = ::waitpid(-1, &status, 0);
    if (pid < 0) {
      if (errno == EINTR) continue;
      break;
    }
    int rank = -1;
    for (int r = 0; r < nproc; ++r)
      if (pids[size_t(r)] == pid) rank = r;
    if (rank < 0) continue;
    pids[size_t(rank)] = -1;
    --running;
    const bool ok = WIFEXITED(status) && WEXITSTATUS(status) == 0;
    const int code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    if (code == 128 + SIGINT || code == 128 + SIGTERM) {  // stopped cleanly after a checkpoint
      interrupted = code - 128;
      continue;
    }
    if (!ok && failure.empty()) {
      failure = "rank " + std::to_string(rank) +
                (WIFEXITED(status) ? " exited with code " + std::to_string(WEXITSTATUS(status))
                                   : " was killed by signal " + std::to_string(WTERMSIG(status)));
      // SIGKILL: the others may wait in a collective for the failed rank and would never reach
      // the end of a step (where SIGTERM takes effect).
      for (pid_t other : pids)
        if (other > 0) ::kill(other, SIGKILL);
    }
  }
  g_worker_count = 0;
  ::sigaction(SIGINT, &previous_int, nullptr);
  ::sigaction(SIGTERM, &previous_term, nullptr);
  if (!failure.empty()) fail_option("nproc", failure);
  if (interrupted != 0) exit_interrupted(interrupted);  // the same exit code as the workers
}

}  // namespace linearard::train
