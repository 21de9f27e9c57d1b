#pragma once
// The per-element arithmetic of the CUDA adam_step (cuda/optim.cu) and random
// (cuda/random.cu) kernels, written once for both sides so that
// tests/cuda_index_math_test.cpp can run it on the CPU against the CPU kernels.
//
// Bit-identical to the CPU: the CPU backend is compiled for x86-64 without FMA,
// so every product and sum there is rounded on its own. nvcc instead contracts
// a * b + c into one fused multiply-add by default, which rounds once and
// changes the last bits. The _rn intrinsics below are never contracted, so on
// the device each operation rounds exactly as on the CPU (division and square
// root are correctly rounded on both sides).
#include <cstdint>
#include <math.h>

#include "cuda/hd.h"
#include "cuda/rounded_math.h"
#include "tensor/bfloat16.h"
#include "tensor/philox.h"

namespace heed::cuda {

HEED_HD inline float log_of(float a) { return ::logf(a); }
HEED_HD inline double log_of(double a) { return ::log(a); }
HEED_HD inline float cos_of(float a) { return ::cosf(a); }
HEED_HD inline double cos_of(double a) { return ::cos(a); }

// ---- adam_step ----------------------------------------------------------------

// The rule's scalars rounded to the parameter's dtype, as tensor/cpu/cpu_optim.cpp rounds them.
template <class T>
struct AdamScalars {
  T decay;  // 1 - lr * decoupled weight decay
  T weight_decay;
  T beta1, one_minus_beta1, beta2, one_minus_beta2;
  T bias_correction2_sqrt, eps;
  T step;  // -lr / bias_correction1
  T sign;  // -1 when maximizing
  bool decoupled, l2;
};

template <class T>
AdamScalars<T> make_adam_scalars(double lr, double beta1, double beta2, double eps, double weight_decay,
                                 double decoupled_weight_decay, double bias_correction1,
                                 double bias_correction2_sqrt, bool maximize) {
  AdamScalars<T> s;
  s.decay = static_cast<T>(1.0 - lr * decoupled_weight_decay);
  s.weight_decay = static_cast<T>(weight_decay);
  s.beta1 = static_cast<T>(beta1);
  s.one_minus_beta1 = static_cast<T>(1.0 - beta1);
  s.beta2 = static_cast<T>(beta2);
  s.one_minus_beta2 = static_cast<T>(1.0 - beta2);
  s.bias_correction2_sqrt = static_cast<T>(bias_correction2_sqrt);
  s.eps = static_cast<T>(eps);
  s.step = static_cast<T>(-lr / bias_correction1);
  s.sign = maximize ? T(-1) : T(1);
  s.decoupled = decoupled_weight_decay != 0;
  s.l2 = weight_decay != 0;
  return s;
}

// Element i of param p, grad g, exp_avg m and exp_avg_sq v: the CPU's sequence
// of operations, each rounded to C = compute_t<T>. A bfloat16 parameter and
// its state are widened to float, updated in float32 arithmetic with float32
// scalars (AdamScalars<float>), and p, m and v are each rounded once on store.
template <class T, class C = compute_t<T>>
HEED_HD inline void adam_element(const AdamScalars<C>& s, T* p, const T* g, T* m, T* v, int64_t i) {
  C pi = static_cast<C>(p[i]);
  if (s.decoupled) pi = mul_rn(pi, s.decay);
  C gi = mul_rn(s.sign, static_cast<C>(g[i]));
  if (s.l2) gi = add_rn(gi, mul_rn(s.weight_decay, pi));
  const C mi = add_rn(mul_rn(static_cast<C>(m[i]), s.beta1), mul_rn(gi, s.one_minus_beta1));
  const C vi = add_rn(mul_rn(static_cast<C>(v[i]), s.beta2), mul_rn(mul_rn(gi, gi), s.one_minus_beta2));
  m[i] = static_cast<T>(mi);
  v[i] = static_cast<T>(vi);
  const C denom = add_rn(div_rn(sqrt_rn(vi), s.bias_correction2_sqrt), s.eps);
  p[i] = static_cast<T>(add_rn(pi, mul_rn(div_rn(mi, denom), s.step)));
}

// ---- random: the samples of tensor/philox.h's mapping --------------------------

// philox.h's uniform_from / normal_from with every operation rounded on its own
// (their plain expressions would be contracted to fma on the device).
template <class T>
struct UniformSampler {
  T a, b;
  HEED_HD T operator()(const uint32_t* v) const {
    T u;
    if constexpr (sizeof(T) == 4) {
      u = uint_to_unit_float(v[0]);
    } else {
      u = uint_to_unit_double(v[0], v[1]);
    }
    const T x = add_rn(a, mul_rn(sub_rn(b, a), u));
    return x < b ? x : a;
  }
};

template <class T>
struct NormalSampler {
  T mean, std;
  HEED_HD T operator()(const uint32_t* v) const {
    T u1, u2;
    if constexpr (sizeof(T) == 4) {
      u1 = sub_rn(1.0f, uint_to_unit_float(v[0]));  // (0, 1]: log never sees 0
      u2 = uint_to_unit_float(v[1]);
    } else {
      u1 = sub_rn(1.0, uint_to_unit_double(v[0], v[1]));
      u2 = uint_to_unit_double(v[2], v[3]);
    }
    const T two_pi = sizeof(T) == 4 ? T(6.28318530717958647692f) : T(6.28318530717958647692);
    const T z = mul_rn(sqrt_rn(mul_rn(T(-2), log_of(u1))), cos_of(mul_rn(two_pi, u2)));
    return add_rn(mean, mul_rn(std, z));
  }
};

template <class T>
struct BernoulliSampler {
  double p;
  HEED_HD T operator()(const uint32_t* v) const { return bernoulli_from(v, p) ? T(1) : T(0); }
};

// The samples of Philox block offset + b: out[b * per + s] for s < per = 4 / words
// (those below n), sample s reading words s * words ... of the block. A
// bfloat16 out takes the float32 sampler's value, rounded (so uniform's b,
// excluded in float32, can be reached by rounding up: [a, b] for bfloat16).
template <class T, class Sampler>
HEED_HD inline void random_block(T* out, int64_t n, uint64_t seed, uint64_t offset, int words, int64_t b,
                                 const Sampler& sample) {
  const Philox4x32 r = philox_block(seed, offset + static_cast<uint64_t>(b));
  const int per = 4 / words;
  for (int s = 0; s < per; ++s) {
    const int64_t i = b * per + s;
    if (i < n) out[i] = static_cast<T>(sample(r.w + s * words));
  }
}

// Philox blocks a draw of n samples of `words` words each takes.
HEED_HD inline int64_t random_blocks(int64_t n, int words) { return (n * words + 3) / 4; }

}  // namespace heed::cuda
