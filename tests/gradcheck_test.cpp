// Every differentiable op against central differences (float64), on plain,
// broadcast and non-contiguous inputs; gradgradcheck for the ops whose
// double backward the issue promises. Each case runs once per test device
// (tests/test_devices.h): gradcheck_on moves the float64 CPU inputs to the
// device, so the Jacobian checked is the device's.
#include <catch2/catch.hpp>

#include <functional>
#include <string>

#include <heed.h>
#include "tests/test_devices.h"
#include "tests/test_util.h"

using namespace heed;
using namespace heed::test;

namespace {

Tensor rnd(const Shape& s, uint64_t seed, double lo = -1.5, double hi = 1.5) {
  return heed::test::uniform64(s, seed, lo, hi);
}

// Positive values away from 0, for log/sqrt/div/pow.
Tensor pos(const Shape& s, uint64_t seed) { return rnd(s, seed, 0.5, 2.0); }

Tensor leaf(Tensor t) { return t.requires_grad_(); }

// A non-contiguous tensor with the given shape: the transpose of a
// contiguous one, as a leaf.
Tensor transposed(const Shape& s, uint64_t seed, bool positive = false) {
  Shape flipped(s.rbegin(), s.rend());
  Tensor base = positive ? pos(flipped, seed) : rnd(flipped, seed);
  Shape perm;
  for (int64_t i = static_cast<int64_t>(s.size()) - 1; i >= 0; --i) perm.push_back(i);
  Tensor t = permute(base, perm).detach();
  REQUIRE_FALSE(t.is_contiguous());
  return t.requires_grad_();
}

using Unary = std::function<Tensor(const Tensor&)>;

void check_unary(Device d, const std::string& name, Unary f, bool positive = false, bool double_backward = true) {
  INFO("op " << name);
  GradcheckFn fn = [f](const TensorList& in) { return f(in[0]); };
  Tensor plain = leaf(positive ? pos({3, 4}, 1) : rnd({3, 4}, 1));
  CHECK(gradcheck_on(d, fn, {plain}));
  CHECK(gradcheck_on(d, fn, {transposed({3, 4}, 2, positive)}));
  // An expanded (stride-0) input: every copy's gradient sums into one row.
  Tensor row = leaf(positive ? pos({1, 4}, 3) : rnd({1, 4}, 3));
  CHECK(gradcheck_on(d, [f](const TensorList& in) { return f(expand(in[0], {3, 4})); }, {row}));
  if (double_backward) CHECK(gradgradcheck_on(d, fn, {leaf(positive ? pos({2, 3}, 4) : rnd({2, 3}, 4))}));
}

using Binary = std::function<Tensor(const Tensor&, const Tensor&)>;

void check_binary(Device d, const std::string& name, Binary f, bool positive_b = false) {
  INFO("op " << name);
  GradcheckFn fn = [f](const TensorList& in) { return f(in[0], in[1]); };
  auto b_of = [&](const Shape& s, uint64_t seed) { return leaf(positive_b ? pos(s, seed) : rnd(s, seed)); };
  CHECK(gradcheck_on(d, fn, {leaf(rnd({3, 4}, 5)), b_of({3, 4}, 6)}));
  // Broadcasting both ways: [3,1] with [4], and [2,3,4] with [3,4].
  CHECK(gradcheck_on(d, fn, {leaf(rnd({3, 1}, 7)), b_of({4}, 8)}));
  CHECK(gradcheck_on(d, fn, {leaf(rnd({2, 3, 4}, 9)), b_of({3, 4}, 10)}));
  CHECK(gradcheck_on(d, fn, {transposed({3, 4}, 11), transposed({3, 4}, 12, positive_b)}));
  CHECK(gradgradcheck_on(d, fn, {leaf(rnd({2, 3}, 13)), b_of({2, 3}, 14)}));
}

// An op of one [2, 3, 4] input: gradcheck on a plain and a transposed input,
// gradgradcheck on a plain one, from the seeds `seed`, `seed + 1`, `seed + 2`.
void check_shaped(Device d, const std::string& name, Unary f, uint64_t seed) {
  INFO("op " << name);
  GradcheckFn fn = [f](const TensorList& in) { return f(in[0]); };
  CHECK(gradcheck_on(d, fn, {leaf(rnd({2, 3, 4}, seed))}));
  CHECK(gradcheck_on(d, fn, {transposed({2, 3, 4}, seed + 1)}));
  CHECK(gradgradcheck_on(d, fn, {leaf(rnd({2, 3, 4}, seed + 2))}));
}

}  // namespace

