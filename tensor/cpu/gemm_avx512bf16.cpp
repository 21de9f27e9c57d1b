// The AVX512-BF16 micro-kernel for float32 products with bfloat16 inputs
// (set_allow_bf16_matmul) and its packing (compiled with -mavx512bf16 and the
// AVX-512 flags; see gemm_kernels.h).
//
// vdpbf16ps multiplies 16 pairs of bf16 values and adds both products to 16
// float32 sums: twice the float32 FMA's multiply-adds per instruction, at the
// same rate (Zen 5: 464 against 229 GFLOP/s on one core). So the panels hold
// pairs: element (k, l) and (k + 1, l) of an operand, rounded to bf16 (to
// nearest, ties to even), share one 32-bit word, low half first, and a panel
// of depth kc is ceil(kc / 2) words deep (panel_depth). Each sum adds its
// products k-pair by k-pair in ascending order, so results are the same for
// any number of threads, as with the float kernels.
//
// The tile is the float kernel's, 6 x 64: 24 zmm sums, 4 zmm of B pairs, A's
// pair for a row broadcast from memory.
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>

#include <cstring>

#include "tensor/cpu/gemm_avx512_tile.h"
#include "tensor/cpu/gemm_kernels.h"

namespace heed::cpu::gemm_detail {
namespace {

// Round to nearest, ties to even, as vcvtne2ps2bf16 does (NaN stays a quiet
// NaN). A local copy: an inline function shared with the driver could be
// replaced at link time by this file's AVX-512 build (gemm_kernels.h).
uint32_t bf16_bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, sizeof u);
  if ((u & 0x7fffffffu) > 0x7f800000u) return (u >> 16) | 0x0040u;
  u += 0x7fffu + ((u >> 16) & 1u);
  return u >> 16;
}

uint32_t pair_of(float lo, float hi) { return bf16_bits(lo) | (bf16_bits(hi) << 16); }

template <int MR, int NV>
void kernel(int64_t kc, const float* a_panel, const float* b_panel, float* c, int64_t rsc, float alpha, float beta) {
  const uint32_t* a = reinterpret_cast<const uint32_t*>(a_panel);
  const char* b = reinterpret_cast<const char*>(b_panel);
  __m512 acc[MR][NV];
  start_tile(acc, c, rsc);

  const int64_t depth = (kc + 1) / 2;
  for (int64_t k = 0; k < depth; ++k) {
    __m512bh row[NV];
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) row[v] = (__m512bh)_mm512_load_si512(b + 64 * v);
#pragma GCC unroll 16
    for (int r = 0; r < MR; ++r) {
      const __m512bh ar = (__m512bh)_mm512_set1_epi32(static_cast<int>(a[r]));
#pragma GCC unroll 4
      for (int v = 0; v < NV; ++v) acc[r][v] = _mm512_dpbf16_ps(acc[r][v], ar, row[v]);
    }
    a += MR;
    b += 64 * NV;
  }

  store_tile(acc, c, rsc, alpha, beta);
}

__mmask16 first_lanes(int64_t n) {
  return n >= 16 ? __mmask16(0xffff) : n <= 0 ? __mmask16(0) : static_cast<__mmask16>((1u << n) - 1);
}

