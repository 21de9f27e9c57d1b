#pragma once
// The maximum of n values in 16 independent lanes, so that the loop
// vectorises (a single running maximum does not). max is exact, so the lanes
// change no result; a NaN is never picked, as with one running maximum, and
// n = 0 gives -inf. always_inline, so that it runs at the width of the
// HEED_ISA_CLONES function it is called from (isa_clones.h).
#include <cstdint>
#include <limits>

namespace heed::cpu {

template <class T>
__attribute__((always_inline)) inline T lane_max(const T* x, int64_t n) {
  constexpr int kLanes = 16;
  T lanes[kLanes];
  for (auto& l : lanes) l = -std::numeric_limits<T>::infinity();
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes)
    for (int j = 0; j < kLanes; ++j) lanes[j] = x[i + j] > lanes[j] ? x[i + j] : lanes[j];
  for (int j = 0; i < n; ++i, ++j) lanes[j] = x[i] > lanes[j] ? x[i] : lanes[j];
  T m = lanes[0];
  for (int j = 1; j < kLanes; ++j) m = lanes[j] > m ? lanes[j] : m;
  return m;
}

}  // namespace heed::cpu
