// Ready-made layers: Linear, Embedding, LayerNorm, RMSNorm, Dropout, ReLU, GELU.
// Every case tagged [device] runs once per test device (tests/test_devices.h):
// the CPU, and cuda:0 when a GPU is visible.
#include <catch2/catch.hpp>

#include <cmath>
#include <functional>
#include <vector>

#include <heed.h>
#include "autograd/gradcheck.h"
#include "tensor/grad_mode.h"
#include "nn/layers.h"
#include "tests/test_devices.h"
#include "tests/test_util.h"

using namespace heed;
using Catch::Contains;
using namespace heed::test;

namespace {
// A scalar loss that weights each output by a fixed float64 tensor.
Tensor weighted_sum(const Tensor& y, const Tensor& r) { return sum(mul(y, r)); }
}  // namespace

// ---- Linear ------------------------------------------------------------------

TEST_CASE("Linear computes x W^T + b over leading dims", "[nn][layers][device]") {
  FOR_EACH_TEST_DEVICE(d) {
    nn::Linear lin({3, 2});
    lin.to(d);
    set_values(lin.weight, {1, 2, 3, -1, 0, 2});
    set_values(lin.bias, {0.5f, -0.5f});
    Tensor x = f32(d, {1, 0, -1, 2, 1, 1, 0, 3, 0, 1, 1, 1}, {2, 2, 3});
    Tensor y = lin.forward(x);
    REQUIRE(y.shape() == Shape{2, 2, 2});
    REQUIRE(y.device() == d);
    std::vector<float> xv = x.to_vector<float>(), yv = y.to_vector<float>();
    const float W[2][3] = {{1, 2, 3}, {-1, 0, 2}}, b[2] = {0.5f, -0.5f};
    for (int r = 0; r < 4; ++r)
      for (int o = 0; o < 2; ++o) {
        float e = b[o];
        for (int i = 0; i < 3; ++i) e += xv[r * 3 + i] * W[o][i];
        REQUIRE(yv[r * 2 + o] == Approx(e));
      }
  }
}

TEST_CASE("Linear without bias registers only the weight", "[nn][layers][device]") {
  FOR_EACH_TEST_DEVICE(d) {
    nn::Linear lin({4, 3, false});
    lin.to(d);
    REQUIRE_FALSE(lin.bias.defined());
    REQUIRE(lin.named_parameters().size() == 1);
    REQUIRE(lin.named_parameters()[0].first == "weight");
    set_values(lin.weight, Vec(12, 1.0));
    REQUIRE(lin.forward(ones({4}, DType::Float32, d)).to_vector<float>() == std::vector<float>{4, 4, 4});
  }
}

TEST_CASE("Linear init is U(-1/sqrt(in), 1/sqrt(in)) and follows the seed", "[nn][layers]") {
  Generator g1(123), g2(123), g3(124);
  nn::Linear a({16, 32}, &g1), b({16, 32}, &g2), c({16, 32}, &g3);
  REQUIRE(a.weight.shape() == Shape{32, 16});
  REQUIRE(a.bias.shape() == Shape{32});
  for (const Tensor& p : {a.weight, a.bias}) {
    auto v = p.to_vector<float>();
    float lo = 1, hi = -1;
    for (float w : v) {
      REQUIRE(std::abs(w) <= 0.25f);
      lo = std::min(lo, w);
      hi = std::max(hi, w);
    }
    REQUIRE(lo < -0.15f);  // spread over the range, not all zeros
    REQUIRE(hi > 0.15f);
  }
  REQUIRE(a.weight.to_vector<float>() == b.weight.to_vector<float>());
  REQUIRE(a.bias.to_vector<float>() == b.bias.to_vector<float>());
  REQUIRE(a.weight.to_vector<float>() != c.weight.to_vector<float>());
}

