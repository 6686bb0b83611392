// Shared pieces of the mma.sync self-relation backward (the kernel is relation_kl_bwd_self_pipe_
// kernel.cuh; its first version, kept here until the sm_90a kernels landed, is gone): tile
// constants, shared-memory layout, fixed-point helpers, the row-term GEMM and the finalize kernel.
// The design, with ONE logit recompute per score element, deterministic: dX = scale_s (G + G^T) X with G_ij = g_i (p_s,ij - p_t,ij) (anchors §2.5).
//
// Grid over key ("column") blocks, FA2's backward layout (anchors §2.4): each CTA owns kSelfKeys
// keys j (8 warps x 16) and streams the query blocks i >= j (causal). Per streamed tile it
// recomputes the student and teacher logit tiles (transposed: keys x queries) from the saved LSEs,
// forms G^T in fp32 and
//   column term  acc_j += G^T X_i   kept in registers for the CTA's life (the keys' own dX part)
//   row term     dX_i  += G X_j     a (kSelfQueries x D) partial per tile, G passing through
//                                   shared memory as bf16/fp16 (the same rounding as the column
//                                   GEMM's operand)
// Both terms go into one (n_bh, T, Ds) int64 fixed-point accumulator with integer adds (the row
// term through the copy engine's bulk reduce on sm_90, atomics on sm_80; the column term by
// atomics): integer addition is associative, so the sum is bitwise independent of the order in
// which CTAs arrive (fp32 atomics are not, which is why FA2's dQ is nondeterministic). The quantum
// is a power of two per (b, h), 2^-60 of a bound on every partial sum
// (relation_kl_self_quantum_wide_kernel), so nothing overflows and each contribution is rounded far
// below fp32 resolution for any value within 2^30 of the bound; a finalize kernel scales the sums
// back into the output dtype. The caller zeroes the accumulator and runs (b, h) in chunks so that
// it stays within 1x the inputs' memory (docs/perf.md).
#pragma once
#include "ops/relation_kl/relation_kl_tile.cuh"

