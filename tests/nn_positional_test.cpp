// Positional encodings: the sinusoidal table and module, the learned table,
// rotary embeddings (apply_rotary and RotaryEmbedding).
#include <catch2/catch.hpp>

#include <cmath>
#include <vector>

#include <heed.h>
#include "tensor/grad_mode.h"
#include "autograd/gradcheck.h"
#include "nn/positional.h"

using namespace heed;
using Catch::Contains;

namespace {
// The README's RoPE, one pair at a time, in double: x [N, T, d] row-major,
// row t at position offset + t.
std::vector<double> naive_rope(const std::vector<double>& x, int64_t N, int64_t T, int64_t d, int64_t offset,
                               double base) {
  std::vector<double> out(x.size());
  const int64_t half = d / 2;
  for (int64_t n = 0; n < N; ++n)
    for (int64_t t = 0; t < T; ++t) {
      const double* row = &x[(n * T + t) * d];
      double* o = &out[(n * T + t) * d];
      for (int64_t j = 0; j < half; ++j) {
        double angle = static_cast<double>(offset + t) * std::pow(base, -2.0 * j / d);
        o[j] = row[j] * std::cos(angle) - row[j + half] * std::sin(angle);
        o[j + half] = row[j + half] * std::cos(angle) + row[j] * std::sin(angle);
      }
    }
  return out;
}

void require_close(const std::vector<double>& a, const std::vector<double>& b, double tol) {
  REQUIRE(a.size() == b.size());
  for (size_t i = 0; i < a.size(); ++i) {
    INFO("entry " << i);
    REQUIRE(a[i] == Approx(b[i]).margin(tol).epsilon(0));
  }
}
}  // namespace

// ---- sinusoidal ---------------------------------------------------------------

TEST_CASE("sinusoidal_table interleaves sin and cos of p / base^(2i/d)", "[positional]") {
  const int64_t L = 60, d = 12;
  for (double base : {10000.0, 100.0}) {
    Tensor pe64 = nn::sinusoidal_table(L, d, base, DType::Float64);
    Tensor pe32 = nn::sinusoidal_table(L, d, base);
    REQUIRE(pe64.shape() == Shape{L, d});
    REQUIRE(pe32.dtype() == DType::Float32);
    auto v64 = pe64.to_vector<double>();
    auto v32 = pe32.to_vector<float>();
    for (int64_t p : {0, 1, 7, 59})
      for (int64_t i = 0; i < d / 2; ++i) {
        double angle = p / std::pow(base, 2.0 * i / d);
        INFO("p=" << p << " i=" << i << " base=" << base);
        REQUIRE(v64[p * d + 2 * i] == Approx(std::sin(angle)).margin(1e-15));
        REQUIRE(v64[p * d + 2 * i + 1] == Approx(std::cos(angle)).margin(1e-15));
        // float32 is the double value rounded, not a float32 computation.
        REQUIRE(v32[p * d + 2 * i] == static_cast<float>(std::sin(angle)));
        REQUIRE(v32[p * d + 2 * i + 1] == static_cast<float>(std::cos(angle)));
      }
  }
}

TEST_CASE("SinusoidalPositionalEncoding adds rows offset .. offset + T - 1", "[positional]") {
  nn::SinusoidalPositionalEncoding pe({8, 20});
  REQUIRE(pe.named_parameters().empty());
  REQUIRE(pe.named_buffers().empty());  // a function of the options: never checkpointed
  REQUIRE(pe.table().shape() == Shape{20, 8});
  Generator g(1);
  Tensor x = randn({2, 5, 8}, &g);
  auto table = pe.table().to_vector<float>();
  for (int64_t offset : {0, 3, 15}) {
    auto y = pe.forward(x, offset).to_vector<float>();
    auto xv = x.to_vector<float>();
    for (int64_t b = 0; b < 2; ++b)
      for (int64_t t = 0; t < 5; ++t)
        for (int64_t c = 0; c < 8; ++c) {
          int64_t i = (b * 5 + t) * 8 + c;
          REQUIRE(y[i] == xv[i] + table[(offset + t) * 8 + c]);
        }
  }
}

