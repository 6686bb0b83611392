// Writes documents of token ids into shard files (format in shard.h). Shards end at document
// boundaries once they hold at least `shard_tokens` tokens; each is written atomically
// (io::AtomicFile: temp + fsync + rename), so a crash never leaves a partial shard.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "data/shard.h"

namespace linearard::data {

struct ShardWriterParams {
  std::string out_dir;          // must exist
  std::string prefix = "shard";  // files are <prefix>-00000.bin, ...
  uint64_t shard_tokens = uint64_t{1} << 26;  // 64 Mi tokens: 128-256 MB files
  uint64_t vocab_size = 0;
  int64_t eos_id = -1;  // separator appended after documents when >= 0
};

class ShardWriter {
 public:
  explicit ShardWriter(ShardWriterParams p);
  // Appends one document; `separate` appends eos_id after it (not counted in its range).
  // Throws when an id is outside [0, vocab_size).
  void add_document(const std::vector<int32_t>& ids, bool separate);
  // Writes the last partial shard; returns every shard written.
  const std::vector<ShardManifestEntry>& finish();
  uint64_t total_tokens() const { return total_tokens_; }
  uint64_t total_documents() const { return total_documents_; }

 private:
  void flush();

  ShardWriterParams p_;
  uint32_t id_bytes_;
  std::vector<uint8_t> ids_;      // tokens of the open shard, id_bytes_ each
  std::vector<uint64_t> docs_;    // {begin, end} pairs of the open shard
  uint64_t tokens_ = 0;           // tokens in the open shard
  uint64_t total_tokens_ = 0, total_documents_ = 0;
  std::vector<ShardManifestEntry> written_;
};

// Serialises one complete shard (header + payload) in memory; used by the writer and by tests
// that need hand-made shards.
std::vector<uint8_t> encode_shard(const std::vector<uint8_t>& ids, uint32_t id_bytes, uint64_t tokens,
                                  uint64_t vocab_size, const std::vector<uint64_t>& docs);

}  // namespace linearard::data
