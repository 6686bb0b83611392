// Next-token cross-entropy through the LM head, chunked over tokens so that the (tokens x vocab)
// float32 logits never exist at once. The forward computes the loss and, chunk by chunk, its
// gradients w.r.t. the hidden states and (when it requires grad) the LM head; backward only scales
// them by the incoming gradient (the Liger fused-linear-cross-entropy scheme).
#pragma once
#include <ATen/ATen.h>

#include <optional>

namespace linearard::train {

constexpr int64_t kIgnoreIndex = -100;  // labels with this value do not count (torch's default)

// hidden (N, C) in the compute dtype, lm_head (V, C) same dtype, labels (N) int64.
// Returns the mean over the non-ignored labels of lse(logits) - logits[label] (float32 scalar),
// logits = hidden lm_head^T computed in the compute dtype and promoted to float32.
// chunk_rows = 0: as many rows as keep one chunk's logits under about 256 MiB.
at::Tensor chunked_lm_loss(const at::Tensor& hidden, const at::Tensor& lm_head, const at::Tensor& labels,
                           int64_t chunk_rows = 0);

// KL(teacher || student) of log_softmax(logits / temperature) averaged over the N rows, logits =
// hidden lm_head^T, chunked like chunked_lm_loss (no N x V buffer; the teacher gets no gradient).
at::Tensor chunked_logits_kl(const at::Tensor& student_hidden, const at::Tensor& teacher_hidden,
                             const at::Tensor& lm_head, double temperature, int64_t chunk_rows = 0);

// Causal-LM loss of a batch: hidden (B, T, C) after the final norm, tokens (B, T); position t
// predicts token t + 1, averaged over the B (T - 1) predictions (padding: pass labels instead).
// doc_ids (B, T) (packed blocks): a target that starts another document (doc_ids[t + 1] !=
// doc_ids[t]) is not predicted from the previous document; the mean is over the other predictions.
at::Tensor causal_lm_loss(const at::Tensor& hidden, const at::Tensor& lm_head, const at::Tensor& tokens,
                          int64_t chunk_rows = 0, const std::optional<at::Tensor>& doc_ids = std::nullopt);

}  // namespace linearard::train