TEST_CASE("Linear gradients match finite differences in float64", "[nn][layers][device]") {
  FOR_EACH_TEST_DEVICE(d) {
    Generator g(5);
    nn::Linear lin({3, 4}, &g);
    lin.to(DType::Float64);
    lin.to(d);
    REQUIRE(lin.weight.device() == d);
    REQUIRE(lin.weight.is_leaf());
    Tensor x = randn({2, 3}, &g, DType::Float64).requires_grad_();
    REQUIRE(gradcheck_on(d, [&](const TensorList& in) { return lin.forward(in[0]); }, {x}));
    Tensor r = randn({2, 4}, &g, DType::Float64).to(d);
    Tensor xc = x.detach().to(d);
    // y = x W^T + b written out.
    Vec xv = xc.to_vector<double>(), wv = lin.weight.to_vector<double>(), bv = lin.bias.to_vector<double>(), want;
    for (int row = 0; row < 2; ++row)
      for (int o = 0; o < 4; ++o) {
        double e = bv[o];
        for (int i = 0; i < 3; ++i) e += xv[row * 3 + i] * wv[o * 3 + i];
        want.push_back(e);
      }
    require_close(lin.forward(xc), want, 1e-12);
    check_param_grad(lin.weight, [&] { return weighted_sum(lin.forward(xc), r); });
    check_param_grad(lin.bias, [&] { return weighted_sum(lin.forward(xc), r); });
  }
}

TEST_CASE("Linear names itself, the width and the shape on a wrong input", "[nn][layers]") {
  nn::Linear lin({3, 2});
  REQUIRE_THROWS_WITH(lin.forward(zeros({2, 5})), Contains("Linear") && Contains("3") && Contains("[2, 5]"));
}

// ---- Embedding ---------------------------------------------------------------

TEST_CASE("Embedding looks rows up; init is N(0,1) with the padding row zeroed", "[nn][layers]") {
  Generator g(9);
  nn::Embedding emb({50, 40, 3}, &g);
  REQUIRE(emb.weight.shape() == Shape{50, 40});
  auto w = emb.weight.to_vector<float>();
  double s = 0, s2 = 0;
  int n = 0;
  for (int i = 0; i < 50; ++i)
    for (int j = 0; j < 40; ++j) {
      if (i == 3) {
        REQUIRE(w[i * 40 + j] == 0.0f);
        continue;
      }
      s += w[i * 40 + j];
      s2 += w[i * 40 + j] * w[i * 40 + j];
      ++n;
    }
  REQUIRE(std::abs(s / n) < 0.1);
  REQUIRE(std::sqrt(s2 / n) == Approx(1.0).margin(0.1));

  Tensor ids = from_vector<int64_t>({7, 0, 7, 49}, {2, 2});
  Tensor out = emb.forward(ids);
  REQUIRE(out.shape() == Shape{2, 2, 40});
  auto o = out.to_vector<float>();
  for (int j = 0; j < 40; ++j) {
    REQUIRE(o[0 * 40 + j] == w[7 * 40 + j]);
    REQUIRE(o[3 * 40 + j] == w[49 * 40 + j]);
  }
}

TEST_CASE("Embedding's padding row is read as it is but gets no gradient", "[nn][layers][device]") {
  FOR_EACH_TEST_DEVICE(d) {
    nn::Embedding emb({4, 2, 1});
    emb.to(d);
    set_values(emb.weight, {1, 2, 3, 4, 5, 6, 7, 8});  // the padding row now holds non-zeros
    Tensor ids = i64(d, {1, 2, 1, 0}, {4});
    Tensor out = emb.forward(ids);
    REQUIRE(out.device() == d);
    REQUIRE(out.to_vector<float>() == std::vector<float>{3, 4, 5, 6, 3, 4, 1, 2});
    sum(out).backward();
    REQUIRE(emb.weight.grad().device() == d);
    REQUIRE(emb.weight.grad().to_vector<float>() == std::vector<float>{1, 1, 0, 0, 1, 1, 0, 0});
    REQUIRE_THROWS_AS(emb.forward(i64(d, {4})), Error);

    // Without padding_idx every looked-up row gets its count.
    nn::Embedding plain({4, 2});
    plain.to(d);
    sum(plain.forward(ids)).backward();
    REQUIRE(plain.weight.grad().to_vector<float>() == std::vector<float>{1, 1, 2, 2, 1, 1, 0, 0});
  }
}

