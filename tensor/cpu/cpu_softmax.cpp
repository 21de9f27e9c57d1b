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
#include "tensor/cpu/strided_loop.h"
#include "tensor/cpu/vec_math.h"

namespace heed::cpu {
namespace {

constexpr int kLanes = 8;
constexpr int64_t kRowWork = 16384;  // elements per parallel chunk

inline float row_exp(float v) { return exp_nonpositive(v); }
inline double row_exp(double v) { return std::exp(v); }

template <class T>
T row_max(const T* x, int64_t n) {
  T lanes[kLanes];
  for (auto& l : lanes) l = -std::numeric_limits<T>::infinity();
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes) {
#pragma GCC unroll 1  // a loop, not unrolled code: only the loop vectoriser handles the select
    for (int j = 0; j < kLanes; ++j) lanes[j] = x[i + j] > lanes[j] ? x[i + j] : lanes[j];
  }
  for (int j = 0; i < n; ++i, ++j) lanes[j] = x[i] > lanes[j] ? x[i] : lanes[j];
  T m = lanes[0];
  for (int j = 1; j < kLanes; ++j) m = lanes[j] > m ? lanes[j] : m;
  return m;
}

template <class T>
double row_sum(const T* x, int64_t n) {
  double lanes[kLanes] = {};
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes)
    for (int j = 0; j < kLanes; ++j) lanes[j] += static_cast<double>(x[i + j]);
  for (int j = 0; i < n; ++i, ++j) lanes[j] += static_cast<double>(x[i]);
  double s = 0;
  for (int j = 0; j < kLanes; ++j) s += lanes[j];
  return s;
}

template <class T>
void softmax_row(const T* x, T* out, int64_t n, bool log) {
  const T m = row_max(x, n);
  if (m == -std::numeric_limits<T>::infinity()) {
    // Every entry is -inf: a uniform 0 probability (no NaN from -inf - -inf).
    const T fill = log ? -std::numeric_limits<T>::infinity() : T(0);
    std::fill(out, out + n, fill);
    return;
  }
  // A NaN anywhere is skipped by the max but reaches the sum, so the row is NaN.
  for (int64_t i = 0; i < n; ++i) out[i] = row_exp(x[i] - m);
  const double sum = row_sum(out, n);
  if (log) {
    const T log_sum = static_cast<T>(std::log(sum));
    for (int64_t i = 0; i < n; ++i) out[i] = (x[i] - m) - log_sum;
  } else {
    const T inv = static_cast<T>(1.0 / sum);
    for (int64_t i = 0; i < n; ++i) out[i] *= inv;
  }
}

}  // namespace

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
      for (int64_t r = rb; r < re; ++r) softmax_row(px + r * n, po + r * n, n, log);
    });
  });
}

}  // namespace heed::cpu
