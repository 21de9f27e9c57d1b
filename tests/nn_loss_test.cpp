// Losses: cross_entropy (label smoothing, ignore_index, reductions) and
// nll_loss, against PyTorch's numbers, a direct float64 evaluation of the
// formula, finite differences, and their error messages. Every case tagged
// [device] runs once per test device (tests/test_devices.h): the CPU, and
// cuda:0 when a GPU is visible.
#include <catch2/catch.hpp>

#include <cmath>
#include <vector>

#include <heed.h>
#include "autograd/gradcheck.h"
#include "nn/loss.h"
#include "tests/test_devices.h"
#include "tests/test_util.h"

using namespace heed;
using Catch::Contains;
using namespace heed::test;

namespace {
// The logits and targets of the PyTorch numbers below.
Tensor sample_logits() {
  return from_vector<double>({1.0, 2.0, 0.5, -1.0,   //
                              0.0, -0.5, 1.5, 2.0,   //
                              3.0, 0.0, 0.0, -2.0,   //
                              -1.0, 1.0, 0.25, 0.0},
                             {4, 4});
}
Tensor sample_target() { return from_vector<int64_t>({1, 3, 0, 2}, {4}); }

// The README formula, row by row in double, as the independent check.
std::vector<double> formula_rows(const std::vector<double>& logits, const std::vector<int64_t>& target, int64_t C,
                                 int64_t ignore_index, double e) {
  std::vector<double> out;
  for (size_t n = 0; n < target.size(); ++n) {
    if (target[n] == ignore_index) {
      out.push_back(0);
      continue;
    }
    const double* z = &logits[n * C];
    double mx = z[0];
    for (int64_t c = 1; c < C; ++c) mx = std::max(mx, z[c]);
    double se = 0;
    for (int64_t c = 0; c < C; ++c) se += std::exp(z[c] - mx);
    double lse = mx + std::log(se), all = 0;
    for (int64_t c = 0; c < C; ++c) all += lse - z[c];
    out.push_back((1 - e) * (lse - z[target[n]]) + e / C * all);
  }
  return out;
}
}  // namespace

TEST_CASE("cross_entropy matches PyTorch for each reduction, smoothing and ignore_index", "[loss]") {
  // Numbers from torch 1.13: F.cross_entropy(logits.double(), target, ignore_index=..., label_smoothing=...,
  // reduction=...), and logits.grad after .sum().backward().
  struct Case {
    int64_t ignore_index;
    double smoothing;
    nn::Reduction reduction;
    std::vector<double> loss;
    std::vector<double> grad;
  };
  std::vector<Case> cases = {
      {-100, 0.0, nn::Reduction::Mean, {0.657020400639613},
       {0.056051954512050285, -0.09763499060028072, 0.03399722894837638, 0.007585807139854056,
        0.01854974277979853, 0.011250987725730861, 0.0831341794738055, -0.11293490997933489,
        -0.024023981410361328, 0.011250683487020033, 0.011250683487020033, 0.0015226144363213374,
        0.017126008026345656, 0.12654503405740464, -0.1902243584958095, 0.046553316412059155}},
      {0, 0.1, nn::Reduction::Mean, {0.9360998553009805},
       {0.06640260601606707, -0.10517998746704092, 0.03699630526450186, 0.001781076186472078,
        0.016399657039731376, 0.006667983634307817, 0.10251223929840735, -0.12557987997244652, 0, 0, 0, 0,
        0.014501344035127544, 0.1603933787432062, -0.22863247799441264, 0.05373775521607888}},
      {3, 0.2, nn::Reduction::Sum, {2.889576607335373},
       {0.17420781804820118, -0.24053996240112283, 0.08598891579350555, -0.01965677144058377, 0, 0, 0, 0,
        0.0539040743585548, -0.004997266051919861, -0.004997266051919861, -0.043909542254714655,
        0.018504032105382623, 0.45618013622961856, -0.610897433983238, 0.1362132656482366}},
      {0, 0.1, nn::Reduction::None, {0.6326818980858561, 0.7260049952230792, 0.0, 1.4496126725940062},
       {0.19920781804820115, -0.3155399624011229, 0.11098891579350553, 0.005343228559416224,
        0.049198971119194114, 0.020003950902923444, 0.30753671789522197, -0.3767396399173396, 0, 0, 0, 0,
        0.043504032105382624, 0.4811801362296185, -0.685897433983238, 0.16121326564823663}},
  };
  for (const Case& c : cases) {
    INFO("ignore_index " << c.ignore_index << " smoothing " << c.smoothing);
    Tensor logits = sample_logits().requires_grad_();
    Tensor loss = nn::cross_entropy(logits, sample_target(), {c.ignore_index, c.smoothing, c.reduction});
    REQUIRE(loss.shape() == (c.reduction == nn::Reduction::None ? Shape{4} : Shape{}));
    require_close(loss.to_vector<double>(), c.loss, 1e-12);
    sum(loss).backward();
    require_close(logits.grad().to_vector<double>(), c.grad, 1e-12);
  }
}

