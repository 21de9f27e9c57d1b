// The elementwise kernels of the CUDA backend: copy (strided, casting), fill,
// unary, binary and where. cuda/elementwise.cpp checks the tensors and installs
// the op-table slots; this file only launches kernels.
//
// Design
//  - One kernel family for every op. An op is a small functor (a UnaryFn,
//    BinaryFn, CastFn, WhereFn or FillFn of tensor/elementwise_formulas.h) applied to
//    each element: out = op(in...), with 0 to 3 inputs. The formulas live in
//    that header, HEED_HD, so a CPU test runs them against the CPU backend.
//  - Operands may be strided (transposed, sliced, expanded with stride 0). A
//    StridedIndexer (cuda/strided.h), built on the host, merges the dims that
//    are contiguous in every operand and maps a flat index to each operand's
//    element offset; thread i of the grid-stride loop handles flat indices
//    i, i + grid, ... so neighbouring threads touch neighbouring elements of
//    the output (the indexer orders dims by the output's strides).
//  - Three kernels per op and dtype: map_contiguous when every operand is
//    dense (no index math: out[i] = op(in[i]...)); map_strided<int32_t> when
//    every offset fits in 32 bits (32-bit division is several times cheaper
//    than 64-bit on a GPU); map_strided<int64_t> otherwise.
//  - The op is chosen on the host (dispatch_unary / dispatch_binary turn the
//    run-time op into a template argument), so each kernel is straight-line
//    code for one formula; ops the CPU does not define for a dtype are never
//    instantiated (the caller has already refused them).
//  - Integer division by zero and a negative integer power cannot throw on the
//    GPU: the formula writes the fault into a two-int64 error cell, which the
//    caller reads back after the kernel and turns into the CPU's heed::Error.
//  - Everything runs on the current device's legacy default stream; each
//    launch is followed by HEED_CUDA_CHECK(cudaGetLastError()).
// Transfers between the host and a GPU, or between two GPUs, are not kernels:
// cuda/elementwise.cpp stages them through contiguous tensors and
// cuda/copy_staging.cpp (pinned host buffers for large transfers).
#include <algorithm>
#include <cstdint>
#include <stdexcept>
#include <utility>

#include "cuda/check.h"
#include "cuda/grid.h"
#include "tensor/elementwise_formulas.h"
#include "cuda/kernels.h"
#include "cuda/strided.h"

namespace heed::cuda {

namespace {


// out[i] = op(in[i]...) for i in [0, n): every operand dense.
template <class Op, class Out, class... In>
__global__ void map_contiguous_kernel(int64_t n, Op op, Out* out, const In*... in) {
  const int64_t step = static_cast<int64_t>(blockDim.x) * gridDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += step)
    out[i] = op(in[i]...);
}

// out[off[0]] = op(in_0[off[1]], in_1[off[2]], ...).
template <class Op, class Out, class I, class... In, size_t... Is>
__device__ __forceinline__ void apply_at(const Op& op, Out* out, const I* off, std::index_sequence<Is...>,
                                         const In*... in) {
  out[off[0]] = op(in[off[Is + 1]]...);
}

// The same over any strides: the indexer maps flat index i to each operand's offset.
template <class I, class Op, class Out, class... In>
__global__ void map_strided_kernel(StridedIndexer<1 + sizeof...(In)> index, Op op, Out* out, const In*... in) {
  const int64_t n = index.numel;
  const int64_t step = static_cast<int64_t>(blockDim.x) * gridDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += step) {
    I off[1 + sizeof...(In)];
    index.offsets(static_cast<I>(i), off);
    apply_at(op, out, off, std::index_sequence_for<In...>{}, in...);
  }
}

// Runs op over the indexer's elements with the cheapest kernel that fits.
template <int N, class Op, class Out, class... In>
void launch_map(const StridedIndexer<N>& index, const Op& op, Out* out, const In*... in) {
  static_assert(N == 1 + static_cast<int>(sizeof...(In)), "one stride set per operand");
  const int64_t n = index.numel;
  if (n <= 0) return;
  const unsigned blocks = grid_stride_blocks(n);
  if (index.contiguous()) {
    map_contiguous_kernel<<<blocks, kGridStrideThreads>>>(n, op, out, in...);
  } else if (index.fits_int32()) {
    map_strided_kernel<int32_t><<<blocks, kGridStrideThreads>>>(index, op, out, in...);
  } else {
    map_strided_kernel<int64_t><<<blocks, kGridStrideThreads>>>(index, op, out, in...);
  }
  HEED_CUDA_CHECK(cudaGetLastError());
}

}  // namespace

