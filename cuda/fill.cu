// Fill: the first kernel of the CUDA backend.
#include <algorithm>
#include <cstdint>

#include "cuda/check.h"
#include "cuda/grid.h"
#include "cuda/kernels.h"

namespace heed::cuda {

namespace {

template <class T>
__global__ void fill_kernel(T* out, int64_t n, T value) {  // out: [n]
  const int64_t stride = static_cast<int64_t>(blockDim.x) * gridDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride) out[i] = value;
}

}  // namespace

template <class T>
void launch_fill(T* out, int64_t n, T value) {
  if (n <= 0) return;
  fill_kernel<T><<<grid_stride_blocks(n), kGridStrideThreads>>>(out, n, value);
  HEED_CUDA_CHECK(cudaGetLastError());
}

template void launch_fill<float>(float*, int64_t, float);
template void launch_fill<double>(double*, int64_t, double);
template void launch_fill<int64_t>(int64_t*, int64_t, int64_t);
template void launch_fill<uint8_t>(uint8_t*, int64_t, uint8_t);
template void launch_fill<bool>(bool*, int64_t, bool);
template void launch_fill<bfloat16>(bfloat16*, int64_t, bfloat16);

}  // namespace heed::cuda
