// Philox blocks eight at a time in zmm lanes (compiled with -mavx512f ...;
// see philox_lanes.h).
// GCC 12 reports its own _mm512_undefined_epi32() inside the intrinsics as
// "may be used uninitialized" at -O2 (as in gemm_avx512.cpp); it never is.
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>

#include "tensor/cpu/philox_blocks.h"
#include "tensor/cpu/philox_lanes.h"

namespace heed::cpu::philox_simd {
namespace {

struct Lanes512 {
  using V = __m512i;
  static constexpr int kLanes = 8;
  static V set1(uint64_t x) { return _mm512_set1_epi64(static_cast<long long>(x)); }
  static V iota() { return _mm512_set_epi64(7, 6, 5, 4, 3, 2, 1, 0); }
  static V add(V a, V b) { return _mm512_add_epi64(a, b); }
  static V mul32(V a, V b) { return _mm512_mul_epu32(a, b); }
  static V low32(V a) { return _mm512_and_si512(a, _mm512_set1_epi64(0xffffffffLL)); }
  static V high32(V a) { return _mm512_srli_epi64(a, 32); }
  static V xor3(V a, V b, V c) { return _mm512_ternarylogic_epi64(a, b, c, 0x96); }
  // Lane l's words 0-1 and 2-3 as one 64-bit value each, then those pairs
  // interleaved block by block: blocks 0-3, then 4-7.
  static void store_blocks(uint32_t* words, V c0, V c1, V c2, V c3) {
    const V w01 = _mm512_or_si512(c0, _mm512_slli_epi64(c1, 32));
    const V w23 = _mm512_or_si512(c2, _mm512_slli_epi64(c3, 32));
    const V first = _mm512_set_epi64(11, 3, 10, 2, 9, 1, 8, 0), second = _mm512_set_epi64(15, 7, 14, 6, 13, 5, 12, 4);
    _mm512_storeu_si512(words, _mm512_permutex2var_epi64(w01, first, w23));
    _mm512_storeu_si512(words + 16, _mm512_permutex2var_epi64(w01, second, w23));
  }
};

}  // namespace

int64_t blocks_avx512(uint64_t seed, uint64_t first, int64_t count, uint32_t* words) {
  return philox_lanes<Lanes512>(seed, first, count, words);
}

}  // namespace heed::cpu::philox_simd
