// The AVX2 + FMA float micro-kernel (compiled with -mavx2 -mfma; see gemm_kernels.h).
//
// Tile 6 x 16: 12 ymm accumulators, 2 ymm for a row of B and 1 for the
// broadcast A value fill 15 of the 16 ymm registers, the classic Haswell-era
// shape that keeps both FMA pipes busy without spilling.
#include <immintrin.h>

#include "tensor/cpu/gemm_kernels.h"

namespace heed::cpu::gemm_detail {
namespace {

constexpr int kMR = kAvx2Rows;
constexpr int kNV = kAvx2Cols / 8;  // ymm vectors per row of the tile
static_assert(kAvx2Cols % 8 == 0 && kMR * kNV + kNV + 1 <= 16, "the tile must fit 16 ymm registers");

// The tile, for panels a stride apart (kStrided: b unaligned); the packed
// kernel is the same code with lda = MR, ldb = 8 * NV.
template <bool kStrided>
inline __attribute__((always_inline)) void tile(int64_t kc, const float* a, int64_t lda, const float* b, int64_t ldb,
                                                float* c, int64_t rsc, float alpha, float beta) {
  __m256 acc[kMR][kNV];
#pragma GCC unroll 8
  for (int r = 0; r < kMR; ++r)
#pragma GCC unroll 2
    for (int v = 0; v < kNV; ++v) acc[r][v] = _mm256_setzero_ps();

  for (int64_t k = 0; k < kc; ++k) {
    __m256 row[kNV];
#pragma GCC unroll 2
    for (int v = 0; v < kNV; ++v) row[v] = kStrided ? _mm256_loadu_ps(b + 8 * v) : _mm256_load_ps(b + 8 * v);
#pragma GCC unroll 8
    for (int r = 0; r < kMR; ++r) {
      __m256 ar = _mm256_broadcast_ss(a + r);
#pragma GCC unroll 2
      for (int v = 0; v < kNV; ++v) acc[r][v] = _mm256_fmadd_ps(ar, row[v], acc[r][v]);
    }
    a += lda;
    b += ldb;
  }

  __m256 va = _mm256_set1_ps(alpha);
  if (beta == 0.0f) {
#pragma GCC unroll 8
    for (int r = 0; r < kMR; ++r)
#pragma GCC unroll 2
      for (int v = 0; v < kNV; ++v) _mm256_storeu_ps(c + r * rsc + 8 * v, _mm256_mul_ps(va, acc[r][v]));
  } else {
    __m256 vb = _mm256_set1_ps(beta);
#pragma GCC unroll 8
    for (int r = 0; r < kMR; ++r)
#pragma GCC unroll 2
      for (int v = 0; v < kNV; ++v) {
        float* p = c + r * rsc + 8 * v;
        _mm256_storeu_ps(p, _mm256_fmadd_ps(va, acc[r][v], _mm256_mul_ps(vb, _mm256_loadu_ps(p))));
      }
  }
}

void kernel(int64_t kc, const float* a, const float* b, float* c, int64_t rsc, float alpha, float beta) {
  tile<false>(kc, a, kMR, b, 8 * kNV, c, rsc, alpha, beta);
}

void kernel_strided(int64_t kc, const float* a, int64_t lda, const float* b, int64_t ldb, float* c, int64_t rsc,
                    float alpha, float beta) {
  tile<true>(kc, a, lda, b, ldb, c, rsc, alpha, beta);
}

// In-register transpose of an 8 x 8 block: r[i] holds row i on entry and column
// i on return (32-bit pairs, then 64-bit pairs, then 128-bit halves).
inline __attribute__((always_inline)) void transpose8(__m256 r[8]) {
  __m256 t[8], u[8];
#pragma GCC unroll 4
  for (int i = 0; i < 8; i += 2) {
    t[i] = _mm256_unpacklo_ps(r[i], r[i + 1]);
    t[i + 1] = _mm256_unpackhi_ps(r[i], r[i + 1]);
  }
#pragma GCC unroll 2
  for (int h = 0; h < 8; h += 4) {  // rows h..h+3; u[h+c] holds column c and c+4
    u[h + 0] = _mm256_shuffle_ps(t[h], t[h + 2], 0x44);
    u[h + 1] = _mm256_shuffle_ps(t[h], t[h + 2], 0xEE);
    u[h + 2] = _mm256_shuffle_ps(t[h + 1], t[h + 3], 0x44);
    u[h + 3] = _mm256_shuffle_ps(t[h + 1], t[h + 3], 0xEE);
  }
#pragma GCC unroll 4
  for (int c = 0; c < 4; ++c) {
    r[c] = _mm256_permute2f128_ps(u[c], u[c + 4], 0x20);
    r[c + 4] = _mm256_permute2f128_ps(u[c], u[c + 4], 0x31);
  }
}

// dst[k*W + l] = src[l*ld + k] for l < lanes, 0 for lanes <= l < W (the
// KernelSpec contract), 8 lanes x 8 k at a time through transpose8.
template <int W>
void pack_transposed(float* dst, const float* src, int64_t ld, int64_t lanes, int64_t kc) {
  const int64_t kc8 = kc / 8 * 8;
  for (int g = 0; g < W; g += 8) {
    const int width = W - g < 8 ? W - g : 8;  // lanes of this group stored per k
    const __m256i store_mask =
        _mm256_cmpgt_epi32(_mm256_set1_epi32(width), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
    const int64_t live = lanes - g < 0 ? 0 : (lanes - g < width ? lanes - g : width);
    for (int64_t k0 = 0; k0 < kc8; k0 += 8) {
      __m256 r[8];
#pragma GCC unroll 8
      for (int l = 0; l < 8; ++l)
        r[l] = l < live ? _mm256_loadu_ps(src + (g + l) * ld + k0) : _mm256_setzero_ps();
      transpose8(r);
#pragma GCC unroll 8
      for (int t = 0; t < 8; ++t) _mm256_maskstore_ps(dst + (k0 + t) * W + g, store_mask, r[t]);
    }
    for (int64_t k = kc8; k < kc; ++k)
      for (int l = 0; l < width; ++l) dst[k * W + g + l] = l < live ? src[(g + l) * ld + k] : 0.0f;
  }
}

}  // namespace

KernelSpecF32 avx2_kernel_f32() {
  return {"avx2", kMR, 8 * kNV, 256, 96, 256, &kernel, &pack_transposed<kMR>,
          &pack_transposed<8 * kNV>, &kernel_strided};
}

}  // namespace heed::cpu::gemm_detail
