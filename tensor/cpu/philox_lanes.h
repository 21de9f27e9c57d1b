#pragma once
// Philox4x32-10 on one block per 64-bit SIMD lane, written once for the SIMD
// files (philox_avx2.cpp, philox_avx512.cpp), each of which supplies its lane
// operations L:
//   L::V, L::kLanes              a vector of kLanes 64-bit lanes
//   set1                         every lane the same
//   iota()                       lane l holds l
//   add(a, b)                    64-bit lane sums
//   mul32(a, b)                  low 32 bits of a times low 32 bits of b, 64-bit product
//   low32(a), high32(a)          a lane's low / high 32 bits
//   xor3(a, b, c)                a ^ b ^ c
//   store_blocks(words, c0, c1, c2, c3)
//                                lane l's block (low 32 bits of c0..c3 in lane l)
//                                to words[4 l .. 4 l + 3], for every lane
// The rounds are tensor/philox.h's, so the words are the same bits. In an
// unnamed namespace: each SIMD file compiles its own copy for its ISA, and
// the linker can never pick one file's copy for another (see gemm_kernels.h).
// For the same reason no inline function of philox.h is called here (the
// linker could keep an AVX-512 copy of it for every caller): the blocks left
// over after the last whole vector are the caller's, in scalar code.
#include <cstdint>

#include "tensor/philox.h"

namespace heed::cpu::philox_simd {
namespace {

// The ten rounds on the blocks whose indices are in `index` (one a lane),
// their words left in c0..c3 (low 32 bits of each lane).
template <class L>
__attribute__((always_inline)) inline void philox_rounds(uint64_t seed, typename L::V index, typename L::V& c0,
                                                         typename L::V& c1, typename L::V& c2, typename L::V& c3) {
  using V = typename L::V;
  const V mul0 = L::set1(philox_detail::kMul0), mul1 = L::set1(philox_detail::kMul1);
  // counter = {index low, index high, 0, 0}, key = {seed low, seed high}
  c0 = L::low32(index), c1 = L::high32(index), c2 = L::set1(0), c3 = L::set1(0);
  uint32_t k0 = static_cast<uint32_t>(seed), k1 = static_cast<uint32_t>(seed >> 32);
  for (int r = 0; r < 10; ++r) {
    if (r > 0) k0 += philox_detail::kWeyl0, k1 += philox_detail::kWeyl1;
    // mul32 reads only the low 32 bits of a lane, so the products' high
    // halves may stay in c1 and c3 (and from there in the high bits of c0
    // and c2): they are cleared once, after the last round.
    const V p0 = L::mul32(c0, mul0), p1 = L::mul32(c2, mul1);
    const V n0 = L::xor3(L::high32(p1), c1, L::set1(k0));
    const V n2 = L::xor3(L::high32(p0), c3, L::set1(k1));
    c1 = p1, c3 = p0, c0 = n0, c2 = n2;
  }
  c0 = L::low32(c0), c1 = L::low32(c1), c2 = L::low32(c2), c3 = L::low32(c3);
}

// Writes the first count - count % kLanes blocks and returns how many.
template <class L>
int64_t philox_lanes(uint64_t seed, uint64_t first, int64_t count, uint32_t* words) {
  using V = typename L::V;
  constexpr int N = L::kLanes;
  // The block indices first + n + l, stepped in registers: writing them to
  // memory one lane at a time and loading them as a vector stalled every
  // iteration on store forwarding (a fifth of the time of an AVX-512 draw).
  // Two vectors of blocks a step: their rounds are independent chains the
  // core runs side by side (one chain's multiply-shift-xor latency bound it).
  const V step = L::set1(static_cast<uint64_t>(N));
  V index = L::add(L::set1(first), L::iota());
  int64_t n = 0;
  for (; n + 2 * N <= count; n += 2 * N) {
    V a0, a1, a2, a3, b0, b1, b2, b3;
    const V next = L::add(index, step);
    philox_rounds<L>(seed, index, a0, a1, a2, a3);
    philox_rounds<L>(seed, next, b0, b1, b2, b3);
    L::store_blocks(words + 4 * n, a0, a1, a2, a3);
    L::store_blocks(words + 4 * (n + N), b0, b1, b2, b3);
    index = L::add(next, step);
  }
  if (n + N <= count) {
    V c0, c1, c2, c3;
    philox_rounds<L>(seed, index, c0, c1, c2, c3);
    L::store_blocks(words + 4 * n, c0, c1, c2, c3);
    n += N;
  }
  return n;
}

}  // namespace
}  // namespace heed::cpu::philox_simd
