// The CPU kernels, called directly through the op table (no op layer, no
// autograd): every unary and binary op against its scalar formula on strided
// and broadcast inputs, reductions over several dim sets, softmax with -inf
// rows, matmul on strided operands, the index kernels and their errors,
// Philox known answers, and bit-identical results for 1, 2 and 3 threads.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <limits>
#include <string>
#include <vector>

#include "autograd/engine.h"
#include "tensor/backend.h"
#include "tensor/cpu/cpu_backend.h"
#include "tensor/cpu/parallel.h"
#include "tensor/ops.h"
#include "tensor/cpu/philox_blocks.h"
#include "tensor/philox.h"
#include "tensor/tensor_impl.h"
#include "tests/test_util.h"

using namespace heed;
using namespace heed::test;

namespace {

const Backend& kernels() { return backend(DeviceType::CPU); }

// The transpose of the last two dims, as a view (no copy).
Tensor transposed(const Tensor& t) {
  Shape shape = t.shape(), strides = t.strides();
  std::swap(shape[shape.size() - 1], shape[shape.size() - 2]);
  std::swap(strides[strides.size() - 1], strides[strides.size() - 2]);
  return make_view(t, shape, strides, t.offset());
}

// Runs f with 1, 2 and 3 threads and requires the returned tensors to agree to the bit.
void require_same_for_thread_counts(const std::function<Tensor()>& f) {
  const int saved = cpu::num_threads();
  std::vector<std::vector<double>> runs;
  for (int threads : {1, 2, 3}) {
    cpu::set_num_threads(threads);
    runs.push_back(values_of(f()));
  }
  cpu::set_num_threads(saved);
  for (size_t r = 1; r < runs.size(); ++r) {
    REQUIRE(runs[r].size() == runs[0].size());
    for (size_t i = 0; i < runs[0].size(); ++i) {
      INFO("run " << r << " element " << i);
      REQUIRE(std::memcmp(&runs[r][i], &runs[0][i], sizeof(double)) == 0);
    }
  }
}

double gelu_erf(double x) { return 0.5 * x * (1 + std::erf(x / std::sqrt(2.0))); }
double gelu_tanh(double x) {
  return 0.5 * x * (1 + std::tanh(std::sqrt(2 / 3.14159265358979323846) * (x + 0.044715 * x * x * x)));
}

struct UnaryCase {
  UnaryOp op;
  const char* name;
  double a, b;
  bool positive;  // domain (0.1, 3) rather than (-3, 3)
  std::function<double(double)> f;
};

std::vector<UnaryCase> float_unary_cases() {
  return {
      {UnaryOp::Neg, "neg", 0, 0, false, [](double x) { return -x; }},
      {UnaryOp::Exp, "exp", 0, 0, false, [](double x) { return std::exp(x); }},
      {UnaryOp::Log, "log", 0, 0, true, [](double x) { return std::log(x); }},
      {UnaryOp::Sqrt, "sqrt", 0, 0, true, [](double x) { return std::sqrt(x); }},
      {UnaryOp::Rsqrt, "rsqrt", 0, 0, true, [](double x) { return 1 / std::sqrt(x); }},
      {UnaryOp::Tanh, "tanh", 0, 0, false, [](double x) { return std::tanh(x); }},
      {UnaryOp::Sigmoid, "sigmoid", 0, 0, false, [](double x) { return 1 / (1 + std::exp(-x)); }},
      {UnaryOp::Relu, "relu", 0, 0, false, [](double x) { return x > 0 ? x : 0; }},
      {UnaryOp::GeluErf, "gelu_erf", 0, 0, false, gelu_erf},
      {UnaryOp::GeluTanh, "gelu_tanh", 0, 0, false, gelu_tanh},
      {UnaryOp::Abs, "abs", 0, 0, false, [](double x) { return std::abs(x); }},
      {UnaryOp::Sign, "sign", 0, 0, false, [](double x) { return double((x > 0) - (x < 0)); }},
      {UnaryOp::Erf, "erf", 0, 0, false, [](double x) { return std::erf(x); }},
      {UnaryOp::Sin, "sin", 0, 0, false, [](double x) { return std::sin(x); }},
      {UnaryOp::Cos, "cos", 0, 0, false, [](double x) { return std::cos(x); }},
      {UnaryOp::Reciprocal, "reciprocal", 0, 0, true, [](double x) { return 1 / x; }},
      {UnaryOp::Square, "square", 0, 0, false, [](double x) { return x * x; }},
      {UnaryOp::AddScalar, "add_scalar", 1.5, 0, false, [](double x) { return x + 1.5; }},
      {UnaryOp::MulScalar, "mul_scalar", -2.5, 0, false, [](double x) { return x * -2.5; }},
      {UnaryOp::PowScalar, "pow_scalar 2", 2, 0, false, [](double x) { return x * x; }},
      {UnaryOp::PowScalar, "pow_scalar 1.7", 1.7, 0, true, [](double x) { return std::pow(x, 1.7); }},
      {UnaryOp::Clamp, "clamp", -0.5, 1.25, false, [](double x) { return std::min(std::max(x, -0.5), 1.25); }},
  };
}

}  // namespace

// ---- elementwise -------------------------------------------------------------------

TEST_CASE("every float unary op matches its formula on a transposed input", "[cpu]") {
  for (DType dtype : {DType::Float32, DType::Float64}) {
    const double tol = dtype == DType::Float32 ? 2e-6 : 1e-13;
    for (const UnaryCase& c : float_unary_cases()) {
      INFO(c.name << " " << dtype_name(dtype));
      // base [7, 5]; x = base^T [5, 7] has strides (1, 5).
      Tensor base = host_tensor({7, 5}, dtype, [&](int64_t i) {
        double u = std::fmod(i * 0.6180339887, 1.0);
        return c.positive ? 0.1 + 2.9 * u : -3 + 6 * u;
      });
      Tensor x = transposed(base);
      Tensor out = empty({5, 7}, dtype);
      kernels().unary(c.op, x, c.a, c.b, out);
      std::vector<double> want;
      for (double v : values_of(x)) want.push_back(c.f(v));
      require_close(values_of(out), want, tol);
    }
  }
}

TEST_CASE("unary edge values: sigmoid far out, relu and clamp keep NaN, is_non_finite", "[cpu]") {
  const double inf = std::numeric_limits<double>::infinity(), nan = std::nan("");
  std::vector<double> in = {-1000, -100, 0, 100, 1000, nan, inf, -inf};
  Tensor x = host_tensor({8}, DType::Float32, [&](int64_t i) { return in[i]; });
  Tensor out = empty({8}, DType::Float32);
  kernels().unary(UnaryOp::Sigmoid, x, 0, 0, out);
  require_close(values_of(out), {0, 1 / (1 + std::exp(100.0)), 0.5, 1, 1, nan, 1, 0}, 1e-6);
  kernels().unary(UnaryOp::Relu, x, 0, 0, out);
  require_close(values_of(out), {0, 0, 0, 100, 1000, nan, inf, 0}, 0);
  kernels().unary(UnaryOp::Clamp, x, -1, 1, out);
  require_close(values_of(out), {-1, -1, 0, 1, 1, nan, 1, -1}, 0);
  Tensor flags = empty({8}, DType::Bool);
  kernels().unary(UnaryOp::IsNonFinite, x, 0, 0, flags);
  REQUIRE(values_of(flags) == std::vector<double>{0, 0, 0, 0, 0, 1, 1, 1});
}

