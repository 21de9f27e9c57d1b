// Attention variants: additive (Bahdanau) attention and linear attention.
#include <catch2/catch.hpp>

#include <cmath>
#include <functional>
#include <limits>
#include <vector>

#include <heed.h>
#include "tensor/grad_mode.h"
#include "autograd/gradcheck.h"
#include "nn/additive_attention.h"
#include "nn/linear_attention.h"
#include "tests/test_util.h"

using namespace heed;
using Catch::Contains;
using namespace heed::test;

namespace {

bool all_zero(const Tensor& t) {
  for (double v : t.to(DType::Float64).to_vector<double>())
    if (v != 0.0) return false;
  return true;
}

// The additive attention formula with loops, in double: returns context
// [B, T, Dv] and attn [B, T, S]. Wq [A, Dq], Wk [A, Dk], v [A].
struct Naive {
  std::vector<double> context, attn;
};
Naive naive_additive(const std::vector<double>& q, const std::vector<double>& k, const std::vector<double>& val,
                     const std::vector<bool>& mask, const std::vector<double>& Wq, const std::vector<double>& Wk,
                     const std::vector<double>& v, int64_t B, int64_t T, int64_t S, int64_t Dq, int64_t Dk,
                     int64_t Dv, int64_t A) {
  Naive out{std::vector<double>(B * T * Dv, 0.0), std::vector<double>(B * T * S, 0.0)};
  for (int64_t b = 0; b < B; ++b)
    for (int64_t t = 0; t < T; ++t) {
      std::vector<double> score(S);
      double mx = -std::numeric_limits<double>::infinity();
      for (int64_t s = 0; s < S; ++s) {
        double e = 0;
        for (int64_t a = 0; a < A; ++a) {
          double h = 0;
          for (int64_t i = 0; i < Dq; ++i) h += Wq[a * Dq + i] * q[(b * T + t) * Dq + i];
          for (int64_t i = 0; i < Dk; ++i) h += Wk[a * Dk + i] * k[(b * S + s) * Dk + i];
          e += v[a] * std::tanh(h);
        }
        score[s] = e;
        if (!mask[b * S + s]) mx = std::max(mx, e);
      }
      double z = 0;
      for (int64_t s = 0; s < S; ++s)
        if (!mask[b * S + s]) z += std::exp(score[s] - mx);
      for (int64_t s = 0; s < S; ++s) {
        double w = mask[b * S + s] ? 0.0 : std::exp(score[s] - mx) / z;
        out.attn[(b * T + t) * S + s] = w;
        for (int64_t c = 0; c < Dv; ++c) out.context[(b * T + t) * Dv + c] += w * val[(b * S + s) * Dv + c];
      }
    }
  return out;
}

// Linear attention written the O(T S) way, in double: q [N, T, d],
// k [N, S, d], v [N, S, dv]; causal masks key j > query i in the
// unnormalised kernel matrix.
double phi(double x) { return x > 0 ? x + 1 : std::exp(x); }
std::vector<double> naive_linear(const std::vector<double>& q, const std::vector<double>& k,
                                 const std::vector<double>& v, int64_t N, int64_t T, int64_t S, int64_t d, int64_t dv,
                                 bool causal, double eps) {
  std::vector<double> out(N * T * dv, 0.0);
  for (int64_t n = 0; n < N; ++n)
    for (int64_t i = 0; i < T; ++i) {
      double den = 0;
      std::vector<double> num(dv, 0.0);
      for (int64_t j = 0; j < S; ++j) {
        if (causal && j > i) continue;
        double kij = 0;
        for (int64_t c = 0; c < d; ++c) kij += phi(q[(n * T + i) * d + c]) * phi(k[(n * S + j) * d + c]);
        den += kij;
        for (int64_t c = 0; c < dv; ++c) num[c] += kij * v[(n * S + j) * dv + c];
      }
      for (int64_t c = 0; c < dv; ++c) out[(n * T + i) * dv + c] = num[c] / (den + eps);
    }
  return out;
}
}  // namespace

// ---- additive attention -------------------------------------------------------

