#include "ops/relation_kl/relation_kl_reference.h"

namespace linearard::ops {
namespace {

// (B, Hk, T, D) -> (B, H, T, D): head h reads key head h / (H / Hk).
at::Tensor repeat_key_heads(const at::Tensor& k, int64_t num_query_heads) {
  const int64_t group = num_query_heads / k.size(1);
  return group == 1 ? k : k.repeat_interleave(group, /*dim=*/1);
}

}  // namespace

at::Tensor relation_kl_materialized(const at::Tensor& xq, const at::Tensor& xk,
                                    const at::Tensor& yq, const at::Tensor& yk,
                                    const std::optional<at::Tensor>& key_mask,
                                    const RelationKLOptions& options) {
  const int64_t B = xq.size(0), H = xq.size(1), T = xq.size(2);
  auto s = at::matmul(xq, repeat_key_heads(xk, H).transpose(-1, -2)) * options.scale_s;  // (B, H, T, T)
  auto t = at::matmul(yq, repeat_key_heads(yk, H).transpose(-1, -2)) * options.scale_t;  // (B, H, T, T)

  auto bool_opts = at::TensorOptions().dtype(at::kBool).device(xq.device());
  auto key_valid = key_mask ? key_mask->to(xq.device()).ne(0) : at::ones({B, T}, bool_opts);  // (B, T)
  auto valid = key_valid.view({B, 1, 1, T}).expand({B, 1, T, T});                         // (B, 1, T, T)
  if (options.causal) valid = valid.logical_and(at::ones({T, T}, bool_opts).tril());
  if (options.doc_ids && options.doc_ids->defined()) {  // packed documents: block-diagonal mask
    auto doc = options.doc_ids->to(xq.device(), at::kInt);                        // (B, T)
    valid = valid.logical_and(doc.view({B, 1, T, 1}).eq(doc.view({B, 1, 1, T})));  // (B, 1, T, T)
  }
  // A row counts when its query is not padded and it has at least one valid key.
  auto row_valid = key_valid.view({B, 1, T}).logical_and(valid.any(-1));  // (B, 1, T)
  // Rows without keys get an all-valid softmax so no NaN reaches autograd; they are zeroed below.
  auto softmax_valid = valid.logical_or(row_valid.logical_not().unsqueeze(-1));
  const double neg_inf = -std::numeric_limits<double>::infinity();
  auto log_ps = at::log_softmax(s.masked_fill(softmax_valid.logical_not(), neg_inf), -1);
  auto log_pt = at::log_softmax(t.masked_fill(softmax_valid.logical_not(), neg_inf), -1);
  auto terms = at::where(valid, log_pt.exp() * (log_pt - log_ps), at::zeros({}, s.options()));
  auto kl = terms.sum(-1);  // (B, H, T)
  const auto out_dtype = xq.scalar_type() == at::kDouble ? at::kDouble : at::kFloat;
  return at::where(row_valid, kl, at::zeros({}, kl.options())).to(out_dtype);
}

}  // namespace linearard::ops