TEST_CASE("gradcheck: elementwise unary ops", "[gradcheck][device]") {
  FOR_EACH_TEST_DEVICE(d) {
    check_unary(d, "neg", [](const Tensor& x) { return neg(x); });
    check_unary(d, "exp", [](const Tensor& x) { return exp(x); });
    check_unary(d, "log", [](const Tensor& x) { return log(x); }, true);
    check_unary(d, "sqrt", [](const Tensor& x) { return sqrt(x); }, true);
    check_unary(d, "rsqrt", [](const Tensor& x) { return rsqrt(x); }, true);
    check_unary(d, "square", [](const Tensor& x) { return square(x); });
    check_unary(d, "reciprocal", [](const Tensor& x) { return reciprocal(x); }, true);
    check_unary(d, "tanh", [](const Tensor& x) { return tanh(x); });
    check_unary(d, "sigmoid", [](const Tensor& x) { return sigmoid(x); });
    check_unary(d, "gelu", [](const Tensor& x) { return gelu(x); });
    check_unary(d, "gelu_tanh", [](const Tensor& x) { return gelu(x, GeluApprox::Tanh); });
    check_unary(d, "erf", [](const Tensor& x) { return erf(x); });
    check_unary(d, "sin", [](const Tensor& x) { return sin(x); });
    check_unary(d, "cos", [](const Tensor& x) { return cos(x); });
    check_unary(d, "pow_scalar", [](const Tensor& x) { return pow(x, 2.5); }, true);
    check_unary(d, "add_scalar", [](const Tensor& x) { return add(x, 3.0); });
    check_unary(d, "mul_scalar", [](const Tensor& x) { return mul(x, -2.0); });
    // Kinks: inputs from rnd() stay away from 0 / the clamp bounds by chance of
    // the fixed seeds; the first derivative is checked, not the second, except
    // for relu, whose backward is an op of its own (relu_backward) with a
    // backward too.
    check_unary(d, "relu", [](const Tensor& x) { return relu(x); });
    check_unary(d, "abs", [](const Tensor& x) { return abs(x); }, false, false);
    check_unary(d, "clamp", [](const Tensor& x) { return clamp(x, -0.7, 0.9); }, false, false);
    check_unary(d, "sign", [](const Tensor& x) { return mul(sign(x), x); }, false, false);
  }
}

TEST_CASE("gradcheck: elementwise binary ops with broadcasting", "[gradcheck][device]") {
  FOR_EACH_TEST_DEVICE(d) {
    check_binary(d, "add", [](const Tensor& a, const Tensor& b) { return add(a, b); });
    check_binary(d, "add_alpha", [](const Tensor& a, const Tensor& b) { return add(a, b, -0.5); });
    check_binary(d, "sub", [](const Tensor& a, const Tensor& b) { return sub(a, b); });
    check_binary(d, "mul", [](const Tensor& a, const Tensor& b) { return mul(a, b); });
    check_binary(d, "div", [](const Tensor& a, const Tensor& b) { return div(a, b); }, true);
    check_binary(d, "pow", [](const Tensor& a, const Tensor& b) { return pow(add(square(a), 0.5), b); });
    check_binary(d, "maximum", [](const Tensor& a, const Tensor& b) { return maximum(a, b); });
    check_binary(d, "minimum", [](const Tensor& a, const Tensor& b) { return minimum(a, b); });
    check_binary(d, "lerp (start side)", [](const Tensor& a, const Tensor& b) { return lerp(a, b, 0.3); });
    check_binary(d, "lerp (end side)", [](const Tensor& a, const Tensor& b) { return lerp(a, b, 0.85); });
  }
}

