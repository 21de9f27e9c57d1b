// The AVX-512 float micro-kernel and its packing (compiled with -mavx512f ...;
// see gemm_kernels.h).
//
// Tile MR x (16*NV), 6 x 64: 24 zmm accumulators, 4 zmm for a row of B, A values
// broadcast from memory, i.e. 10 loads per 24 FMAs. 14x32, 8x48 and 6x64 all run
// at the measured FMA peak with their panels in L1; in the whole GEMM 6x64 came
// out a few percent ahead: with only 6 rows of C per tile, rows 4 KiB apart no
// longer overflow one 12-way L1 set, and less of the tile is padding when M is
// not a multiple of it.
// GCC 12 reports its own _mm512_undefined_ps() inside the shuffle intrinsics as
// "may be used uninitialized" at -O2; the value is never used.
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>

#include "tensor/cpu/gemm_avx512_tile.h"
#include "tensor/cpu/gemm_kernels.h"


namespace heed::cpu::gemm_detail {
namespace {

// The tile, for panels a stride apart (kStrided: b unaligned); the packed
// kernel is the same code with lda = MR, ldb = 16 * NV.
template <int MR, int NV, bool kStrided>
inline __attribute__((always_inline)) void tile(int64_t kc, const float* a, int64_t lda, const float* b, int64_t ldb,
                                                float* c, int64_t rsc, float alpha, float beta) {
  __m512 acc[MR][NV];
  start_tile(acc, c, rsc);

  for (int64_t k = 0; k < kc; ++k) {
    __m512 row[NV];
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) row[v] = kStrided ? _mm512_loadu_ps(b + 16 * v) : _mm512_load_ps(b + 16 * v);
#pragma GCC unroll 16
    for (int r = 0; r < MR; ++r) {
      __m512 ar = _mm512_set1_ps(a[r]);
#pragma GCC unroll 4
      for (int v = 0; v < NV; ++v) acc[r][v] = _mm512_fmadd_ps(ar, row[v], acc[r][v]);
    }
    a += lda;
    b += ldb;
  }

  store_tile(acc, c, rsc, alpha, beta);
}

template <int MR, int NV>
void kernel(int64_t kc, const float* a, const float* b, float* c, int64_t rsc, float alpha, float beta) {
  tile<MR, NV, false>(kc, a, MR, b, 16 * NV, c, rsc, alpha, beta);
}

template <int MR, int NV>
void kernel_strided(int64_t kc, const float* a, int64_t lda, const float* b, int64_t ldb, float* c, int64_t rsc,
                    float alpha, float beta) {
  tile<MR, NV, true>(kc, a, lda, b, ldb, c, rsc, alpha, beta);
}

// dst[k*W + l] = src[l*ld + k] for l < lanes, 0 for lanes <= l < W (the
// KernelSpec contract), 16 lanes x 16 k at a time through transpose16.
template <int W>
void pack_transposed(float* dst, const float* src, int64_t ld, int64_t lanes, int64_t kc) {
  const int64_t kc16 = kc / 16 * 16;
  for (int g = 0; g < W; g += 16) {
    const int width = W - g < 16 ? W - g : 16;  // lanes of this group stored per k
    const __mmask16 store_mask = static_cast<__mmask16>((1u << width) - 1);
    const int64_t live = lanes - g < 0 ? 0 : (lanes - g < width ? lanes - g : width);
    for (int64_t k0 = 0; k0 < kc16; k0 += 16) {
      __m512 r[16];
#pragma GCC unroll 16
      for (int l = 0; l < 16; ++l)
        r[l] = l < live ? _mm512_loadu_ps(src + (g + l) * ld + k0) : _mm512_setzero_ps();
      transpose16(r);
#pragma GCC unroll 16
      for (int t = 0; t < 16; ++t) _mm512_mask_storeu_ps(dst + (k0 + t) * W + g, store_mask, r[t]);
    }
    for (int64_t k = kc16; k < kc; ++k)
      for (int l = 0; l < width; ++l) dst[k * W + g + l] = l < live ? src[(g + l) * ld + k] : 0.0f;
  }
}

}  // namespace

KernelSpecF32 avx512_kernel_f32() {
  constexpr int mr = kAvx512Rows, nv = kAvx512Cols / 16;
  static_assert(kAvx512Cols % 16 == 0, "a tile row is whole zmm vectors");
  static_assert(mr * nv + nv <= 32, "the tile must fit the 32 zmm registers");
  // kc = 512: a (512, 64) B panel (128 KiB) lives in L2, which feeds this
  // kernel at full speed, and deep blocks mean fewer passes over C. Measured on
  // Zen 5 with 2 threads: kc 512 beat 128 by ~5% at 1024^3; mc 96..192 and
  // nc 256..1024 were within noise of each other.
  return {"avx512", mr, 16 * nv, 512, 96, 512,
          &kernel<mr, nv>, &pack_transposed<mr>, &pack_transposed<16 * nv>, &kernel_strided<mr, nv>};
}

}  // namespace heed::cpu::gemm_detail
