#pragma once
// The Adam / AdamW update of one element, written once for every kernel that
// applies it (tensor/cpu/cpu_optim.cpp, cuda/optim.cu) and stated in words in
// optim/optim.h. Every operation is rounded on its own (tensor/rounded_math.h),
// so the CPU and the GPU update a parameter to the same bits; float32 and
// float64 compute in their own type, a bfloat16 parameter and its state in
// float32, each rounded once on store.
//
// No heed headers but these dependency-free ones: nvcc compiles it on its own.
#include <cstdint>

#include "tensor/hd.h"
#include "tensor/bfloat16.h"
#include "tensor/rounded_math.h"

namespace heed {

// One Adam / AdamW update of a parameter (optim/optim.h gives the rule).
struct AdamStepArgs {
  double lr;
  double beta1, beta2, eps;
  double weight_decay;            // L2, added to the gradient (Adam)
  double decoupled_weight_decay;  // p *= 1 - lr * this first (AdamW)
  double bias_correction1;        // 1 - beta1^t
  double bias_correction2_sqrt;   // sqrt(1 - beta2^t)
  bool maximize;
};

// The rule's scalars rounded to the type the update computes in.
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
AdamScalars<T> make_adam_scalars(const AdamStepArgs& a) {
  AdamScalars<T> s;
  s.decay = static_cast<T>(1.0 - a.lr * a.decoupled_weight_decay);
  s.weight_decay = static_cast<T>(a.weight_decay);
  s.beta1 = static_cast<T>(a.beta1);
  s.one_minus_beta1 = static_cast<T>(1.0 - a.beta1);
  s.beta2 = static_cast<T>(a.beta2);
  s.one_minus_beta2 = static_cast<T>(1.0 - a.beta2);
  s.bias_correction2_sqrt = static_cast<T>(a.bias_correction2_sqrt);
  s.eps = static_cast<T>(a.eps);
  s.step = static_cast<T>(-a.lr / a.bias_correction1);
  s.sign = a.maximize ? T(-1) : T(1);
  s.decoupled = a.decoupled_weight_decay != 0;
  s.l2 = a.weight_decay != 0;
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

}  // namespace heed