TEST_CASE("gradcheck: where and masked_fill", "[gradcheck][device]") {
  FOR_EACH_TEST_DEVICE(d) {
    Tensor cond = from_vector(std::vector<bool>{true, false, false, true}, {1, 4}, d);
    GradcheckFn w = [cond](const TensorList& in) { return where(cond, in[0], in[1]); };
    CHECK(gradcheck_on(d, w, {leaf(rnd({3, 4}, 1)), leaf(rnd({3, 1}, 2))}));
    CHECK(gradgradcheck_on(d, w, {leaf(rnd({3, 4}, 1)), leaf(rnd({4}, 2))}));
    GradcheckFn m = [cond](const TensorList& in) { return masked_fill(in[0], cond, -3.0); };
    CHECK(gradcheck_on(d, m, {transposed({3, 4}, 3)}));
  }
}

TEST_CASE("gradcheck: reductions", "[gradcheck][device]") {
  FOR_EACH_TEST_DEVICE(d) {
    auto check = [d](const std::string& name, Unary f) { check_shaped(d, name, f, 21); };
    check("sum_all", [](const Tensor& x) { return sum(x); });
    check("sum_dims", [](const Tensor& x) { return sum(x, {0, 2}); });
    check("sum_keepdim", [](const Tensor& x) { return sum(x, {-1}, true); });
    check("mean", [](const Tensor& x) { return mean(x, {1}); });
    check("var", [](const Tensor& x) { return var(x, {2}); });
    check("var_biased", [](const Tensor& x) { return var(x, {0, 1}, 0, true); });
    check("logsumexp", [](const Tensor& x) { return logsumexp(x, {2}); });
    check("amax", [](const Tensor& x) { return amax(x, {1}); });
    check("amin", [](const Tensor& x) { return amin(x, {0, 2}, true); });
    check("max_dim", [](const Tensor& x) { return max(x, 2).values; });
    check("min_dim", [](const Tensor& x) { return min(x, 1, true).values; });
    check("softmax", [](const Tensor& x) { return softmax(x, -1); });
    check("softmax_dim0", [](const Tensor& x) { return softmax(x, 0); });
    check("log_softmax", [](const Tensor& x) { return log_softmax(x, 1); });
  }
}

TEST_CASE("gradcheck: softmax with masked (-inf) entries", "[gradcheck][device]") {
  FOR_EACH_TEST_DEVICE(d) {
    Tensor mask = from_vector(std::vector<bool>{false, true, false, true}, {1, 4}, d);
    GradcheckFn fn = [mask](const TensorList& in) {
      return softmax(masked_fill(in[0], mask, -std::numeric_limits<double>::infinity()), -1);
    };
    CHECK(gradcheck_on(d, fn, {leaf(rnd({3, 4}, 30))}));
    CHECK(gradgradcheck_on(d, fn, {leaf(rnd({3, 4}, 31))}));
    // softmax and log_softmax of one masked column together (log_softmax's -inf
    // entries replaced by 0, which have no gradient).
    Tensor column = from_vector(std::vector<bool>{false, true, false, false}, {1, 4}, d);
    GradcheckFn both = [column](const TensorList& in) {
      Tensor x = masked_fill(in[0], column, -INFINITY);
      return add(softmax(x, -1), mul(where(column, zeros({}, DType::Float64, x.device()), log_softmax(x, -1)), 0.5));
    };
    CHECK(gradcheck_on(d, both, {heed::test::leaf64({3, 4}, 7)}));
  }
}

