#pragma once
// Philox4x32-10 on one block per 64-bit SIMD lane, written once for the SIMD
// files (philox_avx2.cpp, philox_avx512.cpp), each of which supplies its lane
// operations L:
//   L::V, L::kLanes              a vector of kLanes 64-bit lanes
//   set1, load                   whole lanes
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

// Writes the first count - count % kLanes blocks and returns how many.
template <class L>
int64_t philox_lanes(uint64_t seed, uint64_t first, int64_t count, uint32_t* words) {
  using V = typename L::V;
  constexpr int N = L::kLanes;
  const V mul0 = L::set1(philox_detail::kMul0), mul1 = L::set1(philox_detail::kMul1), zero = L::set1(0);
  int64_t n = 0;
  for (; n + N <= count; n += N) {
    alignas(64) uint64_t lane[N];
    for (int l = 0; l < N; ++l) lane[l] = first + static_cast<uint64_t>(n + l);
    const V index = L::load(lane);
    // counter = {index low, index high, 0, 0}, key = {seed low, seed high}
    V c0 = L::low32(index), c1 = L::high32(index), c2 = zero, c3 = zero;
    uint32_t k0 = static_cast<uint32_t>(seed), k1 = static_cast<uint32_t>(seed >> 32);
    for (int r = 0; r < 10; ++r) {
      if (r > 0) k0 += philox_detail::kWeyl0, k1 += philox_detail::kWeyl1;
      const V p0 = L::mul32(c0, mul0), p1 = L::mul32(c2, mul1);
      const V n0 = L::xor3(L::high32(p1), c1, L::set1(k0));
      const V n2 = L::xor3(L::high32(p0), c3, L::set1(k1));
      c1 = L::low32(p1), c3 = L::low32(p0), c0 = n0, c2 = n2;
    }
    L::store_blocks(words + 4 * n, c0, c1, c2, c3);
  }
  return n;
}

}  // namespace
}  // namespace heed::cpu::philox_simd
