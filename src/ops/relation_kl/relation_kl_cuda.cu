// Tensor-facing CUDA entry points of the relation-KL op (relation_kl_cuda.h): fill RelationKLParams,
// ask choose_kernel (relation_kl_choose.h) for the kernel family, allocate outputs, launch on the
// current stream and check errors. The dispatcher in relation_kl.cpp has validated shapes, devices,
// dtypes and the mask. Mixed student / teacher dtypes run in fp32 after a cast.
#include <ATen/ATen.h>
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <mutex>
#include <set>
#include <string>

#include "common/error.h"
#include "common/log.h"
#include "ops/relation_kl/relation_kl_cuda.h"
#include "ops/relation_kl/relation_kl_launch.h"

namespace linearard::ops {
namespace {

constexpr const char* kWhere = "relation_kl (CUDA)";

// linearard::fail, inlined: linearard_cuda links before linearard_formats (which holds fail()), and
// Error is header-only.
[[noreturn]] void fail(const std::string& where, const std::string& problem) {
  throw Error(where + ": " + problem);
}
constexpr double kLog2e = 1.4426950408889634;

struct Inputs {
  at::Tensor xq, xk, yq, yk;  // contiguous, one dtype
  at::Tensor mask;             // (B, T) uint8 or undefined
  at::Tensor doc_ids;          // (B, T) int32 or undefined (packed documents)
  at::Tensor doc_span;         // (B, ceil(T / kRelationKLDocGranule), 2) int32 or undefined
};

// Packed documents: for each granule of kRelationKLDocGranule indices of batch row b, the span
// [lo, hi) of the indices whose document id is the id of an index of the granule (its first and
// last occurrence), so that a CTA can skip the tiles outside its anchors' documents
// (relation_kl_tile.cuh, doc_span). From the ids alone, so it holds for any ids: a block per
// (b, granule) scans the row's T ids once (a range test first, then the granule's <= 16 ids).
// O(B T^2 / 16) compares, all in L2: T = 4096 is ~1M, a few microseconds. hi is stored negated
// unless the granule holds one document whose indices are contiguous (hits = hi - lo): the kernels
// then take the unmasked path for the key tiles inside [lo, hi) (tile_in_one_document). (cu_seqlens would give the
// spans without a scan, but only for contiguous documents, and every kernel needs per-token ids for
// its element mask anyway.)
constexpr int kDocSpanThreads = 256;
__global__ void __launch_bounds__(kDocSpanThreads)
    relation_kl_doc_span_kernel(const int32_t* __restrict__ doc, int T, int n_granules,
                                int32_t* __restrict__ span) {
  constexpr int G = kRelationKLDocGranule;
  __shared__ int32_t ids[G];
  __shared__ int red_lo[kDocSpanThreads / 32], red_hi[kDocSpanThreads / 32], red_hits[kDocSpanThreads / 32];
  const int b = blockIdx.x / n_granules, i0 = (blockIdx.x % n_granules) * G;
  const int32_t* d = doc + static_cast<int64_t>(b) * T;
  const int cnt = min(G, T - i0);
  if (threadIdx.x < cnt) ids[threadIdx.x] = d[i0 + threadIdx.x];
  __syncthreads();
  int mn = ids[0], mx = ids[0];
  for (int k = 1; k < cnt; ++k) mn = min(mn, ids[k]), mx = max(mx, ids[k]);
  int lo = T, hi = 0, hits = 0;
  for (int j = threadIdx.x; j < T; j += kDocSpanThreads) {
    const int32_t v = d[j];
    if (v < mn || v > mx) continue;
    bool hit = false;
    for (int k = 0; k < cnt; ++k) hit |= ids[k] == v;
    if (hit) lo = min(lo, j), hi = max(hi, j + 1), ++hits;
  }
#pragma unroll
  for (int off = 16; off > 0; off >>= 1) {
    lo = min(lo, __shfl_xor_sync(0xffffffffu, lo, off));
    hi = max(hi, __shfl_xor_sync(0xffffffffu, hi, off));
    hits += __shfl_xor_sync(0xffffffffu, hits, off);
  }
  const int warp = threadIdx.x / 32;
  if (threadIdx.x % 32 == 0) red_lo[warp] = lo, red_hi[warp] = hi, red_hits[warp] = hits;
  __syncthreads();
  if (threadIdx.x == 0) {
    for (int w = 1; w < kDocSpanThreads / 32; ++w)
      lo = min(lo, red_lo[w]), hi = max(hi, red_hi[w]), hits += red_hits[w];
    const bool one_contiguous_document = mn == mx && hits == hi - lo;
    span[2 * static_cast<int64_t>(blockIdx.x)] = lo;
    span[2 * static_cast<int64_t>(blockIdx.x) + 1] = one_contiguous_document ? hi : -hi;
  }
}

Inputs prepare(const at::Tensor& xq, const at::Tensor& xk, const at::Tensor& yq, const at::Tensor& yk,
               const std::optional<at::Tensor>& key_mask, const RelationKLOptions& options) {
  // The kernels copy rows in 16-byte pieces (cp.async): a contiguous view whose storage offset
  // leaves its data off a 16-byte boundary gets an aligned copy (the same tensor stays one tensor).
  auto aligned = [](const at::Tensor& t) {
    at::Tensor c = t.contiguous();
    return reinterpret_cast<uintptr_t>(c.data_ptr()) % 16 == 0 ? c : c.clone();
  };
  Inputs in{aligned(xq), xk.is_same(xq) ? at::Tensor() : aligned(xk), aligned(yq),
            yk.is_same(yq) ? at::Tensor() : aligned(yk), {}};
  if (!in.xk.defined()) in.xk = in.xq;
  if (!in.yk.defined()) in.yk = in.yq;
  const auto dt = xq.scalar_type();
  const bool half_type = dt == at::kBFloat16 || dt == at::kHalf;
  if (yq.scalar_type() != dt) {  // mixed student/teacher dtypes: run the fp32 kernels
    in.xq = in.xq.to(at::kFloat);
    in.xk = xk.is_same(xq) ? in.xq : in.xk.to(at::kFloat);
    in.yq = in.yq.to(at::kFloat);
    in.yk = yk.is_same(yq) ? in.yq : in.yk.to(at::kFloat);
  } else if (dt != at::kFloat && !half_type) {
    fail(std::string(kWhere) + " xq", std::string("dtype ") + c10::toString(dt) +
                                          " is not supported on CUDA (bf16, fp16, fp32)");
  }
  const int64_t Ds = xq.size(3), Dt = yq.size(3);
  if (Ds > kRelationKLSimtMaxDim || Dt > kRelationKLSimtMaxDim)
    fail(std::string(kWhere) + " xq", "head dims Ds = " + std::to_string(Ds) + ", Dt = " +
                                          std::to_string(Dt) + " exceed " +
                                          std::to_string(kRelationKLSimtMaxDim));
  if (key_mask && key_mask->defined())
    in.mask = key_mask->to(xq.device()).ne(0).to(at::kByte).contiguous();
  if (options.doc_ids && options.doc_ids->defined() && xq.numel() > 0) {
    in.doc_ids = options.doc_ids->to(xq.device(), at::kInt).contiguous();  // (B, T)
    const int64_t B = xq.size(0), T = xq.size(2);
    const int64_t n = (T + kRelationKLDocGranule - 1) / kRelationKLDocGranule;
    in.doc_span = at::empty({B, n, 2}, in.doc_ids.options());  // (B, n, 2)
    if (B * n > 0) {
      relation_kl_doc_span_kernel<<<static_cast<unsigned>(B * n), kDocSpanThreads, 0,
                                    at::cuda::getCurrentCUDAStream()>>>(
          in.doc_ids.data_ptr<int32_t>(), static_cast<int>(T), static_cast<int>(n),
          in.doc_span.data_ptr<int32_t>());
      C10_CUDA_KERNEL_LAUNCH_CHECK();
    }
  }
  // Row blocks of 32 (SIMT) go in gridDim.y (<= 65535); sizes are ints in the kernels, offsets int64.
  if (xq.size(2) > 65535LL * 32 || xq.size(0) * xq.size(1) > std::numeric_limits<int>::max())
    fail(std::string(kWhere) + " xq", "B * H or T too large for the launch grid");
  return in;
}

// The GPU's compute capability and shared-memory opt-in limit (0 where a query fails).
RelationKLDeviceCaps device_caps(const at::Device& device) {
  int major = 0, minor = 0, optin = 0;
  RelationKLDeviceCaps caps;
  if (cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device.index()) == cudaSuccess &&
      cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, device.index()) == cudaSuccess)
    caps.arch = major * 10 + minor;
  if (cudaDeviceGetAttribute(&optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, device.index()) == cudaSuccess)
    caps.smem_optin = optin;
  return caps;
}

