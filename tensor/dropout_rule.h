#pragma once
// The per-element arithmetic of the fused dropout op (tensor/dropout.cpp),
// written once for the CPU and CUDA kernels. It gives exactly the bits of the
// composed dropout, residual + x * (bernoulli(1 - p) * (1 / (1 - p))): the
// keep test is tensor/philox.h's Bernoulli sample, the multiplier is rounded
// to T as the composed mask * scale was, and the product and the sum are
// each rounded to T on their own (in float for bfloat16; the _rn helpers keep
// nvcc from contracting them into one fused multiply-add).
#include <math.h>
#include <stdint.h>

#include "tensor/bfloat16.h"
#include "tensor/philox.h"
#include "tensor/rounded_math.h"

namespace heed {

// The multiplier of a kept element: 1 / (1 - p), rounded to T, in T's compute type.
template <class T>
HEED_HD inline compute_t<T> dropout_scale(double p) {
  using C = compute_t<T>;
  return static_cast<C>(static_cast<T>(static_cast<C>(1.0 / (1.0 - p))));
}

// Sample i of a draw reads word i of the Philox stream (one word a sample, as
// Bernoulli does) and is kept when bernoulli_from(word, 1 - p) is true:
// (word >> 8) * 2^-24 < 1 - p, i.e. (word >> 8) < (1 - p) * 2^24 (exact in
// double), i.e. (word >> 8) < ceil((1 - p) * 2^24) for the integer on the
// left: one integer compare per element instead of a conversion to double.
HEED_HD inline uint32_t dropout_threshold(double p) {
  return static_cast<uint32_t>(::ceil((1.0 - p) * 16777216.0));
}
HEED_HD inline bool dropout_keeps(uint32_t word, uint32_t threshold) { return (word >> 8) < threshold; }

// x * (keep ? scale : 0): a dropped NaN or infinity stays NaN, as x * 0 does.
template <class T>
HEED_HD inline T dropout_value(T x, bool keep, compute_t<T> scale) {
  using C = compute_t<T>;
  return static_cast<T>(mul_rn(static_cast<C>(x), keep ? scale : C(0)));
}

// residual + dropout_value(x, ...), the sum rounded on its own.
template <class T>
HEED_HD inline T dropout_add_value(T x, T residual, bool keep, compute_t<T> scale) {
  using C = compute_t<T>;
  return static_cast<T>(add_rn(static_cast<C>(residual), static_cast<C>(dropout_value(x, keep, scale))));
}

}  // namespace heed