TEST_CASE("cross_entropy over [B, T, V] logits equals the formula row by row", "[loss][device]") {
  FOR_EACH_TEST_DEVICE(d) {
    Generator g(3);
    const int64_t B = 2, T = 3, V = 5;
    Tensor logits = randn({B, T, V}, &g, DType::Float64).to(d);
    Tensor target = i64(d, {4, 0, 2, 2, 0, 1}, {B, T});  // 0 plays PAD below
    std::vector<double> rows = formula_rows(logits.to_vector<double>(), target.to_vector<int64_t>(), V, 0, 0.15);

    Tensor none = nn::cross_entropy(logits, target, {0, 0.15, nn::Reduction::None});
    REQUIRE(none.shape() == Shape{B, T});
    REQUIRE(none.device() == d);
    require_close(none, rows, 1e-12);
    double total = 0;
    for (double r : rows) total += r;
    REQUIRE(nn::cross_entropy(logits, target, {0, 0.15, nn::Reduction::Sum}).item<double>() == Approx(total));
    // Mean divides by the 4 rows whose target is not 0, not by all 6.
    REQUIRE(nn::cross_entropy(logits, target, {0, 0.15}).item<double>() == Approx(total / 4));

    // float32 gives the same numbers to float32 precision.
    Tensor f32 = nn::cross_entropy(to_dtype(logits, DType::Float32), target, {0, 0.15});
    REQUIRE(f32.dtype() == DType::Float32);
    REQUIRE(f32.item<float>() == Approx(total / 4).epsilon(1e-5));
  }
}

TEST_CASE("cross_entropy: every row ignored gives NaN for Mean and 0 for Sum, as PyTorch", "[loss][device]") {
  FOR_EACH_TEST_DEVICE(d) {
    Tensor logits = sample_logits().to(d);
    Tensor target = full({4}, -100, DType::Int64, d);
    REQUIRE(std::isnan(nn::cross_entropy(logits, target).item<double>()));
    REQUIRE(nn::cross_entropy(logits, target, {-100, 0.1, nn::Reduction::Sum}).item<double>() == 0.0);
  }
}

TEST_CASE("cross_entropy: an ignored row with -inf logits stays out of the loss and the gradient", "[loss][device]") {
  FOR_EACH_TEST_DEVICE(d) {
    // A masked row (all but one logit -inf) is ignored: its infinite smoothing
    // term must not leak through as inf or NaN.
    Tensor logits = f64(d, {1.0, 2.0, 0.5, -INFINITY, -INFINITY, 0.0}, {2, 3}).requires_grad_();
    Tensor target = i64(d, {1, -100}, {2});
    Tensor loss = nn::cross_entropy(logits, target, {-100, 0.1});
    REQUIRE(std::isfinite(loss.item<double>()));
    loss.backward();
    REQUIRE(logits.grad().device() == d);
    std::vector<double> g = logits.grad().to_vector<double>();
    for (int i = 3; i < 6; ++i) REQUIRE(g[i] == 0.0);
  }
}

