// Tensor-facing CUDA entry points of the relation-KL op (relation_kl_cuda.h): choose the kernel
// family, fill RelationKLParams, allocate outputs, launch on the current stream and check errors.
// The dispatcher in relation_kl.cpp has validated shapes, devices, dtypes and the mask.
//   tensor-core kernels: bf16 / fp16 inputs, Ds and Dt multiples of 16 and <= 128, positive scales
//   SIMT fp32 kernels:   everything else (fp32 inputs, other head dims up to 256, student and teacher
//                        of different dtypes after an fp32 cast, non-positive scales)
#include <ATen/ATen.h>
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <limits>
#include <string>

#include "common/error.h"
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

enum class Path { kTensorCore, kSimt };

// Kernel-version switches for same-binary A/B timing (relation_kl_params.h), read once:
//   LINEARARD_RKL_CHUNK=n        self backward (b, h) per accumulator chunk (default: <= 1x inputs)
//   LINEARARD_RKL_FWD_CFG=0|1|2  pipelined forward CTA shape (default 1, measured; launch template)
//   LINEARARD_RKL_FWD_PIPE64=1   pipelined forward also at Ds = Dt = 64
//   LINEARARD_RKL_WGMMA=0        no sm_90a warpgroup-MMA kernels (the mma.sync ones run on H100 too;
//                                read at each call, so the GPU tests cover both families)
int env_int(const char* name, int fallback) {
  const char* v = std::getenv(name);
  return v != nullptr && *v != '\0' ? std::atoi(v) : fallback;
}
struct KernelSwitches {
  int chunk = env_int("LINEARARD_RKL_CHUNK", 0);
  int fwd_cfg = env_int("LINEARARD_RKL_FWD_CFG", 1);
  bool fwd_pipe_d64 = env_int("LINEARARD_RKL_FWD_PIPE64", 0) != 0;
};
const KernelSwitches& switches() {
  static const KernelSwitches s;
  return s;
}

struct Inputs {
  at::Tensor xq, xk, yq, yk;  // contiguous, one dtype
  at::Tensor mask;             // (B, T) uint8 or undefined
  Path path = Path::kSimt;
};

Inputs prepare(const at::Tensor& xq, const at::Tensor& xk, const at::Tensor& yq, const at::Tensor& yk,
               const std::optional<at::Tensor>& key_mask, const RelationKLOptions& o) {
  // The kernels copy rows in 16-byte pieces (cp.async): a contiguous view whose storage offset
  // leaves its data off a 16-byte boundary gets an aligned copy (the same tensor stays one tensor).
  auto aligned = [](const at::Tensor& t) {
    at::Tensor c = t.contiguous();
    return reinterpret_cast<uintptr_t>(c.data_ptr()) % 16 == 0 ? c : c.clone();
  };
  Inputs in{aligned(xq), xk.is_same(xq) ? at::Tensor() : aligned(xk), aligned(yq),
            yk.is_same(yq) ? at::Tensor() : aligned(yk), {}, Path::kSimt};
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
  if (in.xq.scalar_type() != at::kFloat && relation_kl_tensor_core_dims(Ds, Dt) && o.scale_s > 0 &&
      o.scale_t > 0)
    in.path = Path::kTensorCore;
  if (key_mask && key_mask->defined())
    in.mask = key_mask->to(xq.device()).ne(0).to(at::kByte).contiguous();
  // Row blocks of 32 (SIMT) go in gridDim.y (<= 65535); sizes are ints in the kernels, offsets int64.
  if (xq.size(2) > 65535LL * 32 || xq.size(0) * xq.size(1) > std::numeric_limits<int>::max())
    fail(std::string(kWhere) + " xq", "B * H or T too large for the launch grid");
  return in;
}

// The warpgroup-MMA kernels exist in the sm_90a cubin only (compute capability 9.0).
bool is_sm90(const at::Device& device) {
  int major = 0, minor = 0;
  if (cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device.index()) != cudaSuccess ||
      cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, device.index()) != cudaSuccess)
    return false;
  return major == 9 && minor == 0;
}