TEST_CASE("gradcheck: matmul with batch broadcasting and vectors", "[gradcheck][device]") {
  FOR_EACH_TEST_DEVICE(d) {
    GradcheckFn fn = [](const TensorList& in) { return matmul(in[0], in[1]); };
    CHECK(gradcheck_on(d, fn, {leaf(rnd({3, 4}, 40)), leaf(rnd({4, 2}, 41))}));
    CHECK(gradcheck_on(d, fn, {leaf(rnd({2, 3, 4}, 42)), leaf(rnd({4, 5}, 43))}));
    CHECK(gradcheck_on(d, fn, {leaf(rnd({2, 1, 3, 4}, 44)), leaf(rnd({3, 4, 2}, 45))}));
    CHECK(gradcheck_on(d, fn, {transposed({3, 4}, 46), transposed({4, 2}, 47)}));
    CHECK(gradcheck_on(d, fn, {leaf(rnd({4}, 48)), leaf(rnd({4, 3}, 49))}));
    CHECK(gradcheck_on(d, fn, {leaf(rnd({2, 3, 4}, 50)), leaf(rnd({4}, 51))}));
    CHECK(gradcheck_on(d, fn, {leaf(rnd({4}, 52)), leaf(rnd({4}, 53))}));
    CHECK(gradgradcheck_on(d, fn, {leaf(rnd({2, 3}, 54)), leaf(rnd({3, 2}, 55))}));
    // A transposed operand taken inside the function, on the device.
    GradcheckFn bt = [](const TensorList& in) { return matmul(in[0], in[1].transpose(-1, -2)); };
    CHECK(gradcheck_on(d, bt, {heed::test::leaf64({2, 1, 3, 4}, 11), heed::test::leaf64({3, 2, 4}, 12)}));
  }
}

TEST_CASE("gradcheck: views and copies", "[gradcheck][device]") {
  FOR_EACH_TEST_DEVICE(d) {
    auto check = [d](const std::string& name, Unary f) { check_shaped(d, name, f, 60); };
    check("view", [](const Tensor& x) { return mul(reshape(x, {6, 4}), 1.0); });
    check("reshape", [](const Tensor& x) { return reshape(x, {4, -1}); });
    check("flatten", [](const Tensor& x) { return flatten(x, 1); });
    check("transpose", [](const Tensor& x) { return transpose(x, 0, 2); });
    check("permute", [](const Tensor& x) { return permute(x, {1, 2, 0}); });
    check("squeeze_unsqueeze", [](const Tensor& x) { return squeeze(unsqueeze(x, 1), 1); });
    check("narrow", [](const Tensor& x) { return narrow(x, 2, 1, 2); });
    check("slice_step", [](const Tensor& x) { return slice(x, 2, 0, 4, 2); });
    check("select", [](const Tensor& x) { return select(x, 1, -1); });
    check("expand", [](const Tensor& x) { return expand(unsqueeze(x, 0), {2, 2, 3, 4}); });
    check("contiguous", [](const Tensor& x) { return contiguous(x); });
    check("clone", [](const Tensor& x) { return clone(x); });
    // Through float32 the finite differences need a coarser step.
    GradcheckOptions coarse;
    coarse.eps = 1e-3;
    coarse.atol = 1e-3;
    GradcheckFn roundtrip = [](const TensorList& in) {
      return to_dtype(mul(to_dtype(in[0], DType::Float32), 2.0), DType::Float64);
    };
    CHECK(gradcheck_on(d, roundtrip, {transposed({2, 3}, 63)}, coarse));
  }
}

