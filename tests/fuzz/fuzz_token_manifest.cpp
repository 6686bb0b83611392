// libFuzzer target: the manifest.json written next to token shards (data/shard.cpp
// read_manifest), which `linearard distill --data DIR` reads to find its shards.
#include <cstddef>
#include <cstdint>

#include "common/error.h"
#include "data/shard.h"
#include "fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path = linearard::fuzz::write_scratch("manifest.json", data, size);
  try {
    const linearard::data::ShardManifest m = linearard::data::read_manifest(path);
    (void)m;
  } catch (const linearard::Error&) {
  }
  return 0;
}
