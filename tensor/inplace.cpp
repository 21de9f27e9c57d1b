// In-place ops. They write into the tensor's storage and bump its version
// counter, so a backward that saved the old values fails loudly instead of
// computing with the new ones. When autograd records, the op runs out of
// place on a snapshot and the tensor becomes that result's output in the
// graph (a leaf that requires grad, or a view, is refused with a clear error).
// When it does not (optimizer updates, gradient clipping, the EMA), the
// elementwise ops write their result straight into the tensor where that is
// safe (write_into_ok): no temporary the size of the tensor, and no copy.
#include "tensor/grad_mode.h"
#include "tensor/record.h"
#include "tensor/op_helpers.h"

namespace heed {

namespace {

void write_into(const Tensor& dst, const Tensor& src, const char* name) {
  Tensor s = detail::broadcast_view(src.detach(), dst.shape());
  if (dst.numel() > 0) detail::kernel(dst.device(), &Backend::copy, name)(s, dst);
  dst.impl()->storage->bump_version();
}

bool broadcasts_to(const Shape& from, const Shape& to) {
  if (from.size() > to.size()) return false;
  for (size_t i = 0; i < from.size(); ++i) {
    const int64_t f = from[from.size() - 1 - i], t = to[to.size() - 1 - i];
    if (f != t && f != 1) return false;
  }
  return true;
}

// Whether an elementwise op may write its result straight into t: nothing
// records, t is dense and not bool, and every other operand has t's dtype
// and device, broadcasts to t's shape and does not overlap t in another
// layout. The kernels read element i and then write it in the same step of
// their loop, so an operand that is t itself, in t's layout, is safe; a
// transposed view of t is not. Everything else (and every error message)
// goes through apply_inplace.
bool write_into_ok(const Tensor& t, const TensorList& others) {
  if (!t.defined() || !t.is_contiguous() || t.dtype() == DType::Bool) return false;
  TensorList all{t};
  all.insert(all.end(), others.begin(), others.end());
  if (needs_grad(all)) return false;
  for (const Tensor& o : others) {
    if (!o.defined() || o.device() != t.device() || o.dtype() != t.dtype() || !broadcasts_to(o.shape(), t.shape()))
      return false;
    const bool same_memory = o.impl()->storage == t.impl()->storage;
    if (same_memory && !(o.shape() == t.shape() && o.strides() == t.strides() && o.offset() == t.offset()))
      return false;
  }
  return true;
}

Tensor& binary_into(Tensor& t, BinaryOp op, const Tensor& other, const char* name) {
  if (t.numel() > 0)
    detail::kernel(t.device(), &Backend::binary, name)(op, t, detail::broadcast_view(other, t.shape()), t);
  t.impl()->storage->bump_version();
  return t;
}

Tensor& unary_into(Tensor& t, UnaryOp op, double a, const char* name) {
  if (t.numel() > 0) detail::kernel(t.device(), &Backend::unary, name)(op, t, a, 0.0, t);
  t.impl()->storage->bump_version();
  return t;
}

Tensor& apply_inplace(Tensor& t, const char* name, const TensorList& others,
                      const std::function<Tensor(const Tensor&)>& op) {
  detail::check_defined(t, name);
  TensorList all{t};
  all.insert(all.end(), others.begin(), others.end());
  if (!needs_grad(all)) {
    Tensor result;
    {
      NoGradGuard no_grad;
      result = op(t);
    }
    HEED_CHECK(broadcast_shapes(result.shape(), t.shape(), name) == t.shape(),
               "{}: the result's shape {} does not fit the in-place target's shape {}", name,
               shape_str(result.shape()), shape_str(t.shape()));
    HEED_CHECK(result.dtype() == t.dtype(), "{}: the result is {} but the in-place target is {}", name, result.dtype(),
               t.dtype());
    write_into(t, result, name);
    return t;
  }
  HEED_CHECK(!(t.is_leaf() && t.requires_grad()),
             "{}: a leaf tensor that requires grad (shape {}) cannot be modified in place while autograd records; "
             "use heed::NoGradGuard (e.g. for optimizer updates) or an out-of-place op",
             name, shape_str(t.shape()));
  HEED_CHECK(!t.impl()->is_view,
             "{}: in-place modification of a view (shape {}) is not supported while autograd records; clone() it "
             "or use an out-of-place op",
             name, shape_str(t.shape()));
  Tensor result = op(clone(t));
  HEED_CHECK(result.shape() == t.shape() && result.dtype() == t.dtype(),
             "{}: the result {} {} does not match the in-place target {} {}", name, shape_str(result.shape()),
             result.dtype(), shape_str(t.shape()), t.dtype());
  write_into(t, result, name);
  AutogradMeta& meta = t.impl()->meta();
  meta.requires_grad = result.requires_grad();
  meta.grad_fn = result.grad_fn();
  meta.output_nr = result.output_nr();
  return t;
}

}  // namespace

Tensor& Tensor::add_(const Tensor& other, double alpha) {
  // The out-of-place add scales `other` by alpha first too: the same bits.
  if (write_into_ok(*this, {other}))
    return binary_into(*this, BinaryOp::Add, alpha == 1.0 ? other : heed::mul(other, alpha), "add_");
  return apply_inplace(*this, "add_", {other}, [&](const Tensor& x) { return heed::add(x, other, alpha); });
}
Tensor& Tensor::sub_(const Tensor& other) {
  if (write_into_ok(*this, {other})) return binary_into(*this, BinaryOp::Sub, other, "sub_");
  return apply_inplace(*this, "sub_", {other}, [&](const Tensor& x) { return sub(x, other); });
}
Tensor& Tensor::mul_(const Tensor& other) {
  if (write_into_ok(*this, {other})) return binary_into(*this, BinaryOp::Mul, other, "mul_");
  return apply_inplace(*this, "mul_", {other}, [&](const Tensor& x) { return mul(x, other); });
}
Tensor& Tensor::div_(const Tensor& other) {
  // Integer division can fail part-way on a GPU (a zero divisor is reported
  // after the kernel), which must not leave this tensor half written.
  if (is_floating(dtype()) && write_into_ok(*this, {other})) return binary_into(*this, BinaryOp::Div, other, "div_");
  return apply_inplace(*this, "div_", {other}, [&](const Tensor& x) { return div(x, other); });
}
Tensor& Tensor::add_(double value) {
  if (write_into_ok(*this, {})) return unary_into(*this, UnaryOp::AddScalar, value, "add_");
  return apply_inplace(*this, "add_", {}, [&](const Tensor& x) { return add(x, value); });
}
Tensor& Tensor::mul_(double value) {
  if (write_into_ok(*this, {})) return unary_into(*this, UnaryOp::MulScalar, value, "mul_");
  return apply_inplace(*this, "mul_", {}, [&](const Tensor& x) { return mul(x, value); });
}
Tensor& Tensor::lerp_(const Tensor& end, double weight) {
  if (is_floating(dtype()) && write_into_ok(*this, {end})) {
    // The kernel wants end dense and of this shape; this tensor is both.
    if (numel() > 0)
      detail::kernel(device(), &Backend::lerp, "lerp_")(*this, detail::dense_as(end, shape()), weight, *this);
    impl()->storage->bump_version();
    return *this;
  }
  return apply_inplace(*this, "lerp_", {end}, [&](const Tensor& x) { return heed::lerp(x, end, weight); });
}
Tensor& Tensor::clamp_(double lo, double hi) {
  return apply_inplace(*this, "clamp_", {}, [&](const Tensor& x) { return heed::clamp(x, lo, hi); });
}
Tensor& Tensor::masked_fill_(const Tensor& mask, double value) {
  return apply_inplace(*this, "masked_fill_", {}, [&](const Tensor& x) { return heed::masked_fill(x, mask, value); });
}

Tensor& Tensor::copy_(const Tensor& src) {
  detail::check_defined(src, "copy_");
  HEED_CHECK(broadcast_shapes(src.shape(), shape(), "copy_") == shape(),
             "copy_: source of shape {} does not broadcast to the target's shape {}", shape_str(src.shape()),
             shape_str(shape()));
  Tensor& self = *this;
  if (!needs_grad({self, src})) {
    // Straight through the copy kernel: any dtype, and across devices.
    Tensor s = detail::broadcast_view(src.detach(), shape());
    Device engine = device().is_cpu() ? src.device() : device();
    if (numel() > 0) detail::kernel(engine, &Backend::copy, "copy_")(s, self);
    impl()->storage->bump_version();
    return self;
  }
  return apply_inplace(self, "copy_", {src}, [&](const Tensor&) {
    Tensor s = to_dtype(to_device(src, device()), dtype());
    return s.shape() == shape() ? s : heed::expand(s, shape());
  });
}

Tensor& Tensor::fill_(double value) {
  detail::check_defined(*this, "fill_");
  if (!needs_grad({*this})) {
    if (numel() > 0) detail::kernel(device(), &Backend::fill, "fill_")(*this, value);
    impl()->storage->bump_version();
    return *this;
  }
  return apply_inplace(*this, "fill_", {}, [&](const Tensor& x) { return add(mul(x, 0.0), value); });
}

Tensor& Tensor::zero_() { return fill_(0.0); }

void adam_step_(const Tensor& param, const Tensor& grad, const Tensor& exp_avg, const Tensor& exp_avg_sq,
                const AdamStepArgs& args) {
  const char* op = "adam_step_";
  detail::check_floating(param, op);
  for (const Tensor* t : {&grad, &exp_avg, &exp_avg_sq}) {
    const char* what = t == &grad ? "grad" : t == &exp_avg ? "exp_avg" : "exp_avg_sq";
    detail::check_defined(*t, op, what);
    detail::check_device(*t, param.device(), op, what);
    HEED_CHECK(t->shape() == param.shape() && t->dtype() == param.dtype(),
               "{}: {} is {} {} but param is {} {}", op, what, shape_str(t->shape()), t->dtype(),
               shape_str(param.shape()), param.dtype());
  }
  HEED_CHECK(!needs_grad({param, grad, exp_avg, exp_avg_sq}),
             "{}: not differentiable; call it under NoGradGuard (param of shape {})", op, shape_str(param.shape()));
  if (param.numel() > 0) {
    const auto step = detail::kernel(param.device(), &Backend::adam_step, op);
    if (param.is_contiguous() && grad.is_contiguous() && exp_avg.is_contiguous() && exp_avg_sq.is_contiguous()) {
      step(param, grad, exp_avg, exp_avg_sq, args);
    } else {
      // The kernel wants dense tensors: it updates contiguous copies, which are
      // then written back through the strided views (one rule, one kernel).
      Tensor p = contiguous(param), m = contiguous(exp_avg), v = contiguous(exp_avg_sq);
      step(p, contiguous(grad), m, v, args);
      const auto copy = detail::kernel(param.device(), &Backend::copy, op);
      if (p.impl() != param.impl()) copy(p, param);
      if (m.impl() != exp_avg.impl()) copy(m, exp_avg);
      if (v.impl() != exp_avg_sq.impl()) copy(v, exp_avg_sq);
    }
  }
  for (const Tensor* t : {&param, &exp_avg, &exp_avg_sq}) t->impl()->storage->bump_version();
}

}  // namespace heed
