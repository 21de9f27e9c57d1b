// Fused cross-entropy with label smoothing over the rows of logits [N, C]:
// one task per row computes the log-sum-exp, the picked logit and (with
// smoothing) the row mean in one read of the row, so neither the forward nor
// the backward makes an [N, C] temporary beyond the gradient itself
// (tensor/backend.h has the rule). Sums are in double; rows are independent,
// so results do not depend on the thread count.
#include <algorithm>
#include <cmath>
#include <limits>

#include "tensor/cpu/cpu_backend.h"
#include "tensor/cpu/cpu_bfloat16.h"
#include "tensor/cpu/isa_clones.h"
#include "tensor/cpu/lane_max.h"
#include "tensor/cpu/lane_sum.h"
#include "tensor/cpu/parallel.h"
#include "tensor/cpu/vec_math.h"

namespace heed::cpu {
namespace {

constexpr int64_t kRowWork = 16384;  // elements per parallel chunk

inline float exp_nonpos(float v) { return exp_nonpositive(v); }
inline double exp_nonpos(double v) { return std::exp(v); }

// ---- one row, at the CPU's full vector width ----------------------------------
// The row loops are written once (always_inline templates) and, for float32,
// compiled for AVX-512, AVX2 and baseline x86-64 (isa_clones.h; this file is
// built with -ffp-contract=off, so every clone gives the baseline's bits).

// The row's sum of exp(row - m) (when want_exp) and of the row (when want_sum).
template <class T>
__attribute__((always_inline)) inline void sums_of(const T* row, int64_t C, T m, bool want_exp, bool want_sum,
                                                   double* sum, double* xsum) {
  *sum = want_exp ? lane_sum(C, [&](int64_t c) { return static_cast<double>(exp_nonpos(row[c] - m)); }) : 0;
  *xsum = want_sum ? lane_sum(C, [&](int64_t c) { return static_cast<double>(row[c]); }) : 0;
}

// out = g * (exp(row - lse) - spread): the row's gradient before its target's -g * keep.
template <class T>
__attribute__((always_inline)) inline void grad_of(const T* row, int64_t C, T gn, T ln, T spread, T* out) {
  for (int64_t c = 0; c < C; ++c) out[c] = gn * (exp_nonpos(row[c] - ln) - spread);
}

HEED_ISA_CLONES __attribute__((flatten)) float row_max(const float* row, int64_t C) { return lane_max(row, C); }
HEED_ISA_CLONES __attribute__((flatten)) void row_sums(const float* row, int64_t C, float m, bool want_exp,
                                                       bool want_sum, double* sum, double* xsum) {
  sums_of(row, C, m, want_exp, want_sum, sum, xsum);
}
HEED_ISA_CLONES __attribute__((flatten)) void row_grad(const float* row, int64_t C, float gn, float ln, float spread,
                                                       float* out) {
  grad_of(row, C, gn, ln, spread, out);
}
double row_max(const double* row, int64_t C) { return lane_max(row, C); }
void row_sums(const double* row, int64_t C, double m, bool want_exp, bool want_sum, double* sum, double* xsum) {
  sums_of(row, C, m, want_exp, want_sum, sum, xsum);
}
void row_grad(const double* row, int64_t C, double gn, double ln, double spread, double* out) {
  grad_of(row, C, gn, ln, spread, out);
}

void check_args(const char* op, const Tensor& logits, const Tensor& target) {
  HEED_CHECK(logits.dim() == 2 && logits.is_contiguous(), "cpu {}: logits must be a contiguous [N, C], got {}", op,
             shape_str(logits.shape()));
  HEED_CHECK(target.dtype() == DType::Int64 && target.dim() == 1 && target.size(0) == logits.size(0) &&
                 target.is_contiguous(),
             "cpu {}: target must be a contiguous int64 [{}], got {} {}", op, logits.size(0),
             dtype_name(target.dtype()), shape_str(target.shape()));
}

template <class T>
void forward_rows(const Tensor& logits, const int64_t* target, int64_t ignore, double e, const Tensor& loss,
                  const Tensor& lse) {
  const int64_t N = logits.size(0), C = logits.size(1);
  const T* x = static_cast<const T*>(logits.raw_data());
  T* out = static_cast<T*>(loss.raw_data());
  T* lse_out = static_cast<T*>(lse.raw_data());
  constexpr T kInf = std::numeric_limits<T>::infinity();
  parallel_for(0, N, std::max<int64_t>(1, kRowWork / std::max<int64_t>(C, 1)), [&](int64_t rb, int64_t re) {
    for (int64_t n = rb; n < re; ++n) {
      const T* row = x + n * C;
      const T m = static_cast<T>(row_max(row, C));
      double sum, xsum;
      row_sums(row, C, m, m != -kInf, e > 0, &sum, &xsum);
      // An all -inf row has no probability mass: its lse is -inf (and its loss inf).
      const double l = m == -kInf ? -static_cast<double>(kInf) : static_cast<double>(m) + std::log(sum);
      lse_out[n] = static_cast<T>(l);
      const int64_t t = target[n];
      if (t == ignore) {
        out[n] = T(0);
      } else if (m == -kInf) {
        out[n] = kInf;  // no class has any probability: -log 0
      } else {
        double value = l - static_cast<double>(row[t]);
        if (e > 0) value = (1 - e) * value + e * (l - xsum / static_cast<double>(C));
        out[n] = static_cast<T>(value);
      }
    }
  });
}

template <class T>
void backward_rows(const Tensor& grad, const Tensor& logits, const int64_t* target, const Tensor& lse, int64_t ignore,
                   double e, const Tensor& grad_logits) {
  const int64_t N = logits.size(0), C = logits.size(1);
  const T* g = static_cast<const T*>(grad.raw_data());
  const T* x = static_cast<const T*>(logits.raw_data());
  const T* l = static_cast<const T*>(lse.raw_data());
  T* gx = static_cast<T*>(grad_logits.raw_data());
  const T keep = static_cast<T>(1 - e), spread = static_cast<T>(e / static_cast<double>(C));
  parallel_for(0, N, std::max<int64_t>(1, kRowWork / std::max<int64_t>(C, 1)), [&](int64_t rb, int64_t re) {
    for (int64_t n = rb; n < re; ++n) {
      T* out = gx + n * C;
      const int64_t t = target[n];
      if (t == ignore) {
        std::fill(out, out + C, T(0));
        continue;
      }
      const T* row = x + n * C;
      const T gn = g[n], ln = l[n];
      if (ln == -std::numeric_limits<T>::infinity()) {
        for (int64_t c = 0; c < C; ++c) out[c] = gn * (T(0) - spread);
      } else {
        row_grad(row, C, gn, ln, spread, out);
      }
      out[t] -= gn * keep;
    }
  });
}

}  // namespace

void cross_entropy(const Tensor& logits, const Tensor& target, int64_t ignore_index, double smoothing,
                   const Tensor& loss, const Tensor& lse) {
  check_args("cross_entropy", logits, target);
  if (logits.dtype() == DType::BFloat16) {  // lse is float32 already
    Tensor loss32 = float32_like(loss);
    cross_entropy(widened(logits), target, ignore_index, smoothing, loss32, lse);
    return store_rounded(loss32, loss);
  }
  if (logits.size(0) == 0) return;
  const int64_t* t = static_cast<const int64_t*>(target.raw_data());
  dispatch_floating(logits.dtype(), "cpu cross_entropy",
                    [&](auto zero) { forward_rows<decltype(zero)>(logits, t, ignore_index, smoothing, loss, lse); });
}

void cross_entropy_backward(const Tensor& grad, const Tensor& logits, const Tensor& target, const Tensor& lse,
                            int64_t ignore_index, double smoothing, const Tensor& grad_logits) {
  check_args("cross_entropy_backward", logits, target);
  if (logits.dtype() == DType::BFloat16) {
    Tensor gx32 = float32_like(grad_logits);
    cross_entropy_backward(widened(grad), widened(logits), target, lse, ignore_index, smoothing, gx32);
    return store_rounded(gx32, grad_logits);
  }
  if (logits.size(0) == 0) return;
  const int64_t* t = static_cast<const int64_t*>(target.raw_data());
  dispatch_floating(logits.dtype(), "cpu cross_entropy_backward", [&](auto zero) {
    backward_rows<decltype(zero)>(grad, logits, t, lse, ignore_index, smoothing, grad_logits);
  });
}

}  // namespace heed::cpu