TEST_CASE("integer and bool unary ops, and invalid combinations throw", "[cpu]") {
  Tensor x = host_tensor({6}, DType::Int64, [](int64_t i) { return double(i) * 3 - 7; });  // -7 -4 -1 2 5 8
  Tensor out = empty({6}, DType::Int64);
  kernels().unary(UnaryOp::Neg, x, 0, 0, out);
  REQUIRE(values_of(out) == std::vector<double>{7, 4, 1, -2, -5, -8});
  kernels().unary(UnaryOp::Abs, x, 0, 0, out);
  REQUIRE(values_of(out) == std::vector<double>{7, 4, 1, 2, 5, 8});
  kernels().unary(UnaryOp::Sign, x, 0, 0, out);
  REQUIRE(values_of(out) == std::vector<double>{-1, -1, -1, 1, 1, 1});
  kernels().unary(UnaryOp::Square, x, 0, 0, out);
  REQUIRE(values_of(out) == std::vector<double>{49, 16, 1, 4, 25, 64});
  kernels().unary(UnaryOp::AddScalar, x, 3, 0, out);
  REQUIRE(values_of(out) == std::vector<double>{-4, -1, 2, 5, 8, 11});
  kernels().unary(UnaryOp::MulScalar, x, -2, 0, out);
  REQUIRE(values_of(out) == std::vector<double>{14, 8, 2, -4, -10, -16});
  kernels().unary(UnaryOp::Clamp, x, -2, std::numeric_limits<double>::infinity(), out);
  REQUIRE(values_of(out) == std::vector<double>{-2, -2, -1, 2, 5, 8});
  REQUIRE_THROWS_AS(kernels().unary(UnaryOp::Exp, x, 0, 0, out), Error);
  REQUIRE_THROWS_WITH(kernels().unary(UnaryOp::Sqrt, x, 0, 0, out),
                      Catch::Contains("sqrt") && Catch::Contains("int64"));

  Tensor b = host_tensor({3}, DType::Bool, [](int64_t i) { return i % 2; });
  Tensor nb = empty({3}, DType::Bool);
  kernels().unary(UnaryOp::LogicalNot, b, 0, 0, nb);
  REQUIRE(values_of(nb) == std::vector<double>{1, 0, 1});
  REQUIRE_THROWS_AS(kernels().unary(UnaryOp::Neg, b, 0, 0, nb), Error);
  Tensor f = host_tensor({3}, DType::Float32, [](int64_t i) { return double(i); });
  Tensor nf = empty({3}, DType::Bool);
  REQUIRE_THROWS_WITH(kernels().unary(UnaryOp::LogicalNot, f, 0, 0, nf),
                      Catch::Contains("logical_not") && Catch::Contains("float32"));
}

TEST_CASE("every binary op matches its formula with broadcast and strided inputs", "[cpu]") {
  struct Case {
    BinaryOp op;
    const char* name;
    std::function<double(double, double)> f;
    bool to_bool;
  };
  const std::vector<Case> cases = {
      {BinaryOp::Add, "add", [](double p, double q) { return p + q; }, false},
      {BinaryOp::Sub, "sub", [](double p, double q) { return p - q; }, false},
      {BinaryOp::Mul, "mul", [](double p, double q) { return p * q; }, false},
      {BinaryOp::Div, "div", [](double p, double q) { return p / q; }, false},
      {BinaryOp::Pow, "pow", [](double p, double q) { return std::pow(p, q); }, false},
      {BinaryOp::Maximum, "maximum", [](double p, double q) { return std::max(p, q); }, false},
      {BinaryOp::Minimum, "minimum", [](double p, double q) { return std::min(p, q); }, false},
      {BinaryOp::ReluGrad, "relu_grad", [](double p, double q) { return q > 0 ? p : 0.0; }, false},
      {BinaryOp::GeluErfGrad, "gelu_erf_grad",
       [](double p, double q) {
         return p * (0.5 * (1 + std::erf(q / std::sqrt(2.0))) + q * std::exp(-q * q / 2) / std::sqrt(2 * M_PI));
       },
       false},
      {BinaryOp::GeluTanhGrad, "gelu_tanh_grad",
       [](double p, double q) {
         const double k = std::sqrt(2 / M_PI), c = 0.044715, t = std::tanh(k * (q + c * q * q * q));
         return p * (0.5 * (1 + t) + 0.5 * q * (1 - t * t) * k * (1 + 3 * c * q * q));
       },
       false},
      {BinaryOp::Eq, "eq", [](double p, double q) { return double(p == q); }, true},
      {BinaryOp::Ne, "ne", [](double p, double q) { return double(p != q); }, true},
      {BinaryOp::Lt, "lt", [](double p, double q) { return double(p < q); }, true},
      {BinaryOp::Le, "le", [](double p, double q) { return double(p <= q); }, true},
      {BinaryOp::Gt, "gt", [](double p, double q) { return double(p > q); }, true},
      {BinaryOp::Ge, "ge", [](double p, double q) { return double(p >= q); }, true},
  };
  for (DType dtype : {DType::Float32, DType::Float64}) {
    const double tol = dtype == DType::Float32 ? 2e-6 : 1e-13;
    // x: a transposed [6, 4] view; y: a [4] row broadcast to [4, 6]... as stride 0
    // over dim 1, and a scalar broadcast to everything.
    Tensor xb = host_tensor({6, 4}, dtype, [](int64_t i) { return 0.25 + (i % 7) * 0.5; });
    Tensor x = transposed(xb);                                                  // [4, 6]
    Tensor yb = host_tensor({4}, dtype, [](int64_t i) { return 0.75 + double(i % 3); });  // 0.75 1.75 2.75 0.75
    Tensor y = make_view(yb, {4, 6}, {1, 0}, 0);
    Tensor s = make_view(yb, {4, 6}, {0, 0}, 1);  // every element is 1.75
    for (const Case& c : cases) {
      for (const Tensor& other : {y, s}) {
        INFO(c.name << " " << dtype_name(dtype));
        Tensor out = empty({4, 6}, c.to_bool ? DType::Bool : dtype);
        kernels().binary(c.op, x, other, out);
        std::vector<double> xv = values_of(x), yv = values_of(other), want;
        for (size_t i = 0; i < xv.size(); ++i) want.push_back(c.f(xv[i], yv[i]));
        require_close(values_of(out), want, tol);
        kernels().binary(c.op, other, x, out);  // the broadcast operand first
        want.clear();
        for (size_t i = 0; i < xv.size(); ++i) want.push_back(c.f(yv[i], xv[i]));
        require_close(values_of(out), want, tol);
      }
    }
  }
}

