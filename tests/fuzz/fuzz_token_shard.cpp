// libFuzzer target: token shard files (data/shard.h). Shard::open maps a path, so the bytes are
// written to a scratch file; a shard that opens must then read every token and document without
// leaving the file. Random bytes almost never carry the right header checksum, so for inputs with
// bit 0 of the reserved byte 56 set the target writes the correct checksums first (bytes 40 and
// 48) and the fuzzer reaches the field checks behind them; bit 1 turns payload verification on.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "common/error.h"
#include "data/shard.h"
#include "data/xxhash64.h"
#include "fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace linearard::data;
  std::vector<uint8_t> bytes(data, data + size);
  bool verify = true;
  if (size >= kShardHeaderBytes) {
    const uint8_t mode = bytes[56];
    verify = mode & 2;
    if (mode & 1) {
      const uint64_t payload = xxhash64(bytes.data() + kShardHeaderBytes, size - kShardHeaderBytes);
      std::memcpy(bytes.data() + 40, &payload, 8);
      const uint64_t header = xxhash64(bytes.data(), 48);
      std::memcpy(bytes.data() + 48, &header, 8);
    }
  }
  const std::string path = linearard::fuzz::write_scratch("fuzz.tok", bytes.data(), bytes.size());
  try {
    const Shard s = Shard::open(path, verify);
    std::vector<int32_t> ids32(s.tokens());
    std::vector<int64_t> ids64(s.tokens());
    s.read(0, s.tokens(), ids32.data());
    s.read(0, s.tokens(), ids64.data());
    for (uint64_t d = 0; d < s.documents(); ++d) {
      const auto [b, e] = s.document(d);
      if (b > e || e > s.tokens()) std::abort();
    }
    try {
      s.read(s.tokens(), 1, ids64.data());  // one past the end must be refused
      std::abort();
    } catch (const linearard::Error&) {
    }
  } catch (const linearard::Error&) {
  }
  return 0;
}