RelationKLParams make_params(const Inputs& in, const RelationKLOptions& o) {
  RelationKLParams p;
  p.xq = in.xq.data_ptr();
  p.xk = in.xk.data_ptr();
  p.yq = in.yq.data_ptr();
  p.yk = in.yk.data_ptr();
  p.key_mask = in.mask.defined() ? in.mask.data_ptr<uint8_t>() : nullptr;
  p.B = static_cast<int>(in.xq.size(0));
  p.H = static_cast<int>(in.xq.size(1));
  p.T = static_cast<int>(in.xq.size(2));
  p.Ds = static_cast<int>(in.xq.size(3));
  p.Hk = static_cast<int>(in.xk.size(1));
  p.Hkt = static_cast<int>(in.yk.size(1));
  p.Dt = static_cast<int>(in.yq.size(3));
  p.scale_s = static_cast<float>(o.scale_s);
  p.scale_t = static_cast<float>(o.scale_t);
  p.scale_s_log2 = static_cast<float>(o.scale_s * kLog2e);
  p.scale_t_log2 = static_cast<float>(o.scale_t * kLog2e);
  p.causal = o.causal;
  p.fwd_cfg = switches().fwd_cfg;
  p.fwd_pipe_d64 = switches().fwd_pipe_d64;
  p.wgmma = in.path == Path::kTensorCore && env_int("LINEARARD_RKL_WGMMA", 1) != 0 &&
            relation_kl_wgmma_dims(p.Ds, p.Dt) && is_sm90(in.xq.device());
  return p;
}

// The fused self backward needs more shared memory per block than sm_80 offers; there (or with
// LINEARARD_RKL_SELF_SPLIT=1, read at each call so tests can cover the split path on any GPU)
// the self gradient comes from the row and column kernels.
bool fused_self_backward_fits(const at::Device& device, int Ds, int Dt) {
  if (env_int("LINEARARD_RKL_SELF_SPLIT", 0) != 0) return false;
  int optin = 0;
  if (cudaDeviceGetAttribute(&optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, device.index()) != cudaSuccess)
    return false;
  return relation_kl_tc_self_bwd_smem_bytes(Ds, Dt) <= optin;
}

void launch(const Inputs& in, const RelationKLParams& p, bool backward) {
  cudaStream_t stream = at::cuda::getCurrentCUDAStream();
  const auto dt = in.xq.scalar_type();
  cudaError_t err;
  if (in.path == Path::kTensorCore) {
    err = dt == at::kBFloat16 ? launch_relation_kl_tc_bf16(p, backward, stream)
                              : launch_relation_kl_tc_fp16(p, backward, stream);
  } else {
    err = dt == at::kBFloat16 ? launch_relation_kl_simt_bf16(p, backward, stream)
          : dt == at::kHalf   ? launch_relation_kl_simt_fp16(p, backward, stream)
                              : launch_relation_kl_simt_fp32(p, backward, stream);
  }
  if (err != cudaSuccess)
    fail(kWhere, std::string(backward ? "backward" : "forward") + " launch failed: " +
                     cudaGetErrorString(err));
}

// Runs one backward launch (mode) into a new (B, heads, T, Ds) tensor of dtype `out_dtype`.
at::Tensor backward_launch(const Inputs& in, RelationKLParams p, RelationKLBwdMode mode,
                           int64_t heads, at::ScalarType out_dtype) {
  auto out = at::empty({in.xq.size(0), heads, in.xq.size(2), in.xq.size(3)}, in.xq.options());
  if (out.numel() == 0) return out.to(out_dtype);
  p.mode = mode;
  p.d_out = out.data_ptr();
  launch(in, p, /*backward=*/true);
  return out.scalar_type() == out_dtype ? out : out.to(out_dtype);
}