TEST_CASE("binary: NaN propagates through maximum/minimum; integer and bool rules", "[cpu]") {
  const double nan = std::nan("");
  Tensor x = host_tensor({3}, DType::Float64, [&](int64_t i) { return i == 1 ? nan : double(i); });
  Tensor y = host_tensor({3}, DType::Float64, [&](int64_t i) { return i == 2 ? nan : 1.0; });
  Tensor out = empty({3}, DType::Float64);
  kernels().binary(BinaryOp::Maximum, x, y, out);
  require_close(values_of(out), {1, nan, nan}, 0);
  kernels().binary(BinaryOp::Minimum, y, x, out);
  require_close(values_of(out), {0, nan, nan}, 0);

  Tensor a = host_tensor({4}, DType::Int64, [](int64_t i) { return std::vector<double>{7, -7, 9, 2}[i]; });
  Tensor b = host_tensor({4}, DType::Int64, [](int64_t i) { return std::vector<double>{2, 2, -4, 5}[i]; });
  Tensor o = empty({4}, DType::Int64);
  kernels().binary(BinaryOp::Div, a, b, o);  // truncates toward zero
  REQUIRE(values_of(o) == std::vector<double>{3, -3, -2, 0});
  Tensor bp = host_tensor({4}, DType::Int64, [](int64_t i) { return double(i); });
  kernels().binary(BinaryOp::Pow, a, bp, o);
  REQUIRE(values_of(o) == std::vector<double>{1, -7, 81, 8});
  Tensor zero = host_tensor({4}, DType::Int64, [](int64_t i) { return i == 3 ? 0.0 : 1.0; });
  REQUIRE_THROWS_WITH(kernels().binary(BinaryOp::Div, a, zero, o), Catch::Contains("division by zero"));

  Tensor p = host_tensor({4}, DType::Bool, [](int64_t i) { return i & 1; });
  Tensor q = host_tensor({4}, DType::Bool, [](int64_t i) { return (i >> 1) & 1; });
  Tensor r = empty({4}, DType::Bool);
  kernels().binary(BinaryOp::LogicalAnd, p, q, r);
  REQUIRE(values_of(r) == std::vector<double>{0, 0, 0, 1});
  kernels().binary(BinaryOp::LogicalOr, p, q, r);
  REQUIRE(values_of(r) == std::vector<double>{0, 1, 1, 1});
  REQUIRE_THROWS_AS(kernels().binary(BinaryOp::Add, p, q, r), Error);
  Tensor fo = empty({3}, DType::Bool);
  REQUIRE_THROWS_AS(kernels().binary(BinaryOp::LogicalAnd, x, y, fo), Error);
}

TEST_CASE("where, copy between dtypes into a strided dst, and fill", "[cpu]") {
  Tensor cond = host_tensor({3}, DType::Bool, [](int64_t i) { return i != 1; });
  Tensor c = make_view(cond, {2, 3}, {0, 1}, 0);  // broadcast over rows
  Tensor x = host_tensor({2, 3}, DType::Float32, [](int64_t i) { return double(i); });
  Tensor y = host_tensor({2, 3}, DType::Float32, [](int64_t i) { return -double(i); });
  Tensor out = empty({2, 3}, DType::Float32);
  kernels().where(c, x, y, out);
  REQUIRE(values_of(out) == std::vector<double>{0, -1, 2, 3, -4, 5});

  Tensor src = host_tensor({2, 3}, DType::Float64, [](int64_t i) { return std::vector<double>{0, -1.75, 2.5, 0.25, 0, 7}[i]; });
  Tensor dst_base = empty({3, 2}, DType::Int64);
  Tensor dst = transposed(dst_base);  // [2, 3], strides (1, 2)
  kernels().copy(src, dst);
  REQUIRE(values_of(dst) == std::vector<double>{0, -1, 2, 0, 0, 7});
  REQUIRE(values_of(dst_base) == std::vector<double>{0, 0, -1, 0, 2, 7});
  Tensor flags = empty({2, 3}, DType::Bool);
  kernels().copy(src, flags);
  REQUIRE(values_of(flags) == std::vector<double>{0, 1, 1, 1, 0, 1});
  Tensor back = empty({2, 3}, DType::Float32);
  kernels().copy(flags, back);
  REQUIRE(values_of(back) == std::vector<double>{0, 1, 1, 1, 0, 1});

  Tensor row = host_tensor({3}, DType::Int64, [](int64_t i) { return double(i) - 1; });
  Tensor expanded = empty({2, 3}, DType::Int64);
  kernels().copy(make_view(row, {2, 3}, {0, 1}, 0), expanded);  // expand(...).contiguous()
  REQUIRE(values_of(expanded) == std::vector<double>{-1, 0, 1, -1, 0, 1});

  Tensor f = host_tensor({4, 4}, DType::Float32, [](int64_t) { return 0.0; });
  Tensor every_other = make_view(f, {2, 4}, {8, 1}, 4);  // rows 1 and 3
  kernels().fill(every_other, 2.5);
  REQUIRE(values_of(f) == std::vector<double>{0, 0, 0, 0, 2.5, 2.5, 2.5, 2.5, 0, 0, 0, 0, 2.5, 2.5, 2.5, 2.5});
}

TEST_CASE("copy of transposed views, large enough for the tiled path", "[cpu]") {
  for (DType dtype : {DType::Float32, DType::Float64, DType::UInt8}) {
    // base [3, 70, 45]; x = its last two dims swapped [3, 45, 70], and a
    // permutation that puts base's unit stride in the middle [45, 3, 70].
    Tensor base = host_tensor({3, 70, 45}, dtype, [](int64_t i) { return double(i % 251); });
    const std::vector<double> bv = values_of(base);
    Tensor x = transposed(base);
    Tensor out = empty({3, 45, 70}, dtype);
    kernels().copy(x, out);
    REQUIRE(values_of(out) == values_of(x));
    Tensor y = make_view(base, {45, 3, 70}, {1, 70 * 45, 45}, 0);
    Tensor out2 = empty({45, 3, 70}, dtype);
    kernels().copy(y, out2);
    const std::vector<double> ov = values_of(out2);
    for (int64_t a = 0; a < 45; ++a)
      for (int64_t b = 0; b < 3; ++b)
        for (int64_t c = 0; c < 70; ++c) REQUIRE(ov[(a * 3 + b) * 70 + c] == bv[(b * 70 + c) * 45 + a]);
  }
}

// ---- reductions --------------------------------------------------------------------

namespace {
// The reference: reduce x [3, 4, 5] (given as values) over the dims in `reduced`.
std::vector<double> naive_reduce(ReduceOp op, const std::vector<double>& xv, const Shape& shape,
                                 const std::vector<bool>& reduced) {
  Shape out_shape = shape;
  for (size_t d = 0; d < shape.size(); ++d)
    if (reduced[d]) out_shape[d] = 1;
  const int64_t n_out = numel_of(out_shape);
  std::vector<double> acc(n_out, op == ReduceOp::Sum ? 0.0 : op == ReduceOp::Prod ? 1.0 : std::nan(""));
  std::vector<int64_t> idx(shape.size(), 0);
  for (size_t k = 0; k < xv.size(); ++k) {
    int64_t o = 0;
    for (size_t d = 0; d < shape.size(); ++d) o = o * out_shape[d] + (reduced[d] ? 0 : idx[d]);
    double& a = acc[o];
    switch (op) {
      case ReduceOp::Sum: a += xv[k]; break;
      case ReduceOp::Prod: a *= xv[k]; break;
      case ReduceOp::Max: a = std::isnan(a) ? xv[k] : std::max(a, xv[k]); break;
      case ReduceOp::Min: a = std::isnan(a) ? xv[k] : std::min(a, xv[k]); break;
      default: break;
    }
    for (size_t d = shape.size(); d-- > 0;) {
      if (++idx[d] < shape[d]) break;
      idx[d] = 0;
    }
  }
  return acc;
}
}  // namespace

