// Softmax and log-softmax over the last dim of a contiguous x [R, D] (R = all
// leading dims flattened), one row per task. Each row takes four passes that
// the compiler vectorises: max, exp(x - max) into out, sum, scale. Rows are
// independent, so the result never depends on the thread count.
//
// float32 uses exp_nonpositive (vec_math.h) rather than std::exp: std::exp(float) is a
// library call per element that blocks vectorisation, and softmax over a
// vocabulary or an attention matrix is dominated by it. It is within
// 2 ulp of exp over the range softmax feeds it (x - max <= 0); sums are in double.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

#include "tensor/cpu/cpu_backend.h"
#include "tensor/cpu/cpu_bfloat16.h"
#include "tensor/cpu/isa_clones.h"
#include "tensor/cpu/lane_max.h"
#include "tensor/cpu/lane_sum.h"
#include "tensor/cpu/strided_loop.h"
#include "tensor/cpu/vec_math.h"

namespace heed::cpu {
namespace {

constexpr int64_t kRowWork = 16384;  // elements per parallel chunk

inline float row_exp(float v) { return exp_nonpositive(v); }
inline double row_exp(double v) { return std::exp(v); }

template <class T>
void softmax_row(const T* x, T* out, int64_t n, bool log) {
  const T m = lane_max(x, n);
  if (m == -std::numeric_limits<T>::infinity()) {
    // Every entry is -inf: a uniform 0 probability (no NaN from -inf - -inf).
    const T fill = log ? -std::numeric_limits<T>::infinity() : T(0);
    std::fill(out, out + n, fill);
    return;
  }
  // A NaN anywhere is skipped by the max but reaches the sum, so the row is NaN.
  for (int64_t i = 0; i < n; ++i) out[i] = row_exp(x[i] - m);
  const double sum = lane_sum(n, [&](int64_t i) { return static_cast<double>(out[i]); });
  if (log) {
    const T log_sum = static_cast<T>(std::log(sum));
    for (int64_t i = 0; i < n; ++i) out[i] = (x[i] - m) - log_sum;
  } else {
    const T inv = static_cast<T>(1.0 / sum);
    for (int64_t i = 0; i < n; ++i) out[i] *= inv;
  }
}

// One row of the backward: softmax  gx = y * (g - sum(g * y)),
//                          log-softmax gx = g - exp(y) * sum(g).
template <class T>
void softmax_backward_row(const T* g, const T* y, T* gx, int64_t n, bool log) {
  const double s = log ? lane_sum(n, [&](int64_t i) { return static_cast<double>(g[i]); })
                       : lane_sum(n, [&](int64_t i) { return static_cast<double>(g[i] * y[i]); });
  const T sum = static_cast<T>(s);
  if (log) {
    // exp(-inf) = 0: a row of -inf (an all -inf input) passes g through, as the composed rule does.
    for (int64_t k = 0; k < n; ++k) gx[k] = g[k] - row_exp(y[k]) * sum;
  } else {
    for (int64_t k = 0; k < n; ++k) gx[k] = y[k] * (g[k] - sum);
  }
}

// The float32 rows at the CPU's full vector width: compiled for AVX-512, AVX2
// and baseline x86-64 (isa_clones.h; flatten inlines the row helpers into each
// clone, and this file is built with -ffp-contract=off, so every clone gives
// the baseline's bits).
HEED_ISA_CLONES __attribute__((flatten)) void softmax_row_wide(const float* x, float* out, int64_t n, bool log) {
  softmax_row(x, out, n, log);
}
HEED_ISA_CLONES __attribute__((flatten)) void softmax_backward_row_wide(const float* g, const float* y, float* gx,
                                                                        int64_t n, bool log) {
  softmax_backward_row(g, y, gx, n, log);
}
void softmax_row_wide(const double* x, double* out, int64_t n, bool log) { softmax_row(x, out, n, log); }
void softmax_backward_row_wide(const double* g, const double* y, double* gx, int64_t n, bool log) {
  softmax_backward_row(g, y, gx, n, log);
}

}  // namespace

void softmax_backward(const Tensor& grad, const Tensor& y, bool log, const Tensor& grad_x) {
  HEED_CHECK(grad.is_contiguous() && y.is_contiguous() && grad_x.is_contiguous(),
             "cpu softmax_backward: grad, y and grad_x must be contiguous");
  HEED_CHECK(grad.shape() == y.shape() && grad_x.shape() == y.shape() && grad.dtype() == y.dtype() &&
                 grad_x.dtype() == y.dtype(),
             "cpu softmax_backward: grad {} {}, y {} {} and grad_x {} {} must agree", shape_str(grad.shape()),
             dtype_name(grad.dtype()), shape_str(y.shape()), dtype_name(y.dtype()), shape_str(grad_x.shape()),
             dtype_name(grad_x.dtype()));
  const int64_t n = y.dim() == 0 ? 1 : y.shape().back();
  if (y.numel() == 0 || n == 0) return;
  if (y.dtype() == DType::BFloat16) {
    Tensor gx32 = float32_like(grad_x);
    softmax_backward(widened(grad), widened(y), log, gx32);
    return store_rounded(gx32, grad_x);
  }
  const int64_t rows = y.numel() / n;
  dispatch_floating(y.dtype(), "cpu softmax_backward", [&](auto zero) {
    using T = decltype(zero);
    const T* pg = static_cast<const T*>(grad.raw_data());
    const T* py = static_cast<const T*>(y.raw_data());
    T* po = static_cast<T*>(grad_x.raw_data());
    parallel_for(0, rows, std::max<int64_t>(1, kRowWork / n), [&](int64_t rb, int64_t re) {
      for (int64_t r = rb; r < re; ++r) softmax_backward_row_wide(pg + r * n, py + r * n, po + r * n, n, log);
    });
  });
}

void softmax(const Tensor& x, bool log, const Tensor& out) {
  HEED_CHECK(x.is_contiguous() && out.is_contiguous(), "cpu softmax: x and out must be contiguous");
  HEED_CHECK(x.shape() == out.shape() && x.dtype() == out.dtype(), "cpu softmax: out {} {} does not match x {} {}",
             shape_str(out.shape()), dtype_name(out.dtype()), shape_str(x.shape()), dtype_name(x.dtype()));
  const int64_t n = x.dim() == 0 ? 1 : x.shape().back();
  if (x.numel() == 0 || n == 0) return;
  if (x.dtype() == DType::BFloat16) {
    Tensor out32 = float32_like(out);
    softmax(widened(x), log, out32);
    return store_rounded(out32, out);
  }
  const int64_t rows = x.numel() / n;
  dispatch_floating(x.dtype(), "cpu softmax", [&](auto zero) {
    using T = decltype(zero);
    const T* px = static_cast<const T*>(x.raw_data());
    T* po = static_cast<T*>(out.raw_data());
    parallel_for(0, rows, std::max<int64_t>(1, kRowWork / n), [&](int64_t rb, int64_t re) {
      for (int64_t r = rb; r < re; ++r) softmax_row_wide(px + r * n, po + r * n, n, log);
    });
  });
}

}  // namespace heed::cpu
