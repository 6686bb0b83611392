#include "data/shard.h"

#include <sys/stat.h>

#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "common/error.h"
#include "data/xxhash64.h"
#include "io/atomic_file.h"
#include "io/mapped_file.h"

namespace linearard::data {
namespace {

uint64_t get64(const uint8_t* p) { uint64_t v; std::memcpy(&v, p, 8); return v; }
uint32_t get32(const uint8_t* p) { uint32_t v; std::memcpy(&v, p, 4); return v; }
uint64_t padded(uint64_t n) { return (n + 7) / 8 * 8; }

template <typename T>
void copy_ids(const uint8_t* ids, uint32_t width, uint64_t offset, uint64_t n, T* out) {
  if (width == 2) {
    const uint8_t* p = ids + offset * 2;
    for (uint64_t i = 0; i < n; ++i) { uint16_t v; std::memcpy(&v, p + 2 * i, 2); out[i] = static_cast<T>(v); }
  } else {
    const uint8_t* p = ids + offset * 4;
    for (uint64_t i = 0; i < n; ++i) { uint32_t v; std::memcpy(&v, p + 4 * i, 4); out[i] = static_cast<T>(v); }
  }
}

std::string hex64(uint64_t v) {
  char buf[20];
  std::snprintf(buf, sizeof(buf), "%016llx", static_cast<unsigned long long>(v));
  return buf;
}

// Manifest numbers are read checked: nlohmann's get<integer>() casts a float unchecked (undefined
// behaviour out of range) and wraps a negative number into a uint64 silently.
uint64_t manifest_u64(const nlohmann::json& j, const char* key, const std::string& path,
                      const uint64_t* fallback = nullptr) {
  if (fallback && (!j.contains(key) || j.at(key).is_null())) return *fallback;
  const nlohmann::json& v = j.at(key);
  if (!v.is_number_unsigned())
    fail(path, std::string("bad manifest: '") + key + "' must be a non-negative integer, got a " + v.type_name());
  return v.get<uint64_t>();
}

int64_t manifest_i64(const nlohmann::json& j, const char* key, int64_t fallback, const std::string& path) {
  if (!j.contains(key) || j.at(key).is_null()) return fallback;
  const nlohmann::json& v = j.at(key);
  if (!v.is_number_integer() || (v.is_number_unsigned() && v.get<uint64_t>() > uint64_t{INT64_MAX}))
    fail(path, std::string("bad manifest: '") + key + "' must be an integer, got a " + v.type_name());
  return v.get<int64_t>();
}

// write_manifest's "%016llx"; std::stoull would throw std::invalid_argument on anything else.
uint64_t parse_hex64(const std::string& s, const std::string& path) {
  if (s.empty() || s.size() > 16) fail(path, "bad manifest: xxh64 '" + s + "' is not 1 to 16 hex digits");
  uint64_t v = 0;
  for (char c : s) {
    const int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10
                : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
    if (d < 0) fail(path, "bad manifest: xxh64 '" + s + "' is not 1 to 16 hex digits");
    v = v << 4 | static_cast<uint64_t>(d);
  }
  return v;
}

}  // namespace

uint32_t id_width_for_vocab(uint64_t vocab_size) { return vocab_size <= 65536 ? 2 : 4; }

Shard Shard::open(const std::string& path, bool verify_checksum) {
  Shard s;
  s.path_ = path;
  s.file_ = io::MappedFile::open(path);
  const uint8_t* d = s.file_->data();
  const uint64_t size = s.file_->size();
  if (size < kShardHeaderBytes)
    fail(path, "truncated token shard: " + std::to_string(size) + " bytes, the header alone is 64");
  if (std::memcmp(d, kShardMagic, 8) != 0) fail(path, "bad magic: not a linearard token shard");
  ShardHeader& h = s.header_;
  h.version = get32(d + 8);
  if (h.version != kShardVersion)
    fail(path, "unsupported token shard version " + std::to_string(h.version) + " (this build reads " +
                   std::to_string(kShardVersion) + ")");
  if (xxhash64(d, 48) != get64(d + 48)) fail(path, "header checksum mismatch: the shard is corrupt");
  h.id_bytes = get32(d + 12);
  h.tokens = get64(d + 16);
  h.vocab_size = get64(d + 24);
  h.documents = get64(d + 32);
  h.checksum = get64(d + 40);
  if (h.id_bytes != 2 && h.id_bytes != 4) fail(path, "bad id width " + std::to_string(h.id_bytes) + " (2 or 4)");
  if (h.vocab_size == 0 || h.vocab_size > (uint64_t{1} << (8 * h.id_bytes)))
    fail(path, "vocab_size " + std::to_string(h.vocab_size) + " does not fit " + std::to_string(h.id_bytes) +
                   "-byte ids");
  // Bounded before multiplying so a corrupt count cannot overflow the size computation.
  if (h.tokens > size || h.documents > size) fail(path, "token or document count larger than the file");
  const uint64_t docs_at = kShardHeaderBytes + padded(h.tokens * h.id_bytes);
  const uint64_t expected = docs_at + h.documents * 16;
  if (expected != size)
    fail(path, "file is " + std::to_string(size) + " bytes but its header implies " + std::to_string(expected) +
                   " (truncated or corrupt)");
  if (verify_checksum && xxhash64(d + kShardHeaderBytes, size - kShardHeaderBytes) != h.checksum)
    fail(path, "checksum mismatch: the shard is corrupt");
  s.ids_ = d + kShardHeaderBytes;
  s.docs_ = reinterpret_cast<const uint64_t*>(d + docs_at);  // 8-aligned: mmap base + multiple of 8
  uint64_t prev_end = 0;
  for (uint64_t i = 0; i < h.documents; ++i) {
    const uint64_t b = s.docs_[2 * i], e = s.docs_[2 * i + 1];
    if (b < prev_end || e < b || e > h.tokens) fail(path, "document table entry " + std::to_string(i) + " is out of order or range");
    prev_end = e;
  }
  return s;
}

void Shard::read(uint64_t offset, uint64_t n, int32_t* out) const {
  if (offset + n > header_.tokens) fail(path_, "read past the last token");
  copy_ids(ids_, header_.id_bytes, offset, n, out);
}

void Shard::read(uint64_t offset, uint64_t n, int64_t* out) const {
  if (offset + n > header_.tokens) fail(path_, "read past the last token");
  copy_ids(ids_, header_.id_bytes, offset, n, out);
}

std::pair<uint64_t, uint64_t> Shard::document(uint64_t i) const {
  if (i >= header_.documents) fail(path_, "document index out of range");
  return {docs_[2 * i], docs_[2 * i + 1]};
}

void write_manifest(const std::string& path, const ShardManifest& m) {
  nlohmann::json j;
  j["format"] = "linearard-token-shards";
  j["version"] = kShardVersion;
  j["tokenizer"] = m.tokenizer;
  j["vocab_size"] = m.vocab_size;
  j["id_bytes"] = id_width_for_vocab(m.vocab_size);
  j["bos_id"] = m.bos_id;
  j["eos_id"] = m.eos_id;
  j["total_tokens"] = m.total_tokens;
  j["total_documents"] = m.total_documents;
  j["inputs"] = m.inputs;
  j["shards"] = nlohmann::json::array();
  for (const auto& s : m.shards)
    j["shards"].push_back({{"file", s.file}, {"tokens", s.tokens}, {"documents", s.documents}, {"xxh64", hex64(s.checksum)}});
  io::write_file_atomic(path, j.dump(2) + "\n");
}

ShardManifest read_manifest(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail(path, "cannot open");
  std::stringstream ss;
  ss << in.rdbuf();
  ShardManifest m;
  try {
    // Depth-limited: nlohmann copies and prints nested values recursively (stack overflow).
    const auto j = nlohmann::json::parse(ss.str(), [&](int depth, nlohmann::json::parse_event_t, nlohmann::json&) {
      if (depth > 64) fail(path, "bad manifest: JSON nested deeper than 64 levels");
      return true;
    });
    if (j.value("format", "") != "linearard-token-shards") fail(path, "not a linearard token manifest");
    const uint64_t zero = 0;
    m.tokenizer = j.value("tokenizer", "");
    m.vocab_size = manifest_u64(j, "vocab_size", path);
    m.bos_id = manifest_i64(j, "bos_id", -1, path);
    m.eos_id = manifest_i64(j, "eos_id", -1, path);
    m.total_tokens = manifest_u64(j, "total_tokens", path);
    m.total_documents = manifest_u64(j, "total_documents", path, &zero);
    m.inputs = j.value("inputs", std::vector<std::string>{});
    for (const auto& s : j.at("shards")) {
      ShardManifestEntry e;
      e.file = s.at("file").get<std::string>();
      e.tokens = manifest_u64(s, "tokens", path);
      e.documents = manifest_u64(s, "documents", path, &zero);
      e.checksum = parse_hex64(s.value("xxh64", std::string("0")), path);
      m.shards.push_back(e);
    }
  } catch (const nlohmann::json::exception& e) {
    fail(path, std::string("bad manifest: ") + e.what());
  }
  return m;
}

std::vector<std::string> shard_paths(const std::string& dir_or_file) {
  struct stat st;
  if (::stat(dir_or_file.c_str(), &st) != 0) fail(dir_or_file, "not found");
  if (!S_ISDIR(st.st_mode)) return {dir_or_file};
  const ShardManifest m = read_manifest(dir_or_file + "/manifest.json");
  std::vector<std::string> out;
  for (const auto& s : m.shards) out.push_back(dir_or_file + "/" + s.file);
  return out;
}

}  // namespace linearard::data