TEST_CASE("sum, prod, max, min over every set of dims of a strided [3, 4, 5]", "[cpu]") {
  // x [3, 4, 5] is a permuted view of a contiguous [5, 3, 4] tensor.
  Tensor base = host_tensor({5, 3, 4}, DType::Float32, [](int64_t i) { return 0.5 + std::fmod(i * 0.37, 1.0); });
  Tensor x = make_view(base, {3, 4, 5}, {4, 1, 12}, 0);
  const Shape shape = {3, 4, 5};
  const std::vector<double> xv = values_of(x);
  for (int mask = 0; mask < 8; ++mask) {
    std::vector<bool> reduced = {bool(mask & 1), bool(mask & 2), bool(mask & 4)};
    Shape out_shape = shape;
    for (int d = 0; d < 3; ++d)
      if (reduced[d]) out_shape[d] = 1;
    for (ReduceOp op : {ReduceOp::Sum, ReduceOp::Prod, ReduceOp::Max, ReduceOp::Min}) {
      INFO("mask " << mask << " op " << int(op));
      Tensor out = empty(out_shape, DType::Float32);
      kernels().reduce(op, x, out);
      require_close(values_of(out), naive_reduce(op, xv, shape, reduced), 1e-6);
      Tensor xc = host_tensor(shape, DType::Float64, [&](int64_t i) { return xv[i]; });  // contiguous float64 twin
      Tensor out64 = empty(out_shape, DType::Float64);
      kernels().reduce(op, xc, out64);
      require_close(values_of(out64), naive_reduce(op, xv, shape, reduced), 1e-13);
    }
  }
}

TEST_CASE("large reductions: accurate float sums, column sums, one-element sums", "[cpu]") {
  // 3 million float32 ones plus a tiny value each: a float accumulator would stall at 2^24.
  const int64_t n = 3000000;
  Tensor x = host_tensor({n}, DType::Float32, [](int64_t i) { return 1.0 + (i % 3) * 0.25; });
  Tensor out = empty({1}, DType::Float32);
  kernels().reduce(ReduceOp::Sum, x, out);
  REQUIRE(values_of(out)[0] == Approx(n * 1.25).epsilon(1e-7));

  // Sum over rows of [2000, 70] (the kept dim is the contiguous one) and of its transpose.
  Tensor m = host_tensor({2000, 70}, DType::Float64, [](int64_t i) { return double(i % 70) + double(i / 70) * 1e-3; });
  Tensor cols = empty({1, 70}, DType::Float64);
  kernels().reduce(ReduceOp::Sum, m, cols);
  const std::vector<double> cv = values_of(cols);
  for (int64_t j = 0; j < 70; ++j) REQUIRE(cv[j] == Approx(2000.0 * j + 1e-3 * 1999 * 2000 / 2).epsilon(1e-12));
  Tensor rows_of_t = empty({70, 1}, DType::Float64);
  kernels().reduce(ReduceOp::Sum, transposed(m), rows_of_t);
  require_close(values_of(rows_of_t), cv, 1e-13);

  // Few outputs over many elements: [4, 100000] -> [4, 1] and [100000, 3] -> [1, 3].
  Tensor wide = host_tensor({4, 100000}, DType::Float32, [](int64_t i) { return (i % 10) * 0.1; });
  Tensor w = empty({4, 1}, DType::Float32);
  kernels().reduce(ReduceOp::Sum, wide, w);
  for (double v : values_of(w)) REQUIRE(v == Approx(45000).epsilon(1e-6));
  Tensor tall = host_tensor({100000, 3}, DType::Float32, [](int64_t i) { return double(i % 3); });
  Tensor t = empty({1, 3}, DType::Float32);
  kernels().reduce(ReduceOp::Max, tall, t);
  REQUIRE(values_of(t) == std::vector<double>{0, 1, 2});
  kernels().reduce(ReduceOp::Sum, tall, t);
  REQUIRE(values_of(t) == std::vector<double>{0, 100000, 200000});
}

TEST_CASE("max/min propagate NaN; argmax/argmin give the first extreme", "[cpu]") {
  const double nan = std::nan("");
  Tensor x = host_tensor({2, 5}, DType::Float32, [&](int64_t i) {
    return std::vector<double>{1, 3, 3, -2, -2, 0, nan, 5, nan, -1}[i];
  });
  Tensor m = empty({2, 1}, DType::Float32);
  kernels().reduce(ReduceOp::Max, x, m);
  require_close(values_of(m), {3, nan}, 0);
  kernels().reduce(ReduceOp::Min, x, m);
  require_close(values_of(m), {-2, nan}, 0);
  Tensor idx = empty({2, 1}, DType::Int64);
  kernels().reduce(ReduceOp::ArgMax, x, idx);
  REQUIRE(values_of(idx) == std::vector<double>{1, 1});
  kernels().reduce(ReduceOp::ArgMin, x, idx);
  REQUIRE(values_of(idx) == std::vector<double>{3, 1});
  Tensor cols = empty({1, 5}, DType::Int64);
  kernels().reduce(ReduceOp::ArgMax, x, cols);
  REQUIRE(values_of(cols) == std::vector<double>{0, 1, 1, 1, 1});
  Tensor i64 = host_tensor({6}, DType::Int64, [](int64_t i) { return std::vector<double>{4, 9, 1, 9, 1, 0}[i]; });
  Tensor s = empty({1}, DType::Int64);
  kernels().reduce(ReduceOp::Sum, i64, s);
  REQUIRE(values_of(s)[0] == 24);
  kernels().reduce(ReduceOp::ArgMax, i64, s);
  REQUIRE(values_of(s)[0] == 1);
  Tensor empty_x = empty({0}, DType::Float32);
  Tensor e = empty({1}, DType::Float32);
  kernels().reduce(ReduceOp::Sum, empty_x, e);
  REQUIRE(values_of(e)[0] == 0);
  REQUIRE_THROWS_AS(kernels().reduce(ReduceOp::Max, empty_x, e), Error);
}

// ---- softmax -----------------------------------------------------------------------

TEST_CASE("softmax and log_softmax match double references, -inf rows give no NaN", "[cpu]") {
  const double inf = std::numeric_limits<double>::infinity();
  for (DType dtype : {DType::Float32, DType::Float64}) {
    for (int64_t n : {1, 7, 33, 5000}) {
      INFO(dtype_name(dtype) << " n = " << n);
      // Row 0: ordinary; row 1: all -inf; row 2: some -inf; row 3: large values.
      Tensor x = host_tensor({4, n}, dtype, [&](int64_t i) {
        const int64_t r = i / n, j = i % n;
        const double v = std::sin(j * 1.3) * 4;
        if (r == 1) return -inf;
        if (r == 2) return j % 3 == 1 ? -inf : v;
        if (r == 3) return 80 + v * 5;
        return v;
      });
      const std::vector<double> xv = values_of(x);
      std::vector<double> want_p, want_lp;
      for (int64_t r = 0; r < 4; ++r) {
        double m = -inf, sum = 0;
        for (int64_t j = 0; j < n; ++j) m = std::max(m, xv[r * n + j]);
        for (int64_t j = 0; j < n; ++j) sum += m == -inf ? 0 : std::exp(xv[r * n + j] - m);
        for (int64_t j = 0; j < n; ++j) {
          const double v = xv[r * n + j];
          want_p.push_back(m == -inf ? 0 : std::exp(v - m) / sum);
          want_lp.push_back(m == -inf ? -inf : v - m - std::log(sum));
        }
      }
      const double tol = dtype == DType::Float32 ? 1e-6 : 1e-13;
      Tensor p = empty({4, n}, dtype), lp = empty({4, n}, dtype);
      kernels().softmax(x, false, p);
      kernels().softmax(x, true, lp);
      // Relative to each probability. In float32 the rounding of x - max alone
      // costs |x - max| * 2^-24 relative, so small probabilities get that much more.
      const std::vector<double> pv = values_of(p);
      for (size_t i = 0; i < pv.size(); ++i) {
        INFO("element " << i << ": got " << pv[i] << ", want " << want_p[i]);
        const double gap = std::isinf(want_lp[i]) ? 0 : std::abs(want_lp[i]);
        REQUIRE(std::abs(pv[i] - want_p[i]) <= (tol + gap * tol / 8) * want_p[i] + 1e-30);
      }
      require_close(values_of(lp), want_lp, tol);
    }
  }
}

