// The CUDA op table's copy (strided, casting, across devices), fill, unary,
// binary and where: argument checks and dispatch here, the kernels in
// cuda/elementwise.cu (whose header comment gives the design), host<->device
// byte transfers in cuda/copy_staging.cpp.
#include <array>

#include <cuda_runtime_api.h>

#include "cuda/check.h"
#include "cuda/copy_staging.h"
#include "cuda/device.h"
#include "tensor/elementwise_formulas.h"
#include "cuda/kernels.h"
#include "cuda/row_parts.h"
#include "tensor/error.h"
#include "tensor/ops.h"

namespace heed::cuda {

namespace {

// The indexer of N operands of `shape`, operand 0 the output.
template <int N>
StridedIndexer<N> indexer_of(const char* op, const Shape& shape, const std::array<const Tensor*, N>& operands) {
  const int64_t* strides[N];
  for (int k = 0; k < N; ++k) strides[k] = operands[k]->strides().data();
  StridedIndexer<N> index;
  HEED_CHECK(make_strided_indexer<N>(static_cast<int>(shape.size()), shape.data(), strides, index),
             "cuda {}: tensors of shape {} whose strides leave more than {} dims that cannot be merged "
             "(make them contiguous first)",
             op, shape_str(shape), kMaxIndexerDims);
  return index;
}

// ---- copy ------------------------------------------------------------------------

// src to dst, both on one GPU, any strides, casting the dtype.
void copy_on_device(const Tensor& src, const Tensor& dst) {
  DeviceGuard guard(dst.device().index);
  if (src.dtype() == dst.dtype() && src.is_contiguous() && dst.is_contiguous()) {
    const size_t nbytes = static_cast<size_t>(dst.numel()) * dtype_size(dst.dtype());
    HEED_CUDA_CHECK(cudaMemcpyAsync(dst.raw_data(), src.raw_data(), nbytes, cudaMemcpyDeviceToDevice, 0));
    return;
  }
  const auto index = indexer_of<2>("copy", dst.shape(), {&dst, &src});
  dispatch_dtype(src.dtype(), [&](auto s) {
    using S = decltype(s);
    dispatch_dtype(dst.dtype(), [&](auto d) {
      using D = decltype(d);
      launch_copy<D, S>(index, static_cast<D*>(dst.raw_data()), static_cast<const S*>(src.raw_data()));
    });
  });
}

// src to dst on one device, CPU or GPU.
void copy_within(const Tensor& src, const Tensor& dst) {
  if (dst.device().is_cpu()) return backend(DeviceType::CPU).copy(src, dst);
  copy_on_device(src, dst);
}

// A contiguous tensor of `dtype` on t's own device with t's values: t itself
// when it already is one.
Tensor dense_on_own_device(const Tensor& t, DType dtype) {
  if (t.is_contiguous() && t.dtype() == dtype) return t;
  Tensor out = empty(t.shape(), dtype, t.device());
  copy_within(t, out);
  return out;
}

// The bytes of contiguous `from` into contiguous `to` (same dtype and size) on
// another device: host to GPU, GPU to host, or GPU to GPU.
void move_bytes(const Tensor& from, const Tensor& to) {
  const size_t nbytes = static_cast<size_t>(from.numel()) * dtype_size(from.dtype());
  const Device a = from.device(), b = to.device();
  if (a.is_cuda() && b.is_cuda()) {
    // Ordered after the work queued on both GPUs and before the work queued next.
    HEED_CUDA_CHECK(cudaMemcpyPeer(to.raw_data(), b.index, from.raw_data(), a.index, nbytes));
  } else if (a.is_cpu()) {
    copy_host_to_device(to.raw_data(), from.raw_data(), nbytes, b.index);
  } else {
    copy_device_to_host(to.raw_data(), from.raw_data(), nbytes, a.index);
  }
}

// src to dst on different devices: cast and gather into a contiguous tensor
// on the source side, move the bytes, scatter into dst's strides on the
// destination side when dst is not contiguous itself.
void transfer(const Tensor& src, const Tensor& dst) {
  const Tensor from = dense_on_own_device(src, dst.dtype());
  if (dst.is_contiguous()) return move_bytes(from, dst);
  const Tensor landing = empty(dst.shape(), dst.dtype(), dst.device());
  move_bytes(from, landing);
  copy_within(landing, dst);
}

void copy(const Tensor& src, const Tensor& dst) {
  HEED_CHECK(src.shape() == dst.shape(), "cuda copy: shapes {} and {} differ", shape_str(src.shape()),
             shape_str(dst.shape()));
  if (dst.numel() == 0) return;
  if (src.device() == dst.device()) return copy_within(src, dst);
  transfer(src, dst);
}

// ---- fill, unary, binary, where ----------------------------------------------------

void fill(const Tensor& dst, double value) {
  if (dst.numel() == 0) return;
  DeviceGuard guard(dst.device().index);
  dispatch_dtype(dst.dtype(), [&](auto zero) {
    using T = decltype(zero);
    const T v = cast_value<T>(value);
    T* out = static_cast<T*>(dst.raw_data());
    if (dst.is_contiguous()) return launch_fill<T>(out, dst.numel(), v);
    launch_fill_strided<T>(indexer_of<1>("fill", dst.shape(), {&dst}), out, v);
  });
}

void unary(UnaryOp op, const Tensor& x, double a, double b, const Tensor& out) {
  const UnaryOp kind = op;
  const char* name = unary_op_name(kind);
  const DType want = unary_writes_bool(kind) ? DType::Bool : x.dtype();
  HEED_CHECK(out.dtype() == want, "cuda unary: {} of a {} tensor writes {}, got an out of {}", name,
             dtype_name(x.dtype()), dtype_name(want), dtype_name(out.dtype()));
  const bool defined = dispatch_dtype(x.dtype(), [&](auto zero) { return unary_defined<decltype(zero)>(kind); });
  HEED_CHECK(defined, "cuda unary: {} is not defined for {} tensors", name, dtype_name(x.dtype()));
  if (out.numel() == 0) return;
  DeviceGuard guard(out.device().index);
  const auto index = indexer_of<2>(name, out.shape(), {&out, &x});
  dispatch_dtype(x.dtype(), [&](auto zero) {
    using T = decltype(zero);
    launch_unary<T>(kind, index, out.raw_data(), static_cast<const T*>(x.raw_data()), a, b);
  });
}

void binary(BinaryOp op, const Tensor& x, const Tensor& y, const Tensor& out) {
  const BinaryOp kind = op;
  const char* name = binary_op_name(kind);
  HEED_CHECK(x.dtype() == y.dtype(), "cuda binary: {} of {} and {} tensors (one dtype expected)", name,
             dtype_name(x.dtype()), dtype_name(y.dtype()));
  const DType want = binary_writes_bool(kind) ? DType::Bool : x.dtype();
  HEED_CHECK(out.dtype() == want, "cuda binary: {} of {} tensors writes {}, got an out of {}", name,
             dtype_name(x.dtype()), dtype_name(want), dtype_name(out.dtype()));
  const bool defined = dispatch_dtype(x.dtype(), [&](auto zero) { return binary_defined<decltype(zero)>(kind); });
  HEED_CHECK(defined, "cuda binary: {} is not defined for {} tensors", name, dtype_name(x.dtype()));
  if (out.numel() == 0) return;
  DeviceGuard guard(out.device().index);
  const auto index = indexer_of<3>(name, out.shape(), {&out, &x, &y});
  dispatch_dtype(x.dtype(), [&](auto zero) {
    using T = decltype(zero);
    const T* xp = static_cast<const T*>(x.raw_data());
    const T* yp = static_cast<const T*>(y.raw_data());
    if (!binary_may_fail<T>(kind)) return launch_binary<T>(kind, index, out.raw_data(), xp, yp, nullptr);
    // Integer div and pow: the kernel reports a zero divisor or a negative
    // power in this cell, read back (and so waited for) here.
    const Tensor cell = empty({2}, DType::Int64, out.device());  // [what, value]
    int64_t* error = static_cast<int64_t*>(cell.raw_data());
    HEED_CUDA_CHECK(cudaMemsetAsync(error, 0, 2 * sizeof(int64_t), 0));
    launch_binary<T>(kind, index, out.raw_data(), xp, yp, error);
    int64_t fault[2] = {kNoError, 0};
    HEED_CUDA_CHECK(cudaMemcpy(fault, error, sizeof(fault), cudaMemcpyDeviceToHost));
    HEED_CHECK(fault[0] != kDivisionByZero, "cuda binary: integer division by zero in a {} tensor",
               dtype_name(x.dtype()));
    HEED_CHECK(fault[0] != kNegativePower, "cuda binary: pow of {} tensors to the negative power {} (use a float tensor)",
               dtype_name(x.dtype()), fault[1]);
  });
}

void where(const Tensor& cond, const Tensor& x, const Tensor& y, const Tensor& out) {
  // bool and uint8 masks are both one byte, 0 or not.
  HEED_CHECK(cond.dtype() == DType::Bool || cond.dtype() == DType::UInt8,
             "cuda where: the condition must be bool or uint8, got {}", dtype_name(cond.dtype()));
  HEED_CHECK(x.dtype() == out.dtype() && y.dtype() == out.dtype(), "cuda where: x {}, y {} and out {} differ",
             dtype_name(x.dtype()), dtype_name(y.dtype()), dtype_name(out.dtype()));
  if (out.numel() == 0) return;
  DeviceGuard guard(out.device().index);
  const auto index = indexer_of<4>("where", out.shape(), {&out, &cond, &x, &y});
  dispatch_dtype(out.dtype(), [&](auto zero) {
    using T = decltype(zero);
    launch_where<T>(index, static_cast<T*>(out.raw_data()), static_cast<const uint8_t*>(cond.raw_data()),
                    static_cast<const T*>(x.raw_data()), static_cast<const T*>(y.raw_data()));
  });
}

}  // namespace

void install_elementwise_kernels(Backend& row) {
  row.copy = copy;
  row.fill = fill;
  row.unary = unary;
  row.binary = binary;
  row.where = where;
}

}  // namespace heed::cuda
