// The fused linear op (tensor/linear.cpp): x W^T + b with its activation or
// residual in one op, against the composed ops it replaces, on every test
// device; finite differences (first and second order); the fused residual
// inside the transformer layers; and its argument errors.
#include <catch2/catch.hpp>

#include <cmath>
#include <vector>

#include "autograd/engine.h"
#include "autograd/gradcheck.h"
#include "nn/linear.h"
#include "nn/transformer.h"
#include "tensor/autocast.h"
#include "tests/test_devices.h"
#include "tests/test_util.h"

using namespace heed;
using Catch::Matchers::Contains;
using heed::test::require_close;

namespace {

Tensor rnd(const Shape& shape, uint64_t seed, DType dtype = DType::Float64) {
  Generator gen(seed);
  return randn(shape, &gen, dtype);
}

Tensor leaf(Tensor t) { return t.requires_grad_(); }

// What the fused op computes, with the composed ops.
Tensor composed(const Tensor& x, const Tensor& w, const Tensor& b, LinearActivation act, const Tensor& r) {
  Tensor y = matmul(x, transpose(w, 0, 1));
  if (b.defined()) y = add(y, b);
  if (act == LinearActivation::ReLU) y = relu(y);
  if (act == LinearActivation::GELU) y = gelu(y);
  return r.defined() ? add(r, y) : y;
}

const char* act_name(LinearActivation a) {
  return a == LinearActivation::None ? "none" : a == LinearActivation::ReLU ? "relu" : "gelu";
}

struct Variant {
  LinearActivation act;
  bool bias, residual;
};

std::vector<Variant> variants() {
  std::vector<Variant> v;
  for (LinearActivation act : {LinearActivation::None, LinearActivation::ReLU, LinearActivation::GELU})
    for (bool bias : {false, true}) v.push_back({act, bias, false});
  v.push_back({LinearActivation::None, true, true});
  v.push_back({LinearActivation::None, false, true});
  return v;
}

}  // namespace

TEST_CASE("linear equals its composed ops, values and gradients, on every device", "[autograd][device]") {
  FOR_EACH_TEST_DEVICE(device) {
    for (DType dtype : {DType::Float64, DType::Float32}) {
      const double tol = dtype == DType::Float64 ? 1e-12 : 1e-5;
      for (const Variant& v : variants()) {
        INFO(dtype_name(dtype) << " act " << act_name(v.act) << (v.bias ? " bias" : "")
                               << (v.residual ? " residual" : ""));
        // x is a transposed (non-contiguous) [2, 7, 12] view; 12 -> 9 features.
        Tensor x = leaf(transpose(rnd({2, 12, 7}, 1, dtype), 1, 2).to(device));
        Tensor w = leaf(rnd({9, 12}, 2, dtype).to(device));
        Tensor b = v.bias ? leaf(rnd({9}, 3, dtype).to(device)) : Tensor();
        Tensor r = v.residual ? leaf(rnd({2, 7, 9}, 4, dtype).to(device)) : Tensor();
        Tensor g = rnd({2, 7, 9}, 5, dtype).to(device);
        TensorList inputs{x, w};
        if (b.defined()) inputs.push_back(b);
        if (r.defined()) inputs.push_back(r);

        Tensor got = linear(x, w, b, v.act, r);
        Tensor want = composed(x, w, b, v.act, r);
        require_close(got, want, tol);
        TensorList got_grads = grad({got}, inputs, {g});
        TensorList want_grads = grad({want}, inputs, {g});
        for (size_t i = 0; i < inputs.size(); ++i) {
          INFO("gradient of input " << i);
          require_close(got_grads[i], want_grads[i], tol);
        }
      }
    }
  }
}

TEST_CASE("linear passes first- and second-order finite-difference checks", "[autograd]") {
  for (const Variant& v : variants()) {
    INFO("act " << act_name(v.act) << (v.bias ? " bias" : "") << (v.residual ? " residual" : ""));
    TensorList inputs{leaf(rnd({3, 5}, 11)), leaf(rnd({4, 5}, 12))};
    if (v.bias) inputs.push_back(leaf(rnd({4}, 13)));
    if (v.residual) inputs.push_back(leaf(rnd({3, 4}, 14)));
    GradcheckFn fn = [v](const TensorList& in) {
      size_t i = 2;
      Tensor b = v.bias ? in[i++] : Tensor();
      Tensor r = v.residual ? in[i++] : Tensor();
      return linear(in[0], in[1], b, v.act, r);
    };
    REQUIRE(gradcheck(fn, inputs));
    if (v.act != LinearActivation::ReLU) REQUIRE(gradgradcheck(fn, inputs));  // ReLU's second derivative is 0 a.e.
  }
}

