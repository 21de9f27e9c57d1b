// Softmax and log-softmax over the last dim of a contiguous x [R, n] on the
// GPU, the CPU's row rule (tensor/cpu/cpu_softmax.cpp) with one group of
// threads per row (cuda/reduce_plan.h's plan_rows: a warp for rows up to 128
// elements, up to 512 threads for long rows, several rows per block when the
// group is small):
//   m = max of the row, NaN skipped (a NaN still reaches the sum, so the row
//       becomes NaN, as on the CPU);
//   a row whose max is -inf (all -inf, or -inf and NaN) is written as zeros
//       (softmax) or -inf (log-softmax), never NaN;
//   sum = sum of exp(x - m) in double, each exp rounded to T first;
//   softmax: exp(x - m) * T(1 / sum); log-softmax: (x - m) - T(log(sum)).
// Three passes read the row (max, sum, write); each pass reads adjacent
// elements with adjacent threads, and the group folds in a fixed tree, so the
// bits are the same every run. Differences from the CPU: exp is CUDA's expf /
// exp (the CPU's float32 path uses its own vectorised exp, both within 2 ulp),
// and the double sum is added in another order.
//
// bfloat16 rows run the float32 rule in float (C = compute_t<T>): each element
// is widened on load, the max, exp and the final product are float, the sum
// double, and only the written value is rounded to bfloat16.
#include <cuda/std/limits>

#include "cuda/check.h"
#include "cuda/group_reduce.cuh"
#include "cuda/kernels.h"
#include "cuda/reduce_plan.h"

namespace heed::cuda {

namespace {

// Block (group threads, rows per block), grid (blocks); x, out: [rows, n].
template <class T>
__global__ void __launch_bounds__(kMaxGroupThreads)
    softmax_kernel(const T* x, T* out, int64_t rows, int64_t n, bool log_softmax) {
  using C = compute_t<T>;  // float for bfloat16
  __shared__ C shared_max[32];
  __shared__ double shared_sum[32];
  constexpr C kInf = ::cuda::std::numeric_limits<C>::infinity();
  const int64_t per_grid = static_cast<int64_t>(gridDim.x) * blockDim.y;
  // `base` is uniform over the block: every thread reaches the barriers.
  for (int64_t base = static_cast<int64_t>(blockIdx.x) * blockDim.y; base < rows; base += per_grid) {
    const int64_t row = base + threadIdx.y;
    const bool active = row < rows;
    const T* xr = x + (active ? row : 0) * n;

    const C m = group_row_max<C>(xr, n, active, shared_max);
    const bool all_neg_inf = m == -kInf;

    double sum = 0;
    if (active && !all_neg_inf)
      for (int64_t j = threadIdx.x; j < n; j += blockDim.x)
        sum += static_cast<double>(exp_of(static_cast<C>(xr[j]) - m));
    sum = group_reduce(sum, AddMerge(), shared_sum);
    if (!active) continue;

    T* yr = out + row * n;
    if (all_neg_inf) {
      const T fill = static_cast<T>(log_softmax ? -kInf : C(0));
      for (int64_t j = threadIdx.x; j < n; j += blockDim.x) yr[j] = fill;
    } else if (log_softmax) {
      const C log_sum = static_cast<C>(::log(sum));
      for (int64_t j = threadIdx.x; j < n; j += blockDim.x)
        yr[j] = static_cast<T>((static_cast<C>(xr[j]) - m) - log_sum);
    } else {
      const C inv = static_cast<C>(1.0 / sum);
      for (int64_t j = threadIdx.x; j < n; j += blockDim.x)
        yr[j] = static_cast<T>(exp_of(static_cast<C>(xr[j]) - m) * inv);
    }
  }
}

// The backward, one group per row like the forward: s = sum(g * y)
// (softmax) or sum(g) (log-softmax) in double, the CPU's products rounded to
// C first, then gx = y * (g - s) or g - exp(y) * s, computed in C.
template <class T>
__global__ void __launch_bounds__(kMaxGroupThreads)
    softmax_backward_kernel(const T* g, const T* y, T* gx, int64_t rows, int64_t n, bool log_softmax) {
  using C = compute_t<T>;
  __shared__ double shared_sum[32];
  const int64_t per_grid = static_cast<int64_t>(gridDim.x) * blockDim.y;
  for (int64_t base = static_cast<int64_t>(blockIdx.x) * blockDim.y; base < rows; base += per_grid) {
    const int64_t row = base + threadIdx.y;
    const bool active = row < rows;
    const T* gr = g + (active ? row : 0) * n;
    const T* yr = y + (active ? row : 0) * n;
    double sum = 0;
    if (active)
      for (int64_t j = threadIdx.x; j < n; j += blockDim.x) {
        const C gj = static_cast<C>(gr[j]);
        sum += static_cast<double>(log_softmax ? gj : mul_rn(gj, static_cast<C>(yr[j])));
      }
    sum = group_reduce(sum, AddMerge(), shared_sum);
    if (!active) continue;
    const C s = static_cast<C>(sum);
    T* out = gx + row * n;
    if (log_softmax) {
      for (int64_t j = threadIdx.x; j < n; j += blockDim.x)
        out[j] = static_cast<T>(static_cast<C>(gr[j]) - mul_rn(exp_of(static_cast<C>(yr[j])), s));
    } else {
      for (int64_t j = threadIdx.x; j < n; j += blockDim.x)
        out[j] = static_cast<T>(mul_rn(static_cast<C>(yr[j]), static_cast<C>(gr[j]) - s));
    }
  }
}

}  // namespace

template <class T>
void launch_softmax_backward(const T* grad, const T* y, T* grad_x, int64_t rows, int64_t n, bool log) {
  if (rows <= 0 || n <= 0) return;
  launch_rows(softmax_backward_kernel<T>, rows, n, grad, y, grad_x, rows, n, log);
}

template void launch_softmax_backward<float>(const float*, const float*, float*, int64_t, int64_t, bool);
template void launch_softmax_backward<double>(const double*, const double*, double*, int64_t, int64_t, bool);
template void launch_softmax_backward<bfloat16>(const bfloat16*, const bfloat16*, bfloat16*, int64_t, int64_t, bool);

template <class T>
void launch_softmax(const T* x, T* out, int64_t rows, int64_t n, bool log) {
  if (rows <= 0 || n <= 0) return;
  launch_rows(softmax_kernel<T>, rows, n, x, out, rows, n, log);
}

template void launch_softmax<float>(const float*, float*, int64_t, int64_t, bool);
template void launch_softmax<double>(const double*, double*, int64_t, int64_t, bool);
template void launch_softmax<bfloat16>(const bfloat16*, bfloat16*, int64_t, int64_t, bool);

}  // namespace heed::cuda