TEST_CASE("AdditiveAttention registers query_proj, key_proj and score_proj", "[attention_variants]") {
  nn::AdditiveAttention att({16, 12, 8});
  auto params = att.named_parameters();
  REQUIRE(params.size() == 3);
  REQUIRE(params[0].first == "query_proj.weight");
  REQUIRE(params[0].second.shape() == Shape{8, 16});
  REQUIRE(params[1].first == "key_proj.weight");
  REQUIRE(params[1].second.shape() == Shape{8, 12});
  REQUIRE(params[2].first == "score_proj.weight");
  REQUIRE(params[2].second.shape() == Shape{1, 8});
  nn::AdditiveAttention with_bias({16, 12, 8, true});
  REQUIRE(with_bias.named_parameters().size() == 6);
  REQUIRE(with_bias.score_proj->bias.shape() == Shape{1});
}

TEST_CASE("AdditiveAttention on a hand-checkable case", "[attention_variants]") {
  // Dq = Dk = A = 1: score_s = 2 tanh(q + k_s) with q = 0.5, keys 0, 1, -1;
  // the last key is padding.
  nn::AdditiveAttention att({1, 1, 1});
  set_values(att.query_proj->weight, {1});
  set_values(att.key_proj->weight, {1});
  set_values(att.score_proj->weight, {2});
  Tensor q = tensor({0.5f}, {1, 1, 1});
  Tensor k = tensor({0, 1, -1}, {1, 3, 1});
  Tensor value = tensor({1, 10, 2, 20, 3, 30}, {1, 3, 2});
  Tensor mask = from_vector<bool>({false, false, true}, {1, 3});
  auto out = att.forward(q, k, value, mask);
  const double s0 = 2 * std::tanh(0.5), s1 = 2 * std::tanh(1.5);
  const double w0 = std::exp(s0) / (std::exp(s0) + std::exp(s1)), w1 = 1 - w0;
  REQUIRE(out.attn.shape() == Shape{1, 1, 3});
  REQUIRE(out.context.shape() == Shape{1, 1, 2});
  auto a = out.attn.to_vector<float>();
  REQUIRE(a[0] == Approx(w0));
  REQUIRE(a[1] == Approx(w1));
  REQUIRE(a[2] == 0.0f);
  auto c = out.context.to_vector<float>();
  REQUIRE(c[0] == Approx(w0 * 1 + w1 * 2));
  REQUIRE(c[1] == Approx(w0 * 10 + w1 * 20));
  // Without the mask the third key takes its share: 2 tanh(-0.5).
  auto a_all = att.forward(q, k, value).attn.to_vector<float>();
  const double s2 = 2 * std::tanh(-0.5), z = std::exp(s0) + std::exp(s1) + std::exp(s2);
  REQUIRE(a_all[2] == Approx(std::exp(s2) / z));
}

TEST_CASE("AdditiveAttention matches the formula written as loops", "[attention_variants]") {
  Generator g(11);
  const int64_t B = 2, T = 3, S = 4, Dq = 5, Dk = 3, Dv = 2, A = 6;
  nn::AdditiveAttention att({Dq, Dk, A}, &g);
  att.to(DType::Float64);
  Tensor q = randn({B, T, Dq}, &g, DType::Float64), k = randn({B, S, Dk}, &g, DType::Float64),
         value = randn({B, S, Dv}, &g, DType::Float64);
  std::vector<bool> mask_v = {false, true, false, false, false, false, true, true};
  Tensor mask = from_vector<bool>(mask_v, {B, S});
  auto out = att.forward(q, k, value, mask);
  Naive e = naive_additive(q.to_vector<double>(), k.to_vector<double>(), value.to_vector<double>(), mask_v,
                           att.query_proj->weight.to_vector<double>(), att.key_proj->weight.to_vector<double>(),
                           att.score_proj->weight.to_vector<double>(), B, T, S, Dq, Dk, Dv, A);
  auto c = out.context.to_vector<double>(), a = out.attn.to_vector<double>();
  for (size_t i = 0; i < c.size(); ++i) REQUIRE(c[i] == Approx(e.context[i]).margin(1e-12));
  for (size_t i = 0; i < a.size(); ++i) REQUIRE(a[i] == Approx(e.attn[i]).margin(1e-12));
}

