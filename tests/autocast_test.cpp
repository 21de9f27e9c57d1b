// Mixed precision (tensor/autocast.h): which dtype each op runs in under an
// AutocastGuard, that float32 parameters get float32 gradients through the
// casts, and that a model trained under autocast follows float32's losses.
#include <catch2/catch.hpp>

#include <cmath>

#include <heed.h>

using namespace heed;
using Catch::Matchers::Contains;

namespace {
constexpr DType kBF16 = DType::BFloat16;
constexpr DType kF32 = DType::Float32;
}  // namespace

TEST_CASE("autocast: matmuls in bfloat16, softmax, norms and losses in float32, mixed operands widened", "[autocast]") {
  Generator gen(1);
  Tensor a = randn({4, 8}, &gen), b = randn({8, 3}, &gen);
  Tensor a64 = to_dtype(a, DType::Float64), b64 = to_dtype(b, DType::Float64);
  REQUIRE_FALSE(Autocast::is_enabled());
  {
    AutocastGuard autocast(kBF16);
    REQUIRE(Autocast::is_enabled());
    Tensor p = matmul(a, b);
    REQUIRE(p.dtype() == kBF16);
    // The product of the bf16-rounded operands, accumulated in float32 and rounded once.
    Tensor want = to_dtype(matmul(to_dtype(to_dtype(a, kBF16), kF32), to_dtype(to_dtype(b, kBF16), kF32)), kBF16);
    {
      AutocastGuard off(kBF16, false);
      REQUIRE_FALSE(Autocast::is_enabled());
      REQUIRE(matmul(a, b).dtype() == kF32);
      REQUIRE_THROWS_WITH(add(p, a.narrow(1, 0, 3)), Contains("different dtypes"));
    }
    REQUIRE(Autocast::is_enabled());
    REQUIRE(p.to_vector<float>() == want.to_vector<float>());
    REQUIRE(matmul(a64, b64).dtype() == DType::Float64);  // float64 is never touched
    REQUIRE(softmax(p, -1).dtype() == kF32);
    REQUIRE(log_softmax(p, -1).dtype() == kF32);
    REQUIRE(layer_norm(p, Tensor(), Tensor()).dtype() == kF32);
    REQUIRE(layer_norm(p, ones({3}), zeros({3})).dtype() == kF32);
    REQUIRE(nn::cross_entropy(p, from_vector<int64_t>({0, 1, 2, 1})).dtype() == kF32);
    Tensor c = randn({4, 3}, &gen);
    REQUIRE(add(p, c).dtype() == kF32);
    REQUIRE(add(c, p).dtype() == kF32);
    REQUIRE(mul(p, c).dtype() == kF32);
    REQUIRE(sub(p, c).dtype() == kF32);
    REQUIRE(div(c, p).dtype() == kF32);
    REQUIRE(maximum(p, c).dtype() == kF32);
    REQUIRE(where(gt(c, zeros_like(c)), p, c).dtype() == kF32);
    REQUIRE(cat({p, c}, 0).dtype() == kF32);
    REQUIRE(stack({c, p}, 0).dtype() == kF32);
    REQUIRE(add(p, p).dtype() == kBF16);  // one dtype: nothing to widen
    REQUIRE(relu(p).dtype() == kBF16);
    // A Linear adds its bias in bf16 too, like torch.autocast.
    nn::Linear lin(nn::LinearOptions{8, 5}, &gen);
    REQUIRE(lin.forward(a).dtype() == kBF16);
    nn::RMSNorm rms(nn::RMSNormOptions{5});
    REQUIRE(rms.forward(lin.forward(a)).dtype() == kF32);
  }
  REQUIRE_FALSE(Autocast::is_enabled());
  REQUIRE(matmul(a, b).dtype() == kF32);
  REQUIRE_THROWS_WITH(AutocastGuard(DType::Float64), Contains("bfloat16"));
}

TEST_CASE("autocast: float32 parameters get float32 gradients close to float32 training's", "[autocast]") {
  Generator gen(2);
  nn::Linear lin(nn::LinearOptions{16, 8}, &gen);
  Tensor x = randn({5, 16}, &gen);
  Tensor target = from_vector<int64_t>({0, 3, 7, 1, 1});
  auto loss_of = [&] { return nn::cross_entropy(relu(lin.forward(x)), target); };

  lin.zero_grad();
  Tensor loss32 = loss_of();
  loss32.backward();
  Tensor gw32 = lin.weight.grad().clone(), gb32 = lin.bias.grad().clone();

  lin.zero_grad();
  Tensor loss16;
  {
    AutocastGuard autocast(kBF16);
    loss16 = loss_of();
    // Backward inside the guard is the same as outside: it runs without the policy.
    loss16.backward();
  }
  REQUIRE(loss16.dtype() == kF32);
  REQUIRE(lin.weight.grad().dtype() == kF32);
  REQUIRE(lin.bias.grad().dtype() == kF32);
  REQUIRE(loss16.item<float>() == Approx(loss32.item<float>()).epsilon(0.02));
  std::vector<float> g16 = lin.weight.grad().to_vector<float>(), g32 = gw32.to_vector<float>();
  double err = 0, norm = 0;
  for (size_t i = 0; i < g16.size(); ++i) {
    err += (g16[i] - g32[i]) * (g16[i] - g32[i]);
    norm += g32[i] * g32[i];
  }
  REQUIRE(norm > 0);
  REQUIRE(std::sqrt(err / norm) < 0.03);  // bf16 has 8 significant bits: about 0.4% per rounding
  Tensor gb_again = lin.bias.grad().clone();
  lin.zero_grad();
  {
    AutocastGuard autocast(kBF16);
    loss16 = loss_of();
  }
  loss16.backward();
  REQUIRE(lin.bias.grad().to_vector<float>() == gb_again.to_vector<float>());
  REQUIRE(gb32.dtype() == kF32);
}

TEST_CASE("autocast: a small GPT trained in mixed precision follows float32's losses", "[autocast]") {
  nn::GPTOptions opt;
  opt.vocab = 13;
  opt.block_size = 16;
  opt.num_layers = 1;
  opt.nhead = 2;
  opt.d_model = 32;
  opt.dropout = 0.0;
  Generator data_gen(5);
  Tensor ids = to_dtype(mul(rand({4, 17}, &data_gen), 12.99), DType::Int64);
  Tensor inputs = ids.narrow(1, 0, 16), targets = ids.narrow(1, 1, 16);
  auto train = [&](bool mixed) {
    Generator gen(3);
    auto model = std::make_shared<nn::GPT>(opt, &gen);
    optim::AdamW adam(model->parameters(), optim::AdamWOptions{3e-3});
    std::vector<float> losses;
    for (int step = 0; step < 30; ++step) {
      adam.zero_grad();
      Tensor loss;
      {
        AutocastGuard autocast(kBF16, mixed);
        loss = nn::cross_entropy(model->forward(inputs), targets);
      }
      loss.backward();
      adam.step();
      losses.push_back(loss.item<float>());
    }
    for (const auto& p : model->parameters()) REQUIRE(p.dtype() == kF32);
    return losses;
  };
  std::vector<float> l32 = train(false), l16 = train(true);
  REQUIRE(l16.front() == Approx(l32.front()).epsilon(0.01));
  REQUIRE(l16.back() < l16.front() - 0.5f);  // it learns
  REQUIRE(l16.back() == Approx(l32.back()).margin(0.1));
}
