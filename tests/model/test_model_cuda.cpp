// bf16 forward on CUDA vs transformers on CUDA (make_cuda_parity.py): our error against
// transformers' float32 logits must be at most 2x transformers' own bf16-vs-float32 error
// (issue 2's rule). Skipped without a GPU.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>

#include "io/checkpoint.h"
#include "model/attention.h"
#include "model/llama.h"
#include "test_env.h"

namespace {

using namespace linearard;

TEST(ModelCuda, Bf16ForwardWithinTwiceTransformersError) {
  if (!at::hasCUDA()) GTEST_SKIP() << "no CUDA device";
  const std::string dir = test_env::fixtures_dir() + "/cuda_parity";
  ASSERT_TRUE(std::filesystem::exists(dir + "/model/config.json")) << "fixture missing";
  io::CheckpointWeights expected(dir + "/expected");
  auto model = model::DecoderModel::load(dir + "/model", at::kBFloat16, at::kCUDA);
  const at::Tensor tokens = expected.get("input_ids").to(at::kCUDA);  // (B, T)
  const auto tables = model.rope_tables_for(model.config().rope, tokens.size(1));
  model::ForwardRequest request;
  request.rope = &tables;
  const at::Tensor ours = model.forward(tokens, request).logits.to(at::kCPU, at::kFloat);
  const at::Tensor ref = expected.get("logits_fp32").clone();
  const at::Tensor theirs_bf16 = expected.get("logits_bf16").clone();
  const double our_err = (ours - ref).abs().max().item<double>();
  const double their_err = (theirs_bf16 - ref).abs().max().item<double>();
  std::printf("max |logit error| vs transformers fp32: ours bf16 %.5f, transformers bf16 %.5f\n",
              our_err, their_err);
  EXPECT_LE(our_err, 2 * their_err);
}

// Packed documents on CUDA (issue 18): FlashAttention's variable-length call over the document runs
// against SDPA under the block-diagonal mask, outputs and the gradients of q, k, v, both in bf16
// against the same computation in float32 (the mask), under the 2x rule: the varlen error at most
// twice the masked bf16 error (+ a floor for exact zeros). Random boundaries with length-1
// documents, GQA 4 -> 2, D = 64, two rows.
TEST(ModelCuda, PackedVarlenAttentionMatchesTheMask) {
  if (!at::hasCUDA()) GTEST_SKIP() << "no CUDA device";
  model::ModelConfig c;
  c.head_dim = 64;
  c.num_attention_heads = 4;
  c.num_key_value_heads = 2;
  const int64_t B = 2, T = 97;
  const std::vector<int64_t> lengths[2] = {{1, 30, 1, 1, 40, 24}, {97}};
  std::vector<int32_t> ids;
  for (const auto& row : lengths)
    for (size_t d = 0; d < row.size(); ++d)
      for (int64_t i = 0; i < row[d]; ++i) ids.push_back(int32_t(d));
  const at::Tensor doc_ids = at::tensor(ids, at::kInt).view({B, T}).to(at::kCUDA);
  at::manual_seed(7);
  const auto f32 = at::TensorOptions().dtype(at::kFloat).device(at::kCUDA);
  const at::Tensor q = at::randn({B, 4, T, 64}, f32), k = at::randn({B, 2, T, 64}, f32),
                   v = at::randn({B, 2, T, 64}, f32), w = at::randn({B, 4, T, 64}, f32);

  setenv("LINEARARD_PACKED_ATTENTION", "varlen", 1);
  const auto plan = model::attention_plan(c, std::nullopt, B, T, at::kCUDA, doc_ids, at::kBFloat16);
  unsetenv("LINEARARD_PACKED_ATTENTION");
  ASSERT_TRUE(plan.cu_seqlens.has_value()) << "bf16 on CUDA with the switch should take the varlen path";
  const auto mask = model::attention_mask(c, std::nullopt, B, T, at::kCUDA, doc_ids);
  // Output and d(sum(out * w))/d(q, k, v) of one attention, all in float32 for comparing.
  auto run = [&](const model::Attention& attention, at::ScalarType dtype) {
    std::vector<at::Tensor> in = {q.to(dtype).requires_grad_(true), k.to(dtype).requires_grad_(true),
                                  v.to(dtype).requires_grad_(true)};
    const at::Tensor out = attention(model::AttentionInputs{in[0], in[1], in[2]});
    (out.to(at::kFloat) * w).sum().backward();
    return std::vector<at::Tensor>{out.to(at::kFloat), in[0].grad().to(at::kFloat), in[1].grad().to(at::kFloat),
                                   in[2].grad().to(at::kFloat)};
  };
  const auto ref = run(model::masked_attention(mask), at::kFloat);
  const auto masked = run(model::masked_attention(mask), at::kBFloat16);
  const auto varlen = run(model::planned_attention(plan), at::kBFloat16);
  const char* names[] = {"output", "dq", "dk", "dv"};
  for (size_t i = 0; i < 4; ++i) {
    const double err = (varlen[i] - ref[i]).abs().max().item<double>();
    const double naive = (masked[i] - ref[i]).abs().max().item<double>();
    const double floor = 1e-3 * ref[i].abs().max().item<double>();
    std::printf("packed %s: varlen bf16 error %.5f, masked SDPA bf16 error %.5f\n", names[i], err, naive);
    EXPECT_LE(err, 2 * naive + floor) << names[i];
  }
}

}  // namespace
