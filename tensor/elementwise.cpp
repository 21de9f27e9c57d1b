// Elementwise ops with NumPy broadcasting, each with its backward written in
// tensor ops (so double backward works). Gradients of broadcast operands are
// summed back to their shapes with sum_to.
#include <cmath>

#include "tensor/record.h"
#include "tensor/autocast.h"
#include "tensor/op_helpers.h"

namespace heed {

namespace {

constexpr double kPi = 3.14159265358979323846;

Tensor unary_kernel(UnaryOp op, const Tensor& x, const char* name, double a = 0, double b = 0,
                    DType out_dtype = DType::Float32, bool keep_dtype = true) {
  detail::check_defined(x, name);
  Tensor out = empty(x.shape(), keep_dtype ? x.dtype() : out_dtype, x.device());
  if (x.numel() > 0) detail::kernel(x.device(), &Backend::unary, name)(op, x, a, b, out);
  return out;
}

Tensor float_unary(UnaryOp op, const Tensor& x, const char* name, double a = 0, double b = 0) {
  detail::check_floating(x, name);
  return unary_kernel(op, x, name, a, b);
}

bool is_comparison(BinaryOp op) {
  return op == BinaryOp::Eq || op == BinaryOp::Ne || op == BinaryOp::Lt || op == BinaryOp::Le || op == BinaryOp::Gt ||
         op == BinaryOp::Ge || op == BinaryOp::LogicalAnd || op == BinaryOp::LogicalOr;
}

Tensor binary_kernel(BinaryOp op, const Tensor& a, const Tensor& b, const char* name) {
  detail::check_same(a, b, name);
  Shape shape = broadcast_shapes(a.shape(), b.shape(), name);
  Tensor out = empty(shape, is_comparison(op) ? DType::Bool : a.dtype(), a.device());
  if (out.numel() > 0)
    detail::kernel(a.device(), &Backend::binary, name)(op, detail::broadcast_view(a, shape),
                                                       detail::broadcast_view(b, shape), out);
  return out;
}

Tensor scalar_like(double v, const Tensor& t) { return scalar_tensor(v, t.dtype(), t.device()); }

// A float mask (1 where cond) in t's dtype, for gradients that pass or stop.
Tensor mask_like(const Tensor& cond, const Tensor& t) { return to_dtype(cond, t.dtype()); }

void check_arithmetic(const Tensor& t, const char* name) {
  detail::check_defined(t, name);
  HEED_CHECK(t.dtype() != DType::Bool, "{}: arithmetic on a bool tensor (shape {}); convert it with .to() first", name,
             shape_str(t.shape()));
}

// The operands of add, sub, mul and div: each widened by autocast to the
// wider dtype of the two, then checked.
struct Operands {
  Tensor a, b;
};
Operands arithmetic_operands(const Tensor& a_in, const Tensor& b_in, const char* name) {
  Operands o{autocast::widest(a_in, b_in), autocast::widest(b_in, a_in)};
  check_arithmetic(o.a, name);
  check_arithmetic(o.b, name);
  return o;
}

}  // namespace

Tensor add(const Tensor& a_in, const Tensor& b_in, double alpha) {
  const auto [a, b] = arithmetic_operands(a_in, b_in, "add");
  Tensor out = alpha == 1.0 ? binary_kernel(BinaryOp::Add, a, b, "add")
                            : binary_kernel(BinaryOp::Add, a, mul(b.detach(), alpha), "add");
  if (auto* node = record("add", {a, b}, out)) {
    node->backward = [sa = a.shape(), sb = b.shape(), alpha](const Tensor& g) {
      return TensorList{sum_to(g, sa), sum_to(alpha == 1.0 ? g : mul(g, alpha), sb)};
    };
  }
  return out;
}

Tensor sub(const Tensor& a_in, const Tensor& b_in) {
  const auto [a, b] = arithmetic_operands(a_in, b_in, "sub");
  Tensor out = binary_kernel(BinaryOp::Sub, a, b, "sub");
  if (auto* node = record("sub", {a, b}, out))
    node->backward = [sa = a.shape(), sb = b.shape()](const Tensor& g) { return TensorList{sum_to(g, sa), sum_to(neg(g), sb)}; };
  return out;
}

Tensor mul(const Tensor& a_in, const Tensor& b_in) {
  const auto [a, b] = arithmetic_operands(a_in, b_in, "mul");
  Tensor out = binary_kernel(BinaryOp::Mul, a, b, "mul");
  if (auto* node = record("mul", {a, b}, out)) {
    node->backward = [sa = SavedTensor(a), sb = SavedTensor(b), shape_a = a.shape(), shape_b = b.shape(),
                      ra = a.requires_grad(), rb = b.requires_grad()](const Tensor& g) {
      Tensor ga = ra ? sum_to(mul(g, sb.unpack("mul")), shape_a) : Tensor();
      Tensor gb = rb ? sum_to(mul(g, sa.unpack("mul")), shape_b) : Tensor();
      return TensorList{ga, gb};
    };
  }
  return out;
}

Tensor div(const Tensor& a_in, const Tensor& b_in) {
  const auto [a, b] = arithmetic_operands(a_in, b_in, "div");
  Tensor out = binary_kernel(BinaryOp::Div, a, b, "div");
  if (auto* node = record("div", {a, b}, out)) {
    node->backward = [sa = SavedTensor(a), sb = SavedTensor(b), shape_a = a.shape(), shape_b = b.shape(),
                      rb = b.requires_grad()](const Tensor& g) {
      Tensor bb = sb.unpack("div");
      Tensor ga = sum_to(div(g, bb), shape_a);
      Tensor gb = rb ? sum_to(neg(div(mul(g, sa.unpack("div")), mul(bb, bb))), shape_b) : Tensor();
      return TensorList{ga, gb};
    };
  }
  return out;
}

Tensor add(const Tensor& a, double b) {
  check_arithmetic(a, "add");
  Tensor out = unary_kernel(UnaryOp::AddScalar, a, "add", b);
  if (auto* node = record("add_scalar", {a}, out)) node->backward = [](const Tensor& g) { return TensorList{g}; };
  return out;
}

Tensor mul(const Tensor& a, double b) {
  check_arithmetic(a, "mul");
  Tensor out = unary_kernel(UnaryOp::MulScalar, a, "mul", b);
  if (auto* node = record("mul_scalar", {a}, out)) node->backward = [b](const Tensor& g) { return TensorList{mul(g, b)}; };
  return out;
}

Tensor neg(const Tensor& t) {
  check_arithmetic(t, "neg");
  Tensor out = unary_kernel(UnaryOp::Neg, t, "neg");
  if (auto* node = record("neg", {t}, out)) node->backward = [](const Tensor& g) { return TensorList{neg(g)}; };
  return out;
}

Tensor pow(const Tensor& t, double e) {
  Tensor out = float_unary(UnaryOp::PowScalar, t, "pow", e);
  if (auto* node = record("pow", {t}, out)) {
    node->backward = [st = SavedTensor(t), e](const Tensor& g) {
      if (e == 0) return TensorList{zeros_like(g)};
      return TensorList{mul(g, mul(pow(st.unpack("pow"), e - 1), e))};
    };
  }
  return out;
}

Tensor pow(const Tensor& base_in, const Tensor& exponent_in) {
  const Tensor base = autocast::widest(base_in, exponent_in), exponent = autocast::widest(exponent_in, base_in);
  detail::check_floating(base, "pow");
  Tensor out = binary_kernel(BinaryOp::Pow, base, exponent, "pow");
  if (auto* node = record("pow", {base, exponent}, out)) {
    node->backward = [sa = SavedTensor(base), sb = SavedTensor(exponent), so = SavedTensor(out), shape_a = base.shape(),
                      shape_b = exponent.shape(), rb = exponent.requires_grad()](const Tensor& g) {
      Tensor a = sa.unpack("pow"), b = sb.unpack("pow");
      Tensor ga = sum_to(mul(g, mul(b, pow(a, sub(b, scalar_like(1, b))))), shape_a);
      // d/db a^b = a^b log a; where a == 0 the limit used by PyTorch is 0.
      Tensor gb;
      if (rb) {
        Tensor zero = scalar_like(0, a);
        Tensor safe_log = where(eq(a, zero), zero, log(where(eq(a, zero), scalar_like(1, a), a)));
        gb = sum_to(mul(g, mul(so.unpack("pow"), safe_log)), shape_b);
      }
      return TensorList{ga, gb};
    };
  }
  return out;
}

Tensor exp(const Tensor& t) {
  Tensor out = float_unary(UnaryOp::Exp, t, "exp");
  if (auto* node = record("exp", {t}, out))
    node->backward = [so = SavedTensor(out)](const Tensor& g) { return TensorList{mul(g, so.unpack("exp"))}; };
  return out;
}

Tensor log(const Tensor& t) {
  Tensor out = float_unary(UnaryOp::Log, t, "log");
  if (auto* node = record("log", {t}, out))
    node->backward = [st = SavedTensor(t)](const Tensor& g) { return TensorList{div(g, st.unpack("log"))}; };
  return out;
}

Tensor sqrt(const Tensor& t) {
  Tensor out = float_unary(UnaryOp::Sqrt, t, "sqrt");
  if (auto* node = record("sqrt", {t}, out))
    node->backward = [so = SavedTensor(out)](const Tensor& g) { return TensorList{div(mul(g, 0.5), so.unpack("sqrt"))}; };
  return out;
}

Tensor rsqrt(const Tensor& t) {
  Tensor out = float_unary(UnaryOp::Rsqrt, t, "rsqrt");
  if (auto* node = record("rsqrt", {t}, out)) {
    node->backward = [so = SavedTensor(out)](const Tensor& g) {
      Tensor y = so.unpack("rsqrt");
      return TensorList{mul(mul(g, mul(y, mul(y, y))), -0.5)};
    };
  }
  return out;
}

Tensor square(const Tensor& t) {
  check_arithmetic(t, "square");
  Tensor out = unary_kernel(UnaryOp::Square, t, "square");
  if (auto* node = record("square", {t}, out))
    node->backward = [st = SavedTensor(t)](const Tensor& g) { return TensorList{mul(mul(g, st.unpack("square")), 2.0)}; };
  return out;
}

Tensor reciprocal(const Tensor& t) {
  Tensor out = float_unary(UnaryOp::Reciprocal, t, "reciprocal");
  if (auto* node = record("reciprocal", {t}, out)) {
    node->backward = [so = SavedTensor(out)](const Tensor& g) {
      Tensor y = so.unpack("reciprocal");
      return TensorList{neg(mul(g, mul(y, y)))};
    };
  }
  return out;
}

Tensor tanh(const Tensor& t) {
  Tensor out = float_unary(UnaryOp::Tanh, t, "tanh");
  if (auto* node = record("tanh", {t}, out)) {
    node->backward = [so = SavedTensor(out)](const Tensor& g) {
      Tensor y = so.unpack("tanh");
      return TensorList{mul(g, add(neg(mul(y, y)), 1.0))};
    };
  }
  return out;
}

Tensor sigmoid(const Tensor& t) {
  Tensor out = float_unary(UnaryOp::Sigmoid, t, "sigmoid");
  if (auto* node = record("sigmoid", {t}, out)) {
    node->backward = [so = SavedTensor(out)](const Tensor& g) {
      Tensor y = so.unpack("sigmoid");
      return TensorList{mul(g, mul(y, add(neg(y), 1.0)))};
    };
  }
  return out;
}

namespace detail {

// g where y > 0, else 0, in one pass (composed it was a comparison, a cast of
// the mask and a product: three passes over the layer's widest activation).
// It is linear in g, and its derivative in y is zero almost everywhere, so its
// own backward is itself, and a second-order graph sees the same function.
Tensor relu_backward(const Tensor& g, const Tensor& y) {
  detail::check_floating(g, "relu_backward");
  HEED_CHECK(g.shape() == y.shape(), "relu_backward: the gradient {} and the output {} must have one shape",
             shape_str(g.shape()), shape_str(y.shape()));
  Tensor out = binary_kernel(BinaryOp::ReluGrad, g, y.detach(), "relu_backward");
  if (auto* node = record("relu_backward", {g}, out)) {
    node->backward = [sy = SavedTensor(y.detach())](const Tensor& gg) {
      return TensorList{relu_backward(gg, sy.unpack("relu_backward"))};
    };
  }
  return out;
}

// g * gelu'(x) in one pass (composed it was about nine passes over the
// widest activation of a transformer: erf, exp, squares, products and sums).
// Its own backward, needed only for second derivatives, is composed:
//   d/dg = gelu'(x) (this op again),  d/dx = g gelu''(x) with
//   erf:  gelu''(x) = phi(x) (2 - x^2)
//   tanh: gelu''(x) = (1 - t^2) (u' + x (u'' - 2 t u'^2) / 2),  t = tanh(u),
//         u = k (x + c x^3), u' = k (1 + 3 c x^2), u'' = 6 k c x
Tensor gelu_backward(const Tensor& g, const Tensor& x, bool exact) {
  detail::check_floating(g, "gelu_backward");
  HEED_CHECK(g.shape() == x.shape(), "gelu_backward: the gradient {} and the input {} must have one shape",
             shape_str(g.shape()), shape_str(x.shape()));
  Tensor out = binary_kernel(exact ? BinaryOp::GeluErfGrad : BinaryOp::GeluTanhGrad, g.detach(), x.detach(),
                             "gelu_backward");
  if (auto* node = record("gelu_backward", {g, x}, out)) {
    node->backward = [sg = SavedTensor(g), sx = SavedTensor(x), exact](const Tensor& gg) {
      const Tensor g = sg.unpack("gelu_backward"), x = sx.unpack("gelu_backward");
      const Tensor x2 = square(x);
      Tensor second;  // gelu''(x)
      if (exact) {
        Tensor pdf = mul(exp(mul(x2, -0.5)), 1.0 / std::sqrt(2.0 * kPi));
        second = mul(pdf, sub(scalar_like(2.0, x), x2));
      } else {
        const double k = std::sqrt(2.0 / kPi), c = 0.044715;
        Tensor t = tanh(mul(mul(x, add(mul(x2, c), 1.0)), k));
        Tensor u1 = mul(add(mul(x2, 3 * c), 1.0), k);
        Tensor u2 = mul(x, 6 * k * c);
        Tensor inner = add(u1, mul(mul(x, sub(u2, mul(mul(t, square(u1)), 2.0))), 0.5));
        second = mul(sub(scalar_like(1.0, t), square(t)), inner);
      }
      return TensorList{gelu_backward(gg, x, exact), mul(mul(gg, g), second)};
    };
  }
  return out;
}

}  // namespace detail

Tensor relu(const Tensor& t) {
  Tensor out = float_unary(UnaryOp::Relu, t, "relu");
  if (auto* node = record("relu", {t}, out)) {
    node->backward = [so = SavedTensor(out)](const Tensor& g) {
      return TensorList{detail::relu_backward(g, so.unpack("relu"))};
    };
  }
  return out;
}

Tensor gelu(const Tensor& t, GeluApprox approx) {
  bool exact = approx == GeluApprox::None;
  Tensor out = float_unary(exact ? UnaryOp::GeluErf : UnaryOp::GeluTanh, t, "gelu");
  if (auto* node = record("gelu", {t}, out)) {
    node->backward = [st = SavedTensor(t), exact](const Tensor& g) {
      return TensorList{detail::gelu_backward(g, st.unpack("gelu"), exact)};
    };
  }
  return out;
}

Tensor erf(const Tensor& t) {
  Tensor out = float_unary(UnaryOp::Erf, t, "erf");
  if (auto* node = record("erf", {t}, out)) {
    node->backward = [st = SavedTensor(t)](const Tensor& g) {
      Tensor x = st.unpack("erf");
      return TensorList{mul(g, mul(exp(neg(square(x))), 2.0 / std::sqrt(kPi)))};
    };
  }
  return out;
}

Tensor sin(const Tensor& t) {
  Tensor out = float_unary(UnaryOp::Sin, t, "sin");
  if (auto* node = record("sin", {t}, out))
    node->backward = [st = SavedTensor(t)](const Tensor& g) { return TensorList{mul(g, cos(st.unpack("sin")))}; };
  return out;
}

Tensor cos(const Tensor& t) {
  Tensor out = float_unary(UnaryOp::Cos, t, "cos");
  if (auto* node = record("cos", {t}, out))
    node->backward = [st = SavedTensor(t)](const Tensor& g) { return TensorList{neg(mul(g, sin(st.unpack("cos"))))}; };
  return out;
}

Tensor abs(const Tensor& t) {
  check_arithmetic(t, "abs");
  Tensor out = unary_kernel(UnaryOp::Abs, t, "abs");
  if (auto* node = record("abs", {t}, out))
    node->backward = [st = SavedTensor(t)](const Tensor& g) { return TensorList{mul(g, sign(st.unpack("abs").detach()))}; };
  return out;
}

Tensor sign(const Tensor& t) {
  check_arithmetic(t, "sign");
  Tensor out = unary_kernel(UnaryOp::Sign, t, "sign");
  if (auto* node = record("sign", {t}, out)) node->backward = [](const Tensor& g) { return TensorList{zeros_like(g)}; };
  return out;
}

Tensor clamp(const Tensor& t, double lo, double hi) {
  check_arithmetic(t, "clamp");
  HEED_CHECK(!(lo > hi), "clamp: min ({}) is greater than max ({})", lo, hi);
  Tensor out = unary_kernel(UnaryOp::Clamp, t, "clamp", lo, hi);
  if (auto* node = record("clamp", {t}, out)) {
    node->backward = [st = SavedTensor(t), lo, hi](const Tensor& g) {
      Tensor x = st.unpack("clamp").detach();
      Tensor inside = logical_and(ge(x, scalar_like(lo, x)), le(x, scalar_like(hi, x)));
      return TensorList{mul(g, mask_like(inside, g))};
    };
  }
  return out;
}

namespace {
// Gradient share of `a` in max/min(a, b): all where it wins, half on ties.
Tensor extreme_share(const Tensor& a, const Tensor& b, bool is_max) {
  Tensor wins = is_max ? gt(a, b) : lt(a, b);
  return add(mask_like(wins, a), mul(mask_like(eq(a, b), a), 0.5));
}

Tensor extreme(const Tensor& a_in, const Tensor& b_in, bool is_max) {
  const Tensor a = autocast::widest(a_in, b_in), b = autocast::widest(b_in, a_in);
  const char* name = is_max ? "maximum" : "minimum";
  check_arithmetic(a, name);
  Tensor out = binary_kernel(is_max ? BinaryOp::Maximum : BinaryOp::Minimum, a, b, name);
  if (auto* node = record(name, {a, b}, out)) {
    node->backward = [sa = SavedTensor(a), sb = SavedTensor(b), shape_a = a.shape(), shape_b = b.shape(), is_max,
                      name](const Tensor& g) {
      Tensor x = sa.unpack(name).detach(), y = sb.unpack(name).detach();
      return TensorList{sum_to(mul(g, extreme_share(x, y, is_max)), shape_a),
                        sum_to(mul(g, extreme_share(y, x, is_max)), shape_b)};
    };
  }
  return out;
}
}  // namespace

Tensor maximum(const Tensor& a, const Tensor& b) { return extreme(a, b, true); }
Tensor minimum(const Tensor& a, const Tensor& b) { return extreme(a, b, false); }

Tensor where(const Tensor& cond, const Tensor& a_in, const Tensor& b_in) {
  const Tensor a = autocast::widest(a_in, b_in), b = autocast::widest(b_in, a_in);
  detail::check_dtype(cond, DType::Bool, "where", "condition");
  detail::check_same(a, b, "where");
  detail::check_device(cond, a.device(), "where", "condition");
  Shape shape = broadcast_shapes(broadcast_shapes(cond.shape(), a.shape(), "where"), b.shape(), "where");
  Tensor out = empty(shape, a.dtype(), a.device());
  if (out.numel() > 0)
    detail::kernel(a.device(), &Backend::where, "where")(detail::broadcast_view(cond, shape),
                                                         detail::broadcast_view(a, shape),
                                                         detail::broadcast_view(b, shape), out);
  if (auto* node = record("where", {a, b}, out)) {
    node->backward = [cond, shape_a = a.shape(), shape_b = b.shape()](const Tensor& g) {
      Tensor zero = scalar_like(0, g);
      return TensorList{sum_to(where(cond, g, zero), shape_a), sum_to(where(cond, zero, g), shape_b)};
    };
  }
  return out;
}

Tensor lerp(const Tensor& start_in, const Tensor& end_in, double weight) {
  const Tensor start = autocast::widest(start_in, end_in), end = autocast::widest(end_in, start_in);
  detail::check_same(start, end, "lerp");
  detail::check_floating(start, "lerp");
  const Shape shape = broadcast_shapes(start.shape(), end.shape(), "lerp");
  // The kernel takes dense operands of the output's shape.
  Tensor out = empty(shape, start.dtype(), start.device());
  if (out.numel() > 0)
    detail::kernel(start.device(), &Backend::lerp, "lerp")(detail::dense_as(start, shape), detail::dense_as(end, shape),
                                                           weight, out);
  if (auto* node = record("lerp", {start, end}, out)) {
    node->backward = [shape_s = start.shape(), shape_e = end.shape(), weight](const Tensor& g) {
      return TensorList{sum_to(mul(g, 1.0 - weight), shape_s), sum_to(mul(g, weight), shape_e)};
    };
  }
  return out;
}

Tensor masked_fill(const Tensor& t, const Tensor& mask, double value) {
  detail::check_defined(t, "masked_fill");
  detail::check_dtype(mask, DType::Bool, "masked_fill", "mask");
  detail::check_device(mask, t.device(), "masked_fill", "mask");
  HEED_CHECK(broadcast_shapes(t.shape(), mask.shape(), "masked_fill") == t.shape(),
             "masked_fill: mask of shape {} does not broadcast to the input's shape {}", shape_str(mask.shape()),
             shape_str(t.shape()));
  Tensor fill = scalar_like(value, t);
  Tensor out = empty(t.shape(), t.dtype(), t.device());
  if (out.numel() > 0)
    detail::kernel(t.device(), &Backend::where, "masked_fill")(detail::broadcast_view(mask, t.shape()),
                                                               detail::broadcast_view(fill, t.shape()), t, out);
  if (auto* node = record("masked_fill", {t}, out)) {
    node->backward = [mask](const Tensor& g) { return TensorList{where(mask, scalar_like(0, g), g)}; };
  }
  return out;
}

Tensor eq(const Tensor& a, const Tensor& b) { return binary_kernel(BinaryOp::Eq, a, b, "eq"); }
Tensor ne(const Tensor& a, const Tensor& b) { return binary_kernel(BinaryOp::Ne, a, b, "ne"); }
Tensor lt(const Tensor& a, const Tensor& b) { return binary_kernel(BinaryOp::Lt, a, b, "lt"); }
Tensor le(const Tensor& a, const Tensor& b) { return binary_kernel(BinaryOp::Le, a, b, "le"); }
Tensor gt(const Tensor& a, const Tensor& b) { return binary_kernel(BinaryOp::Gt, a, b, "gt"); }
Tensor ge(const Tensor& a, const Tensor& b) { return binary_kernel(BinaryOp::Ge, a, b, "ge"); }

Tensor logical_and(const Tensor& a, const Tensor& b) {
  detail::check_dtype(a, DType::Bool, "logical_and", "first input");
  return binary_kernel(BinaryOp::LogicalAnd, a, b, "logical_and");
}

Tensor logical_or(const Tensor& a, const Tensor& b) {
  detail::check_dtype(a, DType::Bool, "logical_or", "first input");
  return binary_kernel(BinaryOp::LogicalOr, a, b, "logical_or");
}

Tensor logical_not(const Tensor& t) {
  detail::check_dtype(t, DType::Bool, "logical_not", "input");
  return unary_kernel(UnaryOp::LogicalNot, t, "logical_not");
}

Tensor isnonfinite(const Tensor& t) {
  return unary_kernel(UnaryOp::IsNonFinite, t, "isnonfinite", 0, 0, DType::Bool, false);
}

bool any_non_finite(const Tensor& t) {
  if (!is_floating(t.dtype()) || t.numel() == 0) return false;
  return sum(isnonfinite(t)).item<int64_t>() > 0;
}

}  // namespace heed