TEST_CASE("SinusoidalPositionalEncoding follows the input's dtype and passes gradients through", "[positional]") {
  nn::SinusoidalPositionalEncoding pe({6, 10, 1000});
  Generator g(2);
  Tensor x = randn({3, 4, 6}, &g, DType::Float64).requires_grad_();
  Tensor y = pe.forward(x, 2);
  REQUIRE(y.dtype() == DType::Float64);
  // The float64 table is computed in double, not widened from float32.
  Tensor expected = nn::sinusoidal_table(10, 6, 1000, DType::Float64).narrow(0, 2, 4);
  auto diff = (y.detach() - x.detach() - expected).to_vector<double>();
  for (double e : diff) REQUIRE(std::abs(e) < 1e-15);
  REQUIRE(gradcheck([&](const TensorList& in) { return pe.forward(in[0], 5); }, {x}));
  // The float32 path still works after the float64 one.
  REQUIRE(pe.forward(zeros({1, 2, 6}), 0).to_vector<float>() == pe.table().narrow(0, 0, 2).to_vector<float>());
}

TEST_CASE("Sinusoidal encodings reject odd widths, wrong widths and positions past max_len", "[positional]") {
  REQUIRE_THROWS_WITH(nn::sinusoidal_table(10, 7), Contains("sinusoidal_table") && Contains("even") && Contains("7"));
  REQUIRE_THROWS_WITH(nn::sinusoidal_table(0, 8), Contains("max_len"));
  REQUIRE_THROWS_WITH(nn::sinusoidal_table(4, 8, 10000, DType::Int64), Contains("dtype"));
  REQUIRE_THROWS_WITH(nn::SinusoidalPositionalEncoding({5}), Contains("SinusoidalPositionalEncoding") && Contains("5"));
  nn::SinusoidalPositionalEncoding pe({8, 16});
  REQUIRE_THROWS_WITH(pe.forward(zeros({2, 3, 6})),
                      Contains("SinusoidalPositionalEncoding") && Contains("8") && Contains("[2, 3, 6]"));
  REQUIRE_THROWS_WITH(pe.forward(zeros({2, 10, 8}), 7),
                      Contains("SinusoidalPositionalEncoding") && Contains("max_len 16") && Contains("offset 7") &&
                          Contains("length 10"));
  REQUIRE_NOTHROW(pe.forward(zeros({2, 10, 8}), 6));
  REQUIRE_THROWS_WITH(pe.forward(zeros({2, 1, 8}), -1), Contains("offset") && Contains("-1"));
}

// ---- learned ------------------------------------------------------------------

TEST_CASE("LearnedPositionalEmbedding adds weight rows; unused rows get zero gradient", "[positional]") {
  Generator g(3);
  nn::LearnedPositionalEmbedding pos({10, 4}, &g);
  REQUIRE(pos.named_parameters().size() == 1);
  REQUIRE(pos.named_parameters()[0].first == "weight");
  REQUIRE(pos.weight.shape() == Shape{10, 4});
  Tensor x = randn({2, 3, 4}, &g);
  Tensor y = pos.forward(x, 4);
  auto yv = y.to_vector<float>(), xv = x.to_vector<float>(), w = pos.weight.to_vector<float>();
  for (int64_t b = 0; b < 2; ++b)
    for (int64_t t = 0; t < 3; ++t)
      for (int64_t c = 0; c < 4; ++c) REQUIRE(yv[(b * 3 + t) * 4 + c] == xv[(b * 3 + t) * 4 + c] + w[(4 + t) * 4 + c]);

  Tensor r = randn({2, 3, 4}, &g);
  sum(mul(y, r)).backward();
  auto grad = pos.weight.grad().to_vector<float>();
  auto rv = r.to_vector<float>();
  for (int64_t row = 0; row < 10; ++row)
    for (int64_t c = 0; c < 4; ++c) {
      float expected = 0;
      if (row >= 4 && row < 7) expected = rv[(0 * 3 + row - 4) * 4 + c] + rv[(1 * 3 + row - 4) * 4 + c];
      INFO("row " << row);
      REQUIRE(grad[row * 4 + c] == Approx(expected));
    }
}