TEST_CASE("softmax_backward matches the rule in double, -inf rows included", "[cpu]") {
  const double inf = std::numeric_limits<double>::infinity();
  for (DType dtype : {DType::Float32, DType::Float64}) {
    for (int64_t n : {1, 7, 33, 5000}) {
      INFO(dtype_name(dtype) << " n = " << n);
      Tensor x = host_tensor({3, n}, dtype, [&](int64_t i) {
        const int64_t r = i / n, j = i % n;
        if (r == 1) return -inf;
        if (r == 2 && j % 3 == 1) return -inf;
        return std::sin(j * 1.3) * 4;
      });
      Tensor g = host_tensor({3, n}, dtype, [&](int64_t i) { return std::cos(i * 0.7) * 2; });
      const std::vector<double> gv = values_of(g);
      for (bool log : {false, true}) {
        INFO((log ? "log_softmax" : "softmax"));
        Tensor y = empty({3, n}, dtype), gx = empty({3, n}, dtype);
        kernels().softmax(x, log, y);
        kernels().softmax_backward(g, y, log, gx);
        const std::vector<double> yv = values_of(y);
        std::vector<double> want;
        for (int64_t r = 0; r < 3; ++r) {
          double s = 0;
          for (int64_t j = 0; j < n; ++j) s += log ? gv[r * n + j] : gv[r * n + j] * yv[r * n + j];
          for (int64_t j = 0; j < n; ++j) {
            const double yj = yv[r * n + j], gj = gv[r * n + j];
            want.push_back(log ? gj - std::exp(yj) * s : yj * (gj - s));
          }
        }
        require_close(values_of(gx), want, dtype == DType::Float32 ? 2e-5 : 1e-12);
      }
    }
  }
  // Through autograd, along a dim other than the last: the fused backward
  // equals the rule written in ops (which create_graph takes).
  Tensor x = randn({4, 6, 5}).requires_grad_();
  Tensor w = randn({4, 6, 5});
  for (bool log : {false, true}) {
    auto f = [&] { return sum(mul(log ? log_softmax(x, 1) : softmax(x, 1), w)); };
    Tensor gx = grad({f()}, {x})[0];
    Tensor gx2 = grad({f()}, {x}, {}, /*create_graph=*/true)[0];  // the rule written in ops
    REQUIRE(gx.shape() == x.shape());
    const std::vector<double> a = values_of(gx), b = values_of(gx2);
    for (size_t i = 0; i < a.size(); ++i) REQUIRE(a[i] == Approx(b[i]).margin(1e-6));
  }
}

// ---- matmul ------------------------------------------------------------------------

TEST_CASE("matmul of strided and broadcast operands matches a naive product", "[cpu]") {
  for (DType dtype : {DType::Float32, DType::Float64}) {
    for (int64_t batch : {1, 3, 40}) {
      const int64_t m = 5, k = 9, n = 6;
      INFO(dtype_name(dtype) << " batch " << batch);
      // a: one [m, k] matrix broadcast over the batch (stride 0);
      // b: [batch, k, n] as the transpose of a contiguous [batch, n, k].
      Tensor a0 = host_tensor({m, k}, dtype, [](int64_t i) { return std::sin(i * 0.7); });
      Tensor a = make_view(a0, {batch, m, k}, {0, k, 1}, 0);
      Tensor bt = host_tensor({batch, n, k}, dtype, [](int64_t i) { return std::cos(i * 0.3); });
      Tensor b = transposed(bt);
      for (bool accumulate : {false, true}) {
        INFO("accumulate " << accumulate);
        // accumulate adds the product to what out holds; without it out's
        // contents (NaN here) are never read.
        Tensor out = host_tensor({batch, m, n}, dtype, [&](int64_t i) { return accumulate ? 0.25 * i : std::nan(""); });
        const std::vector<double> before = values_of(out);
        kernels().matmul(a, b, out, accumulate ? out : Tensor());
        const std::vector<double> av = values_of(a), bv = values_of(b), ov = values_of(out);
        for (int64_t q = 0; q < batch; ++q)
          for (int64_t i = 0; i < m; ++i)
            for (int64_t j = 0; j < n; ++j) {
              const int64_t at = (q * m + i) * n + j;
              double want = accumulate ? before[at] : 0.0;
              for (int64_t p = 0; p < k; ++p) want += av[(q * m + i) * k + p] * bv[(q * k + p) * n + j];
              REQUIRE(close(ov[at], want, dtype == DType::Float32 ? 1e-5 : 1e-12));
            }
      }
    }
  }
}

// ---- indexing ----------------------------------------------------------------------

TEST_CASE("index_select along each dim of a strided tensor", "[cpu]") {
  Tensor base = host_tensor({4, 3}, DType::Float32, [](int64_t i) { return double(i); });
  Tensor x = transposed(base);  // [3, 4]: x[i][j] = 3 j + i
  Tensor idx = host_tensor({3}, DType::Int64, [](int64_t i) { return std::vector<double>{3, 0, 3}[i]; });
  Tensor out = empty({3, 3}, DType::Float32);
  kernels().index_select(x, 1, idx, out);
  REQUIRE(values_of(out) == std::vector<double>{9, 0, 9, 10, 1, 10, 11, 2, 11});
  Tensor idx0 = host_tensor({2}, DType::Int64, [](int64_t i) { return double(2 - i); });
  Tensor out0 = empty({2, 4}, DType::Float32);
  kernels().index_select(x, 0, idx0, out0);
  REQUIRE(values_of(out0) == std::vector<double>{2, 5, 8, 11, 1, 4, 7, 10});
}

TEST_CASE("gather reads along a dim through an index of out's shape", "[cpu]") {
  Tensor x = host_tensor({2, 3}, DType::Float64, [](int64_t i) { return 10.0 * i; });
  Tensor idx = host_tensor({2, 2}, DType::Int64, [](int64_t i) { return std::vector<double>{2, 0, 1, 1}[i]; });
  Tensor out = empty({2, 2}, DType::Float64);
  kernels().gather(x, 1, idx, out);
  REQUIRE(values_of(out) == std::vector<double>{20, 0, 40, 40});
  Tensor idx0 = host_tensor({1, 3}, DType::Int64, [](int64_t i) { return std::vector<double>{1, 0, 1}[i]; });
  Tensor out0 = empty({1, 3}, DType::Float64);
  kernels().gather(x, 0, idx0, out0);
  REQUIRE(values_of(out0) == std::vector<double>{30, 10, 50});
}

