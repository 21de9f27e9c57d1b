#pragma once
// The double sum of term(0) + ... + term(n - 1) in 8 independent lanes, added
// in lane order at the end. A single running sum is a chain of dependent adds
// that no compiler vectorises, and in the row kernels (softmax, layer norm,
// cross-entropy) it was most of the time. The order of the adds depends on n
// only, so every caller, thread count and ISA clone gets the same bits (given
// -ffp-contract=off where term multiplies). always_inline, so that it runs at
// the width of the HEED_ISA_CLONES function it is called from (isa_clones.h).
#include <cstdint>

namespace heed::cpu {

template <class Term>
__attribute__((always_inline)) inline double lane_sum(int64_t n, Term term) {
  constexpr int kLanes = 8;
  double lanes[kLanes] = {};
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes)
    for (int j = 0; j < kLanes; ++j) lanes[j] += term(i + j);
  for (int j = 0; i < n; ++i, ++j) lanes[j] += term(i);
  double total = 0;
  for (double v : lanes) total += v;
  return total;
}

}  // namespace heed::cpu