TEST_CASE("Embedding weight gradient matches finite differences in float64", "[nn][layers]") {
  Generator g(11);
  nn::Embedding emb({5, 3, 2}, &g);
  emb.to(DType::Float64);
  Tensor ids = from_vector<int64_t>({4, 1, 2, 4, 0, 1}, {2, 3});
  Tensor r = randn({2, 3, 3}, &g, DType::Float64);
  emb.weight.zero_grad();
  weighted_sum(emb.forward(ids), r).backward();
  auto grad = emb.weight.grad().to_vector<double>();
  for (int j = 0; j < 3; ++j) REQUIRE(grad[2 * 3 + j] == 0.0);  // padding row
  // The other rows against central differences (skip the padding row: its
  // numeric gradient is not zero, by design).
  double* data = emb.weight.data_ptr<double>();
  for (int i = 0; i < 15; ++i) {
    if (i / 3 == 2) continue;
    double saved = data[i], lp, lm;
    {
      NoGradGuard no_grad;
      data[i] = saved + 1e-6;
      lp = weighted_sum(emb.forward(ids), r).item<double>();
      data[i] = saved - 1e-6;
      lm = weighted_sum(emb.forward(ids), r).item<double>();
      data[i] = saved;
    }
    REQUIRE(grad[i] == Approx((lp - lm) / 2e-6).margin(1e-6));
  }
}

TEST_CASE("Embedding rejects a bad padding_idx and out-of-range ids", "[nn][layers]") {
  REQUIRE_THROWS_WITH(nn::Embedding({4, 2, 4}), Contains("Embedding") && Contains("padding_idx"));
  REQUIRE_THROWS_WITH(nn::Embedding({4, 2, -2}), Contains("Embedding") && Contains("padding_idx"));
  nn::Embedding emb({4, 2});
  REQUIRE_THROWS_AS(emb.forward(from_vector<int64_t>({4}, {1})), Error);
  REQUIRE_THROWS_AS(emb.forward(from_vector<int64_t>({-1}, {1})), Error);
}

// ---- LayerNorm / RMSNorm -----------------------------------------------------

TEST_CASE("LayerNorm normalises the last axis with the biased variance", "[nn][layers][device]") {
  FOR_EACH_TEST_DEVICE(d) {
    nn::LayerNorm ln({4});
    ln.to(d);
    REQUIRE(ln.weight.to_vector<float>() == std::vector<float>{1, 1, 1, 1});
    REQUIRE(ln.bias.to_vector<float>() == std::vector<float>{0, 0, 0, 0});
    set_values(ln.weight, {1, 2, 0.5f, -1});
    set_values(ln.bias, {0, 1, 0, 0.25f});
    std::vector<float> xv = {1, 2, 3, 4, -2, 0, 5, 1};
    Tensor y = ln.forward(f32(d, xv, {2, 4}));
    auto yv = y.to_vector<float>();
    const float w[4] = {1, 2, 0.5f, -1}, b[4] = {0, 1, 0, 0.25f};
    for (int r = 0; r < 2; ++r) {
      double m = 0, v = 0;
      for (int j = 0; j < 4; ++j) m += xv[r * 4 + j] / 4.0;
      for (int j = 0; j < 4; ++j) v += (xv[r * 4 + j] - m) * (xv[r * 4 + j] - m) / 4.0;
      for (int j = 0; j < 4; ++j)
        REQUIRE(yv[r * 4 + j] == Approx((xv[r * 4 + j] - m) / std::sqrt(v + 1e-5) * w[j] + b[j]).margin(1e-5));
    }
  }
}