template <class T>
void launch_fill_strided(const StridedIndexer<1>& index, T* dst, T value) {
  launch_map(index, FillFn<T>{value}, dst);
}

template <class D, class S>
void launch_copy(const StridedIndexer<2>& index, D* dst, const S* src) {
  launch_map(index, CastFn<D, S>{}, dst, src);
}

template <class T>
void launch_unary(UnaryOp op, const StridedIndexer<2>& index, void* out, const T* x, double a, double b) {
  dispatch_unary(op, [&](auto kind) {
    constexpr UnaryOp K = decltype(kind)::value;
    if constexpr (unary_defined<T>(K)) {
      using Fn = UnaryFn<K, T>;
      launch_map(index, make_unary_fn<K, T>(a, b), static_cast<typename Fn::Out*>(out), x);
    } else {
      throw std::logic_error("heed::cuda::launch_unary: op not defined for this dtype (the caller checks)");
    }
  });
}

template <class T>
void launch_binary(BinaryOp op, const StridedIndexer<3>& index, void* out, const T* x, const T* y,
                   int64_t* error) {
  dispatch_binary(op, [&](auto kind) {
    constexpr BinaryOp K = decltype(kind)::value;
    if constexpr (binary_defined<T>(K)) {
      using Fn = BinaryFn<K, T>;
      if (binary_may_fail<T>(K) && error == nullptr)
        throw std::logic_error("heed::cuda::launch_binary: integer div and pow need an error cell");
      launch_map(index, Fn{error}, static_cast<typename Fn::Out*>(out), x, y);
    } else {
      throw std::logic_error("heed::cuda::launch_binary: op not defined for this dtype (the caller checks)");
    }
  });
}

template <class T>
void launch_where(const StridedIndexer<4>& index, T* out, const uint8_t* cond, const T* x, const T* y) {
  launch_map(index, WhereFn<T>{}, out, cond, x, y);
}

// ---- instantiations for the six dtypes --------------------------------------------

#define HEED_FOR_EACH_DTYPE(X) X(float) X(double) X(int64_t) X(uint8_t) X(bool) X(bfloat16)

#define HEED_INSTANTIATE_ONE_TYPE(T)                                                                      \
  template void launch_fill_strided<T>(const StridedIndexer<1>&, T*, T);                                 \
  template void launch_unary<T>(UnaryOp, const StridedIndexer<2>&, void*, const T*, double, double);   \
  template void launch_binary<T>(BinaryOp, const StridedIndexer<3>&, void*, const T*, const T*, int64_t*); \
  template void launch_where<T>(const StridedIndexer<4>&, T*, const uint8_t*, const T*, const T*);
HEED_FOR_EACH_DTYPE(HEED_INSTANTIATE_ONE_TYPE)
#undef HEED_INSTANTIATE_ONE_TYPE

#define HEED_INSTANTIATE_COPY(D, S) template void launch_copy<D, S>(const StridedIndexer<2>&, D*, const S*);
#define HEED_INSTANTIATE_COPY_FROM_FLOAT(D) HEED_INSTANTIATE_COPY(D, float)
#define HEED_INSTANTIATE_COPY_FROM_DOUBLE(D) HEED_INSTANTIATE_COPY(D, double)
#define HEED_INSTANTIATE_COPY_FROM_INT64(D) HEED_INSTANTIATE_COPY(D, int64_t)
#define HEED_INSTANTIATE_COPY_FROM_UINT8(D) HEED_INSTANTIATE_COPY(D, uint8_t)
#define HEED_INSTANTIATE_COPY_FROM_BOOL(D) HEED_INSTANTIATE_COPY(D, bool)
#define HEED_INSTANTIATE_COPY_FROM_BFLOAT16(D) HEED_INSTANTIATE_COPY(D, bfloat16)
HEED_FOR_EACH_DTYPE(HEED_INSTANTIATE_COPY_FROM_FLOAT)
HEED_FOR_EACH_DTYPE(HEED_INSTANTIATE_COPY_FROM_DOUBLE)
HEED_FOR_EACH_DTYPE(HEED_INSTANTIATE_COPY_FROM_INT64)
HEED_FOR_EACH_DTYPE(HEED_INSTANTIATE_COPY_FROM_UINT8)
HEED_FOR_EACH_DTYPE(HEED_INSTANTIATE_COPY_FROM_BOOL)
HEED_FOR_EACH_DTYPE(HEED_INSTANTIATE_COPY_FROM_BFLOAT16)

}  // namespace heed::cuda
