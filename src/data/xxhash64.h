// XXH64 (Yann Collet's xxHash, 64-bit variant), written from the published specification
// (github.com/Cyan4973/xxHash/blob/dev/doc/xxhash_spec.md). Shards use it as their checksum:
// ~10 GB/s, so verifying a multi-GB shard costs far less than reading it.
#pragma once
#include <cstddef>
#include <cstdint>

namespace linearard::data {

uint64_t xxhash64(const void* data, size_t size, uint64_t seed = 0);

}  // namespace linearard::data