TEST_CASE("linear writes what the product adds to without reading a stale output, rows of zero and empty K",
          "[autograd]") {
  // K = 0: the product is empty, so y is the bias (or zeros) alone.
  Tensor x = zeros({3, 0}), w = zeros({4, 0}), b = arange(4, DType::Float32);
  REQUIRE(linear(x, w, b).to_vector<float>() == std::vector<float>{0, 1, 2, 3, 0, 1, 2, 3, 0, 1, 2, 3});
  REQUIRE(linear(x, w).to_vector<float>() == std::vector<float>(12, 0.0f));
  // No rows: an empty result of the right shape.
  REQUIRE(linear(zeros({0, 5}), zeros({4, 5}), zeros({4})).shape() == Shape{0, 4});
  // ReLU in place leaves no negative value; GELU keeps its own output.
  Tensor y = linear(rnd({6, 5}, 21, DType::Float32), rnd({7, 5}, 22, DType::Float32), Tensor(), LinearActivation::ReLU);
  for (float e : y.to_vector<float>()) REQUIRE(e >= 0.0f);
}

TEST_CASE("linear under autocast multiplies in bf16 and widens to meet a float32 residual", "[autograd]") {
  Tensor x = rnd({4, 8}, 31, DType::Float32), w = leaf(rnd({8, 8}, 32, DType::Float32));
  Tensor b = leaf(rnd({8}, 33, DType::Float32)), r = rnd({4, 8}, 34, DType::Float32);
  Tensor y, plain;
  {
    AutocastGuard autocast(DType::BFloat16);
    plain = linear(x, w, b);
    y = linear(x, w, b, LinearActivation::None, r);
  }
  REQUIRE(plain.dtype() == DType::BFloat16);
  REQUIRE(y.dtype() == DType::Float32);
  require_close(y, add(r, to_dtype(plain, DType::Float32)), 1e-6);
  sum(y).backward();
  REQUIRE(w.grad().dtype() == DType::Float32);  // master weights get float32 gradients
  REQUIRE(b.grad().dtype() == DType::Float32);
}

TEST_CASE("linear names what is wrong with its arguments", "[errors]") {
  Tensor x = zeros({2, 3}), w = zeros({4, 3}), b = zeros({4});
  REQUIRE_THROWS_WITH(linear(zeros({2, 5}), w), Contains("in_features 3"));
  REQUIRE_THROWS_WITH(linear(x, zeros({4, 3, 1})), Contains("weight must be [out_features, in_features]"));
  REQUIRE_THROWS_WITH(linear(x, w, zeros({5})), Contains("bias must be [4]"));
  REQUIRE_THROWS_WITH(linear(x, w, b, LinearActivation::ReLU, zeros({2, 4})),
                      Contains("residual is added after no activation only"));
  REQUIRE_THROWS_WITH(linear(x, w, b, LinearActivation::None, zeros({2, 3})), Contains("residual must have"));
  REQUIRE_THROWS_WITH(linear(x, zeros({4, 3}, DType::Float64)), Contains("different dtypes"));
  REQUIRE_THROWS_WITH(linear(zeros({2, 3}, DType::Int64), zeros({4, 3}, DType::Int64)), Contains("float tensor"));
}

TEST_CASE("transformer layers give the same result with the residual fused into their projections", "[nn]") {
  // With dropout off every residual add is fused into out_proj / linear2;
  // with dropout on (training) they are composed. In evaluation both must
  // equal the layer computed by hand from its parts.
  for (bool norm_first : {true, false}) {
    INFO("norm_first " << norm_first);
    nn::TransformerLayerOptions o{16, 4};
    o.dim_feedforward = 32;
    o.norm_first = norm_first;
    o.dropout = 0.0;
    Generator gen(7);
    nn::TransformerEncoderLayer layer(o, &gen);
    Tensor x = rnd({2, 5, 16}, 41, DType::Float32);
    Tensor got = layer.forward(x, {});
    auto ff = [&](const Tensor& h) { return layer.linear2->forward(relu(layer.linear1->forward(h))); };
    auto sa = [&](const Tensor& h) {
      nn::MultiheadAttentionCall plain;
      return layer.self_attn->forward(h, plain).output;
    };
    Tensor want;
    if (norm_first) {
      Tensor h = add(x, sa(layer.norm1->forward(x)));
      want = add(h, ff(layer.norm2->forward(h)));
    } else {
      Tensor h = layer.norm1->forward(add(x, sa(x)));
      want = layer.norm2->forward(add(h, ff(h)));
    }
    require_close(got, want, 1e-5);
  }
}
