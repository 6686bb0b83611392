// Hopper (sm_90a) warpgroup tensor-core primitives for the relation-KL kernels, as inline PTX:
// shared-memory matrix descriptors for the 128-byte swizzled layout, tile copies into that layout,
// wgmma.mma_async m64n64k16 (fp32 accumulators, bf16/fp16 inputs, A from shared memory or from
// registers) and its fence/commit/wait. Everything here compiles to nothing outside sm_90a
// (RKL_WGMMA_ENABLED), so the sm_80 build of the same translation unit stays valid.
//
// Layout (PTX ISA "Shared Memory Matrix Layout", 128B swizzling): a (R, D) tile of 16-bit elements
// is stored as D / 64 column chunks of (R rows x 128 bytes); in each chunk, 16-byte piece c of row r
// sits at r * 128 + ((c ^ (r % 8)) * 16). Chunks start on 1024-byte boundaries (where the pattern
// repeats), so descriptors need no base offset. The same bytes serve both majors:
//   K-major operand (rows = M or N, columns = K):  SBO = 1024 (next 8 rows), a k-step of 16
//     elements moves the start address by 32 bytes inside the chunk, k-steps 4..7 use chunk 1;
//   MN-major operand (rows = K, columns = M or N): SBO = 1024 (next 8 K-rows), a k-step of 16
//     rows moves the start by 2048 bytes; N = 64 per instruction = one chunk, so LBO is unused.
// Accumulator fragment of m64nNk16 (PTX "Matrix fragments for wgmma .m64nNk16"): warp w of the
// warpgroup holds rows 16 w .. 16 w + 15, and within it the mma.sync m16n8 C layout per 8-column
// block c: d[4 c + e] = (row g + 8 (e / 2), column 8 c + 2 q + e % 2), lane = 4 g + q. The A
// register fragment of m64nNk16 is the mma.sync m16n8k16 A layout per warp (relation_kl_mma.cuh).
#pragma once
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstdint>
#include <type_traits>

#include "ops/relation_kl/relation_kl_mma.cuh"

#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ == 900 && defined(__CUDA_ARCH_FEAT_SM90_ALL)
#define RKL_WGMMA_ENABLED 1
#endif

