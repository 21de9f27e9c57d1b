// The fused Adam / AdamW step: one thread per element (grid-stride), each
// element updated by cuda/optim_math.h's adam_element, the CPU's arithmetic
// rounded operation by operation, so the result matches the CPU bit for bit
// (bfloat16 state is updated in float and rounded on store: optim_math.h).
// lerp the same way, by tensor/lerp_rule.h's lerp_element.
#include <algorithm>
#include <cstdint>

#include "cuda/check.h"
#include "cuda/grid.h"
#include "cuda/kernels.h"
#include "cuda/optim_math.h"
#include "tensor/lerp_rule.h"

namespace heed::cuda {

namespace {

template <class T>
__global__ void adam_kernel(AdamScalars<compute_t<T>> s, T* p, const T* g, T* m, T* v, int64_t n) {  // all [n]
  const int64_t stride = static_cast<int64_t>(blockDim.x) * gridDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride)
    adam_element(s, p, g, m, v, i);
}

template <class T>
__global__ void lerp_kernel(const T* start, const T* end, compute_t<T> weight, T* out, int64_t n) {  // all [n]
  const int64_t stride = static_cast<int64_t>(blockDim.x) * gridDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride)
    lerp_element(start, end, weight, out, i);
}

}  // namespace

template <class T>
void launch_lerp(const T* start, const T* end, compute_t<T> weight, T* out, int64_t n) {
  if (n <= 0) return;
  lerp_kernel<T><<<grid_stride_blocks(n), kGridStrideThreads>>>(start, end, weight, out, n);
  HEED_CUDA_CHECK(cudaGetLastError());
}

template void launch_lerp<float>(const float*, const float*, float, float*, int64_t);
template void launch_lerp<double>(const double*, const double*, double, double*, int64_t);
template void launch_lerp<bfloat16>(const bfloat16*, const bfloat16*, float, bfloat16*, int64_t);

template <class T>
void launch_adam_step(const AdamScalars<compute_t<T>>& s, T* param, const T* grad, T* exp_avg, T* exp_avg_sq,
                      int64_t n) {
  if (n <= 0) return;
  adam_kernel<T><<<grid_stride_blocks(n), kGridStrideThreads>>>(s, param, grad, exp_avg, exp_avg_sq, n);
  HEED_CUDA_CHECK(cudaGetLastError());
}

template void launch_adam_step<float>(const AdamScalars<float>&, float*, const float*, float*, float*, int64_t);
template void launch_adam_step<double>(const AdamScalars<double>&, double*, const double*, double*, double*,
                                       int64_t);
template void launch_adam_step<bfloat16>(const AdamScalars<float>&, bfloat16*, const bfloat16*, bfloat16*, bfloat16*,
                                         int64_t);

}  // namespace heed::cuda