RelationKLDtype kernel_dtype(at::ScalarType t) {
  return t == at::kBFloat16 ? RelationKLDtype::kBF16
         : t == at::kHalf   ? RelationKLDtype::kFP16
                            : RelationKLDtype::kFP32;
}

// With --verbose: one line per distinct (pass, shape, dtype, GPU, kernel), so a training run logs
// each layer shape's choice once and `linearard bench relation-kl --verbose` each case's.
void log_choice(RelationKLPass pass, const RelationKLShape& s, RelationKLDtype dtype,
                const RelationKLDeviceCaps& caps, RelationKLKernel kernel) {
  if (!verbose()) return;
  static const char* const kPass[] = {"forward", "backward", "self backward"};
  static const char* const kDtype[] = {"bf16", "fp16", "fp32"};
  char line[256];
  std::snprintf(line, sizeof line,
                "relation_kl %s: B=%d H=%d Hk=%d Hkt=%d T=%d Ds=%d Dt=%d %s %s%s on sm_%d -> %s",
                kPass[static_cast<int>(pass)], s.B, s.H, s.Hk, s.Hkt, s.T, s.Ds, s.Dt,
                kDtype[static_cast<int>(dtype)], s.causal ? "causal" : "non-causal",
                s.packed ? " packed-documents" : "", caps.arch,
                relation_kl_kernel_name(kernel));
  static std::mutex mutex;
  static std::set<std::string> logged;
  std::lock_guard<std::mutex> lock(mutex);
  if (logged.insert(line).second) log_verbose("%s", line);
}

