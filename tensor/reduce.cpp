// Reductions over any set of dims (keepdim or not), their backwards, and the
// numerically stable softmax / log_softmax.
#include <algorithm>
#include <cmath>
#include <limits>

#include "tensor/grad_mode.h"
#include "tensor/record.h"
#include "tensor/autocast.h"
#include "tensor/op_helpers.h"

namespace heed {

namespace detail {
Shape reduction_dims(const Shape& dims, int64_t ndim, const char* op) {
  Shape out;
  if (dims.empty()) {
    for (int64_t i = 0; i < ndim; ++i) out.push_back(i);
    return out;
  }
  for (int64_t d : dims) out.push_back(normalize_dim(d, ndim, op));
  std::sort(out.begin(), out.end());
  HEED_CHECK(std::adjacent_find(out.begin(), out.end()) == out.end(), "{}: dim repeats in {}", op, shape_str(dims));
  return out;
}
}  // namespace detail

namespace {

Shape keepdim_shape(const Shape& shape, const Shape& dims) {
  Shape out = shape;
  for (int64_t d : dims) out[d] = 1;
  return out;
}

Shape squeezed_shape(const Shape& shape, const Shape& dims) {
  Shape out;
  for (size_t i = 0; i < shape.size(); ++i)
    if (!std::binary_search(dims.begin(), dims.end(), static_cast<int64_t>(i))) out.push_back(shape[i]);
  return out;
}

// Runs the reduce kernel; returns the result in keepdim shape.
Tensor reduce_kernel(ReduceOp op, const Tensor& x, const Shape& dims, DType out_dtype, const char* name) {
  Tensor out = empty(keepdim_shape(x.shape(), dims), out_dtype, x.device());
  if (out.numel() == 0) return out;
  if (x.numel() == 0) {
    HEED_CHECK(op == ReduceOp::Sum || op == ReduceOp::Prod, "{}: cannot reduce an empty tensor (shape {})", name,
               shape_str(x.shape()));
    detail::kernel(x.device(), &Backend::fill, name)(out, op == ReduceOp::Sum ? 0.0 : 1.0);
    return out;
  }
  detail::kernel(x.device(), &Backend::reduce, name)(op, x, out);
  return out;
}

// `t` is a fresh contiguous result in keepdim shape; without keepdim the
// reduced dims are dropped (same storage, and not a view of anyone's data).
Tensor drop_dims(const Tensor& t, const Shape& dims, bool keepdim) {
  if (keepdim) return t;
  Shape shape = squeezed_shape(t.shape(), dims);
  Tensor out = make_view(t, shape, contiguous_strides(shape), 0);
  out.impl()->is_view = false;
  return out;
}

// Brings a reduced gradient back to the input's shape.
Tensor expand_back(const Tensor& g, const Shape& in_shape, const Shape& dims) {
  return expand(reshape(g, keepdim_shape(in_shape, dims)), in_shape);
}

}  // namespace

Tensor sum(const Tensor& t, const Shape& dims_in, bool keepdim) {
  detail::check_defined(t, "sum");
  Shape dims = detail::reduction_dims(dims_in, t.dim(), "sum");
  // Bool and uint8 count into int64, as in PyTorch.
  Tensor x = is_floating(t.dtype()) || t.dtype() == DType::Int64 ? t : to_dtype(t, DType::Int64);
  Tensor out = drop_dims(reduce_kernel(ReduceOp::Sum, x, dims, x.dtype(), "sum"), dims, keepdim);
  if (auto* node = record("sum", {t}, out))
    node->backward = [in_shape = t.shape(), dims](const Tensor& g) { return TensorList{expand_back(g, in_shape, dims)}; };
  return out;
}

Tensor mean(const Tensor& t, const Shape& dims_in, bool keepdim) {
  detail::check_floating(t, "mean");
  Shape dims = detail::reduction_dims(dims_in, t.dim(), "mean");
  int64_t n = 1;
  for (int64_t d : dims) n *= t.shape()[d];
  HEED_CHECK(n > 0, "mean: cannot average over zero elements (shape {})", shape_str(t.shape()));
  return mul(sum(t, dims, keepdim), 1.0 / static_cast<double>(n));
}

Tensor var(const Tensor& t, const Shape& dims_in, int64_t correction, bool keepdim) {
  detail::check_floating(t, "var");
  Shape dims = detail::reduction_dims(dims_in, t.dim(), "var");
  int64_t n = 1;
  for (int64_t d : dims) n *= t.shape()[d];
  HEED_CHECK(n - correction > 0, "var: {} elements with correction {} leave no degrees of freedom", n, correction);
  Tensor centered = sub(t, mean(t, dims, true));
  return mul(sum(square(centered), dims, keepdim), 1.0 / static_cast<double>(n - correction));
}

namespace {
Tensor extreme_over(const Tensor& t, const Shape& dims_in, bool keepdim, bool is_max) {
  const char* name = is_max ? "amax" : "amin";
  detail::check_defined(t, name);
  HEED_CHECK(t.dtype() != DType::Bool, "{}: not defined for bool tensors", name);
  Shape dims = detail::reduction_dims(dims_in, t.dim(), name);
  Tensor out = reduce_kernel(is_max ? ReduceOp::Max : ReduceOp::Min, t, dims, t.dtype(), name);
  Tensor result = drop_dims(out, dims, keepdim);
  if (auto* node = record(name, {t}, result)) {
    // Ties share the gradient evenly, as in PyTorch.
    node->backward = [st = SavedTensor(t), so = SavedTensor(out), dims, in_shape = t.shape(), name](const Tensor& g) {
      Tensor x = st.unpack(name).detach();
      Tensor m = to_dtype(eq(x, so.unpack(name).detach()), x.dtype());
      Tensor count = sum(m, dims, true);
      return TensorList{mul(div(m, count), expand_back(g, in_shape, dims))};
    };
  }
  return result;
}

Tensor arg_extreme(const Tensor& t, int64_t dim, bool keepdim, bool is_max) {
  const char* name = is_max ? "argmax" : "argmin";
  detail::check_defined(t, name);
  HEED_CHECK(t.numel() > 0, "{}: empty tensor (shape {})", name, shape_str(t.shape()));
  Shape dims{normalize_dim(dim, t.dim(), name)};
  if (t.dim() == 0) return zeros({}, DType::Int64, t.device());
  Tensor out = reduce_kernel(is_max ? ReduceOp::ArgMax : ReduceOp::ArgMin, t, dims, DType::Int64, name);
  return drop_dims(out, dims, keepdim);
}

ValuesIndices extreme_along(const Tensor& t, int64_t dim, bool keepdim, bool is_max) {
  Tensor idx = arg_extreme(t, dim, true, is_max);
  if (t.dim() == 0) return {t, idx};
  int64_t d = normalize_dim(dim, t.dim(), is_max ? "max" : "min");
  Tensor values = gather(t, d, idx);  // the gradient goes to the first extreme
  if (!keepdim) {
    values = squeeze(values, d);
    idx = squeeze(idx, d);
  }
  return {values, idx};
}
}  // namespace

Tensor amax(const Tensor& t, const Shape& dims, bool keepdim) { return extreme_over(t, dims, keepdim, true); }
Tensor amin(const Tensor& t, const Shape& dims, bool keepdim) { return extreme_over(t, dims, keepdim, false); }
Tensor max(const Tensor& t) { return amax(t); }
Tensor min(const Tensor& t) { return amin(t); }
ValuesIndices max(const Tensor& t, int64_t dim, bool keepdim) { return extreme_along(t, dim, keepdim, true); }
ValuesIndices min(const Tensor& t, int64_t dim, bool keepdim) { return extreme_along(t, dim, keepdim, false); }
Tensor argmax(const Tensor& t, int64_t dim, bool keepdim) { return arg_extreme(t, dim, keepdim, true); }
Tensor argmin(const Tensor& t, int64_t dim, bool keepdim) { return arg_extreme(t, dim, keepdim, false); }
Tensor argmax(const Tensor& t) { return arg_extreme(reshape(t.detach(), {-1}), 0, false, true); }

Tensor logsumexp(const Tensor& t, const Shape& dims_in, bool keepdim) {
  detail::check_floating(t, "logsumexp");
  Shape dims = detail::reduction_dims(dims_in, t.dim(), "logsumexp");
  // Shift by the max (a constant for autograd); an all -inf slice shifts by 0.
  Tensor m = amax(t.detach(), dims, true);
  Tensor zero = scalar_tensor(0, m.dtype(), m.device());
  m = where(isnonfinite(m), zero, m);
  Tensor out = add(log(sum(exp(sub(t, m)), dims, true)), m);
  return keepdim ? out : reshape(out, squeezed_shape(t.shape(), dims));
}

namespace {
Tensor softmax_impl(const Tensor& t, int64_t dim, bool log) {
  const char* name = log ? "log_softmax" : "softmax";
  detail::check_floating(t, name);
  if (t.dim() == 0) return softmax_impl(reshape(t, {1}), 0, log).reshape({});
  int64_t d = normalize_dim(dim, t.dim(), name);
  int64_t last = t.dim() - 1;
  Tensor x = contiguous(transpose(t.detach(), d, last));
  Tensor y = empty(x.shape(), x.dtype(), x.device());
  if (y.numel() > 0) detail::kernel(x.device(), &Backend::softmax, name)(x, log, y);
  Tensor out = contiguous(transpose(y, d, last));
  if (auto* node = record(name, {t}, out)) {
    node->backward = [so = SavedTensor(out), d, last, log, name](const Tensor& g) {
      Tensor yy = so.unpack(name);
      if (GradMode::is_enabled()) {  // create_graph: the rule in differentiable ops
        if (log) return TensorList{sub(g, mul(exp(yy), sum(g, {d}, true)))};
        return TensorList{mul(yy, sub(g, sum(mul(g, yy), {d}, true)))};
      }
      // One fused pass per row (Backend::softmax_backward), no full-size temporaries.
      Tensor yl = contiguous(transpose(yy, d, last)), gl = contiguous(transpose(g, d, last));
      Tensor gx = empty(yl.shape(), yl.dtype(), yl.device());
      if (gx.numel() > 0) detail::kernel(yl.device(), &Backend::softmax_backward, name)(gl, yl, log, gx);
      return TensorList{contiguous(transpose(gx, d, last))};
    };
  }
  return out;
}
}  // namespace

// Under autocast both run in float32 (tensor/autocast.h).
Tensor softmax(const Tensor& t, int64_t dim) { return softmax_impl(autocast::float32(t), dim, false); }
Tensor log_softmax(const Tensor& t, int64_t dim) { return softmax_impl(autocast::float32(t), dim, true); }

}  // namespace heed
