// Reductions on the GPU: sum, prod, max, min over any set of dims of a
// strided x, argmax / argmin over one dim, for every dtype.
//
// cuda/reduce_plan.h turns x into [n_out, n_red] and picks the kernel:
//  - reduce_rows_kernel: a group of block_x threads (one warp or more) per
//    output; thread t folds r = t, t + block_x, ... (adjacent threads read
//    adjacent elements when the reduced dim is the dense one), then
//    group_reduce folds the group's values in a fixed tree;
//  - reduce_columns_kernel: thread (tx, ty) folds output base + tx over
//    r = ty, ty + block_y, ...; adjacent tx read adjacent memory when a kept
//    dim is the dense one (summing [R, D] over R). The block_y values of an
//    output meet in shared memory in a fixed tree.
// With splits > 1 both write one partial accumulator per (split, output) to
// the workspace, and reduce_finish_kernel folds each output's partials in
// split order. No atomics: the same input gives the same bits every run.
//
// The fold rules are the CPU's (tensor/cpu/cpu_reduce.cpp): floats sum and
// multiply in double, integers and bool in uint64 (wrapping like two's
// complement); max / min let NaN win; argmax / argmin give the first index of
// the extreme value, the first NaN beating everything (arg_merge, tested on
// the host). Sums and products of floats are added in another order than the
// CPU's (its eight interleaved lanes, ours per thread then a tree): both in
// double, so a float32 result almost always rounds to the same float; float64
// results may differ in the last bits. For integers, bool, max, min and the
// arg reductions the result is exactly the CPU's (but the sign of a zero max
// or min when both +0 and -0 occur).
//
// bfloat16 is reduced as float32 is: each element widened to float on load
// (compute_t), sums and products in double (the CPU's accumulator too), max,
// min and the arg candidates in float, and the result rounded to bfloat16
// once (a sum through float: double -> float -> bfloat16, as every double is
// stored into a bfloat16). A bfloat16 sum therefore equals the CPU's but for
// the rare double sum whose different order crosses a rounding boundary.
#include <cuda/std/limits>
#include <cuda/std/type_traits>

#include "cuda/check.h"
#include "cuda/group_reduce.cuh"
#include "cuda/kernels.h"
#include "cuda/reduce_plan.h"

