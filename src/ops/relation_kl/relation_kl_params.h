// The plain parameter struct that is all a relation-KL kernel sees (no Tensors, no ATen): raw
// pointers to contiguous tensors, sizes, scales and flags. relation_kl_cuda.cu fills it after every
// Tensor check; the launchers in relation_kl_launch.h take it by value.
#pragma once
#include <cstdint>

namespace linearard::ops {

// Which gradient terms a backward launch computes (relation_kl.h: dL/ds_ij = g_i (p_s,ij - p_t,ij)).
enum class RelationKLBwdMode : int {
  kRows = 0,     // d_xq_i = scale_s sum_j G_ij xk_j           (one CTA per query row block)
  kColumns = 1,  // d_xk_j = scale_s sum_{h in group, i} G_ij xq_i  (one CTA per key row block)
  kSelf = 2,     // xq = xk = x: d_x = scale_s (G + G^T) x, both terms into one buffer
};

struct RelationKLParams {
  // Inputs, contiguous, all of one element type (bf16, fp16 or fp32; the launcher's template).
  const void* xq = nullptr;  // (B, H, T, Ds)   student queries
  const void* xk = nullptr;  // (B, Hk, T, Ds)  student keys
  const void* yq = nullptr;  // (B, H, T, Dt)   teacher queries
  const void* yk = nullptr;  // (B, Hkt, T, Dt) teacher keys
  const uint8_t* key_mask = nullptr;  // (B, T) 1 = valid key/query, 0 = padded; nullptr = all valid

  // Forward outputs; backward inputs (the saved statistics).
  float* kl = nullptr;     // (B, H, T) per-row KL, 0 for invalid rows
  float* lse_s = nullptr;  // (B, H, T) natural-log LSE of the scaled student logits, -inf if invalid
  float* lse_t = nullptr;  // (B, H, T) same for the teacher

  // Backward.
  const float* grad_kl = nullptr;  // (B, H, T) dL/dKL_i
  void* d_out = nullptr;           // kRows: (B, H, T, Ds); kColumns: (B, Hk, T, Ds); kSelf: (B, H, T, Ds)
  RelationKLBwdMode mode = RelationKLBwdMode::kRows;
  // mma.sync kSelf only (relation_kl_bwd_self_pipe_kernel.cuh): the launch covers the flattened
  // (b, h) in [bh0, bh0 + n_bh); accum is that chunk's zeroed fixed-point dX; quantum the per-(b, h)
  // (1 / q, q) pairs and row_stats the per-row (lse_s log2 e, lse_t log2 e, g scale_s, 0), both
  // filled when bh0 == 0 (16-byte rows, so the kernel fetches them with cp.async).
  int64_t* accum = nullptr;  // (n_bh, T, Ds)
  float* quantum = nullptr;  // (B * H, 2)
  int bh0 = 0, n_bh = 0;

  int B = 0, H = 0, Hk = 0, Hkt = 0, T = 0, Ds = 0, Dt = 0;
  float scale_s = 1.f, scale_t = 1.f;            // logit scales (natural units)
  float scale_s_log2 = 1.f, scale_t_log2 = 1.f;  // scale * log2(e): the kernels work with exp2
  bool causal = true;

  float* row_stats = nullptr;  // (B * H, T, 4) tensor-core kSelf, see accum above
  // wgmma kSelf (relation_kl_bwd_self_wgmma_kernel.cuh): the row term, fp32 (B, H, T, Ds), and
  // the per-row statistics, fp32 (B * H, 3, stats_pitch), stats_pitch = T rounded up to 64.
  float* self_rows = nullptr;
  float* col_stats = nullptr;
  int stats_pitch = 0;

  // sm_90a warpgroup-MMA kernels (relation_kl_fwd_wgmma_kernel.cuh, relation_kl_bwd_self_wgmma_
  // kernel.cuh) for Ds, Dt in {64, 128}: set by relation_kl_cuda.cu on compute capability 9.0
  // unless LINEARARD_RKL_WGMMA=0.
  bool wgmma = false;

  // mma.sync kernel variants (relation_kl_cuda.cu reads them from the environment once).
  // Pipelined forward: CTA shape (relation_kl_launch_template.cuh), and whether Ds = Dt = 64 uses
  // it (at D = 64 the exponentials dominate and the plain kernel measured faster, docs/perf.md).
  int fwd_cfg = 1;
  bool fwd_pipe_d64 = false;
};

}  // namespace linearard::ops
