// `linearard bench load FILE|DIR`: how fast checkpoint weights become usable tensors, against the
// floor of reading the same bytes with `cat FILE > /dev/null`. Runs the two alternately and reports
// medians and the ratio load / cat (target <= 2). With --make-test-file PATH it first writes a test
// checkpoint of random F32/BF16 tensors with our writer.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include "cli/command.h"
#include "common/error.h"
#include "io/checkpoint.h"

namespace linearard::cli {
namespace {

struct LoadBenchOptions {
  std::string path;       // safetensors file or HF model directory
  int repeats = 3;
  // Intra-op threads for the touch (0 = LibTorch's default). One by default: cat reads on one core,
  // and on a shared machine a 2-thread OpenMP region waits for its slowest thread (measured 2.3x
  // slower than 1 thread at load average 14 on 2 cores).
  int threads = 1;
  std::string touch = "copy";  // copy: into preallocated RAM, as a loader; sum: reduce every tensor
  std::string make_test_file;
  int64_t size_mb = 1024;
};

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

std::string shell_quote(const std::string& s) {
  std::string q = "'";
  for (char c : s) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return q + "'";
}

// Random LLaMA-like tensors: alternating BF16 (4096 x 4096, 32 MiB) and F32 (2048 x 4096, 32 MiB)
// blocks, the last one trimmed so the data totals size_mb MiB.
void make_test_file(const std::string& path, int64_t size_mb) {
  if (size_mb <= 0) fail("--size-mb", "must be positive");
  std::vector<std::pair<std::string, at::Tensor>> tensors;
  int64_t left = size_mb << 20;
  at::manual_seed(0);
  for (int i = 0; left > 0; ++i) {
    const bool bf16 = i % 2 == 0;
    const int64_t row_bytes = 4096 * (bf16 ? 2 : 4);
    const int64_t rows = std::min<int64_t>(bf16 ? 4096 : 2048, std::max<int64_t>(1, left / row_bytes));
    at::Tensor t = at::randn({rows, 4096});
    tensors.emplace_back("model.layers." + std::to_string(i / 2) + (bf16 ? ".mlp.up_proj.weight" : ".mlp.gate_proj.weight"),
                         bf16 ? t.to(at::kBFloat16) : t);
    left -= rows * row_bytes;
  }
  io::save_tensors(path, tensors, {{"format", "pt"}});
  std::printf("wrote %s: %zu tensors, %lld MiB\n", path.c_str(), tensors.size(), static_cast<long long>(size_mb));
}

// cat of the weights files: the page-cache (or disk) read floor for the same bytes.
double time_cat(const std::string& path) {
  std::string cmd = std::filesystem::is_directory(path) ? "cat " + shell_quote(path) + "/*.safetensors > /dev/null"
                                                        : "cat " + shell_quote(path) + " > /dev/null";
  auto t0 = std::chrono::steady_clock::now();
  if (std::system(cmd.c_str()) != 0) fail(path, "'" + cmd + "' failed");
  return seconds_since(t0);
}

// Open, materialise every tensor as an at::Tensor and touch every byte; returns seconds.
// copy: into a RAM buffer allocated beforehand, as a loader filling the parameters it allocated;
// sum: reduce each tensor (floats as themselves, other types as bytes).
double time_load(const std::string& path, const std::string& touch, double* checksum, uint64_t* bytes) {
  at::Tensor scratch;  // (max tensor bytes) bytes
  if (touch == "copy") {
    io::CheckpointWeights sizes(path);
    uint64_t max_bytes = 0;
    for (const std::string& name : sizes.names()) max_bytes = std::max(max_bytes, sizes.info(name).nbytes());
    scratch = at::zeros({static_cast<int64_t>(max_bytes) + 8}, at::kByte);  // zeroed: pages already faulted in
  }
  auto t0 = std::chrono::steady_clock::now();
  io::CheckpointWeights ckpt(path);
  double sum = 0;
  *bytes = 0;
  for (const std::string& name : ckpt.names()) {
    at::Tensor t = ckpt.get(name);
    *bytes += t.nbytes();
    if (t.numel() == 0) continue;
    if (touch == "copy") {
      at::Tensor dst = scratch.narrow(0, 0, t.nbytes()).view(t.scalar_type()).view(t.sizes());
      dst.copy_(t);
      sum += static_cast<double>(scratch[0].item<uint8_t>());
    } else {
      sum += (t.is_floating_point() ? t : t.reshape(-1).view(at::kByte)).sum().item<double>();
    }
  }
  *checksum = sum;
  return seconds_since(t0);
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

void run(const LoadBenchOptions& o) {
  std::string path = o.path;
  if (!o.make_test_file.empty()) {
    make_test_file(o.make_test_file, o.size_mb);
    if (path.empty()) path = o.make_test_file;
  }
  if (path.empty()) fail("bench load", "give FILE or --make-test-file PATH");
  if (!std::filesystem::exists(path)) fail(path, "no such file or directory");
  if (o.repeats < 1) fail("--repeats", "must be at least 1");
  if (o.threads < 0) fail("--threads", "must be 0 (LibTorch default) or more");
  if (o.threads > 0) at::set_num_threads(o.threads);
  if (o.touch != "sum" && o.touch != "copy") fail("--touch", "must be copy or sum, not '" + o.touch + "'");

  time_cat(path);  // warm-up: both contenders then read from the page cache
  std::vector<double> cat_s, load_s;
  double checksum = 0;
  uint64_t bytes = 0;
  for (int r = 0; r < o.repeats; ++r) {
    cat_s.push_back(time_cat(path));
    load_s.push_back(time_load(path, o.touch, &checksum, &bytes));
  }
  const double gib = static_cast<double>(bytes) / (1 << 30);
  const double c = median(cat_s), l = median(load_s);
  std::printf("%s: %.3f GiB of tensor data, %d repeats, %d intra-op threads, warm page cache\n", path.c_str(), gib,
              o.repeats, at::get_num_threads());
  std::printf("cat > /dev/null          median %.3f s  (%.2f GiB/s)\n", c, gib / c);
  std::printf("load (open+get+%-4s)     median %.3f s  (%.2f GiB/s)  checksum %.6g\n", o.touch.c_str(), l, gib / l,
              checksum);
  std::printf("load / cat               %.2f\n", l / c);
}

CommandRegistration load_command(
    "load", "time opening a checkpoint and materialising every tensor, against cat FILE > /dev/null",
    [](CLI::App& sub) {
      auto o = std::make_shared<LoadBenchOptions>();
      sub.add_option("path", o->path, "safetensors file or HF model directory");
      sub.add_option("--repeats", o->repeats, "timed repetitions of each (median reported)");
      sub.add_option("--touch", o->touch, "copy: into preallocated RAM as a loader would (default); sum: reduce each tensor");
      sub.add_option("--threads", o->threads, "intra-op threads for the touch (default 1; 0 = LibTorch's default)");
      sub.add_option("--make-test-file", o->make_test_file, "first write random F32/BF16 tensors to this path");
      sub.add_option("--size-mb", o->size_mb, "tensor data of the test file, MiB");
      sub.callback([o] { run(*o); });
    },
    "bench");

}  // namespace
}  // namespace linearard::cli
