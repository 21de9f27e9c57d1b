#pragma once
// The launch shape of the kernels that give each thread one item (an
// element, an index entry, a Philox block) in a grid-stride loop: fill, the
// elementwise, index, Adam and random kernels.
#include <algorithm>
#include <cstdint>

namespace heed::cuda {

constexpr int kGridStrideThreads = 256;  // threads per block
constexpr int64_t kMaxGridX = 65535;     // blocks along x; kernels loop for more

// Blocks for n items, one a thread, at most kMaxGridX (the loop covers the rest).
inline unsigned grid_stride_blocks(int64_t n) {
  return static_cast<unsigned>(std::min<int64_t>((n + kGridStrideThreads - 1) / kGridStrideThreads, kMaxGridX));
}

}  // namespace heed::cuda
