// `linearard bench relation-kl`: times the CUDA relation-KL op (the self relation, the training
// case: forward + fused self backward) against the naive materialised LibTorch version and PyTorch
// SDPA (flash) at the same shape, with effective TFLOP/s, % of a measured bf16 GEMM and peak extra
// memory. Cases: bench/case_grid.h (RelationKLGrid); FLOP model: bench/flop_model.h. Numbers go to
// docs/perf.md. With --verbose the op logs the kernel it chose for each case (stderr).
// --docs N (packed documents, issue 18): the op runs with N equal-length documents per block
// (RelationKLOptions::doc_ids) and is timed next to the same op on one document; its TFLOP/s count
// the block-diagonal work only (bench::packed_work_fraction), and "packed / ideal" is the packed
// time over the single-document time scaled by that fraction (1.0 = no overhead for the masks).
#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <fstream>
#include <functional>
#include <string>
#include <vector>

#include "bench/case_grid.h"
#include "bench/flop_model.h"
#include "cli/command.h"
#include "common/error.h"
#include "ops/relation_kl/relation_kl.h"
#include "ops/relation_kl/relation_kl_reference.h"

#ifdef LINEARARD_WITH_CUDA
#include <ATen/cuda/CUDAContext.h>
#include <ATen/cuda/CUDAEvent.h>
#include <c10/cuda/CUDACachingAllocator.h>

#include "ops/relation_kl/relation_kl_cuda.h"
#endif

