#pragma once
// How a batched product of strided row-major tensors becomes one cuBLAS
// strided-batched GEMM call (cuda/matmul.cpp). Plain host code, no CUDA
// headers, so tests/cuda_matmul_layout_test.cpp checks it on the CPU by
// running a column-major reference GEMM with the planned arguments.
//
// cuBLAS is column-major. A row-major [M, N] matrix with row stride ld is, to
// cuBLAS, the column-major [N, M] matrix with leading dimension ld: its
// transpose. So out = a b (row-major) is computed as out^T = b^T a^T, a
// column-major product with b first:
//   gemm(op_b, op_a, m = N, n = M, k = K, b, ld_b, a, ld_a, out, ld_out = N)
// where op_x is N (no transpose) when x is row-major (its column-major view is
// already x^T) and T when x is column-major (a transposed view, whose
// column-major view is x itself).
#include <cstdint>

namespace heed::cuda {

// One operand, a batch of [rows, cols] matrices, as cuBLAS can read it in place.
struct MatrixLayout {
  bool ok = false;        // false: neither row- nor column-major; copy it first
  bool col_major = false; // column-major storage (a transposed view): cuBLAS op T
  int64_t ld = 0;         // leading dimension (the stride between rows, or between columns)
  int64_t batch_stride = 0;
};

// A batch of [rows, cols] matrices with strides (batch_stride, row_stride,
// col_stride) in elements. A dim of size 1 has no meaningful stride, so it never
// prevents a layout. Batch strides may be anything, 0 included (a broadcast
// operand read by every product); a single product gets batch stride 0.
inline MatrixLayout matrix_layout(int64_t batch, int64_t rows, int64_t cols, int64_t batch_stride,
                                  int64_t row_stride, int64_t col_stride) {
  MatrixLayout l;
  l.batch_stride = batch > 1 ? batch_stride : 0;
  if (l.batch_stride < 0) return l;
  const int64_t min_row_ld = cols > 1 ? cols : 1, min_col_ld = rows > 1 ? rows : 1;
  // row-major: unit steps along a row, rows at least a row apart
  const int64_t rs = rows > 1 ? row_stride : min_row_ld, cs = cols > 1 ? col_stride : 1;
  if (cs == 1 && rs >= min_row_ld) {
    l.ok = true;
    l.ld = rs;
    return l;
  }
  // column-major: unit steps down a column, columns at least a column apart
  const int64_t rs2 = rows > 1 ? row_stride : 1, cs2 = cols > 1 ? col_stride : min_col_ld;
  if (rs2 == 1 && cs2 >= min_col_ld) {
    l.ok = true;
    l.col_major = true;
    l.ld = cs2;
  }
  return l;
}

// The arguments of cublasGemmStridedBatchedEx(_64) computing out [B, M, N] =
// a [B, M, K] x b [B, K, N] (row-major, contiguous out) as out^T = b^T a^T.
struct GemmPlan {
  MatrixLayout a, b;  // as read in place; ok false = that operand needs a contiguous copy
  bool transpose_first = false, transpose_second = false;  // cuBLAS op of b (first) and a (second)
  int64_t m = 0, n = 0, k = 0;  // cuBLAS m = N, n = M, k = K
  int64_t ld_first = 0, ld_second = 0, ld_out = 0;
  int64_t stride_first = 0, stride_second = 0, stride_out = 0;
  int64_t batch = 0;
};

// shapes and strides as [B, M, K], [B, K, N]; out is contiguous [B, M, N].
inline GemmPlan plan_gemm(const int64_t* a_shape, const int64_t* a_strides, const int64_t* b_shape,
                          const int64_t* b_strides) {
  GemmPlan p;
  const int64_t batch = a_shape[0], M = a_shape[1], K = a_shape[2], N = b_shape[2];
  p.a = matrix_layout(batch, M, K, a_strides[0], a_strides[1], a_strides[2]);
  p.b = matrix_layout(batch, K, N, b_strides[0], b_strides[1], b_strides[2]);
  p.transpose_first = p.b.col_major;
  p.transpose_second = p.a.col_major;
  p.m = N;
  p.n = M;
  p.k = K;
  p.ld_first = p.b.ld;
  p.ld_second = p.a.ld;
  p.ld_out = N > 1 ? N : 1;
  p.stride_first = p.b.batch_stride;
  p.stride_second = p.a.batch_stride;
  p.stride_out = batch > 1 ? M * N : 0;
  p.batch = batch;
  return p;
}

}  // namespace heed::cuda