TEST_CASE("gradcheck: cat, stack, split, chunk", "[gradcheck][device]") {
  FOR_EACH_TEST_DEVICE(d) {
    GradcheckFn c = [](const TensorList& in) { return cat({in[0], in[1]}, 1); };
    CHECK(gradcheck_on(d, c, {leaf(rnd({2, 3}, 70)), transposed({2, 2}, 71)}));
    CHECK(gradgradcheck_on(d, c, {leaf(rnd({2, 3}, 72)), leaf(rnd({2, 1}, 73))}));
    GradcheckFn s = [](const TensorList& in) { return stack({in[0], in[1]}, 1); };
    CHECK(gradcheck_on(d, s, {leaf(rnd({2, 3}, 74)), leaf(rnd({2, 3}, 75))}));
    GradcheckFn sp = [](const TensorList& in) {
      TensorList parts = split(in[0], 2, 1);
      return add(mul(parts[0], 2.0), sum(parts[1], {1}, true));
    };
    CHECK(gradcheck_on(d, sp, {leaf(rnd({3, 3}, 76))}));
    GradcheckFn ch = [](const TensorList& in) {
      TensorList parts = chunk(in[0], 2, 0);
      return mul(parts[0], parts[1]);
    };
    CHECK(gradcheck_on(d, ch, {leaf(rnd({4, 3}, 77))}));
  }
}

TEST_CASE("gradcheck: indexing ops", "[gradcheck][device]") {
  FOR_EACH_TEST_DEVICE(d) {
    Tensor idx = from_vector(std::vector<int64_t>{2, 0, 2, 1}, {4}, d);
    GradcheckFn sel = [idx](const TensorList& in) { return index_select(in[0], 1, idx); };
    CHECK(gradcheck_on(d, sel, {transposed({2, 3}, 80)}));
    CHECK(gradgradcheck_on(d, sel, {leaf(rnd({2, 3}, 81))}));

    Tensor gidx = from_vector(std::vector<int64_t>{0, 2, 2, 1, 0, 0}, {2, 3}, d);
    GradcheckFn ga = [gidx](const TensorList& in) { return gather(in[0], 1, gidx); };
    CHECK(gradcheck_on(d, ga, {leaf(rnd({2, 4}, 82))}));
    CHECK(gradgradcheck_on(d, ga, {leaf(rnd({2, 4}, 83))}));

    GradcheckFn sa = [gidx](const TensorList& in) { return scatter_add(in[0], 1, gidx, in[1]); };
    CHECK(gradcheck_on(d, sa, {leaf(rnd({2, 4}, 84)), leaf(rnd({2, 3}, 85))}));
    CHECK(gradcheck_on(d, sa, {leaf(rnd({2, 4}, 86)), leaf(rnd({3, 5}, 87))}));  // src larger than index

    Tensor iidx = from_vector(std::vector<int64_t>{1, 1, 0}, {3}, d);
    GradcheckFn ia = [iidx](const TensorList& in) { return index_add(in[0], 0, iidx, in[1]); };
    CHECK(gradcheck_on(d, ia, {leaf(rnd({2, 3}, 88)), leaf(rnd({3, 3}, 89))}));

    Tensor ids = from_vector(std::vector<int64_t>{3, 1, 3, 0, 4, 4}, {2, 3}, d);
    GradcheckFn emb = [ids](const TensorList& in) { return embedding(in[0], ids); };
    CHECK(gradcheck_on(d, emb, {leaf(rnd({5, 2}, 90))}));
    CHECK(gradgradcheck_on(d, emb, {leaf(rnd({5, 2}, 91))}));
  }
}

TEST_CASE("gradcheck: in-place ops on non-leaves", "[gradcheck][device]") {
  FOR_EACH_TEST_DEVICE(d) {
    GradcheckFn fn = [](const TensorList& in) {
      Tensor h = mul(in[0], 1.0);
      h.mul_(in[1]);
      h.add_(in[1], 0.5);
      h.clamp_(-2.0, 2.0);
      h.lerp_(in[0], 0.25);
      return h;
    };
    CHECK(gradcheck_on(d, fn, {leaf(rnd({3}, 95, -1, 1)), leaf(rnd({3}, 96, -1, 1))}));
  }
}
