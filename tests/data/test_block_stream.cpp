// Block streaming checked against blocks cut directly from the documents written: packed and
// documents modes, shuffling (a permutation, seed-deterministic), disjoint rank shards, and
// restart from a saved state.
#include <algorithm>
#include <random>
#include <set>

#include "common/error.h"
#include "data/block_stream.h"
#include "data_test_util.h"

namespace {

using namespace linearard;
using namespace linearard::data;

constexpr int64_t kEos = 999;

struct Corpus {
  std::vector<std::vector<int32_t>> docs;
  std::vector<std::string> shards;
};

Corpus make_corpus(const std::string& name, std::vector<size_t> lengths) {
  Corpus c;
  std::mt19937 rng(11);
  for (size_t n : lengths) {
    c.docs.emplace_back(n);
    for (auto& id : c.docs.back()) id = static_cast<int32_t>(rng() % 900);
  }
  c.shards = test::write_docs(test::temp_dir(name), c.docs, 1000, kEos, 50);  // small shards: blocks span files
  return c;
}

std::vector<std::vector<int32_t>> expected_packed(const Corpus& c, size_t T) {
  std::vector<int32_t> stream;
  for (const auto& d : c.docs) {
    stream.insert(stream.end(), d.begin(), d.end());
    stream.push_back(static_cast<int32_t>(kEos));
  }
  std::vector<std::vector<int32_t>> blocks;
  for (size_t b = 0; (b + 1) * T <= stream.size(); ++b) blocks.emplace_back(stream.begin() + b * T, stream.begin() + (b + 1) * T);
  return blocks;
}

std::vector<std::vector<int32_t>> take(BlockStream& s, size_t n) {
  std::vector<std::vector<int32_t>> out(n);
  for (auto& b : out) s.next(b);
  return out;
}

TEST(BlockStream, PackedInOrderCrossesShards) {
  const Corpus c = make_corpus("packed", {30, 41, 7, 90, 0, 55, 23});
  BlockStreamParams p;
  p.shards = c.shards;
  p.T = 16;
  p.shuffle = false;
  BlockStream s(p);
  const auto want = expected_packed(c, 16);
  ASSERT_EQ(s.blocks_per_epoch(), want.size());
  EXPECT_EQ(take(s, want.size()), want);
  EXPECT_EQ(take(s, 1)[0], want[0]) << "the second epoch starts over";
  std::vector<int64_t> wide;
  BlockStream s64(p);
  s64.next(wide);
  EXPECT_EQ(std::vector<int32_t>(wide.begin(), wide.end()), want[0]);
}

TEST(BlockStream, DocumentsModeCutsEachDocumentAndDropsTails) {
  const Corpus c = make_corpus("docs", {5, 40, 33, 16, 0, 70});
  BlockStreamParams p;
  p.shards = c.shards;
  p.T = 16;
  p.mode = BlockMode::kDocuments;
  p.shuffle = false;
  BlockStream s(p);
  std::vector<std::vector<int32_t>> want;
  for (const auto& d : c.docs)
    for (size_t t = 0; t + 16 <= d.size(); t += 16) want.emplace_back(d.begin() + t, d.begin() + t + 16);
  ASSERT_EQ(want.size(), 9u);  // 0 + 2 + 2 + 1 + 0 + 4
  ASSERT_EQ(s.blocks_per_epoch(), want.size());
  EXPECT_EQ(take(s, want.size()), want);
}

TEST(BlockStream, ShuffleIsASeededPermutation) {
  const Corpus c = make_corpus("shuffle", {300, 200, 411, 97});
  BlockStreamParams p;
  p.shards = c.shards;
  p.T = 8;
  p.seed = 42;
  BlockStream a(p), b(p);
  const auto want = expected_packed(c, 8);
  const auto ea = take(a, want.size());
  EXPECT_EQ(ea, take(b, want.size())) << "same seed, same order";
  EXPECT_NE(ea, want) << "shuffled";
  EXPECT_EQ(std::multiset<std::vector<int32_t>>(ea.begin(), ea.end()),
            std::multiset<std::vector<int32_t>>(want.begin(), want.end()));
  EXPECT_NE(take(a, want.size()), ea) << "each epoch has its own order";
  p.seed = 43;
  BlockStream other(p);
  EXPECT_NE(take(other, want.size()), ea);
}

TEST(BlockStream, RanksGetDisjointEqualShares) {
  const Corpus c = make_corpus("ranks", {300, 200, 411, 97});
  const auto all = expected_packed(c, 8);
  std::multiset<std::vector<int32_t>> seen;
  const int W = 3;
  for (int r = 0; r < W; ++r) {
    BlockStreamParams p;
    p.shards = c.shards;
    p.T = 8;
    p.seed = 5;
    p.rank = r;
    p.world = W;
    BlockStream s(p);
    EXPECT_EQ(s.blocks_per_epoch(), all.size() / W);
    for (auto& b : take(s, s.blocks_per_epoch())) seen.insert(b);
  }
  EXPECT_EQ(seen.size(), all.size() / W * W);
  std::multiset<std::vector<int32_t>> universe(all.begin(), all.end());
  for (const auto& b : seen) {
    auto it = universe.find(b);
    ASSERT_NE(it, universe.end()) << "a block appears twice or was never in the data";
    universe.erase(it);
  }
}

TEST(BlockStream, RestartsFromSavedState) {
  const Corpus c = make_corpus("restart", {300, 200, 411, 97});
  BlockStreamParams p;
  p.shards = c.shards;
  p.T = 8;
  p.seed = 9;
  p.rank = 1;
  p.world = 2;
  BlockStream a(p);
  take(a, a.blocks_per_epoch() - 3);
  const std::string saved = a.state().serialize();
  const auto rest = take(a, 10);  // crosses into the next epoch
  BlockStream b(p);
  b.restore(BlockStreamState::parse(saved, "state"));
  EXPECT_EQ(take(b, 10), rest);
  EXPECT_THROW(BlockStreamState::parse("epoch=1", "state"), Error);
}

TEST(BlockStream, TooLittleDataIsAnError) {
  const Corpus c = make_corpus("small", {10});
  BlockStreamParams p;
  p.shards = c.shards;
  p.T = 64;
  EXPECT_THROW(BlockStream s(p), Error);
}

}  // namespace