// The shape and layout of the call, the switches read once, and the kernel chosen for `pass`.
RelationKLParams make_params(const Inputs& in, const RelationKLOptions& o, RelationKLPass pass,
                             KernelSwitches& switches) {
  RelationKLParams p;
  RelationKLShape& s = p.shape;
  s.B = static_cast<int>(in.xq.size(0));
  s.H = static_cast<int>(in.xq.size(1));
  s.T = static_cast<int>(in.xq.size(2));
  s.Ds = static_cast<int>(in.xq.size(3));
  s.Hk = static_cast<int>(in.xk.size(1));
  s.Hkt = static_cast<int>(in.yk.size(1));
  s.Dt = static_cast<int>(in.yq.size(3));
  s.scale_s = static_cast<float>(o.scale_s);
  s.scale_t = static_cast<float>(o.scale_t);
  s.scale_s_log2 = static_cast<float>(o.scale_s * kLog2e);
  s.scale_t_log2 = static_cast<float>(o.scale_t * kLog2e);
  s.causal = o.causal;
  s.packed = in.doc_ids.defined();
  RelationKLLayout& l = p.layout;
  l.xq = in.xq.data_ptr();
  l.xk = in.xk.data_ptr();
  l.yq = in.yq.data_ptr();
  l.yk = in.yk.data_ptr();
  l.key_mask = in.mask.defined() ? in.mask.data_ptr<uint8_t>() : nullptr;
  l.doc_ids = s.packed ? in.doc_ids.data_ptr<int32_t>() : nullptr;
  l.doc_span = s.packed ? in.doc_span.data_ptr<int32_t>() : nullptr;
  switches = KernelSwitches::from_env();
  const RelationKLDeviceCaps caps = device_caps(in.xq.device());
  const RelationKLDtype dtype = kernel_dtype(in.xq.scalar_type());
  p.launch.kernel = choose_kernel(pass, s, dtype, caps, switches);
  log_choice(pass, s, dtype, caps, p.launch.kernel);
  return p;
}

void launch(const Inputs& in, const RelationKLParams& p) {
  cudaStream_t stream = at::cuda::getCurrentCUDAStream();
  const RelationKLDtype dt = kernel_dtype(in.xq.scalar_type());
  cudaError_t err;
  if (!relation_kl_kernel_is_simt(p.launch.kernel)) {
    err = dt == RelationKLDtype::kBF16 ? launch_relation_kl_tc_bf16(p, stream)
                                       : launch_relation_kl_tc_fp16(p, stream);
  } else {
    err = dt == RelationKLDtype::kBF16   ? launch_relation_kl_simt_bf16(p, stream)
          : dt == RelationKLDtype::kFP16 ? launch_relation_kl_simt_fp16(p, stream)
                                         : launch_relation_kl_simt_fp32(p, stream);
  }
  if (err != cudaSuccess)
    fail(kWhere, std::string(relation_kl_kernel_is_forward(p.launch.kernel) ? "forward" : "backward") +
                     " launch failed (" + relation_kl_kernel_name(p.launch.kernel) +
                     "): " + cudaGetErrorString(err));
}

