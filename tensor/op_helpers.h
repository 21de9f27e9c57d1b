#pragma once
// Argument checks and kernel lookup shared by the op files of tensor/ (not
// part of the public API). Every message names the op and what it got.
#include "tensor/backend.h"
#include "tensor/tensor_impl.h"

namespace heed::detail {

// The kernel `member` of t's device row; throws when that backend lacks it.
template <class F>
F kernel(Device device, F Backend::*member, const char* op) {
  F f = backend(device).*member;
  HEED_CHECK(f != nullptr, "{}: not implemented on device {}", op, device.str());
  return f;
}

inline void check_defined(const Tensor& t, const char* op, const char* what = "input") {
  HEED_CHECK(t.defined(), "{}: {} is an undefined tensor", op, what);
}

inline void check_same(const Tensor& a, const Tensor& b, const char* op) {
  check_defined(a, op, "first input");
  check_defined(b, op, "second input");
  HEED_CHECK(a.device() == b.device(), "{}: inputs are on different devices: {} {} on {} and {} {} on {}", op,
             shape_str(a.shape()), a.dtype(), a.device(), shape_str(b.shape()), b.dtype(), b.device());
  HEED_CHECK(a.dtype() == b.dtype(), "{}: inputs have different dtypes: {} {} and {} {} (convert one with .to())", op,
             shape_str(a.shape()), a.dtype(), shape_str(b.shape()), b.dtype());
}

inline void check_floating(const Tensor& t, const char* op) {
  check_defined(t, op);
  HEED_CHECK(is_floating(t.dtype()), "{}: expected a float tensor (float32, float64 or bfloat16), got {} {}", op, shape_str(t.shape()),
             t.dtype());
}

inline void check_dtype(const Tensor& t, DType want, const char* op, const char* what) {
  check_defined(t, op, what);
  HEED_CHECK(t.dtype() == want, "{}: {} must be {}, got {} {}", op, what, want, shape_str(t.shape()), t.dtype());
}

inline void check_device(const Tensor& t, Device want, const char* op, const char* what) {
  HEED_CHECK(t.device() == want, "{}: {} is on {} but the other inputs are on {}", op, what, t.device(), want);
}

// t seen with `shape` (NumPy broadcasting, stride 0 in broadcast dims), no
// copy and no autograd: for handing operands to kernels.
Tensor broadcast_view(const Tensor& t, const Shape& shape);
// t as a dense tensor of `shape` for kernels that take dense operands: t
// itself (detached) when it already is one, else a contiguous copy of its
// broadcast view.
Tensor dense_as(const Tensor& t, const Shape& shape);

// Normalised, sorted, unique dims; empty `dims` means all dims.
Shape reduction_dims(const Shape& dims, int64_t ndim, const char* op);

// The activations' gradients, written with differentiable ops, shared by
// relu / gelu and the fused linear (linear.cpp): g * relu'(x) from the
// output y = relu(x), and g * gelu'(x) from the input x.
Tensor relu_backward(const Tensor& g, const Tensor& y);
Tensor gelu_backward(const Tensor& g, const Tensor& x, bool exact);

}  // namespace heed::detail
