// The plain parameter struct that is all a relation-KL kernel sees (no Tensors, no ATen), in parts:
// the memory layout (pointers to contiguous tensors), the launch (the chosen kernel, the backward
// term, the (b, h) chunk), the problem's shape (sizes, scales, mask rule) and the self backwards'
// workspace.
// relation_kl_cuda.cu fills it after every Tensor check; the launchers in relation_kl_launch.h take
// it by value. Dimension letters as in relation_kl.h: B batch, H query heads, Hk student key heads,
// Hkt teacher key heads (GQA), T tokens, Ds student and Dt teacher head dims.
#pragma once
#include <cstdint>

#include "ops/relation_kl/relation_kl_kernel.h"

namespace linearard::ops {

// Index granule of RelationKLLayout::doc_span: 16 = one mma row block, the smallest anchor block of
// any kernel; a CTA of 64 or 128 anchors combines 4 or 8 granules.
constexpr int kRelationKLDocGranule = 16;

// Which gradient terms a backward launch computes (relation_kl.h: dL/ds_ij = g_i (p_s,ij - p_t,ij)).
enum class RelationKLBwdMode : int {
  kRows = 0,     // d_xq_i = scale_s sum_j G_ij xk_j           (one CTA per query row block)
  kColumns = 1,  // d_xk_j = scale_s sum_{h in group, i} G_ij xq_i  (one CTA per key row block)
  kSelf = 2,     // xq = xk = x: d_x = scale_s (G + G^T) x, both terms into one buffer
};

// Where the tensors live: contiguous, all inputs of one element type (the launcher's template).
struct RelationKLLayout {
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

  // Packed documents (RelationKLOptions::doc_ids): nullptr = one document per batch row. Key j is
  // valid for row i only when doc_ids[b, j] == doc_ids[b, i] (the per-element mask), and
  // doc_span[b, g] = (lo, hi) bounds the indices sharing a document with an index of the granule
  // [g kRelationKLDocGranule, (g + 1) kRelationKLDocGranule): a CTA skips the streamed tiles outside
  // the span of its anchor rows (relation_kl_tile.cuh, doc_span). Filled by relation_kl_cuda.cu
  // (its doc-span kernel) from doc_ids alone, so the ids need not be sorted.
  const int32_t* doc_ids = nullptr;   // (B, T)
  const int32_t* doc_span = nullptr;  // (B, ceil(T / kRelationKLDocGranule), 2) [lo, hi), 8-byte aligned
};

// How this launch runs: the kernel family (choose_kernel, relation_kl_choose.h) and the backward
// term. kSelfBwdMmaPipe (relation_kl_bwd_self_pipe_kernel.cuh) runs the flattened (b, h) in chunks:
// this launch covers [bh0, bh0 + n_bh), accum is the chunk's zeroed fixed-point dX and quantum the
// per-(b, h) (1 / q, q) pairs (filled when bh0 == 0). Tile sizes and stages are compile-time
// constants of each kernel family (the *.cuh files).
struct RelationKLLaunch {
  RelationKLBwdMode mode = RelationKLBwdMode::kRows;
  RelationKLKernel kernel = RelationKLKernel::kFwdSimt;
  int64_t* accum = nullptr;  // (n_bh, T, Ds)
  float* quantum = nullptr;  // (B * H, 2)
  int bh0 = 0, n_bh = 0;
};

// The problem: what is computed, independent of where it lives and how it is launched.
struct RelationKLShape {
  int B = 0, H = 0, Hk = 0, Hkt = 0, T = 0, Ds = 0, Dt = 0;
  float scale_s = 1.f, scale_t = 1.f;            // logit scales (natural units)
  float scale_s_log2 = 1.f, scale_t_log2 = 1.f;  // scale * log2(e): the kernels work with exp2
  bool causal = true;                            // keys j <= i only
  bool packed = false;  // packed documents: keys of row i's document only (layout.doc_ids, doc_span)
};

// Per-row statistics the tensor-core self backwards stage in global memory.
struct RelationKLWorkspace {
  // kSelfBwdMmaPipe: (lse_s log2 e, lse_t log2 e, g scale_s, 0) per row, filled when bh0 == 0
  // (16-byte rows, so the kernel fetches them with cp.async).
  float* row_stats = nullptr;  // (B * H, T, 4)
  // kSelfBwdWgmma (relation_kl_bwd_self_wgmma_kernel.cuh): the row term, and the per-row
  // statistics with stats_pitch = T rounded up to kRelationKLWgmmaTile.
  float* self_rows = nullptr;  // (B, H, T, Ds) fp32
  float* col_stats = nullptr;  // (B * H, 3, stats_pitch) fp32
  int stats_pitch = 0;
};

// The parts' order and sizes kept every field at the byte offset it had in the flat struct this
// replaced: compared with cuobjdump -sass (sm_80 and sm_90a), every kernel but
// relation_kl_bwd_kernel came out byte-identical; that one (row / column backward) differed only in
// the order and form of its integer address and parameter-load instructions. The packed-document
// pointers (issue 18) grew the layout by 16 bytes and moved the later parts; the kernels gained the
// document checks too, so their SASS changed anyway (not re-compared).
struct RelationKLParams {
  RelationKLLayout layout;        // bytes   0 ..  96
  RelationKLLaunch launch;        // bytes  96 .. 128
  RelationKLShape shape;          // bytes 128 .. 176
  RelationKLWorkspace workspace;  // bytes 176 .. 208
};
static_assert(sizeof(RelationKLLayout) == 96 && sizeof(RelationKLLaunch) == 32 &&
                  sizeof(RelationKLShape) == 48 && sizeof(RelationKLWorkspace) == 32,
              "RelationKLParams layout changed: compare the kernels' SASS before and after");

}  // namespace linearard::ops
