// The fused Adam / AdamW update: one pass over a parameter instead of the
// dozen tensor ops (each a full pass, most with a temporary and an in-place
// copy back) that the rule takes when composed. The arithmetic is the same
// sequence as the composed form in nn/optim.cpp, in the parameter's dtype
// with the scalars rounded to it first; every element is computed alone, so
// the result does not depend on the thread count.
#include <cmath>

#include "tensor/cpu/cpu_backend.h"
#include "tensor/cpu/cpu_bfloat16.h"
#include "tensor/cpu/parallel.h"
#include "tensor/cpu/strided_loop.h"

namespace heed::cpu {
namespace {

template <class T>
void adam_rows(const Tensor& param, const Tensor& grad, const Tensor& exp_avg, const Tensor& exp_avg_sq,
               const AdamStepArgs& a) {
  T* p = static_cast<T*>(param.raw_data());
  const T* g = static_cast<const T*>(grad.raw_data());
  T* m = static_cast<T*>(exp_avg.raw_data());
  T* v = static_cast<T*>(exp_avg_sq.raw_data());
  const T decay = static_cast<T>(1.0 - a.lr * a.decoupled_weight_decay);
  const T wd = static_cast<T>(a.weight_decay);
  const T beta1 = static_cast<T>(a.beta1), one_minus_beta1 = static_cast<T>(1.0 - a.beta1);
  const T beta2 = static_cast<T>(a.beta2), one_minus_beta2 = static_cast<T>(1.0 - a.beta2);
  const T bc2 = static_cast<T>(a.bias_correction2_sqrt), eps = static_cast<T>(a.eps);
  const T step = static_cast<T>(-a.lr / a.bias_correction1);
  const T sign = a.maximize ? T(-1) : T(1);
  const bool decoupled = a.decoupled_weight_decay != 0, l2 = a.weight_decay != 0;
  parallel_for(0, param.numel(), kGrainCheap, [&](int64_t lo, int64_t hi) {
    for (int64_t i = lo; i < hi; ++i) {
      T pi = p[i];
      if (decoupled) pi = pi * decay;
      T gi = sign * g[i];
      if (l2) gi = gi + wd * pi;
      const T mi = m[i] * beta1 + gi * one_minus_beta1;
      const T vi = v[i] * beta2 + (gi * gi) * one_minus_beta2;
      m[i] = mi;
      v[i] = vi;
      p[i] = pi + (mi / (std::sqrt(vi) / bc2 + eps)) * step;
    }
  });
}

}  // namespace

void adam_step(const Tensor& param, const Tensor& grad, const Tensor& exp_avg, const Tensor& exp_avg_sq,
               const AdamStepArgs& args) {
  if (param.dtype() == DType::BFloat16) {
    Tensor p = widened(param), m = widened(exp_avg), v = widened(exp_avg_sq);
    adam_step(p, widened(grad), m, v, args);
    store_rounded(p, param);
    store_rounded(m, exp_avg);
    return store_rounded(v, exp_avg_sq);
  }
  dispatch_floating(param.dtype(), "cpu adam_step",
                    [&](auto zero) { adam_rows<decltype(zero)>(param, grad, exp_avg, exp_avg_sq, args); });
}

}  // namespace heed::cpu
