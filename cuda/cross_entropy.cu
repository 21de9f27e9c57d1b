// Fused cross-entropy with label smoothing over the rows of logits x [N, C]
// on the GPU, the CPU's rule (tensor/cpu/cpu_cross_entropy.cpp,
// tensor/backend.h): one group of threads per row (cuda/reduce_plan.h's
// plan_rows), which reads the row for its max, then for the double sums of
// exp(x - max) and (with smoothing) of x, and writes the row's loss and
// log-sum-exp; the backward reads x once more and writes
// grad[n] * (exp(x - lse) - (1 - e) [c == t] - e / C). The groups fold in a
// fixed tree and nothing is atomic, so the bits are the same every run.
// bfloat16 logits are widened to float (C = compute_t<T>), lse is float.
#include <cuda/std/limits>

#include "cuda/check.h"
#include "cuda/group_reduce.cuh"
#include "cuda/kernels.h"
#include "cuda/reduce_plan.h"

namespace heed::cuda {

namespace {

// Block (group threads, rows per block), grid (blocks); x [rows, n], target, loss, lse [rows].
template <class T>
__global__ void __launch_bounds__(kMaxGroupThreads)
    cross_entropy_kernel(const T* x, const int64_t* target, int64_t ignore, double e, T* loss,
                         compute_t<T>* lse, int64_t rows, int64_t n) {
  using C = compute_t<T>;
  __shared__ C shared_max[32];
  __shared__ double shared_sum[32];
  __shared__ double shared_xsum[32];
  constexpr C kInf = ::cuda::std::numeric_limits<C>::infinity();
  const int64_t per_grid = static_cast<int64_t>(gridDim.x) * blockDim.y;
  for (int64_t base = static_cast<int64_t>(blockIdx.x) * blockDim.y; base < rows; base += per_grid) {
    const int64_t row = base + threadIdx.y;
    const bool active = row < rows;
    const T* xr = x + (active ? row : 0) * n;
    const C m = group_row_max<C>(xr, n, active, shared_max);
    double sum = 0, xsum = 0;
    if (active)
      for (int64_t j = threadIdx.x; j < n; j += blockDim.x) {
        const C v = static_cast<C>(xr[j]);
        if (m != -kInf) sum += static_cast<double>(exp_of(v - m));
        if (e > 0) xsum += static_cast<double>(v);
      }
    sum = group_reduce(sum, AddMerge(), shared_sum);
    xsum = group_reduce(xsum, AddMerge(), shared_xsum);
    if (!active || threadIdx.x != 0) continue;
    const double l = m == -kInf ? -static_cast<double>(kInf) : static_cast<double>(m) + ::log(sum);
    lse[row] = static_cast<C>(l);
    const int64_t t = target[row];
    if (t == ignore) {
      loss[row] = static_cast<T>(C(0));
    } else if (m == -kInf) {
      loss[row] = static_cast<T>(kInf);
    } else {
      double value = l - static_cast<double>(static_cast<C>(xr[t]));
      // The CPU's (1 - e) * value + e * (l - xsum / n), each product and the sum rounded on its own (no FMA).
      if (e > 0) value = add_rn(mul_rn(1 - e, value), mul_rn(e, l - xsum / static_cast<double>(n)));
      loss[row] = static_cast<T>(static_cast<C>(value));
    }
  }
}

template <class T>
__global__ void __launch_bounds__(kMaxGroupThreads)
    cross_entropy_backward_kernel(const T* grad, const T* x, const int64_t* target, const compute_t<T>* lse,
                                  int64_t ignore, double e, T* gx, int64_t rows, int64_t n) {
  using C = compute_t<T>;
  constexpr C kInf = ::cuda::std::numeric_limits<C>::infinity();
  const C keep = static_cast<C>(1 - e), spread = static_cast<C>(e / static_cast<double>(n));
  const int64_t per_grid = static_cast<int64_t>(gridDim.x) * blockDim.y;
  for (int64_t row = static_cast<int64_t>(blockIdx.x) * blockDim.y + threadIdx.y; row < rows; row += per_grid) {
    T* out = gx + row * n;
    const int64_t t = target[row];
    if (t == ignore) {
      for (int64_t j = threadIdx.x; j < n; j += blockDim.x) out[j] = static_cast<T>(C(0));
      continue;
    }
    const T* xr = x + row * n;
    const C g = static_cast<C>(grad[row]), l = lse[row];
    for (int64_t j = threadIdx.x; j < n; j += blockDim.x) {
      const C p = l == -kInf ? C(0) : exp_of(static_cast<C>(xr[j]) - l);
      const C picked = j == t ? keep : C(0);
      out[j] = static_cast<T>(mul_rn(g, p - spread - picked));
    }
  }
}

}  // namespace

template <class T>
void launch_cross_entropy(const T* x, const int64_t* target, int64_t ignore_index, double smoothing, T* loss,
                          compute_t<T>* lse, int64_t rows, int64_t n) {
  if (rows <= 0 || n <= 0) return;
  launch_rows(cross_entropy_kernel<T>, rows, n, x, target, ignore_index, smoothing, loss, lse, rows, n);
}

template <class T>
void launch_cross_entropy_backward(const T* grad, const T* x, const int64_t* target, const compute_t<T>* lse,
                                   int64_t ignore_index, double smoothing, T* grad_x, int64_t rows, int64_t n) {
  if (rows <= 0 || n <= 0) return;
  launch_rows(cross_entropy_backward_kernel<T>, rows, n, grad, x, target, lse, ignore_index, smoothing, grad_x, rows,
              n);
}

#define HEED_INSTANTIATE(T)                                                                                   \
  template void launch_cross_entropy<T>(const T*, const int64_t*, int64_t, double, T*, compute_t<T>*, int64_t, \
                                        int64_t);                                                             \
  template void launch_cross_entropy_backward<T>(const T*, const T*, const int64_t*, const compute_t<T>*, int64_t, \
                                                 double, T*, int64_t, int64_t);
HEED_INSTANTIATE(float)
HEED_INSTANTIATE(double)
HEED_INSTANTIATE(bfloat16)
#undef HEED_INSTANTIATE

}  // namespace heed::cuda
