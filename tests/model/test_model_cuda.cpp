// bf16 forward on CUDA vs transformers on CUDA (make_cuda_parity.py): our error against
// transformers' float32 logits must be at most 2x transformers' own bf16-vs-float32 error
// (issue 2's rule). Skipped without a GPU.
#include <gtest/gtest.h>

#include <filesystem>

#include "io/checkpoint.h"
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

}  // namespace
