// Warp-level tensor-core and copy primitives for the relation-KL kernels (sm_80 and up), written as
// inline PTX: mma.sync m16n8k16 with fp32 accumulation, ldmatrix (plain and transposed) and
// cp.async 16-byte copies with zero fill. Fragment layouts follow the PTX ISA's "Matrix fragments
// for mma.m16n8k16": with lane = 4 g + q (g = lane / 4, q = lane % 4),
//   A (16 x 16, row-major):  a[0] = (g, 2q..2q+1)  a[1] = (g+8, 2q..)  a[2] = (g, 2q+8..)  a[3] = (g+8, 2q+8..)
//   B (16 x 8, k x n):       b[0] = (k 2q..2q+1, n g)   b[1] = (k 2q+8.., n g)
//   C (16 x 8, fp32):        c[0..1] = (g, 2q..2q+1)    c[2..3] = (g+8, 2q..2q+1)
#pragma once
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cstdint>

namespace linearard::ops::rkl {

template <typename Elem>
struct MmaType;
template <>
struct MmaType<__nv_bfloat16> {
  // Two fp32 values -> one register of two bf16 (round to nearest even).
  static __device__ __forceinline__ uint32_t pack(float lo, float hi) {
    __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);
    return *reinterpret_cast<uint32_t*>(&v);
  }
  static __device__ __forceinline__ void store2(__nv_bfloat16* p, float lo, float hi) {
    *reinterpret_cast<__nv_bfloat162*>(p) = __floats2bfloat162_rn(lo, hi);
  }
};
template <>
struct MmaType<__half> {
  static __device__ __forceinline__ uint32_t pack(float lo, float hi) {
    __half2 v = __floats2half2_rn(lo, hi);
    return *reinterpret_cast<uint32_t*>(&v);
  }
  static __device__ __forceinline__ void store2(__half* p, float lo, float hi) {
    *reinterpret_cast<__half2*>(p) = __floats2half2_rn(lo, hi);
  }
};

// D += A (16 x 16) * B (16 x 8), fp32 accumulators.
template <typename Elem>
__device__ __forceinline__ void mma16816(float (&d)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1);

template <>
__device__ __forceinline__ void mma16816<__nv_bfloat16>(float (&d)[4], const uint32_t (&a)[4],
                                                        uint32_t b0, uint32_t b1) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
      "{%0,%1,%2,%3};\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

template <>
__device__ __forceinline__ void mma16816<__half>(float (&d)[4], const uint32_t (&a)[4], uint32_t b0,
                                                 uint32_t b1) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
      "{%0,%1,%2,%3};\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

__device__ __forceinline__ uint32_t smem_addr(const void* p) {
  return static_cast<uint32_t>(__cvta_generic_to_shared(p));
}

// Four 8x8 b16 matrices; lanes 8m..8m+7 give the row addresses of matrix m.
__device__ __forceinline__ void ldmatrix_x4(uint32_t (&r)[4], uint32_t addr) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(addr));
}
__device__ __forceinline__ void ldmatrix_x4_trans(uint32_t (&r)[4], uint32_t addr) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(addr));
}

// 16-byte global -> shared copy; copies src_bytes (0 or 16) and zero-fills the rest.
__device__ __forceinline__ void cp_async_16(uint32_t dst, const void* src, int src_bytes) {
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(dst), "l"(src), "r"(src_bytes));
}
__device__ __forceinline__ void cp_async_16(void* dst, const void* src, int src_bytes) {
  cp_async_16(smem_addr(dst), src, src_bytes);
}

// Orders this thread's ordinary shared-memory writes (stores, cp.async) before later async-proxy
// reads of them (wgmma operands, bulk copies) after a barrier (PTX ISA: fence.proxy.async). sm_90 only; nothing
// before, where no async-proxy reader exists.
__device__ __forceinline__ void fence_proxy_async_shared() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory");
#endif
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::); }
__device__ __forceinline__ void cp_async_wait_all() { asm volatile("cp.async.wait_group 0;\n" ::); }
// Waits until at most N of this thread's committed cp.async groups are still in flight.
template <int N>
__device__ __forceinline__ void cp_async_wait() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(N));
}

// Copies rows [row0, row0 + ROWS) of a (T, D) row-major matrix into shared memory with row pitch
// `pitch` elements; rows >= T are zero-filled. D must be a multiple of 8 (16-byte chunks).
template <int ROWS, int THREADS, typename Elem>
__device__ __forceinline__ void load_tile_async(Elem* smem, int pitch, const Elem* gmem, int row0,
                                                int T, int D) {
  const int chunks = D / 8;  // 16-byte chunks per row
  for (int c = threadIdx.x; c < ROWS * chunks; c += THREADS) {
    const int r = c / chunks, k = (c - r * chunks) * 8;
    const int row = row0 + r;
    const bool in = row < T;
    const Elem* src = gmem + (in ? static_cast<int64_t>(row) * D + k : 0);
    cp_async_16(smem + r * pitch + k, src, in ? 16 : 0);
  }
}

}  // namespace linearard::ops::rkl
