#pragma once
// Private to the CPU GEMM: copying A and B into the panels the micro-kernels
// read (layout in gemm_kernels.h). Packing reads through the strides, so this is
// where every operand layout is absorbed.
//
// Include from gemm.cpp only: these templates are compiled for the baseline
// ISA, and a copy instantiated in a SIMD file could replace them at link time.
#include <algorithm>
#include <cstdint>
#include <cstring>

#include "tensor/cpu/gemm_kernels.h"

namespace heed::cpu::gemm_detail {
// The depth of a packed panel in elements of T: kc, or ceil(kc / 2) words
// for a kernel of k pairs.
template <typename T>
inline int64_t panel_depth(const KernelSpec<T>& spec, int64_t kc) {
  return spec.pack_b_pairs != nullptr ? (kc + 1) / 2 : kc;
}

// One panel, of A or of B: dst (kc, W), dst[k*W + l] = src[l*ls + k*ks] for
// l < lanes, 0 beyond. `transposed` is the kernel's own packing for ks == 1
// (KernelSpec::pack_a_rows / pack_b_cols), or null.
template <typename T, int W>
void pack_panel(typename KernelSpec<T>::PackTransposed transposed, T* dst, const T* src, int64_t ls, int64_t ks,
                int64_t lanes, int64_t kc) {
  if (ks == 1 && transposed != nullptr) {
    transposed(dst, src, ls, lanes, kc);
  } else if (lanes == W && ls == 1) {  // each k is W contiguous values
    for (int64_t k = 0; k < kc; ++k)
      for (int l = 0; l < W; ++l) dst[k * W + l] = src[k * ks + l];
  } else if (lanes == W && ks == 1) {  // each lane is contiguous: read it once, in order
    for (int l = 0; l < W; ++l) {
      const T* lane = src + l * ls;
      for (int64_t k = 0; k < kc; ++k) dst[k * W + l] = lane[k];
    }
  } else {
    for (int64_t k = 0; k < kc; ++k) {
      for (int64_t l = 0; l < lanes; ++l) dst[k * W + l] = src[l * ls + k * ks];
      for (int64_t l = lanes; l < W; ++l) dst[k * W + l] = T(0);
    }
  }
}

// dst (kc, MR): dst[k*MR + r] = A[r, k] for r < rows, 0 beyond. a points at A[i0, p0].
template <typename T, int MR>
void pack_a_panel(const KernelSpec<T>& spec, T* dst, const T* a, int64_t rsa, int64_t csa,
                  int64_t rows, int64_t kc) {
  if (spec.pack_a_pairs != nullptr) return spec.pack_a_pairs(dst, a, rsa, csa, rows, kc);
  pack_panel<T, MR>(spec.pack_a_rows, dst, a, rsa, csa, rows, kc);
}

// dst (kc, NR): dst[k*NR + j] = B[k, j] for j < cols, 0 beyond. b points at B[p0, j0].
template <typename T, int NR>
void pack_b_panel(const KernelSpec<T>& spec, T* dst, const T* b, int64_t rsb, int64_t csb,
                  int64_t cols, int64_t kc) {
  if (spec.pack_b_pairs != nullptr) return spec.pack_b_pairs(dst, b, csb, rsb, cols, kc);
  pack_panel<T, NR>(spec.pack_b_cols, dst, b, csb, rsb, cols, kc);
}

// Panels [p_begin, p_end) of pairs (panel p at dst + p*W*depth) from an
// operand whose lanes are contiguous and whose k values are ks apart (a
// column-major A, a row-major B): kChunk k values at a time across every
// panel, so each row of the source is read from memory once rather than once
// per panel. A chunk's pairs start kChunk / 2 words down each panel.
template <typename T, int W>
void pack_pairs_by_chunks(typename KernelSpec<T>::PackPairs pack, T* dst, const T* src, int64_t ks, int64_t lanes,
                          int64_t p_begin, int64_t p_end, int64_t kc, int64_t depth) {
  constexpr int64_t kChunk = 32;
  for (int64_t k0 = 0; k0 < kc; k0 += kChunk)
    for (int64_t p = p_begin; p < p_end; ++p)
      pack(dst + p * W * depth + k0 / 2 * W, src + k0 * ks + p * W, 1, ks, std::min<int64_t>(W, lanes - p * W),
           std::min(kChunk, kc - k0));
}

// Panels [p_begin, p_end) of a block: panel p goes to dst + p*MR*depth
// (depth = panel_depth(spec, kc)). a points at A[i0, p0] and the block has
// `rows` rows (its last panel may be partial).
template <typename T, int MR>
void pack_a_panels(const KernelSpec<T>& spec, T* dst, const T* a, int64_t rsa, int64_t csa,
                   int64_t rows, int64_t p_begin, int64_t p_end, int64_t kc) {
  const int64_t full_end = std::min(p_end, rows / MR), depth = panel_depth(spec, kc);
  if (rsa == 1 && csa != 1 && p_begin < full_end && spec.pack_a_pairs == nullptr) {
    // Column-major A: read kChunk columns end to end (they then stay in L1),
    // and deal them to the panels, kChunk * MR contiguous values each. Whole
    // columns at a time wrote to every panel's page per column and stalled
    // on the TLB; panel by panel read each column in MR-long pieces.
    constexpr int64_t kChunk = 16;
    for (int64_t k0 = 0; k0 < kc; k0 += kChunk) {
      const int64_t k1 = std::min(kc, k0 + kChunk);
      for (int64_t p = p_begin; p < full_end; ++p)
        for (int64_t k = k0; k < k1; ++k) std::memcpy(dst + p * MR * kc + k * MR, a + k * csa + p * MR, MR * sizeof(T));
    }
    p_begin = full_end;
  }
  if (rsa == 1 && csa != 1 && spec.pack_a_pairs != nullptr)
    return pack_pairs_by_chunks<T, MR>(spec.pack_a_pairs, dst, a, csa, rows, p_begin, p_end, kc, depth);
  for (int64_t p = p_begin; p < p_end; ++p)
    pack_a_panel<T, MR>(spec, dst + p * MR * depth, a + p * MR * rsa, rsa, csa,
                        std::min<int64_t>(MR, rows - p * MR), kc);
}

// Panels [p_begin, p_end) of a block: panel p goes to dst + p*NR*depth
// (depth = panel_depth(spec, kc)). b points at B[p0, j0] and the block has
// `cols` columns (its last panel may be partial).
template <typename T, int NR>
void pack_b_panels(const KernelSpec<T>& spec, T* dst, const T* b, int64_t rsb, int64_t csb,
                   int64_t cols, int64_t p_begin, int64_t p_end, int64_t kc) {
  const int64_t full_end = std::min(p_end, cols / NR), depth = panel_depth(spec, kc);
  if (csb == 1 && rsb != 1 && p_begin < full_end && spec.pack_b_pairs == nullptr) {
    // Row-major B: walk each row once, a long contiguous read (panel by panel
    // would jump a whole row stride per NR values), dealing NR-wide pieces.
    for (int64_t k = 0; k < kc; ++k) {
      const T* row = b + k * rsb;
      for (int64_t p = p_begin; p < full_end; ++p)
        for (int j = 0; j < NR; ++j) dst[p * NR * kc + k * NR + j] = row[p * NR + j];
    }
    p_begin = full_end;
  }
  if (csb == 1 && rsb != 1 && spec.pack_b_pairs != nullptr)
    return pack_pairs_by_chunks<T, NR>(spec.pack_b_pairs, dst, b, rsb, cols, p_begin, p_end, kc, depth);
  for (int64_t p = p_begin; p < p_end; ++p)
    pack_b_panel<T, NR>(spec, dst + p * NR * depth, b + p * NR * csb, rsb, csb,
                        std::min<int64_t>(NR, cols - p * NR), kc);
}

}  // namespace heed::cpu::gemm_detail
