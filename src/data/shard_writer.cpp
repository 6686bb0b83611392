#include "data/shard_writer.h"

#include <cstdio>
#include <cstring>

#include "common/error.h"
#include "common/option_error.h"
#include "data/xxhash64.h"
#include "io/atomic_file.h"

namespace linearard::data {

std::vector<uint8_t> encode_shard(const std::vector<uint8_t>& ids, uint32_t id_bytes, uint64_t tokens,
                                  uint64_t vocab_size, const std::vector<uint64_t>& docs) {
  const uint64_t ids_bytes = (tokens * id_bytes + 7) / 8 * 8;
  std::vector<uint8_t> out(kShardHeaderBytes + ids_bytes + docs.size() * 8, 0);
  uint8_t* h = out.data();
  const uint64_t documents = docs.size() / 2;
  std::memcpy(h, kShardMagic, 8);
  std::memcpy(h + 8, &kShardVersion, 4);
  std::memcpy(h + 12, &id_bytes, 4);
  std::memcpy(h + 16, &tokens, 8);
  std::memcpy(h + 24, &vocab_size, 8);
  std::memcpy(h + 32, &documents, 8);
  std::memcpy(h + kShardHeaderBytes, ids.data(), tokens * id_bytes);
  if (!docs.empty()) std::memcpy(h + kShardHeaderBytes + ids_bytes, docs.data(), docs.size() * 8);
  const uint64_t checksum = xxhash64(h + kShardHeaderBytes, out.size() - kShardHeaderBytes);
  std::memcpy(h + 40, &checksum, 8);
  const uint64_t header_checksum = xxhash64(h, 48);
  std::memcpy(h + 48, &header_checksum, 8);
  return out;
}

ShardWriter::ShardWriter(ShardWriterParams p) : p_(std::move(p)), id_bytes_(id_width_for_vocab(p_.vocab_size)) {
  if (p_.vocab_size == 0) fail(p_.out_dir, "vocab_size must be positive");
  if (p_.vocab_size > (uint64_t{1} << 32)) fail(p_.out_dir, "vocab_size does not fit 4-byte ids");
  if (p_.shard_tokens == 0) fail_option("shard-tokens", "must be positive");
}

void ShardWriter::add_document(const std::vector<int32_t>& ids, bool separate) {
  const size_t extra = separate && p_.eos_id >= 0 ? 1 : 0;
  const size_t at = ids_.size();
  ids_.resize(at + (ids.size() + extra) * id_bytes_);
  uint8_t* dst = ids_.data() + at;
  const auto put = [&](int64_t id) {
    if (id < 0 || static_cast<uint64_t>(id) >= p_.vocab_size)
      fail(p_.out_dir, "token id " + std::to_string(id) + " is outside the vocabulary (size " +
                           std::to_string(p_.vocab_size) + ")");
    if (id_bytes_ == 2) {
      const uint16_t v = static_cast<uint16_t>(id);
      std::memcpy(dst, &v, 2);
    } else {
      const uint32_t v = static_cast<uint32_t>(id);
      std::memcpy(dst, &v, 4);
    }
    dst += id_bytes_;
  };
  for (int32_t id : ids) put(id);
  docs_.push_back(tokens_);
  docs_.push_back(tokens_ + ids.size());
  if (extra) put(p_.eos_id);
  tokens_ += ids.size() + extra;
  total_tokens_ += ids.size() + extra;
  ++total_documents_;
  if (tokens_ >= p_.shard_tokens) flush();
}

void ShardWriter::flush() {
  if (tokens_ == 0 && docs_.empty()) return;
  char name[64];
  std::snprintf(name, sizeof(name), "%s-%05zu.bin", p_.prefix.c_str(), written_.size());
  const std::string path = p_.out_dir + "/" + name;
  const std::vector<uint8_t> bytes = encode_shard(ids_, id_bytes_, tokens_, p_.vocab_size, docs_);
  io::check_free_space(p_.out_dir, bytes.size());
  io::AtomicFile file(path);
  file.write(bytes.data(), bytes.size());
  file.commit();
  ShardManifestEntry e;
  e.file = name;
  e.tokens = tokens_;
  e.documents = docs_.size() / 2;
  std::memcpy(&e.checksum, bytes.data() + 40, 8);
  written_.push_back(e);
  ids_.clear();
  docs_.clear();
  tokens_ = 0;
}

const std::vector<ShardManifestEntry>& ShardWriter::finish() {
  flush();
  return written_;
}

}  // namespace linearard::data
