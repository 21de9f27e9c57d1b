// Philox blocks four at a time in ymm lanes (compiled with -mavx2; see
// philox_lanes.h).
#include <immintrin.h>

#include "tensor/cpu/philox_blocks.h"
#include "tensor/cpu/philox_lanes.h"

namespace heed::cpu::philox_simd {
namespace {

struct Lanes256 {
  using V = __m256i;
  static constexpr int kLanes = 4;
  static V set1(uint64_t x) { return _mm256_set1_epi64x(static_cast<long long>(x)); }
  static V iota() { return _mm256_set_epi64x(3, 2, 1, 0); }
  static V add(V a, V b) { return _mm256_add_epi64(a, b); }
  static V mul32(V a, V b) { return _mm256_mul_epu32(a, b); }
  static V low32(V a) { return _mm256_and_si256(a, _mm256_set1_epi64x(0xffffffffLL)); }
  static V high32(V a) { return _mm256_srli_epi64(a, 32); }
  static V xor3(V a, V b, V c) { return _mm256_xor_si256(_mm256_xor_si256(a, b), c); }
  // Lane l's words 0-1 and 2-3 as one 64-bit value each, interleaved within
  // 128-bit halves (blocks 0, 2 | 1, 3), then the halves put in block order.
  static void store_blocks(uint32_t* words, V c0, V c1, V c2, V c3) {
    const V w01 = _mm256_or_si256(c0, _mm256_slli_epi64(c1, 32));
    const V w23 = _mm256_or_si256(c2, _mm256_slli_epi64(c3, 32));
    const V even = _mm256_unpacklo_epi64(w01, w23), odd = _mm256_unpackhi_epi64(w01, w23);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(words), _mm256_permute2x128_si256(even, odd, 0x20));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(words + 8), _mm256_permute2x128_si256(even, odd, 0x31));
  }
};

}  // namespace

int64_t blocks_avx2(uint64_t seed, uint64_t first, int64_t count, uint32_t* words) {
  return philox_lanes<Lanes256>(seed, first, count, words);
}

}  // namespace heed::cpu::philox_simd
