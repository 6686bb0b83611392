// Streams fixed-length training blocks of T tokens from token shards.
//   packed:    the shards' token streams (documents separated by EOS) are concatenated and cut
//              into consecutive T-token blocks; the final partial block is dropped.
//   documents: each document is cut on its own into non-overlapping T-token blocks and its tail
//              is dropped; no block crosses a document (LinearARD's PG19 recipe, its released scripts).
// Block order is a seeded permutation per epoch (or file order without shuffle). Rank r of W
// takes every W-th block of that order, and every rank gets the same count (the remainder is
// dropped) so data-parallel ranks stay in step. The position is a small state that restores
// the exact same continuation.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "data/shard.h"

namespace linearard::data {

enum class BlockMode { kPacked, kDocuments };

struct BlockStreamParams {
  std::vector<std::string> shards;  // shard files in order (see shard_paths())
  int64_t T = 4096;                 // tokens per block
  BlockMode mode = BlockMode::kPacked;
  bool shuffle = true;
  uint64_t seed = 0;
  int64_t rank = 0, world = 1;
  bool verify_checksum = true;
};

struct BlockStreamState {
  uint64_t epoch = 0;
  uint64_t position = 0;  // blocks of this rank already returned in this epoch
  std::string serialize() const;  // "epoch=E position=P"
  static BlockStreamState parse(const std::string& s, const std::string& where);
};

class BlockStream {
 public:
  explicit BlockStream(BlockStreamParams p);

  uint64_t blocks_per_epoch() const { return per_rank_; }  // for this rank
  uint64_t total_blocks() const { return total_blocks_; }  // all ranks, one epoch
  // Fills `block` with the next T ids (block.size() == T), moving to the next epoch at the end.
  void next(std::vector<int32_t>& block);
  void next(std::vector<int64_t>& block);

  BlockStreamState state() const { return state_; }
  void restore(const BlockStreamState& s);

 private:
  uint64_t block_index(uint64_t epoch, uint64_t position);  // which global block
  template <typename Id> void read_block(uint64_t b, Id* out) const;

  BlockStreamParams p_;
  std::vector<Shard> shards_;
  std::vector<uint64_t> shard_start_;  // packed: global token offset of each shard (+ total)
  std::vector<std::pair<uint32_t, uint64_t>> doc_blocks_;  // documents: (shard, first token)
  uint64_t total_blocks_ = 0, per_rank_ = 0;
  BlockStreamState state_;
  uint64_t perm_epoch_ = UINT64_MAX;
  std::vector<uint64_t> perm_;
};

}  // namespace linearard::data
