// Token shard files: a versioned binary container of token ids, written once by
// `linearard tokenize` and memory-mapped by training.
//
// Layout (little-endian):
//   0  char[8]  magic "LARDTOKS"
//   8  u32      version (kShardVersion)
//   12 u32      id width in bytes: 2 when vocab_size <= 65536, else 4
//   16 u64      token count N
//   24 u64      vocab_size (every id is < vocab_size)
//   32 u64      document count D
//   40 u64      XXH64 of the payload (bytes 64 .. end)
//   48 u64      XXH64 of header bytes 0 .. 48
//   56 u64      reserved, 0
//   64          N ids, then zero padding to a multiple of 8 bytes
//   ...         D x {u64 begin, u64 end}: token range of each document, in order. `end` excludes
//               the EOS separator that follows a document when the tokenizer does not add one.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace linearard::io { class MappedFile; }

namespace linearard::data {

constexpr char kShardMagic[8] = {'L', 'A', 'R', 'D', 'T', 'O', 'K', 'S'};
constexpr uint32_t kShardVersion = 1;
constexpr size_t kShardHeaderBytes = 64;

// 2 or 4: the narrowest width that holds every id below vocab_size.
uint32_t id_width_for_vocab(uint64_t vocab_size);

struct ShardHeader {
  uint32_t version = kShardVersion;
  uint32_t id_bytes = 4;
  uint64_t tokens = 0, vocab_size = 0, documents = 0;
  uint64_t checksum = 0;
};

// A read-only, validated, memory-mapped shard. Every problem is one line naming the file.
class Shard {
 public:
  // verify_checksum re-hashes the payload (about 0.1 s per GB).
  static Shard open(const std::string& path, bool verify_checksum = true);

  const ShardHeader& header() const { return header_; }
  const std::string& path() const { return path_; }
  uint64_t tokens() const { return header_.tokens; }
  uint64_t documents() const { return header_.documents; }
  // Copies ids [offset, offset + n) into out (int32 or int64 to suit the caller).
  void read(uint64_t offset, uint64_t n, int32_t* out) const;
  void read(uint64_t offset, uint64_t n, int64_t* out) const;
  std::pair<uint64_t, uint64_t> document(uint64_t i) const;  // [begin, end) token range

 private:
  std::string path_;
  ShardHeader header_;
  std::shared_ptr<const io::MappedFile> file_;
  const uint8_t* ids_ = nullptr;
  const uint64_t* docs_ = nullptr;  // 2 * documents
};

// The manifest.json that `linearard tokenize` writes next to its shards.
struct ShardManifestEntry {
  std::string file;  // relative to the manifest's directory
  uint64_t tokens = 0, documents = 0, checksum = 0;
};
struct ShardManifest {
  std::string tokenizer;  // tokenizer directory the ids came from
  uint64_t vocab_size = 0;
  int64_t bos_id = -1, eos_id = -1;
  uint64_t total_tokens = 0, total_documents = 0;
  std::vector<std::string> inputs;
  std::vector<ShardManifestEntry> shards;
};
void write_manifest(const std::string& path, const ShardManifest& m);
ShardManifest read_manifest(const std::string& path);
// The shard paths of a token directory (its manifest.json) or of a single shard file.
std::vector<std::string> shard_paths(const std::string& dir_or_file);

}  // namespace linearard::data