TEST_CASE("scatter_add and index_add accumulate duplicates in index order", "[cpu]") {
  Tensor dst = host_tensor({2, 4}, DType::Float32, [](int64_t) { return 0.0; });
  Tensor idx = host_tensor({2, 3}, DType::Int64, [](int64_t i) { return std::vector<double>{1, 1, 3, 0, 0, 0}[i]; });
  Tensor src = host_tensor({2, 3}, DType::Float32, [](int64_t i) { return double(i + 1); });
  kernels().scatter_add(dst, 1, idx, src);
  REQUIRE(values_of(dst) == std::vector<double>{0, 3, 0, 3, 15, 0, 0, 0});

  Tensor table = host_tensor({3, 2}, DType::Float64, [](int64_t) { return 1.0; });
  Tensor rows = host_tensor({4}, DType::Int64, [](int64_t i) { return std::vector<double>{2, 0, 2, 2}[i]; });
  Tensor upd = host_tensor({4, 2}, DType::Float64, [](int64_t i) { return double(i); });
  kernels().index_add(table, 0, rows, upd);
  REQUIRE(values_of(table) == std::vector<double>{3, 4, 1, 1, 1 + 0 + 4 + 6, 1 + 1 + 5 + 7});
  // Along dim 1, with a transposed src.
  Tensor t2 = host_tensor({2, 3}, DType::Float32, [](int64_t) { return 0.0; });
  Tensor cols = host_tensor({2}, DType::Int64, [](int64_t i) { return double(2 * i); });
  Tensor src_base = host_tensor({2, 2}, DType::Float32, [](int64_t i) { return double(i + 1); });
  kernels().index_add(t2, 1, cols, transposed(src_base));  // src[r][c] = base[c][r]
  REQUIRE(values_of(t2) == std::vector<double>{1, 0, 3, 2, 0, 4});
}

TEST_CASE("index_add with many duplicates matches a sequential sum, along every dim", "[cpu]") {
  const Shape shape = {4, 5, 6};
  for (int64_t dim = 0; dim < 3; ++dim) {
    INFO("dim " << dim);
    const int64_t n = 40;
    Tensor idx = host_tensor({n}, DType::Int64, [&](int64_t i) { return double((i * 7) % shape[dim]); });
    Shape src_shape = shape;
    src_shape[dim] = n;
    // src as a transposed view of a contiguous tensor, so its strides are not row-major.
    Shape base_shape = {src_shape[0], src_shape[2], src_shape[1]};
    Tensor src_base = host_tensor(base_shape, DType::Float64, [](int64_t i) { return std::sin(i * 0.77); });
    Tensor src = transposed(src_base);
    REQUIRE(src.shape() == src_shape);
    Tensor dst = host_tensor(shape, DType::Float64, [](int64_t i) { return double(i); });
    std::vector<double> want = values_of(dst);
    const std::vector<double> sv = values_of(src), iv = values_of(idx);
    for (int64_t a = 0; a < src_shape[0]; ++a)
      for (int64_t b = 0; b < src_shape[1]; ++b)
        for (int64_t c = 0; c < src_shape[2]; ++c) {
          int64_t p[3] = {a, b, c};
          p[dim] = static_cast<int64_t>(iv[p[dim]]);
          want[(p[0] * shape[1] + p[1]) * shape[2] + p[2]] += sv[(a * src_shape[1] + b) * src_shape[2] + c];
        }
    kernels().index_add(dst, dim, idx, src);
    REQUIRE(values_of(dst) == want);  // the same order of additions: bit-identical
  }
}

TEST_CASE("a bad index throws heed::Error naming op, value, dim and size", "[cpu]") {
  Tensor x = host_tensor({3, 4}, DType::Float32, [](int64_t i) { return double(i); });
  Tensor bad = host_tensor({2}, DType::Int64, [](int64_t i) { return i == 0 ? 1.0 : 4.0; });
  Tensor out = empty({3, 2}, DType::Float32);
  REQUIRE_THROWS_WITH(kernels().index_select(x, 1, bad, out),
                      Catch::Contains("index_select") && Catch::Contains("index 4") &&
                          Catch::Contains("dim 1") && Catch::Contains("size 4"));
  Tensor neg = host_tensor({2}, DType::Int64, [](int64_t i) { return -double(i); });
  Tensor out0 = empty({2, 4}, DType::Float32);
  REQUIRE_THROWS_WITH(kernels().index_select(x, 0, neg, out0), Catch::Contains("index -1"));

  Tensor gidx = host_tensor({3, 2}, DType::Int64, [](int64_t i) { return i == 5 ? 7.0 : 0.0; });
  Tensor gout = empty({3, 2}, DType::Float32);
  REQUIRE_THROWS_WITH(kernels().gather(x, 1, gidx, gout), Catch::Contains("gather") && Catch::Contains("index 7"));

  // A failed scatter_add / index_add leaves dst untouched.
  Tensor dst = host_tensor({3, 4}, DType::Float32, [](int64_t) { return 1.0; });
  Tensor sidx = host_tensor({3, 2}, DType::Int64, [](int64_t i) { return i == 4 ? 4.0 : 0.0; });
  Tensor src = host_tensor({3, 2}, DType::Float32, [](int64_t) { return 1.0; });
  REQUIRE_THROWS_WITH(kernels().scatter_add(dst, 1, sidx, src), Catch::Contains("scatter_add") && Catch::Contains("index 4"));
  Tensor rows = host_tensor({2}, DType::Int64, [](int64_t i) { return i == 0 ? 0.0 : 3.0; });
  Tensor upd = host_tensor({2, 4}, DType::Float32, [](int64_t) { return 1.0; });
  REQUIRE_THROWS_WITH(kernels().index_add(dst, 0, rows, upd),
                      Catch::Contains("index_add") && Catch::Contains("index 3") && Catch::Contains("size 3"));
  for (double v : values_of(dst)) REQUIRE(v == 1.0);
}

// ---- random ------------------------------------------------------------------------

TEST_CASE("Philox4x32-10 reproduces the known-answer vectors of Salmon et al.", "[cpu]") {
  auto check = [](Philox4x32 counter, PhiloxKey key, std::vector<uint32_t> want) {
    Philox4x32 r = philox4x32(counter, key);
    REQUIRE(std::vector<uint32_t>(r.w, r.w + 4) == want);
  };
  check({{0, 0, 0, 0}}, {{0, 0}}, {0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8});
  check({{0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff}}, {{0xffffffff, 0xffffffff}},
        {0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd});
  check({{0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344}}, {{0xa4093822, 0x299f31d0}},
        {0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1});
  static_assert(philox4x32(Philox4x32{{0, 0, 0, 0}}, PhiloxKey{{0, 0}}).w[0] == 0x6627e8d5u,
                "philox4x32 must stay constexpr");
}

