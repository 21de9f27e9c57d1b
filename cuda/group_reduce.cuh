#pragma once
// Device helpers shared by the reduction, softmax and layer-norm kernels
// (nvcc only): warp shuffles for every accumulator type, and the fold of one
// value per thread over a group of threads that works on one row.
//
// A block is laid out as (group threads along x, groups along y). A group is
// a whole number of warps (32 to 1024 threads), so a warp never spans two
// groups. group_reduce folds in a fixed tree (lanes by shfl_down, then the
// warps' results in warp order), so the result depends only on the values and
// the group size, and it hands the result to every thread of the group: lane 0
// of each warp holds the warp's fold, which is broadcast, and the warps'
// folds meet in shared memory, read by every thread in the same order.
#include <cstdint>

#include <cuda/std/limits>

#include "cuda/check.h"
#include "cuda/reduce_plan.h"
#include "tensor/rounded_math.h"  // mul_rn: products nvcc may not fuse into an FMA

namespace heed::cuda {

constexpr unsigned kFullMask = 0xffffffffu;

__device__ inline float shfl_down(float v, int d) { return __shfl_down_sync(kFullMask, v, d); }
__device__ inline double shfl_down(double v, int d) { return __shfl_down_sync(kFullMask, v, d); }
__device__ inline int64_t shfl_down(int64_t v, int d) {
  return static_cast<int64_t>(__shfl_down_sync(kFullMask, static_cast<long long>(v), d));
}
__device__ inline uint64_t shfl_down(uint64_t v, int d) {
  return static_cast<uint64_t>(__shfl_down_sync(kFullMask, static_cast<unsigned long long>(v), d));
}
__device__ inline uint8_t shfl_down(uint8_t v, int d) {
  return static_cast<uint8_t>(__shfl_down_sync(kFullMask, static_cast<int>(v), d));
}
__device__ inline bool shfl_down(bool v, int d) { return __shfl_down_sync(kFullMask, static_cast<int>(v), d) != 0; }
template <class T>
__device__ inline ArgCandidate<T> shfl_down(ArgCandidate<T> v, int d) {
  return {shfl_down(v.value, d), shfl_down(v.index, d)};
}

__device__ inline float shfl_lane0(float v) { return __shfl_sync(kFullMask, v, 0); }
__device__ inline double shfl_lane0(double v) { return __shfl_sync(kFullMask, v, 0); }
__device__ inline int64_t shfl_lane0(int64_t v) {
  return static_cast<int64_t>(__shfl_sync(kFullMask, static_cast<long long>(v), 0));
}
__device__ inline uint64_t shfl_lane0(uint64_t v) {
  return static_cast<uint64_t>(__shfl_sync(kFullMask, static_cast<unsigned long long>(v), 0));
}
__device__ inline uint8_t shfl_lane0(uint8_t v) {
  return static_cast<uint8_t>(__shfl_sync(kFullMask, static_cast<int>(v), 0));
}
__device__ inline bool shfl_lane0(bool v) { return __shfl_sync(kFullMask, static_cast<int>(v), 0) != 0; }
template <class T>
__device__ inline ArgCandidate<T> shfl_lane0(ArgCandidate<T> v) {
  return {shfl_lane0(v.value), shfl_lane0(v.index)};
}

// Folds v over the group of blockDim.x threads (a multiple of 32) that this
// thread belongs to (threadIdx.y) with merge(a, b); every thread of the group
// gets the result. `shared` holds blockDim.x / 32 * blockDim.y accumulators
// (32 are always enough: a block has at most 1024 threads). Every thread of
// the block must call it (it synchronises the block when a group has more
// than one warp).
template <class Acc, class Merge>
__device__ Acc group_reduce(Acc v, Merge merge, Acc* shared) {
  for (int d = 16; d > 0; d >>= 1) v = merge(v, shfl_down(v, d));  // lane 0 holds the warp's fold
  v = shfl_lane0(v);
  const int warps = blockDim.x / 32;
  if (warps == 1) return v;
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  Acc* mine = shared + threadIdx.y * warps;
  if (lane == 0) mine[warp] = v;
  __syncthreads();
  Acc total = mine[0];
  for (int w = 1; w < warps; ++w) total = merge(total, mine[w]);
  __syncthreads();  // `shared` may be reused by the next call
  return total;
}

struct AddMerge {
  template <class Acc>
  __device__ Acc operator()(Acc a, Acc b) const {
    return a + b;
  }
};

// The CPU's row max: b > a ? b : a never takes a NaN (the row kernels'
// max before exp: softmax, cross_entropy).
struct MaxSkippingNaN {
  template <class T>
  __device__ T operator()(T a, T b) const {
    return b > a ? b : a;
  }
};

// The max of row xr [n] over the group, NaN skipped (MaxSkippingNaN), in C;
// an inactive thread (a row past the end) contributes -inf. Every thread of
// the block must call it (group_reduce).
template <class C, class T>
__device__ C group_row_max(const T* xr, int64_t n, bool active, C* shared) {
  C m = -::cuda::std::numeric_limits<C>::infinity();
  if (active)
    for (int64_t j = threadIdx.x; j < n; j += blockDim.x) {
      const C v = static_cast<C>(xr[j]);
      m = v > m ? v : m;
    }
  return group_reduce(m, MaxSkippingNaN(), shared);
}

// Launches a row kernel (block: group threads x rows per block) over `rows`
// rows of n elements as plan_rows lays them out, and checks the launch.
template <class... Params, class... Args>
void launch_rows(void (*kernel)(Params...), int64_t rows, int64_t n, Args... args) {
  const RowLaunch l = plan_rows(rows, n);
  const dim3 block(static_cast<unsigned>(l.threads), static_cast<unsigned>(l.rows_per_block));
  kernel<<<static_cast<unsigned>(l.blocks), block>>>(args...);
  HEED_CUDA_CHECK(cudaGetLastError());
}

// exp by type: CUDA's expf for float, exp for double.
__device__ inline float exp_of(float v) { return expf(v); }
__device__ inline double exp_of(double v) { return exp(v); }

}  // namespace heed::cuda