TEST_CASE("AdditiveAttention gradients match finite differences, parameters included", "[attention_variants]") {
  Generator g(12);
  const int64_t B = 2, T = 3, S = 4, Dq = 3, Dk = 2, Dv = 2, A = 3;
  for (bool bias : {false, true}) {
    nn::AdditiveAttention att({Dq, Dk, A, bias}, &g);
    att.to(DType::Float64);
    Tensor q = randn({B, T, Dq}, &g, DType::Float64).requires_grad_();
    Tensor k = randn({B, S, Dk}, &g, DType::Float64).requires_grad_();
    Tensor value = randn({B, S, Dv}, &g, DType::Float64).requires_grad_();
    Tensor mask = from_vector<bool>({false, false, true, false, true, false, false, false}, {B, S});
    Tensor rc = randn({B, T, Dv}, &g, DType::Float64), ra = randn({B, T, S}, &g, DType::Float64);
    // Both outputs are differentiable: the seed reads context and attn.
    REQUIRE(gradcheck(
        [&](const TensorList& in) {
          auto o = att.forward(in[0], in[1], in[2], mask);
          return cat({flatten(o.context), flatten(o.attn)});
        },
        {q, k, value}));
    Tensor qc = q.detach(), kc = k.detach(), vc = value.detach();
    auto loss = [&] {
      auto o = att.forward(qc, kc, vc, mask);
      return add(sum(mul(o.context, rc)), sum(mul(o.attn, ra)));
    };
    for (auto& [name, p] : att.named_parameters()) {
      INFO("parameter " << name);
      check_param_grad(p, loss);
    }
  }
}

TEST_CASE("AdditiveAttention: a query whose keys are all masked gets zero weights and zero gradients",
          "[attention_variants]") {
  Generator g(13);
  const int64_t B = 2, T = 2, S = 3, Dq = 4, Dk = 4, Dv = 3, A = 5;
  nn::AdditiveAttention att({Dq, Dk, A}, &g);
  Tensor q = randn({B, T, Dq}, &g).requires_grad_();
  Tensor k = randn({B, S, Dk}, &g).requires_grad_();
  Tensor value = randn({B, S, Dv}, &g).requires_grad_();
  Tensor mask = from_vector<bool>({false, true, false, true, true, true}, {B, S});  // batch 1: all padding
  auto out = att.forward(q, k, value, mask);
  REQUIRE_FALSE(any_non_finite(out.attn));
  REQUIRE_FALSE(any_non_finite(out.context));
  REQUIRE(all_zero(out.attn.select(0, 1)));
  REQUIRE(all_zero(out.context.select(0, 1)));
  Tensor rc = randn({B, T, Dv}, &g), ra = randn({B, T, S}, &g);
  add(sum(mul(out.context, rc)), sum(mul(out.attn, ra))).backward();
  for (const Tensor* t : {&q, &k, &value}) {
    REQUIRE_FALSE(any_non_finite(t->grad()));
    REQUIRE(all_zero(t->grad().select(0, 1)));
    REQUIRE_FALSE(all_zero(t->grad().select(0, 0)));  // batch 0 still learns
  }
  // The parameters get exactly what batch 0 alone gives them.
  std::vector<std::vector<float>> with_masked_row;
  for (const Tensor& p : att.parameters()) {
    REQUIRE_FALSE(any_non_finite(p.grad()));
    with_masked_row.push_back(p.grad().to_vector<float>());
  }
  att.zero_grad();
  auto alone = att.forward(q.narrow(0, 0, 1), k.narrow(0, 0, 1), value.narrow(0, 0, 1), mask.narrow(0, 0, 1));
  add(sum(mul(alone.context, rc.narrow(0, 0, 1))), sum(mul(alone.attn, ra.narrow(0, 0, 1)))).backward();
  auto params = att.parameters();
  for (size_t i = 0; i < params.size(); ++i) {
    auto ga = params[i].grad().to_vector<float>();
    for (size_t j = 0; j < ga.size(); ++j) REQUIRE(with_masked_row[i][j] == Approx(ga[j]).margin(1e-6));
  }
}

