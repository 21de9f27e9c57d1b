#pragma once
// Seeded shuffles and draws for the data pipeline. std::shuffle and the
// std::*_distribution classes differ between standard libraries, so the same
// seed would give other splits and batches elsewhere; these are written out
// (SplitMix64) and give the same numbers everywhere.
#include <cstdint>
#include <utility>
#include <vector>

namespace heed::data {

// One SplitMix64 step: a well-mixed 64-bit value for any input.
inline uint64_t mix64(uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

// A value that depends on every part of (seed, a, b): counter-based draws.
inline uint64_t hash_counter(uint64_t seed, uint64_t a, uint64_t b = 0) {
  return mix64(mix64(mix64(seed) ^ a) ^ b);
}

class SplitMix64 {
 public:
  explicit SplitMix64(uint64_t seed) : state_(seed) {}
  uint64_t next() {
    state_ += 0x9E3779B97F4A7C15ull;
    return mix64(state_);
  }
  // Uniform in [0, n) (n > 0); the modulo bias is below 2^-40 for the sizes used here.
  uint64_t below(uint64_t n) { return next() % n; }
  double uniform() { return static_cast<double>(next() >> 11) * (1.0 / 9007199254740992.0); }

 private:
  uint64_t state_;
};

// Fisher-Yates, drawing from rng.
template <class T>
void seeded_shuffle(std::vector<T>& v, SplitMix64& rng) {
  for (size_t i = v.size(); i > 1; --i) {
    size_t j = static_cast<size_t>(rng.below(i));
    std::swap(v[i - 1], v[j]);
  }
}

}  // namespace heed::data
