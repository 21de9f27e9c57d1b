#pragma once
// float32 exp, sigmoid, tanh, erf and GELU written so that a loop calling them
// vectorises: no library call, no branch, no float->int conversion, only
// multiply-adds, one division and selects. std::exp/tanh/erf(float) are a
// library call per element (~10-30 ns); these run several elements per
// nanosecond in the loops of cpu_elementwise.cpp and cpu_softmax.cpp.
//
// Accuracy against the exact function (float64), over all floats:
//   exp_nonpositive, exp_f32: < 1 ulp (Cephes polynomial); results below
//     FLT_MIN (x < -87.3) are flushed to 0 rather than made denormal;
//   sigmoid_f32: a few ulp (from exp_f32);
//   tanh_f32, erf_f32: < 8 ulp (rational minimax approximations on
//     [-7.99, 7.99] and [-4, 4], as Eigen's fast tanh/erf; outside, the
//     function is +-1 in float32).
// NaN gives NaN and +-inf gives the limit in every function.
//
// Included by the CPU kernels only; every element is computed alone, so the
// results are the same for any thread count.
#include <cmath>
#include <cstdint>
#include <cstring>

#include "tensor/elementwise_formulas.h"

namespace heed::cpu {

inline uint32_t float_bits(float x) {
  uint32_t b;
  std::memcpy(&b, &x, sizeof(b));
  return b;
}

inline float bits_float(uint32_t b) {
  float x;
  std::memcpy(&x, &b, sizeof(x));
  return x;
}

// e^r * 2^n for |r| <= ln2/2 (the Cephes polynomial for e^r), with n read
// from t = x log2e + 1.5*2^23 (adding 1.5*2^23 rounds to an integer and puts
// it in the low mantissa bits). 2^n is applied as two halves so that every
// n in [-126, 128] stays a normal float.
inline float exp_reduced(float x) {
  const float kLog2e = 1.44269504088896341f;
  const float kLn2Hi = 0.693359375f, kLn2Lo = -2.12194440e-4f;
  const float kRound = 12582912.0f;  // 1.5 * 2^23
  const float t = x * kLog2e + kRound;
  const float n = t - kRound;
  const float r = (x - n * kLn2Hi) - n * kLn2Lo;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.0f;
  const int32_t ni = static_cast<int32_t>(float_bits(t) - 0x4B400000u);  // n as an integer
  const int32_t n1 = ni >> 1, n2 = ni - n1;
  const float s1 = bits_float(static_cast<uint32_t>(n1 + 127) << 23);
  const float s2 = bits_float(static_cast<uint32_t>(n2 + 127) << 23);
  return p * s1 * s2;
}

// exp(x) for x <= 0 (what softmax feeds it after subtracting the row max):
// x < -87.3 gives 0, NaN stays NaN.
inline float exp_nonpositive(float x) {
  const float xc = x < -87.3f ? -87.3f : x;  // keeps the reduction in range; NaN passes
  const uint32_t keep = x < -87.3f ? 0u : ~0u;
  return bits_float(float_bits(exp_reduced(xc)) & keep);
}

// exp(x) for every float: 0 below -87.3, +inf above 88.72, NaN stays NaN.
inline float exp_f32(float x) {
  const float kMax = 88.7228391f;  // log(FLT_MAX)
  const float xc = x < -87.3f ? -87.3f : (x > kMax ? kMax : x);  // NaN passes
  const float e = exp_reduced(xc);
  const float r = x > kMax ? __builtin_inff() : e;
  return x < -87.3f ? 0.0f : r;
}

// 1 / (1 + e^-x) from e = exp(-|x|), which never overflows.
inline float sigmoid_f32(float x) {
  const float ax = x < 0 ? -x : x;
  const float e = exp_f32(-ax);
  const float s = 1.0f / (1.0f + e);
  const float es = e * s;
  return x >= 0 ? s : (x < 0 ? es : x);  // the last case is NaN
}

// x P(x^2) / Q(x^2) on [-7.99, 7.99]; +-1 outside.
inline float tanh_f32(float x) {
  const float kLimit = 7.99881172180175781f;
  const float c = x < -kLimit ? -kLimit : (x > kLimit ? kLimit : x);
  const float x2 = c * c;
  float p = -2.76076847742355e-16f;
  p = p * x2 + 2.00018790482477e-13f;
  p = p * x2 + -8.60467152213735e-11f;
  p = p * x2 + 5.12229709037114e-08f;
  p = p * x2 + 1.48572235717979e-05f;
  p = p * x2 + 6.37261928875436e-04f;
  p = p * x2 + 4.89352455891786e-03f;
  float q = 1.19825839466702e-06f;
  q = q * x2 + 1.18534705686654e-04f;
  q = q * x2 + 2.26843463243900e-03f;
  q = q * x2 + 4.89352518554385e-03f;
  const float r = c * p / q;
  // At and beyond the limit tanh rounds to +-1 in float32; the rational
  // function is a few ulp short of it there.
  return x >= kLimit ? 1.0f : (x <= -kLimit ? -1.0f : r);
}

// x P(x^2) / Q(x^2) on [-4, 4]; +-1 outside.
inline float erf_f32(float x) {
  const float c = x < -4.0f ? -4.0f : (x > 4.0f ? 4.0f : x);
  const float x2 = c * c;
  float p = -2.72614225801306e-10f;
  p = p * x2 + 2.77068142495902e-08f;
  p = p * x2 + -2.10102402082508e-06f;
  p = p * x2 + -5.69250639462346e-05f;
  p = p * x2 + -7.34990630326855e-04f;
  p = p * x2 + -2.95459980854025e-03f;
  p = p * x2 + -1.60960333262415e-02f;
  float q = -1.45660718464996e-05f;
  q = q * x2 + -2.13374055278905e-04f;
  q = q * x2 + -1.68282697438203e-03f;
  q = q * x2 + -7.37332916720468e-03f;
  q = q * x2 + -1.42647390514189e-02f;
  const float r = c * p / q;
  return x >= 4.0f ? 1.0f : (x <= -4.0f ? -1.0f : r);  // erf rounds to +-1 there
}

// 0.5 x (1 + erf(x / sqrt 2))
inline float gelu_erf_f32(float x) { return 0.5f * x * (1.0f + erf_f32(x * 0.70710678118654752440f)); }

// 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))
inline float gelu_tanh_f32(float x) {
  const float k = 0.79788456080286535588f;
  return 0.5f * x * (1.0f + tanh_f32(k * (x + 0.044715f * x * x * x)));
}

// The Math policy of tensor/elementwise_formulas.h on the CPU: float32's exp,
// tanh and erf through the vectorisable functions above (so sigmoid and the
// GELUs, written with them there, vectorise too), the rest and float64
// through the C library (float64 serves gradient checks, not speed).
struct VecMath : LibMath {
  static float exp(float v) { return exp_f32(v); }
  static double exp(double v) { return std::exp(v); }
  static float tanh(float v) { return tanh_f32(v); }
  static double tanh(double v) { return std::tanh(v); }
  static float erf(float v) { return erf_f32(v); }
  static double erf(double v) { return std::erf(v); }
};

}  // namespace heed::cpu
