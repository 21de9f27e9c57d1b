// The fused layer_norm op (tensor/norm.cpp, kernels in tensor/cpu/cpu_norm.cpp)
// against its composed twin, by finite differences (first and second order),
// for every thread count, and its argument errors.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstring>
#include <vector>

#include "autograd/engine.h"
#include "autograd/gradcheck.h"
#include "tensor/cpu/parallel.h"
#include "tensor/ops.h"
#include "tests/test_devices.h"
#include "tests/test_util.h"

using namespace heed;
using Catch::Matchers::Contains;
using namespace heed::test;

namespace {

// The formula written with composed ops, as nn::LayerNorm used to be.
Tensor composed_layer_norm(const Tensor& x, const Tensor& w, const Tensor& b, double eps) {
  Tensor y = mul(sub(x, mean(x, {-1}, true)), rsqrt(add(var(x, {-1}, 0, true), eps)));
  if (w.defined()) y = mul(y, w);
  if (b.defined()) y = add(y, b);
  return y;
}

Tensor rnd(const Shape& shape, uint64_t seed, DType dtype = DType::Float64, double scale = 1.0, double shift = 0) {
  Generator gen(seed);
  return add(mul(randn(shape, &gen, dtype), scale), shift);
}

Tensor leaf(Tensor t) { return t.requires_grad_(); }

}  // namespace

TEST_CASE("layer_norm matches its composed twin, forward and backward, float32 and float64", "[speed][autograd]") {
  for (DType dtype : {DType::Float64, DType::Float32}) {
    const double tol = dtype == DType::Float64 ? 1e-12 : 2e-5;
    // Weight and bias each present or not: all four combinations.
    for (int parts = 0; parts < 4; ++parts) {
      const bool has_w = parts & 1, has_b = parts & 2;
      INFO(dtype_name(dtype) << (has_w ? " weight" : " no weight") << (has_b ? " bias" : " no bias"));
      // Rows with an offset and spread unlike N(0, 1), so centering and scaling both matter.
      Tensor x = leaf(rnd({3, 37, 24}, 1, dtype, 3.0, 5.0));
      Tensor w = has_w ? leaf(rnd({24}, 2, dtype, 0.5, 1.0)) : Tensor();
      Tensor b = has_b ? leaf(rnd({24}, 3, dtype)) : Tensor();
      Tensor g = rnd({3, 37, 24}, 4, dtype);
      TensorList inputs{x};
      if (has_w) inputs.push_back(w);
      if (has_b) inputs.push_back(b);

      Tensor fused = layer_norm(x, w, b, 1e-5);
      Tensor twin = composed_layer_norm(x, w, b, 1e-5);
      require_close(fused, twin, tol);
      TensorList gf = heed::grad({fused}, inputs, {g});
      TensorList gt = heed::grad({twin}, inputs, {g});
      for (size_t i = 0; i < inputs.size(); ++i) require_close(gf[i], gt[i], tol * 10);
    }
  }
}

TEST_CASE("layer_norm gradcheck and gradgradcheck in float64", "[speed][autograd][device]") {
  FOR_EACH_TEST_DEVICE(d) {
    auto fn = [](const TensorList& in) { return layer_norm(in[0], in[1], in[2], 1e-5); };
    CHECK(gradcheck_on(d, fn, {leaf(rnd({4, 6}, 5, DType::Float64, 2.0, 1.0)), leaf(rnd({6}, 6)), leaf(rnd({6}, 7))}));
    // A transposed x: the op makes it contiguous itself.
    Tensor xt = transpose(rnd({6, 4}, 8), 0, 1).requires_grad_();
    CHECK(gradcheck_on(d, fn, {xt, leaf(rnd({6}, 9)), leaf(rnd({6}, 10))}));
    CHECK(gradcheck_on(d, [](const TensorList& in) { return layer_norm(in[0], Tensor(), Tensor(), 1e-5); },
                       {leaf(rnd({2, 3, 5}, 11))}));
    CHECK(gradgradcheck_on(d, fn, {leaf(rnd({3, 5}, 12)), leaf(rnd({5}, 13)), leaf(rnd({5}, 14))}));
    // A weight and no bias, the default eps, second order.
    CHECK(gradgradcheck_on(d, [](const TensorList& in) { return layer_norm(in[0], in[1], Tensor()); },
                           {heed::test::leaf64({2, 4}, 19), heed::test::leaf64({4}, 20)}));
    // Only the weight requires grad; x and bias do not.
    CHECK(gradcheck_on(d, [](const TensorList& in) { return layer_norm(in[1], in[0], Tensor(), 1e-5); },
                       {leaf(rnd({5}, 15)), rnd({4, 5}, 16)}));
  }
}

TEST_CASE("layer_norm forward and gradients are bit-identical for 1, 2 and 3 threads", "[speed][autograd]") {
  // 200 rows: several row blocks, so the weight and bias sums are split.
  Tensor x = rnd({200, 64}, 17, DType::Float32);
  Tensor w = rnd({64}, 18, DType::Float32), b = rnd({64}, 19, DType::Float32), g = rnd({200, 64}, 20, DType::Float32);
  const int saved = cpu::num_threads();
  std::vector<std::vector<float>> runs;
  for (int threads : {1, 2, 3}) {
    cpu::set_num_threads(threads);
    Tensor xl = clone(x).requires_grad_(), wl = clone(w).requires_grad_(), bl = clone(b).requires_grad_();
    Tensor y = layer_norm(xl, wl, bl, 1e-5);
    TensorList gs = heed::grad({y}, {xl, wl, bl}, {g});
    std::vector<float> all = y.to_vector<float>();
    for (const Tensor& t : gs) {
      std::vector<float> v = t.to_vector<float>();
      all.insert(all.end(), v.begin(), v.end());
    }
    runs.push_back(all);
  }
  cpu::set_num_threads(saved);
  for (size_t r = 1; r < runs.size(); ++r) REQUIRE(std::memcmp(runs[r].data(), runs[0].data(), runs[0].size() * 4) == 0);
}

TEST_CASE("layer_norm argument errors name the op and the shapes", "[speed][errors]") {
  Tensor x = rnd({2, 4}, 21, DType::Float32);
  REQUIRE_THROWS_WITH(layer_norm(x, rnd({3}, 22, DType::Float32), Tensor()),
                      Contains("layer_norm: weight must be [4]") && Contains("[3]"));
  REQUIRE_THROWS_WITH(layer_norm(x, Tensor(), rnd({4, 1}, 23, DType::Float32)), Contains("layer_norm: bias must be [4]"));
  REQUIRE_THROWS_WITH(layer_norm(x, rnd({4}, 24), Tensor()), Contains("layer_norm: weight is float64 but x is float32"));
  REQUIRE_THROWS_WITH(layer_norm(zeros({2, 4}, DType::Int64), Tensor(), Tensor()), Contains("layer_norm"));
  REQUIRE_THROWS_WITH(layer_norm(zeros({2, 0}), Tensor(), Tensor()), Contains("non-empty last dimension"));
  REQUIRE_THROWS_WITH(layer_norm(x, Tensor(), Tensor(), -1.0), Contains("eps must be >= 0"));
}
