#pragma once
// The strided N-d offset calculator of the CUDA elementwise kernels.
//
// An elementwise kernel visits every element of one shape once. Each of its
// operands (at most 4: the output first, then the inputs) has its own strides:
// transposed, sliced, expanded with stride 0. A StridedIndexer maps a flat
// index i in [0, numel) to every operand's element offset, so a thread needs
// nothing but i.
//
// Building one does what make_plan in tensor/cpu/strided_loop.h does:
//  - size-1 dims are dropped (their stride never matters);
//  - the dims are put in the order of operand 0's strides, largest first, so
//    the innermost dim is the one the output is dense along and consecutive
//    threads write consecutive addresses even when the output is transposed
//    (reorder = false keeps the row-major order of the shape);
//  - a dim is merged into the one outside it when, in every operand, one step
//    of the outer dim equals a full sweep of the inner one.
// Contiguous operands thus become one dim, and their offsets need no division.
//
// The flat index is row-major over the merged (and reordered) dims, so it visits
// each element of the shape exactly once, in row-major order of the shape when
// nothing was reordered. offsets() runs on both sides (HEED_HD): the kernels
// call it on the GPU and tests/cuda_strided_test.cpp checks it on the CPU.
#include <cstdint>
#include <type_traits>

#include "tensor/hd.h"

namespace heed::cuda {

constexpr int kMaxIndexerDims = 16;     // dims left after merging
constexpr int kMaxIndexerInputDims = 64;  // dims of the shape given to make_strided_indexer

template <int N>
struct StridedIndexer {
  static_assert(N >= 1 && N <= 4, "an elementwise kernel has 1 to 4 operands");

  int ndim = 1;                               // >= 1 after building
  int64_t numel = 0;
  int64_t sizes[kMaxIndexerDims] = {};        // outermost first
  int64_t strides[kMaxIndexerDims][N] = {};   // in elements: [dim][operand]

  // out[k] = element offset of operand k at flat index `linear` (0 <= linear < numel).
  // I is int32_t when fits_int32() (32-bit division is several times cheaper
  // on a GPU than 64-bit), else int64_t.
  template <class I>
  HEED_HD void offsets(I linear, I (&out)[N]) const {
    using U = std::make_unsigned_t<I>;
    U rest = static_cast<U>(linear);
    for (int k = 0; k < N; ++k) out[k] = 0;
    for (int d = ndim - 1; d > 0; --d) {
      const U size = static_cast<U>(sizes[d]);
      const U next = rest / size;
      const I index = static_cast<I>(rest - next * size);  // position along dim d
      for (int k = 0; k < N; ++k) out[k] += index * static_cast<I>(strides[d][k]);
      rest = next;
    }
    for (int k = 0; k < N; ++k) out[k] += static_cast<I>(rest) * static_cast<I>(strides[0][k]);
  }

  // True when every operand's offset is the flat index itself: all dense, in one order.
  HEED_HD bool contiguous() const {
    if (ndim != 1) return false;
    for (int k = 0; k < N; ++k)
      if (strides[0][k] != 1 && sizes[0] > 1) return false;
    return true;
  }

  // True when the flat index and every offset fit in int32_t, so offsets<int32_t> is exact.
  bool fits_int32() const {
    constexpr int64_t kMax = INT32_MAX;
    if (numel > kMax) return false;
    for (int k = 0; k < N; ++k) {
      int64_t reach = 0;  // the largest |offset| of operand k
      for (int d = 0; d < ndim; ++d) {
        const int64_t s = strides[d][k] < 0 ? -strides[d][k] : strides[d][k];
        if (sizes[d] > 1 && s > kMax) return false;
        reach += (sizes[d] - 1) * s;
        if (reach > kMax) return false;
      }
    }
    return true;
  }
};

// Builds the indexer of N operands of `shape` (ndim sizes; strides[k], k < N,
// points at operand k's ndim strides, in elements). Returns false, leaving `out`
// unspecified, when the shape has more than kMaxIndexerInputDims dims or more
// than kMaxIndexerDims remain after merging; the caller reports the error.
template <int N>
bool make_strided_indexer(int ndim, const int64_t* shape, const int64_t* const* strides, StridedIndexer<N>& out,
                          bool reorder = true) {
  if (ndim > kMaxIndexerInputDims) return false;
  out = StridedIndexer<N>{};
  out.numel = 1;
  for (int d = 0; d < ndim; ++d) out.numel *= shape[d];
  if (out.numel == 0) {  // nothing to visit; one empty dim
    out.ndim = 1;
    out.sizes[0] = 0;
    return true;
  }
  // The dims of size != 1, outermost first.
  int dims[kMaxIndexerInputDims];
  int nd = 0;
  for (int d = 0; d < ndim; ++d)
    if (shape[d] != 1) dims[nd++] = d;
  auto magnitude = [](int64_t s) { return s < 0 ? -s : s; };
  if (reorder) {
    // Stable insertion sort by operand 0's |stride|, largest first: dims with
    // equal strides (both 0, say) keep their order.
    for (int j = 1; j < nd; ++j) {
      const int d = dims[j];
      int i = j;
      for (; i > 0 && magnitude(strides[0][dims[i - 1]]) < magnitude(strides[0][d]); --i) dims[i] = dims[i - 1];
      dims[i] = d;
    }
  }
  // Merge each dim into the running outer one when a step of the outer dim is
  // a full sweep of this one in every operand.
  int m = 0;
  for (int j = 0; j < nd; ++j) {
    const int d = dims[j];
    bool merge = m > 0;
    for (int k = 0; k < N && merge; ++k) merge = out.strides[m - 1][k] == strides[k][d] * shape[d];
    if (merge) {
      out.sizes[m - 1] *= shape[d];
      for (int k = 0; k < N; ++k) out.strides[m - 1][k] = strides[k][d];
      continue;
    }
    if (m == kMaxIndexerDims) return false;
    out.sizes[m] = shape[d];
    for (int k = 0; k < N; ++k) out.strides[m][k] = strides[k][d];
    ++m;
  }
  if (m == 0) {  // a scalar, or every dim of size 1: one element at offset 0
    out.sizes[0] = 1;
    for (int k = 0; k < N; ++k) out.strides[0][k] = 1;
    m = 1;
  }
  out.ndim = m;
  return true;
}

}  // namespace heed::cuda