namespace heed::cuda {

namespace {

// Floats (bfloat16 too) accumulate in double, integers (and bool) in uint64.
template <class T>
using Wide = ::cuda::std::conditional_t<::cuda::std::is_floating_point_v<compute_t<T>>, double, uint64_t>;

// Element v as the reductions compare it: bfloat16 widened (exactly) to float.
template <class T>
__device__ compute_t<T> load(T v) {
  return static_cast<compute_t<T>>(v);
}

// An accumulator as T, the way the CPU writes it: integers back through int64
// (so a wrapped sum is the two's complement result), bool as "not zero".
template <class T, class Acc>
__device__ T narrow(Acc a) {
  if constexpr (::cuda::std::is_same_v<T, bool>) {
    return a != Acc(0);
  } else if constexpr (::cuda::std::is_same_v<Acc, uint64_t>) {
    return static_cast<T>(static_cast<int64_t>(a));
  } else if constexpr (::cuda::std::is_same_v<T, bfloat16>) {
    return bfloat16(static_cast<float>(a));
  } else {
    return static_cast<T>(a);
  }
}

// Each op: Acc, init(), step(acc, value, r) for element r of the reduced
// range, merge(a, b) for two accumulators of disjoint ranges, and write(out,
// offset, acc) into out (T for the value reductions, int64 for arg).
template <class T>
struct SumOp {
  using Acc = Wide<T>;
  __device__ static Acc init() { return Acc(0); }
  __device__ static Acc step(Acc a, T v, int64_t) { return a + static_cast<Acc>(load(v)); }
  __device__ static Acc merge(Acc a, Acc b) { return a + b; }
  __device__ static void write(void* out, int64_t off, Acc a) { static_cast<T*>(out)[off] = narrow<T>(a); }
};

template <class T>
struct ProdOp {
  using Acc = Wide<T>;
  __device__ static Acc init() { return Acc(1); }
  __device__ static Acc step(Acc a, T v, int64_t) { return a * static_cast<Acc>(load(v)); }
  __device__ static Acc merge(Acc a, Acc b) { return a * b; }
  __device__ static void write(void* out, int64_t off, Acc a) { static_cast<T*>(out)[off] = narrow<T>(a); }
};

// The CPU's starting values: -inf / +inf where T has them, else the extremes.
template <class T>
__device__ T lowest_value() {
  using L = ::cuda::std::numeric_limits<T>;
  if constexpr (L::has_infinity) return -L::infinity();
  else return L::lowest();
}
template <class T>
__device__ T highest_value() {
  using L = ::cuda::std::numeric_limits<T>;
  if constexpr (L::has_infinity) return L::infinity();
  else return L::max();
}

// Max (kMax) and min keep a (widened) element, so writing it back is exact.
template <class T, bool kMax>
struct ExtremeOp {
  using Acc = compute_t<T>;
  __device__ static Acc init() {
    if constexpr (kMax) return lowest_value<Acc>();
    else return highest_value<Acc>();
  }
  __device__ static Acc step(Acc a, T v, int64_t) { return merge(a, load(v)); }
  __device__ static Acc merge(Acc a, Acc b) {
    if constexpr (kMax) return max_step(a, b);
    else return min_step(a, b);
  }
  __device__ static void write(void* out, int64_t off, Acc a) { static_cast<T*>(out)[off] = static_cast<T>(a); }
};

template <class T, bool kMax>
struct ArgOp {
  using Acc = ArgCandidate<compute_t<T>>;
  __device__ static Acc init() { return {compute_t<T>(), -1}; }
  __device__ static Acc step(Acc a, T v, int64_t r) { return arg_merge<kMax>(a, Acc{load(v), r}); }
  __device__ static Acc merge(Acc a, Acc b) { return arg_merge<kMax>(a, b); }
  // A one-element range gives index 0; an empty one never gets here (the op layer refuses it).
  __device__ static void write(void* out, int64_t off, Acc a) {
    static_cast<int64_t*>(out)[off] = a.index < 0 ? 0 : a.index;
  }
};

template <class Op>
struct MergeOf {
  template <class Acc>
  __device__ Acc operator()(Acc a, Acc b) const {
    return Op::merge(a, b);
  }
};

// Block (block_x = group, block_y groups), grid (grid_x, splits). A block has
// up to kMaxGroupThreads threads (a 512-thread group): the launch bound keeps
// the registers per thread low enough for that in every build (-G included).
// x: the strided input; out: [n_out] at kept_out_offset; partial: [splits, n_out] or null.
template <class T, class Op>
__global__ void __launch_bounds__(kMaxGroupThreads)
    reduce_rows_kernel(const T* x, void* out, ReducePlan p, typename Op::Acc* partial) {
  using Acc = typename Op::Acc;
  __shared__ Acc shared[32];
  const int64_t s = blockIdx.y;
  const int64_t rb = split_begin(p, s), re = split_end(p, s);
  const int64_t per_grid = static_cast<int64_t>(gridDim.x) * blockDim.y;
  // `base` is the same for the whole block, so every thread runs the same
  // number of iterations and reaches group_reduce's barriers.
  for (int64_t base = static_cast<int64_t>(blockIdx.x) * blockDim.y; base < p.n_out; base += per_grid) {
    const int64_t o = base + threadIdx.y;
    Acc acc = Op::init();
    if (o < p.n_out) {
      const T* xo = x + kept_x_offset(p, o);
      for (int64_t r = rb + threadIdx.x; r < re; r += blockDim.x) acc = Op::step(acc, xo[red_x_offset(p, r)], r);
    }
    acc = group_reduce(acc, MergeOf<Op>(), shared);
    if (o < p.n_out && threadIdx.x == 0) {
      if (partial) partial[s * p.n_out + o] = acc;
      else Op::write(out, kept_out_offset(p, o), acc);
    }
  }
}

// Block (block_x outputs, block_y slices; block_y a power of two), grid (grid_x, splits).
template <class T, class Op>
__global__ void reduce_columns_kernel(const T* x, void* out, ReducePlan p, typename Op::Acc* partial) {
  using Acc = typename Op::Acc;
  __shared__ Acc shared[kReduceBlockThreads];  // [block_y][block_x]
  const int64_t s = blockIdx.y;
  const int64_t rb = split_begin(p, s), re = split_end(p, s);
  const int tx = threadIdx.x, ty = threadIdx.y, bx = blockDim.x;
  const int64_t per_grid = static_cast<int64_t>(gridDim.x) * bx;
  for (int64_t base = static_cast<int64_t>(blockIdx.x) * bx; base < p.n_out; base += per_grid) {
    const int64_t o = base + tx;
    Acc acc = Op::init();
    if (o < p.n_out) {
      const T* xo = x + kept_x_offset(p, o);
      for (int64_t r = rb + ty; r < re; r += blockDim.y) acc = Op::step(acc, xo[red_x_offset(p, r)], r);
    }
    shared[ty * bx + tx] = acc;
    __syncthreads();
    for (int half = blockDim.y / 2; half > 0; half /= 2) {
      if (ty < half) shared[ty * bx + tx] = Op::merge(shared[ty * bx + tx], shared[(ty + half) * bx + tx]);
      __syncthreads();
    }
    if (ty == 0 && o < p.n_out) {
      if (partial) partial[s * p.n_out + o] = shared[tx];
      else Op::write(out, kept_out_offset(p, o), shared[tx]);
    }
    __syncthreads();  // shared is rewritten in the next iteration
  }
}

// Folds each output's partials [splits, n_out] in split order.
template <class T, class Op>
__global__ void reduce_finish_kernel(const typename Op::Acc* partial, void* out, ReducePlan p) {
  using Acc = typename Op::Acc;
  const int64_t stride = static_cast<int64_t>(blockDim.x) * gridDim.x;
  for (int64_t o = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; o < p.n_out; o += stride) {
    Acc acc = partial[o];
    for (int64_t s = 1; s < p.splits; ++s) acc = Op::merge(acc, partial[s * p.n_out + o]);
    Op::write(out, kept_out_offset(p, o), acc);
  }
}

template <class T, class Op>
void run(const T* x, void* out, const ReducePlan& p, void* workspace) {
  using Acc = typename Op::Acc;
  static_assert(sizeof(Acc) <= kReducePartialBytes, "the workspace holds kReducePartialBytes per partial");
  if (p.n_out == 0) return;
  Acc* partial = p.splits > 1 ? static_cast<Acc*>(workspace) : nullptr;
  const dim3 block(static_cast<unsigned>(p.block_x), static_cast<unsigned>(p.block_y));
  const dim3 grid(static_cast<unsigned>(p.grid_x), static_cast<unsigned>(p.splits));
  if (p.columns) reduce_columns_kernel<T, Op><<<grid, block>>>(x, out, p, partial);
  else reduce_rows_kernel<T, Op><<<grid, block>>>(x, out, p, partial);
  HEED_CUDA_CHECK(cudaGetLastError());
  if (partial) {
    constexpr int kThreads = 256;
    const int64_t blocks = std::clamp<int64_t>(ceil_div(p.n_out, kThreads), 1, kMaxGridX);
    reduce_finish_kernel<T, Op><<<static_cast<unsigned>(blocks), kThreads>>>(partial, out, p);
    HEED_CUDA_CHECK(cudaGetLastError());
  }
}

}  // namespace

template <class T>
void launch_reduce(ReduceKind kind, const T* x, void* out, const ReducePlan& plan, void* workspace) {
  switch (kind) {
    case ReduceKind::Sum: return run<T, SumOp<T>>(x, out, plan, workspace);
    case ReduceKind::Prod: return run<T, ProdOp<T>>(x, out, plan, workspace);
    case ReduceKind::Max: return run<T, ExtremeOp<T, true>>(x, out, plan, workspace);
    case ReduceKind::Min: return run<T, ExtremeOp<T, false>>(x, out, plan, workspace);
    case ReduceKind::ArgMax: return run<T, ArgOp<T, true>>(x, out, plan, workspace);
    case ReduceKind::ArgMin: return run<T, ArgOp<T, false>>(x, out, plan, workspace);
  }
}

template void launch_reduce<float>(ReduceKind, const float*, void*, const ReducePlan&, void*);
template void launch_reduce<double>(ReduceKind, const double*, void*, const ReducePlan&, void*);
template void launch_reduce<int64_t>(ReduceKind, const int64_t*, void*, const ReducePlan&, void*);
template void launch_reduce<bool>(ReduceKind, const bool*, void*, const ReducePlan&, void*);
template void launch_reduce<uint8_t>(ReduceKind, const uint8_t*, void*, const ReducePlan&, void*);
template void launch_reduce<bfloat16>(ReduceKind, const bfloat16*, void*, const ReducePlan&, void*);

}  // namespace heed::cuda