namespace linearard::cli {
namespace {

struct BenchOptions : bench::RelationKLGrid {
  bool naive = true, sdpa = true;
  std::string csv;
};

using bench::kSdpaFwdBwdOverFwd;
using bench::packed_work_fraction;
using bench::relation_kl_bwd_flops;
using bench::relation_kl_fwd_flops;
using bench::sdpa_fwd_flops;

#ifdef LINEARARD_WITH_CUDA

struct Timing {
  double median = NAN, p20 = NAN, p80 = NAN;  // ms
  bool oom = false;
  int64_t peak_extra = -1;  // bytes above what was allocated before the first call
};

double quantile(std::vector<double> v, double q) {
  std::sort(v.begin(), v.end());
  const double pos = q * (v.size() - 1);
  const size_t lo = static_cast<size_t>(std::floor(pos)), hi = std::min(lo + 1, v.size() - 1);
  return v[lo] + (v[hi] - v[lo]) * (pos - lo);
}

int64_t allocated_now() {
  const auto dev = c10::cuda::current_device();
  return c10::cuda::CUDACachingAllocator::getDeviceStats(dev)
      .allocated_bytes[static_cast<size_t>(c10::CachingAllocator::StatType::AGGREGATE)]
      .current;
}
int64_t allocated_peak() {
  const auto dev = c10::cuda::current_device();
  return c10::cuda::CUDACachingAllocator::getDeviceStats(dev)
      .allocated_bytes[static_cast<size_t>(c10::CachingAllocator::StatType::AGGREGATE)]
      .peak;
}

// Times fn with CUDA events: warm-up calls, then `repeats` timed calls; the first call also
// measures the peak allocation above the memory in use before it.
Timing time_cuda(const std::function<void()>& fn, int warmup, int repeats) {
  Timing t;
  try {
    const auto dev = c10::cuda::current_device();
    at::cuda::device_synchronize();
    c10::cuda::CUDACachingAllocator::resetPeakStats(dev);
    const int64_t before = allocated_now();
    fn();
    at::cuda::device_synchronize();
    t.peak_extra = allocated_peak() - before;
    for (int i = 0; i < warmup; ++i) fn();
    std::vector<double> ms;
    at::cuda::CUDAEvent start(cudaEventDefault), stop(cudaEventDefault);
    for (int i = 0; i < repeats; ++i) {
      start.record();
      fn();
      stop.record();
      stop.synchronize();
      ms.push_back(start.elapsed_time(stop));
    }
    t.median = quantile(ms, 0.5);
    t.p20 = quantile(ms, 0.2);
    t.p80 = quantile(ms, 0.8);
  } catch (const c10::OutOfMemoryError&) {
    t.oom = true;
  }
  at::cuda::device_synchronize();
  c10::cuda::CUDACachingAllocator::emptyCache();
  return t;
}

// TFLOP/s of an 8192^3 bf16 matmul on random data: the "100 %" of the report (anchors §2.1).
double matmul_tflops() {
  auto opts = at::TensorOptions().dtype(at::kBFloat16).device(at::kCUDA);
  auto a = at::randn({8192, 8192}, opts), b = at::randn({8192, 8192}, opts);
  auto t = time_cuda([&] { at::matmul(a, b); }, 3, 10);
  return 2.0 * 8192.0 * 8192.0 * 8192.0 / (t.median * 1e-3) / 1e12;
}

std::string fmt_ms(const Timing& t) {
  if (t.oom) return "OOM";
  if (std::isnan(t.median)) return "-";
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.3f [%.3f, %.3f]", t.median, t.p20, t.p80);
  return buf;
}
std::string fmt_num(double v, const char* f) {
  if (std::isnan(v)) return "-";
  char buf[32];
  std::snprintf(buf, sizeof buf, f, v);
  return buf;
}

void run_bench(const BenchOptions& o) {
  if (!at::hasCUDA()) fail("bench relation-kl", "no CUDA device");
  const at::ScalarType dtype = o.dtype == "bf16" ? at::kBFloat16
                               : o.dtype == "fp16" ? at::kHalf
                               : o.dtype == "fp32" ? at::kFloat
                                                   : (fail("--dtype", "expected bf16, fp16 or fp32, got " + o.dtype), at::kFloat);
  const auto props = at::cuda::getCurrentDeviceProperties();
  const std::string gpu = props->name;
  char stamp[32];
  const std::time_t now = std::time(nullptr);
  std::strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%SZ", std::gmtime(&now));
  if (o.docs < 1) fail("--docs", "expected a number of documents >= 1, got " + std::to_string(o.docs));
  std::printf("relation-kl bench on %s (%d SMs), %s, B=%lld H=%lld %s, warmup %d, repeats %d%s\n",
              gpu.c_str(), props->multiProcessorCount, o.dtype.c_str(), (long long)o.B,
              (long long)o.H, o.causal ? "causal" : "non-causal", o.warmup, o.repeats,
              o.docs > 1 ? (", " + std::to_string(o.docs) + " packed documents per block").c_str() : "");
  const double peak = matmul_tflops();
  std::printf("bf16 8192^3 at::matmul: %.0f TFLOP/s (the 100%% below)\n", peak);

  std::ofstream csv;
  if (!o.csv.empty()) {
    const bool exists = std::ifstream(o.csv).good();
    csv.open(o.csv, std::ios::app);
    if (!csv) fail(o.csv, "cannot open for appending");
    if (!exists)
      csv << "gpu,timestamp,dtype,B,H,T,D,causal,impl,fwd_ms,fwd_p20,fwd_p80,fwdbwd_ms,fwdbwd_p20,"
             "fwdbwd_p80,fwd_tflops,fwdbwd_tflops,peak_extra_bytes,input_bytes\n";
  }

  struct Row {
    int64_t D, T;
    Timing ours_f, ours_fb, naive_f, naive_fb, sdpa_f, sdpa_fb;
    double in_bytes;
    Timing one_f, one_fb;  // --docs N > 1: the same op on one document (ours_* are then packed)
  };
  std::vector<Row> rows;
  for (int64_t D : o.D)
    for (int64_t T : o.T) {
      Row r{D, T, {}, {}, {}, {}, {}, {}, 0, {}, {}};
      auto opts = at::TensorOptions().dtype(dtype).device(at::kCUDA);
      // Teacher = student + noise, like a context-extended model and its original (never zeros).
      auto x = at::randn({o.B, o.H, T, D}, opts);                              // (B, H, T, Ds)
      auto y = (x.to(at::kFloat) + 0.5 * at::randn_like(x, at::kFloat)).to(dtype);  // (B, H, T, Dt)
      auto grad = at::randn({o.B, o.H, T}, opts.dtype(at::kFloat));            // (B, H, T) dL/dKL
      r.in_bytes = double(x.nbytes() + y.nbytes());
      ops::RelationKLOptions ko;
      ko.scale_s = ko.scale_t = 1.0 / std::sqrt(double(D));
      ko.causal = o.causal;
      const ops::RelationKLOptions one_doc = ko;
      if (o.docs > 1) {
        // Documents of equal length, ids 0 .. docs-1 (the first T % docs one token longer).
        const int64_t n = std::min(o.docs, T), base = T / n, longer = T % n;
        auto pos = at::arange(T, at::TensorOptions().dtype(at::kLong));
        auto ids = at::where(pos < longer * (base + 1), pos.div(base + 1, "floor"),
                             longer + (pos - longer * (base + 1)).div(base, "floor"));
        ko.doc_ids = ids.to(at::kInt).view({1, T}).expand({o.B, T}).contiguous().to(at::kCUDA);  // (B, T)
        r.one_f = time_cuda([&] { ops::relation_kl_forward_cuda(x, x, y, y, std::nullopt, one_doc); },
                            o.warmup, o.repeats);
        r.one_fb = time_cuda(
            [&] {
              auto st = ops::relation_kl_forward_cuda(x, x, y, y, std::nullopt, one_doc);
              ops::relation_kl_self_backward_cuda(grad, x, y, std::nullopt, st, one_doc);
            },
            o.warmup, o.repeats);
      }

      r.ours_f = time_cuda([&] { ops::relation_kl_forward_cuda(x, x, y, y, std::nullopt, ko); },
                           o.warmup, o.repeats);
      r.ours_fb = time_cuda(
          [&] {
            auto st = ops::relation_kl_forward_cuda(x, x, y, y, std::nullopt, ko);
            ops::relation_kl_self_backward_cuda(grad, x, y, std::nullopt, st, ko);
          },
          o.warmup, o.repeats);
      if (o.naive) {
        r.naive_f = time_cuda(
            [&] {
              at::NoGradGuard ng;
              ops::relation_kl_materialized(x, x, y, y, std::nullopt, ko);
            },
            1, std::max(3, o.repeats / 3));
        if (!r.naive_f.oom) {
          auto xg = x.detach().requires_grad_(true);
          r.naive_fb = time_cuda(
              [&] {
                auto kl = ops::relation_kl_materialized(xg, xg, y, y, std::nullopt, ko);
                (kl * grad).sum().backward();
                xg.mutable_grad().reset();
              },
              1, std::max(3, o.repeats / 3));
        } else {
          r.naive_fb.oom = true;
        }
      }
      if (o.sdpa) {
        r.sdpa_f = time_cuda(
            [&] {
              at::NoGradGuard ng;
              at::scaled_dot_product_attention(x, x, x, {}, 0.0, o.causal);
            },
            o.warmup, o.repeats);
        auto q = x.detach().clone().requires_grad_(true), k = x.detach().clone().requires_grad_(true),
             v = x.detach().clone().requires_grad_(true);
        auto dout = at::randn_like(x);
        r.sdpa_fb = time_cuda(
            [&] {
              auto out = at::scaled_dot_product_attention(q, k, v, {}, 0.0, o.causal);
              out.backward(dout);
              q.mutable_grad().reset();
              k.mutable_grad().reset();
              v.mutable_grad().reset();
            },
            o.warmup, o.repeats);
      }
      // Packed: the block-diagonal work only (ours and naive); SDPA runs unpacked.
      const double frac = packed_work_fraction(T, o.docs);
      const double ff = frac * relation_kl_fwd_flops(o.B, o.H, T, D, D, o.causal);
      const double fb = ff + frac * relation_kl_bwd_flops(o.B, o.H, T, D, D, o.causal);
      const double sf = sdpa_fwd_flops(o.B, o.H, T, D, o.causal);
      if (o.docs > 1)
        std::printf("D=%lld T=%lld, %lld documents: packed fwd %s ms, fwd+bwd %s ms | one document fwd "
                    "%s ms, fwd+bwd %s ms | work fraction %.4f | packed / one document: fwd %s, "
                    "fwd+bwd %s | packed / ideal (one document x fraction): fwd %s, fwd+bwd %s\n",
                    (long long)D, (long long)T, (long long)o.docs, fmt_ms(r.ours_f).c_str(),
                    fmt_ms(r.ours_fb).c_str(), fmt_ms(r.one_f).c_str(), fmt_ms(r.one_fb).c_str(), frac,
                    fmt_num(r.ours_f.median / r.one_f.median, "%.3f").c_str(),
                    fmt_num(r.ours_fb.median / r.one_fb.median, "%.3f").c_str(),
                    fmt_num(r.ours_f.median / (frac * r.one_f.median), "%.3f").c_str(),
                    fmt_num(r.ours_fb.median / (frac * r.one_fb.median), "%.3f").c_str());
      std::printf(
          "D=%lld T=%lld: ours fwd %s ms (%s TFLOP/s), fwd+bwd %s ms (%s TFLOP/s, %s%% of matmul), "
          "extra %.1f MiB (%.2fx inputs) | naive fwd %s, fwd+bwd %s | sdpa fwd %s (%s TFLOP/s), "
          "fwd+bwd %s (%s TFLOP/s)\n",
          (long long)D, (long long)T, fmt_ms(r.ours_f).c_str(),
          fmt_num(ff / (r.ours_f.median * 1e9), "%.0f").c_str(), fmt_ms(r.ours_fb).c_str(),
          fmt_num(fb / (r.ours_fb.median * 1e9), "%.0f").c_str(),
          fmt_num(100 * fb / (r.ours_fb.median * 1e9) / peak, "%.0f").c_str(),
          r.ours_fb.peak_extra / 1048576.0, r.ours_fb.peak_extra / r.in_bytes,
          fmt_ms(r.naive_f).c_str(), fmt_ms(r.naive_fb).c_str(), fmt_ms(r.sdpa_f).c_str(),
          fmt_num(sf / (r.sdpa_f.median * 1e9), "%.0f").c_str(), fmt_ms(r.sdpa_fb).c_str(),
          fmt_num(kSdpaFwdBwdOverFwd * sf / (r.sdpa_fb.median * 1e9), "%.0f").c_str());
      std::fflush(stdout);
      if (csv) {
        auto line = [&](const char* impl, const Timing& f, const Timing& fbt, double flops_f,
                        double flops_fb) {
          csv << gpu << ',' << stamp << ',' << o.dtype << ',' << o.B << ',' << o.H << ',' << T << ','
              << D << ',' << o.causal << ',' << impl << ',' << (f.oom ? "OOM" : fmt_num(f.median, "%.4f"))
              << ',' << fmt_num(f.p20, "%.4f") << ',' << fmt_num(f.p80, "%.4f") << ','
              << (fbt.oom ? "OOM" : fmt_num(fbt.median, "%.4f")) << ',' << fmt_num(fbt.p20, "%.4f")
              << ',' << fmt_num(fbt.p80, "%.4f") << ','
              << fmt_num(flops_f / (f.median * 1e9), "%.1f") << ','
              << fmt_num(flops_fb / (fbt.median * 1e9), "%.1f") << ',' << fbt.peak_extra << ','
              << static_cast<int64_t>(r.in_bytes) << '\n';
        };
        const std::string packed = o.docs > 1 ? "_docs" + std::to_string(o.docs) : "";
        line(("relation_kl_cuda" + packed).c_str(), r.ours_f, r.ours_fb, ff, fb);
        if (o.docs > 1) line("relation_kl_cuda", r.one_f, r.one_fb, ff / frac, fb / frac);
        if (o.naive) line(("relation_kl_materialized" + packed).c_str(), r.naive_f, r.naive_fb, ff, fb);
        if (o.sdpa) line("sdpa_flash", r.sdpa_f, r.sdpa_fb, sf, kSdpaFwdBwdOverFwd * sf);
      }
      rows.push_back(r);
    }

  std::printf("\n%-4s %-6s | %-10s %-10s %-7s %-6s %-9s | %-10s %-8s | %-9s %-9s\n", "D", "T",
              "fwd ms", "f+b ms", "TFLOP/s", "%peak", "extra/in", "naive f+b", "speed-up",
              "sdpa f", "sdpa f+b");
  for (const Row& r : rows) {
    const double fb = packed_work_fraction(r.T, o.docs) *
                      (relation_kl_fwd_flops(o.B, o.H, r.T, r.D, r.D, o.causal) +
                       relation_kl_bwd_flops(o.B, o.H, r.T, r.D, r.D, o.causal));
    const double tf = fb / (r.ours_fb.median * 1e9);
    std::printf("%-4lld %-6lld | %-10s %-10s %-7s %-6s %-9s | %-10s %-8s | %-9s %-9s\n",
                (long long)r.D, (long long)r.T, fmt_num(r.ours_f.median, "%.3f").c_str(),
                fmt_num(r.ours_fb.median, "%.3f").c_str(), fmt_num(tf, "%.0f").c_str(),
                fmt_num(100 * tf / peak, "%.0f").c_str(),
                fmt_num(r.ours_fb.peak_extra / r.in_bytes, "%.2f").c_str(),
                r.naive_fb.oom ? "OOM" : fmt_num(r.naive_fb.median, "%.2f").c_str(),
                r.naive_fb.oom ? "-" : fmt_num(r.naive_fb.median / r.ours_fb.median, "%.1fx").c_str(),
                fmt_num(r.sdpa_f.median, "%.3f").c_str(), fmt_num(r.sdpa_fb.median, "%.3f").c_str());
  }
}

#endif  // LINEARARD_WITH_CUDA

CommandRegistration bench_relation_kl(
    "relation-kl",
    "time the CUDA relation-KL op (self relation, fwd and fwd+bwd) vs naive LibTorch and SDPA",
    [](CLI::App& sub) {
      auto o = std::make_shared<BenchOptions>();
      sub.add_option("--T", o->T, "sequence lengths")->delimiter(',');
      sub.add_option("--D", o->D, "head dims (student = teacher)")->delimiter(',');
      sub.add_option("--B", o->B, "batch size");
      sub.add_option("--H", o->H, "heads");
      sub.add_option("--dtype", o->dtype, "bf16, fp16 or fp32");
      sub.add_flag("--causal,!--no-causal", o->causal, "causal mask (default on)");
      sub.add_option("--warmup", o->warmup, "untimed calls before timing");
      sub.add_option("--repeats", o->repeats, "timed calls (median, p20, p80 reported)");
      sub.add_flag("--naive,!--no-naive", o->naive, "also time relation_kl_materialized");
      sub.add_flag("--sdpa,!--no-sdpa", o->sdpa, "also time at::scaled_dot_product_attention");
      sub.add_option("--csv", o->csv, "append one CSV row per implementation and shape");
      sub.add_option("--docs", o->docs,
                     "packed documents per block (equal lengths): N > 1 times the op with doc_ids next "
                     "to one document (TFLOP/s count the block-diagonal work)");
      sub.callback([o] {
#ifdef LINEARARD_WITH_CUDA
        run_bench(*o);
#else
        fail("bench relation-kl", "this build has no CUDA kernels (LINEARARD_CUDA=OFF)");
#endif
      });
    },
    "bench");

}  // namespace
}  // namespace linearard::cli