namespace linearard::ops::rkl {

constexpr int kSelfKeys = 128;                  // anchor keys per CTA: 8 warps x 16
constexpr int kSelfQueries = kBlockN;           // streamed query rows per tile (warp_logits' width)
constexpr int kSelfWarps = kSelfKeys / 16;
constexpr int kSelfThreads = kSelfWarps * 32;
constexpr int kSelfPitchG = kSelfQueries + 8;   // G^T tile row pitch (+16 bytes: ldmatrix banks)
// Fixed-point headroom: |partial sum| <= bound <= 2^E, quantum 2^(E - 60) keeps |sum| < 2^61.
constexpr int kSelfFixedBits = 60;

template <typename Elem, int DS, int DT>
struct BwdSelfSmem {
  static constexpr int kPS = pitch_of(DS), kPT = pitch_of(DT);
  static constexpr int kElemBytes = (kSelfKeys * (kPS + kPT) + 2 * kSelfQueries * (kPS + kPT) +
                                     kSelfKeys * kSelfPitchG) *
                                    static_cast<int>(sizeof(Elem));
  // + per streamed query row: (lse_s, lse_t in log2 units, g scale_s, 0) fp32; 2 stages
  static constexpr int kStatBytes = 2 * kSelfQueries * 16;
  // + the row term's int64 staging for the bulk reduce (sm_90): per warp 16 rows of DS / 2 values,
  // rows padded by 16 bytes (a 512-byte pitch would put all 8 rows of a store in one bank group).
  static constexpr int kStageRowBytes = DS / 2 * 8 + 16;
  static constexpr int kBytes = kElemBytes + kStatBytes + kSelfWarps * 16 * kStageRowBytes;
};

// Adds v (fp32) to a fixed-point accumulator element; the result is unused, so this is a RED.
// (No skip of zeros: the branch per element cost more than the few zero atomics near the diagonal.)
__device__ __forceinline__ void red_fixed(int64_t* dst, float v, float inv_q) {
  const long long i = __float2ll_rn(v * inv_q);
  atomicAdd(reinterpret_cast<unsigned long long*>(dst), static_cast<unsigned long long>(i));
}

// Hopper bulk reduce (cp.reduce.async.bulk, the copy engine's path FA3 uses for dQ): adds `bytes`
// (multiple of 16) of int64 from shared to global memory in whole L2 sectors, instead of one
// atomic per element. sm_90 only; the sm_80 build keeps the per-element atomics.
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
#define LINEARARD_RKL_BULK_REDUCE 1
__device__ __forceinline__ void bulk_reduce_add_s64(int64_t* gdst, const int64_t* ssrc, uint32_t bytes) {
  asm volatile("cp.reduce.async.bulk.global.shared::cta.bulk_group.add.u64 [%0], [%1], %2;\n" ::"l"(gdst),
               "r"(smem_addr(ssrc)), "r"(bytes)
               : "memory");
}
__device__ __forceinline__ void bulk_commit() {
  asm volatile("cp.async.bulk.commit_group;\n" ::: "memory");
}
__device__ __forceinline__ void bulk_wait_read_all() {
  asm volatile("cp.async.bulk.wait_group.read 0;\n" ::: "memory");
}
__device__ __forceinline__ void bulk_wait_all() {
  asm volatile("cp.async.bulk.wait_group 0;\n" ::: "memory");
}
#endif

// racc (16 queries x DS/2 dims, C fragments) = G (16 queries at q0 x kSelfKeys keys; stored
// transposed in sGt as [key][query]) * X (kSelfKeys anchor rows at sXa, dims [d0, d0 + DS/2)).
template <typename Elem, int DS, bool FULL>
__device__ __forceinline__ void warp_row_term(float (&racc)[DS / 16][4], const Elem* sGt, int q0,
                                              const Elem* sXa, int d0, int D, int lane) {
  constexpr int P = pitch_of(DS);
#pragma unroll
  for (int nt = 0; nt < DS / 16; ++nt) racc[nt][0] = racc[nt][1] = racc[nt][2] = racc[nt][3] = 0.f;
#pragma unroll
  for (int ks = 0; ks < kSelfKeys / 16; ++ks) {
    // A = G (queries x keys) from the [key][query] tile: transposed ldmatrix; matrix m = lane / 8
    // covers keys +8 (m >= 2) and queries +8 (m odd), the a[0..3] order of mma_16816.
    uint32_t a[4];
    ldmatrix_x4_trans(a, smem_addr(sGt + (ks * 16 + (lane & 7) + ((lane >> 4) << 3)) * kSelfPitchG +
                                   q0 + ((lane >> 3) & 1) * 8));
#pragma unroll
    for (int dp = 0; dp < DS / 32; ++dp) {
      if (FULL || d0 + dp * 16 < D) {
        uint32_t b[4];
        ldmatrix_x4_trans(b, smem_addr(sXa + (ks * 16 + (lane & 7) + ((lane >> 3) & 1) * 8) * P +
                                       d0 + dp * 16 + (lane >> 4) * 8));
        mma16816<Elem>(racc[2 * dp], a, b[0], b[1]);
        mma16816<Elem>(racc[2 * dp + 1], a, b[2], b[3]);
      }
    }
  }
}

// d_out[(bh0 + i) T Ds + k] = accum[i T Ds + k] * quantum (the chunk's n_bh x T x Ds elements).
template <typename Elem>
__global__ void relation_kl_self_finalize_kernel(const __grid_constant__ RelationKLParams p) {
  const int64_t per_bh = static_cast<int64_t>(p.shape.T) * p.shape.Ds;
  const int64_t n = per_bh * p.launch.n_bh / 2;  // pairs (Ds is even)
  Elem* out = static_cast<Elem*>(p.layout.d_out) + static_cast<int64_t>(p.launch.bh0) * per_bh;
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t k = 2 * i;
    const float qv = p.launch.quantum[2 * (p.launch.bh0 + k / per_bh) + 1];
    const longlong2 v = *reinterpret_cast<const longlong2*>(p.launch.accum + k);
    MmaType<Elem>::store2(out + k, __ll2float_rn(v.x) * qv, __ll2float_rn(v.y) * qv);
  }
}

}  // namespace linearard::ops::rkl