TEST_CASE("cross_entropy gradients pass gradcheck and gradgradcheck with smoothing and ignore_index",
          "[loss][gradcheck][device]") {
  FOR_EACH_TEST_DEVICE(d) {
    Generator g(7);
    Tensor logits = randn({5, 4}, &g, DType::Float64).requires_grad_();
    Tensor target = i64(d, {3, 1, 1, 0, 2}, {5});
    for (nn::Reduction r : {nn::Reduction::Mean, nn::Reduction::Sum, nn::Reduction::None}) {
      auto fn = [&](const TensorList& in) { return nn::cross_entropy(in[0], target, {1, 0.2, r}); };
      REQUIRE(gradcheck_on(d, fn, {logits}));
      REQUIRE(gradgradcheck_on(d, fn, {logits}));
    }
  }
}

TEST_CASE("nll_loss picks -log_probs[target] and matches PyTorch", "[loss][gradcheck]") {
  Tensor log_probs = log_softmax(sample_logits(), -1);
  // torch 1.13: F.nll_loss(log_softmax(logits), target, ignore_index=2)
  REQUIRE(nn::nll_loss(log_probs, sample_target(), {2}).item<double>() == Approx(0.39907297665481517).epsilon(1e-12));
  Tensor none = nn::nll_loss(log_probs, sample_target(), {2, nn::Reduction::None});
  std::vector<double> lp = log_probs.to_vector<double>();
  require_close(none.to_vector<double>(), {-lp[0 * 4 + 1], -lp[1 * 4 + 3], -lp[2 * 4 + 0], 0.0}, 1e-12);
  // Without smoothing, cross_entropy is nll_loss of log_softmax.
  REQUIRE(nn::cross_entropy(sample_logits(), sample_target()).item<double>() ==
          Approx(nn::nll_loss(log_probs, sample_target()).item<double>()).epsilon(1e-12));

  Generator g(8);
  Tensor x = randn({4, 3}, &g, DType::Float64).requires_grad_();
  Tensor target = from_vector<int64_t>({2, -100, 0, 2}, {4});
  auto fn = [&](const TensorList& in) { return nn::nll_loss(in[0], target); };
  REQUIRE(gradcheck(fn, {x}));
  REQUIRE(gradgradcheck(fn, {x}));
}

TEST_CASE("cross_entropy and nll_loss name the bad target, the class count and the shapes", "[loss]") {
  Tensor logits = zeros({3, 5});
  REQUIRE_THROWS_WITH(nn::cross_entropy(logits, from_vector<int64_t>({0, 5, 1}, {3})),
                      Contains("cross_entropy") && Contains("target 5") && Contains("[0, 5)"));
  REQUIRE_THROWS_WITH(nn::cross_entropy(logits, from_vector<int64_t>({0, -1, 1}, {3})),
                      Contains("target -1") && Contains("ignore_index -100"));
  // -100 is fine as the default ignore_index, but not once ignore_index is 0.
  REQUIRE_NOTHROW(nn::cross_entropy(logits, from_vector<int64_t>({0, -100, 1}, {3})));
  REQUIRE_THROWS_WITH(nn::cross_entropy(logits, from_vector<int64_t>({0, -100, 1}, {3}), {0}),
                      Contains("target -100"));
  REQUIRE_THROWS_WITH(nn::cross_entropy(logits, from_vector<int64_t>({0, 1}, {2})),
                      Contains("cross_entropy") && Contains("[2]") && Contains("[3, 5]"));
  REQUIRE_THROWS_WITH(nn::cross_entropy(logits, zeros({3})), Contains("int64") && Contains("float32"));
  REQUIRE_THROWS_WITH(nn::cross_entropy(zeros({3, 5}, DType::Int64), from_vector<int64_t>({0, 1, 2}, {3})),
                      Contains("logits must be a float dtype"));
  REQUIRE_THROWS_WITH(nn::cross_entropy(logits, from_vector<int64_t>({0, 1, 2}, {3}), {-100, 1.5}),
                      Contains("label_smoothing"));
  REQUIRE_THROWS_WITH(nn::nll_loss(logits, from_vector<int64_t>({0, 7, 2}, {3})),
                      Contains("nll_loss") && Contains("target 7"));
}

