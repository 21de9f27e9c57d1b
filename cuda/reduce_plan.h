#pragma once
// Launch plans for the CUDA reductions (cuda/reduce.cu), softmax
// (cuda/softmax.cu) and layer norm (cuda/norm.cu): the index math and the
// choice of block shapes, kept here in plain C++ so that g++ compiles it into
// the CPU tests (tests/cuda_reduce_plan_test.cpp) and nvcc into the kernels.
//
// A general reduction sees x as a matrix [n_out, n_red]: output o (row-major
// over the kept dims) folds the n_red elements r (row-major over the reduced
// dims). make_reduce_plan drops size-1 dims, orders the kept dims and the
// reduced dims each by falling |x stride| (so the innermost of each is the one
// with the smallest stride) and merges neighbours that are one dim in memory,
// so a contiguous [B, T, D] summed over D is [B*T, D] with one stride each.
// Then one of two kernels is picked from the layout:
//  - rows: the reduced elements are the dense ones (smallest stride). A group
//    of block_x threads (a warp or more) folds one output, threads taking
//    adjacent r, so a warp reads adjacent memory; block_y outputs per block.
//  - columns: a kept dim is the dense one (summing [R, D] over R, e.g. a bias
//    gradient), or there are so few reduced elements per output that a group
//    per output would idle. Threads along x take adjacent outputs (adjacent
//    memory), threads along y take interleaved slices of the reduced range,
//    and a fixed tree over y combines them.
// When there are too few outputs to fill the GPU and many elements each, the
// reduced range is cut into `splits` chunks of `chunk` elements (blockIdx.y);
// each (output, chunk) writes a partial result and a second kernel combines
// each output's partials in chunk order. Everything here depends on the shapes
// and strides only (never on the GPU model or a thread count), so a result is
// the same bits on every run.
#include <algorithm>
#include <cstdint>

#include "cuda/grid.h"  // kMaxGridX
#include "tensor/hd.h"

