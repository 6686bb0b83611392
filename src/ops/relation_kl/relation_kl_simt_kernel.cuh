// Plain SIMT (no tensor cores, no TF32) forward and backward of the relation KL: the path for fp32
// inputs and for head dims the tensor-core kernels do not take (not a multiple of 16, or > 128).
// One thread per anchor row; streamed rows are staged in shared memory as fp32 (exact for every
// input dtype) and read by all threads at once (broadcast). Dot products, statistics, exponentials
// and the gradient accumulator are float64: measured on H200, fp32 arithmetic with ex2.approx gave
// 2-5x the error of the naive fp32 LibTorch reference, failing the 2x rule; float64 leaves only
// the rounding of the fp32 outputs and of the saved fp32 LSEs. Simple rather than fast.
#pragma once
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include "ops/relation_kl/relation_kl_params.h"
#include "ops/relation_kl/relation_kl_tile.cuh"

namespace linearard::ops::rkl {

constexpr int kSimtRows = 32;  // anchor rows (threads) per CTA
constexpr int kSimtTile = 32;  // streamed rows per shared-memory tile

__device__ __forceinline__ float to_f32(float x) { return x; }
__device__ __forceinline__ float to_f32(__nv_bfloat16 x) { return __bfloat162float(x); }
__device__ __forceinline__ float to_f32(__half x) { return __half2float(x); }
template <typename Elem>
__device__ __forceinline__ Elem from_f32(float x);
template <>
__device__ __forceinline__ float from_f32<float>(float x) { return x; }
template <>
__device__ __forceinline__ __nv_bfloat16 from_f32<__nv_bfloat16>(float x) { return __float2bfloat16_rn(x); }
template <>
__device__ __forceinline__ __half from_f32<__half>(float x) { return __float2half_rn(x); }

// Rows [row0, row0 + ROWS) of a (T, D) matrix into fp32 shared memory with row pitch `pitch`.
template <int ROWS, typename Elem>
__device__ __forceinline__ void load_rows_f32(float* dst, int pitch, const Elem* src, int row0, int T, int D) {
  for (int i = threadIdx.x; i < ROWS * D; i += blockDim.x) {
    const int r = i / D, d = i - r * D, row = row0 + r;
    dst[r * pitch + d] = row < T ? to_f32(src[static_cast<int64_t>(row) * D + d]) : 0.f;
  }
}

__device__ __forceinline__ double dot_f64(const float* a, const float* b, int D) {
  double acc = 0.0;
  for (int d = 0; d < D; ++d) acc = fma(static_cast<double>(a[d]), static_cast<double>(b[d]), acc);
  return acc;
}
constexpr double kLn2d = 0.6931471805599453;
constexpr double kLog2ed = 1.4426950408889634;

// Dynamic shared memory: float anchors Xa (R, Ds+1), Ya (R, Dt+1), streamed Xo (K, Ds), Yo (K, Dt);
// the backward adds double acc (R, Ds+1) and streamed statistics (3, K). The +1 pitch keeps the
// per-thread anchor rows in distinct banks.
__host__ __device__ inline int simt_float_count(int Ds, int Dt) {
  const int n = kSimtRows * (Ds + 1 + Dt + 1) + kSimtTile * (Ds + Dt);
  return (n + 1) / 2 * 2;  // keep the double part 8-byte aligned
}
inline int simt_smem_bytes(int Ds, int Dt, bool backward) {
  int bytes = simt_float_count(Ds, Dt) * 4;
  if (backward) bytes += (kSimtRows * (Ds + 1) + 3 * kSimtTile) * 8;
  return bytes;
}

// grid (B * H, ceil(T / kSimtRows)), kSimtRows threads.
template <typename Elem>
__global__ void __launch_bounds__(kSimtRows) relation_kl_fwd_simt_kernel(const __grid_constant__ RelationKLParams p) {
  extern __shared__ float smem_f[];
  const int Ds = p.shape.Ds, Dt = p.shape.Dt, T = p.shape.T;
  float* sXa = smem_f;
  float* sYa = sXa + kSimtRows * (Ds + 1);
  float* sXo = sYa + kSimtRows * (Dt + 1);
  float* sYo = sXo + kSimtTile * Ds;
  const int b = blockIdx.x / p.shape.H, h = blockIdx.x % p.shape.H;
  const int hk = h / (p.shape.H / p.shape.Hk), hkt = h / (p.shape.H / p.shape.Hkt);
  const int row0 = blockIdx.y * kSimtRows, row = row0 + threadIdx.x;
  const Elem* xq = static_cast<const Elem*>(p.layout.xq) + static_cast<int64_t>(b * p.shape.H + h) * T * Ds;
  const Elem* yq = static_cast<const Elem*>(p.layout.yq) + static_cast<int64_t>(b * p.shape.H + h) * T * Dt;
  const Elem* xk = static_cast<const Elem*>(p.layout.xk) + static_cast<int64_t>(b * p.shape.Hk + hk) * T * Ds;
  const Elem* yk =
      static_cast<const Elem*>(p.layout.yk) + static_cast<int64_t>(b * p.shape.Hkt + hkt) * T * Dt;
  const uint8_t* km = p.layout.key_mask ? p.layout.key_mask + static_cast<int64_t>(b) * T : nullptr;
  load_rows_f32<kSimtRows>(sXa, Ds + 1, xq, row0, T, Ds);
  load_rows_f32<kSimtRows>(sYa, Dt + 1, yq, row0, T, Dt);
  const float* xa = sXa + threadIdx.x * (Ds + 1);
  const float* ya = sYa + threadIdx.x * (Dt + 1);
  RowStatsT<double> st;
  st.init();
  const double sc_s = static_cast<double>(p.shape.scale_s) * kLog2ed,
               sc_t = static_cast<double>(p.shape.scale_t) * kLog2ed;
  // Packed documents: keys [span.lo, span.hi) only, and of the row's own document.
  const int32_t* dk = p.layout.doc_ids ? p.layout.doc_ids + static_cast<int64_t>(b) * T : nullptr;
  const DocSpan span = doc_span(p, b, row0, row0 + kSimtRows);
  const int row_doc = dk ? doc_of(dk, row, T) : 0;
  const int col_end = min(p.shape.causal ? min(T, row0 + kSimtRows) : T, span.hi);
  for (int col0 = span.lo; col0 < col_end; col0 += kSimtTile) {
    __syncthreads();
    load_rows_f32<kSimtTile>(sXo, Ds, xk, col0, T, Ds);
    load_rows_f32<kSimtTile>(sYo, Dt, yk, col0, T, Dt);
    __syncthreads();
    for (int j = 0; j < kSimtTile; ++j) {
      const int col = col0 + j;
      if (col >= T || (km != nullptr && km[col] == 0) || (p.shape.causal && col > row)) continue;
      if (dk != nullptr && __ldg(dk + col) != row_doc) continue;
      const double s2 = dot_f64(xa, sXo + j * Ds, Ds) * sc_s;
      const double t2 = dot_f64(ya, sYo + j * Dt, Dt) * sc_t;
      st.rescale(fmax(st.m_s, s2), fmax(st.m_t, t2));
      const double ss = s2 - st.m_s, tt = t2 - st.m_t, et = exp2(tt);
      st.l_s += exp2(ss);
      st.l_t += et;
      st.a += et * (tt - ss);
    }
  }
  if (row < T) {
    const bool valid = st.l_s > 0.0 && (km == nullptr || km[row] != 0);
    const int64_t o = static_cast<int64_t>(b * p.shape.H + h) * T + row;
    p.layout.kl[o] = valid ? static_cast<float>(kLn2d * (st.a / st.l_t + log2(st.l_s / st.l_t))) : 0.f;
    p.layout.lse_s[o] = valid ? static_cast<float>(kLn2d * (st.m_s + log2(st.l_s))) : -INFINITY;
    p.layout.lse_t[o] = valid ? static_cast<float>(kLn2d * (st.m_t + log2(st.l_t))) : -INFINITY;
  }
}

// Statistics of query row `row` of head h: natural-log LSEs and g scale_s; invalid rows give
// lse = +inf, g = 0 (so G = 0).
__device__ __forceinline__ void simt_row_stats(const RelationKLParams& p, int b, int h, int row,
                                               const uint8_t* km, double& ls, double& lt, double& gs) {
  ls = lt = INFINITY;
  gs = 0.0;
  if (row >= p.shape.T || (km != nullptr && km[row] == 0)) return;
  const int64_t o = static_cast<int64_t>(b * p.shape.H + h) * p.shape.T + row;
  if (p.layout.lse_s[o] == -INFINITY) return;
  ls = p.layout.lse_s[o];
  lt = p.layout.lse_t[o];
  gs = static_cast<double>(p.layout.grad_kl[o]) * p.shape.scale_s;
}

// grid (B * Hx, ceil(T / kSimtRows)), Hx = Hk for kColumns else H; kSimtRows threads.
template <typename Elem>
__global__ void __launch_bounds__(kSimtRows) relation_kl_bwd_simt_kernel(const __grid_constant__ RelationKLParams p) {
  extern __shared__ double smem_d[];
  const int Ds = p.shape.Ds, Dt = p.shape.Dt, T = p.shape.T;
  float* sXa = reinterpret_cast<float*>(smem_d);
  float* sYa = sXa + kSimtRows * (Ds + 1);
  float* sXo = sYa + kSimtRows * (Dt + 1);
  float* sYo = sXo + kSimtTile * Ds;
  double* sAcc = smem_d + simt_float_count(Ds, Dt) / 2;
  double* sLs = sAcc + kSimtRows * (Ds + 1);
  double* sLt = sLs + kSimtTile;
  double* sG = sLt + kSimtTile;
  const int heads = p.launch.mode == RelationKLBwdMode::kColumns ? p.shape.Hk : p.shape.H;
  const int b = blockIdx.x / heads, ha = blockIdx.x % heads;
  const int row0 = blockIdx.y * kSimtRows, row = row0 + threadIdx.x;
  const uint8_t* km = p.layout.key_mask ? p.layout.key_mask + static_cast<int64_t>(b) * T : nullptr;
  // Packed documents: streamed rows [span.lo, span.hi) only, and of the anchor's own document.
  const int32_t* dk = p.layout.doc_ids ? p.layout.doc_ids + static_cast<int64_t>(b) * T : nullptr;
  const DocSpan span = doc_span(p, b, row0, row0 + kSimtRows);
  const int row_doc = dk ? doc_of(dk, row, T) : 0;
  auto ptr = [&](const void* base, int num_heads, int head, int D) {
    return static_cast<const Elem*>(base) + static_cast<int64_t>(b * num_heads + head) * T * D;
  };
  double* acc = sAcc + threadIdx.x * (Ds + 1);
  for (int d = 0; d < Ds; ++d) acc[d] = 0.0;
  const double sc_s = p.shape.scale_s, sc_t = p.shape.scale_t;  // natural units: p = exp(x sc - lse)
  const float* xa = sXa + threadIdx.x * (Ds + 1);
  const float* ya = sYa + threadIdx.x * (Dt + 1);

  if (p.launch.mode != RelationKLBwdMode::kColumns) {  // row pass: anchors = queries of head ha
    const int h = ha, hk = h / (p.shape.H / p.shape.Hk), hkt = h / (p.shape.H / p.shape.Hkt);
    load_rows_f32<kSimtRows>(sXa, Ds + 1, ptr(p.layout.xq, p.shape.H, h, Ds), row0, T, Ds);
    load_rows_f32<kSimtRows>(sYa, Dt + 1, ptr(p.layout.yq, p.shape.H, h, Dt), row0, T, Dt);
    double ls, lt, gs;
    simt_row_stats(p, b, h, row, km, ls, lt, gs);
    const int col_end = min(p.shape.causal ? min(T, row0 + kSimtRows) : T, span.hi);
    for (int col0 = span.lo; col0 < col_end; col0 += kSimtTile) {
      __syncthreads();
      load_rows_f32<kSimtTile>(sXo, Ds, ptr(p.layout.xk, p.shape.Hk, hk, Ds), col0, T, Ds);
      load_rows_f32<kSimtTile>(sYo, Dt, ptr(p.layout.yk, p.shape.Hkt, hkt, Dt), col0, T, Dt);
      __syncthreads();
      if (gs == 0.0) continue;
      for (int j = 0; j < kSimtTile; ++j) {
        const int col = col0 + j;
        if (col >= T || (km != nullptr && km[col] == 0) || (p.shape.causal && col > row)) continue;
        if (dk != nullptr && __ldg(dk + col) != row_doc) continue;
        const double ps = exp(fma(dot_f64(xa, sXo + j * Ds, Ds), sc_s, -ls));
        const double pt = exp(fma(dot_f64(ya, sYo + j * Dt, Dt), sc_t, -lt));
        const double gij = gs * (ps - pt);
        for (int d = 0; d < Ds; ++d) acc[d] = fma(gij, static_cast<double>(sXo[j * Ds + d]), acc[d]);
      }
    }
  }
  if (p.launch.mode != RelationKLBwdMode::kRows) {  // column pass: anchors = keys of key head ha
    const int hk = ha, group = p.shape.H / p.shape.Hk;
    const bool key_ok = row < T && (km == nullptr || km[row] != 0);
    for (int h = hk * group; h < (hk + 1) * group; ++h) {
      const int hkt = h / (p.shape.H / p.shape.Hkt);
      __syncthreads();
      load_rows_f32<kSimtRows>(sXa, Ds + 1, ptr(p.layout.xk, p.shape.Hk, hk, Ds), row0, T, Ds);
      load_rows_f32<kSimtRows>(sYa, Dt + 1, ptr(p.layout.yk, p.shape.Hkt, hkt, Dt), row0, T, Dt);
      const int col_begin = max(p.shape.causal ? row0 : 0, span.lo);
      for (int col0 = col_begin; col0 < span.hi; col0 += kSimtTile) {
        __syncthreads();
        load_rows_f32<kSimtTile>(sXo, Ds, ptr(p.layout.xq, p.shape.H, h, Ds), col0, T, Ds);
        load_rows_f32<kSimtTile>(sYo, Dt, ptr(p.layout.yq, p.shape.H, h, Dt), col0, T, Dt);
        for (int j = threadIdx.x; j < kSimtTile; j += blockDim.x)
          simt_row_stats(p, b, h, col0 + j, km, sLs[j], sLt[j], sG[j]);
        __syncthreads();
        if (!key_ok) continue;
        for (int j = 0; j < kSimtTile; ++j) {
          const int col = col0 + j;
          if (sG[j] == 0.0 || (p.shape.causal && row > col)) continue;
          if (dk != nullptr && __ldg(dk + col) != row_doc) continue;  // sG[j] != 0: col < T
          const double ps = exp(fma(dot_f64(xa, sXo + j * Ds, Ds), sc_s, -sLs[j]));
          const double pt = exp(fma(dot_f64(ya, sYo + j * Dt, Dt), sc_t, -sLt[j]));
          const double gij = sG[j] * (ps - pt);
          for (int d = 0; d < Ds; ++d) acc[d] = fma(gij, static_cast<double>(sXo[j * Ds + d]), acc[d]);
        }
      }
    }
  }
  if (row < T) {
    const int out_heads = p.launch.mode == RelationKLBwdMode::kColumns ? p.shape.Hk : p.shape.H;
    Elem* out =
        static_cast<Elem*>(p.layout.d_out) + (static_cast<int64_t>(b * out_heads + ha) * T + row) * Ds;
    for (int d = 0; d < Ds; ++d) out[d] = from_f32<Elem>(static_cast<float>(acc[d]));
  }
}

}  // namespace linearard::ops::rkl