TEST_CASE("AdditiveAttention names itself and the shapes on bad inputs", "[attention_variants]") {
  REQUIRE_THROWS_WITH(nn::AdditiveAttention({0, 2, 3}), Contains("AdditiveAttention") && Contains("query_dim=0"));
  nn::AdditiveAttention att({4, 3, 5});
  Tensor q = zeros({2, 3, 4}), k = zeros({2, 6, 3}), v = zeros({2, 6, 7});
  REQUIRE_NOTHROW(att.forward(q, k, v));
  REQUIRE_THROWS_WITH(att.forward(zeros({2, 3, 5}), k, v),
                      Contains("AdditiveAttention") && Contains("[2, 3, 5]") && Contains("query_dim=4"));
  REQUIRE_THROWS_WITH(att.forward(q, zeros({2, 6, 4}), v), Contains("AdditiveAttention") && Contains("[2, 6, 4]"));
  REQUIRE_THROWS_WITH(att.forward(q, k, zeros({2, 5, 7})), Contains("AdditiveAttention") && Contains("[2, 5, 7]"));
  REQUIRE_THROWS_WITH(att.forward(q, zeros({1, 6, 3}), zeros({1, 6, 7})),
                      Contains("AdditiveAttention") && Contains("[1, 6, 3]"));
  REQUIRE_THROWS_WITH(att.forward(zeros({3, 4}), k, v), Contains("AdditiveAttention") && Contains("[3, 4]"));
  // Masks: bool [B, S] only.
  Tensor mask_u8 = from_vector<uint8_t>(std::vector<uint8_t>(12, 0), {2, 6});
  REQUIRE_THROWS_WITH(att.forward(q, k, v, mask_u8),
                      Contains("AdditiveAttention") && Contains("bool") && Contains("uint8"));
  REQUIRE_THROWS_WITH(att.forward(q, k, v, zeros({2, 6}, DType::Bool).narrow(1, 0, 5)),
                      Contains("AdditiveAttention") && Contains("[2, 5]") && Contains("[2, 6]"));
  REQUIRE_THROWS_WITH(att.forward(q, k, v, zeros({6}, DType::Bool)), Contains("AdditiveAttention") && Contains("[6]"));
  REQUIRE_NOTHROW(att.forward(q, k, v, zeros({2, 6}, DType::Bool)));
}

// ---- linear attention ---------------------------------------------------------

TEST_CASE("elu_feature_map is elu(x) + 1 and stays finite far out", "[attention_variants]") {
  Tensor x = from_vector<double>({-800, -2, -0.5, 0.25, 3, 800}, {6});
  auto y = nn::elu_feature_map(x).to_vector<double>();
  for (size_t i = 0; i < y.size(); ++i) REQUIRE(y[i] == Approx(phi(x.to_vector<double>()[i])));
  Tensor xg = x.clone().requires_grad_();
  sum(nn::elu_feature_map(xg)).backward();
  auto g = xg.grad().to_vector<double>();
  REQUIRE_FALSE(any_non_finite(xg.grad()));
  REQUIRE(g[1] == Approx(std::exp(-2.0)));
  REQUIRE(g[4] == 1.0);
  Tensor xr = from_vector<double>({-1.5, -0.3, 0.4, 2.0}, {4}).requires_grad_();
  REQUIRE(gradcheck([](const TensorList& in) { return nn::elu_feature_map(in[0]); }, {xr}));
}

TEST_CASE("linear_attention matches the O(T S) formula", "[attention_variants]") {
  Generator g(21);
  const int64_t B = 2, H = 2, d = 3, dv = 4;
  SECTION("non-causal, T != S") {
    const int64_t T = 5, S = 7;
    Tensor q = randn({B, H, T, d}, &g, DType::Float64), k = randn({B, H, S, d}, &g, DType::Float64),
           v = randn({B, H, S, dv}, &g, DType::Float64);
    auto got = nn::linear_attention(q, k, v).to_vector<double>();
    auto want = naive_linear(q.to_vector<double>(), k.to_vector<double>(), v.to_vector<double>(), B * H, T, S, d, dv,
                             false, 1e-6);
    for (size_t i = 0; i < got.size(); ++i) REQUIRE(got[i] == Approx(want[i]).margin(1e-12));
  }
  SECTION("causal, across several chunks with a partial last one") {
    for (int64_t T : {1, 5, 64, 150}) {
      INFO("T = " << T);
      Tensor q = randn({B, H, T, d}, &g, DType::Float64), k = randn({B, H, T, d}, &g, DType::Float64),
             v = randn({B, H, T, dv}, &g, DType::Float64);
      for (double eps : {1e-6, 0.5}) {
        auto got = nn::linear_attention(q, k, v, true, eps).to_vector<double>();
        auto want = naive_linear(q.to_vector<double>(), k.to_vector<double>(), v.to_vector<double>(), B * H, T, T,
                                 d, dv, true, eps);
        for (size_t i = 0; i < got.size(); ++i) REQUIRE(got[i] == Approx(want[i]).margin(1e-12));
      }
      // The first query sees only the first key: out = k(0,0) v_0 / (k(0,0) + eps) ~ v_0.
      auto first = nn::linear_attention(q, k, v, true).narrow(2, 0, 1).to_vector<double>();
      auto v0 = v.narrow(2, 0, 1).to_vector<double>();
      for (size_t i = 0; i < first.size(); ++i) REQUIRE(first[i] == Approx(v0[i]).margin(1e-5));
    }
  }
  SECTION("float32 agrees with float64") {
    const int64_t T = 130;
    Tensor q = randn({1, 2, T, 8}, &g), k = randn({1, 2, T, 8}, &g), v = randn({1, 2, T, 8}, &g);
    for (bool causal : {false, true}) {
      auto a = nn::linear_attention(q, k, v, causal).to_vector<float>();
      auto b = nn::linear_attention(q.to(DType::Float64), k.to(DType::Float64), v.to(DType::Float64), causal)
                   .to_vector<double>();
      for (size_t i = 0; i < a.size(); ++i) REQUIRE(a[i] == Approx(b[i]).margin(1e-5));
    }
  }
}

