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

// dst (kc, MR): dst[k*MR + r] = A[r, k] for r < rows, 0 beyond. a points at A[i0, p0].
template <typename T, int MR>
void pack_a_panel(const KernelSpec<T>& spec, T* dst, const T* a, int64_t rsa, int64_t csa,
                  int64_t rows, int64_t kc) {
  if (csa == 1 && spec.pack_a_rows != nullptr) {
    spec.pack_a_rows(dst, a, rsa, rows, kc);
  } else if (rows == MR && rsa == 1) {  // column-major A: each k is MR contiguous values
    for (int64_t k = 0; k < kc; ++k)
      for (int r = 0; r < MR; ++r) dst[k * MR + r] = a[k * csa + r];
  } else if (rows == MR && csa == 1) {  // row-major A: read each row once, in order
    for (int r = 0; r < MR; ++r) {
      const T* src = a + r * rsa;
      for (int64_t k = 0; k < kc; ++k) dst[k * MR + r] = src[k];
    }
  } else {
    for (int64_t k = 0; k < kc; ++k) {
      for (int64_t r = 0; r < rows; ++r) dst[k * MR + r] = a[r * rsa + k * csa];
      for (int64_t r = rows; r < MR; ++r) dst[k * MR + r] = T(0);
    }
  }
}

// dst (kc, NR): dst[k*NR + j] = B[k, j] for j < cols, 0 beyond. b points at B[p0, j0].
template <typename T, int NR>
void pack_b_panel(const KernelSpec<T>& spec, T* dst, const T* b, int64_t rsb, int64_t csb,
                  int64_t cols, int64_t kc) {
  if (cols == NR && csb == 1) {  // row-major B: each k is NR contiguous values
    for (int64_t k = 0; k < kc; ++k)
      for (int j = 0; j < NR; ++j) dst[k * NR + j] = b[k * rsb + j];
  } else if (rsb == 1 && spec.pack_b_cols != nullptr) {
    spec.pack_b_cols(dst, b, csb, cols, kc);
  } else if (cols == NR && rsb == 1) {  // column-major B (x W^T): read each column in order
    for (int j = 0; j < NR; ++j) {
      const T* src = b + j * csb;
      for (int64_t k = 0; k < kc; ++k) dst[k * NR + j] = src[k];
    }
  } else {
    for (int64_t k = 0; k < kc; ++k) {
      for (int64_t j = 0; j < cols; ++j) dst[k * NR + j] = b[k * rsb + j * csb];
      for (int64_t j = cols; j < NR; ++j) dst[k * NR + j] = T(0);
    }
  }
}

// Panels [p_begin, p_end) of a block: panel p goes to dst + p*MR*kc. a points at
// A[i0, p0] and the block has `rows` rows (its last panel may be partial).
template <typename T, int MR>
void pack_a_panels(const KernelSpec<T>& spec, T* dst, const T* a, int64_t rsa, int64_t csa,
                   int64_t rows, int64_t p_begin, int64_t p_end, int64_t kc) {
  const int64_t full_end = std::min(p_end, rows / MR);
  if (rsa == 1 && csa != 1 && p_begin < full_end) {
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
  for (int64_t p = p_begin; p < p_end; ++p)
    pack_a_panel<T, MR>(spec, dst + p * MR * kc, a + p * MR * rsa, rsa, csa,
                        std::min<int64_t>(MR, rows - p * MR), kc);
}

// Panels [p_begin, p_end) of a block: panel p goes to dst + p*NR*kc. b points at
// B[p0, j0] and the block has `cols` columns (its last panel may be partial).
template <typename T, int NR>
void pack_b_panels(const KernelSpec<T>& spec, T* dst, const T* b, int64_t rsb, int64_t csb,
                   int64_t cols, int64_t p_begin, int64_t p_end, int64_t kc) {
  const int64_t full_end = std::min(p_end, cols / NR);
  if (csb == 1 && rsb != 1 && p_begin < full_end) {
    // Row-major B: walk each row once, a long contiguous read (panel by panel
    // would jump a whole row stride per NR values), dealing NR-wide pieces.
    for (int64_t k = 0; k < kc; ++k) {
      const T* row = b + k * rsb;
      for (int64_t p = p_begin; p < full_end; ++p)
        for (int j = 0; j < NR; ++j) dst[p * NR * kc + k * NR + j] = row[p * NR + j];
    }
    p_begin = full_end;
  }
  for (int64_t p = p_begin; p < p_end; ++p)
    pack_b_panel<T, NR>(spec, dst + p * NR * kc, b + p * NR * csb, rsb, csb,
                        std::min<int64_t>(NR, cols - p * NR), kc);
}

}  // namespace heed::cpu::gemm_detail
