#pragma once
// Linear interpolation of one element, written once for every kernel that
// applies it (tensor/cpu/cpu_optim.cpp, cuda/optim.cu): torch.lerp's formula,
//
//   start + weight * (end - start)          when weight < 0.5,
//   end - (end - start) * (1 - weight)      otherwise,
//
// which gives start at weight 0 and end at weight 1 exactly. Every operation
// is rounded on its own (tensor/rounded_math.h), so the CPU and the GPU give
// the same bits; float32 and float64 compute in their own type, bfloat16 in
// float32, rounded once on store. For weight < 0.5 the bits are those of the
// composed start + weight * (end - start) (sub, mul by the weight rounded to
// the type, add), which is what ExponentialMovingAverage computed before.
//
// No heed headers but these dependency-free ones: nvcc compiles it on its own.
#include <cstdint>

#include "tensor/bfloat16.h"
#include "tensor/hd.h"
#include "tensor/rounded_math.h"

namespace heed {

template <class C>
HEED_HD C lerp_value(C start, C end, C weight) {
  const C diff = sub_rn(end, start);
  return weight < C(0.5) ? add_rn(start, mul_rn(weight, diff)) : sub_rn(end, mul_rn(diff, sub_rn(C(1), weight)));
}

// out[i] = lerp(start[i], end[i], weight) for one element of T (float, double
// or bfloat16); out may be start or end itself.
template <class T>
HEED_HD void lerp_element(const T* start, const T* end, compute_t<T> weight, T* out, int64_t i) {
  using C = compute_t<T>;
  out[i] = static_cast<T>(lerp_value(static_cast<C>(start[i]), static_cast<C>(end[i]), weight));
}

}  // namespace heed
