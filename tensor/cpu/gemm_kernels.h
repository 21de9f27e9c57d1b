#pragma once
// Private to the CPU GEMM: the contract between the driver (gemm.cpp) and the
// micro-kernels in gemm_avx2.cpp / gemm_avx512.cpp.
//
// This header is included by files compiled with -mavx2 / -mavx512f, so it must
// define no inline function or template that the driver also instantiates: the
// linker would keep one copy, possibly the AVX-512 one, for every caller.
#include <cstdint>

namespace heed::cpu::gemm_detail {

// A micro-kernel computes one MR x NR tile of C from two packed panels:
//   a  (kc, MR)  a[k*MR + r] = A[i0 + r, k]
//   b  (kc, NR)  b[k*NR + j] = B[k, j0 + j], 64-byte aligned
//   c  (MR, NR)  element (r, j) at c[r*rsc + j]
// c = alpha * sum_k a[k,r] * b[k,j] + beta * c, k ascending, one fused or
// unfused multiply-add per k; beta == 0: c is not read.
// The tile is always full: the driver pads panels with zeros and routes partial
// tiles through a scratch tile, so each element's arithmetic never depends on
// where the tile sits.
//
// The packing of an operand whose k elements are contiguous (row-major A,
// column-major B) is a transpose; a kernel may bring a SIMD one:
//   dst[k*width + l] = src[l*ld + k]  for l < lanes,  0 for lanes <= l < width
// (width is MR for A, NR for B; dst is 64-byte aligned, as for the kernel.)
// A kernel may also come in a strided form, the same arithmetic on panels a
// stride apart: a[k*lda + r], b[k*ldb + j] (lda = MR, ldb = NR is the packed
// kernel; b need not be aligned). The driver then reads operands whose panels
// are already in memory (column-major A, row-major B) in place.
template <typename T>
struct KernelSpec {
  using Kernel = void (*)(int64_t kc, const T* a, const T* b, T* c, int64_t rsc, T alpha, T beta);
  using StridedKernel = void (*)(int64_t kc, const T* a, int64_t lda, const T* b, int64_t ldb, T* c, int64_t rsc,
                                 T alpha, T beta);
  using PackTransposed = void (*)(T* dst, const T* src, int64_t ld, int64_t lanes, int64_t kc);
  // A panel of k pairs (the bf16 kernel): for any strides,
  //   word[p*W + l] = bf16(src[l*ls + 2p*ks]) | bf16(src[l*ls + (2p+1)*ks]) << 16
  // for l < lanes and k < kc, 0 beyond; the panel is ceil(kc / 2) words deep.
  using PackPairs = void (*)(T* dst, const T* src, int64_t ls, int64_t ks, int64_t lanes, int64_t kc);

  const char* name;
  int mr, nr;  // the tile
  int kc;      // depth of a K block: each (kc, nr) B panel is reused from L1/L2 by a task's A panels
  int mc;      // rows of C per task: the task packs their (mc, kc) A block, which stays in L2
  int nc;      // columns of C per task (both halved when there are too few tasks)
  Kernel run;
  PackTransposed pack_a_rows;  // width MR, for csa == 1; null: the driver's plain loop
  PackTransposed pack_b_cols;  // width NR, for rsb == 1; null: the driver's plain loop
  StridedKernel run_strided = nullptr;  // null: operands are always packed
  // Both set for a kernel that reads k pairs (then every panel is packed by
  // them), neither for the others:
  PackPairs pack_a_pairs = nullptr;  // width MR
  PackPairs pack_b_pairs = nullptr;  // width NR
};

using KernelSpecF32 = KernelSpec<float>;
using KernelSpecF64 = KernelSpec<double>;

// Tile shapes, known to the driver at compile time so that its packing loops
// are specialised for them.
constexpr int kAvx512Rows = 6, kAvx512Cols = 64;
constexpr int kAvx2Rows = 6, kAvx2Cols = 16;

// Defined in the SIMD files. Call only on a CPU that has the instructions.
KernelSpecF32 avx512_kernel_f32();
KernelSpecF32 avx2_kernel_f32();
// float32 products of bf16-rounded inputs (gemm_avx512bf16.cpp): needs
// AVX512-BF16 as well as the avx512 kernel's instructions.
KernelSpecF32 avx512bf16_kernel_f32();

}  // namespace heed::cpu::gemm_detail