namespace heed::cuda {

// The reductions of the op table (heed::ReduceOp, without heed headers).
enum class ReduceKind : int { Sum, Prod, Max, Min, ArgMax, ArgMin };

constexpr int kMaxReduceDims = 16;         // kept or reduced dims left after merging
constexpr int kReducePartialBytes = 16;    // room for any accumulator (a value and an int64 index)
constexpr int kReduceBlockThreads = 256;   // threads per block, but for a row group above 256
constexpr int kMaxGroupThreads = 512;      // threads folding one row
constexpr int64_t kTargetBlocks = 1024;    // enough blocks to fill a GPU (a few per SM)
constexpr int64_t kMaxSplits = 65535;      // gridDim.y's limit

struct ReducePlan {
  // x as [n_out, n_red]; dims outermost first, strides in elements.
  int kept_ndim = 0, red_ndim = 0;
  int64_t kept_size[kMaxReduceDims] = {}, kept_x_stride[kMaxReduceDims] = {}, kept_out_stride[kMaxReduceDims] = {};
  int64_t red_size[kMaxReduceDims] = {}, red_x_stride[kMaxReduceDims] = {};
  int64_t n_out = 1, n_red = 1;
  // The launch: block (block_x, block_y), grid (grid_x, splits).
  bool columns = false;
  int block_x = 32, block_y = 1;
  int64_t grid_x = 1;
  int64_t splits = 1, chunk = 0;  // reduced elements [s * chunk, min(n_red, (s + 1) * chunk)) in split s
};

// The offset (in elements, through `stride`) of position i, row-major, of
// the ndim dims `size`.
HEED_HD inline int64_t offset_at(int ndim, const int64_t* size, const int64_t* stride, int64_t i) {
  int64_t off = 0;
  for (int d = ndim - 1; d >= 0; --d) {
    off += (i % size[d]) * stride[d];
    i /= size[d];
  }
  return off;
}

// x's offset (in elements) of output o's first element.
HEED_HD inline int64_t kept_x_offset(const ReducePlan& p, int64_t o) {
  return offset_at(p.kept_ndim, p.kept_size, p.kept_x_stride, o);
}

// out's offset (in elements) of output o.
HEED_HD inline int64_t kept_out_offset(const ReducePlan& p, int64_t o) {
  return offset_at(p.kept_ndim, p.kept_size, p.kept_out_stride, o);
}

// The offset of reduced element r from its output's first element.
HEED_HD inline int64_t red_x_offset(const ReducePlan& p, int64_t r) {
  if (p.red_ndim == 1) return r * p.red_x_stride[0];  // the common case: one merged dim
  return offset_at(p.red_ndim, p.red_size, p.red_x_stride, r);
}

// The reduced elements of split s: [begin, end).
HEED_HD inline int64_t split_begin(const ReducePlan& p, int64_t s) { return s * p.chunk; }
HEED_HD inline int64_t split_end(const ReducePlan& p, int64_t s) {
  const int64_t e = (s + 1) * p.chunk;
  return e < p.n_red ? e : p.n_red;
}

inline int64_t pow2_ceil(int64_t n) {
  int64_t p = 1;
  while (p < n) p *= 2;
  return p;
}
inline int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// Threads that fold one row of n elements: a warp at least, about four
// elements per thread, at most kMaxGroupThreads. A power of two.
inline int group_threads(int64_t n) {
  return static_cast<int>(std::clamp<int64_t>(pow2_ceil(std::max<int64_t>(n, 1)) / 4, 32, kMaxGroupThreads));
}

// Cuts n_red into chunks so that out_blocks * splits reaches about
// kTargetBlocks, keeping at least min_chunk elements per chunk.
inline void choose_splits(ReducePlan& p, int64_t out_blocks, int64_t min_chunk) {
  p.splits = 1;
  p.chunk = p.n_red;
  if (p.n_red == 0) return;
  const int64_t want = ceil_div(kTargetBlocks, out_blocks);
  const int64_t most = ceil_div(p.n_red, min_chunk);
  const int64_t splits = std::clamp<int64_t>(std::min(want, most), 1, kMaxSplits);
  p.chunk = ceil_div(p.n_red, splits);
  p.splits = ceil_div(p.n_red, p.chunk);  // no empty chunk at the end
}

// Plans the reduction of x (ndim dims) into out, where out has x's rank and
// size 1 in every reduced dim. Strides are in elements. Returns false when
// more than kMaxReduceDims kept or reduced dims are left after merging.
inline bool make_reduce_plan(int ndim, const int64_t* x_shape, const int64_t* x_strides, const int64_t* out_shape,
                             const int64_t* out_strides, ReducePlan& p) {
  p = ReducePlan();
  auto mag = [](int64_t s) { return s < 0 ? -s : s; };
  // Dims of size != 1 (a size-1 dim contributes nothing), split in two.
  int kept[64], red[64];
  int nk = 0, nr = 0;
  if (ndim > 64) return false;
  for (int d = 0; d < ndim; ++d) {
    if (x_shape[d] == 1) continue;
    if (out_shape[d] == x_shape[d]) kept[nk++] = d;
    else red[nr++] = d;
  }
  // Innermost = smallest |x stride|; stable, so ties keep the dims' order.
  std::stable_sort(kept, kept + nk, [&](int a, int b) { return mag(x_strides[a]) > mag(x_strides[b]); });
  std::stable_sort(red, red + nr, [&](int a, int b) { return mag(x_strides[a]) > mag(x_strides[b]); });

  // Merge a dim into the previous (outer) one when a step of the outer dim is
  // a full sweep of this one, in x and (for kept dims) in out.
  int m = 0;
  for (int j = 0; j < nk; ++j) {
    const int d = kept[j];
    const bool merge = m > 0 && p.kept_x_stride[m - 1] == x_strides[d] * x_shape[d] &&
                       p.kept_out_stride[m - 1] == out_strides[d] * x_shape[d];
    if (merge) {
      p.kept_size[m - 1] *= x_shape[d];
      p.kept_x_stride[m - 1] = x_strides[d];
      p.kept_out_stride[m - 1] = out_strides[d];
    } else {
      if (m == kMaxReduceDims) return false;
      p.kept_size[m] = x_shape[d];
      p.kept_x_stride[m] = x_strides[d];
      p.kept_out_stride[m] = out_strides[d];
      ++m;
    }
  }
  p.kept_ndim = m;
  m = 0;
  for (int j = 0; j < nr; ++j) {
    const int d = red[j];
    if (m > 0 && p.red_x_stride[m - 1] == x_strides[d] * x_shape[d]) {
      p.red_size[m - 1] *= x_shape[d];
      p.red_x_stride[m - 1] = x_strides[d];
    } else {
      if (m == kMaxReduceDims) return false;
      p.red_size[m] = x_shape[d];
      p.red_x_stride[m] = x_strides[d];
      ++m;
    }
  }
  p.red_ndim = m;
  for (int d = 0; d < p.kept_ndim; ++d) p.n_out *= p.kept_size[d];
  for (int d = 0; d < p.red_ndim; ++d) p.n_red *= p.red_size[d];

  // The kernel: columns when a kept dim is denser than every reduced one, or
  // when the outputs are too short for a warp each.
  const bool kept_denser = p.kept_ndim > 0 && p.red_ndim > 0 &&
                           mag(p.kept_x_stride[p.kept_ndim - 1]) < mag(p.red_x_stride[p.red_ndim - 1]);
  p.columns = kept_denser || p.n_red < 32;
  int64_t out_blocks;
  if (p.columns) {
    p.block_x = static_cast<int>(std::min<int64_t>(32, pow2_ceil(std::max<int64_t>(p.n_out, 1))));
    p.block_y = static_cast<int>(
        std::min<int64_t>(kReduceBlockThreads / p.block_x, pow2_ceil(std::max<int64_t>(p.n_red, 1))));
    out_blocks = ceil_div(p.n_out, p.block_x);
    choose_splits(p, std::max<int64_t>(out_blocks, 1), int64_t(p.block_y) * 16);  // >= 16 elements a thread
  } else {
    p.block_x = group_threads(p.n_red);
    p.block_y = std::max(1, kReduceBlockThreads / p.block_x);
    out_blocks = ceil_div(p.n_out, p.block_y);
    choose_splits(p, std::max<int64_t>(out_blocks, 1), int64_t(p.block_x) * 8);  // >= 8 elements a thread
  }
  p.grid_x = std::clamp<int64_t>(out_blocks, 1, kMaxGridX);
  return true;
}

// ---- row kernels: softmax and layer norm over the last dim of [R, n] ---------

// Block (threads, rows_per_block), grid (blocks): a group of `threads` per
// row, rows_per_block rows per block; kernels loop when rows exceed
// blocks * rows_per_block.
struct RowLaunch {
  int threads = 32, rows_per_block = 1;
  int64_t blocks = 1;
};

inline RowLaunch plan_rows(int64_t rows, int64_t n) {
  RowLaunch l;
  l.threads = group_threads(n);
  l.rows_per_block = std::max(1, kReduceBlockThreads / l.threads);
  l.blocks = std::clamp<int64_t>(ceil_div(rows, l.rows_per_block), 1, kMaxGridX);
  return l;
}

// ---- layer norm's grad_weight / grad_bias: sums over the rows of [R, D] ------

// Block (32, 8): 32 adjacent columns, 8 interleaved rows; grid (col_blocks,
// chunks), chunk c summing rows [c * rows_per_chunk, min(R, (c + 1) * rows_per_chunk)).
// Each chunk writes a partial [2, D] in double to the workspace
// ([chunks, 2, D]); a second kernel adds the chunks in order.
struct ColumnSumLaunch {
  static constexpr int kBlockX = 32, kBlockY = 8;
  int64_t col_blocks = 1, chunks = 1, rows_per_chunk = 0;
};

inline ColumnSumLaunch plan_column_sums(int64_t rows, int64_t d) {
  ColumnSumLaunch l;
  l.col_blocks = std::clamp<int64_t>(ceil_div(d, ColumnSumLaunch::kBlockX), 1, kMaxGridX);
  const int64_t want = ceil_div(kTargetBlocks, l.col_blocks);
  const int64_t most = ceil_div(std::max<int64_t>(rows, 1), ColumnSumLaunch::kBlockY * 8);  // >= 8 rows a thread
  const int64_t chunks = std::clamp<int64_t>(std::min(want, most), 1, kMaxSplits);
  l.rows_per_chunk = ceil_div(std::max<int64_t>(rows, 1), chunks);
  l.chunks = ceil_div(std::max<int64_t>(rows, 1), l.rows_per_chunk);
  return l;
}

// ---- the fold rules, shared with the CPU (tensor/cpu/cpu_reduce.cpp) ---------

// max / min: NaN wins (once the accumulator is NaN nothing replaces it).
template <class T>
HEED_HD inline T max_step(T a, T v) {
  return (v > a || v != v) ? v : a;
}
template <class T>
HEED_HD inline T min_step(T a, T v) {
  return (v < a || v != v) ? v : a;
}

// argmax / argmin candidates: the value and its index along the reduced dim;
// index < 0 is "no candidate yet". The CPU walks the dim in order and keeps
// the first extreme, the first NaN beating everything. arg_merge picks by the
// same total order (NaN first, then the extreme value, then the lower index),
// so combining candidates of disjoint index sets in any tree gives the CPU's
// answer.
template <class T>
struct ArgCandidate {
  T value;
  int64_t index;
};

template <bool kMax, class T>
HEED_HD inline ArgCandidate<T> arg_merge(ArgCandidate<T> a, ArgCandidate<T> b) {
  if (b.index < 0) return a;
  if (a.index < 0) return b;
  const bool a_nan = a.value != a.value, b_nan = b.value != b.value;
  if (a_nan || b_nan) {
    if (a_nan && b_nan) return a.index < b.index ? a : b;
    return a_nan ? a : b;
  }
  if (kMax ? b.value > a.value : b.value < a.value) return b;
  if (kMax ? a.value > b.value : a.value < b.value) return a;
  return a.index < b.index ? a : b;
}

}  // namespace heed::cuda
