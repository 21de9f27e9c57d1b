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

#include "tensor/cpu/gemm_kernels.h"


namespace heed::cpu::gemm_detail {
namespace {

// The tile, for panels a stride apart (kStrided: b unaligned); the packed
// kernel is the same code with lda = MR, ldb = 16 * NV.
template <int MR, int NV, bool kStrided>
inline __attribute__((always_inline)) void tile(int64_t kc, const float* a, int64_t lda, const float* b, int64_t ldb,
                                                float* c, int64_t rsc, float alpha, float beta) {
  __m512 acc[MR][NV];
#pragma GCC unroll 16
  for (int r = 0; r < MR; ++r)
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) acc[r][v] = _mm512_setzero_ps();

  // Fetch the C tile now so its rows (often 4 KiB apart, i.e. in one L1 set)
  // arrive while the FMAs run rather than stalling the stores at the end.
#pragma GCC unroll 16
  for (int r = 0; r < MR; ++r) {
    _mm_prefetch(reinterpret_cast<const char*>(c + r * rsc), _MM_HINT_T0);
    _mm_prefetch(reinterpret_cast<const char*>(c + r * rsc + 16 * NV - 1), _MM_HINT_T0);
  }

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

  __m512 va = _mm512_set1_ps(alpha);
  if (beta == 0.0f) {
#pragma GCC unroll 16
    for (int r = 0; r < MR; ++r)
#pragma GCC unroll 4
      for (int v = 0; v < NV; ++v) _mm512_storeu_ps(c + r * rsc + 16 * v, _mm512_mul_ps(va, acc[r][v]));
  } else {
    __m512 vb = _mm512_set1_ps(beta);
#pragma GCC unroll 16
    for (int r = 0; r < MR; ++r)
#pragma GCC unroll 4
      for (int v = 0; v < NV; ++v) {
        float* p = c + r * rsc + 16 * v;
        _mm512_storeu_ps(p, _mm512_fmadd_ps(va, acc[r][v], _mm512_mul_ps(vb, _mm512_loadu_ps(p))));
      }
  }
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

// In-register transpose of a 16 x 16 block: r[i] holds row i on entry and
// column i on return. Three rounds of shuffles: 32-bit pairs, 64-bit pairs
// (after which 128-bit lane j of u[4q+c] holds rows 4q..4q+3 of column 4j+c),
// then two rounds of 128-bit lane shuffles that gather those four pieces.
inline __attribute__((always_inline)) void transpose16(__m512 r[16]) {
  __m512 t[16];
#pragma GCC unroll 8
  for (int i = 0; i < 16; i += 2) {
    t[i] = _mm512_unpacklo_ps(r[i], r[i + 1]);
    t[i + 1] = _mm512_unpackhi_ps(r[i], r[i + 1]);
  }
  __m512 u[16];
#pragma GCC unroll 4
  for (int q = 0; q < 4; ++q) {
    __m512d t0 = _mm512_castps_pd(t[4 * q]), t1 = _mm512_castps_pd(t[4 * q + 1]);
    __m512d t2 = _mm512_castps_pd(t[4 * q + 2]), t3 = _mm512_castps_pd(t[4 * q + 3]);
    u[4 * q + 0] = _mm512_castpd_ps(_mm512_unpacklo_pd(t0, t2));
    u[4 * q + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(t0, t2));
    u[4 * q + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(t1, t3));
    u[4 * q + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(t1, t3));
  }
#pragma GCC unroll 4
  for (int c = 0; c < 4; ++c) {
    __m512 v0 = _mm512_shuffle_f32x4(u[c], u[4 + c], 0x88);
    __m512 v1 = _mm512_shuffle_f32x4(u[c], u[4 + c], 0xDD);
    __m512 w0 = _mm512_shuffle_f32x4(u[8 + c], u[12 + c], 0x88);
    __m512 w1 = _mm512_shuffle_f32x4(u[8 + c], u[12 + c], 0xDD);
    r[c] = _mm512_shuffle_f32x4(v0, w0, 0x88);
    r[4 + c] = _mm512_shuffle_f32x4(v1, w1, 0x88);
    r[8 + c] = _mm512_shuffle_f32x4(v0, w0, 0xDD);
    r[12 + c] = _mm512_shuffle_f32x4(v1, w1, 0xDD);
  }
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
