// Random fills from Philox4x32-10 with tensor/philox.h's mapping: one thread
// per Philox block, writing the 4 / words samples that share it
// (cuda/optim_math.h's random_block). Uniform and Bernoulli are bit-identical
// to the CPU; Normal differs only where the device's logf/cosf (log/cos)
// round differently from the host's libm (an ulp or two, now and then).
// bfloat16 draws float32's samples (the same words) and rounds each on store.
#include <algorithm>
#include <cstdint>

#include "cuda/check.h"
#include "cuda/grid.h"
#include "cuda/kernels.h"
#include "cuda/optim_math.h"
#include "tensor/dropout_rule.h"

namespace heed::cuda {

namespace {

template <class T, class Sampler>
__global__ void random_kernel(T* out, int64_t n, uint64_t seed, uint64_t offset, int words, int64_t blocks,
                              Sampler sample) {  // out: [n]; blocks = Philox blocks of the draw
  const int64_t stride = static_cast<int64_t>(blockDim.x) * gridDim.x;
  for (int64_t b = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; b < blocks; b += stride)
    random_block(out, n, seed, offset, words, b, sample);
}

template <class T, class Sampler>
void launch(T* out, int64_t n, uint64_t seed, uint64_t offset, int words, const Sampler& sample) {
  if (n <= 0) return;
  const int64_t blocks = random_blocks(n, words);
  random_kernel<T, Sampler><<<grid_stride_blocks(blocks), kGridStrideThreads>>>(out, n, seed, offset, words, blocks,
                                                                               sample);
  HEED_CUDA_CHECK(cudaGetLastError());
}

// One thread per Philox block: its four words decide four elements.
template <class T>
__global__ void dropout_kernel(const T* x, const T* residual, T* out, int64_t n, uint64_t seed, uint64_t offset,
                               uint32_t threshold, compute_t<T> scale, int64_t blocks) {
  const int64_t stride = static_cast<int64_t>(blockDim.x) * gridDim.x;
  for (int64_t b = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; b < blocks; b += stride) {
    const Philox4x32 r = philox_block(seed, offset + static_cast<uint64_t>(b));
    for (int s = 0; s < 4; ++s) {
      const int64_t i = b * 4 + s;
      if (i >= n) break;
      const bool keep = dropout_keeps(r.w[s], threshold);
      out[i] = residual != nullptr ? dropout_add_value(x[i], residual[i], keep, scale) : dropout_value(x[i], keep, scale);
    }
  }
}

}  // namespace

template <class T>
void launch_dropout(const T* x, const T* residual, T* out, int64_t n, uint64_t seed, uint64_t offset, double p) {
  if (n <= 0) return;
  const int64_t blocks = random_blocks(n, 1);
  dropout_kernel<T><<<grid_stride_blocks(blocks), kGridStrideThreads>>>(x, residual, out, n, seed, offset,
                                                                dropout_threshold(p), dropout_scale<T>(p), blocks);
  HEED_CUDA_CHECK(cudaGetLastError());
}

template void launch_dropout<float>(const float*, const float*, float*, int64_t, uint64_t, uint64_t, double);
template void launch_dropout<double>(const double*, const double*, double*, int64_t, uint64_t, uint64_t, double);
template void launch_dropout<bfloat16>(const bfloat16*, const bfloat16*, bfloat16*, int64_t, uint64_t, uint64_t,
                                       double);

template <class T>
void launch_random_uniform(T* out, int64_t n, uint64_t seed, uint64_t offset, compute_t<T> a, compute_t<T> b) {
  using C = compute_t<T>;
  launch(out, n, seed, offset, philox_words(false, sizeof(C) == 8), UniformSampler<C>{a, b});
}

template <class T>
void launch_random_normal(T* out, int64_t n, uint64_t seed, uint64_t offset, compute_t<T> mean, compute_t<T> std) {
  using C = compute_t<T>;
  launch(out, n, seed, offset, philox_words(true, sizeof(C) == 8), NormalSampler<C>{mean, std});
}

template <class T>
void launch_random_bernoulli(T* out, int64_t n, uint64_t seed, uint64_t offset, double p) {
  launch(out, n, seed, offset, 1, BernoulliSampler<T>{p});
}

template void launch_random_uniform<float>(float*, int64_t, uint64_t, uint64_t, float, float);
template void launch_random_uniform<double>(double*, int64_t, uint64_t, uint64_t, double, double);
template void launch_random_normal<float>(float*, int64_t, uint64_t, uint64_t, float, float);
template void launch_random_normal<double>(double*, int64_t, uint64_t, uint64_t, double, double);
template void launch_random_uniform<bfloat16>(bfloat16*, int64_t, uint64_t, uint64_t, float, float);
template void launch_random_normal<bfloat16>(bfloat16*, int64_t, uint64_t, uint64_t, float, float);
template void launch_random_bernoulli<float>(float*, int64_t, uint64_t, uint64_t, double);
template void launch_random_bernoulli<double>(double*, int64_t, uint64_t, uint64_t, double);
template void launch_random_bernoulli<int64_t>(int64_t*, int64_t, uint64_t, uint64_t, double);
template void launch_random_bernoulli<bool>(bool*, int64_t, uint64_t, uint64_t, double);
template void launch_random_bernoulli<uint8_t>(uint8_t*, int64_t, uint64_t, uint64_t, double);
template void launch_random_bernoulli<bfloat16>(bfloat16*, int64_t, uint64_t, uint64_t, double);

}  // namespace heed::cuda