namespace linearard::ops::rkl {

constexpr int kSw128RowBytes = 128;   // one swizzle row: 64 16-bit elements
constexpr int kSw128AtomBytes = 1024;  // 8 rows: the pattern's period (the SBO of every operand)

// Bytes of a (ROWS, D) 16-bit tile in the swizzled layout (D a multiple of 64).
template <int ROWS, int D>
constexpr int sw128_tile_bytes() {
  return ROWS * D * 2;
}
// Byte offset of 16-byte piece `piece` (0 .. D/8 - 1) of row r in a (ROWS, D) swizzled tile.
template <int ROWS>
__device__ __forceinline__ uint32_t sw128_offset(int r, int piece) {
  return static_cast<uint32_t>((piece >> 3) * ROWS * kSw128RowBytes + r * kSw128RowBytes +
                               (((piece & 7) ^ (r & 7)) << 4));
}

// Copies rows [row0, row0 + ROWS) of a (T, D) row-major matrix into a swizzled (ROWS, D) tile at
// shared address `tile`; rows >= T are zero-filled. THREADS threads take part, each always the same
// 16-byte piece of rows r0, r0 + THREADS / (D / 8), ...: its swizzled offset is computed once.
template <int ROWS, int D, int THREADS, typename Elem>
__device__ __forceinline__ void load_tile_sw128_async(uint32_t tile, const Elem* gmem, int row0, int T) {
  constexpr int kPieces = D / 8;                  // 16-byte pieces per row
  constexpr int kRowsPerPass = THREADS / kPieces;  // rows covered by one pass of all threads
  static_assert(THREADS % kPieces == 0 && kRowsPerPass % 8 == 0 && ROWS % kRowsPerPass == 0,
                "each thread keeps one piece and one swizzle phase");
  const int tid = threadIdx.x % THREADS, piece = tid % kPieces, r0 = tid / kPieces;
  const uint32_t dst = tile + sw128_offset<ROWS>(r0, piece);
  const Elem* src = gmem + static_cast<int64_t>(row0 + r0) * D + piece * 8;
#pragma unroll
  for (int i = 0; i < ROWS / kRowsPerPass; ++i) {
    const bool in = row0 + r0 + i * kRowsPerPass < T;
    cp_async_16(dst + i * kRowsPerPass * kSw128RowBytes,
                in ? src + static_cast<int64_t>(i) * kRowsPerPass * D : gmem, in ? 16 : 0);
  }
}

// threadIdx.x / 128 through a shuffle: ptxas then knows it is warp-uniform, so branches on it are not
// divergent paths (a wgmma on a possibly divergent path is serialized, warning C7518; CUTLASS's
// canonical_warp_group_idx does the same).
__device__ __forceinline__ int warpgroup_index() {
  return __shfl_sync(0xffffffffu, static_cast<int>(threadIdx.x / 128), 0);
}

// 64-bit shared-memory matrix descriptor, 128B swizzle (PTX "Matrix Descriptor Format"):
// bits 0-13 start address >> 4, 16-29 LBO >> 4 (unused here, 1 as CUTLASS writes), 32-45 SBO >> 4,
// 62-63 swizzle mode (1 = 128B).
__device__ __forceinline__ uint64_t sw128_desc(uint32_t saddr) {
  return static_cast<uint64_t>((saddr & 0x3FFFF) >> 4) | (uint64_t{1} << 16) |
         (static_cast<uint64_t>(kSw128AtomBytes >> 4) << 32) | (uint64_t{1} << 62);
}

#ifdef RKL_WGMMA_ENABLED
__device__ __forceinline__ void wgmma_fence() { asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory"); }
__device__ __forceinline__ void wgmma_commit() { asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory"); }
template <int N>
__device__ __forceinline__ void wgmma_wait() {
  asm volatile("wgmma.wait_group.sync.aligned %0;\n" ::"n"(N) : "memory");
}
#else
__device__ __forceinline__ void wgmma_fence() {}
__device__ __forceinline__ void wgmma_commit() {}
template <int N>
__device__ __forceinline__ void wgmma_wait() {}
#endif

// Keeps the compiler from moving reads or writes of accumulator registers across the wgmma
// issue/wait points (CUTLASS's warpgroup_fence_operand).
template <int N>
__device__ __forceinline__ void fence_regs(float (&d)[N]) {
#pragma unroll
  for (int i = 0; i < N; ++i) asm volatile("" : "+f"(d[i])::"memory");
}

#define RKL_WGMMA_D32                                                                                    \
  "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, " \
  "%22, %23, %24, %25, %26, %27, %28, %29, %30, %31}"
#define RKL_WGMMA_OUT32(d)                                                                            \
  "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]),     \
      "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]),        \
      "+f"(d[15]), "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]),      \
      "+f"(d[22]), "+f"(d[23]), "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]),      \
      "+f"(d[29]), "+f"(d[30]), "+f"(d[31])

// d (64 x 64 fp32) = A (64 x 16) B (16 x 64) + (accumulate ? d : 0), both operands in shared
// memory. TRANS_A / TRANS_B: 0 = K-major, 1 = MN-major (see the layout notes above).
template <typename Elem, int TRANS_A, int TRANS_B>
__device__ __forceinline__ void wgmma_64x64_ss(float (&d)[32], uint64_t desc_a, uint64_t desc_b, bool accumulate) {
#ifdef RKL_WGMMA_ENABLED
  if constexpr (std::is_same_v<Elem, __nv_bfloat16>) {
    asm volatile(
        "{\n.reg .pred p;\nsetp.ne.b32 p, %34, 0;\n"
        "wgmma.mma_async.sync.aligned.m64n64k16.f32.bf16.bf16 " RKL_WGMMA_D32 ", %32, %33, p, 1, 1, %35, %36;\n}\n"
        : RKL_WGMMA_OUT32(d)
        : "l"(desc_a), "l"(desc_b), "r"(static_cast<int>(accumulate)), "n"(TRANS_A), "n"(TRANS_B));
  } else {
    asm volatile(
        "{\n.reg .pred p;\nsetp.ne.b32 p, %34, 0;\n"
        "wgmma.mma_async.sync.aligned.m64n64k16.f32.f16.f16 " RKL_WGMMA_D32 ", %32, %33, p, 1, 1, %35, %36;\n}\n"
        : RKL_WGMMA_OUT32(d)
        : "l"(desc_a), "l"(desc_b), "r"(static_cast<int>(accumulate)), "n"(TRANS_A), "n"(TRANS_B));
  }
#endif
}