TEST_CASE("linear_attention gradients match finite differences", "[attention_variants]") {
  Generator g(22);
  SECTION("non-causal") {
    Tensor q = randn({1, 2, 3, 2}, &g, DType::Float64).requires_grad_();
    Tensor k = randn({1, 2, 4, 2}, &g, DType::Float64).requires_grad_();
    Tensor v = randn({1, 2, 4, 3}, &g, DType::Float64).requires_grad_();
    REQUIRE(gradcheck([](const TensorList& in) { return nn::linear_attention(in[0], in[1], in[2]); }, {q, k, v}));
  }
  SECTION("causal, one chunk") {
    Tensor q = randn({2, 1, 5, 2}, &g, DType::Float64).requires_grad_();
    Tensor k = randn({2, 1, 5, 2}, &g, DType::Float64).requires_grad_();
    Tensor v = randn({2, 1, 5, 3}, &g, DType::Float64).requires_grad_();
    REQUIRE(gradcheck([](const TensorList& in) { return nn::linear_attention(in[0], in[1], in[2], true); },
                      {q, k, v}));
  }
  SECTION("causal, across a chunk boundary (the carried state is differentiated too)") {
    Tensor q = randn({1, 1, 70, 2}, &g, DType::Float64).requires_grad_();
    Tensor k = randn({1, 1, 70, 2}, &g, DType::Float64).requires_grad_();
    Tensor v = randn({1, 1, 70, 2}, &g, DType::Float64).requires_grad_();
    REQUIRE(gradcheck([](const TensorList& in) { return nn::linear_attention(in[0], in[1], in[2], true); },
                      {q, k, v}));
  }
}

TEST_CASE("linear_attention rejects mismatched shapes", "[attention_variants]") {
  Tensor q = zeros({1, 2, 5, 4}), k = zeros({1, 2, 6, 4}), v = zeros({1, 2, 6, 3});
  REQUIRE_NOTHROW(nn::linear_attention(q, k, v));
  REQUIRE_THROWS_WITH(nn::linear_attention(q, zeros({1, 2, 6, 5}), v),
                      Contains("linear_attention") && Contains("[1, 2, 6, 5]"));
  REQUIRE_THROWS_WITH(nn::linear_attention(q, k, zeros({1, 2, 7, 3})),
                      Contains("linear_attention") && Contains("[1, 2, 7, 3]"));
  REQUIRE_THROWS_WITH(nn::linear_attention(q, zeros({1, 3, 6, 4}), zeros({1, 3, 6, 3})),
                      Contains("linear_attention") && Contains("[1, 3, 6, 4]"));
  REQUIRE_THROWS_WITH(nn::linear_attention(zeros({2, 5, 4}), k, v), Contains("linear_attention") && Contains("[2, 5, 4]"));
  REQUIRE_THROWS_WITH(nn::linear_attention(q, k, v, true), Contains("linear_attention") && Contains("T == S"));
  REQUIRE_THROWS_WITH(nn::linear_attention(q, k, v, false, -1.0), Contains("eps"));
  REQUIRE_THROWS_AS(nn::linear_attention(q, k.to(DType::Float64), v), Error);
}
