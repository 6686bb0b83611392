// splitmix64 (Steele, Lea, Flood, "Fast splittable pseudorandom number generators", OOPSLA 2014):
// the one portable mixing function behind every seeded choice of the evaluations (passkey keys,
// few-shot draws, RULER samples), so that a seed gives the same samples with every standard library.
#pragma once
#include <cstdint>

namespace linearard::eval {

inline uint64_t splitmix64(uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

// A stream of values: next() = splitmix64 of the previous state.
struct SplitMix {
  uint64_t state;
  explicit SplitMix(uint64_t seed) : state(splitmix64(seed)) {}
  uint64_t next() { return state = splitmix64(state); }
  uint64_t below(uint64_t n) { return next() % n; }  // n > 0; modulo bias < n / 2^64
};

}  // namespace linearard::eval