TEST_CASE("random follows the documented counter mapping and its distributions", "[cpu]") {
  const uint64_t seed = 0x123456789abcdefull, offset = (1ull << 32) - 3;  // crosses into the high counter word
  Tensor u = empty({1000}, DType::Float32);
  kernels().random(RandomDist::Uniform, -2, 3, seed, offset, u);
  const std::vector<double> uv = values_of(u);
  for (int64_t i = 0; i < 1000; ++i) {
    const Philox4x32 r = philox_block(seed, offset + i / 4);  // one word per float32 uniform
    REQUIRE(uv[i] == -2.0f + 5.0f * (static_cast<float>(r.w[i % 4] >> 8) / 16777216.0f));
    REQUIRE(uv[i] >= -2);
    REQUIRE(uv[i] < 3);
  }
  // Shifting the offset by one block shifts the stream by four samples.
  Tensor u2 = empty({996}, DType::Float32);
  kernels().random(RandomDist::Uniform, -2, 3, seed, offset + 1, u2);
  REQUIRE(values_of(u2) == std::vector<double>(uv.begin() + 4, uv.end()));
  // float64 uniform takes two words a sample: two samples a block.
  Tensor d = empty({6}, DType::Float64);
  kernels().random(RandomDist::Uniform, 0, 1, seed, 0, d);
  const Philox4x32 r1 = philox_block(seed, 1);
  REQUIRE(values_of(d)[3] == uint_to_unit_double(r1.w[2], r1.w[3]));

  const int64_t n = 200000;
  for (DType dtype : {DType::Float32, DType::Float64}) {
    Tensor z = empty({n}, dtype);
    kernels().random(RandomDist::Normal, 1.5, 2.0, 7, 0, z);
    double sum = 0, sq = 0;
    for (double v : values_of(z)) {
      sum += v;
      sq += v * v;
    }
    const double mean = sum / n, var = sq / n - mean * mean;
    REQUIRE(mean == Approx(1.5).margin(0.03));
    REQUIRE(std::sqrt(var) == Approx(2.0).margin(0.03));
  }
  for (DType dtype : {DType::Bool, DType::UInt8, DType::Float32}) {
    Tensor bern = empty({n}, dtype);
    kernels().random(RandomDist::Bernoulli, 0.3, 0, 11, 0, bern);
    double ones = 0;
    for (double v : values_of(bern)) {
      REQUIRE((v == 0 || v == 1));
      ones += v;
    }
    REQUIRE(ones / n == Approx(0.3).margin(0.01));
  }
  Tensor bad = empty({4}, DType::Int64);
  REQUIRE_THROWS_AS(kernels().random(RandomDist::Normal, 0, 1, 1, 0, bad), Error);
}

// ---- determinism -------------------------------------------------------------------

TEST_CASE("results are bit-identical for 1, 2 and 3 threads", "[cpu]") {
  Tensor big = host_tensor({1 << 20}, DType::Float32, [](int64_t i) { return std::sin(i * 0.001) * 100; });
  Tensor mat = host_tensor({3000, 300}, DType::Float32, [](int64_t i) { return std::cos(i * 0.01); });
  require_same_for_thread_counts([&] {
    Tensor out = empty({1}, DType::Float32);
    kernels().reduce(ReduceOp::Sum, big, out);
    return out;
  });
  require_same_for_thread_counts([&] {
    Tensor out = empty({1, 300}, DType::Float32);
    kernels().reduce(ReduceOp::Sum, mat, out);
    return out;
  });
  require_same_for_thread_counts([&] {
    Tensor out = empty({3000, 1}, DType::Float32);
    kernels().reduce(ReduceOp::Sum, mat, out);
    return out;
  });
  require_same_for_thread_counts([&] {
    Tensor out = empty({3000, 300}, DType::Float32);
    kernels().softmax(mat, false, out);
    return out;
  });
  require_same_for_thread_counts([&] {
    Tensor out = empty({300000}, DType::Float32);
    kernels().random(RandomDist::Normal, 0, 1, 42, 5, out);
    return out;
  });
  Tensor rows = host_tensor({20000}, DType::Int64, [](int64_t i) { return double((i * 7919) % 50); });
  Tensor upd = host_tensor({20000, 96}, DType::Float32, [](int64_t i) { return std::sin(i * 0.37); });
  require_same_for_thread_counts([&] {
    Tensor table = host_tensor({50, 96}, DType::Float32, [](int64_t) { return 0.0; });
    kernels().index_add(table, 0, rows, upd);
    return table;
  });
  require_same_for_thread_counts([&] {
    Tensor a = host_tensor({64, 40, 30}, DType::Float32, [](int64_t i) { return std::sin(i * 0.1); });
    Tensor b = host_tensor({64, 30, 20}, DType::Float32, [](int64_t i) { return std::cos(i * 0.1); });
    Tensor out = empty({64, 40, 20}, DType::Float32);
    kernels().matmul(a, b, out, Tensor());
    return out;
  });
}

TEST_CASE("cpu allocator keeps large freed blocks for reuse, aligned, and gives them back on empty_cache", "[cpu][speed]") {
#if defined(__SANITIZE_ADDRESS__)
  WARN("AddressSanitizer build: the block cache is off");
  return;
#endif
  const size_t limit_before = cpu::cache_limit();
  cpu::set_cache_limit(size_t(64) << 20);
  REQUIRE(cpu::cache_limit() == (size_t(64) << 20));
  cpu::empty_cache();
  REQUIRE(cpu::cached_bytes() == 0);
  const size_t big = (size_t(3) << 20) + 100;  // 3 MiB and a bit: cached
  void* a = cpu::allocate(big, 0);
  REQUIRE(reinterpret_cast<uintptr_t>(a) % 64 == 0);
  std::memset(a, 1, big);  // the whole requested size is usable
  cpu::deallocate(a, big, 0);
  REQUIRE(cpu::cached_bytes() >= big);
  void* b = cpu::allocate(big + 50000, 0);  // same size class (3.25 MiB): the same block
  REQUIRE(b == a);
  REQUIRE(cpu::cached_bytes() == 0);
  void* c = cpu::allocate(big * 2, 0);  // another class: a new block
  REQUIRE(c != a);
  cpu::deallocate(b, big + 50000, 0);
  cpu::deallocate(c, big * 2, 0);
  void* small = cpu::allocate(1000, 0);  // small blocks go straight to malloc
  REQUIRE(reinterpret_cast<uintptr_t>(small) % 64 == 0);
  const size_t before = cpu::cached_bytes();
  cpu::deallocate(small, 1000, 0);
  REQUIRE(cpu::cached_bytes() == before);
  // Lowering the limit gives back what is over it at once; nothing is kept past it.
  REQUIRE(cpu::cached_bytes() > 0);
  cpu::set_cache_limit(0);
  REQUIRE(cpu::cached_bytes() == 0);
  void* d = cpu::allocate(big, 0);
  cpu::deallocate(d, big, 0);
  REQUIRE(cpu::cached_bytes() == 0);
  cpu::set_cache_limit(limit_before);
  cpu::empty_cache();
  REQUIRE(cpu::cached_bytes() == 0);
}

TEST_CASE("cpu allocator gives blocks of 32 MiB or more 2 MiB alignment (huge pages)", "[cpu]") {
#if defined(__SANITIZE_ADDRESS__)
  WARN("AddressSanitizer build: its allocator owns the pages");
  return;
#endif
  for (size_t bytes : {size_t(32) << 20, (size_t(40) << 20) + 12345, size_t(100) << 20}) {
    INFO(bytes << " bytes");
    void* p = cpu::allocate(bytes, 0);
    REQUIRE(reinterpret_cast<uintptr_t>(p) % (size_t(2) << 20) == 0);
    std::memset(p, 7, bytes);  // every requested byte is usable
    cpu::deallocate(p, bytes, 0);
  }
  void* p = cpu::allocate(size_t(5) << 20, 0);  // smaller blocks keep the ordinary alignment only
  REQUIRE(reinterpret_cast<uintptr_t>(p) % 64 == 0);
  cpu::deallocate(p, size_t(5) << 20, 0);
}