// One panel of pairs, W lanes wide (the PackPairs contract in gemm_kernels.h):
//   word[p*W + l] = pair(src[l*ls + 2p*ks], src[l*ls + (2p+1)*ks])
// for l < lanes and 2p + 1 < kc; a missing k (odd kc) or lane is 0.
template <int W>
void pack_pairs(float* dst_panel, const float* src, int64_t ls, int64_t ks, int64_t lanes, int64_t kc) {
  uint32_t* dst = reinterpret_cast<uint32_t*>(dst_panel);
  float* dst_f = dst_panel;  // the same words, for float stores
  const int64_t depth = (kc + 1) / 2;
  if (ks == 1) {
    // Each lane's k values are contiguous: 32 of them become 16 pairs in one
    // conversion, and a 16 x 16 transpose deals the pairs of 16 lanes to
    // their places.
    for (int g = 0; g < W; g += 16) {
      const int width = W - g < 16 ? W - g : 16;
      const __mmask16 store = first_lanes(width);
      const int64_t live = lanes - g < 0 ? 0 : (lanes - g < width ? lanes - g : width);
      for (int64_t p0 = 0; p0 < depth; p0 += 16) {
        const int64_t k0 = 2 * p0;
        const __mmask16 lo = first_lanes(kc - k0), hi = first_lanes(kc - k0 - 16);
        __m512 r[16];  // 16 words of pairs per lane (as floats, for the transpose)
#pragma GCC unroll 16
        for (int l = 0; l < 16; ++l) {
          if (l < live) {
            const float* s = src + (g + l) * ls + k0;
            r[l] = (__m512)_mm512_cvtne2ps_pbh(_mm512_maskz_loadu_ps(hi, s + 16), _mm512_maskz_loadu_ps(lo, s));
          } else {
            r[l] = _mm512_setzero_ps();
          }
        }
        transpose16(r);
        const int64_t rows = depth - p0 < 16 ? depth - p0 : 16;
        for (int64_t t = 0; t < rows; ++t) _mm512_mask_storeu_ps(dst_f + (p0 + t) * W + g, store, r[t]);
      }
    }
    return;
  }
  if (ls == 1) {
    // Each k is `lanes` contiguous values: convert rows k and k + 1 together
    // and interleave their halves into pairs.
    alignas(64) static const short kInterleave[32] = {0, 16, 1, 17, 2,  18, 3,  19, 4,  20, 5,  21, 6,  22, 7,  23,
                                                      8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31};
    const __m512i interleave = _mm512_load_si512(kInterleave);
    for (int64_t p = 0; p < depth; ++p) {
      const float* k0 = src + 2 * p * ks;
      const bool has_k1 = 2 * p + 1 < kc;
      for (int g = 0; g < W; g += 16) {
        const int width = W - g < 16 ? W - g : 16;
        const __mmask16 load = first_lanes(lanes - g), store = first_lanes(width);
        const __m512 x0 = _mm512_maskz_loadu_ps(load, k0 + g);
        const __m512 x1 = has_k1 ? _mm512_maskz_loadu_ps(load, k0 + ks + g) : _mm512_setzero_ps();
        const __m512i halves = (__m512i)_mm512_cvtne2ps_pbh(x1, x0);  // x0's 16 bf16, then x1's
        _mm512_mask_storeu_epi32(dst + p * W + g, store, _mm512_permutexvar_epi16(interleave, halves));
      }
    }
    return;
  }
  for (int64_t p = 0; p < depth; ++p)
    for (int64_t l = 0; l < W; ++l) {
      const bool live = l < lanes, has_k1 = 2 * p + 1 < kc;
      dst[p * W + l] = live ? pair_of(src[l * ls + 2 * p * ks], has_k1 ? src[l * ls + (2 * p + 1) * ks] : 0.0f) : 0u;
    }
}

}  // namespace

KernelSpecF32 avx512bf16_kernel_f32() {
  constexpr int mr = kAvx512Rows, nv = kAvx512Cols / 16;
  // kc = 2048 k values, 1024 words: a (kc, 64) B panel is 256 KiB, held by
  // L2, and a weight gradient over 2048 tokens is one K block, not two.
  KernelSpecF32 spec{"avx512bf16", mr, 16 * nv, 2048, 96, 512, &kernel<mr, nv>, nullptr, nullptr, nullptr};
  spec.pack_a_pairs = &pack_pairs<mr>;
  spec.pack_b_pairs = &pack_pairs<16 * nv>;
  return spec;
}

}  // namespace heed::cpu::gemm_detail