// Runs one backward launch (mode) into a new (B, heads, T, Ds) tensor of dtype `out_dtype`.
at::Tensor backward_launch(const Inputs& in, RelationKLParams p, RelationKLBwdMode mode,
                           int64_t heads, at::ScalarType out_dtype) {
  auto out = at::empty({in.xq.size(0), heads, in.xq.size(2), in.xq.size(3)}, in.xq.options());
  if (out.numel() == 0) return out.to(out_dtype);
  p.launch.mode = mode;
  p.layout.d_out = out.data_ptr();
  launch(in, p);
  return out.scalar_type() == out_dtype ? out : out.to(out_dtype);
}

void set_stats(RelationKLParams& p, const at::Tensor& grad_kl, const RelationKLStats& stats,
               at::Tensor& g, at::Tensor& ls, at::Tensor& lt) {
  g = grad_kl.to(at::kFloat).contiguous();
  ls = stats.lse_s.to(at::kFloat).contiguous();
  lt = stats.lse_t.to(at::kFloat).contiguous();
  p.layout.grad_kl = g.data_ptr<float>();
  p.layout.lse_s = ls.data_ptr<float>();
  p.layout.lse_t = lt.data_ptr<float>();
}

}  // namespace

RelationKLStats relation_kl_forward_cuda(const at::Tensor& xq, const at::Tensor& xk,
                                         const at::Tensor& yq, const at::Tensor& yk,
                                         const std::optional<at::Tensor>& key_mask,
                                         const RelationKLOptions& options) {
  c10::cuda::CUDAGuard guard(xq.device());
  Inputs in = prepare(xq, xk, yq, yk, key_mask, options);
  const auto f32 = xq.options().dtype(at::kFloat);
  const int64_t B = xq.size(0), H = xq.size(1), T = xq.size(2);
  RelationKLStats st{at::empty({B, H, T}, f32), at::empty({B, H, T}, f32), at::empty({B, H, T}, f32)};
  if (B * H * T == 0) return st;
  KernelSwitches switches;
  RelationKLParams p = make_params(in, options, RelationKLPass::kForward, switches);
  p.layout.kl = st.kl.data_ptr<float>();
  p.layout.lse_s = st.lse_s.data_ptr<float>();
  p.layout.lse_t = st.lse_t.data_ptr<float>();
  launch(in, p);
  return st;
}

RelationKLGrads relation_kl_backward_cuda(const at::Tensor& grad_kl, const at::Tensor& xq,
                                          const at::Tensor& xk, const at::Tensor& yq,
                                          const at::Tensor& yk,
                                          const std::optional<at::Tensor>& key_mask,
                                          const RelationKLStats& stats,
                                          const RelationKLOptions& options) {
  c10::cuda::CUDAGuard guard(xq.device());
  Inputs in = prepare(xq, xk, yq, yk, key_mask, options);
  KernelSwitches switches;
  RelationKLParams p = make_params(in, options, RelationKLPass::kBackward, switches);
  at::Tensor g, ls, lt;
  set_stats(p, grad_kl, stats, g, ls, lt);
  // kBwdMma / kBwdSimt: row term into d_xq, column term into d_xk: two launches, no atomics, each
  // output row written by one CTA.
  RelationKLGrads grads;
  grads.d_xq = backward_launch(in, p, RelationKLBwdMode::kRows, xq.size(1), xq.scalar_type());
  grads.d_xk = backward_launch(in, p, RelationKLBwdMode::kColumns, xk.size(1), xk.scalar_type());
  return grads;
}