TEST_CASE("LearnedPositionalEmbedding init is N(0, 1) and follows the seed", "[positional]") {
  Generator a(7), b(7);
  nn::LearnedPositionalEmbedding p1({200, 50}, &a), p2({200, 50}, &b);
  REQUIRE(p1.weight.to_vector<float>() == p2.weight.to_vector<float>());
  auto w = p1.weight.to_vector<float>();
  double s = 0, s2 = 0;
  for (float v : w) {
    s += v;
    s2 += static_cast<double>(v) * v;
  }
  REQUIRE(std::abs(s / w.size()) < 0.05);
  REQUIRE(std::sqrt(s2 / w.size()) == Approx(1.0).margin(0.05));
}

TEST_CASE("LearnedPositionalEmbedding gradients match finite differences", "[positional]") {
  Generator g(4);
  nn::LearnedPositionalEmbedding pos({6, 3}, &g);
  pos.to(DType::Float64);
  Tensor x = randn({2, 4, 3}, &g, DType::Float64).requires_grad_();
  REQUIRE(gradcheck([&](const TensorList& in) { return pos.forward(in[0], 1); }, {x}));
  // The weight as a gradcheck input: the module's forward is x + weight rows.
  Tensor w = pos.weight.detach().clone().requires_grad_();
  REQUIRE(gradcheck([&](const TensorList& in) { return in[0] + in[1].narrow(0, 1, 4); }, {x, w}));
}

TEST_CASE("LearnedPositionalEmbedding rejects bad options, widths and positions", "[positional]") {
  REQUIRE_THROWS_WITH(nn::LearnedPositionalEmbedding({0, 4}), Contains("LearnedPositionalEmbedding"));
  nn::LearnedPositionalEmbedding pos({5, 4});
  REQUIRE_THROWS_WITH(pos.forward(zeros({1, 2, 3})),
                      Contains("LearnedPositionalEmbedding") && Contains("[1, 2, 3]") && Contains("4"));
  REQUIRE_THROWS_WITH(pos.forward(zeros({1, 3, 4}), 3), Contains("max_len 5") && Contains("offset 3"));
}

// ---- rotary -------------------------------------------------------------------

TEST_CASE("apply_rotary matches the per-pair formula, with and without an offset", "[positional]") {
  Generator g(5);
  const int64_t B = 2, H = 3, T = 5, d = 8;
  Tensor x = randn({B, H, T, d}, &g, DType::Float64);
  auto xv = x.to_vector<double>();
  for (int64_t offset : {0, 7, 1000})
    for (double base : {10000.0, 50.0}) {
      INFO("offset " << offset << " base " << base);
      auto expected = naive_rope(xv, B * H, T, d, offset, base);
      require_close(nn::apply_rotary(x, offset, base).to_vector<double>(), expected, 1e-12);
      nn::RotaryEmbedding rope({d, base});
      require_close(rope.forward(x, offset).to_vector<double>(), expected, 1e-12);
      // float32 agrees to float32 rounding.
      auto y32 = nn::apply_rotary(x.to(DType::Float32), offset, base).to_vector<float>();
      for (size_t i = 0; i < y32.size(); ++i) REQUIRE(y32[i] == Approx(expected[i]).margin(1e-5));
    }
}

