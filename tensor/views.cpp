// View ops (no copy: a new shape/strides/offset over the same storage) and
// the copies that go with them, each with its backward.
#include <algorithm>
#include <numeric>

#include "tensor/record.h"
#include "tensor/op_helpers.h"

namespace heed {

Tensor make_view(const Tensor& base, Shape shape, Shape strides, int64_t offset) {
  auto impl = std::make_shared<TensorImpl>();
  impl->storage = base.impl()->storage;
  impl->shape = std::move(shape);
  impl->strides = std::move(strides);
  impl->offset = offset;
  impl->dtype = base.dtype();
  impl->is_view = true;
  return Tensor(std::move(impl));
}

namespace detail {
Tensor broadcast_view(const Tensor& t, const Shape& shape) {
  if (t.shape() == shape) return t;
  size_t lead = shape.size() - t.shape().size();
  Shape strides(shape.size(), 0);
  for (size_t i = 0; i < t.shape().size(); ++i) strides[lead + i] = t.shape()[i] == 1 ? 0 : t.strides()[i];
  return make_view(t, shape, strides, t.offset());
}

Tensor dense_as(const Tensor& t, const Shape& shape) {
  return t.shape() == shape && t.is_contiguous() ? t.detach() : contiguous(broadcast_view(t.detach(), shape));
}
}  // namespace detail

namespace {

// Fills a single -1 in `shape` from numel.
Shape infer_shape(const Shape& shape, int64_t numel, const char* op, const Shape& from) {
  Shape out = shape;
  int64_t known = 1, unknown = -1;
  for (size_t i = 0; i < out.size(); ++i) {
    if (out[i] == -1) {
      HEED_CHECK(unknown < 0, "{}: only one dimension can be -1, got shape {}", op, shape_str(shape));
      unknown = static_cast<int64_t>(i);
    } else {
      HEED_CHECK(out[i] >= 0, "{}: invalid size {} in shape {}", op, out[i], shape_str(shape));
      known *= out[i];
    }
  }
  if (unknown >= 0) {
    HEED_CHECK(known != 0 && numel % known == 0, "{}: cannot reshape a tensor of shape {} ({} elements) into {}", op,
               shape_str(from), numel, shape_str(shape));
    out[unknown] = numel / known;
  }
  HEED_CHECK(numel_of(out) == numel, "{}: cannot reshape a tensor of shape {} ({} elements) into {} ({} elements)", op,
             shape_str(from), numel, shape_str(out), numel_of(out));
  return out;
}

// Strides for viewing `t` as `shape` without a copy, or false when its
// memory layout does not allow that (PyTorch's rule: each run of merged
// dims must be contiguous within itself).
bool view_strides(const Tensor& t, const Shape& shape, Shape& out) {
  const Shape& old_shape = t.shape();
  const Shape& old_strides = t.strides();
  out.assign(shape.size(), 0);
  if (t.numel() == 0 || t.dim() == 0) {
    out = contiguous_strides(shape);
    return true;
  }
  int64_t view_d = static_cast<int64_t>(shape.size()) - 1;
  int64_t chunk_base_stride = old_strides.empty() ? 1 : old_strides.back();
  int64_t tensor_numel = 1, view_numel = 1;
  for (int64_t d = static_cast<int64_t>(old_shape.size()) - 1; d >= 0; --d) {
    tensor_numel *= old_shape[d];
    if (d == 0 || (old_shape[d - 1] != 1 && old_strides[d - 1] != tensor_numel * chunk_base_stride)) {
      while (view_d >= 0 && (view_numel < tensor_numel || shape[view_d] == 1)) {
        out[view_d] = view_numel * chunk_base_stride;
        view_numel *= shape[view_d];
        --view_d;
      }
      if (view_numel != tensor_numel) return false;
      if (d > 0) {
        chunk_base_stride = old_strides[d - 1];
        tensor_numel = 1;
        view_numel = 1;
      }
    }
  }
  return view_d == -1;
}

// A differentiable view: `out` shares t's storage; backward maps the output
// gradient back with `back`.
Tensor finish_view(const Tensor& t, Tensor out, const char* name, std::function<Tensor(const Tensor&)> back) {
  if (auto* node = record(name, {t}, out)) node->backward = [back = std::move(back)](const Tensor& g) { return TensorList{back(g)}; };
  return out;
}

// The backward of slicing: a zero tensor of `shape` with g written into the
// slice. Differentiable in turn (its backward is the slice again).
Tensor embed_slice(const Tensor& g, const Shape& shape, int64_t d, int64_t start, int64_t step) {
  Tensor out = zeros(shape, g.dtype(), g.device());
  Tensor region = make_view(out, g.shape(), out.strides(), start * out.strides()[d]);
  region.impl()->strides[d] *= step;
  detail::kernel(g.device(), &Backend::copy, "slice_backward")(g, region);
  int64_t len = g.shape()[d];
  if (auto* node = record("slice_backward", {g}, out))
    node->backward = [d, start, len, step](const Tensor& gg) { return TensorList{slice(gg, d, start, start + (len - 1) * step + 1, step)}; };
  return out;
}

}  // namespace

Tensor view(const Tensor& t, const Shape& shape) {
  detail::check_defined(t, "view");
  Shape s = infer_shape(shape, t.numel(), "view", t.shape());
  Shape strides;
  HEED_CHECK(view_strides(t, s, strides),
             "view: a tensor of shape {} with strides {} cannot be viewed as {} without a copy; use reshape()",
             shape_str(t.shape()), shape_str(t.strides()), shape_str(s));
  Shape in_shape = t.shape();
  return finish_view(t, make_view(t, s, strides, t.offset()), "view", [in_shape](const Tensor& g) { return reshape(g, in_shape); });
}

Tensor reshape(const Tensor& t, const Shape& shape) {
  detail::check_defined(t, "reshape");
  Shape s = infer_shape(shape, t.numel(), "reshape", t.shape());
  Shape strides;
  if (view_strides(t, s, strides)) return view(t, s);
  return view(contiguous(t), s);
}

Tensor flatten(const Tensor& t, int64_t start_dim, int64_t end_dim) {
  detail::check_defined(t, "flatten");
  if (t.dim() == 0) return reshape(t, {1});
  int64_t a = normalize_dim(start_dim, t.dim(), "flatten"), b = normalize_dim(end_dim, t.dim(), "flatten");
  HEED_CHECK(a <= b, "flatten: start_dim {} comes after end_dim {}", start_dim, end_dim);
  Shape s(t.shape().begin(), t.shape().begin() + a);
  int64_t n = 1;
  for (int64_t i = a; i <= b; ++i) n *= t.shape()[i];
  s.push_back(n);
  s.insert(s.end(), t.shape().begin() + b + 1, t.shape().end());
  return reshape(t, s);
}

Tensor permute(const Tensor& t, const Shape& dims) {
  detail::check_defined(t, "permute");
  HEED_CHECK(static_cast<int64_t>(dims.size()) == t.dim(), "permute: got {} dims {} for a tensor with {} dims",
             dims.size(), shape_str(dims), t.dim());
  Shape perm(dims.size()), inverse(dims.size()), shape(dims.size()), strides(dims.size());
  std::vector<bool> used(dims.size(), false);
  for (size_t i = 0; i < dims.size(); ++i) {
    int64_t d = normalize_dim(dims[i], t.dim(), "permute");
    HEED_CHECK(!used[d], "permute: dim {} repeats in {}", d, shape_str(dims));
    used[d] = true;
    perm[i] = d;
    inverse[d] = static_cast<int64_t>(i);
    shape[i] = t.shape()[d];
    strides[i] = t.strides()[d];
  }
  return finish_view(t, make_view(t, shape, strides, t.offset()), "permute",
                     [inverse](const Tensor& g) { return permute(g, inverse); });
}

Tensor transpose(const Tensor& t, int64_t d0, int64_t d1) {
  detail::check_defined(t, "transpose");
  Shape perm(t.dim());
  std::iota(perm.begin(), perm.end(), 0);
  if (t.dim() == 0) return permute(t, perm);
  std::swap(perm[normalize_dim(d0, t.dim(), "transpose")], perm[normalize_dim(d1, t.dim(), "transpose")]);
  return permute(t, perm);
}

Tensor squeeze(const Tensor& t, int64_t d) {
  detail::check_defined(t, "squeeze");
  if (t.dim() == 0) return t;
  d = normalize_dim(d, t.dim(), "squeeze");
  if (t.shape()[d] != 1) return t;
  Shape s = t.shape();
  s.erase(s.begin() + d);
  return reshape(t, s);
}

Tensor squeeze(const Tensor& t) {
  detail::check_defined(t, "squeeze");
  Shape s;
  for (int64_t x : t.shape())
    if (x != 1) s.push_back(x);
  return reshape(t, s);
}

Tensor unsqueeze(const Tensor& t, int64_t d) {
  detail::check_defined(t, "unsqueeze");
  d = normalize_dim(d, t.dim() + 1, "unsqueeze");
  Shape s = t.shape();
  s.insert(s.begin() + d, 1);
  return reshape(t, s);
}

Tensor slice(const Tensor& t, int64_t d, int64_t start, int64_t end, int64_t step) {
  detail::check_defined(t, "slice");
  HEED_CHECK(t.dim() > 0, "slice: cannot slice a 0-dim tensor");
  d = normalize_dim(d, t.dim(), "slice");
  HEED_CHECK(step > 0, "slice: step must be positive, got {}", step);
  int64_t n = t.shape()[d];
  // Python rules: negative from the end, then clamped into [0, n].
  if (start < 0) start += n;
  if (end < 0) end += n;
  start = std::clamp<int64_t>(start, 0, n);
  end = std::clamp<int64_t>(end, start, n);
  Shape shape = t.shape(), strides = t.strides();
  shape[d] = (end - start + step - 1) / step;
  strides[d] *= step;
  Shape in_shape = t.shape();
  return finish_view(t, make_view(t, shape, strides, t.offset() + start * t.strides()[d]), "slice",
                     [in_shape, d, start, step](const Tensor& g) { return embed_slice(g, in_shape, d, start, step); });
}

Tensor narrow(const Tensor& t, int64_t d, int64_t start, int64_t length) {
  detail::check_defined(t, "narrow");
  HEED_CHECK(t.dim() > 0, "narrow: cannot narrow a 0-dim tensor");
  d = normalize_dim(d, t.dim(), "narrow");
  int64_t n = t.shape()[d];
  if (start < 0) start += n;
  HEED_CHECK(start >= 0 && length >= 0 && start + length <= n,
             "narrow: start {} and length {} do not fit dim {} of size {} (shape {})", start, length, d, n,
             shape_str(t.shape()));
  return slice(t, d, start, start + length);
}

Tensor select(const Tensor& t, int64_t d, int64_t index) {
  detail::check_defined(t, "select");
  HEED_CHECK(t.dim() > 0, "select: cannot index a 0-dim tensor");
  d = normalize_dim(d, t.dim(), "select");
  int64_t n = t.shape()[d];
  HEED_CHECK(index >= -n && index < n, "select: index {} is out of range for dim {} of size {} (shape {})", index, d, n,
             shape_str(t.shape()));
  if (index < 0) index += n;
  return squeeze(narrow(t, d, index, 1), d);
}

Tensor expand(const Tensor& t, const Shape& shape) {
  detail::check_defined(t, "expand");
  HEED_CHECK(shape.size() >= t.shape().size(), "expand: cannot expand shape {} to fewer dims {}", shape_str(t.shape()),
             shape_str(shape));
  size_t lead = shape.size() - t.shape().size();
  Shape target = shape;
  for (size_t i = 0; i < shape.size(); ++i) {
    if (i < lead) {
      HEED_CHECK(shape[i] >= 0, "expand: new leading dim {} cannot be {} in {}", i, shape[i], shape_str(shape));
      continue;
    }
    int64_t have = t.shape()[i - lead];
    if (shape[i] == -1) target[i] = have;
    HEED_CHECK(have == target[i] || have == 1, "expand: cannot expand shape {} to {} (dim {} has size {}, not 1)",
               shape_str(t.shape()), shape_str(shape), i, have);
  }
  if (target == t.shape()) return t;
  Shape in_shape = t.shape();
  return finish_view(t, detail::broadcast_view(t, target), "expand", [in_shape](const Tensor& g) { return sum_to(g, in_shape); });
}

Tensor broadcast_to(const Tensor& t, const Shape& shape) { return expand(t, shape); }

Tensor sum_to(const Tensor& t, const Shape& shape) {
  if (t.shape() == shape) return t;
  HEED_CHECK(t.shape().size() >= shape.size(), "sum_to: cannot sum shape {} down to {}", shape_str(t.shape()),
             shape_str(shape));
  size_t lead = t.shape().size() - shape.size();
  Shape dims;
  for (size_t i = 0; i < t.shape().size(); ++i) {
    if (i < lead) {
      dims.push_back(static_cast<int64_t>(i));
    } else if (shape[i - lead] == 1 && t.shape()[i] != 1) {
      dims.push_back(static_cast<int64_t>(i));
    } else {
      HEED_CHECK(shape[i - lead] == t.shape()[i], "sum_to: cannot sum shape {} down to {}", shape_str(t.shape()),
                 shape_str(shape));
    }
  }
  Tensor s = dims.empty() ? t : sum(t, dims, true);
  return reshape(s, shape);
}

Tensor clone(const Tensor& t) {
  detail::check_defined(t, "clone");
  Tensor out = empty(t.shape(), t.dtype(), t.device());
  if (t.numel() > 0) detail::kernel(t.device(), &Backend::copy, "clone")(t, out);
  if (auto* node = record("clone", {t}, out)) node->backward = [](const Tensor& g) { return TensorList{g}; };
  return out;
}

Tensor contiguous(const Tensor& t) {
  detail::check_defined(t, "contiguous");
  return t.is_contiguous() ? t : clone(t);
}

Tensor detach(const Tensor& t) {
  detail::check_defined(t, "detach");
  Tensor out = make_view(t, t.shape(), t.strides(), t.offset());
  out.impl()->is_view = false;
  return out;
}

Tensor to_dtype(const Tensor& t, DType dtype) {
  detail::check_defined(t, "to");
  if (t.dtype() == dtype) return t;
  Tensor out = empty(t.shape(), dtype, t.device());
  if (t.numel() > 0) detail::kernel(t.device(), &Backend::copy, "to")(t, out);
  if (is_floating(dtype) && is_floating(t.dtype())) {
    DType from = t.dtype();
    if (auto* node = record("to_dtype", {t}, out)) node->backward = [from](const Tensor& g) { return TensorList{to_dtype(g, from)}; };
  }
  return out;
}

Tensor to_device(const Tensor& t, Device device) {
  detail::check_defined(t, "to");
  if (t.device() == device) return t;
  Tensor out = empty(t.shape(), t.dtype(), device);
  // Transfers go through the non-CPU side, which knows how to reach the host.
  Device engine = device.is_cpu() ? t.device() : device;
  if (t.numel() > 0) detail::kernel(engine, &Backend::copy, "to")(t, out);
  Device from = t.device();
  if (auto* node = record("to_device", {t}, out)) node->backward = [from](const Tensor& g) { return TensorList{to_device(g, from)}; };
  return out;
}

}  // namespace heed