at::Tensor relation_kl_self_backward_cuda(const at::Tensor& grad_kl, const at::Tensor& x,
                                          const at::Tensor& y,
                                          const std::optional<at::Tensor>& key_mask,
                                          const RelationKLStats& stats,
                                          const RelationKLOptions& options) {
  c10::cuda::CUDAGuard guard(x.device());
  Inputs in = prepare(x, x, y, y, key_mask, options);
  KernelSwitches switches;
  RelationKLParams p = make_params(in, options, RelationKLPass::kSelfBackward, switches);
  at::Tensor g, ls, lt;
  set_stats(p, grad_kl, stats, g, ls, lt);
  const int64_t B = x.size(0), H = x.size(1), T = x.size(2), Ds = x.size(3), BH = B * H;
  switch (p.launch.kernel) {
    case RelationKLKernel::kSelfBwdSimt:
      return backward_launch(in, p, RelationKLBwdMode::kSelf, H, x.scalar_type());
    case RelationKLKernel::kSelfBwdMmaSplit: {
      // The row term (x as query) plus the column term (x as key), each from its own kernel: no
      // atomics, deterministic; summed in fp32 and rounded once.
      const at::Tensor rows = backward_launch(in, p, RelationKLBwdMode::kRows, H, at::kFloat);
      const at::Tensor columns = backward_launch(in, p, RelationKLBwdMode::kColumns, H, at::kFloat);
      return (rows + columns).to(x.scalar_type());
    }
    case RelationKLKernel::kSelfBwdWgmma: {
      // sm_90a: the row term into an fp32 buffer (1x the inputs' bytes at Ds = Dt), then the
      // column term adds it and writes dX (relation_kl_bwd_self_wgmma_kernel.cuh).
      auto out = at::empty({B, H, T, Ds}, in.xq.options());  // (B, H, T, Ds)
      if (out.numel() == 0) return out;
      auto rows = at::empty({B, H, T, Ds}, in.xq.options().dtype(at::kFloat));  // (B, H, T, Ds)
      const int64_t pitch = (T + kRelationKLWgmmaTile - 1) / kRelationKLWgmmaTile * kRelationKLWgmmaTile;
      auto row_stats = at::empty({BH, 3, pitch}, in.xq.options().dtype(at::kFloat));  // (B H, 3, pitch)
      p.launch.mode = RelationKLBwdMode::kSelf;
      p.layout.d_out = out.data_ptr();
      p.workspace.self_rows = rows.data_ptr<float>();
      p.workspace.col_stats = row_stats.data_ptr<float>();
      p.workspace.stats_pitch = static_cast<int>(pitch);
      launch(in, p);
      return out;
    }
    default:
      break;
  }
  // kSelfBwdMmaPipe: one logit recompute per score element, both gradient terms added into an
  // int64 fixed-point accumulator (order-independent, so deterministic; relation_kl_bwd_self_
  // kernel.cuh). At 8 bytes per dX element it would be 2x the inputs (x and y in 16-bit), so (b, h)
  // run in chunks whose accumulator is at most the inputs' size: extra memory stays <= 1.5x the
  // inputs.
  auto out = at::empty({B, H, T, Ds}, in.xq.options());  // (B, H, T, Ds)
  if (out.numel() == 0) return out;
  const int64_t input_bytes = static_cast<int64_t>(in.xq.nbytes() + in.yq.nbytes());
  int64_t chunk = std::clamp<int64_t>(input_bytes / (T * Ds * 8), 1, BH);
  if (switches.chunk > 0) chunk = std::min<int64_t>(switches.chunk, BH);
  auto accum = at::empty({chunk, T, Ds}, in.xq.options().dtype(at::kLong));  // (chunk, T, Ds)
  auto quantum = at::empty({BH, 2}, in.xq.options().dtype(at::kFloat));       // (B H, 2)
  auto row_stats = at::empty({BH, T, 4}, in.xq.options().dtype(at::kFloat));  // (B H, T, 4)
  p.launch.mode = RelationKLBwdMode::kSelf;
  p.layout.d_out = out.data_ptr();
  p.launch.accum = accum.data_ptr<int64_t>();
  p.launch.quantum = quantum.data_ptr<float>();
  p.workspace.row_stats = row_stats.data_ptr<float>();
  for (int64_t c0 = 0; c0 < BH; c0 += chunk) {
    const int64_t n = std::min(chunk, BH - c0);
    accum.narrow(0, 0, n).zero_();
    p.launch.bh0 = static_cast<int>(c0);
    p.launch.n_bh = static_cast<int>(n);
    launch(in, p);
  }
  return out;
}

}  // namespace linearard::ops
