#pragma once
// The counter-based generator behind rand/randn/bernoulli and dropout. Its
// whole state is (seed, offset): a draw takes the Philox blocks from offset
// on (tensor/philox.h says which sample reads which block) and advances
// offset past them. So a seed gives the same numbers on every run, every
// thread count and (with the CUDA backend) every device, and the state is two
// integers to checkpoint.
#include <cstdint>

namespace heed {

class Generator {
 public:
  explicit Generator(uint64_t seed = 0) : seed_(seed) {}
  void manual_seed(uint64_t seed) {
    seed_ = seed;
    offset_ = 0;
  }
  uint64_t seed() const { return seed_; }
  uint64_t offset() const { return offset_; }
  void set_state(uint64_t seed, uint64_t offset) {
    seed_ = seed;
    offset_ = offset;
  }
  // Reserves n Philox blocks and returns the first.
  uint64_t advance(uint64_t n) {
    uint64_t first = offset_;
    offset_ += n;
    return first;
  }

 private:
  uint64_t seed_;
  uint64_t offset_ = 0;
};

// The generator used when none is passed.
Generator& default_generator();
void manual_seed(uint64_t seed);

}  // namespace heed
