#pragma once
// Pieces the AVX-512 micro-kernels share (gemm_avx512.cpp, gemm_avx512bf16.cpp):
// the 16 x 16 transpose of their packing, and the start and end of a tile.
// Include only from those files. Everything here has internal linkage (an
// unnamed namespace), so each file keeps its own copy compiled with its own
// instruction sets and the linker never swaps one for the other
// (gemm_kernels.h says why that matters).
#include <immintrin.h>

#include <cstdint>

namespace heed::cpu::gemm_detail {
namespace {

// Zeroes the MR x NV accumulators and fetches the C tile, so its rows (often
// 4 KiB apart, i.e. in one L1 set) arrive while the products run rather than
// stalling the stores at the end.
template <int MR, int NV>
inline __attribute__((always_inline)) void start_tile(__m512 (&acc)[MR][NV], const float* c, int64_t rsc) {
#pragma GCC unroll 16
  for (int r = 0; r < MR; ++r)
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) acc[r][v] = _mm512_setzero_ps();
#pragma GCC unroll 16
  for (int r = 0; r < MR; ++r) {
    _mm_prefetch(reinterpret_cast<const char*>(c + r * rsc), _MM_HINT_T0);
    _mm_prefetch(reinterpret_cast<const char*>(c + r * rsc + 16 * NV - 1), _MM_HINT_T0);
  }
}

// c = alpha * acc + beta * c (beta == 0: c is not read).
template <int MR, int NV>
inline __attribute__((always_inline)) void store_tile(const __m512 (&acc)[MR][NV], float* c, int64_t rsc, float alpha,
                                                      float beta) {
  const __m512 va = _mm512_set1_ps(alpha);
  if (beta == 0.0f) {
#pragma GCC unroll 16
    for (int r = 0; r < MR; ++r)
#pragma GCC unroll 4
      for (int v = 0; v < NV; ++v) _mm512_storeu_ps(c + r * rsc + 16 * v, _mm512_mul_ps(va, acc[r][v]));
  } else {
    const __m512 vb = _mm512_set1_ps(beta);
#pragma GCC unroll 16
    for (int r = 0; r < MR; ++r)
#pragma GCC unroll 4
      for (int v = 0; v < NV; ++v) {
        float* p = c + r * rsc + 16 * v;
        _mm512_storeu_ps(p, _mm512_fmadd_ps(va, acc[r][v], _mm512_mul_ps(vb, _mm512_loadu_ps(p))));
      }
  }
}

// In-register transpose of a 16 x 16 block of 32-bit values: r[i] holds row i
// on entry and column i on return. Three rounds of shuffles: 32-bit pairs,
// 64-bit pairs (after which 128-bit lane j of u[4q+c] holds rows 4q..4q+3 of
// column 4j+c), then two rounds of 128-bit lane shuffles that gather those
// four pieces.
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

}  // namespace
}  // namespace heed::cpu::gemm_detail
