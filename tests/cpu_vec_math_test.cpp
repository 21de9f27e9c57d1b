// The vectorisable float32 functions of tensor/cpu/vec_math.h against the
// exact functions in double, over a dense sweep of each one's whole range and
// at the edges (overflow thresholds, infinities, NaN).
#include <catch2/catch.hpp>

#include <cmath>
#include <cstdio>
#include <functional>
#include <limits>

#include "tensor/cpu/vec_math.h"

using namespace heed::cpu;

namespace {

// Distance in float32 ulps of `got` from the exact `want`, measured with the
// spacing of floats at want (at least the smallest normal's).
// want is clamped to the smallest normal first: ilogb(0) is INT_MIN, and
// subtracting from it would overflow.
double ulps(float got, double want) {
  const float magnitude = std::max(std::abs(static_cast<float>(want)), std::numeric_limits<float>::min());
  const double spacing = std::ldexp(1.0, std::ilogb(magnitude) - 23);
  return std::abs(static_cast<double>(got) - want) / spacing;
}

// Largest ulp error of f against exact over n points evenly spread on [lo, hi].
double max_ulps(const std::function<float(float)>& f, const std::function<double(double)>& exact, double lo,
                double hi, int n = 400001) {
  double worst = 0;
  for (int i = 0; i < n; ++i) {
    const float x = static_cast<float>(lo + (hi - lo) * i / (n - 1));
    worst = std::max(worst, ulps(f(x), exact(x)));
  }
  return worst;
}

double sigmoid(double x) { return 1 / (1 + std::exp(-x)); }

}  // namespace

TEST_CASE("vec_math: exp, sigmoid, tanh, erf, gelu stay within a few ulp of the exact functions", "[cpu][speed]") {
  CHECK(max_ulps(exp_f32, [](double x) { return std::exp(x); }, -87.3, 88.7) <= 1.5);
  CHECK(max_ulps(exp_nonpositive, [](double x) { return std::exp(x); }, -87.3, 0) <= 1.5);
  CHECK(max_ulps(sigmoid_f32, sigmoid, -80, 80) <= 4);
  CHECK(max_ulps(tanh_f32, [](double x) { return std::tanh(x); }, -10, 10) <= 8);
  CHECK(max_ulps(erf_f32, [](double x) { return std::erf(x); }, -5, 5) <= 8);
  // GELU: relative to the value, except near its zero crossing at x = 0 and
  // for very negative x where 1 + erf cancels (as in the exact float formula).
  for (int i = 0; i <= 100000; ++i) {
    const float x = static_cast<float>(-6 + 12.0 * i / 100000);
    const double want = 0.5 * x * (1 + std::erf(x / std::sqrt(2.0)));
    const double want_t = 0.5 * x * (1 + std::tanh(std::sqrt(2 / M_PI) * (x + 0.044715 * double(x) * x * x)));
    INFO("x = " << x);
    REQUIRE(std::abs(gelu_erf_f32(x) - want) <= 1e-6 * (1 + std::abs(want)));
    REQUIRE(std::abs(gelu_tanh_f32(x) - want_t) <= 1e-6 * (1 + std::abs(want_t)));
  }
}

TEST_CASE("vec_math: limits, infinities and NaN", "[cpu][speed]") {
  const float inf = std::numeric_limits<float>::infinity(), nan = std::numeric_limits<float>::quiet_NaN();
  CHECK(exp_f32(0) == 1);
  CHECK(exp_f32(88.72f) > 3.3e38f);
  CHECK(std::isfinite(exp_f32(88.72f)));
  CHECK(exp_f32(88.73f) == inf);
  CHECK(exp_f32(inf) == inf);
  CHECK(exp_f32(-90) == 0);
  CHECK(exp_f32(-inf) == 0);
  CHECK(std::isnan(exp_f32(nan)));
  CHECK(exp_nonpositive(-inf) == 0);
  CHECK(std::isnan(exp_nonpositive(nan)));
  CHECK(sigmoid_f32(1000) == 1);
  CHECK(sigmoid_f32(-1000) == 0);
  CHECK(sigmoid_f32(inf) == 1);
  CHECK(sigmoid_f32(-inf) == 0);
  CHECK(std::isnan(sigmoid_f32(nan)));
  for (auto f : {tanh_f32, erf_f32}) {
    CHECK(f(0) == 0);
    CHECK(f(100) == 1);
    CHECK(f(-100) == -1);
    CHECK(f(inf) == 1);
    CHECK(f(-inf) == -1);
    CHECK(std::isnan(f(nan)));
  }
  CHECK(gelu_erf_f32(100) == 100);
  CHECK(gelu_erf_f32(-100) == 0);
  CHECK(gelu_tanh_f32(100) == 100);
  CHECK(gelu_tanh_f32(-100) == 0);
  CHECK(std::isnan(gelu_erf_f32(nan)));
}
