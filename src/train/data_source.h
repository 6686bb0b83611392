// Training data as fixed-length token blocks, and their deterministic order.
//
// The trainers read (open_token_files):
//   token shards     files written by `linearard tokenize` (magic LARDTOKS), or a folder holding
//                    them; memory-mapped, one document per shard document
//   text             *.txt, *.md, *.jsonl (field "text") or folders of them, encoded with the model's
//                    tokenizer (tokenizer_dir), each file / JSON line one document
//   *.bin            little-endian int32 token ids, one document
//   *.json           a JSON list of ids (one document) or a list of lists (one document each)
// Packing (--packing):
//   split   each document is cut into non-overlapping blocks of T tokens and its tail is dropped,
//           with no packing across documents -- the reference's PG19 blocking (LinearARD's
//           released training scripts). The default.
//   packed  the documents, in input order, are concatenated and cut into blocks of T tokens; only
//           the last partial block is dropped. No separator is inserted: a document is packed as
//           the data path delivers it (text and token shards already end each document with the
//           tokenizer's EOS -- a shard's separator is packed with the document it follows -- while
//           .bin / .json ids are taken as given). Every block carries per-token document ids
//           (0, 1, ... in the block; a document cut by a block boundary starts a new id in the
//           next block), which the trainers turn into a block-diagonal causal mask, per-document
//           RoPE positions and masked next-token targets (tasks.h).
#pragma once
#include <ATen/ATen.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace linearard::train {

class TokenBlockSource {
 public:
  virtual ~TokenBlockSource() = default;
  virtual int64_t num_blocks() const = 0;
  virtual int64_t block_length() const = 0;  // T
  // Block `index` in [0, num_blocks()): T token ids.
  virtual std::vector<int32_t> block(int64_t index) const = 0;
  // Packed blocks: block `index`'s per-token document ids (T values, 0 for the block's first
  // document, +1 at each document start inside the block). Split blocks: empty (one document).
  virtual std::vector<int32_t> doc_ids(int64_t index) const { (void)index; return {}; }
  virtual bool packed() const { return false; }
  virtual std::string describe() const = 0;  // one line for the run log
};

// Reads the inputs above, blocks of `T` tokens. Text needs `tokenizer_dir` (the model directory).
// A folder with a manifest.json is read through it (every listed shard must be there). With
// vocab_size > 0 every id must be below it (shards: their header's vocabulary). Errors name the file.
// packed: the packed block stream above (else split).
std::unique_ptr<TokenBlockSource> open_token_files(const std::vector<std::string>& paths, int64_t T,
                                                   const std::string& tokenizer_dir = "", int64_t vocab_size = 0,
                                                   bool packed = false);

// The order in which blocks are consumed: epoch e visits every block once, in a permutation seeded
// by (seed, e) when shuffling, else in source order. The whole state is `position` (blocks consumed
// so far), so a resumed run continues exactly where the checkpoint stopped.
class BlockSampler {
 public:
  BlockSampler(const TokenBlockSource& source, uint64_t seed, bool shuffle);

  // The next B blocks as a (B, T) int64 CPU tensor. For a packed source and `doc_ids` given, also
  // their document ids as a (B, T) int32 CPU tensor (TokenBlockSource::doc_ids).
  at::Tensor next_batch(int64_t B, at::Tensor* doc_ids = nullptr);
  int64_t position() const { return position_; }
  void set_position(int64_t position);

 private:
  int64_t block_at(int64_t position);
  const TokenBlockSource& source_;
  uint64_t seed_;
  bool shuffle_;
  int64_t position_ = 0;
  int64_t epoch_ = -1;
  std::vector<int64_t> order_;  // the permutation of epoch_
};

}  // namespace linearard::train