TEST_CASE("cpu allocator: a freed block serves the next request of its size", "[cpu]") {
#if !defined(__GLIBC__) || defined(__SANITIZE_ADDRESS__)
  WARN("not glibc's malloc, or an AddressSanitizer build: nothing to check");
  return;
#endif
  if (!cpu::memory_stats().malloc_tuned) {
    WARN("malloc's thresholds were set by the environment: blocks may be mmapped");
    return;
  }
  // glibc's aligned_alloc would need a few bytes more than the freed block
  // holds, and take new memory every time (cpu_allocator.cpp).
  const size_t limit_before = cpu::cache_limit();
  cpu::set_cache_limit(0);  // malloc itself, not the size-class cache
  for (size_t bytes : {size_t(64) << 10, size_t(2) << 20, (size_t(5) << 20) + 4}) {
    INFO(bytes << " bytes");
    void* a = cpu::allocate(bytes, 0);
    void* keep = cpu::allocate(bytes, 0);  // so that a is not at the top of the heap
    cpu::deallocate(a, bytes, 0);
    void* b = cpu::allocate(bytes, 0);
    REQUIRE(b == a);
    REQUIRE(reinterpret_cast<uintptr_t>(b) % 64 == 0);
    cpu::deallocate(b, bytes, 0);
    cpu::deallocate(keep, bytes, 0);
  }
  cpu::set_cache_limit(limit_before);
}

TEST_CASE("cpu memory stats count what tensors hold and its peak", "[cpu]") {
  cpu::reset_peak_stats();
  const cpu::MemoryStats before = cpu::memory_stats();
  REQUIRE(before.peak_allocated == before.allocated);
  {
    Tensor t = empty({1 << 20}, DType::Float32);  // 4 MiB: one block of exactly its size class
    const cpu::MemoryStats during = cpu::memory_stats();
    REQUIRE(during.allocated == before.allocated + (size_t(4) << 20));
    REQUIRE(during.peak_allocated >= during.allocated);
    REQUIRE(during.peak_reserved >= during.peak_allocated);
  }
  const cpu::MemoryStats after = cpu::memory_stats();
  REQUIRE(after.allocated == before.allocated);
  REQUIRE(after.peak_allocated >= before.allocated + (size_t(4) << 20));
  cpu::reset_peak_stats();
  REQUIRE(cpu::memory_stats().peak_allocated == after.allocated);
#if defined(__GLIBC__) && !defined(__SANITIZE_ADDRESS__)
  // Unless the process set malloc's thresholds itself, heed raised them (cpu_memory.h).
  if (!std::getenv("MALLOC_MMAP_THRESHOLD_") && !std::getenv("MALLOC_TRIM_THRESHOLD_") &&
      !std::getenv("HEED_CPU_MALLOC_TUNING"))
    REQUIRE(after.malloc_tuned);
#endif
}

TEST_CASE("philox_blocks: the SIMD lanes give philox_block's words, block by block", "[cpu]") {
  // Counts around the vector widths (4 and 8 lanes), first blocks whose low
  // word wraps inside a vector, and seeds with high bits set.
  const uint64_t seeds[] = {0, 1, 0xfeedbeefcafef00dull, ~uint64_t{0}};
  const uint64_t firsts[] = {0, 3, (1ull << 32) - 6, ~uint64_t{0} - 20};
  std::vector<uint32_t> words(4 * 41);
  for (uint64_t seed : seeds)
    for (uint64_t first : firsts)
      for (int64_t count = 0; count <= 41; ++count) {
        std::fill(words.begin(), words.end(), 0u);
        cpu::philox_blocks(seed, first, count, words.data());
        for (int64_t b = 0; b < count; ++b) {
          const Philox4x32 want = philox_block(seed, first + static_cast<uint64_t>(b));
          for (int t = 0; t < 4; ++t) REQUIRE(words[4 * b + t] == want.w[t]);
        }
#if defined(__x86_64__)
        // Each SIMD body on its own (philox_blocks picks the widest this CPU has).
        using Body = int64_t (*)(uint64_t, uint64_t, int64_t, uint32_t*);
        std::vector<std::pair<Body, int64_t>> bodies;  // body, lanes
        if (__builtin_cpu_supports("avx2")) bodies.emplace_back(&cpu::philox_simd::blocks_avx2, 4);
        if (__builtin_cpu_supports("avx512f")) bodies.emplace_back(&cpu::philox_simd::blocks_avx512, 8);
        for (const auto& [body, lanes] : bodies) {
          std::fill(words.begin(), words.end(), 0u);
          const int64_t done = body(seed, first, count, words.data());
          REQUIRE(done == count - count % lanes);
          for (int64_t b = 0; b < done; ++b) {
            const Philox4x32 want = philox_block(seed, first + static_cast<uint64_t>(b));
            for (int t = 0; t < 4; ++t) REQUIRE(words[4 * b + t] == want.w[t]);
          }
        }
#endif
      }
}

TEST_CASE("random: every sample across chunks follows the documented mapping", "[cpu]") {
  // Several parallel chunks (16384 samples each) and an odd tail, checked
  // against philox_block one by one, for 1, 2 and 4 words a sample.
  const uint64_t seed = 0xfeedbeefcafef00dull, offset = (1ull << 32) - 5;
  const int64_t n = 16384 * 2 + 37;
  Tensor u = empty({n}, DType::Float32);
  kernels().random(RandomDist::Uniform, 0, 1, seed, offset, u);
  std::vector<double> uv = values_of(u);
  for (int64_t i = 0; i < n; ++i) {
    const Philox4x32 r = philox_block(seed, offset + i / 4);
    REQUIRE(uv[i] == uniform_from<float>(r.w + i % 4, 0.0f, 1.0f));
  }
  Tensor d = empty({n}, DType::Float64);
  kernels().random(RandomDist::Uniform, 0, 1, seed, offset, d);
  std::vector<double> dv = values_of(d);
  for (int64_t i = 0; i < n; ++i) {
    const Philox4x32 r = philox_block(seed, offset + i / 2);
    REQUIRE(dv[i] == uniform_from<double>(r.w + 2 * (i % 2), 0.0, 1.0));
  }
  Tensor m = empty({n}, DType::Float32);  // a dropout mask's draw
  kernels().random(RandomDist::Bernoulli, 0.3, 0, seed, offset, m);
  std::vector<double> mv = values_of(m);
  for (int64_t i = 0; i < n; ++i) {
    const uint32_t v = philox_block(seed, offset + i / 4).w[i % 4];
    REQUIRE(mv[i] == ((v >> 8) * 0x1p-24 < 0.3 ? 1.0 : 0.0));
  }
  Tensor z = empty({1000}, DType::Float64);
  kernels().random(RandomDist::Normal, 0, 1, seed, offset, z);
  std::vector<double> zv = values_of(z);
  for (int64_t i = 0; i < 1000; ++i) REQUIRE(zv[i] == normal_from<double>(philox_block(seed, offset + i).w, 0.0, 1.0));
}
