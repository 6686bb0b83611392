// The work models of the benchmarks: FLOPs per call and bytes per call, so every bench reports
// TFLOP/s and extra-memory ratios the same way. Convention of the FlashAttention papers (Dao et al.
// 2022, "FlashAttention", and Dao 2023, "FlashAttention-2", benchmark section): 2 FLOPs per
// multiply-add of the matrix products only (softmax and exponentials not counted), a causal mask
// halves the score-matrix work.
#pragma once
#include <cstdint>

#include "model/model_config.h"

namespace linearard::bench {

inline double causal_half(double flops, bool causal) { return causal ? flops / 2 : flops; }

// Relation KL, per relation (LinearARD, arXiv 2604.00004, the relation-KL objective: row-wise KL of
// softmax(scale Xq Xk^T) between teacher and student): the forward computes the two logit GEMMs,
// student (Ds) and teacher (Dt), over the T x T scores.
inline double relation_kl_fwd_flops(int64_t B, int64_t H, int64_t T, int64_t Ds, int64_t Dt, bool causal) {
  return causal_half(2.0 * B * H * double(T) * T * (Ds + Dt), causal);
}
// The backward recomputes both logit GEMMs and does the two gradient GEMMs in Ds (G X for the row
// term, G^T X for the column term).
inline double relation_kl_bwd_flops(int64_t B, int64_t H, int64_t T, int64_t Ds, int64_t Dt, bool causal) {
  return causal_half(2.0 * B * H * double(T) * T * (Ds + Dt) + 4.0 * B * H * double(T) * T * Ds, causal);
}

// Packed documents (RelationKLOptions::doc_ids): a row sees only keys of its own document, so the
// score work is the block-diagonal part, sum over documents of L_d^2 (causal: its half, as above),
// of the T^2 of one document. `docs` documents of equal length (the first T % docs one longer); the
// relation-KL FLOPs of a packed block are the single-document FLOPs times this fraction (~1 / docs).
// FlashAttention-2's variable-length benchmarks count work the same way (per sequence).
inline double packed_work_fraction(int64_t T, int64_t docs) {
  if (docs <= 1 || T <= 0) return 1.0;
  const int64_t n = docs < T ? docs : T, base = T / n, longer = T % n;
  const double sq = double(longer) * (base + 1) * (base + 1) + double(n - longer) * base * base;
  return sq / (double(T) * T);
}

// Attention (PyTorch SDPA, the flash backend), FlashAttention-2's benchmark model: forward
// 4 B H T^2 D (QK^T and PV), backward 2.5x the forward, so forward + backward 3.5x.
inline double sdpa_fwd_flops(int64_t B, int64_t H, int64_t T, int64_t D, bool causal) {
  return causal_half(4.0 * B * H * double(T) * T * D, causal);
}
constexpr double kSdpaFwdBwdOverFwd = 3.5;

// Forward of a decoder-only model over one window of T tokens: 2 per multiply-add of the linear
// layers (q, k, v, o, gate, up, down) and the LM head, plus causal attention as half of 4 T^2 D per
// head (the same convention).
inline double decoder_forward_flops(const model::ModelConfig& c, int64_t T) {
  const double C = c.hidden_size, F = c.intermediate_size, L = c.num_hidden_layers, V = c.vocab_size;
  const double Dq = c.num_attention_heads * c.head_dim, Dk = c.num_key_value_heads * c.head_dim;
  const double linear = L * (C * Dq + 2 * C * Dk + Dq * C + 3 * C * F) + V * C;
  return 2.0 * T * linear + L * 2.0 * double(T) * T * Dq;
}

// Bytes: the relation-KL inputs x (B, H, T, Ds) and y (B, H, T, Dt) of `elem_bytes` each (the
// denominator of "extra memory / inputs"); a ring all-reduce sends and receives 2 (W - 1) / W times
// the gradient bytes per GPU (Patarasuk and Yuan 2009, "Bandwidth optimal all-reduce algorithms").
inline double relation_kl_input_bytes(int64_t B, int64_t H, int64_t T, int64_t Ds, int64_t Dt, int64_t elem_bytes) {
  return double(B) * H * T * (Ds + Dt) * elem_bytes;
}
inline double ring_allreduce_bytes_per_gpu(int world_size, double gradient_bytes) {
  return world_size <= 1 ? 0.0 : 2.0 * (world_size - 1) / world_size * gradient_bytes;
}

}  // namespace linearard::bench