TEST_CASE("cross_entropy's fused kernel: large vocabularies, float32 and bfloat16, -inf rows, its gradient", "[loss]") {
  const int64_t N = 6, C = 3000;
  Generator gen(7);
  Tensor logits = mul(randn({N, C}, &gen), 3.0);
  Tensor target = from_vector<int64_t>({5, -100, 2999, 0, 1234, 17});
  const std::vector<double> x = to_dtype(logits, DType::Float64).to_vector<double>();
  const std::vector<int64_t> t = target.to_vector<int64_t>();
  for (double e : {0.0, 0.1}) {
    INFO("label_smoothing " << e);
    nn::CrossEntropyOptions o;
    o.label_smoothing = e;
    o.reduction = nn::Reduction::None;
    const std::vector<double> want = formula_rows(x, t, C, -100, e);
    const std::vector<double> got = to_dtype(nn::cross_entropy(logits, target, o), DType::Float64).to_vector<double>();
    REQUIRE(got.size() == want.size());
    for (size_t i = 0; i < got.size(); ++i) REQUIRE(got[i] == Approx(want[i]).margin(2e-5));
    // bfloat16 logits: the float32 kernel on the widened values, the loss rounded once.
    Tensor l16 = to_dtype(logits, DType::BFloat16);
    const std::vector<double> x16 = to_dtype(l16, DType::Float64).to_vector<double>();
    const std::vector<double> want16 = formula_rows(x16, t, C, -100, e);
    const std::vector<double> got16 = to_dtype(nn::cross_entropy(l16, target, o), DType::Float64).to_vector<double>();
    for (size_t i = 0; i < got16.size(); ++i) REQUIRE(got16[i] == Approx(want16[i]).epsilon(1.0 / 128).margin(1e-6));
    // The gradient: softmax - (1 - e) one_hot - e / C, times the row's weight, 0 in the ignored row.
    Tensor xr = logits.detach().requires_grad_();
    o.reduction = nn::Reduction::Sum;
    nn::cross_entropy(xr, target, o).backward();
    const std::vector<double> g = to_dtype(xr.grad(), DType::Float64).to_vector<double>();
    for (int64_t n = 0; n < N; ++n) {
      double mx = -INFINITY, se = 0;
      for (int64_t c = 0; c < C; ++c) mx = std::max(mx, x[n * C + c]);
      for (int64_t c = 0; c < C; ++c) se += std::exp(x[n * C + c] - mx);
      for (int64_t c = 0; c < C; c += 97) {
        const double p = std::exp(x[n * C + c] - mx) / se;
        const double want_g = t[n] == -100 ? 0.0 : p - (c == t[n] ? 1 - e : 0) - e / C;
        REQUIRE(g[n * C + c] == Approx(want_g).margin(1e-6));
      }
    }
  }
  // A row with every logit -inf: the loss is inf (no probability anywhere), its gradient finite.
  Tensor bad = from_vector<float>({-INFINITY, -INFINITY, -INFINITY, 1, 2, 3}, {2, 3}).requires_grad_();
  nn::CrossEntropyOptions o;
  o.reduction = nn::Reduction::None;
  Tensor loss = nn::cross_entropy(bad, from_vector<int64_t>({1, 2}), o);
  REQUIRE(std::isinf(loss.to_vector<float>()[0]));
  sum(mul(loss, from_vector<float>({0, 1}))).backward();
  for (float v : bad.grad().to_vector<float>()) REQUIRE(std::isfinite(v));
}