// d (64 x 64 fp32) = A (64 x 16, registers: the m16n8k16 A fragment of each warp's 16 rows) B
// (16 x 64, shared memory; TRANS_B as above) + (accumulate ? d : 0).
template <typename Elem, int TRANS_B>
__device__ __forceinline__ void wgmma_64x64_rs(float (&d)[32], const uint32_t (&a)[4], uint64_t desc_b,
                                               bool accumulate) {
#ifdef RKL_WGMMA_ENABLED
  if constexpr (std::is_same_v<Elem, __nv_bfloat16>) {
    asm volatile(
        "{\n.reg .pred p;\nsetp.ne.b32 p, %38, 0;\n"
        "wgmma.mma_async.sync.aligned.m64n64k16.f32.bf16.bf16 " RKL_WGMMA_D32
        ", {%32, %33, %34, %35}, %36, p, 1, 1, %37;\n}\n"
        : RKL_WGMMA_OUT32(d)
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(desc_b), "n"(TRANS_B),
          "r"(static_cast<int>(accumulate)));
  } else {
    asm volatile(
        "{\n.reg .pred p;\nsetp.ne.b32 p, %38, 0;\n"
        "wgmma.mma_async.sync.aligned.m64n64k16.f32.f16.f16 " RKL_WGMMA_D32
        ", {%32, %33, %34, %35}, %36, p, 1, 1, %37;\n}\n"
        : RKL_WGMMA_OUT32(d)
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(desc_b), "n"(TRANS_B),
          "r"(static_cast<int>(accumulate)));
  }
#endif
}

#undef RKL_WGMMA_D32
#undef RKL_WGMMA_OUT32

// acc (64 rows x 64 columns) = A B^T over the head dim D (64 or 128), both K-major swizzled tiles:
// A = rows [0, 64) at a_tile (a tile of A_ROWS rows), B = B_ROWS rows at b_tile, rows [0, 64).
// Issues D / 16 wgmma (no commit).
template <typename Elem, int D, int A_ROWS, int B_ROWS>
__device__ __forceinline__ void wgmma_logits(float (&acc)[32], uint32_t a_tile, uint32_t b_tile) {
#pragma unroll
  for (int kk = 0; kk < D / 16; ++kk) {
    const uint32_t a = a_tile + (kk / 4) * A_ROWS * kSw128RowBytes + (kk % 4) * 32;
    const uint32_t b = b_tile + (kk / 4) * B_ROWS * kSw128RowBytes + (kk % 4) * 32;
    wgmma_64x64_ss<Elem, 0, 0>(acc, sw128_desc(a), sw128_desc(b), kk > 0);
  }
}

// The student and teacher logit tiles of one streamed tile as one wgmma group: s = Xa Xo^T over
// DS, t = Ya Yo^T over DT; the anchors' K-major tiles at a_x / a_y (A_ROWS rows each, this
// warpgroup's 64 from there), the streamed stage at b_tile ((B_ROWS, DS) then (B_ROWS, DT)).
template <typename Elem, int DS, int DT, int A_ROWS, int B_ROWS>
__device__ __forceinline__ void wgmma_logit_pair(float (&s)[32], float (&t)[32], uint32_t a_x, uint32_t a_y,
                                                 uint32_t b_tile) {
  fence_regs(s);
  fence_regs(t);
  wgmma_fence();
  wgmma_logits<Elem, DS, A_ROWS, B_ROWS>(s, a_x, b_tile);
  wgmma_logits<Elem, DT, A_ROWS, B_ROWS>(t, a_y, b_tile + B_ROWS * DS * 2);
  wgmma_commit();
}

}  // namespace linearard::ops::rkl