TEST_CASE("RMSNorm divides by the root mean square", "[nn][layers][device]") {
  FOR_EACH_TEST_DEVICE(d) {
    nn::RMSNorm rms({3});
    rms.to(d);
    set_values(rms.weight, {1, 2, -1});
    std::vector<float> xv = {1, -2, 2, 0, 3, 4};
    auto yv = rms.forward(f32(d, xv, {2, 3})).to_vector<float>();
    const float w[3] = {1, 2, -1};
    for (int r = 0; r < 2; ++r) {
      double ms = 0;
      for (int j = 0; j < 3; ++j) ms += xv[r * 3 + j] * xv[r * 3 + j] / 3.0;
      for (int j = 0; j < 3; ++j) REQUIRE(yv[r * 3 + j] == Approx(xv[r * 3 + j] / std::sqrt(ms + 1e-6) * w[j]));
    }
  }
}

TEST_CASE("LayerNorm and RMSNorm gradients match finite differences in float64", "[nn][layers][device]") {
  FOR_EACH_TEST_DEVICE(d) {
    Generator g(3);
    nn::LayerNorm ln({5});
    nn::RMSNorm rms({5});
    ln.to(DType::Float64);
    rms.to(DType::Float64);
    ln.to(d);
    rms.to(d);
    {
      NoGradGuard no_grad;  // non-trivial affine parameters
      ln.weight.copy_(randn({5}, &g, DType::Float64));
      ln.bias.copy_(randn({5}, &g, DType::Float64));
      rms.weight.copy_(randn({5}, &g, DType::Float64));
    }
    Tensor x = randn({3, 5}, &g, DType::Float64).requires_grad_();
    REQUIRE(gradcheck_on(d, [&](const TensorList& in) { return ln.forward(in[0]); }, {x}));
    REQUIRE(gradcheck_on(d, [&](const TensorList& in) { return rms.forward(in[0]); }, {x}));
    Tensor r = randn({3, 5}, &g, DType::Float64).to(d);
    Tensor xc = x.detach().to(d);
    check_param_grad(ln.weight, [&] { return weighted_sum(ln.forward(xc), r); });
    check_param_grad(ln.bias, [&] { return weighted_sum(ln.forward(xc), r); });
    check_param_grad(rms.weight, [&] { return weighted_sum(rms.forward(xc), r); });
    // Without affine parameters each row has mean 0 and biased variance 1 / (1 + eps / var); eps 0 here.
    nn::LayerNorm plain({5, 0.0, false});
    plain.to(d);
    Tensor yn = plain.forward(xc);
    require_close(mean(yn, {1}), {0, 0, 0}, 1e-12);
    require_close(var(yn, {1}, 0), {1, 1, 1}, 1e-10);
  }
}

TEST_CASE("Norm layers name themselves and the shape on a wrong input", "[nn][layers]") {
  nn::LayerNorm ln({4});
  nn::RMSNorm rms({4});
  REQUIRE_THROWS_WITH(ln.forward(zeros({2, 3})), Contains("LayerNorm") && Contains("4") && Contains("[2, 3]"));
  REQUIRE_THROWS_WITH(rms.forward(zeros({3})), Contains("RMSNorm") && Contains("4") && Contains("[3]"));
  nn::LayerNorm plain({4, 1e-5, false});
  REQUIRE(plain.named_parameters().empty());
  REQUIRE_FALSE(plain.weight.defined());
}

// ---- Dropout -----------------------------------------------------------------

TEST_CASE("Dropout is the identity in eval and with p = 0", "[nn][layers][device]") {
  FOR_EACH_TEST_DEVICE(d) {
    Tensor x = randn({4, 5}).to(d);
    nn::Dropout drop(0.5);
    drop.eval();
    REQUIRE(drop.forward(x).to_vector<float>() == x.to_vector<float>());
    nn::Dropout zero(0.0);
    REQUIRE(zero.is_training());
    REQUIRE(zero.forward(x).to_vector<float>() == x.to_vector<float>());
  }
}