void set_stats(RelationKLParams& p, const at::Tensor& grad_kl, const RelationKLStats& stats,
               at::Tensor& g, at::Tensor& ls, at::Tensor& lt) {
  g = grad_kl.to(at::kFloat).contiguous();
  ls = stats.lse_s.to(at::kFloat).contiguous();
  lt = stats.lse_t.to(at::kFloat).contiguous();
  p.grad_kl = g.data_ptr<float>();
  p.lse_s = ls.data_ptr<float>();
  p.lse_t = lt.data_ptr<float>();
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
  RelationKLParams p = make_params(in, options);
  p.kl = st.kl.data_ptr<float>();
  p.lse_s = st.lse_s.data_ptr<float>();
  p.lse_t = st.lse_t.data_ptr<float>();
  launch(in, p, /*backward=*/false);
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
  RelationKLParams p = make_params(in, options);
  at::Tensor g, ls, lt;
  set_stats(p, grad_kl, stats, g, ls, lt);
  // Row term into d_xq, column term into d_xk: two launches, no atomics, each output row written
  // by one CTA.
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
  RelationKLParams p = make_params(in, options);
  at::Tensor g, ls, lt;
  set_stats(p, grad_kl, stats, g, ls, lt);
  if (in.path != Path::kTensorCore)
    return backward_launch(in, p, RelationKLBwdMode::kSelf, x.size(1), x.scalar_type());
  if (p.wgmma) {
    // sm_90a: the row term into an fp32 buffer (1x the inputs' bytes at Ds = Dt), then the column
    // term adds it and writes dX (relation_kl_bwd_self_wgmma_kernel.cuh).
    const int64_t B = x.size(0), H = x.size(1), T = x.size(2), Ds = x.size(3);
    auto out = at::empty({B, H, T, Ds}, in.xq.options());
    if (out.numel() == 0) return out;
    auto rows = at::empty({B, H, T, Ds}, in.xq.options().dtype(at::kFloat));   // (B, H, T, Ds)
    const int64_t pitch = (T + kRelationKLWgmmaTile - 1) / kRelationKLWgmmaTile * kRelationKLWgmmaTile;
    auto row_stats = at::empty({B * H, 3, pitch}, in.xq.options().dtype(at::kFloat));  // (B H, 3, pitch)
    p.mode = RelationKLBwdMode::kSelf;
    p.d_out = out.data_ptr();
    p.self_rows = rows.data_ptr<float>();
    p.col_stats = row_stats.data_ptr<float>();
    p.stats_pitch = static_cast<int>(pitch);
    launch(in, p, /*backward=*/true);
    return out;
  }
  if (!fused_self_backward_fits(x.device(), static_cast<int>(x.size(3)), static_cast<int>(y.size(3)))) {
    // The row term (x as query) plus the column term (x as key), each from its own kernel: no
    // atomics, deterministic; summed in fp32 and rounded once.
    const at::Tensor rows = backward_launch(in, p, RelationKLBwdMode::kRows, x.size(1), at::kFloat);
    const at::Tensor columns = backward_launch(in, p, RelationKLBwdMode::kColumns, x.size(1), at::kFloat);
    return (rows + columns).to(x.scalar_type());
  }
  // Tensor cores: one logit recompute per score element, both gradient terms added into an int64
  // fixed-point accumulator (order-independent, so deterministic; relation_kl_bwd_self_kernel.cuh).
  // At 8 bytes per dX element it would be 2x the inputs (x and y in 16-bit), so (b, h) run in
  // chunks whose accumulator is at most the inputs' size: extra memory stays <= 1.5x the inputs.
  const int64_t B = x.size(0), H = x.size(1), T = x.size(2), Ds = x.size(3), BH = B * H;
  auto out = at::empty({B, H, T, Ds}, in.xq.options());
  if (out.numel() == 0) return out;
  const int64_t input_bytes = static_cast<int64_t>(in.xq.nbytes() + in.yq.nbytes());
  int64_t chunk = std::clamp<int64_t>(input_bytes / (T * Ds * 8), 1, BH);
  if (switches().chunk > 0) chunk = std::min<int64_t>(switches().chunk, BH);
  auto accum = at::empty({chunk, T, Ds}, in.xq.options().dtype(at::kLong));  // (chunk, T, Ds)
  auto quantum = at::empty({BH, 2}, in.xq.options().dtype(at::kFloat));       // (B H, 2)
  auto row_stats = at::empty({BH, T, 4}, in.xq.options().dtype(at::kFloat));  // (B H, T, 4)
  p.mode = RelationKLBwdMode::kSelf;
  p.d_out = out.data_ptr();
  p.accum = accum.data_ptr<int64_t>();
  p.quantum = quantum.data_ptr<float>();
  p.row_stats = row_stats.data_ptr<float>();
  for (int64_t c0 = 0; c0 < BH; c0 += chunk) {
    const int64_t n = std::min(chunk, BH - c0);
    accum.narrow(0, 0, n).zero_();
    p.bh0 = static_cast<int>(c0);
    p.n_bh = static_cast<int>(n);
    launch(in, p, /*backward=*/true);
  }
  return out;
}

}  // namespace linearard::ops
