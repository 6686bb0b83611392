// Pieces of the trainer: the chunked LM loss against LibTorch's unchunked cross-entropy (value and
// gradients), the block order, token-file parsing and the LR schedule.
#include <ATen/CPUGeneratorImpl.h>
#include <ATen/core/grad_mode.h>
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <set>

#include "common/error.h"
#include "train/data_source.h"
#include "train/lm_loss.h"
#include "train/optimizer.h"
#include "train_test_util.h"

namespace {

using namespace linearard;

TEST(ChunkedLmLoss, EqualsUnchunkedCrossEntropyAndItsGradients) {
  at::Generator gen = at::detail::createCPUGenerator(1);
  const int64_t N = 37, C = 16, V = 53;
  const at::Tensor h0 = at::randn({N, C}, gen, at::kFloat);
  const at::Tensor w0 = at::randn({V, C}, gen, at::kFloat) * 0.5;
  at::Tensor labels = at::randint(0, V, {N}, gen, at::kLong);
  labels.index_put_({at::arange(0, N, 5)}, train::kIgnoreIndex);  // some ignored rows

  // Reference: materialised logits in float64, torch's cross_entropy (mean over kept rows).
  at::Tensor hr = h0.to(at::kDouble).requires_grad_(true), wr = w0.to(at::kDouble).requires_grad_(true);
  const at::Tensor ref = at::cross_entropy_loss(at::linear(hr, wr), labels, {}, at::Reduction::Mean,
                                                train::kIgnoreIndex);
  ref.backward();
  for (int64_t chunk : {int64_t(1), int64_t(5), N, int64_t(0)}) {
    at::Tensor h = h0.clone().requires_grad_(true), w = w0.clone().requires_grad_(true);
    const at::Tensor loss = train::chunked_lm_loss(h, w, labels, chunk);
    loss.backward();
    EXPECT_LE(std::abs(loss.item<double>() - ref.item<double>()) / ref.item<double>(), 1e-6) << chunk;
    EXPECT_LE(train_test::relative_error(h.grad(), hr.grad()), 1e-5) << chunk;
    EXPECT_LE(train_test::relative_error(w.grad(), wr.grad()), 1e-5) << chunk;
  }
  // A frozen head (distill/cpt): only the hidden states get a gradient.
  at::Tensor h = h0.clone().requires_grad_(true);
  train::chunked_lm_loss(h, w0, labels, 4).mul(3.0).backward();
  EXPECT_LE(train_test::relative_error(h.grad(), hr.grad() * 3.0), 1e-5);
}

TEST(ChunkedLmLoss, CausalShiftPredictsTheNextToken) {
  at::Generator gen = at::detail::createCPUGenerator(2);
  const at::Tensor hidden = at::randn({2, 6, 8}, gen, at::kFloat);  // (B, T, C)
  const at::Tensor head = at::randn({11, 8}, gen, at::kFloat);
  const at::Tensor tokens = at::randint(0, 11, {2, 6}, gen, at::kLong);
  const at::Tensor logits = at::linear(hidden.narrow(1, 0, 5), head).reshape({10, 11});
  const at::Tensor ref = at::cross_entropy_loss(logits, tokens.narrow(1, 1, 5).reshape({10}));
  EXPECT_NEAR(train::causal_lm_loss(hidden, head, tokens, 3).item<double>(), ref.item<double>(), 1e-5);
}

std::string write_file(const std::string& name, const std::string& bytes) {
  const std::string path = train_test::fresh_dir("data") + "/" + name;
  std::ofstream(path, std::ios::binary) << bytes;
  return path;
}

TEST(BlockSampler, EveryBlockOncePerEpochInASeededOrder) {
  const std::string path = write_file("docs.json", "[[1,2,3,4,5,6,7],[10,11,12,13],[20,21]]");
  const auto source = train::open_token_files({path}, 2);
  ASSERT_EQ(source->num_blocks(), 3 + 2 + 1);  // tails dropped, no packing across documents
  train::BlockSampler a(*source, 9, true), b(*source, 9, true), c(*source, 10, true);
  std::set<int64_t> firsts;
  std::vector<int64_t> seq_a, seq_c;
  for (int i = 0; i < 6; ++i) {
    const at::Tensor x = a.next_batch(1), y = b.next_batch(1), z = c.next_batch(1);
    EXPECT_TRUE(at::equal(x, y));
    firsts.insert(x[0][0].item<int64_t>());
    seq_a.push_back(x[0][0].item<int64_t>());
    seq_c.push_back(z[0][0].item<int64_t>());
  }
  EXPECT_EQ(firsts, (std::set<int64_t>{1, 3, 5, 10, 12, 20}));
  EXPECT_NE(seq_a, seq_c);  // another seed, another order (6! orders: a collision is unlikely)
  train::BlockSampler resumed(*source, 9, true);
  resumed.set_position(4);
  train::BlockSampler straight(*source, 9, true);
  straight.next_batch(4);
  EXPECT_TRUE(at::equal(resumed.next_batch(3), straight.next_batch(3)));  // crosses into epoch 2
  train::BlockSampler ordered(*source, 9, false);
  EXPECT_EQ(ordered.next_batch(2)[1][0].item<int64_t>(), 3);
}

TEST(TokenFiles, BinAndErrors) {
  const int32_t ids[] = {5, 6, 7, 8, 9};
  const std::string bin = write_file("ids.bin", std::string(reinterpret_cast<const char*>(ids), sizeof ids));
  const auto source = train::open_token_files({bin}, 2);
  EXPECT_EQ(source->num_blocks(), 2);
  EXPECT_EQ(source->block(1), (std::vector<int32_t>{7, 8}));
  EXPECT_THROW(train::open_token_files({bin}, 6), Error);  // no block fits
  EXPECT_THROW(train::open_token_files({write_file("bad.bin", "abc")}, 1), Error);
  EXPECT_THROW(train::open_token_files({write_file("bad.json", "{\"a\":1}")}, 1), Error);
  EXPECT_THROW(train::open_token_files({write_file("neg.json", "[1,-2,3]")}, 1), Error);
  EXPECT_THROW(train::open_token_files({write_file("x.txt", "1 2 3")}, 1), Error);
}

TEST(Schedule, WarmupFromZeroThenCosineToTheFloor) {
  train::OptimOptions o;  // the reference: lr 2e-5, 4 warm-up steps, floor 0.9, 144 steps
  EXPECT_EQ(train::scheduled_lr(o, 0), 0.0);
  EXPECT_DOUBLE_EQ(train::scheduled_lr(o, 2), 1e-5);
  EXPECT_DOUBLE_EQ(train::scheduled_lr(o, 4), 2e-5);
  EXPECT_NEAR(train::scheduled_lr(o, 74), 2e-5 * (0.9 + 0.1 * 0.5), 1e-12);  // half-way
  EXPECT_NEAR(train::scheduled_lr(o, 144), 1.8e-5, 1e-12);
  for (int64_t s = 5; s < 144; ++s) EXPECT_LE(train::scheduled_lr(o, s), train::scheduled_lr(o, s - 1));
}

}  // namespace