TEST_CASE("RoPE at offset t0 on one row equals row t0 of the full-length result", "[positional]") {
  Generator g(6);
  const int64_t T = 9, d = 6;
  Tensor x = randn({2, 2, T, d}, &g);
  nn::RotaryEmbedding rope({d});
  Tensor full = nn::apply_rotary(x);
  for (int64_t t0 : {0, 4, 8}) {
    Tensor row = x.narrow(2, t0, 1);
    auto expected = full.narrow(2, t0, 1).to_vector<float>();
    auto one = nn::apply_rotary(row, t0).to_vector<float>();
    auto cached = rope.forward(row, t0).to_vector<float>();
    for (size_t i = 0; i < expected.size(); ++i) {
      REQUIRE(one[i] == Approx(expected[i]).margin(1e-6));
      REQUIRE(cached[i] == Approx(expected[i]).margin(1e-6));
    }
  }
  // Decoding past what the cache holds regrows it and stays right.
  auto far = rope.forward(x, 100).to_vector<float>();
  auto expected_far = nn::apply_rotary(x, 100).to_vector<float>();
  for (size_t i = 0; i < far.size(); ++i) REQUIRE(far[i] == Approx(expected_far[i]).margin(1e-6));
}

TEST_CASE("RoPE rotates pairs (j, j + d/2), not (2j, 2j + 1), and keeps norms", "[positional]") {
  // x = e_0 at position 1 with d = 4: the pair of feature 0 is feature 2.
  Tensor x = tensor({1, 0, 0, 0}, {1, 1, 1, 4});
  auto y = nn::apply_rotary(x, 1).to_vector<float>();
  REQUIRE(y[0] == Approx(std::cos(1.0)));
  REQUIRE(y[1] == 0.0f);
  REQUIRE(y[2] == Approx(std::sin(1.0)));
  REQUIRE(y[3] == 0.0f);
  Generator g(8);
  Tensor z = randn({3, 7, 10}, &g, DType::Float64);
  auto n0 = sum(square(z), {-1}).to_vector<double>();
  auto n1 = sum(square(nn::apply_rotary(z, 3)), {-1}).to_vector<double>();
  require_close(n1, n0, 1e-12);
}

TEST_CASE("RoPE gradients match finite differences", "[positional]") {
  Generator g(9);
  Tensor x = randn({2, 2, 4, 6}, &g, DType::Float64).requires_grad_();
  REQUIRE(gradcheck([](const TensorList& in) { return nn::apply_rotary(in[0], 3); }, {x}));
  nn::RotaryEmbedding rope({6, 500});
  REQUIRE(gradcheck([&](const TensorList& in) { return rope.forward(in[0], 2); }, {x}));
  // A transposed (non-contiguous) input works too.
  Tensor xt = randn({2, 4, 2, 6}, &g, DType::Float64).transpose(1, 2).requires_grad_();
  REQUIRE(gradcheck([](const TensorList& in) { return nn::apply_rotary(in[0]); }, {xt}));
}

TEST_CASE("RoPE rejects odd head widths, wrong widths and negative offsets", "[positional]") {
  REQUIRE_THROWS_WITH(nn::apply_rotary(zeros({1, 2, 3, 5})), Contains("apply_rotary") && Contains("even") && Contains("5"));
  REQUIRE_THROWS_WITH(nn::apply_rotary(zeros({4})), Contains("apply_rotary") && Contains("[4]"));
  REQUIRE_THROWS_WITH(nn::apply_rotary(zeros({1, 1, 2, 4}), -2), Contains("offset") && Contains("-2"));
  REQUIRE_THROWS_WITH(nn::RotaryEmbedding({7}), Contains("RotaryEmbedding") && Contains("7"));
  nn::RotaryEmbedding rope({8});
  REQUIRE_THROWS_WITH(rope.forward(zeros({1, 2, 3, 6})),
                      Contains("RotaryEmbedding") && Contains("8") && Contains("[1, 2, 3, 6]"));
  REQUIRE_THROWS_WITH(rope.forward(zeros({1, 2, 3, 8}, DType::Int64)), Contains("RotaryEmbedding") && Contains("int64"));
}
