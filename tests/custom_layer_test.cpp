// The worked custom layer of examples/custom_layer (docs/extending.md): its
// hand-written backward and its parameters' gradients against finite
// differences, so the example people copy stays correct.
#include <catch2/catch.hpp>

#include <heed.h>
#include "autograd/gradcheck.h"
#include "examples/custom_layer/swiglu.h"

using namespace heed;
using Catch::Contains;

TEST_CASE("SwiGLUGate computes silu(a) * b", "[extend]") {
  Tensor a = from_vector<double>({-2.0, 0.0, 1.5}, {3});
  Tensor b = from_vector<double>({3.0, 4.0, -0.5}, {3});
  std::vector<double> y = example::SwiGLUGate::apply(a, b).to_vector<double>();
  std::vector<double> av = a.to_vector<double>(), bv = b.to_vector<double>();
  for (int i = 0; i < 3; ++i) REQUIRE(y[i] == Approx(av[i] / (1 + std::exp(-av[i])) * bv[i]));
}

TEST_CASE("SwiGLUGate's hand-written backward passes gradcheck and gradgradcheck", "[extend][gradcheck]") {
  Generator g(21);
  Tensor a = mul(randn({3, 4}, &g, DType::Float64), 2.0).requires_grad_();
  Tensor b = randn({3, 4}, &g, DType::Float64).requires_grad_();
  auto fn = [](const TensorList& in) { return example::SwiGLUGate::apply(in[0], in[1]); };
  REQUIRE(gradcheck(fn, {a, b}));
  REQUIRE(gradgradcheck(fn, {a, b}));
  REQUIRE(example::SwiGLUGate::apply(a, b).grad_fn()->name() == "example::SwiGLUGate");
}

TEST_CASE("SwiGLUFeedForward: input and parameter gradients match finite differences", "[extend][gradcheck]") {
  Generator g(22);
  example::SwiGLUFeedForward ffn({4, 6}, &g);
  REQUIRE(ffn.num_parameters() == 3 * 4 * 6);
  REQUIRE(ffn.named_parameters()[2].first == "w_down");
  ffn.to(DType::Float64);
  Tensor x = randn({2, 3, 4}, &g, DType::Float64).requires_grad_();
  REQUIRE(gradcheck([&](const TensorList& in) { return ffn.forward(in[0]); }, {x}));
  // The parameters as gradcheck inputs: the same forward, written with them
  // passed in, so that central differences move each weight.
  auto with_weights = [&](const TensorList& in) {
    Tensor gate = matmul(x.detach(), transpose(in[0], 0, 1));
    Tensor up = matmul(x.detach(), transpose(in[1], 0, 1));
    return matmul(example::SwiGLUGate::apply(gate, up), transpose(in[2], 0, 1));
  };
  REQUIRE(gradcheck(with_weights, {ffn.w_gate, ffn.w_up, ffn.w_down}));
  // And the module's own backward gives what that check just verified.
  Tensor r = randn({2, 3, 4}, &g, DType::Float64);
  ffn.zero_grad();
  sum(mul(ffn.forward(x.detach()), r)).backward();
  TensorList expected = grad({with_weights({ffn.w_gate, ffn.w_up, ffn.w_down})}, {ffn.w_gate, ffn.w_up, ffn.w_down}, {r});
  for (int i = 0; i < 3; ++i) {
    std::vector<double> got = ffn.parameters()[i].grad().to_vector<double>(), want = expected[i].to_vector<double>();
    for (size_t j = 0; j < got.size(); ++j) REQUIRE(got[j] == Approx(want[j]).epsilon(1e-12).margin(1e-14));
  }
}

TEST_CASE("SwiGLUFeedForward names itself and the shapes on bad input", "[extend]") {
  REQUIRE_THROWS_WITH(example::SwiGLUFeedForward({0, 4}), Contains("SwiGLUFeedForward") && Contains("positive"));
  example::SwiGLUFeedForward ffn({4, 6});
  REQUIRE_THROWS_WITH(ffn.forward(zeros({2, 5})), Contains("SwiGLUFeedForward") && Contains("[2, 5]"));
  REQUIRE_THROWS_WITH(example::SwiGLUGate::apply(zeros({2, 3}), zeros({3})),
                      Contains("SwiGLUGate") && Contains("[2, 3]") && Contains("[3]"));
}