TEST_CASE("Dropout drops about p and scales the rest by 1/(1-p); the seed fixes the mask", "[nn][layers][device]") {
  FOR_EACH_TEST_DEVICE(d) {
    Generator g(42);
    nn::Dropout drop(0.3, &g);
    auto y = drop.forward(ones({20000}, DType::Float32, d)).to_vector<float>();
    int dropped = 0;
    for (float v : y) {
      if (v == 0.0f) {
        ++dropped;
      } else {
        REQUIRE(v == Approx(1.0 / 0.7));
      }
    }
    REQUIRE(dropped / 20000.0 == Approx(0.3).margin(0.02));
    REQUIRE(dropped == Approx(6000).margin(300));

    Generator a(7), b(7);
    nn::Dropout da(0.5, &a), db(0.5, &b);
    Tensor x = randn({64}).to(d);
    auto first = da.forward(x).to_vector<float>();
    REQUIRE(first == db.forward(x).to_vector<float>());
    auto second = da.forward(x).to_vector<float>();  // the generator moved on: a new mask
    REQUIRE(second != first);
    REQUIRE(second == db.forward(x).to_vector<float>());
    // The functional form: the same seed, the same mask.
    Generator gx(8), g1(9), g2(9);
    Tensor x2 = randn({50, 7}, &gx).to(d);
    REQUIRE(vals(nn::dropout(x2, 0.5, true, &g1)) == vals(nn::dropout(x2, 0.5, true, &g2)));

    nn::Dropout all(1.0);
    REQUIRE(all.forward(ones({5}, DType::Float32, d)).to_vector<float>() == std::vector<float>(5, 0.0f));
  }
}

TEST_CASE("Dropout gradient is the mask over 1-p", "[nn][layers][device]") {
  FOR_EACH_TEST_DEVICE(d) {
    Generator g(1);
    nn::Dropout drop(0.4, &g);
    Tensor x = randn({3, 4}, nullptr, DType::Float64).requires_grad_();
    REQUIRE(gradcheck_on(d,
                         [&](const TensorList& in) {
                           g.manual_seed(1);  // the same mask on every call
                           return drop.forward(in[0]);
                         },
                         {x}));
  }
}

TEST_CASE("Dropout rejects p outside [0, 1]", "[nn][layers]") {
  REQUIRE_THROWS_WITH(nn::Dropout(-0.1), Contains("Dropout") && Contains("p"));
  REQUIRE_THROWS_WITH(nn::Dropout(1.5), Contains("Dropout"));
}

// ---- activations -------------------------------------------------------------

TEST_CASE("ReLU and GELU modules match the formulas", "[nn][layers]") {
  std::vector<float> xv = {-2, -0.5f, 0.25f, 1.5f};
  Tensor x = from_vector<float>(xv, {4});
  nn::ReLU relu_m;
  nn::GELU gelu_erf, gelu_tanh(GeluApprox::Tanh);
  auto r = relu_m.forward(x).to_vector<float>();
  auto ge = gelu_erf.forward(x).to_vector<float>();
  auto gt = gelu_tanh.forward(x).to_vector<float>();
  for (int i = 0; i < 4; ++i) {
    double v = xv[i];
    REQUIRE(r[i] == Approx(std::max(v, 0.0)));
    REQUIRE(ge[i] == Approx(0.5 * v * (1 + std::erf(v / std::sqrt(2.0)))).margin(1e-6));
    double k = std::sqrt(2.0 / M_PI);
    REQUIRE(gt[i] == Approx(0.5 * v * (1 + std::tanh(k * (v + 0.044715 * v * v * v)))).margin(1e-6));
  }
  Generator g(2);
  Tensor x64 = randn({6}, &g, DType::Float64).requires_grad_();
  REQUIRE(gradcheck([&](const TensorList& in) { return relu_m.forward(in[0]); }, {x64}));
  REQUIRE(gradcheck([&](const TensorList& in) { return gelu_erf.forward(in[0]); }, {x64}));
  REQUIRE(gradcheck([&](const TensorList& in) { return gelu_tanh.forward(in[0]); }, {x64}));
}
