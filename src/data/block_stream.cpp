#include "data/block_stream.h"

#include <algorithm>
#include <sstream>

#include "common/error.h"

namespace linearard::data {
namespace {

// SplitMix64 (Steele, Lea, Flood 2014): a fixed, portable generator so the block order is the
// same on every platform and library (std::shuffle's algorithm is unspecified).
uint64_t splitmix64(uint64_t& state) {
  uint64_t z = (state += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

// Uniform in [0, n) by rejection (no modulo bias).
uint64_t uniform(uint64_t& state, uint64_t n) {
  const uint64_t limit = UINT64_MAX - UINT64_MAX % n;
  uint64_t r;
  do r = splitmix64(state); while (r >= limit);
  return r % n;
}

}  // namespace

std::string BlockStreamState::serialize() const {
  return "epoch=" + std::to_string(epoch) + " position=" + std::to_string(position);
}

BlockStreamState BlockStreamState::parse(const std::string& s, const std::string& where) {
  BlockStreamState st;
  unsigned long long e = 0, p = 0;
  char tail = 0;
  if (std::sscanf(s.c_str(), "epoch=%llu position=%llu%c", &e, &p, &tail) != 2)
    fail(where, "bad data position '" + s + "' (expected \"epoch=E position=P\")");
  st.epoch = e;
  st.position = p;
  return st;
}

BlockStream::BlockStream(BlockStreamParams p) : p_(std::move(p)) {
  if (p_.T <= 0) fail("T", "block length must be positive");
  if (p_.world <= 0 || p_.rank < 0 || p_.rank >= p_.world)
    fail("rank", "rank " + std::to_string(p_.rank) + " is outside world size " + std::to_string(p_.world));
  if (p_.shards.empty()) fail("shards", "no token shards given");
  const uint64_t T = static_cast<uint64_t>(p_.T);
  uint64_t offset = 0;
  for (const auto& path : p_.shards) {
    shards_.push_back(Shard::open(path, p_.verify_checksum));
    shard_start_.push_back(offset);
    offset += shards_.back().tokens();
  }
  shard_start_.push_back(offset);
  if (p_.mode == BlockMode::kPacked) {
    total_blocks_ = offset / T;
  } else {
    for (uint32_t s = 0; s < shards_.size(); ++s) {
      for (uint64_t d = 0; d < shards_[s].documents(); ++d) {
        const auto [b, e] = shards_[s].document(d);
        for (uint64_t t = b; t + T <= e; t += T) doc_blocks_.push_back({s, t});
      }
    }
    total_blocks_ = doc_blocks_.size();
  }
  per_rank_ = total_blocks_ / static_cast<uint64_t>(p_.world);
  if (per_rank_ == 0)
    fail(p_.shards.front(), "too few tokens for one block of " + std::to_string(p_.T) + " tokens per rank (" +
                                std::to_string(total_blocks_) + " blocks for " + std::to_string(p_.world) + " ranks)");
}

void BlockStream::restore(const BlockStreamState& s) {
  if (s.position > per_rank_) fail("data position", "position " + std::to_string(s.position) + " is past the epoch's " +
                                                        std::to_string(per_rank_) + " blocks");
  state_ = s;
}

uint64_t BlockStream::block_index(uint64_t epoch, uint64_t position) {
  const uint64_t k = position * static_cast<uint64_t>(p_.world) + static_cast<uint64_t>(p_.rank);
  if (!p_.shuffle) return k;
  if (perm_epoch_ != epoch) {
    perm_.resize(total_blocks_);
    for (uint64_t i = 0; i < total_blocks_; ++i) perm_[i] = i;
    uint64_t rng = p_.seed ^ (epoch * 0xD1B54A32D192ED03ull);
    for (uint64_t i = total_blocks_; i > 1; --i) std::swap(perm_[i - 1], perm_[uniform(rng, i)]);  // Fisher-Yates
    perm_epoch_ = epoch;
  }
  return perm_[k];
}

template <typename Id>
void BlockStream::read_block(uint64_t b, Id* out) const {
  const uint64_t T = static_cast<uint64_t>(p_.T);
  if (p_.mode == BlockMode::kDocuments) {
    const auto [s, first] = doc_blocks_[b];
    shards_[s].read(first, T, out);
    return;
  }
  // Packed: the block may span several shards.
  uint64_t g = b * T, left = T;
  size_t s = std::upper_bound(shard_start_.begin(), shard_start_.end(), g) - shard_start_.begin() - 1;
  while (left > 0) {
    const uint64_t local = g - shard_start_[s];
    const uint64_t n = std::min(left, shards_[s].tokens() - local);
    shards_[s].read(local, n, out);
    out += n;
    g += n;
    left -= n;
    ++s;
  }
}

void BlockStream::next(std::vector<int32_t>& block) {
  if (state_.position >= per_rank_) state_ = {state_.epoch + 1, 0};
  block.resize(static_cast<size_t>(p_.T));
  read_block(block_index(state_.epoch, state_.position), block.data());
  ++state_.position;
}

void BlockStream::next(std::vector<int64_t>& block) {
  if (state_.position >= per_rank_) state_ = {state_.epoch + 1, 0};
  block.resize(static_cast<size_t>(p_.T));
  read_block(block_index(state_.epoch, state_.position), block.data());
  ++state_.position;
}

}  // namespace linearard::data
