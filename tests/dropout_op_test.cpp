// The fused dropout op (tensor/dropout.cpp): the same bits as the composed
// dropout it replaces (mask drawn by bernoulli, scaled, multiplied, residual
// added), values and gradients, every float dtype, on every test device; the
// generator advanced as bernoulli advances it; finite differences (first and
// second order); and its argument errors.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "autograd/engine.h"
#include "autograd/gradcheck.h"
#include "nn/dropout.h"
#include "tensor/autocast.h"
#include "tests/test_devices.h"

using namespace heed;
using Catch::Matchers::Contains;

namespace {

Tensor rnd(const Shape& shape, uint64_t seed, DType dtype) {
  Generator gen(seed);
  return to_dtype(randn(shape, &gen, DType::Float64), dtype);
}

// The bytes of t on the CPU, to compare bit for bit (NaN and -0 included).
std::vector<unsigned char> bytes(const Tensor& t) {
  const Tensor c = contiguous(t.to(kCPU));
  const auto* p = static_cast<const unsigned char*>(c.raw_data());
  return std::vector<unsigned char>(p, p + c.numel() * dtype_size(c.dtype()));
}

// What the fused op replaces.
Tensor composed(const Tensor& x, double p, Generator* gen, const Tensor& residual) {
  Tensor mask = bernoulli(x.shape(), 1.0 - p, gen, x.dtype(), x.device());
  Tensor y = mul(x, mul(mask, 1.0 / (1.0 - p)));
  return residual.defined() ? add(residual, y) : y;
}

}  // namespace

TEST_CASE("fused dropout gives the composed dropout's bits, values and gradients, on every device",
          "[autograd][device]") {
  FOR_EACH_TEST_DEVICE(device) {
    for (DType dtype : {DType::Float32, DType::Float64, DType::BFloat16}) {
      for (double p : {0.1, 0.3, 0.5}) {
        for (bool with_residual : {false, true}) {
          INFO(dtype_name(dtype) << " p " << p << (with_residual ? " residual" : ""));
          // 4103 elements: several parallel chunks of Philox batches and an odd tail;
          // a transposed x, and NaN, infinity and negative values that a dropped
          // element must keep as NaN and -0 (x * 0).
          Tensor x0 = transpose(rnd({4103, 1}, 1, dtype), 0, 1);
          Tensor special = to_dtype(from_vector<double>({std::nan(""), INFINITY, -INFINITY, -2.5, -0.0}), dtype);
          x0 = cat({reshape(special, {1, 5}), x0}, 1);
          Tensor x = x0.to(device).requires_grad_();
          Tensor r = with_residual ? rnd({1, 4108}, 2, dtype).to(device).requires_grad_() : Tensor();
          Tensor g = rnd({1, 4108}, 3, dtype).to(device);
          Generator fused_gen(42), composed_gen(42);
          fused_gen.advance(1ull << 32);  // an offset whose low word wraps inside the draw
          composed_gen.advance(1ull << 32);
          Tensor got = fused_dropout(x, p, &fused_gen, r);
          Tensor want = composed(x, p, &composed_gen, r);
          REQUIRE(fused_gen.offset() == composed_gen.offset());
          REQUIRE(bytes(got) == bytes(want));
          TensorList inputs{x};
          if (r.defined()) inputs.push_back(r);
          TensorList got_grads = grad({got}, inputs, {g});
          TensorList want_grads = grad({want}, inputs, {g});
          for (size_t i = 0; i < inputs.size(); ++i) {
            INFO("gradient of input " << i);
            REQUIRE(bytes(got_grads[i]) == bytes(want_grads[i]));
          }
        }
      }
    }
  }
}

TEST_CASE("nn::dropout is the fused op, and keeps its edge cases", "[nn]") {
  Tensor x = rnd({3, 7}, 5, DType::Float32);
  Generator a(9), b(9);
  REQUIRE(bytes(nn::dropout(x, 0.25, true, &a)) == bytes(composed(x, 0.25, &b, Tensor())));
  REQUIRE(bytes(nn::dropout(x, 0.25, false, &a)) == bytes(x));  // eval: identity
  REQUIRE(bytes(nn::dropout(x, 0.0, true, &a)) == bytes(x));
  REQUIRE(sum(nn::dropout(x, 1.0, true, &a)).item<double>() == 0.0);
  REQUIRE(a.offset() == b.offset());  // only the p = 0.25 training call drew
}

TEST_CASE("fused dropout passes first- and second-order finite-difference checks", "[autograd]") {
  for (bool with_residual : {false, true}) {
    INFO((with_residual ? "residual" : "no residual"));
    TensorList inputs{rnd({4, 6}, 11, DType::Float64).requires_grad_()};
    if (with_residual) inputs.push_back(rnd({4, 6}, 12, DType::Float64).requires_grad_());
    // A fresh generator per call: every evaluation draws the same mask.
    GradcheckFn fn = [with_residual](const TensorList& in) {
      Generator gen(21);
      return fused_dropout(in[0], 0.4, &gen, with_residual ? in[1] : Tensor());
    };
    REQUIRE(gradcheck(fn, inputs));
    REQUIRE(gradgradcheck(fn, inputs));
  }
}

TEST_CASE("fused dropout with a float32 residual and a bf16 input follows add: widened under autocast only",
          "[autograd]") {
  Tensor x = rnd({2, 5}, 31, DType::BFloat16);
  Tensor r = rnd({2, 5}, 32, DType::Float32);
  Generator a(3), b(3);
  REQUIRE_THROWS_WITH(fused_dropout(x, 0.5, &a, r), Contains("different dtypes"));
  AutocastGuard autocast(DType::BFloat16);
  Tensor got = fused_dropout(x, 0.5, &a, r);
  b.advance(3);  // the refused call had drawn its mask (3 Philox blocks) before add refused
  REQUIRE(got.dtype() == DType::Float32);
  REQUIRE(bytes(got) == bytes(add(r, composed(x, 0.5, &b, Tensor()))));
}

TEST_CASE("fused dropout names what is wrong with its arguments", "[errors]") {
  Tensor x = rnd({2, 3}, 41, DType::Float32);
  REQUIRE_THROWS_WITH(fused_dropout(x, 1.0), Contains("p must be in [0, 1)"));
  REQUIRE_THROWS_WITH(fused_dropout(x, -0.1), Contains("p must be in [0, 1)"));
  REQUIRE_THROWS_WITH(fused_dropout(from_vector<int64_t>({1, 2}), 0.5), Contains("expected a float tensor"));
  REQUIRE_THROWS_WITH(fused_dropout(x, 0.5, nullptr, zeros({3, 2})), Contains("residual must have x's shape [2, 3]"));
  REQUIRE_THROWS_WITH(fused_dropout(Tensor(), 0.5), Contains("undefined"));
}
